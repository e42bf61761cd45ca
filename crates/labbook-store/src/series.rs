//! The metric series engine, independent of the backend that stores chunks.
//!
//! A series is a set of chunk rows. Sealed chunks hold `SEAL_POINTS` points
//! (the last one of a finished run may hold fewer). Points that do not fill a
//! sealed chunk yet live in *tail* rows owned by the one writer that logged
//! them. Every flush appends one tail row; whenever `TAIL_FANOUT` trailing
//! rows share a size tier they are merged into one, so a point is rewritten
//! about log₈(SEAL_POINTS) ≈ 5 times before it is sealed and a slow logger
//! leaves at most a few dozen rows per series, never one row per flush.
//!
//! Planning (encoding) happens before the backend's transaction and touches
//! no shared state; the writer's in-memory tail changes only after the
//! commit succeeded, so a failed commit (disk full, lock timeout) can be
//! retried with the same points and nothing is lost or written twice.

use std::collections::HashMap;
use std::thread;

use labbook_core::{SeriesColumns, SeriesSummary};

use crate::codec;
use crate::error::StoreError;
use crate::sketch::Sketch;

pub const SEAL_POINTS: usize = 65_536;
pub const TAIL_FANOUT: usize = 8;
/// The `level` of a sealed chunk; tail rows have levels 0..=SEALED_LEVEL-1.
pub const SEALED_LEVEL: u8 = u8::MAX;

/// Where a chunk sits in its series, kept beside the encoded bytes so that
/// range reads and summaries need not decode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkMeta {
    pub n: usize,
    pub step_min: i64,
    pub step_max: i64,
    pub ts_min: i64,
    pub ts_max: i64,
    /// Ignoring NaN; `None` when every value is NaN.
    pub v_min: Option<f64>,
    pub v_max: Option<f64>,
}

impl ChunkMeta {
    pub fn of(points: &SeriesColumns) -> ChunkMeta {
        Self::of_slices(&points.steps, &points.ts_ms, &points.values)
    }

    pub fn of_slices(steps: &[i64], ts_ms: &[i64], values: &[f64]) -> ChunkMeta {
        let mut meta = ChunkMeta {
            n: steps.len(),
            step_min: i64::MAX,
            step_max: i64::MIN,
            ts_min: i64::MAX,
            ts_max: i64::MIN,
            v_min: None,
            v_max: None,
        };
        for &s in steps {
            meta.step_min = meta.step_min.min(s);
            meta.step_max = meta.step_max.max(s);
        }
        for &t in ts_ms {
            meta.ts_min = meta.ts_min.min(t);
            meta.ts_max = meta.ts_max.max(t);
        }
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        let mut any = false;
        for &v in values {
            if !v.is_nan() {
                any = true;
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        if any {
            meta.v_min = Some(lo);
            meta.v_max = Some(hi);
        }
        meta
    }
}

/// A chunk ready to be inserted.
#[derive(Debug, Clone)]
pub struct EncodedChunk {
    pub key: String,
    pub level: u8,
    pub meta: ChunkMeta,
    pub data: Vec<u8>,
    /// Sealed chunks only (`crate::sketch`).
    pub sketch: Option<Vec<u8>>,
}

impl EncodedChunk {
    pub fn encode(
        key: String,
        level: u8,
        steps: &[i64],
        ts_ms: &[i64],
        values: &[f64],
    ) -> Result<EncodedChunk, StoreError> {
        let sketch = if level == SEALED_LEVEL {
            crate::sketch::build(steps, ts_ms, values)?
        } else {
            None
        };
        Ok(EncodedChunk {
            meta: ChunkMeta::of_slices(steps, ts_ms, values),
            data: codec::encode_slices(steps, ts_ms, values)?,
            sketch,
            key,
            level,
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct TailRow {
    id: Option<i64>,
    level: u8,
    n: usize,
}

#[derive(Debug, Default)]
struct KeyTail {
    points: SeriesColumns,
    rows: Vec<TailRow>,
}

/// Chunk operations for one flush, and how to update the writer once the
/// backend has committed them.
#[derive(Debug, Default)]
pub struct SeriesPlan {
    pub inserts: Vec<EncodedChunk>,
    pub deletes: Vec<i64>,
    pub summaries: Vec<(String, SeriesSummary)>,
    updates: Vec<KeyUpdate>,
}

#[derive(Debug)]
struct KeyUpdate {
    key: String,
    new_points: SeriesColumns,
    drain_front: usize,
    rows: Vec<TailRow>,
    /// For each row with `id: None`, its index into `inserts`.
    insert_index: Vec<usize>,
}

fn tier(n: usize) -> u8 {
    // Size tiers of 8×: 1–7 points tier 0, 8–63 tier 1, …
    (n.max(1).ilog(TAIL_FANOUT) as u8).min(SEALED_LEVEL - 1)
}

/// One writer's view of the series it appends to. Not shared: each process
/// (and each run within it) has its own.
#[derive(Debug, Default)]
pub struct SeriesWriter {
    tails: HashMap<String, KeyTail>,
}

/// A chunk to encode: points `[start, end)` of a key's tail followed by its
/// new points.
struct Job {
    key: usize,
    level: u8,
    start: usize,
    end: usize,
}

fn encode_job(
    job: &Job,
    keys: &[(String, SeriesColumns)],
    tails: &HashMap<String, KeyTail>,
) -> Result<EncodedChunk, StoreError> {
    let (key, added) = &keys[job.key];
    let empty = SeriesColumns::default();
    let tail = tails.get(key).map_or(&empty, |t| &t.points);
    let split = tail.len();
    // A range within the tail or within the new points is encoded in place
    // (a bulk write never copies); only one straddling both is copied.
    let straddling: SeriesColumns;
    let (steps, ts, values): (&[i64], &[i64], &[f64]) = if job.start >= split {
        let (a, b) = (job.start - split, job.end - split);
        (&added.steps[a..b], &added.ts_ms[a..b], &added.values[a..b])
    } else if job.end <= split {
        let (a, b) = (job.start, job.end);
        (&tail.steps[a..b], &tail.ts_ms[a..b], &tail.values[a..b])
    } else {
        let (a, b) = (job.start, job.end - split);
        straddling = SeriesColumns {
            steps: [&tail.steps[a..], &added.steps[..b]].concat(),
            ts_ms: [&tail.ts_ms[a..], &added.ts_ms[..b]].concat(),
            values: [&tail.values[a..], &added.values[..b]].concat(),
        };
        (&straddling.steps, &straddling.ts_ms, &straddling.values)
    };
    EncodedChunk::encode(key.clone(), job.level, steps, ts, values)
}

/// Encodes jobs on up to the machine's cores; bulk writes of millions of
/// points are CPU-bound on the codec.
fn encode_all(
    jobs: &[Job],
    keys: &[(String, SeriesColumns)],
    tails: &HashMap<String, KeyTail>,
) -> Result<Vec<EncodedChunk>, StoreError> {
    let total: usize = jobs.iter().map(|j| j.end - j.start).sum();
    let threads = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len());
    if threads <= 1 || total < 2 * SEAL_POINTS {
        return jobs.iter().map(|j| encode_job(j, keys, tails)).collect();
    }
    let per = jobs.len().div_ceil(threads);
    let parts: Vec<Result<Vec<EncodedChunk>, StoreError>> = thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(per)
            .map(|part| {
                scope.spawn(move || part.iter().map(|j| encode_job(j, keys, tails)).collect())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(StoreError::Internal("an encoder thread panicked".into()))
                })
            })
            .collect()
    });
    let mut out = Vec::with_capacity(jobs.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

impl SeriesWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Points held in memory for tails, over all keys.
    pub fn tail_points(&self) -> usize {
        self.tails.values().map(|t| t.points.len()).sum()
    }

    /// Plans the chunk writes for new points. With `seal` every tail point is
    /// sealed (the run is finishing).
    /// Whether it holds tail rows in the store, which a merge or a seal
    /// would rewrite.
    pub fn holds_tails(&self) -> bool {
        self.tails
            .values()
            .any(|t| t.rows.iter().any(|r| r.id.is_some()))
    }

    pub fn plan(
        &self,
        new: Vec<(String, SeriesColumns)>,
        seal: bool,
    ) -> Result<SeriesPlan, StoreError> {
        let mut keys: Vec<(String, SeriesColumns)> = Vec::with_capacity(new.len());
        for (key, added) in new {
            added.validate(&key)?;
            match keys.iter_mut().find(|(k, _)| *k == key) {
                Some((_, existing)) => existing.extend_from(&added),
                None => keys.push((key, added)),
            }
        }
        if seal {
            for (key, tail) in &self.tails {
                if !tail.points.is_empty() && !keys.iter().any(|(k, _)| k == key) {
                    keys.push((key.clone(), SeriesColumns::default()));
                }
            }
        }
        let mut plan = SeriesPlan::default();
        let mut jobs: Vec<Job> = Vec::new();
        let mut layouts: Vec<(usize, usize, Vec<TailRow>, Vec<usize>)> = Vec::new();
        let empty = KeyTail::default();
        for (k, (key, added)) in keys.iter().enumerate() {
            let tail = self.tails.get(key).unwrap_or(&empty);
            let total = tail.points.len() + added.len();
            if total == 0 {
                continue;
            }
            if let Some(summary) = SeriesSummary::of(added) {
                plan.summaries.push((key.clone(), summary));
            }
            let sealed_count = if seal {
                total
            } else {
                total / SEAL_POINTS * SEAL_POINTS
            };
            let mut start = 0;
            while start < sealed_count {
                let end = (start + SEAL_POINTS).min(sealed_count);
                jobs.push(Job {
                    key: k,
                    level: SEALED_LEVEL,
                    start,
                    end,
                });
                start = end;
            }
            let mut rows: Vec<TailRow>;
            if sealed_count > 0 {
                plan.deletes.extend(tail.rows.iter().filter_map(|r| r.id));
                rows = Vec::new();
                if total > sealed_count {
                    rows.push(TailRow {
                        id: None,
                        level: tier(total - sealed_count),
                        n: total - sealed_count,
                    });
                }
            } else {
                rows = tail.rows.clone();
                rows.push(TailRow {
                    id: None,
                    level: tier(added.len()),
                    n: added.len(),
                });
                while rows.len() >= TAIL_FANOUT {
                    let last = &rows[rows.len() - TAIL_FANOUT..];
                    let level = last[0].level;
                    if !last.iter().all(|r| r.level == level) {
                        break;
                    }
                    let merged: Vec<TailRow> = rows.split_off(rows.len() - TAIL_FANOUT);
                    plan.deletes.extend(merged.iter().filter_map(|r| r.id));
                    let n = merged.iter().map(|r| r.n).sum();
                    rows.push(TailRow {
                        id: None,
                        level: tier(n).max(level + 1),
                        n,
                    });
                }
            }
            // Encode the rows that are new, from their place in the tail.
            let mut insert_index = Vec::new();
            let mut offset = sealed_count;
            for row in &rows {
                if row.id.is_none() {
                    insert_index.push(jobs.len());
                    jobs.push(Job {
                        key: k,
                        level: row.level,
                        start: offset,
                        end: offset + row.n,
                    });
                }
                offset += row.n;
            }
            layouts.push((k, sealed_count, rows, insert_index));
        }
        plan.inserts = encode_all(&jobs, &keys, &self.tails)?;
        let mut keys: Vec<Option<(String, SeriesColumns)>> = keys.into_iter().map(Some).collect();
        for (k, drain_front, rows, insert_index) in layouts {
            if let Some((key, new_points)) = keys[k].take() {
                plan.updates.push(KeyUpdate {
                    key,
                    new_points,
                    drain_front,
                    rows,
                    insert_index,
                });
            }
        }
        Ok(plan)
    }

    /// Records a committed plan; `inserted_ids` are the backend's ids for
    /// `plan.inserts`, in order.
    pub fn apply(&mut self, plan: SeriesPlan, inserted_ids: &[i64]) {
        for update in plan.updates {
            let tail = self.tails.entry(update.key).or_default();
            tail.points.extend_from(&update.new_points);
            if update.drain_front > 0 {
                tail.points.steps.drain(..update.drain_front);
                tail.points.ts_ms.drain(..update.drain_front);
                tail.points.values.drain(..update.drain_front);
            }
            let mut fresh = update.insert_index.iter();
            tail.rows = update
                .rows
                .into_iter()
                .map(|mut row| {
                    if row.id.is_none() {
                        row.id = fresh.next().and_then(|&i| inserted_ids.get(i).copied());
                    }
                    row
                })
                .collect();
        }
        self.tails.retain(|_, t| !t.points.is_empty());
    }
}

/// Min/max-preserving downsampling (M4): for each of `buckets` equal step
/// ranges over `[lo, hi]`, the first, last, minimum and maximum points, in
/// step order. Peaks survive; the series' first and last points are kept.
#[derive(Debug)]
pub struct Downsampler {
    seen: usize,
    lo: i64,
    width: f64,
    buckets: Vec<Option<Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    first: (i64, i64, f64),
    last: (i64, i64, f64),
    min: Option<(i64, i64, f64)>,
    max: Option<(i64, i64, f64)>,
}

impl Bucket {
    /// One point: its own ends and, unless it is NaN, its own extremes.
    fn point(p: (i64, i64, f64)) -> Bucket {
        let finite = !p.2.is_nan();
        Bucket {
            first: p,
            last: p,
            min: finite.then_some(p),
            max: finite.then_some(p),
        }
    }

    /// Points `i..j` of `c`, in step order: their ends and extremes.
    fn run(c: &SeriesColumns, i: usize, j: usize) -> Bucket {
        let at = |k: usize| (c.steps[k], c.ts_ms[k], c.values[k]);
        let (min, max) = extremes(&c.values[i..j]).unzip();
        Bucket {
            first: at(i),
            last: at(j - 1),
            min: min.map(|k| at(i + k)),
            max: max.map(|k| at(i + k)),
        }
    }
}

impl Downsampler {
    pub fn new(lo: i64, hi: i64, buckets: usize) -> Self {
        let buckets = buckets.max(1);
        let span = (hi as f64 - lo as f64 + 1.0).max(1.0);
        Downsampler {
            seen: 0,
            lo,
            width: span / buckets as f64,
            buckets: vec![None; buckets],
        }
    }

    /// Points added so far.
    pub fn seen(&self) -> usize {
        self.seen
    }

    fn bucket_of(&self, step: i64) -> usize {
        (((step - self.lo) as f64 / self.width) as usize).min(self.buckets.len() - 1)
    }

    pub fn add(&mut self, points: &SeriesColumns) {
        self.seen += points.len();
        if points.steps.windows(2).all(|w| w[0] < w[1]) {
            self.add_ascending(points);
            return;
        }
        for i in 0..points.len() {
            let p = (points.steps[i], points.ts_ms[i], points.values[i]);
            self.fold(self.bucket_of(p.0), Bucket::point(p));
        }
    }

    /// The points of `points` within `lo..=hi` (a chunk at a range's edge
    /// holds some outside it).
    pub fn add_within(&mut self, points: &SeriesColumns, lo: i64, hi: i64) {
        if points.steps.iter().all(|s| (lo..=hi).contains(s)) {
            self.add(points);
            return;
        }
        let mut inside = SeriesColumns::default();
        for i in (0..points.len()).filter(|&i| (lo..=hi).contains(&points.steps[i])) {
            inside.push(points.point(i));
        }
        self.add(&inside);
    }

    /// Strictly ascending steps (nearly every chunk): bucket_of never
    /// decreases along them, so each bucket's points are one run, whose
    /// first and last are its ends and whose extremes one tight scan finds.
    /// Folding the run as one candidate picks what point-by-point would.
    fn add_ascending(&mut self, points: &SeriesColumns) {
        let mut i = 0;
        while i < points.len() {
            let b = self.bucket_of(points.steps[i]);
            let j = i + 1 + points.steps[i + 1..].partition_point(|&s| self.bucket_of(s) == b);
            self.fold(b, Bucket::run(points, i, j));
            i = j;
        }
    }

    /// Bucket `b` holding both what it held and `t`, which came later: the
    /// earliest first, the latest last (a tie goes to `t`), the extremes
    /// (a tie keeps the one held).
    fn fold(&mut self, b: usize, t: Bucket) {
        let Some(m) = &mut self.buckets[b] else {
            self.buckets[b] = Some(t);
            return;
        };
        if (t.first.0, t.first.1) < (m.first.0, m.first.1) {
            m.first = t.first;
        }
        if (t.last.0, t.last.1) >= (m.last.0, m.last.1) {
            m.last = t.last;
        }
        if let Some(tm) = t.min
            && m.min.is_none_or(|x| tm.2 < x.2)
        {
            m.min = Some(tm);
        }
        if let Some(tm) = t.max
            && m.max.is_none_or(|x| tm.2 > x.2)
        {
            m.max = Some(tm);
        }
    }

    /// A chunk of `points` points through its sketch (see `crate::sketch`
    /// for what this keeps).
    pub fn add_sketch(&mut self, sketch: &Sketch, points: usize) {
        self.seen += points;
        let p = &sketch.picks;
        let mut start = 0;
        for &count in &sketch.counts {
            let end = start + count as usize;
            if count == 0 {
                continue;
            }
            let b = self.bucket_of(p.steps[start]);
            if self.bucket_of(p.steps[end - 1]) == b {
                self.fold(b, Bucket::run(p, start, end));
            } else {
                for i in start..end {
                    let pick = (p.steps[i], p.ts_ms[i], p.values[i]);
                    self.fold(self.bucket_of(pick.0), Bucket::point(pick));
                }
            }
            start = end;
        }
    }

    /// Whether a chunk of `points` points over `step_min..=step_max` is
    /// better read through its sketch: each of this downsample's buckets
    /// spans enough of its cells.
    pub fn sketch_fits(&self, points: usize, step_min: i64, step_max: i64) -> bool {
        let steps = (step_max as f64 - step_min as f64 + 1.0).max(1.0);
        let per_bucket = points as f64 * self.width / steps;
        per_bucket >= crate::sketch::MIN_CELLS_PER_BUCKET * crate::sketch::CELL_POINTS as f64
    }

    pub fn merge(&mut self, other: Downsampler) {
        self.seen += other.seen;
        for (b, theirs) in other.buckets.into_iter().enumerate() {
            if let Some(t) = theirs {
                self.fold(b, t);
            }
        }
    }

    pub fn finish(self) -> SeriesColumns {
        let mut out = SeriesColumns::default();
        for bucket in self.buckets.into_iter().flatten() {
            let mut picks = [bucket.first; 4];
            let mut n = 1;
            for p in [bucket.min, bucket.max, Some(bucket.last)]
                .into_iter()
                .flatten()
            {
                picks[n] = p;
                n += 1;
            }
            let picks = &mut picks[..n];
            picks.sort_by_key(|p| (p.0, p.1));
            let mut held: Option<(i64, i64, f64)> = None;
            for &(step, ts_ms, value) in picks.iter() {
                if held.is_some_and(|h| {
                    h.0 == step && h.1 == ts_ms && h.2.to_bits() == value.to_bits()
                }) {
                    continue;
                }
                held = Some((step, ts_ms, value));
                out.push(labbook_core::Point { step, ts_ms, value });
            }
        }
        out
    }
}

/// The positions of the first minimum and the first maximum of `values`,
/// NaN skipped; None when every value is NaN. One pass of plain compares
/// (a NaN fails both), which is most of a downsample's time.
fn extremes(values: &[f64]) -> Option<(usize, usize)> {
    let start = values.iter().position(|v| !v.is_nan())?;
    let (mut min, mut max) = (start, start);
    let (mut lo, mut hi) = (values[start], values[start]);
    for (k, &v) in values.iter().enumerate().skip(start + 1) {
        if v < lo {
            lo = v;
            min = k;
        }
        if v > hi {
            hi = v;
            max = k;
        }
    }
    Some((min, max))
}

#[cfg(test)]
mod tests;

/// A series' open tails, decoded together and sorted by step, cut into
/// sealed chunks: what compacting a run that stopped writing stores in
/// their place.
pub(crate) fn seal_tails(tails: &[Vec<u8>]) -> crate::Result<Vec<EncodedChunk>> {
    let mut points = SeriesColumns::default();
    for data in tails {
        codec::decode_into(data, &mut points)?;
    }
    points.sort_by_step();
    let mut sealed = Vec::new();
    for start in (0..points.len()).step_by(SEAL_POINTS) {
        let end = (start + SEAL_POINTS).min(points.len());
        sealed.push(EncodedChunk::encode(
            String::new(),
            SEALED_LEVEL,
            &points.steps[start..end],
            &points.ts_ms[start..end],
            &points.values[start..end],
        )?);
    }
    Ok(sealed)
}
