use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use labbook_core::query::QueryError;
use labbook_store::StoreError;

/// The most a JSON request body may hold; artifact uploads stream and are
/// not bound by it. MLflow's largest legal request, a full log-batch with
/// 100 params and 100 tags at their length limits, is about 1.5 MB.
pub const BODY_LIMIT: usize = 4 << 20;

/// Says why a request body could not be read: almost always its size.
pub fn body_rejection(e: &axum::extract::rejection::BytesRejection) -> String {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "the request body is over the {} MiB limit",
            BODY_LIMIT >> 20
        )
    } else {
        format!("cannot read the request body: {e}")
    }
}

/// An error as the API reports it: a status and `{"error": {...}}`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub column: Option<usize>,
}

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_ARGUMENT",
            message: message.into(),
            field: Some(field.to_string()),
            column: None,
        }
    }

    pub fn query(field: &str, e: QueryError) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_QUERY",
            column: Some(e.column),
            message: e.to_string(),
            field: Some(field.to_string()),
        }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "INTERNAL",
            message: message.into(),
            field: None,
            column: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound { .. } => ApiError {
                status: StatusCode::NOT_FOUND,
                code: "NOT_FOUND",
                message: e.to_string(),
                field: None,
                column: None,
            },
            StoreError::Invalid(v) => ApiError::invalid(v.field(), v.to_string()),
            StoreError::Query(q) => ApiError::query("filter", q),
            StoreError::Ambiguous { .. } | StoreError::Conflict(_) => ApiError {
                status: StatusCode::CONFLICT,
                code: "CONFLICT",
                message: e.to_string(),
                field: None,
                column: None,
            },
            StoreError::ReadOnly(_) => ApiError {
                status: StatusCode::FORBIDDEN,
                code: "READ_ONLY_STORE",
                message: e.to_string(),
                field: None,
                column: None,
            },
            // The client may retry: nothing was changed.
            StoreError::Unavailable(_) => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "UNAVAILABLE",
                message: e.to_string(),
                field: None,
                column: None,
            },
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(field) = self.field {
            error["field"] = json!(field);
        }
        if let Some(column) = self.column {
            error["column"] = json!(column);
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}
