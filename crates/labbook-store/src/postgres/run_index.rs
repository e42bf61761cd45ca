//! Every run, in memory, kept current by the change stamps: what listings
//! and searches are answered from, as the SQLite store's run index is.
//! Loaded whole on first use; after that each refresh reads only the runs
//! stamped at or after the last read's settled point (see the schema's
//! note on the change sequence), and forgets runs purged since.

use std::collections::HashMap;

use labbook_core::RunRecord;

use super::Db;
use super::runs::load_runs_keyed;
use crate::error::Result;

pub(super) struct RunIndex {
    /// Every stamp below this was settled when the index last read: `-1`
    /// before the first load.
    settled: i64,
    runs: HashMap<i64, RunRecord>,
    by_id: HashMap<String, i64>,
}

impl Default for RunIndex {
    fn default() -> Self {
        RunIndex {
            settled: -1,
            runs: HashMap::new(),
            by_id: HashMap::new(),
        }
    }
}

/// The oldest transaction still running as of this read's snapshot: every
/// stamp below it belongs to a transaction that has ended, and the snapshot
/// shows it if it committed.
pub(super) fn settled(db: &mut Db<'_>) -> Result<i64> {
    Ok(db
        .one(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
            &[],
        )?
        .try_get(0)?)
}

impl RunIndex {
    /// Brings the index up to `db`'s snapshot.
    pub(super) fn refresh(&mut self, db: &mut Db<'_>) -> Result<()> {
        let settled = settled(db)?;
        let changed = if self.settled < 0 {
            load_runs_keyed(db, "TRUE", &[])?
        } else {
            load_runs_keyed(db, "r.seq >= $1", &[&self.settled])?
        };
        if self.settled >= 0 {
            for row in db.rows(
                "SELECT id FROM purged_runs WHERE seq >= $1",
                &[&self.settled],
            )? {
                let id: String = row.try_get(0)?;
                if let Some(pk) = self.by_id.remove(&id) {
                    self.runs.remove(&pk);
                }
            }
        }
        for (pk, record) in changed {
            self.by_id.insert(record.id.clone(), pk);
            self.runs.insert(pk, record);
        }
        self.settled = settled;
        Ok(())
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (i64, &RunRecord)> {
        self.runs.iter().map(|(pk, r)| (*pk, r))
    }

    /// The records of `pks`, in that order.
    pub(super) fn records<'a>(&'a self, pks: &[i64]) -> Vec<&'a RunRecord> {
        pks.iter().filter_map(|pk| self.runs.get(pk)).collect()
    }
}
