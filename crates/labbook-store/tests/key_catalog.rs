//! The key catalog the SQLite store keeps by triggers always equals the
//! keys computed from the runs, whatever sequence of writes came before:
//! new runs, points, config and summary changes, deletes, restores, purges
//! and whole projects deleted and restored.
#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use std::collections::BTreeMap;

use labbook_core::config::config_from_json;
use labbook_core::{Point, SeriesColumns};
use labbook_store::series::SeriesWriter;
use labbook_store::*;
use proptest::prelude::*;
use serde_json::{Value, json};

const PROJECTS: [&str; 2] = ["p", "q"];
const CONFIG_KEYS: [&str; 4] = ["lr", "opt", "x.y", "odd \"key\""];
const METRIC_KEYS: [&str; 3] = ["acc", "loss", "val acc"];
const SUMMARY_KEYS: [&str; 2] = ["best", "acc"];

#[derive(Debug, Clone)]
enum Op {
    Create {
        project: usize,
        config: Vec<(usize, Value)>,
    },
    Log {
        run: usize,
        key: usize,
    },
    Config {
        run: usize,
        key: usize,
        value: Value,
    },
    Summary {
        run: usize,
        key: usize,
        value: Value,
    },
    Delete {
        run: usize,
    },
    Restore {
        run: usize,
    },
    Purge {
        run: usize,
    },
    DeleteProject {
        project: usize,
    },
    RestoreProject {
        project: usize,
    },
}

/// Values of every kind a config key can hold, numbers that are and are
/// not finite among them.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i32>().prop_map(|i| json!(i)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        Just(json!({"$float": "NaN"})),
        Just(json!({"$float": "-Infinity"})),
        "[a-c]{0,3}".prop_map(|s| json!(s)),
        any::<bool>().prop_map(|b| json!(b)),
        Just(json!(null)),
        Just(json!([1, "x"])),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let run = 0..12usize;
    prop_oneof![
        3 => (0..2usize, prop::collection::vec((0..CONFIG_KEYS.len(), value()), 0..4))
            .prop_map(|(project, config)| Op::Create { project, config }),
        4 => (run.clone(), 0..METRIC_KEYS.len()).prop_map(|(run, key)| Op::Log { run, key }),
        2 => (run.clone(), 0..CONFIG_KEYS.len(), value())
            .prop_map(|(run, key, value)| Op::Config { run, key, value }),
        2 => (run.clone(), 0..SUMMARY_KEYS.len(), prop_oneof![Just(Value::Null), value()])
            .prop_map(|(run, key, value)| Op::Summary { run, key, value }),
        1 => run.clone().prop_map(|run| Op::Delete { run }),
        1 => run.clone().prop_map(|run| Op::Restore { run }),
        1 => run.prop_map(|run| Op::Purge { run }),
        1 => (0..2usize).prop_map(|project| Op::DeleteProject { project }),
        1 => (0..2usize).prop_map(|project| Op::RestoreProject { project }),
    ]
}

fn config(entries: &[(usize, Value)]) -> labbook_core::Config {
    let object: serde_json::Map<String, Value> = entries
        .iter()
        .map(|(key, value)| (CONFIG_KEYS[*key].to_string(), value.clone()))
        .collect();
    config_from_json(&Value::Object(object)).unwrap()
}

fn apply(store: &SqliteStore, runs: &mut Vec<String>, op: &Op) {
    // An op on a run that does not exist (yet, or any more) is skipped;
    // one the store refuses (restoring a live run) changes nothing.
    let run = |i: usize| runs.get(i).cloned();
    match op {
        Op::Create {
            project,
            config: entries,
        } => {
            let record = store
                .create_run(&NewRun {
                    project: PROJECTS[*project].into(),
                    config: config(entries),
                    created_ms: 1_000 + runs.len() as i64,
                    ..Default::default()
                })
                .unwrap();
            runs.push(record.id);
        }
        Op::Log { run: i, key } => {
            let Some(id) = run(*i) else { return };
            let mut points = SeriesColumns::default();
            points.push(Point {
                step: 0,
                ts_ms: 2_000,
                value: 0.5,
            });
            let plan = SeriesWriter::new()
                .plan(vec![(METRIC_KEYS[*key].to_string(), points)], true)
                .unwrap();
            let _ = store.commit(&WriteSet {
                run_id: id,
                series: plan,
                ..Default::default()
            });
        }
        Op::Config { run: i, key, value } => {
            let Some(id) = run(*i) else { return };
            let patch = RunPatch {
                config: Some(config(&[(*key, value.clone())])),
                ..Default::default()
            };
            let _ = store.update_run(&id, &patch);
        }
        Op::Summary { run: i, key, value } => {
            let Some(id) = run(*i) else { return };
            let patch = RunPatch {
                summary: BTreeMap::from([(SUMMARY_KEYS[*key].to_string(), value.clone())]),
                ..Default::default()
            };
            let _ = store.update_run(&id, &patch);
        }
        Op::Delete { run: i } => {
            if let Some(id) = run(*i) {
                let _ = store.delete_run(&id, 5_000);
            }
        }
        Op::Restore { run: i } => {
            if let Some(id) = run(*i) {
                let _ = store.restore_run(&id);
            }
        }
        Op::Purge { run: i } => {
            if let Some(id) = run(*i) {
                let _ = store.purge_run(&id);
            }
        }
        Op::DeleteProject { project } | Op::RestoreProject { project } => {
            let Ok(found) = store.project(ProjectRef::Name(PROJECTS[*project])) else {
                return;
            };
            let deleted = matches!(op, Op::DeleteProject { .. }).then_some(6_000);
            let _ = store.update_project(
                found.id,
                &ProjectPatch {
                    deleted: Some(deleted),
                    now_ms: 6_000,
                    ..Default::default()
                },
            );
        }
    }
}

fn assert_catalog_matches(store: &SqliteStore) {
    for project in PROJECTS {
        let runs = store
            .list_runs(&RunQuery {
                project: Some(project.into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            store.key_catalog(project).unwrap(),
            KeyCatalog::of_runs(&runs),
            "project {project}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_catalog_equals_the_keys_of_the_runs(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut runs = Vec::new();
        for op in &ops {
            apply(&store, &mut runs, op);
        }
        assert_catalog_matches(&store);
    }
}

/// A store made before the catalog existed gets it filled when opened.
#[test]
fn a_store_from_before_the_catalog_is_filled_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut runs = Vec::new();
        let ops = [
            Op::Create {
                project: 0,
                config: vec![(0, json!(0.1)), (1, json!("adam"))],
            },
            Op::Create {
                project: 0,
                config: vec![(0, json!("1e-3")), (2, json!(3))],
            },
            Op::Create {
                project: 1,
                config: vec![(3, json!({"$float": "NaN"}))],
            },
            Op::Log { run: 0, key: 0 },
            Op::Log { run: 1, key: 0 },
            Op::Log { run: 2, key: 2 },
            Op::Summary {
                run: 1,
                key: 0,
                value: json!(0.9),
            },
            Op::Create {
                project: 0,
                config: vec![(0, json!(1))],
            },
            Op::Delete { run: 3 },
        ];
        for op in &ops {
            apply(&store, &mut runs, op);
        }
    }
    let db = dir.path().join(DB_FILE);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let triggers: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND name LIKE 'key_catalog_%'",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    for trigger in triggers {
        conn.execute_batch(&format!("DROP TRIGGER \"{trigger}\""))
            .unwrap();
    }
    // The catalog's migration and the ones after it (the sketches' table,
    // the accounts' and the permissions' tables, empty here) undone: the
    // store as the version before made it.
    conn.execute_batch(&format!(
        "DROP TABLE permissions; DROP TABLE tokens; DROP TABLE users;
         DROP TABLE chunk_sketches; DROP VIEW config_entries; DROP TABLE key_catalog;
         PRAGMA user_version = {};",
        version - 4
    ))
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(dir.path()).unwrap();
    let catalog = store.key_catalog("p").unwrap();
    assert_eq!(
        catalog
            .config
            .iter()
            .map(|k| (k.key.as_str(), k.runs, k.numeric_runs))
            .collect::<Vec<_>>(),
        [("lr", 2, 1), ("opt", 1, 0), ("x.y", 1, 1)]
    );
    assert_catalog_matches(&store);
}
