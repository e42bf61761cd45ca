//! Synchronous appends for a server: each request's points are committed
//! before it answers (an MLflow client reads its metrics right back), while
//! the tiered tail layout of [`SeriesWriter`] keeps a run logged one point
//! per request from turning into one chunk row per point.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;

use labbook_core::{SeriesColumns, SeriesSummary};

use crate::series::SeriesWriter;
use crate::{OutputChunk, Result, RunPatch, StepRange, Store, StoreError, WriteSet};

/// One request's worth of changes to a run.
#[derive(Debug, Default)]
pub struct Append {
    pub series: Vec<(String, SeriesColumns)>,
    pub patch: Option<RunPatch>,
    pub output: Vec<OutputChunk>,
    /// Seal the run's tails: its writer is done.
    pub seal: bool,
    /// The client's id for this batch; a batch seen before is skipped.
    pub batch_id: Option<String>,
    pub heartbeat_ms: Option<i64>,
    /// MLflow's rule: a point identical to one the series holds (same step,
    /// timestamp and value), or to an earlier one in this batch, is not
    /// stored again.
    pub drop_identical: bool,
}

/// What an appender keeps per run between requests.
#[derive(Default)]
struct RunState {
    series: SeriesWriter,
    /// Per key, the greatest (step, timestamp) stored; loaded when a batch
    /// under MLflow's rule first asks. A point past it cannot repeat a
    /// stored one, so training's ever-growing steps never read the store.
    highs: Option<HashMap<String, (i64, i64)>>,
}

/// Appends to many runs at once; one writer state per run that is being
/// logged to, dropped when the run ends.
pub struct Appender {
    store: Arc<dyn Store>,
    writers: Mutex<HashMap<String, Arc<Mutex<RunState>>>>,
}

impl Appender {
    pub fn new(store: Arc<dyn Store>) -> Appender {
        Appender {
            store,
            writers: Mutex::new(HashMap::new()),
        }
    }

    /// Commits points and a run change in one transaction. With `seal` the
    /// run's tails are rewritten into sealed chunks (its writer is done).
    pub fn commit(
        &self,
        run_id: &str,
        series: Vec<(String, SeriesColumns)>,
        patch: Option<RunPatch>,
        seal: bool,
    ) -> Result<()> {
        self.append(
            run_id,
            Append {
                series,
                patch,
                seal,
                ..Default::default()
            },
        )
        .map(|_| ())
    }

    /// Commits one client's batch in one transaction; returns false when
    /// its `batch_id` was applied before (a retry) and nothing changed.
    pub fn append(&self, run_id: &str, append: Append) -> Result<bool> {
        let (writer, first) = {
            let mut writers = self.writers.lock();
            match writers.get(run_id) {
                Some(w) => (w.clone(), false),
                None => {
                    let w = Arc::new(Mutex::new(RunState::default()));
                    writers.insert(run_id.to_string(), w.clone());
                    (w, true)
                }
            }
        };
        let mut state = writer.lock();
        let state = &mut *state;
        // A batch id already makes a retry land once; without one, the
        // first request after a restart may repeat what the dead server
        // committed just before its answer was lost.
        let series = if append.drop_identical {
            self.without_identical_points(run_id, &mut state.highs, append.series)?
        } else if first && append.batch_id.is_none() {
            self.without_stored_points(run_id, append.series)?
        } else {
            append.series
        };
        let writer = &mut state.series;
        // Only a writer holding tails can find them compacted under it;
        // then the batch is planned again on fresh tails.
        let retry_series = writer.holds_tails().then(|| series.clone());
        let mut write = WriteSet {
            run_id: run_id.to_string(),
            batch_id: append.batch_id,
            series: writer.plan(series, append.seal)?,
            output: append.output,
            patch: append.patch,
            heartbeat_ms: append.heartbeat_ms,
        };
        let mut result = self.store.commit(&write);
        if let (Err(StoreError::StaleTails(_)), Some(series)) = (&result, retry_series) {
            *writer = SeriesWriter::new();
            write.series = writer.plan(series, append.seal)?;
            result = self.store.commit(&write);
        }
        let committed = match result {
            Ok(committed) => committed,
            Err(e) => {
                // A run that does not exist must not leave a writer behind.
                if first {
                    self.writers.lock().remove(run_id);
                }
                return Err(e);
            }
        };
        let applied = match committed {
            Some(ids) => {
                if let Some(highs) = &mut state.highs {
                    raise_highs(highs, &write.series.summaries);
                }
                state.series.apply(write.series, &ids);
                true
            }
            None => false,
        };
        if append.seal {
            self.writers.lock().remove(run_id);
        }
        Ok(applied)
    }

    fn without_identical_points(
        &self,
        run_id: &str,
        highs: &mut Option<HashMap<String, (i64, i64)>>,
        series: Vec<(String, SeriesColumns)>,
    ) -> Result<Vec<(String, SeriesColumns)>> {
        let highs = match highs {
            Some(highs) => highs,
            None => highs.insert(
                self.store
                    .get_run(run_id)?
                    .metrics
                    .iter()
                    .map(|(key, s)| (key.clone(), (s.last_step, s.last_ts_ms)))
                    .collect(),
            ),
        };
        let mut out = Vec::with_capacity(series.len());
        for (key, points) in series {
            let points = without_repeats(points);
            let high = highs.get(&key).copied();
            let maybe_held =
                |i: usize| high.is_some_and(|h| (points.steps[i], points.ts_ms[i]) <= h);
            let steps = (0..points.len())
                .filter(|&i| maybe_held(i))
                .map(|i| points.steps[i]);
            let (Some(lo), Some(hi)) = (steps.clone().min(), steps.max()) else {
                out.push((key, points));
                continue;
            };
            let stored = self.store.read_series(
                run_id,
                &key,
                StepRange {
                    lo: Some(lo),
                    hi: Some(hi),
                },
            )?;
            let fresh = not_held(&points, &stored, maybe_held);
            if !fresh.is_empty() {
                out.push((key, fresh));
            }
        }
        Ok(out)
    }

    fn without_stored_points(
        &self,
        run_id: &str,
        series: Vec<(String, SeriesColumns)>,
    ) -> Result<Vec<(String, SeriesColumns)>> {
        let mut out = Vec::with_capacity(series.len());
        for (key, points) in series {
            let (Some(lo), Some(hi)) = (points.steps.iter().min(), points.steps.iter().max())
            else {
                continue;
            };
            let range = StepRange {
                lo: Some(*lo),
                hi: Some(*hi),
            };
            let stored = match self.store.read_series(run_id, &key, range) {
                Ok(stored) => stored,
                Err(crate::StoreError::NotFound { .. }) => SeriesColumns::default(),
                Err(e) => return Err(e),
            };
            if stored.is_empty() {
                out.push((key, points));
                continue;
            }
            let fresh = not_held(&points, &stored, |_| true);
            if !fresh.is_empty() {
                out.push((key, fresh));
            }
        }
        Ok(out)
    }
}

/// The points of `points` not in `stored` (same step, timestamp and value);
/// only those `may_be_held` are looked up.
fn not_held(
    points: &SeriesColumns,
    stored: &SeriesColumns,
    may_be_held: impl Fn(usize) -> bool,
) -> SeriesColumns {
    let held: HashSet<(i64, i64, u64)> = (0..stored.len())
        .map(|i| (stored.steps[i], stored.ts_ms[i], stored.values[i].to_bits()))
        .collect();
    let mut fresh = SeriesColumns::default();
    for i in 0..points.len() {
        let point = (points.steps[i], points.ts_ms[i], points.values[i].to_bits());
        if !(may_be_held(i) && held.contains(&point)) {
            fresh.steps.push(point.0);
            fresh.ts_ms.push(point.1);
            fresh.values.push(points.values[i]);
        }
    }
    fresh
}

/// The batch with each point identical to an earlier one in it dropped.
fn without_repeats(points: SeriesColumns) -> SeriesColumns {
    if points.len() < 2 {
        return points;
    }
    let mut seen = HashSet::with_capacity(points.len());
    let mut out = SeriesColumns::default();
    for i in 0..points.len() {
        if seen.insert((points.steps[i], points.ts_ms[i], points.values[i].to_bits())) {
            out.steps.push(points.steps[i]);
            out.ts_ms.push(points.ts_ms[i]);
            out.values.push(points.values[i]);
        }
    }
    out
}

fn raise_highs(highs: &mut HashMap<String, (i64, i64)>, added: &[(String, SeriesSummary)]) {
    for (key, summary) in added {
        let top = (summary.last_step, summary.last_ts_ms);
        let high = highs.entry(key.clone()).or_insert(top);
        *high = (*high).max(top);
    }
}
