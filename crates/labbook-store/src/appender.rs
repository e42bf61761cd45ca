//! Synchronous appends for a server: each request's points are committed
//! before it answers (an MLflow client reads its metrics right back), while
//! the tiered tail layout of [`SeriesWriter`] keeps a run logged one point
//! per request from turning into one chunk row per point.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use labbook_core::SeriesColumns;

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
}

/// Appends to many runs at once; one writer state per run that is being
/// logged to, dropped when the run ends.
pub struct Appender {
    store: Arc<dyn Store>,
    writers: Mutex<HashMap<String, Arc<Mutex<SeriesWriter>>>>,
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
                    let w = Arc::new(Mutex::new(SeriesWriter::new()));
                    writers.insert(run_id.to_string(), w.clone());
                    (w, true)
                }
            }
        };
        let mut writer = writer.lock();
        // A batch id already makes a retry land once; without one, the
        // first request after a restart may repeat what the dead server
        // committed just before its answer was lost.
        let series = if first && append.batch_id.is_none() {
            self.without_stored_points(run_id, append.series)?
        } else {
            append.series
        };
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
                writer.apply(write.series, &ids);
                true
            }
            None => false,
        };
        if append.seal {
            self.writers.lock().remove(run_id);
        }
        Ok(applied)
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
            let held: std::collections::HashSet<(i64, i64, u64)> = (0..stored.len())
                .map(|i| (stored.steps[i], stored.ts_ms[i], stored.values[i].to_bits()))
                .collect();
            let mut fresh = SeriesColumns::default();
            for i in 0..points.len() {
                let point = (points.steps[i], points.ts_ms[i], points.values[i].to_bits());
                if !held.contains(&point) {
                    fresh.steps.push(point.0);
                    fresh.ts_ms.push(point.1);
                    fresh.values.push(points.values[i]);
                }
            }
            if !fresh.is_empty() {
                out.push((key, fresh));
            }
        }
        Ok(out)
    }
}
