// MLflow's REST API and labbook's own API through the real router: whatever
// a client sends, the answer is never a 5xx (clients retry those, so a 500
// turns bad input into a hang).
//
// The first byte picks an endpoint; the rest is the JSON body, or the query
// string of a GET. `RUN` and `EXP` in the input become the ids of a real run
// and experiment, so that requests reach past the id lookups.
//
// Shared, by `include!`, by fuzz_targets/mlflow_request.rs (libFuzzer, `make
// fuzz`) and by crates/labbook-server/src/mlflow/filter.rs's tests (stable,
// `make test`), which run it on every seed and corpus input and on bodies
// generated per endpoint; so it has no `//!` docs and names crates by their
// full paths. New endpoints go at the end: a seed's first byte is an index.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request};
use labbook_store::{SqliteStore, Store};

pub const ENDPOINTS: &[(Method, &str)] = &[
    (Method::POST, "/api/2.0/mlflow/experiments/create"),
    (Method::GET, "/api/2.0/mlflow/experiments/get"),
    (Method::GET, "/api/2.0/mlflow/experiments/get-by-name"),
    (Method::POST, "/api/2.0/mlflow/experiments/search"),
    (Method::POST, "/api/2.0/mlflow/experiments/update"),
    (
        Method::POST,
        "/api/2.0/mlflow/experiments/set-experiment-tag",
    ),
    (Method::POST, "/api/2.0/mlflow/runs/create"),
    (Method::GET, "/api/2.0/mlflow/runs/get"),
    (Method::POST, "/api/2.0/mlflow/runs/update"),
    (Method::POST, "/api/2.0/mlflow/runs/log-metric"),
    (Method::POST, "/api/2.0/mlflow/runs/log-parameter"),
    (Method::POST, "/api/2.0/mlflow/runs/log-batch"),
    (Method::POST, "/api/2.0/mlflow/runs/set-tag"),
    (Method::POST, "/api/2.0/mlflow/runs/delete-tag"),
    (Method::POST, "/api/2.0/mlflow/runs/search"),
    (Method::POST, "/api/2.0/mlflow/runs/log-inputs"),
    (Method::POST, "/api/2.0/mlflow/runs/outputs"),
    (Method::GET, "/api/2.0/mlflow/metrics/get-history"),
    (
        Method::GET,
        "/api/2.0/mlflow/metrics/get-history-bulk-interval",
    ),
    (Method::GET, "/api/2.0/mlflow/artifacts/list"),
    (Method::POST, "/api/2.0/mlflow/registered-models/create"),
    (Method::GET, "/api/2.0/mlflow/registered-models/search"),
    (Method::POST, "/api/2.0/mlflow/model-versions/create"),
    (Method::GET, "/api/2.0/mlflow/model-versions/search"),
    (Method::POST, "/api/2.0/mlflow/logged-models"),
    (Method::POST, "/api/2.0/mlflow/logged-models/search"),
    (Method::GET, "/api/2.0/mlflow-artifacts/artifacts"),
    // labbook's own write API, which the SDK's remote mode uses.
    (Method::POST, "/api/v1/runs"),
    (Method::POST, "/api/v1/runs/RUN/log"),
    // The dashboard's reads: the query language and the series budget.
    (Method::GET, "/api/v1/projects/fuzz/runs"),
    (Method::GET, "/api/v1/series"),
    (Method::GET, "/api/2.0/mlflow/registered-models/get"),
    (Method::POST, "/api/2.0/mlflow/registered-models/set-tag"),
    (Method::GET, "/api/2.0/mlflow/model-versions/get"),
    (
        Method::POST,
        "/api/2.0/mlflow/model-versions/transition-stage",
    ),
    (Method::POST, "/api/2.0/mlflow/registered-models/alias"),
    (Method::POST, "/api/2.0/mlflow/runs/log-model"),
];

/// A router over a fresh store holding one experiment (`EXP`) with one run
/// (`RUN`).
pub struct Server {
    runtime: tokio::runtime::Runtime,
    router: Router,
    pub run_id: String,
    pub experiment_id: String,
    _dir: tempfile::TempDir,
}

impl Server {
    pub fn open() -> Server {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join(".labbook")).expect("a new store"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let mut server = Server {
            runtime,
            router: labbook_server::router(store, &labbook_server::ServerOptions::default()),
            run_id: String::new(),
            experiment_id: String::new(),
            _dir: dir,
        };
        let id_of = |bytes: &[u8], pointer: &str| -> String {
            let json: serde_json::Value = serde_json::from_slice(bytes).expect("JSON");
            json.pointer(pointer)
                .and_then(|v| v.as_str())
                .expect("an id")
                .to_string()
        };
        let (_, body) = server.call(
            Method::POST,
            "/api/2.0/mlflow/experiments/create",
            br#"{"name":"fuzz"}"#.to_vec(),
        );
        server.experiment_id = id_of(&body, "/experiment_id");
        let create = format!(r#"{{"experiment_id":"{}"}}"#, server.experiment_id);
        let (_, body) = server.call(
            Method::POST,
            "/api/2.0/mlflow/runs/create",
            create.into_bytes(),
        );
        server.run_id = id_of(&body, "/run/info/run_id");
        server
    }

    /// One request as a local client sends it; the status and body.
    pub fn call(&self, method: Method, uri: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
        use tower_service::Service;
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .header("host", "localhost")
            .body(Body::from(body))
            .expect("a request from a valid uri");
        let mut router = self.router.clone();
        self.runtime.block_on(async move {
            std::future::poll_fn(|cx| Service::<Request<Body>>::poll_ready(&mut router, cx))
                .await
                .expect("the router is infallible");
            let response = router
                .call(request)
                .await
                .expect("the router is infallible");
            let status = response.status().as_u16();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("a response body");
            (status, bytes.to_vec())
        })
    }
}

/// Sends `data` as a request; the endpoint's index and the answer's status
/// (`None`: no request could carry it).
pub fn check(server: &Server, data: &[u8]) -> Option<(usize, u16)> {
    let (&pick, rest) = data.split_first()?;
    let endpoint = pick as usize % ENDPOINTS.len();
    let (method, path) = &ENDPOINTS[endpoint];
    let path = &path.replace("RUN", &server.run_id);
    let text = String::from_utf8_lossy(rest)
        .replace("RUN", &server.run_id)
        .replace("EXP", &server.experiment_id);
    let (uri, body) = if *method == Method::GET {
        let query: String = text
            .bytes()
            .map(|b| match b {
                // Keep the query string a valid URI; `%` escapes still reach the decoder.
                b'a'..=b'z'
                | b'A'..=b'Z'
                | b'0'..=b'9'
                | b'='
                | b'&'
                | b'%'
                | b'_'
                | b'-'
                | b'.' => (b as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect();
        let uri = format!("{path}?{query}");
        // A URI over http's 64 KiB is refused by the HTTP layer (414) before
        // any router sees it.
        if uri.parse::<axum::http::Uri>().is_err() {
            return None;
        }
        (uri, Vec::new())
    } else {
        (path.to_string(), text.into_bytes())
    };
    let (status, body) = server.call(method.clone(), &uri, body);
    assert!(
        status < 500,
        "{method} {uri} answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Some((endpoint, status))
}
