//! What only the PostgreSQL backend has to show, against a real server
//! (`common::cluster`): replicas sharing one database, migrations racing,
//! the database stopping. What every backend must do is in `conformance`.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use std::sync::Arc;

use labbook_core::account::{ResourceKind, Role};
use labbook_core::{Config, ConfigValue, RunStatus, SeriesColumns};
use labbook_store::series::SeriesWriter;
use labbook_store::versions::{LineageStart, NewArtifactVersion, Placement, VersionSource};
use labbook_store::*;

mod common;
use common::cluster::{Cluster, fresh_database};

fn new_run(project: &str, name: &str) -> NewRun {
    let mut config = Config::new();
    config.insert("lr".into(), ConfigValue::Float(0.01));
    NewRun {
        project: project.into(),
        name: Some(name.into()),
        config,
        created_ms: 1_000,
        ..Default::default()
    }
}

/// Commits `points` of `key` to a run through the series engine, as a
/// writer does; `batch` names the write for retries.
fn log(
    store: &PgStore,
    writer: &mut SeriesWriter,
    run: &str,
    key: &str,
    points: SeriesColumns,
    batch: Option<&str>,
) -> bool {
    let plan = writer.plan(vec![(key.to_string(), points)], false).unwrap();
    let write = WriteSet {
        run_id: run.into(),
        batch_id: batch.map(str::to_string),
        series: plan,
        output: Vec::new(),
        patch: None,
        heartbeat_ms: Some(2_000),
    };
    let committed = store.commit(&write).unwrap();
    match committed {
        Some(ids) => {
            writer.apply(write.series, &ids);
            true
        }
        None => false,
    }
}

fn points(from: i64, to: i64) -> SeriesColumns {
    let mut out = SeriesColumns::default();
    for step in from..to {
        out.push(labbook_core::Point {
            step,
            ts_ms: 1_000 + step,
            value: (step as f64).sin(),
        });
    }
    out
}

#[test]
fn replicas_starting_together_migrate_once() {
    let Some(url) = fresh_database() else {
        return;
    };
    let url = Arc::new(url);
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgStore::connect(&url).map(|_| ()))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let store = PgStore::connect(&url).unwrap();
    let projects = store.list_projects().unwrap();
    assert_eq!(
        projects
            .iter()
            .filter(|p| p.project.name == "Default")
            .count(),
        1
    );
}

#[test]
fn runs_round_trip_and_replicas_see_each_others_changes() {
    let Some(url) = fresh_database() else {
        return;
    };
    let a = PgStore::connect(&url).unwrap();
    let b = PgStore::connect(&url).unwrap();
    let (cursor, _) = b.changes_since(i64::MAX).unwrap();
    assert!(b.list_runs(&RunQuery::default()).unwrap().is_empty());

    let run = a.create_run(&new_run("vision", "resnet")).unwrap();
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.project, "vision");
    let other = a.create_run(&new_run("vision", "resnet")).unwrap();

    // The other replica sees both, by its index and by the change feed.
    let listed = b
        .list_runs(&RunQuery {
            project: Some("vision".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(listed.len(), 2);
    let (_, changed) = b.changes_since(cursor).unwrap();
    assert_eq!(changed.len(), 2);

    // Names and prefixes resolve; a name two runs share is ambiguous.
    assert!(matches!(
        a.resolve_run("resnet", None),
        Err(StoreError::Ambiguous { .. })
    ));
    assert_eq!(a.resolve_run(&run.id[..8], None).unwrap().id, run.id);

    // A patch lands whole, or not at all.
    let mut params = Config::new();
    params.insert("batch".into(), ConfigValue::Int(32));
    a.update_run(
        &run.id,
        &RunPatch {
            params: Some(params.clone()),
            add_tags: vec!["baseline".into()],
            status: Some(RunStatus::Finished),
            ended_ms: Some(5_000),
            error: Some("a NUL \0 in text".into()),
            ..Default::default()
        },
    )
    .unwrap();
    params.insert("batch".into(), ConfigValue::Int(64));
    let refused = a.update_run(
        &run.id,
        &RunPatch {
            params: Some(params),
            add_tags: vec!["never".into()],
            ..Default::default()
        },
    );
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );
    let got = b.get_run(&run.id).unwrap();
    assert_eq!(got.status, RunStatus::Finished);
    assert_eq!(got.tags, vec!["baseline".to_string()]);
    assert_eq!(got.config.get("batch"), Some(&ConfigValue::Int(32)));
    assert_eq!(got.error.as_deref(), Some("a NUL \u{FFFD} in text"));

    // A filter runs over the other replica's index, kept current.
    let filter = labbook_core::query::parse_filter("status = 'finished'").unwrap();
    let finished = b
        .list_runs(&RunQuery {
            filter: Some(filter),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].id, run.id);

    // Delete, restore, purge: each seen by the other replica.
    a.delete_run(&other.id, 9_000).unwrap();
    assert_eq!(b.list_runs(&RunQuery::default()).unwrap().len(), 1);
    a.restore_run(&other.id).unwrap();
    assert_eq!(b.list_runs(&RunQuery::default()).unwrap().len(), 2);
    a.purge_run(&other.id).unwrap();
    let all = b
        .list_runs(&RunQuery {
            deleted: Deleted::Include,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(all.len(), 1);
    assert!(matches!(
        b.get_run(&other.id),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn series_are_stored_once_read_back_and_compacted() {
    let Some(url) = fresh_database() else {
        return;
    };
    let store = PgStore::connect(&url).unwrap();
    let run = store.create_run(&new_run("p", "curves")).unwrap();
    let mut writer = SeriesWriter::new();
    let mut expected = SeriesColumns::default();
    for part in 0..40 {
        let chunk = points(part * 500, (part + 1) * 500);
        expected.extend_from(&chunk);
        let batch = format!("b{part}");
        assert!(log(
            &store,
            &mut writer,
            &run.id,
            "loss",
            chunk.clone(),
            Some(&batch)
        ));
        // A retried batch changes nothing.
        let mut twin = SeriesWriter::new();
        assert!(!log(
            &store,
            &mut twin,
            &run.id,
            "loss",
            chunk,
            Some(&batch)
        ));
    }
    let read = store.read_series(&run.id, "loss", StepRange::ALL).unwrap();
    assert_eq!(read.steps, expected.steps);
    assert_eq!(read.ts_ms, expected.ts_ms);
    assert_eq!(
        read.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        expected
            .values
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>()
    );
    let range = StepRange {
        lo: Some(1_000),
        hi: Some(1_999),
    };
    assert_eq!(
        store.read_series(&run.id, "loss", range).unwrap().len(),
        1_000
    );
    assert_eq!(
        store.series_keys(&run.id).unwrap(),
        vec![("loss".to_string(), 20_000)]
    );
    let summary = store.get_run(&run.id).unwrap().metrics["loss"];
    assert_eq!(summary.count, 20_000);
    assert_eq!(summary.last_step, 19_999);

    store.compact_run(&run.id).unwrap();
    let compacted = store.read_series(&run.id, "loss", StepRange::ALL).unwrap();
    assert_eq!(compacted.steps, expected.steps);
    let (drawn, total) = store
        .downsample(&run.id, "loss", StepRange::ALL, 100, false)
        .unwrap();
    assert_eq!(total, 20_000);
    assert!(drawn.len() <= 400 && !drawn.is_empty(), "{}", drawn.len());

    // Writers of one run from several connections queue; none deadlocks
    // and every point is stored once.
    let store = Arc::new(store);
    let handles: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            let run = run.id.clone();
            std::thread::spawn(move || {
                let mut writer = SeriesWriter::new();
                for i in 0..20 {
                    let from = 100_000 + (w * 20 + i) * 10;
                    log(
                        &store,
                        &mut writer,
                        &run,
                        &format!("w{w}"),
                        points(from, from + 10),
                        None,
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let keys = store.series_keys(&run.id).unwrap();
    assert_eq!(keys.len(), 9);
    assert!(
        keys.iter()
            .filter(|(k, _)| k.starts_with('w'))
            .all(|(_, n)| *n == 200)
    );
}

#[test]
fn a_batch_over_many_series_is_one_write_read_back_whole() {
    let Some(url) = fresh_database() else {
        return;
    };
    let store = PgStore::connect(&url).unwrap();
    let run = store.create_run(&new_run("p", "wide")).unwrap();
    let mut writer = SeriesWriter::new();
    // 40 keys per write, new and old ones, with output: each write one
    // statement per step for all of them, every point read back.
    for part in 0..3i64 {
        let batch: Vec<(String, SeriesColumns)> = (0..40)
            .map(|k| {
                (
                    format!("layer{k}/grad"),
                    points(part * 700, (part + 1) * 700),
                )
            })
            .collect();
        let write = WriteSet {
            run_id: run.id.clone(),
            batch_id: Some(format!("wide{part}")),
            series: writer.plan(batch, false).unwrap(),
            output: (0..3)
                .map(|i| OutputChunk {
                    stream: OutputStream::Stdout,
                    ts_ms: part * 10 + i,
                    data: format!("part {part} line {i}\n").into_bytes(),
                })
                .collect(),
            patch: None,
            heartbeat_ms: None,
        };
        assert!(write.series.inserts.len() >= 40);
        let ids = store.commit(&write).unwrap().unwrap();
        assert_eq!(ids.len(), write.series.inserts.len());
        writer.apply(write.series, &ids);
    }
    let expected = points(0, 2_100);
    let keys = store.series_keys(&run.id).unwrap();
    assert_eq!(keys.len(), 40);
    assert!(keys.iter().all(|(_, n)| *n == 2_100), "{keys:?}");
    let stored = store.get_run(&run.id).unwrap();
    for k in [0, 17, 39] {
        let key = format!("layer{k}/grad");
        let read = store.read_series(&run.id, &key, StepRange::ALL).unwrap();
        assert_eq!(read.steps, expected.steps, "{key}");
        assert_eq!(
            read.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            expected
                .values
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        );
        let summary = stored.metrics[&key];
        assert_eq!((summary.count, summary.last_step), (2_100, 2_099));
    }
    assert_eq!(store.read_output(&run.id).unwrap().len(), 9);
}

#[test]
fn notes_output_environment_projects_and_documents() {
    let Some(url) = fresh_database() else {
        return;
    };
    let store = Arc::new(PgStore::connect(&url).unwrap());
    let run = store.create_run(&new_run("nlp", "bert")).unwrap();
    store.add_note(&run.id, "lr too high?", 10).unwrap();
    assert!(store.add_note(&run.id, "  ", 11).is_err());
    store
        .add_project_note("nlp", "tonight: sweep the lr", None, 12)
        .unwrap();
    assert_eq!(store.notes(&run.id).unwrap().len(), 1);
    assert_eq!(store.project_notes("nlp").unwrap().len(), 2);

    store
        .set_environment(&run.id, &serde_json::json!({"python": "3.12"}))
        .unwrap();
    store
        .set_environment(&run.id, &serde_json::json!({"gpu": "H200"}))
        .unwrap();
    assert_eq!(
        store.environment(&run.id).unwrap().unwrap(),
        serde_json::json!({"python": "3.12", "gpu": "H200"})
    );
    let write = WriteSet {
        run_id: run.id.clone(),
        batch_id: None,
        series: Default::default(),
        output: vec![OutputChunk {
            stream: OutputStream::Stderr,
            ts_ms: 5,
            data: b"epoch 1\n\0binary".to_vec(),
        }],
        patch: None,
        heartbeat_ms: None,
    };
    store.commit(&write).unwrap();
    assert_eq!(store.read_output(&run.id).unwrap(), write.output);

    let project = store
        .create_project(&NewProject {
            name: "speech".into(),
            artifact_location: None,
            tags: Default::default(),
            created_ms: 1,
        })
        .unwrap();
    assert!(matches!(
        store.create_project(&NewProject {
            name: "speech".into(),
            artifact_location: None,
            tags: Default::default(),
            created_ms: 1,
        }),
        Err(StoreError::Conflict(_))
    ));
    let nlp = store.project(ProjectRef::Name("nlp")).unwrap();
    store
        .update_project(
            nlp.id,
            &ProjectPatch {
                name: Some("language".into()),
                now_ms: 20,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(store.get_run(&run.id).unwrap().project, "language");
    assert_eq!(
        store.list_runs(&RunQuery::default()).unwrap()[0].project,
        "language"
    );
    store
        .update_project(
            project.id,
            &ProjectPatch {
                deleted: Some(Some(30)),
                now_ms: 30,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(
        store
            .project(ProjectRef::Id(project.id))
            .unwrap()
            .deleted_ms
            .is_some()
    );

    // Read-change-write of one document from many threads loses nothing.
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    store
                        .update_document("counter", "n", &mut |doc| {
                            let n = doc.and_then(|d| d.as_i64()).unwrap_or(0);
                            Ok(Some(serde_json::json!(n + 1)))
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(
        store.document("counter", "n").unwrap(),
        Some(serde_json::json!(80))
    );
}

#[test]
fn accounts_tokens_and_roles() {
    let Some(url) = fresh_database() else {
        return;
    };
    let store = PgStore::connect(&url).unwrap();
    let ada = store.create_user("ada", "$argon2id$hash", 1).unwrap();
    assert!(matches!(
        store.create_user("ada", "$argon2id$other", 2),
        Err(StoreError::Conflict(_))
    ));
    store.set_admin("ada", true).unwrap();
    let token = store.create_token("ada", "laptop", "d1", 3, None).unwrap();
    let again = store.create_token("ada", "ci", "d2", 4, Some(10)).unwrap();
    assert!(again.id > token.id);
    assert_eq!(store.user_of_token("d1", 5).unwrap().unwrap().id, ada.id);
    assert!(store.user_of_token("d2", 11).unwrap().is_none());
    store.revoke_token(token.id, 6).unwrap();
    assert!(store.user_of_token("d1", 7).unwrap().is_none());
    assert_eq!(store.tokens(Some("ada")).unwrap().len(), 2);

    store
        .set_permission("ada", ResourceKind::Project, "7", Role::Edit)
        .unwrap();
    store
        .set_permission("ada", ResourceKind::Project, "7", Role::Manage)
        .unwrap();
    let perms = store.permissions(None).unwrap();
    assert_eq!(perms.len(), 1);
    assert_eq!(perms[0].role, Role::Manage);
    store
        .move_permissions(ResourceKind::Project, "7", Some("8"))
        .unwrap();
    assert_eq!(store.permissions(Some("ada")).unwrap()[0].resource, "8");
    store.delete_user("ada").unwrap();
    assert!(store.users().unwrap().is_empty());
    assert!(store.permissions(None).unwrap().is_empty());

    // Wrong passwords, counted for every replica: one window per guesser,
    // begun at its first failure, a new one once it ended.
    let guessers = ["user:ada".to_string(), "addr:10.0.0.9".to_string()];
    let window = 900_000;
    for now in [1_000, 2_000, 3_000] {
        store.record_signin_failure(&guessers, now, window).unwrap();
    }
    let other = PgStore::connect(&url).unwrap();
    let mut counted = Store::signin_failures(&other, &guessers, 0)
        .unwrap()
        .unwrap();
    counted.sort_by(|a, b| a.guesser.cmp(&b.guesser));
    assert_eq!(
        counted,
        vec![
            SigninFailures {
                guesser: "addr:10.0.0.9".into(),
                count: 3,
                since_ms: 1_000
            },
            SigninFailures {
                guesser: "user:ada".into(),
                count: 3,
                since_ms: 1_000
            },
        ]
    );
    other
        .record_signin_failure(&guessers[..1], 1_000 + window, window)
        .unwrap();
    let counted = Store::signin_failures(&store, &guessers, 1_000)
        .unwrap()
        .unwrap();
    assert_eq!(
        counted,
        vec![SigninFailures {
            guesser: "user:ada".into(),
            count: 1,
            since_ms: 1_000 + window
        }]
    );
    store.forget_signin_failures("user:ada").unwrap();
    assert!(
        Store::signin_failures(&other, &guessers, 0)
            .unwrap()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_stopped_database_is_unavailable_then_recovers_by_itself() {
    // A server of its own: stopping the shared one would fail other tests.
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.create_database();
    if !cluster.is_own() {
        eprintln!("skipped: the server LABBOOK_TEST_POSTGRES names cannot be stopped by a test");
        return;
    }
    let store = PgStore::connect(&url).unwrap();
    let run = store.create_run(&new_run("p", "r")).unwrap();
    cluster.pg_ctl("stop");
    let err = store.get_run(&run.id).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = store.add_note(&run.id, "while down", 1).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    cluster.pg_ctl("start");
    // The pool drops the broken connections and makes new ones.
    let mut recovered = None;
    for _ in 0..50 {
        match store.get_run(&run.id) {
            Ok(r) => {
                recovered = Some(r);
                break;
            }
            Err(StoreError::Unavailable(_)) => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(recovered.unwrap().id, run.id);
    store.add_note(&run.id, "after", 2).unwrap();
    assert_eq!(store.notes(&run.id).unwrap().len(), 1);
}

#[test]
fn claims_from_two_replicas_number_trials_once_each() {
    let Some(url) = fresh_database() else {
        return;
    };
    let a = Arc::new(PgStore::connect(&url).unwrap());
    let b = Arc::new(PgStore::connect(&url).unwrap());
    let new = NewStudy {
        project: "search".into(),
        name: "lr".into(),
        kind: StudyKind::Study,
        directions: vec![labbook_search::Direction::Minimize],
        spec: serde_json::json!({}),
        why: Some("which lr".into()),
        created_ms: 1,
    };
    let (study, created) = a.create_study(&new, false).unwrap();
    assert!(created);
    assert!(matches!(
        b.create_study(&new, false),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(b.create_study(&new, true).unwrap().0.pk, study.pk);
    // Workers on both replicas claim at once: 40 trials, numbered 0..40,
    // each claimed once, each with its run.
    let handles: Vec<_> = (0..8)
        .map(|w| {
            let store = if w % 2 == 0 { a.clone() } else { b.clone() };
            std::thread::spawn(move || {
                let worker = Worker {
                    host: Some("test".into()),
                    pid: Some(w),
                };
                let mut mine = Vec::new();
                for _ in 0..5 {
                    let claimed = store
                        .claim_trial(study.pk, &worker, 10, &|_| true, &mut |_, _| {
                            Ok(Claim::Trial(Box::new(NewTrial {
                                run: Some(NewRun {
                                    project: "search".into(),
                                    created_ms: 10,
                                    ..Default::default()
                                }),
                                ..Default::default()
                            })))
                        })
                        .unwrap();
                    let Claimed::Trial(trial) = claimed else {
                        panic!("no trial: {claimed:?}");
                    };
                    mine.push(trial.number());
                }
                mine
            })
        })
        .collect();
    let mut numbers: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..40).collect::<Vec<u64>>());
    let trials = b.trials(study.pk).unwrap();
    assert_eq!(trials.len(), 40);
    assert!(trials.iter().all(|t| t.run_id.is_some()));

    // A patch is seen by the other replica's cache; a finished trial is not
    // changed again.
    let first = trials[0].id;
    assert!(
        a.update_trial(
            first,
            &TrialPatch {
                state: Some(labbook_search::TrialState::Complete),
                values: Some(vec![0.25]),
                intermediate: vec![(1, 0.5)],
                now_ms: 20,
                ..Default::default()
            },
        )
        .unwrap()
    );
    let seen = b.trials(study.pk).unwrap();
    assert_eq!(seen[0].values, Some(vec![0.25]));
    assert!(matches!(
        b.update_trial(
            first,
            &TrialPatch {
                values: Some(vec![1.0]),
                now_ms: 21,
                ..Default::default()
            },
        ),
        Err(StoreError::Conflict(_))
    ));
}

#[test]
fn versions_are_logged_once_downloaded_and_traced() {
    let Some(url) = fresh_database() else {
        return;
    };
    let store = PgStore::connect(&url).unwrap();
    let shared = tempfile::tempdir().unwrap();
    store
        .use_artifact_location(&ArtifactLocation::Folder(shared.path().join("contents")))
        .unwrap();
    let run = store.create_run(&new_run("data", "prep")).unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir(data.path().join("split")).unwrap();
    std::fs::write(data.path().join("split/train.csv"), "a,b\n1,2\n").unwrap();
    std::fs::write(data.path().join("readme.txt"), "v1").unwrap();
    let version = NewArtifactVersion {
        project: "data".into(),
        name: "corpus".into(),
        kind: "dataset".into(),
        sources: vec![VersionSource::Dir {
            path: data.path().to_path_buf(),
            prefix: String::new(),
        }],
        run_id: Some(run.id.clone()),
        now_ms: 5,
        ..Default::default()
    };
    let logged = store.log_artifact_version(&version).unwrap();
    assert!(logged.created);
    assert_eq!(logged.version.files, 2);
    // The same contents again: the same version, nothing stored.
    let again = store.log_artifact_version(&version).unwrap();
    assert!(!again.created);
    assert_eq!(again.version.id, logged.version.id);
    let resolved = store
        .resolve_artifact(Some("data"), "corpus:latest")
        .unwrap();
    assert_eq!(resolved.id, logged.version.id);
    let out = tempfile::tempdir().unwrap();
    store
        .download_artifact_version(&resolved, out.path(), Placement::Copy)
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(out.path().join("split/train.csv")).unwrap(),
        "a,b\n1,2\n"
    );
    let graph = store.lineage(&LineageStart::Run(run.id.clone())).unwrap();
    assert_eq!(graph.edges.len(), 1);
    // Deleted and collected: its contents leave the shared folder.
    store.delete_artifact_version(resolved.id, 9).unwrap();
    let report = store.gc(false, 10).unwrap();
    assert_eq!(report.versions_purged.len(), 1);
    assert_eq!(report.blobs.len(), 2);
}
