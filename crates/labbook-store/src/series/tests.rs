use std::collections::BTreeMap;

use labbook_core::Point;

use super::*;

/// A backend in memory: the chunk table the writer's plans act on.
#[derive(Default)]
struct Table {
    next_id: i64,
    rows: BTreeMap<i64, EncodedChunk>,
}

impl Table {
    fn commit(&mut self, plan: &SeriesPlan) -> Vec<i64> {
        for id in &plan.deletes {
            assert!(
                self.rows.remove(id).is_some(),
                "deleted a row that is not there: {id}"
            );
        }
        plan.inserts
            .iter()
            .map(|c| {
                self.next_id += 1;
                self.rows.insert(self.next_id, c.clone());
                self.next_id
            })
            .collect()
    }

    fn read(&self, key: &str) -> SeriesColumns {
        let mut chunks: Vec<(&i64, &EncodedChunk)> =
            self.rows.iter().filter(|(_, c)| c.key == key).collect();
        chunks.sort_by_key(|(id, c)| (c.meta.step_min, **id));
        let mut out = SeriesColumns::default();
        for (_, c) in chunks {
            codec::decode_into(&c.data, &mut out).unwrap();
        }
        out.sort_by_step();
        out
    }
}

fn points(range: std::ops::Range<i64>) -> SeriesColumns {
    let mut s = SeriesColumns::default();
    for i in range {
        s.push(Point {
            step: i,
            ts_ms: 1_000 + i,
            value: (i as f64).sqrt(),
        });
    }
    s
}

fn flush(
    writer: &mut SeriesWriter,
    table: &mut Table,
    new: Vec<(String, SeriesColumns)>,
    seal: bool,
) {
    let plan = writer.plan(new, seal).unwrap();
    let ids = table.commit(&plan);
    writer.apply(plan, &ids);
}

#[test]
fn slow_logging_keeps_few_rows_and_every_point() {
    let mut writer = SeriesWriter::new();
    let mut table = Table::default();
    let mut max_rows = 0;
    for i in 0..5_000 {
        flush(
            &mut writer,
            &mut table,
            vec![("loss".into(), points(i..i + 1))],
            false,
        );
        max_rows = max_rows.max(table.rows.len());
    }
    assert_eq!(table.read("loss"), points(0..5_000));
    assert!(
        max_rows <= 4 * TAIL_FANOUT,
        "{max_rows} rows for one slow series"
    );
    flush(&mut writer, &mut table, vec![], true);
    assert_eq!(table.rows.len(), 1, "finish seals the tail into one chunk");
    assert!(table.rows.values().all(|c| c.level == SEALED_LEVEL));
    assert_eq!(table.read("loss"), points(0..5_000));
    assert_eq!(writer.tail_points(), 0);
}

#[test]
fn bulk_writes_seal_full_chunks_and_keep_the_rest_in_a_tail() {
    let mut writer = SeriesWriter::new();
    let mut table = Table::default();
    let n = SEAL_POINTS as i64 * 3 + 100;
    flush(
        &mut writer,
        &mut table,
        vec![("x".into(), points(0..n))],
        false,
    );
    let sealed = table
        .rows
        .values()
        .filter(|c| c.level == SEALED_LEVEL)
        .count();
    assert_eq!(sealed, 3);
    assert_eq!(writer.tail_points(), 100);
    flush(
        &mut writer,
        &mut table,
        vec![("x".into(), points(n..n + 10))],
        false,
    );
    assert_eq!(table.read("x"), points(0..n + 10));
}

#[test]
fn a_failed_commit_changes_nothing_and_can_be_retried() {
    let mut writer = SeriesWriter::new();
    let mut table = Table::default();
    flush(
        &mut writer,
        &mut table,
        vec![("x".into(), points(0..10))],
        false,
    );
    // A plan that is never committed (the transaction failed) …
    let lost = writer
        .plan(vec![("x".into(), points(10..20))], false)
        .unwrap();
    drop(lost);
    // … leaves the writer as it was, so the same points go again.
    flush(
        &mut writer,
        &mut table,
        vec![("x".into(), points(10..20))],
        false,
    );
    assert_eq!(table.read("x"), points(0..20));
}

#[test]
fn summaries_cover_only_new_points() {
    let writer = SeriesWriter::new();
    let plan = writer
        .plan(
            vec![("a".into(), points(0..4)), ("b".into(), points(0..0))],
            false,
        )
        .unwrap();
    assert_eq!(plan.summaries.len(), 1);
    assert_eq!(plan.summaries[0].1.count, 4);
    assert_eq!(plan.summaries[0].1.last, 3f64.sqrt());
}

#[test]
fn mismatched_columns_are_rejected_with_the_key() {
    let writer = SeriesWriter::new();
    let mut bad = points(0..3);
    bad.values.pop();
    let err = writer
        .plan(vec![("train/loss".into(), bad)], false)
        .unwrap_err();
    assert!(err.to_string().contains("train/loss"), "{err}");
}

#[test]
fn downsampling_keeps_spikes_and_ends() {
    let mut s = SeriesColumns::default();
    for i in 0..100_000 {
        let value = if i == 54_321 {
            1e9
        } else if i == 77_777 {
            -1e9
        } else {
            (i % 100) as f64
        };
        s.push(Point {
            step: i,
            ts_ms: i,
            value,
        });
    }
    let mut d = Downsampler::new(0, 99_999, 1000);
    d.add(&s);
    let out = d.finish();
    assert!(out.len() <= 4000, "{}", out.len());
    assert_eq!(out.steps.first(), Some(&0));
    assert_eq!(out.steps.last(), Some(&99_999));
    assert!(out.values.contains(&1e9) && out.values.contains(&-1e9));
    assert!(out.is_step_sorted());
}

#[test]
fn downsamplers_merge_like_one() {
    let s = points(0..10_000);
    let mut whole = Downsampler::new(0, 9_999, 100);
    whole.add(&s);
    let (mut a, mut b) = (
        Downsampler::new(0, 9_999, 100),
        Downsampler::new(0, 9_999, 100),
    );
    let half = SeriesColumns {
        steps: s.steps[..5_000].to_vec(),
        ts_ms: s.ts_ms[..5_000].to_vec(),
        values: s.values[..5_000].to_vec(),
    };
    let rest = SeriesColumns {
        steps: s.steps[5_000..].to_vec(),
        ts_ms: s.ts_ms[5_000..].to_vec(),
        values: s.values[5_000..].to_vec(),
    };
    a.add(&rest);
    b.add(&half);
    a.merge(b);
    assert_eq!(a.finish(), whole.finish());
}

use proptest::prelude::*;

proptest! {
    /// A chunk of ascending steps takes the run-at-a-time path; one point at
    /// a time takes the point-by-point rule. Both keep the same points,
    /// NaNs, ties and infinities included, and a later out-of-order chunk
    /// (the general path) lands in the same buckets either way.
    #[test]
    fn a_chunk_downsamples_as_its_points_one_by_one(
        gaps in proptest::collection::vec(1i64..40, 1..400),
        values in proptest::collection::vec(proptest::prop_oneof![
            Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(1.0), (-5i32..5).prop_map(f64::from)
        ], 400),
        late in proptest::collection::vec((0i64..8000, -3i32..3), 0..20),
        buckets in 1usize..60,
    ) {
        let mut chunk = SeriesColumns::default();
        let mut step = -7;
        for (i, gap) in gaps.iter().enumerate() {
            step += gap;
            chunk.push(Point { step, ts_ms: i as i64, value: values[i] });
        }
        let mut unordered = SeriesColumns::default();
        for &(step, v) in &late {
            unordered.push(Point { step, ts_ms: 5, value: f64::from(v) });
        }
        let (lo, hi) = (-10, step.max(8000));
        let mut whole = Downsampler::new(lo, hi, buckets);
        whole.add(&chunk);
        whole.add(&unordered);
        let mut single = Downsampler::new(lo, hi, buckets);
        for i in 0..chunk.len() {
            single.add(&SeriesColumns { steps: vec![chunk.steps[i]], ts_ms: vec![chunk.ts_ms[i]], values: vec![chunk.values[i]] });
        }
        single.add(&unordered);
        prop_assert_eq!(whole.seen(), single.seen());
        let (a, b) = (whole.finish(), single.finish());
        prop_assert_eq!(&a.steps, &b.steps);
        prop_assert_eq!(&a.ts_ms, &b.ts_ms);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&a.values), bits(&b.values));
    }
}
