//! The handlers of docs/API.md. Store calls block (SQLite), so each runs on
//! tokio's blocking pool; handlers only parse, call and shape JSON.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use labbook_core::RunRecord;
use labbook_core::query::{
    Field, RunView, Value as FieldValue, parse_filter, parse_sort, resolve_field,
};
use labbook_store::{Deleted, KeyUse, RunPatch, RunQuery, StepRange, Store, StoreError};

use crate::error::ApiError;
use crate::json::{self, Floats, now_ms};
use crate::versions::{
    artifact_names, artifact_version, artifact_versions, run_lineage, run_versions, version_lineage,
};
use crate::{AppState, events, wire};
use labbook_store::session::open_run;

type Params = Query<HashMap<String, String>>;
type ApiResult = Result<Json<Value>, ApiError>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects", get(projects))
        .route("/projects/{project}/runs", get(runs))
        .route("/projects/{project}/keys", get(keys))
        .route("/projects/{project}/groups", get(groups))
        .route("/projects/{project}/notebook", get(notebook).post(add_note))
        .route("/projects/{project}/artifacts", get(artifact_names))
        .route(
            "/projects/{project}/studies",
            get(crate::studies::project_studies),
        )
        .route(
            "/projects/{project}/queue",
            get(crate::studies::project_queue),
        )
        .route(
            "/projects/{project}/report",
            get(crate::studies::project_report),
        )
        .route("/studies/{id}", get(crate::studies::study))
        .route("/studies/{id}/claim", post(crate::studies::claim))
        .route("/studies/{id}/heartbeat", post(crate::studies::heartbeat))
        .route("/trials/{id}/finish", post(crate::studies::finish))
        .route(
            "/projects/{project}/artifacts/{name}",
            get(artifact_versions),
        )
        .route(
            "/projects/{project}/artifacts/{name}/versions/{version}",
            get(artifact_version),
        )
        .route(
            "/projects/{project}/artifacts/{name}/versions/{version}/lineage",
            get(version_lineage),
        )
        .route("/query/validate", get(validate))
        .route(
            "/session",
            get(crate::session::current).post(crate::session::sign_in),
        )
        .route("/session/sign-out", post(crate::session::sign_out))
        .route("/runs", post(start_run))
        .route("/runs/tags", post(tag_runs))
        .route("/runs/delete", post(delete_runs))
        .route("/runs/restore", post(restore_runs))
        .route("/runs/{id}", get(run))
        .route("/runs/{id}/output", get(output))
        .route("/runs/{id}/artifacts", get(run_artifacts))
        .route("/runs/{id}/artifacts/preview", get(run_artifact_preview))
        .route("/runs/{id}/artifacts/raw", get(run_artifact_raw))
        .route("/runs/{id}/artifact-versions", get(run_versions))
        .route("/runs/{id}/lineage", get(run_lineage))
        .route("/runs/{id}/replays", get(run_replays))
        .route("/logged-models/{id}/artifacts", get(model_artifacts))
        .route(
            "/logged-models/{id}/artifacts/preview",
            get(model_artifact_preview),
        )
        .route("/logged-models/{id}/artifacts/raw", get(model_artifact_raw))
        .route("/models", get(registered_models))
        .route("/models/{name}", get(registered_model))
        .route("/runs/{id}/log", post(log_to_run))
        .route("/runs/{id}/environment", post(add_environment))
        .route("/runs/{id}/notes", post(add_run_note))
        .route("/series", get(series))
        .route("/events", get(events::events))
        // Inside the compression layer, where an extractor's text/plain
        // refusal can still be read and answered as the error object.
        .layer(axum::middleware::map_response(|response| {
            crate::guard::plain_errors_as_json(crate::guard::Surface::Labbook, response)
        }))
}

/// Runs a store call on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn Store) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || f(&*store))
        .await
        .map_err(|e| ApiError::internal(format!("a store task failed: {e}")))?
}

pub(crate) fn param_usize(
    params: &HashMap<String, String>,
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match params.get(name).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n <= max => Ok(n),
            Ok(_) => Err(ApiError::invalid(
                name,
                format!("{name} must be at most {max}"),
            )),
            Err(_) => Err(ApiError::invalid(
                name,
                format!("{name} must be a non-negative integer, not {v:?}"),
            )),
        },
    }
}

fn param_i64(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    match params.get(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
            ApiError::invalid(name, format!("{name} must be an integer step, not {v:?}"))
        }),
    }
}

fn run_query(
    project: Option<String>,
    params: &HashMap<String, String>,
) -> Result<RunQuery, ApiError> {
    let filter = match params
        .get("filter")
        .map(|f| f.trim())
        .filter(|f| !f.is_empty())
    {
        Some(f) => Some(parse_filter(f).map_err(|e| ApiError::query("filter", e))?),
        None => None,
    };
    let sort = match params
        .get("sort")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        Some(s) => parse_sort(s).map_err(|e| ApiError::query("sort", e))?,
        None => Vec::new(),
    };
    let deleted = match params.get("deleted").map(String::as_str) {
        None | Some("" | "0" | "false") => Deleted::Exclude,
        Some("1" | "true") => Deleted::Only,
        Some(other) => {
            return Err(ApiError::invalid(
                "deleted",
                format!("deleted must be 0 or 1, not {other:?}"),
            ));
        }
    };
    Ok(RunQuery {
        project,
        project_ids: None,
        filter,
        sort,
        limit: Some(param_usize(params, "limit", 100, 10_000)?),
        offset: param_usize(params, "offset", 0, usize::MAX)?,
        deleted,
    })
}

async fn projects(State(state): State<AppState>) -> ApiResult {
    let mut projects = blocking(&state, |store| Ok(store.list_projects()?)).await?;
    projects.retain(|p| p.is_listed());
    Ok(Json(json!({ "projects": projects })))
}

async fn runs(
    State(state): State<AppState>,
    Path(project): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let query = run_query(Some(project), &params)?;
    let fields = run_fields(&params)?;
    let (limit, offset) = (query.limit, query.offset);
    let (runs, total) = blocking(&state, move |store| Ok(store.list_runs_counted(&query)?)).await?;
    let now = now_ms();
    let runs: Vec<Value> = runs
        .iter()
        .map(|r| match &fields {
            None => Value::Object(json::run(r, now)),
            Some(fields) => Value::Object(json::run_fields(r, fields, now)),
        })
        .collect();
    Ok(Json(
        json!({ "runs": runs, "total": total, "offset": offset, "limit": limit }),
    ))
}

/// `fields=id,parent`: only these fields of each run (the dashboard's tree
/// of nested runs needs the shape of thousands of runs, not their data).
fn run_fields(params: &HashMap<String, String>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(list) = params.get("fields").filter(|f| !f.trim().is_empty()) else {
        return Ok(None);
    };
    let mut fields: Vec<String> = Vec::new();
    for field in list.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        if !json::RUN_FIELDS.contains(&field) {
            return Err(ApiError::invalid(
                "fields",
                format!(
                    "unknown run field {field:?}: one of {}",
                    json::RUN_FIELDS.join(", ")
                ),
            ));
        }
        if !fields.iter().any(|f| f == field) {
            fields.push(field.to_string());
        }
    }
    Ok(Some(fields))
}

async fn keys(State(state): State<AppState>, Path(project): Path<String>) -> ApiResult {
    blocking(&state, move |store| {
        let catalog = store.key_catalog(&project)?;
        let list = |keys: Vec<KeyUse>| -> Vec<Value> {
            keys.into_iter().map(|k| json!({ "key": k.key, "count": k.runs })).collect()
        };
        Ok(Json(json!({
            "config": catalog.config.into_iter().map(|k| json!({ "key": k.key, "count": k.runs, "numeric": k.numeric_runs == k.runs })).collect::<Vec<_>>(),
            "metrics": list(catalog.metrics),
            "summary": list(catalog.summary),
            "attributes": ["id", "name", "project", "group", "status", "notes", "tags", "host", "created", "ended", "duration", "exit_code"],
        })))
    })
    .await
}

fn group_key(value: &FieldValue<'_>) -> Vec<Value> {
    match value {
        FieldValue::Missing => vec![Value::Null],
        FieldValue::Num(n) => vec![json::num(*n)],
        FieldValue::Str(s) => vec![json!(s)],
        FieldValue::Bool(b) => vec![json!(b)],
        FieldValue::List(items) if items.is_empty() => vec![Value::Null],
        FieldValue::List(items) => items.iter().map(|t| json!(t)).collect(),
    }
}

async fn groups(
    State(state): State<AppState>,
    Path(project): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let by_text = params.get("by").cloned().unwrap_or_default();
    let by: Field = resolve_field(by_text.trim()).map_err(|e| ApiError::invalid("by", e))?;
    let query = RunQuery {
        limit: None,
        ..run_query(Some(project), &params)?
    };
    blocking(&state, move |store| {
        let now = now_ms();
        let mut out = Vec::new();
        store.visit_runs(&query, &mut |runs| {
            // Keyed by the value's JSON text so that 0.1 and "0.1" stay apart.
            let mut groups: BTreeMap<String, (Value, Vec<&RunRecord>)> = BTreeMap::new();
            for run in runs {
                let view = RunView { run, now_ms: now };
                for key in group_key(&labbook_core::query::Fields::get(&view, &by)) {
                    groups.entry(key.to_string()).or_insert_with(|| (key, Vec::new())).1.push(run);
                }
            }
            for (value, members) in groups.values() {
                let mut per_metric: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
                for run in members {
                    for (k, s) in &run.metrics {
                        if s.last.is_finite() {
                            per_metric.entry(k.as_str()).or_default().push(s.last);
                        }
                    }
                }
                let metrics: Map<String, Value> = per_metric
                    .into_iter()
                    .map(|(k, xs)| {
                        let n = xs.len() as f64;
                        let mean = xs.iter().sum::<f64>() / n;
                        let var = if xs.len() > 1 { xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
                        (k.to_string(), json!({ "mean": json::num(mean), "std": json::num(var.sqrt()), "n": xs.len() }))
                    })
                    .collect();
                out.push(json!({
                    "value": value,
                    "count": members.len(),
                    "run_ids": members.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
                    "metrics": metrics,
                }));
            }
        })?;
        Ok(Json(json!({ "by": by.to_string(), "groups": out })))
    })
    .await
}

async fn validate(Query(params): Params) -> ApiResult {
    run_query(None, &params)?;
    Ok(Json(json!({ "ok": true })))
}

async fn run(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    blocking(&state, move |store| {
        let run = store.get_run(&id)?;
        let mut m = json::run(&run, now_ms());
        m.insert(
            "environment".into(),
            store.environment(&id)?.unwrap_or(Value::Null),
        );
        m.insert("notebook".into(), json!(store.notes(&id)?));
        let keys: Vec<Value> = store
            .series_keys(&id)?
            .into_iter()
            .map(|(key, count)| json!({ "key": key, "count": count }))
            .collect();
        m.insert("metric_keys".into(), Value::Array(keys));
        m.insert("outputs".into(), logged_models_of(store, &run));
        Ok(Json(Value::Object(m)))
    })
    .await
}

/// Replays listed at most, newest first.
const MAX_REPLAYS: usize = 200;

/// `GET /runs/{id}/replays`: the run this one replays, the replays of this
/// one with their verdicts, and this run's own check when it is a replay.
async fn run_replays(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    use labbook_core::replay::{CHECK_DOCUMENT, REPLAY_OF_TAG, VERDICT_TAG};
    blocking(&state, move |store| {
        let run = store.get_run(&id)?;
        let brief = |r: &RunRecord| {
            json!({
                "id": r.id,
                "name": r.name,
                "status": r.status.as_str(),
                "created_ms": r.created_ms,
                "verdict": r.kv_tags.get(VERDICT_TAG),
                "set": r.kv_tags.get("labbook.replay_set"),
            })
        };
        let replay_of = match run.kv_tags.get(REPLAY_OF_TAG) {
            Some(original) => match store.get_run(original) {
                Ok(o) => brief(&o),
                Err(StoreError::NotFound { .. }) => json!({ "id": original, "missing": true }),
                Err(e) => return Err(e.into()),
            },
            None => Value::Null,
        };
        let filter = parse_filter(&format!(
            "tags.{REPLAY_OF_TAG} = {}",
            serde_json::to_string(&run.id).unwrap_or_default()
        ))
        .map_err(|e| ApiError::internal(e.to_string()))?;
        let (replays, total) = store.list_runs_counted(&RunQuery {
            project: None,
            filter: Some(filter),
            limit: Some(MAX_REPLAYS),
            ..RunQuery::default()
        })?;
        Ok(Json(json!({
            "run": run.id,
            "replay_of": replay_of,
            "replays": replays.iter().map(brief).collect::<Vec<_>>(),
            "replays_total": total,
            "check": store.document(CHECK_DOCUMENT, &run.id)?,
        })))
    })
    .await
}

async fn output(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    blocking(&state, move |store| {
        let chunks: Vec<Value> = store
            .read_output(&id)?
            .into_iter()
            .map(|c| json!({ "stream": c.stream, "ts_ms": c.ts_ms, "text": String::from_utf8_lossy(&c.data) }))
            .collect();
        Ok(Json(json!({ "chunks": chunks })))
    })
    .await
}

fn csv_param(
    params: &HashMap<String, String>,
    name: &str,
    max: usize,
) -> Result<Vec<String>, ApiError> {
    let items: Vec<String> = params
        .get(name)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if items.is_empty() {
        return Err(ApiError::invalid(
            name,
            format!("{name} is required: a comma-separated list"),
        ));
    }
    if items.len() > max {
        return Err(ApiError::invalid(
            name,
            format!("at most {max} {name} per request, got {}", items.len()),
        ));
    }
    Ok(items)
}

/// One curve of a `/series` response, serialized straight from the
/// decoded columns (a `Value` per point would cost an allocation each).
#[derive(serde::Serialize)]
struct Curve<'a> {
    run: &'a str,
    key: &'a str,
    steps: &'a [i64],
    #[serde(skip_serializing_if = "Option::is_none")]
    ts_ms: Option<&'a [i64]>,
    values: Floats<'a>,
    total: usize,
    downsampled: bool,
}

/// The most points one `/series` answer holds, summed over its curves:
/// about 40 MB of JSON. A chart of 200 runs at 1,000 buckets fits; beyond
/// it buckets shrink, so no request can make the server hold more.
pub const SERIES_POINT_BUDGET: usize = 1_000_000;

/// `items` in their first order, each once.
fn distinct(items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}

async fn series(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<axum::response::Response, ApiError> {
    let runs = distinct(csv_param(&params, "runs", 200)?);
    let keys = distinct(csv_param(&params, "keys", 50)?);
    let buckets = param_usize(&params, "buckets", 1000, 10_000)?.max(1);
    let (lo, hi, after) = (
        param_i64(&params, "lo")?,
        param_i64(&params, "hi")?,
        param_i64(&params, "after")?,
    );
    let timestamps = !matches!(params.get("ts").map(String::as_str), Some("0" | "false"));
    let columns = match params.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("columns") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "format",
                format!("unknown format {other:?}: use json or columns"),
            ));
        }
    };
    // A bucket yields at most 4 points (first, last, min, max); new points
    // after a step come whole while they fit the curve's share of the
    // budget, downsampled past it.
    let share = SERIES_POINT_BUDGET / (runs.len() * keys.len()).max(1);
    let buckets = match after {
        Some(_) => (share / 4).max(1),
        None => buckets.min((share / 4).max(1)),
    };
    let body = blocking(&state, move |store| {
        let pairs: Vec<(&String, &String)> = runs.iter().flat_map(|r| keys.iter().map(move |k| (r, k))).collect();
        let one = |(run, key): (&String, &String)| -> Result<Option<(labbook_core::SeriesColumns, usize)>, ApiError> {
            let lo = match after {
                Some(after) => Some(after.saturating_add(1)),
                None => lo,
            };
            let result = store.downsample(run, key, StepRange { lo, hi }, buckets, timestamps);
            match result {
                Ok(found) => Ok(Some(found)),
                // A run without this key, or an unknown run, has no curve.
                Err(StoreError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            }
        };
        // Curves are independent: decode them on every core.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(pairs.len()).max(1);
        let per = pairs.len().div_ceil(threads).max(1);
        type Found = Option<(labbook_core::SeriesColumns, usize)>;
        let parts: Vec<Result<Vec<Found>, ApiError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = pairs.chunks(per).map(|part| scope.spawn(move || part.iter().map(|&p| one(p)).collect())).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(ApiError::internal("a series worker panicked"))))
                .collect()
        });
        let mut found = Vec::with_capacity(pairs.len());
        for part in parts {
            found.extend(part?);
        }
        let curves: Vec<Curve<'_>> = pairs
            .iter()
            .zip(&found)
            .filter_map(|((run, key), f)| {
                let (points, total) = f.as_ref()?;
                Some(Curve {
                    run,
                    key,
                    steps: &points.steps,
                    ts_ms: timestamps.then_some(&points.ts_ms[..]),
                    values: Floats(&points.values),
                    total: *total,
                    downsampled: *total > points.len(),
                })
            })
            .collect();
        if columns {
            return series_columns(&curves);
        }
        #[derive(serde::Serialize)]
        struct SeriesResponse<'a> {
            series: Vec<Curve<'a>>,
        }
        serde_json::to_vec(&SeriesResponse { series: curves }).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await?;
    let content_type = if columns {
        SERIES_COLUMNS_TYPE
    } else {
        "application/json"
    };
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response())
}

/// The media type of `/series?format=columns` (docs/API.md): left
/// uncompressed, since float columns barely shrink and gzip cost more than
/// the wire saved.
pub const SERIES_COLUMNS_TYPE: &str = "application/vnd.labbook.series";

/// `/series` as binary columns: `LBS1`, a little-endian u32 header length,
/// the JSON header (each curve's run, key, n, total, downsampled, ts), zero
/// padding to a multiple of 8, then per curve its steps, wall times (when
/// `ts`) and values as little-endian f64 arrays of n. Every array starts on
/// an 8-byte boundary, so a browser reads it as a `Float64Array` in place.
fn series_columns(curves: &[Curve<'_>]) -> Result<Vec<u8>, ApiError> {
    #[derive(serde::Serialize)]
    struct Head<'a> {
        run: &'a str,
        key: &'a str,
        n: usize,
        total: usize,
        downsampled: bool,
        ts: bool,
    }
    #[derive(serde::Serialize)]
    struct Header<'a> {
        series: Vec<Head<'a>>,
    }
    let header = Header {
        series: curves
            .iter()
            .map(|c| Head {
                run: c.run,
                key: c.key,
                n: c.steps.len(),
                total: c.total,
                downsampled: c.downsampled,
                ts: c.ts_ms.is_some(),
            })
            .collect(),
    };
    let header = serde_json::to_vec(&header).map_err(|e| ApiError::internal(e.to_string()))?;
    let header_len =
        u32::try_from(header.len()).map_err(|_| ApiError::internal("series header over 4 GiB"))?;
    let floats: usize = curves
        .iter()
        .map(|c| c.steps.len() * if c.ts_ms.is_some() { 3 } else { 2 })
        .sum();
    let mut out = Vec::with_capacity(8 + header.len() + 8 + floats * 8);
    out.extend_from_slice(b"LBS1");
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(&header);
    out.resize(out.len().next_multiple_of(8), 0);
    // Steps and wall times go as f64, exact to 2^53: JavaScript numbers
    // hold no more, and JSON answers are read the same way.
    let ints = |out: &mut Vec<u8>, xs: &[i64]| {
        xs.iter()
            .for_each(|&x| out.extend_from_slice(&(x as f64).to_le_bytes()))
    };
    for c in curves {
        ints(&mut out, c.steps);
        if let Some(ts) = c.ts_ms {
            ints(&mut out, ts);
        }
        c.values
            .0
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    }
    Ok(out)
}

/// A request body that must be a JSON object; any other body, or one over
/// the size limit, is a 4xx naming the body.
pub(crate) struct JsonBody(pub(crate) Map<String, Value>);

impl<S: Send + Sync> axum::extract::FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonBody(map)),
            Ok(_) => Err(ApiError::invalid("body", "the body must be a JSON object")),
            Err(e) => Err(ApiError::invalid(
                "body",
                format!("the body is not valid JSON: {e}"),
            )),
        }
    }
}

fn string_list(
    body: &Map<String, Value>,
    name: &str,
    required: bool,
) -> Result<Vec<String>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) if !required => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::invalid(name, format!("{name} must be a list of strings"))
                })
            })
            .collect(),
        _ => Err(ApiError::invalid(
            name,
            format!("{name} must be a list of strings"),
        )),
    }
}

/// Applies a change to every run in `ids`, after checking that they all
/// exist: a typo in one id changes nothing.
async fn for_all_runs(
    state: &AppState,
    ids: Vec<String>,
    change: impl Fn(&dyn Store, &str) -> Result<(), StoreError> + Send + 'static,
) -> ApiResult {
    blocking(state, move |store| {
        for id in &ids {
            store.get_run(id)?;
        }
        for id in &ids {
            change(store, id)?;
        }
        Ok(Json(json!({ "ok": true })))
    })
    .await
}

async fn tag_runs(State(state): State<AppState>, JsonBody(body): JsonBody) -> ApiResult {
    let ids = string_list(&body, "ids", true)?;
    let patch = RunPatch {
        add_tags: string_list(&body, "add", false)?,
        remove_tags: string_list(&body, "remove", false)?,
        ..Default::default()
    };
    for_all_runs(&state, ids, move |store, id| store.update_run(id, &patch)).await
}

async fn delete_runs(State(state): State<AppState>, JsonBody(body): JsonBody) -> ApiResult {
    let ids = string_list(&body, "ids", true)?;
    let now = now_ms();
    for_all_runs(&state, ids, move |store, id| store.delete_run(id, now)).await
}

async fn restore_runs(State(state): State<AppState>, JsonBody(body): JsonBody) -> ApiResult {
    let ids = string_list(&body, "ids", true)?;
    for_all_runs(&state, ids, |store, id| store.restore_run(id)).await
}

fn note_text(body: &Map<String, Value>) -> Result<String, ApiError> {
    body.get("text")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ApiError::invalid("text", "text is required: the note, as a string"))
}

fn note_json(n: &labbook_store::NotebookNote) -> Value {
    json!({ "kind": "note", "id": n.id, "created_ms": n.created_ms, "text": n.text, "run_id": n.run_id })
}

async fn notebook(
    State(state): State<AppState>,
    Path(project): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let headline = params.get("headline").cloned().filter(|h| !h.is_empty());
    blocking(&state, move |store| {
        let now = now_ms();
        let mut entries: Vec<(i64, Value)> = Vec::new();
        let query = RunQuery { project: Some(project.clone()), ..Default::default() };
        store.visit_runs(&query, &mut |runs| {
            for run in runs {
                let key = headline
                    .clone()
                    .filter(|h| run.metrics.contains_key(h))
                    .or_else(|| run.metrics.keys().find(|k| !k.starts_with("sys/")).cloned());
                let headline = key.and_then(|k| run.metrics.get(&k).map(|s| json!({ "key": k, "value": json::num(s.last) })));
                entries.push((
                    run.created_ms,
                    json!({
                        "kind": "run",
                        "created_ms": run.created_ms,
                        "run": {
                            "id": run.id, "name": run.name, "group": run.group, "status": run.status.as_str(),
                            "notes": run.notes, "duration_ms": run.duration_ms(now), "headline": headline,
                        },
                    }),
                ));
            }
        })?;
        for note in store.project_notes(&project)? {
            entries.push((note.created_ms, note_json(&note)));
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.0));
        Ok(Json(json!({ "entries": entries.into_iter().map(|(_, e)| e).collect::<Vec<_>>() })))
    })
    .await
}

async fn add_note(
    State(state): State<AppState>,
    Path(project): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let text = note_text(&body)?;
    let run_id = match body.get("run_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(ApiError::invalid(
                "run_id",
                "run_id must be a string or null",
            ));
        }
    };
    blocking(&state, move |store| {
        let note = store.add_project_note(&project, &text, run_id.as_deref(), now_ms())?;
        Ok(Json(note_json(&note)))
    })
    .await
}

/// A body read as raw bytes, so that size errors name the body and parse
/// errors the field ([`wire::parse`]).
struct RawBody(Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|e| ApiError {
                status: e.status(),
                code: if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    "PAYLOAD_TOO_LARGE"
                } else {
                    "INVALID_ARGUMENT"
                },
                message: crate::error::body_rejection(&e),
                field: Some("body".into()),
                column: None,
            })
    }
}

fn invalid(e: labbook_core::ValidationError) -> ApiError {
    ApiError::invalid(e.field(), e.to_string())
}

/// `labbook.init()` for a client: starts, resumes or attaches to a run.
async fn start_run(State(state): State<AppState>, RawBody(body): RawBody) -> ApiResult {
    let now = now_ms();
    let open = wire::parse::<wire::StartRun>(&body)
        .and_then(|start| start.into_open(now))
        .map_err(invalid)?;
    blocking(&state, move |store| {
        let host = labbook_capture::hostname();
        let opened = open_run(
            store,
            &open,
            now,
            host.as_deref(),
            &labbook_capture::pid_alive,
        )?;
        Ok(Json(json!({
            "run": json::run(&opened.record, now),
            "next_step": opened.next_step,
        })))
    })
    .await
}

/// A client's batch of points and run changes, applied once per batch id.
async fn log_to_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult {
    let append = wire::parse::<wire::LogBatch>(&body)
        .and_then(|batch| batch.into_append(now_ms()))
        .map_err(invalid)?;
    let hold = crate::test_hook::holds(
        state.hold_after_commit.as_deref(),
        append.series.iter().map(|(key, _)| key.as_str()),
    );
    let appender = state.appender.clone();
    let run_id = id.clone();
    let applied = tokio::task::spawn_blocking(move || appender.append(&run_id, append))
        .await
        .map_err(|e| ApiError::internal(format!("a store task failed: {e}")))??;
    if hold {
        match crate::test_hook::hold("a batch", &id).await {}
    }
    Ok(Json(json!({ "applied": applied })))
}

/// Merges what a client captured about its process into the run's environment.
async fn add_environment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    blocking(&state, move |store| {
        store.set_environment(&id, &Value::Object(body))?;
        Ok(Json(json!({ "ok": true })))
    })
    .await
}

async fn add_run_note(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let text = note_text(&body)?;
    blocking(&state, move |store| {
        store.add_note(&id, &text, now_ms())?;
        Ok(Json(json!({ "ok": true })))
    })
    .await
}

/// The models a run logged, with what the registry made of them.
fn logged_models_of(store: &dyn Store, run: &RunRecord) -> Value {
    let versions: Vec<(String, i64, Option<String>)> =
        labbook_store::models::list::<labbook_core::model::RegisteredModel>(
            store,
            labbook_store::models::REGISTERED_MODEL,
        )
        .unwrap_or_default()
        .into_iter()
        .flat_map(|m| {
            m.versions
                .into_iter()
                .map(move |v| (m.name.clone(), v.version, v.model_id))
        })
        .collect();
    Value::Array(
        run.outputs
            .iter()
            .map(|o| {
                let model = crate::mlflow::logged_model_by_id(store, &o.model_id);
                let registered: Vec<Value> = versions
                    .iter()
                    .filter(|(_, _, id)| id.as_deref() == Some(o.model_id.as_str()))
                    .map(|(name, v, _)| json!({ "name": name, "version": v }))
                    .collect();
                json!({
                    "model_id": o.model_id,
                    "step": o.step,
                    "name": model.as_ref().map(|m| m.name.clone()),
                    "model_type": model.as_ref().and_then(|m| m.model_type.clone()),
                    "params": model.as_ref().map(|m| m.params.clone()),
                    "registered": registered,
                })
            })
            .collect(),
    )
}

/// Whose files a request browses: a run's or a logged model's.
#[derive(Clone, Copy)]
enum Holder {
    Run,
    LoggedModel,
}

/// Where a holder's artifacts are in the store, and the path asked for
/// under them, checked to stay inside.
fn artifact_path(
    store: &dyn Store,
    holder: Holder,
    id: &str,
    params: &HashMap<String, String>,
) -> Result<(String, String), ApiError> {
    let rel = labbook_core::artifact::normalize_artifact_path(
        params.get("path").map_or("", String::as_str),
    )
    .map_err(|e| ApiError::invalid("path", e.to_string()))?;
    let base = match holder {
        Holder::Run => {
            let run = store.get_run(id)?;
            crate::mlflow::run_artifact_base(store, &run)
                .map_err(|e| ApiError::invalid("id", e.message))?
        }
        Holder::LoggedModel => {
            crate::mlflow::logged_model_artifact_base(store, id).ok_or(StoreError::NotFound {
                what: "logged model",
                id: id.to_string(),
            })?
        }
    };
    Ok((base, rel))
}

async fn run_artifacts(state: State<AppState>, id: Path<String>, params: Params) -> ApiResult {
    list_artifacts(state, Holder::Run, id, params).await
}

async fn model_artifacts(state: State<AppState>, id: Path<String>, params: Params) -> ApiResult {
    list_artifacts(state, Holder::LoggedModel, id, params).await
}

async fn run_artifact_preview(
    state: State<AppState>,
    id: Path<String>,
    params: Params,
) -> ApiResult {
    artifact_preview(state, Holder::Run, id, params).await
}

async fn model_artifact_preview(
    state: State<AppState>,
    id: Path<String>,
    params: Params,
) -> ApiResult {
    artifact_preview(state, Holder::LoggedModel, id, params).await
}

async fn run_artifact_raw(
    state: State<AppState>,
    id: Path<String>,
    params: Params,
) -> Result<axum::response::Response, ApiError> {
    artifact_raw(state, Holder::Run, id, params).await
}

async fn model_artifact_raw(
    state: State<AppState>,
    id: Path<String>,
    params: Params,
) -> Result<axum::response::Response, ApiError> {
    artifact_raw(state, Holder::LoggedModel, id, params).await
}

async fn list_artifacts(
    State(state): State<AppState>,
    holder: Holder,
    Path(id): Path<String>,
    Query(params): Params,
) -> ApiResult {
    blocking(&state, move |store| {
        let (base, rel) = artifact_path(store, holder, &id, &params)?;
        let files: Vec<Value> = crate::mlflow::listing(store, &base, &rel)?
            .into_iter()
            .map(|e| {
                let name = e.path.rsplit('/').next().unwrap_or(&e.path);
                json!({ "path": e.path, "name": name, "is_dir": e.is_dir,
                        "size": (!e.is_dir).then_some(e.size) })
            })
            .collect();
        Ok(Json(json!({ "path": rel, "files": files })))
    })
    .await
}

async fn artifact_preview(
    State(state): State<AppState>,
    holder: Holder,
    Path(id): Path<String>,
    Query(params): Params,
) -> ApiResult {
    blocking(&state, move |store| {
        let (base, rel) = artifact_path(store, holder, &id, &params)?;
        if rel.is_empty() {
            return Err(ApiError::invalid("path", "name a file to preview"));
        }
        let (reader, size) = store.open_artifact(&format!("{base}/{rel}"))?;
        let mut head = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(reader, crate::preview::HEAD_BYTES),
            &mut head,
        )
        .map_err(|e| ApiError::internal(format!("cannot read {rel}: {e}")))?;
        let name = rel.rsplit('/').next().unwrap_or(&rel);
        let preview = crate::preview::preview(name, size, &head);
        let mut out =
            serde_json::to_value(&preview).map_err(|e| ApiError::internal(e.to_string()))?;
        out["path"] = json!(rel);
        out["size"] = json!(size);
        Ok(Json(out))
    })
    .await
}

async fn artifact_raw(
    State(state): State<AppState>,
    holder: Holder,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<axum::response::Response, ApiError> {
    let path = blocking(&state, move |store| {
        let (base, rel) = artifact_path(store, holder, &id, &params)?;
        if rel.is_empty() {
            return Err(ApiError::invalid("path", "name a file to download"));
        }
        Ok(format!("{base}/{rel}"))
    })
    .await?;
    crate::mlflow::send_file(&state, path)
        .await
        .map_err(|e| ApiError {
            // This API's codes, not MLflow's, for the same statuses.
            code: match e.status.as_u16() {
                400 => "INVALID_ARGUMENT",
                404 => "NOT_FOUND",
                413 => "PAYLOAD_TOO_LARGE",
                _ => "INTERNAL",
            },
            status: e.status,
            message: e.message,
            field: Some("path".into()),
            column: None,
        })
}

fn registered_model_json(
    m: &labbook_core::model::RegisteredModel,
    runs: &HashMap<String, (String, String)>,
) -> Value {
    let versions: Vec<Value> = m
        .versions
        .iter()
        .rev()
        .map(|v| {
            let run = v.run_id.as_ref().and_then(|id| runs.get(id));
            json!({
                "version": v.version,
                "stage": v.stage,
                "source": v.source,
                "run_id": v.run_id,
                "run_name": run.map(|r| &r.0),
                "project": run.map(|r| &r.1),
                "model_id": v.model_id,
                "description": v.description,
                "tags": v.tags,
                "aliases": m.aliases_of(v.version),
                "created_ms": v.created_ms,
                "updated_ms": v.updated_ms,
            })
        })
        .collect();
    json!({
        "name": m.name,
        "description": m.description,
        "tags": m.tags,
        "aliases": m.aliases,
        "created_ms": m.created_ms,
        "updated_ms": m.updated_ms,
        "versions": versions,
    })
}

/// Run names and projects by id, for the runs the registry points at.
/// The name and project of each version's run, for those the viewer may
/// read (with `--auth`, a model readable to them can come from a run of a
/// project they may not see: its name and project are then left out).
fn run_names(
    store: &dyn Store,
    models: &[labbook_core::model::RegisteredModel],
    viewer: Option<&crate::Viewer>,
) -> HashMap<String, (String, String)> {
    let mut out = HashMap::new();
    for id in models
        .iter()
        .flat_map(|m| m.versions.iter().filter_map(|v| v.run_id.clone()))
    {
        if let std::collections::hash_map::Entry::Vacant(slot) = out.entry(id)
            && let Ok(run) = store.get_run(slot.key())
            && viewer.is_none_or(|v| v.may_read_project(run.project_id))
        {
            slot.insert((run.name, run.project));
        }
    }
    out
}

async fn registered_models(
    State(state): State<AppState>,
    viewer: Option<axum::Extension<crate::Viewer>>,
) -> ApiResult {
    let viewer = viewer.map(|v| v.0);
    blocking(&state, move |store| {
        let models: Vec<labbook_core::model::RegisteredModel> =
            labbook_store::models::list(store, labbook_store::models::REGISTERED_MODEL)?;
        let runs = run_names(store, &models, viewer.as_ref());
        let out: Vec<Value> = models
            .iter()
            .map(|m| registered_model_json(m, &runs))
            .collect();
        Ok(Json(json!({ "models": out })))
    })
    .await
}

async fn registered_model(
    State(state): State<AppState>,
    viewer: Option<axum::Extension<crate::Viewer>>,
    Path(name): Path<String>,
) -> ApiResult {
    let viewer = viewer.map(|v| v.0);
    blocking(&state, move |store| {
        let model: Option<labbook_core::model::RegisteredModel> =
            labbook_store::models::get(store, labbook_store::models::REGISTERED_MODEL, &name)?;
        let Some(model) = model else {
            return Err(StoreError::NotFound {
                what: "registered model",
                id: name,
            }
            .into());
        };
        let runs = run_names(store, std::slice::from_ref(&model), viewer.as_ref());
        Ok(Json(registered_model_json(&model, &runs)))
    })
    .await
}
