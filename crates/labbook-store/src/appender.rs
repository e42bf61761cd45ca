//! Synchronous appends for a server: each request's points are committed
//! before it answers (an MLflow client reads its metrics right back), while
//! the tiered tail layout of [`SeriesWriter`] keeps a run logged one point
//! per request from turning into one chunk row per point.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use labbook_core::SeriesColumns;

use crate::series::SeriesWriter;
use crate::{Result, RunPatch, Store, WriteSet};

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
        let writer = self
            .writers
            .lock()
            .entry(run_id.to_string())
            .or_default()
            .clone();
        let mut writer = writer.lock();
        let plan = writer.plan(series, seal)?;
        let write = WriteSet {
            run_id: run_id.to_string(),
            batch_id: None,
            series: plan,
            output: Vec::new(),
            patch,
            heartbeat_ms: None,
        };
        let ids = self.store.commit(&write)?.unwrap_or_default();
        writer.apply(write.series, &ids);
        if seal {
            self.writers.lock().remove(run_id);
        }
        Ok(())
    }
}
