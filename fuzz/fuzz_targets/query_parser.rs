//! The query language: any text either parses or gets an error, and a parsed
//! filter and sort evaluate against stored runs without panicking.
#![no_main]

use std::sync::{Arc, OnceLock};

use labbook_core::config::config_from_json;
use labbook_core::query::{parse_filter, parse_sort};
use labbook_store::{NewRun, RunQuery, SqliteStore, Store};
use libfuzzer_sys::fuzz_target;

fn store() -> &'static (tempfile::TempDir, Arc<SqliteStore>) {
    static STORE: OnceLock<(tempfile::TempDir, Arc<SqliteStore>)> = OnceLock::new();
    STORE.get_or_init(|| {
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
        (dir, Arc::new(store))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (filter_src, sort_src) = text.split_once('\n').unwrap_or((text, ""));
    let filter = parse_filter(filter_src).ok();
    let sort = parse_sort(sort_src).unwrap_or_default();
    if filter.is_none() && sort.is_empty() {
        return;
    }
    let query = RunQuery {
        filter,
        sort,
        ..Default::default()
    };
    let runs = store()
        .1
        .list_runs(&query)
        .expect("a parsed query always runs");
    assert!(runs.len() <= 3);
});
