//! The server: the router, the listener and its background work.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};

use labbook_store::Store;

pub use crate::error::ApiError;
pub use crate::guard::{DASHBOARD_CSP, GuardOptions};
pub use crate::listen::{HEAD_TIMEOUT, IDLE_TIMEOUT};
use crate::{access, api, assets, error, guard, json, listen, mlflow};

/// How a server bounds and guards what clients may do. The defaults suit
/// one person's machine: loopback names only, no CORS, no password.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub guard: GuardOptions,
    /// The largest artifact upload taken, in bytes.
    pub max_upload_bytes: u64,
    /// Uploads are refused (507) rather than leave less than this free on
    /// the artifacts' filesystem.
    pub min_free_bytes: u64,
    /// Connections open at once; more wait until one closes.
    pub max_connections: usize,
    /// Live event streams (`/api/v1/events`) one client address may hold.
    pub max_event_streams_per_client: usize,
    /// Time allowed for a request's head, from the connection's start or the
    /// previous response (so also how long an idle keep-alive lasts).
    pub head_timeout: std::time::Duration,
    /// Time a connection may go without a byte moving either way.
    pub idle_timeout: std::time::Duration,
    /// Tests only ([`crate::TEST_HOLD_ENV`]): a log request carrying a metric
    /// of this key is committed and never answered.
    pub hold_after_commit: Option<String>,
    /// Every request but `/health` must name an account of the store
    /// (`crate::auth`), and may do what its roles allow (`crate::access`).
    pub auth: bool,
    /// With `auth`: the role of a user on a project or registered model
    /// no one gave them one on (MLflow's `default_permission`).
    pub default_role: labbook_core::account::Role,
}

/// 5 GiB: more than the checkpoints and models people log through the
/// MLflow client, and a bound on what one request can make the disk take.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 5 << 30;
/// 1 GiB kept free for the database, its log and everything else.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 1 << 30;

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            guard: GuardOptions::default(),
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
            max_connections: 1024,
            max_event_streams_per_client: 16,
            head_timeout: listen::HEAD_TIMEOUT,
            idle_timeout: listen::IDLE_TIMEOUT,
            hold_after_commit: None,
            auth: false,
            default_role: labbook_core::account::Role::Read,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Commits MLflow clients' metrics as each request arrives.
    pub appender: Arc<labbook_store::appender::Appender>,
    pub limits: Arc<Limits>,
    /// The test hook's metric key, when armed (see `test_hook`).
    pub hold_after_commit: Option<Arc<str>>,
    /// Sweeps' finished trials' curves, read once for early termination.
    pub sweep_curves: crate::studies::SweepCurves,
    /// With `--auth`: the accounts, for the dashboard's sign-in.
    pub(crate) accounts: Option<Arc<crate::auth::Accounts>>,
}

/// The per-request bounds handlers enforce.
pub struct Limits {
    pub max_upload_bytes: u64,
    pub min_free_bytes: u64,
    pub event_streams: crate::events::StreamCounter,
}

/// The whole app: the API under `/api/v1`, `/health`, MLflow's API and the
/// dashboard, every route behind the request guard.
pub fn router(store: Arc<dyn Store>, options: &ServerOptions) -> Router {
    let accounts = options
        .auth
        .then(|| Arc::new(crate::auth::Accounts::new(store.clone())));
    let state = AppState {
        accounts: accounts.clone(),
        appender: Arc::new(labbook_store::appender::Appender::new(store.clone())),
        store,
        limits: Arc::new(Limits {
            max_upload_bytes: options.max_upload_bytes,
            min_free_bytes: options.min_free_bytes,
            event_streams: crate::events::StreamCounter::new(options.max_event_streams_per_client),
        }),
        hold_after_commit: options.hold_after_commit.as_deref().map(Arc::from),
        sweep_curves: Default::default(),
    };
    let guard = Arc::new(guard::Guard::new(options.guard.clone(), accounts));
    // With --auth, each API's routes are checked against the caller's roles.
    let access = options.auth.then(|| {
        Arc::new(access::Access::new(
            state.store.clone(),
            options.default_role,
        ))
    });
    Router::new()
        .nest("/api/v1", with_access(api::routes(), access.as_ref()))
        .route("/health", axum::routing::get(|| async { "ok" }))
        .merge(assets::routes())
        // The fastest level: on a laptop or a LAN the wire is rarely the
        // bottleneck, and the default level spent ~0.4 s on a 12 MB chart.
        .layer(
            CompressionLayer::new()
                .quality(tower_http::CompressionLevel::Fastest)
                .compress_when(
                    DefaultPredicate::new()
                        .and(NotForContentType::const_new(api::SERIES_COLUMNS_TYPE)),
                ),
        )
        // MLflow's API stays uncompressed: its clients are scripts on the
        // same machine or network, where a log call's latency is the cost
        // that matters, and artifacts are streamed with their length.
        .merge(with_access(mlflow::routes(), access.as_ref()))
        .layer(axum::extract::DefaultBodyLimit::max(error::BODY_LIMIT))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(guard, guard::guard))
}

/// The access check on every route of `routes`: inside each API's router,
/// so it sees the route matched, and a listing's answer before it is
/// compressed.
fn with_access(routes: Router<AppState>, access: Option<&Arc<access::Access>>) -> Router<AppState> {
    match access {
        Some(access) => routes.route_layer(axum::middleware::from_fn_with_state(
            access.clone(),
            access::check,
        )),
        None => routes,
    }
}

/// Serves until the process gets Ctrl-C or SIGTERM. `ready` is called once
/// the socket listens, with the address it is bound to.
pub async fn serve(
    store: Arc<dyn Store>,
    addr: SocketAddr,
    options: ServerOptions,
    ready: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let open_files = listen::raise_open_files_limit();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    ready(listener.local_addr()?);
    tokio::spawn(reap_forever(store.clone()));
    // Keep descriptors for the store, its artifacts and the blocking pool.
    let max_connections = match open_files {
        Some(limit) => options
            .max_connections
            .min(limit.saturating_sub(64).max(16) as usize),
        None => options.max_connections,
    };
    let app = router(store, &options);
    let bounds = listen::Bounds {
        max_connections,
        head_timeout: options.head_timeout,
        idle_timeout: options.idle_timeout,
    };
    listen::serve_connections(listener, app, bounds, shutdown_signal()).await
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
