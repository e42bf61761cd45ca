//! The server: the router, the listener and its background work.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tower_http::compression::CompressionLayer;

use labbook_store::Store;

pub use crate::error::ApiError;
use crate::{api, assets, error, json, mlflow};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Commits MLflow clients' metrics as each request arrives.
    pub appender: Arc<labbook_store::appender::Appender>,
}

/// The whole app: the API under `/api/v1`, `/health`, and the dashboard.
pub fn router(store: Arc<dyn Store>) -> Router {
    let state = AppState {
        appender: Arc::new(labbook_store::appender::Appender::new(store.clone())),
        store,
    };
    Router::new()
        .nest("/api/v1", api::routes())
        .route("/health", axum::routing::get(|| async { "ok" }))
        .merge(assets::routes())
        // The fastest level: on a laptop or a LAN the wire is rarely the
        // bottleneck, and the default level spent ~0.4 s on a 12 MB chart.
        .layer(CompressionLayer::new().quality(tower_http::CompressionLevel::Fastest))
        // MLflow's API stays uncompressed: its clients are scripts on the
        // same machine or network, where a log call's latency is the cost
        // that matters, and artifacts are streamed with their length.
        .merge(mlflow::routes())
        .layer(axum::extract::DefaultBodyLimit::max(error::BODY_LIMIT))
        .with_state(state)
}

/// Serves until the process gets Ctrl-C or SIGTERM. `ready` is called once
/// the socket listens, with the address it is bound to.
pub async fn serve(
    store: Arc<dyn Store>,
    addr: SocketAddr,
    ready: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    ready(listener.local_addr()?);
    tokio::spawn(reap_forever(store.clone()));
    // Small request/response pairs (a logged metric) would otherwise wait on
    // Nagle's algorithm against the client's delayed ACK: ~40 ms each.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(store))
        .with_graceful_shutdown(shutdown_signal())
        .await
}

/// Marks runs whose process died as crashed while the dashboard is open,
/// so a killed run never shows as running.
async fn reap_forever(store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tick.tick().await;
        let store = store.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let host = labbook_capture::hostname();
            store.reap_stale_runs(json_now(), host.as_deref(), &labbook_capture::pid_alive)
        })
        .await;
    }
}

fn json_now() -> i64 {
    json::now_ms()
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Whether the dashboard's assets were built into this binary.
pub fn has_dashboard() -> bool {
    assets::has_dashboard()
}
