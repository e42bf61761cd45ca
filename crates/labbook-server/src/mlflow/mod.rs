//! MLflow's tracking REST API (3.x) over labbook's store, so that unchanged
//! `mlflow` client code logs here. Only the wire format lives in this
//! module: experiments are projects, runs are runs, params are config
//! values, and searches run through labbook's one query layer.
//!
//! Requests follow MLflow's conventions: GET fields come as query
//! parameters (repeated for lists), others as a JSON body; int64 fields
//! may be JSON numbers or strings; NaN and infinities travel as the strings
//! "NaN", "Infinity" and "-Infinity". Errors are `{"error_code", "message"}`
//! with MLflow's statuses, and bad input is never a 500 (the client
//! retries those).

mod artifacts;
pub use artifacts::{listing, media_type, send_file};
pub use registry::{logged_model_artifact_base, logged_model_by_id};
pub use tracking::run_artifact_base;
mod filter;
mod lineage;
mod registry;
mod source;
mod tracking;

use axum::extract::{FromRequest, Request};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use labbook_store::{Store, StoreError};

use crate::AppState;

/// Everything under `/api/2.0/mlflow` (also served at `/ajax-api/2.0/mlflow`,
/// the prefix MLflow's own web UI uses), the artifact proxy, and the
/// server-info endpoints.
pub fn routes() -> Router<AppState> {
    let service = tracking::routes().merge(registry::routes());
    Router::new()
        .nest("/api/2.0/mlflow", service.clone())
        .nest("/ajax-api/2.0/mlflow", service)
        .nest("/api/2.0/mlflow-artifacts", artifacts::routes())
        .nest("/ajax-api/2.0/mlflow-artifacts", artifacts::routes())
        .route("/get-artifact", axum::routing::get(tracking::get_artifact))
        .route(
            "/ajax-api/2.0/mlflow/get-artifact",
            axum::routing::get(tracking::get_artifact),
        )
        .route(
            "/version",
            axum::routing::get(|| async { MLFLOW_COMPATIBLE_VERSION }),
        )
        .route(
            "/api/3.0/mlflow/server-info",
            axum::routing::get(|| async {
                Json(json!({ "store_type": "SqlStore", "workspaces_enabled": false }))
            }),
        )
}

/// The MLflow version whose API this server speaks (`/version`).
pub const MLFLOW_COMPATIBLE_VERSION: &str = "3.17.2";

/// An error as MLflow reports it.
#[derive(Debug)]
pub struct MlflowError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

pub type MlResult<T = Json<Value>> = Result<T, MlflowError>;

impl MlflowError {
    pub fn invalid(message: impl Into<String>) -> MlflowError {
        MlflowError {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_PARAMETER_VALUE",
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> MlflowError {
        MlflowError {
            status: StatusCode::NOT_FOUND,
            code: "RESOURCE_DOES_NOT_EXIST",
            message: message.into(),
        }
    }

    pub fn exists(message: impl Into<String>) -> MlflowError {
        MlflowError {
            status: StatusCode::BAD_REQUEST,
            code: "RESOURCE_ALREADY_EXISTS",
            message: message.into(),
        }
    }

    pub fn invalid_state(message: impl Into<String>) -> MlflowError {
        MlflowError {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_STATE",
            message: message.into(),
        }
    }

    /// The error of a field inside a list entry, named by its path there
    /// (`metrics[0].timestamp`), as MLflow names it.
    pub fn within(mut self, prefix: &str) -> MlflowError {
        self.message = self
            .message
            .replacen("parameter '", &format!("parameter '{prefix}."), 1);
        self
    }

    fn missing(name: &str) -> MlflowError {
        MlflowError::invalid(format!(
            "Missing value for required parameter '{name}'. See the API docs for more information about request parameters."
        ))
    }

    fn wrong_type(name: &str, value: &Value, expected: &str) -> MlflowError {
        let mut shown = value.to_string();
        if shown.len() > 100 {
            shown.truncate(shown.floor_char_boundary(100));
            shown.push('…');
        }
        MlflowError::invalid(format!(
            "Invalid value {shown} for parameter '{name}' supplied: expected {expected}"
        ))
    }
}

impl From<StoreError> for MlflowError {
    fn from(e: StoreError) -> MlflowError {
        let message = e.to_string();
        match e {
            StoreError::NotFound { .. } => MlflowError::not_found(message),
            StoreError::Invalid(_) | StoreError::Query(_) | StoreError::Ambiguous { .. } => {
                MlflowError::invalid(message)
            }
            StoreError::Conflict(_) => MlflowError::exists(message),
            // 503: the client backs off and retries, which is right for both.
            StoreError::Busy(_) | StoreError::DiskFull(_) | StoreError::Unavailable(_) => {
                MlflowError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "TEMPORARILY_UNAVAILABLE",
                    message,
                }
            }
            StoreError::ReadOnly(_) => MlflowError {
                status: StatusCode::FORBIDDEN,
                code: "PERMISSION_DENIED",
                message,
            },
            _ => MlflowError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "INTERNAL_ERROR",
                message,
            },
        }
    }
}

impl From<labbook_core::ValidationError> for MlflowError {
    fn from(e: labbook_core::ValidationError) -> MlflowError {
        MlflowError::invalid(e.to_string())
    }
}

impl IntoResponse for MlflowError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error_code": self.code, "message": self.message })),
        )
            .into_response()
    }
}

/// Runs store work off the async threads.
pub async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&AppState) -> MlResult<T> + Send + 'static,
) -> MlResult<T> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || f(&state))
        .await
        .map_err(|e| MlflowError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "INTERNAL_ERROR",
            message: format!("a store task failed: {e}"),
        })?
}

/// A request's fields: the JSON body merged over the query parameters.
/// `from_query` says the values are strings from a URL, where a repeated
/// field may arrive as one value.
pub struct Req(pub Map<String, Value>, pub bool);

/// A response body in MLflow's JSON form: its protos are proto2, whose JSON
/// leaves out repeated fields that are empty (clients test for presence).
pub fn wire(mut body: Value) -> Json<Value> {
    fn prune(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.retain(|_, v| !matches!(v, Value::Array(a) if a.is_empty()));
                map.values_mut().for_each(prune);
            }
            Value::Array(items) => items.iter_mut().for_each(prune),
            _ => {}
        }
    }
    prune(&mut body);
    Json(body)
}

impl<S: Send + Sync> FromRequest<S> for Req {
    type Rejection = MlflowError;

    async fn from_request(req: Request, state: &S) -> Result<Req, MlflowError> {
        let mut fields = Map::new();
        // Only a GET takes its fields from the query string, as MLflow's
        // server does: a write's fields come in its JSON body, never from a
        // URL a web page could make a browser send.
        if req.method() == Method::GET
            && let Some(query) = req.uri().query()
        {
            for (k, v) in form_urlencoded::parse(query.as_bytes()) {
                let v = Value::String(v.into_owned());
                match fields.get_mut(k.as_ref()) {
                    Some(Value::Array(items)) => items.push(v),
                    Some(existing) => {
                        let first = existing.take();
                        *existing = Value::Array(vec![first, v]);
                    }
                    None => {
                        fields.insert(k.into_owned(), v);
                    }
                }
            }
        }
        let method = req.method().clone();
        let from_query = method == Method::GET;
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| MlflowError::invalid(crate::error::body_rejection(&e)))?;
        if method != Method::GET && !body.iter().all(u8::is_ascii_whitespace) {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(map)) => fields.extend(map),
                Ok(_) => {
                    return Err(MlflowError::invalid(
                        "Malformed request: the body must be a JSON object",
                    ));
                }
                Err(e) => {
                    return Err(MlflowError::invalid(format!(
                        "Malformed request: the body is not valid JSON: {e}"
                    )));
                }
            }
        }
        Ok(Req(fields, from_query))
    }
}

impl Req {
    fn present(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    pub fn opt_str(&self, name: &str) -> MlResult<Option<&str>> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(MlflowError::wrong_type(name, other, "a string")),
        }
    }

    /// A required, non-empty string.
    pub fn str(&self, name: &str) -> MlResult<&str> {
        match self.opt_str(name)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(MlflowError::missing(name)),
        }
    }

    pub fn opt_i64(&self, name: &str) -> MlResult<Option<i64>> {
        match self.present(name) {
            None => Ok(None),
            Some(v) => as_i64(v)
                .map(Some)
                .ok_or_else(|| MlflowError::wrong_type(name, v, "an integer")),
        }
    }

    pub fn i64(&self, name: &str) -> MlResult<i64> {
        self.opt_i64(name)?
            .ok_or_else(|| MlflowError::missing(name))
    }

    pub fn f64(&self, name: &str) -> MlResult<f64> {
        let v = self
            .present(name)
            .ok_or_else(|| MlflowError::missing(name))?;
        as_f64(v).ok_or_else(|| MlflowError::wrong_type(name, v, "a number"))
    }

    pub fn opt_bool(&self, name: &str) -> MlResult<Option<bool>> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
            Some(other) => Err(MlflowError::wrong_type(name, other, "a boolean")),
        }
    }

    /// A repeated string field (a single value counts as one).
    pub fn strs(&self, name: &str) -> MlResult<Vec<String>> {
        match self.present(name) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) if self.1 => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(MlflowError::wrong_type(name, other, "a list of strings")),
                })
                .collect(),
            Some(other) => Err(MlflowError::wrong_type(name, other, "a list of strings")),
        }
    }

    /// A repeated message field.
    pub fn objects(&self, name: &str) -> MlResult<Vec<Req>> {
        match self.present(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Object(m) => Ok(Req(m.clone(), false)),
                    other => Err(MlflowError::wrong_type(name, other, "a list of objects")),
                })
                .collect(),
            Some(other) => Err(MlflowError::wrong_type(name, other, "a list of objects")),
        }
    }

    pub fn object(&self, name: &str) -> MlResult<Option<Req>> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Req(m.clone(), false))),
            Some(other) => Err(MlflowError::wrong_type(name, other, "an object")),
        }
    }

    /// `{key, value}` pairs (tags, params) as a map; values may be empty.
    pub fn key_values(&self, name: &str) -> MlResult<Vec<(String, String)>> {
        self.objects(name)?
            .iter()
            .map(|kv| {
                Ok((
                    kv.str("key")?.to_string(),
                    kv.opt_str("value")?.unwrap_or("").to_string(),
                ))
            })
            .collect()
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" | "nan" => Some(f64::NAN),
            "Infinity" | "inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            other => other.trim().parse().ok(),
        },
        _ => None,
    }
}

/// `[{key, value}]`, MLflow's form of a map.
pub fn key_value_list<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> Value {
    Value::Array(
        pairs
            .into_iter()
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect(),
    )
}

/// Page tokens are offsets into the sorted result, opaque to clients.
pub fn decode_page_token(token: Option<&str>) -> MlResult<usize> {
    match token.filter(|t| !t.is_empty()) {
        None => Ok(0),
        Some(t) => t
            .strip_prefix("o")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| MlflowError::invalid(format!("Invalid page token {t:?}"))),
    }
}

pub fn page_token(offset: usize, page: usize, total: usize) -> Option<String> {
    (offset + page < total).then(|| format!("o{}", offset + page))
}

/// The items a search keeps, in its order (ties broken by `tie`), as the
/// query evaluator sees them through `view`.
pub fn filter_sorted<'a, T, V: labbook_core::query::Fields>(
    items: impl Iterator<Item = &'a T>,
    filter: Option<&labbook_core::query::Expr>,
    order: &[labbook_core::query::SortKey],
    view: impl Fn(&'a T) -> V,
    tie: impl Fn(&T, &T) -> std::cmp::Ordering,
) -> Vec<&'a T> {
    let mut hits: Vec<&T> = items
        .filter(|item| filter.is_none_or(|f| f.matches(&view(item))))
        .collect();
    hits.sort_by(|a, b| {
        labbook_core::query::compare_by(order, &view(a), &view(b)).then_with(|| tie(a, b))
    });
    hits
}

/// One page of a search answer: `{key: [...], next_page_token}`.
pub fn paged<T>(
    key: &str,
    hits: &[T],
    offset: usize,
    limit: usize,
    to_json: impl Fn(&T) -> Value,
) -> Json<Value> {
    let page: Vec<Value> = hits.iter().skip(offset).take(limit).map(to_json).collect();
    let mut out = json!({ key: page });
    if let Some(token) = page_token(offset, limit, hits.len()) {
        out["next_page_token"] = json!(token);
    }
    wire(out)
}

/// `max_results`, defaulted and bounded as MLflow does.
pub fn max_results(req: &Req, default: i64, limit: i64) -> MlResult<usize> {
    let n = req.opt_i64("max_results")?.unwrap_or(default);
    if n <= 0 || n > limit {
        return Err(MlflowError::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be at most {limit} and positive."
        )));
    }
    Ok(n as usize)
}

/// Metric, param and tag keys as MLflow accepts them: letters, digits and
/// `_ - . / : space`, and no path tricks (`..`, a leading `/`), since
/// MLflow's file store makes files of them.
pub fn validate_entity_key(kind: &str, key: &str) -> MlResult<()> {
    let ok_chars = key
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':' | ' '));
    if !ok_chars {
        return Err(MlflowError::invalid(format!(
            "Invalid {kind} name: '{key}'. Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colons (:) and slashes (/)."
        )));
    }
    if key.starts_with('/')
        || key.split('/').any(|part| part == ".." || part == ".")
        || key.contains("//")
    {
        return Err(MlflowError::invalid(format!(
            "Invalid {kind} name: '{key}'. Names cannot contain '.' or '..' path parts or start with '/'."
        )));
    }
    Ok(())
}

/// The store behind a state, for code that takes `&dyn Store`.
pub fn store(state: &AppState) -> &dyn Store {
    &*state.store
}
