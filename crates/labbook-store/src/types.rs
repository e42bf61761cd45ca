//! The values that cross the [`Store`](crate::Store) trait.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use labbook_core::query::{Expr, SortKey};
use labbook_core::{Config, RunStatus};

use crate::series::SeriesPlan;

/// A run to create. `id` and `name` are generated when absent.
#[derive(Debug, Clone, Default)]
pub struct NewRun {
    pub id: Option<String>,
    pub project: String,
    pub name: Option<String>,
    pub group: Option<String>,
    pub tags: Vec<String>,
    pub notes: Option<String>,
    pub config: Config,
    pub created_ms: i64,
    pub host: Option<String>,
    pub pid: Option<u32>,
}

/// Changes to a run; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunPatch {
    pub status: Option<RunStatus>,
    pub ended_ms: Option<i64>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub name: Option<String>,
    pub group: Option<String>,
    pub notes: Option<String>,
    pub add_tags: Vec<String>,
    pub remove_tags: Vec<String>,
    /// Merged into the config (keys already flattened).
    pub config: Option<Config>,
    /// Merged into the user summary; a JSON null removes a key.
    pub summary: BTreeMap<String, serde_json::Value>,
    /// Resuming: the run is running again under this host and pid; its end,
    /// exit code and error are cleared.
    pub reopen: Option<(Option<String>, Option<u32>)>,
}

impl RunPatch {
    pub fn is_empty(&self) -> bool {
        *self == RunPatch::default()
    }

    /// Folds a later patch into this one (the writer coalesces the
    /// changes made between two flushes).
    pub fn absorb(&mut self, later: RunPatch) {
        macro_rules! take {
            ($($f:ident),*) => { $( if later.$f.is_some() { self.$f = later.$f; } )* };
        }
        take!(
            status, ended_ms, exit_code, error, name, group, notes, reopen
        );
        for tag in later.add_tags {
            self.remove_tags.retain(|t| *t != tag);
            self.add_tags.push(tag);
        }
        for tag in later.remove_tags {
            self.add_tags.retain(|t| *t != tag);
            self.remove_tags.push(tag);
        }
        if let Some(config) = later.config {
            self.config.get_or_insert_with(Config::new).extend(config);
        }
        self.summary.extend(later.summary);
    }
}

/// Which soft-deleted runs a listing includes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Deleted {
    #[default]
    Exclude,
    Only,
    Include,
}

#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    pub project: Option<String>,
    pub filter: Option<Expr>,
    /// Newest first when empty.
    pub sort: Vec<SortKey>,
    pub limit: Option<usize>,
    pub offset: usize,
    pub deleted: Deleted,
}

/// An inclusive step range; open ends are unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepRange {
    pub lo: Option<i64>,
    pub hi: Option<i64>,
}

impl StepRange {
    pub const ALL: StepRange = StepRange { lo: None, hi: None };

    pub fn contains(&self, step: i64) -> bool {
        self.lo.is_none_or(|lo| step >= lo) && self.hi.is_none_or(|hi| step <= hi)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

impl OutputStream {
    pub fn code(self) -> i64 {
        match self {
            OutputStream::Stdout => 1,
            OutputStream::Stderr => 2,
        }
    }

    pub fn from_code(code: i64) -> OutputStream {
        if code == 2 {
            OutputStream::Stderr
        } else {
            OutputStream::Stdout
        }
    }
}

/// A piece of a run's captured stdout or stderr.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputChunk {
    pub stream: OutputStream,
    pub ts_ms: i64,
    pub data: Vec<u8>,
}

/// One entry of a run's notebook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoteEntry {
    pub created_ms: i64,
    pub text: String,
}

/// A notebook entry with where it belongs, for the project's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotebookNote {
    pub id: i64,
    pub created_ms: i64,
    pub text: String,
    pub run_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectInfo {
    pub name: String,
    pub runs: u64,
    pub running: u64,
    pub last_activity_ms: Option<i64>,
}

/// One writer flush, applied atomically by [`Store::commit`](crate::Store::commit).
#[derive(Debug, Default)]
pub struct WriteSet {
    pub run_id: String,
    /// Makes a retried flush idempotent: the store remembers applied ids.
    pub batch_id: Option<String>,
    pub series: SeriesPlan,
    pub output: Vec<OutputChunk>,
    pub patch: Option<RunPatch>,
    pub heartbeat_ms: Option<i64>,
}
