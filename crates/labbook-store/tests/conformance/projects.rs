//! Projects with ids and lifecycles, params, key/value tags, artifacts and
//! documents: what the MLflow API and later steps build on.
use std::sync::Arc;

use labbook_core::model::{ModelVersion, RegisteredModel};
use labbook_core::{ConfigValue, DatasetInput, Point, RunStatus, SeriesColumns};
use labbook_store::appender::Appender;
use labbook_store::*;

use crate::common::Backend;

fn run_in(store: &dyn Store, project: &str) -> String {
    store
        .create_run(&NewRun {
            project: project.into(),
            created_ms: 1_000,
            ..Default::default()
        })
        .unwrap()
        .id
}

pub fn default_project_exists_and_is_hidden_while_empty(b: &Backend) {
    let store = b.open();
    let default = store.project(ProjectRef::Id(DEFAULT_PROJECT_ID)).unwrap();
    assert_eq!(default.name, "Default");
    let listed = |store: &dyn Store| {
        store
            .list_projects()
            .unwrap()
            .into_iter()
            .find(|p| p.project.id == DEFAULT_PROJECT_ID)
            .unwrap()
            .is_listed()
    };
    assert!(!listed(&*store));
    run_in(&*store, "Default");
    assert!(listed(&*store));
}

pub fn projects_rename_tag_delete_and_restore_with_their_runs(b: &Backend) {
    let store = b.open();
    let p = store
        .create_project(&NewProject {
            name: "exp".into(),
            created_ms: 5,
            ..Default::default()
        })
        .unwrap();
    assert!(matches!(
        store.create_project(&NewProject {
            name: "exp".into(),
            ..Default::default()
        }),
        Err(StoreError::Conflict(_))
    ));
    let kept = run_in(&*store, "exp");
    let deleted_before = run_in(&*store, "exp");
    store.delete_run(&deleted_before, 7).unwrap();
    // The run index refreshes the project name of every run after a rename.
    assert_eq!(store.list_runs(&RunQuery::default()).unwrap().len(), 1);
    let patch = ProjectPatch {
        name: Some("renamed".into()),
        set_tags: [("team".to_string(), "a".to_string())].into(),
        now_ms: 10,
        ..Default::default()
    };
    store.update_project(p.id, &patch).unwrap();
    let runs = store.list_runs(&RunQuery::default()).unwrap();
    assert_eq!(runs[0].project, "renamed");
    assert_eq!(runs[0].project_id, p.id);
    store
        .update_project(
            p.id,
            &ProjectPatch {
                deleted: Some(Some(20)),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(store.get_run(&kept).unwrap().deleted_ms.is_some());
    store
        .update_project(
            p.id,
            &ProjectPatch {
                deleted: Some(None),
                ..Default::default()
            },
        )
        .unwrap();
    let info = store.project(ProjectRef::Name("renamed")).unwrap();
    assert_eq!(info.tags["team"], "a");
    assert!(info.deleted_ms.is_none());
    assert!(store.get_run(&kept).unwrap().deleted_ms.is_none());
    // A run deleted on its own before stays deleted.
    assert!(store.get_run(&deleted_before).unwrap().deleted_ms.is_some());
}

pub fn params_are_immutable_and_a_refused_write_changes_nothing(b: &Backend) {
    let store = b.open();
    let id = run_in(&*store, "p");
    let params = |v: &str| RunPatch {
        params: Some([("lr".to_string(), ConfigValue::Str(v.into()))].into()),
        set_kv_tags: [("t".to_string(), v.to_string())].into(),
        ..Default::default()
    };
    store.update_run(&id, &params("0.1")).unwrap();
    store.update_run(&id, &params("0.1")).unwrap();
    let err = store.update_run(&id, &params("0.2")).unwrap_err();
    assert!(err.to_string().contains("params cannot change"), "{err}");
    let run = store.get_run(&id).unwrap();
    assert_eq!(run.kv_tags["t"], "0.1");
    let missing = RunPatch {
        remove_kv_tags: vec!["nope".into()],
        ..Default::default()
    };
    assert!(matches!(
        store.update_run(&id, &missing),
        Err(StoreError::NotFound { .. })
    ));
}

pub fn dataset_inputs_are_recorded_once_per_use(b: &Backend) {
    let store = b.open();
    let id = run_in(&*store, "p");
    let input = DatasetInput {
        name: "mnist".into(),
        digest: "abc".into(),
        source_type: "local".into(),
        source: "/data".into(),
        schema: None,
        profile: None,
        tags: Default::default(),
    };
    for _ in 0..2 {
        let patch = RunPatch {
            add_inputs: vec![input.clone()],
            ..Default::default()
        };
        store.update_run(&id, &patch).unwrap();
    }
    assert_eq!(store.get_run(&id).unwrap().inputs, vec![input]);
}

pub fn artifacts_store_list_dedupe_and_delete(b: &Backend) {
    let store = b.open();
    let put = |path: &str, data: &[u8]| store.put_artifact(path, &mut &data[..], 1).unwrap();
    put("1/r/artifacts/a.txt", b"same");
    put("1/r/artifacts/sub/b.txt", b"same");
    put("1/r/artifacts/sub/deeper/c.bin", b"other");
    put("1/r2/artifacts/x.txt", b"x");
    let blobs = || {
        walk(&b.contents())
            .into_iter()
            .filter(|p| p.is_file())
            .count()
    };
    assert_eq!(blobs(), 3, "equal contents are kept once");
    let listed = store.list_artifacts("1/r/artifacts").unwrap();
    let shown: Vec<(&str, bool, u64)> = listed
        .iter()
        .map(|e| (e.path.as_str(), e.is_dir, e.size))
        .collect();
    assert_eq!(
        shown,
        [
            ("1/r/artifacts/a.txt", false, 4),
            ("1/r/artifacts/sub", true, 0)
        ]
    );
    let (mut reader, size) = store
        .open_artifact("1/r/artifacts/sub/deeper/c.bin")
        .unwrap();
    let mut got = Vec::new();
    reader.read_to_end(&mut got).unwrap();
    assert_eq!((got.as_slice(), size), (&b"other"[..], 5));
    assert!(store.put_artifact("../escape", &mut &b""[..], 1).is_err());
    assert!(store.list_artifacts("/etc").is_err());
    assert_eq!(store.delete_artifacts("1/r/artifacts/sub").unwrap(), 2);
    assert_eq!(blobs(), 2, "a blob still referenced stays, an orphan goes");
    assert!(store.open_artifact("1/r/artifacts/sub/b.txt").is_err());
    assert!(store.open_artifact("1/r/artifacts/a.txt").is_ok());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            out.extend(walk(&p));
            out.push(p);
        }
    }
    out
}

use std::io::Read as _;

pub fn registry_documents_update_atomically(b: &Backend) {
    let store = b.open();
    let s: &dyn Store = &*store;
    models::update(
        s,
        models::REGISTERED_MODEL,
        "clf",
        |doc: &mut Option<RegisteredModel>| {
            *doc = Some(RegisteredModel::new("clf".into(), None, 1));
            Ok(())
        },
    )
    .unwrap();
    let version = |n| ModelVersion {
        version: n,
        source: "models:/m-1".into(),
        storage_location: None,
        run_id: None,
        model_id: None,
        description: None,
        created_ms: 2,
        updated_ms: 2,
        tags: Default::default(),
        stage: "None".into(),
    };
    models::update_registered_model(s, "clf", |m| {
        m.add_version(version(0));
        Ok(())
    })
    .unwrap();
    // A change that fails stores nothing.
    let failed = models::update_registered_model(s, "clf", |m| {
        m.add_version(version(0));
        Err::<(), _>(StoreError::Conflict("no".into()))
    });
    assert!(failed.is_err());
    let m = models::registered_model(s, "clf").unwrap();
    assert_eq!(m.versions.len(), 1);
    assert_eq!(m.next_version, 2);
    assert!(models::registered_model(s, "nope").is_err());
}

pub fn the_appender_commits_each_call_and_seals_at_the_end(b: &Backend) {
    let store = b.open();
    let id = run_in(&*store, "p");
    let appender = Appender::new(store.clone());
    for i in 0..100 {
        let mut s = SeriesColumns::default();
        s.push(Point {
            step: i,
            ts_ms: i,
            value: i as f64,
        });
        appender
            .commit(&id, vec![("m".into(), s)], None, false)
            .unwrap();
        assert_eq!(store.get_run(&id).unwrap().metrics["m"].count, i as u64 + 1);
    }
    let end = RunPatch {
        status: Some(labbook_core::RunStatus::Finished),
        ..Default::default()
    };
    appender.commit(&id, Vec::new(), Some(end), true).unwrap();
    let read = store.read_series(&id, "m", StepRange::ALL).unwrap();
    assert_eq!(read.steps, (0..100).collect::<Vec<_>>());
}

pub fn a_retried_request_after_a_restart_lands_once(b: &Backend) {
    let store = b.open();
    let id = run_in(&*store, "p");
    let points = |range: std::ops::Range<i64>| {
        let mut s = SeriesColumns::default();
        for i in range {
            s.push(Point {
                step: i,
                ts_ms: 7,
                value: i as f64 / 2.0,
            });
        }
        s
    };
    let before = Appender::new(store.clone());
    before
        .commit(&id, vec![("m".into(), points(0..10))], None, false)
        .unwrap();
    // The server died after committing 10..20 and before answering.
    before
        .commit(&id, vec![("m".into(), points(10..20))], None, false)
        .unwrap();
    drop(before);

    let after = Appender::new(store.clone());
    // The client's retry of 10..20, then its next request.
    after
        .commit(&id, vec![("m".into(), points(10..20))], None, false)
        .unwrap();
    after
        .commit(&id, vec![("m".into(), points(20..30))], None, false)
        .unwrap();
    // Identical points later on are not retries: only a run's first commit
    // after a start is checked.
    after
        .commit(&id, vec![("m".into(), points(29..30))], None, false)
        .unwrap();
    let read = store.read_series(&id, "m", StepRange::ALL).unwrap();
    let mut expected: Vec<i64> = (0..30).collect();
    expected.push(29);
    assert_eq!(read.steps, expected);
}

fn steps(range: std::ops::Range<i64>) -> SeriesColumns {
    let mut s = SeriesColumns::default();
    for i in range {
        s.push(Point {
            step: i,
            ts_ms: 7,
            value: i as f64,
        });
    }
    s
}

fn other_run_chunk(store: &Arc<dyn Store>) {
    let other = run_in(&**store, "q");
    Appender::new(store.clone())
        .commit(&other, vec![("m".into(), steps(0..5))], None, false)
        .unwrap();
}

/// A reaper that took the run's process for dead compacts its tails while
/// the server's appender still holds them.
pub fn an_appender_whose_tails_were_compacted_under_it_stores_each_point_once(b: &Backend) {
    let store = b.open();
    let id = run_in(&*store, "p");
    let appender = Appender::new(store.clone());
    for part in 0..3 {
        let range = part * 10..part * 10 + 10;
        appender
            .commit(&id, vec![("m".into(), steps(range))], None, false)
            .unwrap();
    }
    // Another run's chunk takes the next id, so compaction's chunk gets a
    // fresh one rather than reusing a tail's.
    other_run_chunk(&store);
    store.compact_run(&id).unwrap();
    appender
        .commit(&id, vec![("m".into(), steps(30..40))], None, true)
        .unwrap();
    let read = store.read_series(&id, "m", StepRange::ALL).unwrap();
    assert_eq!(read.steps, (0..40).collect::<Vec<_>>());
}

pub fn a_writer_whose_run_was_reaped_keeps_every_point_once_and_runs_again(b: &Backend) {
    use labbook_store::writer::{PendingPoint, RunWriter, WriterOptions};
    use std::time::Duration;
    let store = b.open();
    let id = run_in(&*store, "p");
    let writer = RunWriter::start(store.clone(), &id, WriterOptions::default()).unwrap();
    let key = writer.key_index("m").unwrap();
    let push = |range: std::ops::Range<i64>| {
        let points: Vec<PendingPoint> = range
            .map(|step| PendingPoint {
                key,
                step,
                ts_ms: 7,
                value: step as f64,
            })
            .collect();
        writer.push(&points);
        writer.flush(Duration::from_secs(10)).unwrap();
    };
    push(0..10);
    push(10..20);
    // The process looked dead (a stalled host, a lost network): reaped and compacted.
    other_run_chunk(&store);
    // What the reaper does to a run it takes for dead.
    store
        .update_run(
            &id,
            &RunPatch {
                status: Some(RunStatus::Crashed),
                ..Default::default()
            },
        )
        .unwrap();
    store.compact_run(&id).unwrap();
    assert_eq!(store.get_run(&id).unwrap().status, RunStatus::Crashed);
    push(20..30);
    assert_eq!(store.get_run(&id).unwrap().status, RunStatus::Running);
    writer
        .finish(RunPatch::default(), Duration::from_secs(10))
        .unwrap();
    let read = store.read_series(&id, "m", StepRange::ALL).unwrap();
    assert_eq!(read.steps, (0..30).collect::<Vec<_>>());
}

pub fn a_run_its_writer_ends_as_crashed_stays_crashed(b: &Backend) {
    let store = b.open();
    let id = run_in(&*store, "p");
    let write = WriteSet {
        run_id: id.clone(),
        patch: Some(RunPatch {
            status: Some(RunStatus::Crashed),
            ..Default::default()
        }),
        heartbeat_ms: Some(1),
        ..Default::default()
    };
    store.commit(&write).unwrap();
    assert_eq!(store.get_run(&id).unwrap().status, RunStatus::Crashed);
}
