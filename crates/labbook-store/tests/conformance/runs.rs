//! Runs and their series, as every caller of the `Store` trait uses them.

use std::collections::BTreeMap;

use labbook_core::config::config_from_json;
use labbook_core::query::{parse_filter, parse_sort};
use labbook_core::{RunStatus, SeriesColumns};
use labbook_store::series::SeriesWriter;
use labbook_store::*;
use serde_json::json;

use crate::common::{
    Backend, LONG_RUN, LONG_RUN_SPIKES, downsampled_from_every_point, log, log_long_run, new_run,
    same, series,
};

pub fn runs_are_created_listed_filtered_and_sorted(b: &Backend) {
    let store = b.open();
    for (lr, loss) in [(0.1, 0.5), (0.01, 0.2), (0.001, 0.9)] {
        let mut new = new_run("mnist");
        new.config = config_from_json(&json!({"lr": lr, "model": {"depth": 4}})).unwrap();
        new.tags = vec!["grid".into()];
        let run = store.create_run(&new).unwrap();
        assert_eq!(run.status, RunStatus::Running);
        assert_eq!(run.id.len(), 8);
        assert_eq!(run.name.split('-').count(), 3);
        let mut writer = SeriesWriter::new();
        log(
            &*store,
            &mut writer,
            &run.id,
            vec![("val/loss".into(), series(0..3, |i| loss + (2 - i) as f64))],
            true,
        );
        store
            .update_run(
                &run.id,
                &RunPatch {
                    status: Some(RunStatus::Finished),
                    ended_ms: Some(2_000),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    store.create_run(&new_run("other")).unwrap();

    let query = RunQuery {
        project: Some("mnist".into()),
        filter: Some(parse_filter("config.lr > 0.005 and status = 'finished'").unwrap()),
        sort: parse_sort("metrics.val/loss").unwrap(),
        ..Default::default()
    };
    let runs = store.list_runs(&query).unwrap();
    let losses: Vec<f64> = runs.iter().map(|r| r.metrics["val/loss"].last).collect();
    assert_eq!(losses, vec![0.2, 0.5]);
    assert_eq!(
        runs[0].config["model.depth"],
        labbook_core::ConfigValue::Int(4)
    );
    assert_eq!(runs[0].metrics["val/loss"].count, 3);
    assert_eq!(runs[0].metrics["val/loss"].min, Some(0.2));
    assert_eq!(runs[0].metrics["val/loss"].max, Some(2.2));

    let projects = store.list_projects().unwrap();
    let names: Vec<&str> = projects.iter().map(|p| p.project.name.as_str()).collect();
    assert!(names.contains(&"mnist") && names.contains(&"other"));
    assert_eq!(
        projects
            .iter()
            .find(|p| p.project.name == "other")
            .unwrap()
            .running,
        1
    );
}

pub fn runs_resolve_by_id_prefix_and_name(b: &Backend) {
    let store = b.open();
    let mut new = new_run("p");
    new.name = Some("baseline".into());
    let run = store.create_run(&new).unwrap();
    assert_eq!(store.resolve_run(&run.id[..5], None).unwrap().id, run.id);
    assert_eq!(store.resolve_run("baseline", None).unwrap().id, run.id);
    store.create_run(&new).unwrap();
    let err = store.resolve_run("baseline", None).unwrap_err();
    assert!(matches!(err, StoreError::Ambiguous { .. }), "{err}");
    assert!(matches!(
        store.resolve_run("nope", None),
        Err(StoreError::NotFound { .. })
    ));
}

pub fn explicit_ids_conflict_and_bad_input_is_named(b: &Backend) {
    let store = b.open();
    let mut new = new_run("p");
    new.id = Some("myrun".into());
    store.create_run(&new).unwrap();
    assert!(matches!(
        store.create_run(&new),
        Err(StoreError::Conflict(_))
    ));
    new.id = Some("../etc".into());
    assert!(
        store
            .create_run(&new)
            .unwrap_err()
            .to_string()
            .starts_with("id:")
    );
    let mut new = new_run("p");
    new.tags = vec!["a,b".into()];
    assert!(
        store
            .create_run(&new)
            .unwrap_err()
            .to_string()
            .contains("tag")
    );
    let err = store.create_run(&new_run("")).unwrap_err();
    assert!(err.to_string().starts_with("project:"), "{err}");
}

pub fn patches_merge_tags_config_and_summary(b: &Backend) {
    let store = b.open();
    let run = store.create_run(&new_run("p")).unwrap();
    let mut summary = BTreeMap::new();
    summary.insert("best_acc".to_string(), json!(0.97));
    let patch = RunPatch {
        add_tags: vec!["a".into(), "b".into()],
        config: Some(config_from_json(&json!({"lr": 0.5})).unwrap()),
        summary,
        notes: Some("why".into()),
        ..Default::default()
    };
    store.update_run(&run.id, &patch).unwrap();
    store
        .update_run(
            &run.id,
            &RunPatch {
                remove_tags: vec!["a".into()],
                ..Default::default()
            },
        )
        .unwrap();
    let run = store.get_run(&run.id).unwrap();
    assert_eq!(run.tags, vec!["b"]);
    assert_eq!(run.summary["best_acc"], json!(0.97));
    assert_eq!(run.notes.as_deref(), Some("why"));
    assert_eq!(run.config["lr"], labbook_core::ConfigValue::Float(0.5));
}

pub fn nan_and_infinities_round_trip(b: &Backend) {
    let store = b.open();
    let run = store.create_run(&new_run("p")).unwrap();
    let specials = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 1.5];
    let mut writer = SeriesWriter::new();
    log(
        &*store,
        &mut writer,
        &run.id,
        vec![("x".into(), series(0..5, |i| specials[i as usize]))],
        false,
    );
    let back = store.read_series(&run.id, "x", StepRange::ALL).unwrap();
    let bits: Vec<u64> = back.values.iter().map(|v| v.to_bits()).collect();
    assert_eq!(
        bits,
        specials.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    let summary = &store.get_run(&run.id).unwrap().metrics["x"];
    assert_eq!(
        (summary.min, summary.max, summary.last),
        (Some(f64::NEG_INFINITY), Some(f64::INFINITY), 1.5)
    );
    // NaN as the last value is kept as NaN, not lost as SQL NULL.
    log(
        &*store,
        &mut writer,
        &run.id,
        vec![("x".into(), series(5..6, |_| f64::NAN))],
        false,
    );
    assert!(store.get_run(&run.id).unwrap().metrics["x"].last.is_nan());
}

pub fn ranges_and_downsampling_read_the_right_points(b: &Backend) {
    let store = b.open();
    let run = store.create_run(&new_run("p")).unwrap();
    let mut writer = SeriesWriter::new();
    let n = 200_000;
    log(
        &*store,
        &mut writer,
        &run.id,
        vec![(
            "y".into(),
            series(0..n, |i| if i == 123_456 { 99.0 } else { (i % 7) as f64 }),
        )],
        false,
    );
    let all = store.read_series(&run.id, "y", StepRange::ALL).unwrap();
    assert_eq!(
        all,
        series(0..n, |i| if i == 123_456 { 99.0 } else { (i % 7) as f64 })
    );
    let part = store
        .read_series(
            &run.id,
            "y",
            StepRange {
                lo: Some(70_000),
                hi: Some(70_009),
            },
        )
        .unwrap();
    assert_eq!(part.steps, (70_000..70_010).collect::<Vec<_>>());
    let (down, total) = store
        .downsample(&run.id, "y", StepRange::ALL, 500, true)
        .unwrap();
    assert_eq!(total, n as usize);
    assert!(down.len() <= 2000 && down.len() >= 500, "{}", down.len());
    assert!(down.values.contains(&99.0));
    assert_eq!((down.steps[0], *down.steps.last().unwrap()), (0, n - 1));
    let (zoom, zoom_total) = store
        .downsample(
            &run.id,
            "y",
            StepRange {
                lo: Some(123_400),
                hi: Some(123_500),
            },
            1000,
            true,
        )
        .unwrap();
    assert_eq!(
        (zoom.len(), zoom_total),
        (101, 101),
        "a zoomed range with fewer points than buckets comes back whole"
    );
    let (few, few_total) = store
        .downsample(
            &run.id,
            "y",
            StepRange {
                lo: Some(0),
                hi: Some(3_999),
            },
            1000,
            true,
        )
        .unwrap();
    assert_eq!(few_total, 4_000);
    let (no_ts, _) = store
        .downsample(&run.id, "y", StepRange::ALL, 500, false)
        .unwrap();
    assert_eq!(
        (no_ts.steps.clone(), no_ts.values.clone()),
        (down.steps.clone(), down.values.clone())
    );
    assert!(
        no_ts.ts_ms.iter().all(|&t| t == 0),
        "timestamps skipped, not decoded"
    );
    assert!(few.len() < 4_000 && few.len() >= 1_000, "{}", few.len());
    assert!(matches!(
        store.read_series(&run.id, "nope", StepRange::ALL),
        Err(StoreError::NotFound { .. })
    ));
}

pub fn retried_batches_apply_once(b: &Backend) {
    let store = b.open();
    let run = store.create_run(&new_run("p")).unwrap();
    let writer = SeriesWriter::new();
    let write = WriteSet {
        run_id: run.id.clone(),
        batch_id: Some("b-1".into()),
        series: writer
            .plan(vec![("x".into(), series(0..10, |i| i as f64))], false)
            .unwrap(),
        ..Default::default()
    };
    assert!(store.commit(&write).unwrap().is_some());
    assert!(store.commit(&write).unwrap().is_none());
    assert_eq!(
        store
            .read_series(&run.id, "x", StepRange::ALL)
            .unwrap()
            .len(),
        10
    );
    assert_eq!(store.get_run(&run.id).unwrap().metrics["x"].count, 10);
}

/// Commits one flush of `new` through `writer`; the ids of the chunks it inserted.
fn flush(
    store: &dyn Store,
    writer: &mut SeriesWriter,
    run: &str,
    new: Vec<(String, SeriesColumns)>,
) -> Vec<i64> {
    let write = WriteSet {
        run_id: run.into(),
        series: writer.plan(new, false).unwrap(),
        heartbeat_ms: Some(9_000),
        ..Default::default()
    };
    let ids = store.commit(&write).unwrap().unwrap();
    writer.apply(write.series, &ids);
    ids
}

/// The reaper compacts run A's tails and frees their chunk ids; run B's new
/// tails take those ids; then A's writer, back from its stall, merges what
/// it still takes for its tails. Its deletes must not find B's chunks.
pub fn a_writer_back_after_the_reaper_cannot_delete_another_runs_tails_under_reused_ids(
    backend: &Backend,
) {
    let store = backend.open();
    let a = store.create_run(&new_run("p")).unwrap();
    let mut writer_a = SeriesWriter::new();
    // One tier-1 row, then seven tier-0 rows: the next flush merges just
    // those seven, not the first row.
    flush(
        &*store,
        &mut writer_a,
        &a.id,
        vec![("x".into(), series(0..8, |i| i as f64))],
    );
    for step in 8..15 {
        flush(
            &*store,
            &mut writer_a,
            &a.id,
            vec![("x".into(), series(step..step + 1, |i| i as f64))],
        );
    }
    let reaped = store
        .reap_stale_runs(10_000, Some("h"), &|_| false)
        .unwrap();
    assert_eq!(reaped, vec![a.id.clone()]);
    let b = store.create_run(&new_run("p")).unwrap();
    let mut writer_b = SeriesWriter::new();
    let mut b_ids = Vec::new();
    for step in 0..7 {
        b_ids.extend(flush(
            &*store,
            &mut writer_b,
            &b.id,
            vec![("x".into(), series(step..step + 1, |i| -i as f64))],
        ));
    }

    let plan = writer_a
        .plan(vec![("x".into(), series(15..16, |i| i as f64))], false)
        .unwrap();
    if backend.reuses_ids() {
        // What the bug needed: every id A's writer would delete is now a tail of B.
        assert_eq!(plan.deletes, b_ids, "the freed ids were reused by run B");
    } else {
        assert!(plan.deletes.iter().all(|id| !b_ids.contains(id)));
    }
    let write = WriteSet {
        run_id: a.id.clone(),
        series: plan,
        heartbeat_ms: Some(9_500),
        ..Default::default()
    };
    match store.commit(&write) {
        Err(StoreError::StaleTails(_)) => {}
        other => panic!("a delete of another run's tails must be refused, got {other:?}"),
    }
    assert_eq!(
        store.read_series(&b.id, "x", StepRange::ALL).unwrap(),
        series(0..7, |i| -i as f64),
        "run B's chunks are untouched"
    );
    assert_eq!(
        store.read_series(&a.id, "x", StepRange::ALL).unwrap(),
        series(0..15, |i| i as f64),
        "nothing of the refused write is stored"
    );

    // As the writer does on StaleTails: drop the tails, plan again.
    let mut writer_a = SeriesWriter::new();
    flush(
        &*store,
        &mut writer_a,
        &a.id,
        vec![("x".into(), series(15..16, |i| i as f64))],
    );
    assert_eq!(
        store.read_series(&a.id, "x", StepRange::ALL).unwrap(),
        series(0..16, |i| i as f64),
        "every point of A once"
    );
    assert_eq!(store.get_run(&a.id).unwrap().metrics["x"].count, 16);
    assert_eq!(
        store.read_series(&b.id, "x", StepRange::ALL).unwrap(),
        series(0..7, |i| -i as f64)
    );
    assert_eq!(
        store.get_run(&a.id).unwrap().status,
        RunStatus::Running,
        "its heartbeat revived it"
    );
}

pub fn stale_runs_are_reaped_as_crashed_and_compacted(b: &Backend) {
    let store = b.open();
    let run = store.create_run(&new_run("p")).unwrap();
    let mut writer = SeriesWriter::new();
    for i in 0..20 {
        log(
            &*store,
            &mut writer,
            &run.id,
            vec![("x".into(), series(i..i + 1, |i| i as f64))],
            false,
        );
    }
    drop(writer); // the process died: its tails stay as they were
    let alive_elsewhere = store
        .reap_stale_runs(10_000, Some("other-host"), &|_| false)
        .unwrap();
    assert!(
        alive_elsewhere.is_empty(),
        "another host's fresh run is not ours to judge"
    );
    let reaped = store
        .reap_stale_runs(10_000, Some("h"), &|_| false)
        .unwrap();
    assert_eq!(reaped, vec![run.id.clone()]);
    let run = store.get_run(&run.id).unwrap();
    assert_eq!(run.status, RunStatus::Crashed);
    assert_eq!(run.ended_ms, Some(9_000));
    assert_eq!(
        store.read_series(&run.id, "x", StepRange::ALL).unwrap(),
        series(0..20, |i| i as f64)
    );
    let timed_out = store.create_run(&new_run("p")).unwrap();
    let reaped = store
        .reap_stale_runs(1_000 + 61_000, None, &|_| true)
        .unwrap();
    assert_eq!(reaped, vec![timed_out.id]);
}

pub fn soft_delete_hides_and_restore_brings_back(b: &Backend) {
    let store = b.open();
    let run = store.create_run(&new_run("p")).unwrap();
    store.delete_run(&run.id, 5).unwrap();
    assert!(store.list_runs(&RunQuery::default()).unwrap().is_empty());
    let deleted = store
        .list_runs(&RunQuery {
            deleted: Deleted::Only,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(deleted[0].deleted_ms, Some(5));
    store.restore_run(&run.id).unwrap();
    assert_eq!(store.list_runs(&RunQuery::default()).unwrap().len(), 1);
}

pub fn output_notes_and_environment_are_kept(b: &Backend) {
    let store = b.open();
    let run = store.create_run(&new_run("p")).unwrap();
    let write = WriteSet {
        run_id: run.id.clone(),
        output: vec![
            OutputChunk {
                stream: OutputStream::Stdout,
                ts_ms: 1,
                data: b"epoch 1\n".to_vec(),
            },
            OutputChunk {
                stream: OutputStream::Stderr,
                ts_ms: 2,
                data: b"warning\n".to_vec(),
            },
        ],
        ..Default::default()
    };
    store.commit(&write).unwrap();
    let out = store.read_output(&run.id).unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].stream, OutputStream::Stderr);
    store.add_note(&run.id, "lr too high, diverged", 3).unwrap();
    assert_eq!(
        store.notes(&run.id).unwrap()[0].text,
        "lr too high, diverged"
    );
    assert!(store.add_note(&run.id, "  ", 3).is_err());
    store
        .set_environment(&run.id, &json!({"git": {"commit": "abc"}}))
        .unwrap();
    assert_eq!(
        store.environment(&run.id).unwrap().unwrap()["git"]["commit"],
        "abc"
    );
}

pub fn sixteen_connections_write_at_once_without_losing_a_point(b: &Backend) {
    let per_writer = 2_000i64;
    let ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|w| {
                scope.spawn(move || {
                    let store = b.open();
                    let run = store.create_run(&new_run("conc")).unwrap();
                    let mut writer = SeriesWriter::new();
                    for batch in 0..20 {
                        let lo = batch * per_writer / 20;
                        let s = series(lo..lo + per_writer / 20, move |i| {
                            (w * 1_000_000 + i) as f64
                        });
                        log(
                            &*store,
                            &mut writer,
                            &run.id,
                            vec![("x".into(), s)],
                            batch == 19,
                        );
                    }
                    run.id
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let store = b.open();
    for id in ids {
        let s = store.read_series(&id, "x", StepRange::ALL).unwrap();
        assert_eq!(s.len(), per_writer as usize);
        assert_eq!(
            store.get_run(&id).unwrap().metrics["x"].count,
            per_writer as u64
        );
    }
}

pub fn a_warm_listing_sees_what_other_connections_wrote(b: &Backend) {
    let reader = b.open();
    let writer = b.open();
    let first = writer.create_run(&new_run("p")).unwrap();
    assert_eq!(reader.list_runs(&RunQuery::default()).unwrap().len(), 1);

    let second = writer.create_run(&new_run("p")).unwrap();
    writer
        .update_run(
            &first.id,
            &RunPatch {
                status: Some(RunStatus::Finished),
                add_tags: vec!["done".into()],
                ..Default::default()
            },
        )
        .unwrap();
    let mut series_writer = SeriesWriter::new();
    log(
        &*writer,
        &mut series_writer,
        &second.id,
        vec![("loss".into(), series(0..5, |i| i as f64))],
        false,
    );
    writer.delete_run(&first.id, 7).unwrap();

    let listed = reader.list_runs(&RunQuery::default()).unwrap();
    assert_eq!(listed.len(), 1, "the deleted run drops out");
    assert_eq!(
        listed[0].metrics["loss"].count, 5,
        "new metric summaries show"
    );
    let deleted = reader
        .list_runs(&RunQuery {
            deleted: Deleted::Only,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        (deleted[0].status, deleted[0].tags.clone()),
        (RunStatus::Finished, vec!["done".to_string()])
    );
    log(
        &*writer,
        &mut series_writer,
        &second.id,
        vec![("loss".into(), series(5..7, |i| i as f64))],
        false,
    );
    assert_eq!(
        reader.list_runs(&RunQuery::default()).unwrap()[0].metrics["loss"].count,
        7
    );
}

pub fn starting_resuming_and_repeating_a_start_follow_init_rules(b: &Backend) {
    use labbook_store::session::{OpenRun, Resume, open_run};
    let store = b.open();
    let start = OpenRun {
        run: NewRun {
            id: Some("exp-1".into()),
            project: "p".into(),
            created_ms: 10_000,
            host: Some("h".into()),
            pid: Some(42),
            ..Default::default()
        },
        ..Default::default()
    };
    let alive = |pid: u32| pid == 42;
    let first = open_run(&*store, &start, 10_000, Some("h"), &alive).unwrap();
    assert_eq!(first.record.id, "exp-1");
    // The same process repeating its start (a lost answer) gets the same run.
    let again = open_run(&*store, &start, 10_500, Some("h"), &alive).unwrap();
    assert_eq!(again.record.id, "exp-1");
    assert!(!again.resumed);
    let mut write = WriteSet {
        run_id: "exp-1".into(),
        ..Default::default()
    };
    write.series = SeriesWriter::new()
        .plan(vec![("loss".into(), series(0..7, |i| i as f64))], true)
        .unwrap();
    store.commit(&write).unwrap();
    // Another process: an id in use needs resume, and a live run is not taken over.
    let other = OpenRun {
        run: NewRun {
            pid: Some(43),
            created_ms: 11_000,
            ..start.run.clone()
        },
        ..start.clone()
    };
    let e = open_run(&*store, &other, 11_000, Some("h"), &alive).unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    let resume = OpenRun {
        resume: Resume::Allow,
        ..other.clone()
    };
    let e = open_run(&*store, &resume, 11_000, Some("h"), &alive).unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    // Once pid 42 is gone, the run resumes where it stopped.
    let resumed = open_run(&*store, &resume, 11_000, Some("h"), &|_| false).unwrap();
    assert!(resumed.resumed);
    assert_eq!(resumed.next_step, 7);
    assert_eq!(resumed.record.pid, Some(43));
    assert_eq!(resumed.record.status, RunStatus::Running);
    let must = OpenRun {
        run: NewRun {
            id: Some("nope".into()),
            ..other.run.clone()
        },
        resume: Resume::Must,
        ..other
    };
    assert!(open_run(&*store, &must, 11_000, Some("h"), &alive).is_err());
}

/// What a chart of a long run sees when sealed chunks are read through
/// their sketches: real points only, every spike, the curve's ends, and
/// each bucket's extremes exact or, near a bucket edge, one bucket over.
pub fn a_long_runs_downsample_reads_sketches_and_keeps_every_spike(b: &Backend) {
    let store = b.open();
    let (run, all) = log_long_run(&*store);
    let n = LONG_RUN;
    let buckets = 500;
    let exact = downsampled_from_every_point(&all, buckets);
    let (down, total) = store
        .downsample(&run, "y", StepRange::ALL, buckets, true)
        .unwrap();
    assert_eq!(total, n as usize);
    assert!(down.len() <= 4 * buckets, "{} points", down.len());
    assert!(!same(&down, &exact), "the sketches were not used");
    // Real points, in step order, with their own times.
    assert!(down.steps.windows(2).all(|w| w[0] < w[1]));
    for i in 0..down.len() {
        let k = down.steps[i] as usize;
        assert_eq!(down.ts_ms[i], all.ts_ms[k]);
        assert_eq!(
            down.values[i].to_bits(),
            all.values[k].to_bits(),
            "step {k}"
        );
    }
    for spike in LONG_RUN_SPIKES {
        assert!(down.steps.contains(&spike), "spike at {spike} lost");
    }
    assert!(down.values.contains(&-500.0));
    assert!(down.values.iter().any(|v| v.is_nan()), "the gap is lost");
    assert_eq!(
        (down.steps[0], down.steps.last().copied()),
        (0, Some(n - 1))
    );
    // Per bucket: never beyond the true extremes, and a true extreme missed
    // only where a neighbouring bucket shows one at least as far out.
    let width = n as f64 / buckets as f64;
    let bucket = |s: i64| ((s as f64 / width) as usize).min(buckets - 1);
    let extremes = |pts: &SeriesColumns| {
        let mut out = vec![(f64::INFINITY, f64::NEG_INFINITY); buckets];
        for (s, v) in pts
            .steps
            .iter()
            .zip(&pts.values)
            .filter(|(_, v)| !v.is_nan())
        {
            let e = &mut out[bucket(*s)];
            *e = (e.0.min(*v), e.1.max(*v));
        }
        out
    };
    let (got, want) = (extremes(&down), extremes(&exact));
    for b in 0..buckets {
        assert!(got[b].0 >= want[b].0 && got[b].1 <= want[b].1, "bucket {b}");
        let near = b.saturating_sub(1)..=(b + 1).min(buckets - 1);
        let lo = near.clone().map(|k| got[k].0).fold(f64::INFINITY, f64::min);
        let hi = near.map(|k| got[k].1).fold(f64::NEG_INFINITY, f64::max);
        assert!(
            lo <= want[b].0 && hi >= want[b].1,
            "bucket {b}: {:?} vs {:?}",
            got[b],
            want[b]
        );
    }
    // Without wall times the picks come back with 0, as decoded chunks do.
    let (no_ts, _) = store
        .downsample(&run, "y", StepRange::ALL, buckets, false)
        .unwrap();
    assert_eq!(no_ts.steps, down.steps);
    assert!(no_ts.ts_ms.iter().all(|&t| t == 0));
    // Few buckets per cell: the chunks themselves, exactly.
    let (fine, _) = store
        .downsample(&run, "y", StepRange::ALL, 5_000, true)
        .unwrap();
    assert!(same(&fine, &downsampled_from_every_point(&all, 5_000)));
}
