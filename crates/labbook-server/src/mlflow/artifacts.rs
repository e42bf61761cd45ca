//! MLflow's artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/...`):
//! clients upload, list, download and delete files by path under the
//! server's artifact root, which is labbook's artifact store. Paths are
//! checked by `normalize_artifact_path`, so none can leave the root.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::TryStreamExt;
use serde_json::{Value, json};
use tokio_util::io::{StreamReader, SyncIoBridge};

use labbook_core::artifact::normalize_artifact_path;

use super::{MlResult, MlflowError, Req, blocking, store, wire};
use crate::AppState;
use crate::json::now_ms;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/artifacts", get(list))
        .route("/artifacts/", get(list))
        .route(
            "/artifacts/{*path}",
            get(download).put(upload).delete(delete),
        )
}

/// The store path an `mlflow-artifacts:` URI names (`None` for a URI this
/// server does not hold, such as a local path an experiment chose).
pub fn store_path_of(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("mlflow-artifacts:")?;
    // `mlflow-artifacts://host:port/path` names a server; the path is ours.
    let path = match rest.strip_prefix("//") {
        Some(with_host) => with_host.split_once('/').map_or("", |(_, p)| p),
        None => rest.trim_start_matches('/'),
    };
    Some(path.trim_end_matches('/').to_string())
}

fn checked(path: &str) -> MlResult<String> {
    normalize_artifact_path(path).map_err(|e| MlflowError::invalid(format!("Invalid path: {e}")))
}

async fn list(State(state): State<AppState>, req: Req) -> MlResult {
    let dir = checked(req.opt_str("path")?.unwrap_or(""))?;
    blocking(&state, move |state| {
        let files: Vec<Value> = store(state)
            .list_artifacts(&dir)?
            .into_iter()
            .map(|e| {
                let name = e.path.rsplit('/').next().unwrap_or(&e.path).to_string();
                let mut f = json!({ "path": name, "is_dir": e.is_dir });
                if !e.is_dir {
                    f["file_size"] = json!(e.size);
                }
                f
            })
            .collect();
        Ok(wire(json!({ "files": files })))
    })
    .await
}

async fn upload(State(state): State<AppState>, Path(path): Path<String>, body: Body) -> MlResult {
    let path = checked(&path)?;
    if path.is_empty() {
        return Err(MlflowError::invalid("Invalid path: names no file"));
    }
    let stream = body
        .into_data_stream()
        .map_err(|e| std::io::Error::other(e.to_string()));
    let mut reader = SyncIoBridge::new(StreamReader::new(stream));
    blocking(&state, move |state| {
        store(state).put_artifact(&path, &mut reader, now_ms())?;
        Ok(wire(json!({})))
    })
    .await
}

async fn download(State(state): State<AppState>, Path(path): Path<String>) -> MlResult<Response> {
    send_file(&state, checked(&path)?).await
}

/// Streams one stored file.
pub async fn send_file(state: &AppState, path: String) -> MlResult<Response> {
    let (mut reader, size) =
        blocking(state, move |state| Ok(store(state).open_artifact(&path)?)).await?;
    // Read on a blocking thread and hand chunks to the response as they come,
    // so a large model never sits in memory whole.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn delete(State(state): State<AppState>, Path(path): Path<String>) -> MlResult {
    let path = checked(&path)?;
    blocking(&state, move |state| {
        store(state).delete_artifacts(&path)?;
        Ok(wire(json!({})))
    })
    .await
}

use std::io::Read as _;
