//! MLflow's artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/...`):
//! clients upload, list, download and delete files by path under the
//! server's artifact root, which is labbook's artifact store. Paths are
//! checked by `normalize_artifact_path`, so none can leave the root.

use std::io::Read;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::TryStreamExt;
use serde_json::{Value, json};
use tokio_util::io::{StreamReader, SyncIoBridge};

use labbook_core::artifact::normalize_artifact_path;
use labbook_store::StoreError;

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
    crate::layout::store_path_of(uri)
}

/// The entries of folder `rel` under `base` (a run's or a logged model's
/// artifact root in the store), their paths relative to `base`.
pub fn listing(
    s: &dyn labbook_store::Store,
    base: &str,
    rel: &str,
) -> labbook_store::Result<Vec<labbook_store::ArtifactEntry>> {
    let dir = if rel.is_empty() {
        base.to_string()
    } else {
        format!("{base}/{rel}")
    };
    let prefix = format!("{base}/");
    Ok(s.list_artifacts(&dir)?
        .into_iter()
        .map(|mut e| {
            if let Some(inside) = e.path.strip_prefix(&prefix) {
                e.path = inside.to_string();
            }
            e
        })
        .collect())
}

/// [`listing`] as MLflow's `FileInfo`s: `path`, `is_dir`, and a file's
/// `file_size`.
pub fn file_infos(s: &dyn labbook_store::Store, base: &str, rel: &str) -> MlResult<Vec<Value>> {
    Ok(listing(s, base, rel)?
        .into_iter()
        .map(|e| {
            let mut f = json!({ "path": e.path, "is_dir": e.is_dir });
            if !e.is_dir {
                f["file_size"] = json!(e.size);
            }
            f
        })
        .collect())
}

fn checked(path: &str) -> MlResult<String> {
    // MLflow's exact words: clients and MLflow's own tests compare them.
    normalize_artifact_path(path).map_err(|_| MlflowError::invalid("Invalid path"))
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

async fn upload(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> MlResult {
    let path = checked(&path)?;
    if path.is_empty() {
        return Err(MlflowError::invalid("Invalid path: names no file"));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let budget = UploadBudget {
        max_bytes: state.limits.max_upload_bytes,
        min_free_bytes: state.limits.min_free_bytes,
        store: state.store.clone(),
    };
    // Refuse before reading a byte when the length says it cannot fit.
    if let Some(length) = declared {
        budget
            .check(length, length)
            .map_err(UploadRefused::into_error)?;
    }
    let stream = body
        .into_data_stream()
        .map_err(|e| std::io::Error::other(e.to_string()));
    let mut reader = BudgetedReader {
        inner: SyncIoBridge::new(StreamReader::new(stream)),
        budget,
        read: 0,
        next_check: 0,
        expected: declared.unwrap_or(0),
    };
    blocking(&state, move |state| {
        match store(state).put_artifact(&path, &mut reader, now_ms()) {
            Ok(_) => Ok(wire(json!({}))),
            Err(StoreError::Io { source, .. })
                if source.get_ref().is_some_and(|e| e.is::<UploadRefused>()) =>
            {
                match source.into_inner().map(|e| e.downcast::<UploadRefused>()) {
                    Some(Ok(refused)) => Err(refused.into_error()),
                    _ => Err(MlflowError::invalid("the upload was refused")),
                }
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// Why an upload stopped: it grew past the size limit, or the disk would
/// keep less than its reserve. Nothing of it is stored.
#[derive(Debug)]
enum UploadRefused {
    TooLarge { max: u64 },
    NoSpace { free: u64, reserve: u64 },
}

impl std::fmt::Display for UploadRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UploadRefused::TooLarge { max } => write!(
                f,
                "the upload is over the {} limit (labbook serve --max-upload-size)",
                human_bytes(*max)
            ),
            UploadRefused::NoSpace { free, reserve } => write!(
                f,
                "not enough free disk space: {} free, and {} is kept in reserve \
                 (labbook serve --min-free-space)",
                human_bytes(*free),
                human_bytes(*reserve)
            ),
        }
    }
}

impl std::error::Error for UploadRefused {}

impl UploadRefused {
    fn into_error(self) -> MlflowError {
        let status = match self {
            UploadRefused::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UploadRefused::NoSpace { .. } => StatusCode::INSUFFICIENT_STORAGE,
        };
        let code = match self {
            UploadRefused::TooLarge { .. } => "REQUEST_LIMIT_EXCEEDED",
            UploadRefused::NoSpace { .. } => "RESOURCE_EXHAUSTED",
        };
        MlflowError {
            status,
            code,
            message: self.to_string(),
        }
    }
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n => format!("{n} bytes"),
    }
}

/// The limits an upload is held to while it streams in.
struct UploadBudget {
    max_bytes: u64,
    min_free_bytes: u64,
    store: std::sync::Arc<dyn labbook_store::Store>,
}

/// Free space is asked again after this many bytes.
const SPACE_CHECK_EVERY: u64 = 64 << 20;

impl UploadBudget {
    /// Whether `total` bytes fit the size limit, and `coming` more bytes
    /// leave the reserve free.
    fn check(&self, total: u64, coming: u64) -> Result<(), UploadRefused> {
        if total > self.max_bytes {
            return Err(UploadRefused::TooLarge {
                max: self.max_bytes,
            });
        }
        if let Some(free) = self.store.artifact_space_available()
            && free < coming.saturating_add(self.min_free_bytes)
        {
            return Err(UploadRefused::NoSpace {
                free,
                reserve: self.min_free_bytes,
            });
        }
        Ok(())
    }
}

/// An upload's body, failing with [`UploadRefused`] once it breaks its
/// budget, so the store discards the partial file.
struct BudgetedReader<R> {
    inner: R,
    budget: UploadBudget,
    read: u64,
    next_check: u64,
    /// The declared length, already checked against the free space.
    expected: u64,
}

impl<R: Read> Read for BudgetedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.budget.max_bytes
            || (self.read >= self.next_check && self.read > self.expected)
        {
            self.next_check = self.read + SPACE_CHECK_EVERY;
            // Past the declared length (or with none), the rest of the body
            // is unknown: ask for room for the next stretch.
            self.budget
                .check(self.read, SPACE_CHECK_EVERY)
                .map_err(std::io::Error::other)?;
        }
        Ok(n)
    }
}

async fn download(State(state): State<AppState>, Path(path): Path<String>) -> MlResult<Response> {
    send_file(&state, checked(&path)?).await
}

/// Streams one stored file.
/// The media type MLflow's server sends for an artifact: plain text for the
/// text formats its UI previews (and `MLmodel`, and `mlproject` in lower
/// case only, as MLflow lists it), else by extension.
pub fn media_type(name: &str) -> String {
    const TEXT: [&str; 26] = [
        "txt",
        "log",
        "err",
        "cfg",
        "conf",
        "cnf",
        "cf",
        "ini",
        "properties",
        "prop",
        "hocon",
        "toml",
        "yaml",
        "yml",
        "xml",
        "json",
        "js",
        "py",
        "py3",
        "csv",
        "tsv",
        "md",
        "rst",
        "ipynb",
        "MLmodel",
        "mlproject",
    ];
    let extension = match name.rsplit_once('.') {
        Some((_, ext)) if !ext.is_empty() => ext,
        _ => name,
    };
    if TEXT.contains(&extension) {
        return "text/plain".into();
    }
    mime_guess::from_path(name).first().map_or_else(
        || "application/octet-stream".into(),
        |m| m.essence_str().to_string(),
    )
}

/// `attachment; filename=…` (RFC 6266; RFC 5987's `filename*` for names
/// beyond ASCII), so a browser saves an artifact instead of rendering it
/// on the server's origin.
pub fn attachment(name: &str) -> String {
    const TOKEN: &str = "!#$%&'*+-.^_`|~";
    let quoted = |text: &str| {
        if !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || TOKEN.contains(c))
        {
            text.to_string()
        } else {
            format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
        }
    };
    if name.is_ascii() && !name.chars().any(|c| c.is_ascii_control()) {
        return format!("attachment; filename={}", quoted(name));
    }
    let fallback: String = name
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .collect();
    let fallback = if fallback.is_empty() {
        "download".to_string()
    } else {
        fallback
    };
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'!')
        .remove(b'#')
        .remove(b'$')
        .remove(b'&')
        .remove(b'+')
        .remove(b'-')
        .remove(b'.')
        .remove(b'^')
        .remove(b'_')
        .remove(b'`')
        .remove(b'|')
        .remove(b'~');
    format!(
        "attachment; filename={}; filename*=UTF-8''{}",
        quoted(&fallback),
        percent_encoding::utf8_percent_encode(name, KEEP)
    )
}

pub async fn send_file(state: &AppState, path: String) -> MlResult<Response> {
    let name = path.rsplit('/').next().unwrap_or(&path).to_string();
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
    // Fused: a compression layer polls the body once more after its end,
    // which an unfused `unfold` answers with a panic.
    let stream =
        futures_util::StreamExt::fuse(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        }));
    Ok((
        [
            (header::CONTENT_TYPE, media_type(&name)),
            (header::CONTENT_LENGTH, size.to_string()),
            (header::CONTENT_DISPOSITION, attachment(&name)),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn delete(State(state): State<AppState>, Path(path): Path<String>) -> MlResult {
    let path = checked(&path)?;
    if path.is_empty() {
        return Err(MlflowError::invalid(
            "Invalid path: the artifact root cannot be deleted; name a file or a folder",
        ));
    }
    blocking(&state, move |state| {
        store(state).delete_artifacts(&path)?;
        Ok(wire(json!({})))
    })
    .await
}
