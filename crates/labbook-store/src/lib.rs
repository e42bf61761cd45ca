//! labbook's storage. The [`Store`] trait is what every other crate sees;
//! [`SqliteStore`] is the embedded default. The metric series engine
//! ([`series`], [`codec`]) is independent of the backend, so PostgreSQL can
//! store the same chunks later.

pub mod codec;
mod error;
pub mod locate;
pub mod series;
mod sqlite;
mod types;
pub mod writer;

pub use error::{Result, StoreError};
pub use sqlite::SqliteStore;
pub use types::*;

use labbook_core::{RunRecord, SeriesColumns};

/// Everything labbook persists. Implementations are safe to share between
/// threads; the SQLite one is also safe across processes.
pub trait Store: Send + Sync {
    /// Creates a run (and its project on first use).
    fn create_run(&self, new: &NewRun) -> Result<RunRecord>;
    /// A run by exact id.
    fn get_run(&self, id: &str) -> Result<RunRecord>;
    /// A run by id, unique id prefix (4+ characters) or unique name.
    fn resolve_run(&self, reference: &str, project: Option<&str>) -> Result<RunRecord>;
    fn update_run(&self, id: &str, patch: &RunPatch) -> Result<()>;
    fn list_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>>;
    fn list_projects(&self) -> Result<Vec<ProjectInfo>>;
    /// Soft delete: hidden from listings until restored.
    fn delete_run(&self, id: &str, now_ms: i64) -> Result<()>;
    fn restore_run(&self, id: &str) -> Result<()>;

    /// Applies one writer's flush atomically: chunk inserts and deletes,
    /// summaries, output, run changes and heartbeat. Returns the ids of
    /// the inserted chunks in order. A write set whose `batch_id` was applied
    /// before is skipped and returns `None`.
    fn commit(&self, write: &WriteSet) -> Result<Option<Vec<i64>>>;

    /// Points of one series, sorted by step, optionally within a step range.
    fn read_series(&self, run_id: &str, key: &str, range: StepRange) -> Result<SeriesColumns>;
    /// At most ~4 × `buckets` points that keep every bucket's extremes.
    fn downsample(
        &self,
        run_id: &str,
        key: &str,
        range: StepRange,
        buckets: usize,
    ) -> Result<SeriesColumns>;
    /// The metric keys of a run with their point counts.
    fn series_keys(&self, run_id: &str) -> Result<Vec<(String, u64)>>;
    /// Rewrites tails left by writers that are gone into sealed chunks.
    /// Only for runs whose writers have all stopped.
    fn compact_run(&self, run_id: &str) -> Result<()>;

    /// Merges the top-level keys of `env` into the run's stored environment
    /// (the `labbook run` wrapper and the SDK inside it each add what they see).
    fn set_environment(&self, run_id: &str, env: &serde_json::Value) -> Result<()>;
    fn environment(&self, run_id: &str) -> Result<Option<serde_json::Value>>;
    fn read_output(&self, run_id: &str) -> Result<Vec<OutputChunk>>;
    fn add_note(&self, run_id: &str, text: &str, now_ms: i64) -> Result<()>;
    fn notes(&self, run_id: &str) -> Result<Vec<NoteEntry>>;

    /// Marks running runs whose process is gone as crashed and compacts
    /// them; returns their ids.
    fn reap_stale_runs(
        &self,
        now_ms: i64,
        this_host: Option<&str>,
        pid_alive: &dyn Fn(u32) -> bool,
    ) -> Result<Vec<String>>;
}
