//! The dashboard, embedded at build time from `web/dist`. Any path that is
//! not an asset gets `index.html`, so the dashboard's own router handles
//! deep links such as `/p/mnist/run/abc`.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

use crate::AppState;

#[derive(Embed)]
#[folder = "../../web/dist"]
struct Dist;

pub fn has_dashboard() -> bool {
    Dist::get("index.html").is_some()
}

pub fn routes() -> Router<AppState> {
    Router::new().fallback(serve_asset)
}

async fn serve_asset(method: Method, uri: Uri) -> Response {
    let surface = crate::guard::Surface::of(uri.path());
    if surface != crate::guard::Surface::Dashboard {
        let message = format!("no API endpoint {} {}", method, uri.path());
        return match surface {
            crate::guard::Surface::Labbook => crate::ApiError {
                status: StatusCode::NOT_FOUND,
                code: "NOT_FOUND",
                message,
                field: None,
                column: None,
            }
            .into_response(),
            _ => crate::mlflow::MlflowError {
                status: StatusCode::NOT_FOUND,
                code: "ENDPOINT_NOT_FOUND",
                message,
            }
            .into_response(),
        };
    }
    if method != Method::GET && method != Method::HEAD {
        return crate::guard::page_method_not_allowed(&method);
    }
    let path = uri.path().trim_start_matches('/');
    if let Some(file) = Dist::get(path).filter(|_| !path.is_empty()) {
        let mime = file.metadata.mimetype();
        // Vite fingerprints everything under assets/: it can be cached forever.
        let cache = if path.starts_with("assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        return Response::builder()
            .header(header::CONTENT_TYPE, mime)
            .header(header::CACHE_CONTROL, cache)
            .body(Body::from(file.data.into_owned()))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    match Dist::get("index.html") {
        Some(index) => Response::builder()
            .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Body::from(index.data.into_owned()))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "This labbook binary was built without the dashboard's assets.\n\
             Build them with `make build` (it runs `npm ci && npm run build` in web/ before cargo).\n\
             The JSON API is available under /api/v1.\n",
        )
            .into_response(),
    }
}
