//! The dashboard's server-side targets, over real HTTP on loopback:
//! the first page of 10,000 runs (20 config keys, 10 metrics) sorted by a
//! metric, the downsampled chart response for 100 runs × 100k steps, the
//! first page of a 5,000-run nested GridSearch-style project, and the
//! preview of a 100 MB CSV artifact. Prints JSON lines for bench/report.py.

#![allow(clippy::unwrap_used)] // a benchmark that cannot set up should stop

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use labbook_core::config::config_from_json;
use labbook_core::{Point, SeriesColumns};
use labbook_store::series::SeriesWriter;
use labbook_store::{NewRun, SqliteStore, Store, WriteSet};

fn get(addr: SocketAddr, path: &str) -> (u16, usize) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        // The request guard answers only hosts that cannot be rebound.
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let head = String::from_utf8_lossy(&response[..response.len().min(64)]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response.len())
}

/// One request on a fresh connection: the status and the body.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    assert!(!head.to_ascii_lowercase().contains("chunked"), "{head}");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response[split + 4..].to_vec())
}

fn post_json(addr: SocketAddr, path: &str, body: serde_json::Value) -> serde_json::Value {
    let (status, body) = send(
        addr,
        "POST",
        path,
        "application/json",
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// 50 GridSearch parents, each with 99 children (mlflow.parentRunId), the
/// children's CV scores logged once, as `mlflow.sklearn.autolog()` does.
fn seed_nested(store: &SqliteStore) {
    for p in 0..50i64 {
        let parent = store
            .create_run(&NewRun {
                project: "grid".into(),
                name: Some(format!("GridSearchCV-{p}")),
                config: config_from_json(
                    &serde_json::json!({"cv": 5, "estimator": "SVC", "n_jobs": 1}),
                )
                .unwrap(),
                created_ms: 1_700_000_000_000 + p * 1000,
                ..Default::default()
            })
            .unwrap();
        let best = (0..1)
            .map(|_| {
                let mut s = SeriesColumns::default();
                s.push(Point {
                    step: 0,
                    ts_ms: 0,
                    value: 0.9 + (p % 7) as f64 / 100.0,
                });
                ("best_cv_score".to_string(), s)
            })
            .collect();
        commit(store, &parent.id, best);
        for c in 0..99i64 {
            let child = store
                .create_run(&NewRun {
                    project: "grid".into(),
                    config: config_from_json(&serde_json::json!({
                        "C": ([0.01, 0.1, 1.0, 10.0, 100.0][(c % 5) as usize]),
                        "gamma": ([1e-4, 1e-3, 1e-2][(c / 5 % 3) as usize]),
                        "kernel": (["rbf", "linear", "poly"][(c / 15 % 3) as usize]),
                        "degree": 2 + c / 45,
                        "cv": 5,
                    }))
                    .unwrap(),
                    created_ms: 1_700_000_000_000 + p * 1000 + c + 1,
                    ..Default::default()
                })
                .unwrap();
            store
                .update_run(
                    &child.id,
                    &labbook_store::RunPatch {
                        set_kv_tags: [("mlflow.parentRunId".to_string(), parent.id.clone())].into(),
                        ..Default::default()
                    },
                )
                .unwrap();
            let metrics = ["mean_test_score", "std_test_score", "mean_fit_time"]
                .iter()
                .enumerate()
                .map(|(m, key)| {
                    let mut s = SeriesColumns::default();
                    s.push(Point {
                        step: 0,
                        ts_ms: 0,
                        value: ((p * 31 + c * 17 + m as i64 * 7) % 1000) as f64 / 1000.0,
                    });
                    (key.to_string(), s)
                })
                .collect();
            commit(store, &child.id, metrics);
        }
    }
}

fn commit(store: &SqliteStore, run: &str, series: Vec<(String, SeriesColumns)>) {
    let plan = SeriesWriter::new().plan(series, true).unwrap();
    store
        .commit(&WriteSet {
            run_id: run.into(),
            series: plan,
            ..Default::default()
        })
        .unwrap();
}

fn median_ms(mut f: impl FnMut(), reps: usize) -> (f64, f64, f64) {
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[0], times[times.len() - 1])
}

/// A GET's median time over `reps` requests, each answered 200.
fn report_get(addr: SocketAddr, name: &str, path: &str, reps: usize) {
    report(name, median_ms(|| assert_eq!(get(addr, path).0, 200), reps));
}

fn report(name: &str, (median, min, max): (f64, f64, f64)) {
    println!(
        r#"{{"figure": "{name}", "unit": "ms", "median": {median}, "min": {min}, "max": {max}}}"#
    );
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&tmp.path().join(".labbook")).unwrap());

    for i in 0..10_000i64 {
        let mut config = serde_json::Map::new();
        for k in 0..20 {
            config.insert(
                format!("param_{k}"),
                serde_json::json!(((i * 31 + k * 7) % 97) as f64 / 10.0),
            );
        }
        let new = NewRun {
            project: "big".into(),
            config: config_from_json(&serde_json::Value::Object(config)).unwrap(),
            created_ms: 1_700_000_000_000 + i,
            ..Default::default()
        };
        let run = store.create_run(&new).unwrap();
        let metrics = (0..10)
            .map(|m| {
                let mut s = SeriesColumns::default();
                s.push(Point {
                    step: 0,
                    ts_ms: 0,
                    value: ((i * 17 + m * 13) % 1000) as f64 / 1000.0,
                });
                (format!("metric_{m}"), s)
            })
            .collect();
        commit(&store, &run.id, metrics);
    }
    seed_nested(&store);
    let mut curve_runs = Vec::new();
    for r in 0..100 {
        let run = store
            .create_run(&NewRun {
                project: "curves".into(),
                created_ms: r,
                ..Default::default()
            })
            .unwrap();
        let mut s = SeriesColumns::with_capacity(100_000);
        for step in 0..100_000i64 {
            let noise = ((step * 7919 + r * 104_729) % 1000) as f64 / 1e4;
            s.push(Point {
                step,
                ts_ms: 1_700_000_000_000 + step * 50,
                value: (-(step as f64) / 30_000.0).exp() + noise,
            });
        }
        commit(&store, &run.id, vec![("loss".into(), s)]);
        curve_runs.push(run.id);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let dyn_store: Arc<dyn Store> = store.clone();
    let server = runtime.spawn(async move {
        let _ = labbook_server::serve(
            dyn_store,
            "127.0.0.1:0".parse().unwrap(),
            labbook_server::ServerOptions::default(),
            move |addr| {
                let _ = tx.send(addr);
            },
        )
        .await;
    });
    let addr = rx.recv().unwrap();

    let page = "/api/v1/projects/big/runs?sort=-metrics.metric_3&limit=100";
    assert_eq!(get(addr, page).0, 200);
    report_get(addr, "api_runs_page_10k", page, 31);

    let filtered = "/api/v1/projects/big/runs?filter=config.param_3%20%3E%205%20and%20metrics.metric_1%20%3C%200.5&sort=-metrics.metric_3&limit=100";
    report_get(addr, "api_runs_filtered_10k", filtered, 31);

    let series = format!(
        "/api/v1/series?runs={}&keys=loss&buckets=1000&ts=0",
        curve_runs.join(",")
    );
    let (status, bytes) = get(addr, &series);
    assert_eq!(status, 200);
    eprintln!("series response: {bytes} bytes for 100 runs");
    report_get(addr, "api_series_100x100k", &series, 11);
    // What the dashboard asks for: binary columns.
    let columns = format!("{series}&format=columns");
    report_get(addr, "api_series_columns_100x100k", &columns, 11);
    // What the chart page asks for 100 runs in a 1440 px window (bucketsFor
    // in web/src/chartdata.ts): few enough buckets that sketches answer.
    let dashboard = format!(
        "/api/v1/series?runs={}&keys=loss&buckets=375&ts=0&format=columns",
        curve_runs.join(",")
    );
    report_get(addr, "api_series_dashboard_100x100k", &dashboard, 11);

    // What a tree is built from: every run of the project.
    let whole = "/api/v1/projects/grid/runs?limit=10000";
    report_get(addr, "api_runs_all_nested_5k", whole, 11);
    let shape = "/api/v1/projects/grid/runs?limit=10000&fields=id,parent";
    report_get(addr, "api_runs_tree_nested_5k", shape, 11);
    let nested = "/api/v1/projects/grid/runs?limit=100";
    assert_eq!(get(addr, nested).0, 200);
    report_get(addr, "api_runs_page_nested_5k", nested, 31);

    // A 100 MB CSV, uploaded as the mlflow client does.
    let experiment = post_json(
        addr,
        "/api/2.0/mlflow/experiments/create",
        serde_json::json!({"name": "tables"}),
    );
    let experiment = experiment["experiment_id"].as_str().unwrap().to_string();
    let created = post_json(
        addr,
        "/api/2.0/mlflow/runs/create",
        serde_json::json!({"experiment_id": experiment}),
    );
    let table_run = created["run"]["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut csv = String::from("epoch,split,loss,accuracy,learning_rate,notes\n");
    let mut row = 0u64;
    while csv.len() < 100 << 20 {
        csv.push_str(&format!(
            "{},{},{:.6},{:.6},{:e},row {row} of a long table\n",
            row / 1000,
            ["train", "val"][(row % 2) as usize],
            1.0 / (row + 1) as f64,
            (row % 1000) as f64 / 1000.0,
            1e-3 / (1 + row / 10_000) as f64
        ));
        row += 1;
    }
    let put = format!(
        "/api/2.0/mlflow-artifacts/artifacts/{experiment}/{table_run}/artifacts/tables/metrics.csv"
    );
    let (status, body) = send(addr, "PUT", &put, "text/csv", csv.as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let preview = format!("/api/v1/runs/{table_run}/artifacts/preview?path=tables/metrics.csv");
    assert_eq!(get(addr, &preview).0, 200);
    report_get(addr, "api_preview_csv_100mb", &preview, 11);

    // The browser figures need Node, Playwright (web/node_modules) and
    // Chromium; `make bench` asks for them.
    if std::env::var_os("LABBOOK_BENCH_BROWSER").is_some() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/ui_browser.mjs");
        let status = std::process::Command::new("node")
            .arg(script)
            .arg(format!("http://{addr}"))
            .arg(curve_runs.join(","))
            .arg(&table_run)
            .status();
        if !status.as_ref().is_ok_and(|s| s.success()) {
            eprintln!("the browser benchmark failed: {status:?}");
        }
    }
    // LABBOOK_BENCH_HOLD: keep the seeded server up, to trace or profile a
    // page against it (bench/ui_browser.mjs takes these three arguments).
    if std::env::var_os("LABBOOK_BENCH_HOLD").is_some() {
        eprintln!(
            "holding: node bench/ui_browser.mjs http://{addr} {} {table_run}",
            curve_runs.join(",")
        );
        // Until the server stops (it shuts down on SIGINT and SIGTERM).
        let _ = runtime.block_on(server);
    }
}
