// The query language's fuzz target: any text either parses or gets an
// error, and a parsed filter and sort run against a real store.
//
// Shared, by `include!`, by fuzz_targets/query_parser.rs (libFuzzer, `make
// fuzz`) and by crates/labbook-server/src/mlflow/filter.rs's tests (stable,
// `make test`), which run it on every seed and corpus input and on queries
// generated from the grammar; so it has no `//!` docs and names crates by
// their full paths. The input is `FILTER` or `FILTER\nSORT`.

use labbook_core::config::config_from_json;
use labbook_core::query::{parse_filter, parse_sort};
use labbook_store::{NewRun, RunQuery, SqliteStore, Store};

/// A store of three runs whose configs mix types under one key.
pub struct Fixture {
    store: SqliteStore,
    _dir: tempfile::TempDir,
}

impl Fixture {
    pub fn open() -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqliteStore::open(&dir.path().join(".labbook")).expect("a new store");
        let configs = [
            serde_json::json!({"lr": 0.01, "model": {"depth": 4}, "opt": "adam", "flag": true}),
            serde_json::json!({"lr": 1e-3, "tags": [1, "a"], "none": null}),
            serde_json::json!({"lr": "high", "seed": -3}),
        ];
        for (i, config) in configs.iter().enumerate() {
            store
                .create_run(&NewRun {
                    project: "fuzz".into(),
                    name: Some(format!("run-{i}")),
                    tags: vec!["baseline".into()],
                    config: config_from_json(config).expect("a valid config"),
                    created_ms: i as i64,
                    ..Default::default()
                })
                .expect("a run");
        }
        Fixture { store, _dir: dir }
    }
}

/// Whether the filter parsed, and how many runs the query listed.
pub fn check(fixture: &Fixture, data: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(data).ok()?;
    let (filter_src, sort_src) = text.split_once('\n').unwrap_or((text, ""));
    let filter = parse_filter(filter_src).ok();
    let sort = parse_sort(sort_src).unwrap_or_default();
    if filter.is_none() && sort.is_empty() {
        return None;
    }
    let parsed = filter.is_some();
    let query = RunQuery {
        filter,
        sort,
        ..Default::default()
    };
    let runs = fixture
        .store
        .list_runs(&query)
        .expect("a parsed query always runs");
    assert!(runs.len() <= 3);
    parsed.then_some(runs.len())
}
