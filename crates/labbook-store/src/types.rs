//! The values that cross the [`Store`](crate::Store) trait.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use labbook_core::query::{Expr, SortKey};
use labbook_core::{Config, DatasetInput, ModelOutput, RunStatus};

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
    /// Params (MLflow's): merged into the config, but a key already set to
    /// a different value is an error and the whole write is refused.
    pub params: Option<Config>,
    /// The text a client sent for params in `params` stored as numbers
    /// spelled otherwise (`5e-05`), by key.
    pub param_text: BTreeMap<String, String>,
    pub set_kv_tags: BTreeMap<String, String>,
    /// Key/value tags to remove; one the run does not have is an error.
    pub remove_kv_tags: Vec<String>,
    /// Datasets used; one already recorded the same way is skipped.
    pub add_inputs: Vec<DatasetInput>,
    pub add_outputs: Vec<ModelOutput>,
    /// Logged models the run read, by id; one already recorded is skipped.
    pub add_model_inputs: Vec<String>,
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
        if let Some(params) = later.params {
            self.params.get_or_insert_with(Config::new).extend(params);
        }
        self.summary.extend(later.summary);
        for (k, v) in later.set_kv_tags {
            self.remove_kv_tags.retain(|t| *t != k);
            self.set_kv_tags.insert(k, v);
        }
        for k in later.remove_kv_tags {
            self.set_kv_tags.remove(&k);
            self.remove_kv_tags.push(k);
        }
        self.add_inputs.extend(later.add_inputs);
        self.add_outputs.extend(later.add_outputs);
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
    /// Only runs of these projects, by id (MLflow's experiment ids); none
    /// at all when the list is empty. Checked before the filter, and
    /// cheaply: an id is held in the run's record itself, a name is not.
    pub project_ids: Option<Vec<i64>>,
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

    /// Its ends, an open end as the farthest step.
    pub fn bounds(&self) -> (i64, i64) {
        (self.lo.unwrap_or(i64::MIN), self.hi.unwrap_or(i64::MAX))
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

/// A project (MLflow's experiment), as a lookup returns it: finding one
/// never scans its runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    /// Stable across renames; MLflow's experiment id.
    pub id: i64,
    pub name: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub deleted_ms: Option<i64>,
    /// Where an MLflow client was told this project's artifacts live, when
    /// it chose the place itself.
    pub artifact_location: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// A project with its run counts, as listings show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectInfo {
    #[serde(flatten)]
    pub project: Project,
    pub runs: u64,
    pub running: u64,
    pub last_activity_ms: Option<i64>,
}

impl ProjectInfo {
    /// Whether listings for people show it: not deleted, and not the empty
    /// `Default` project every store has for MLflow clients.
    pub fn is_listed(&self) -> bool {
        self.project.deleted_ms.is_none()
            && !(self.project.id == DEFAULT_PROJECT_ID && self.runs == 0)
    }
}

/// The project MLflow clients log to when they name none (experiment "0").
pub const DEFAULT_PROJECT_ID: i64 = 0;

#[derive(Debug, Clone, Default)]
pub struct NewProject {
    pub name: String,
    pub artifact_location: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Copy)]
pub enum ProjectRef<'a> {
    Id(i64),
    Name(&'a str),
}

/// Changes to a project; `deleted` is `Some(Some(t))` to delete at `t`,
/// `Some(None)` to restore.
#[derive(Debug, Clone, Default)]
pub struct ProjectPatch {
    pub name: Option<String>,
    pub set_tags: BTreeMap<String, String>,
    pub remove_tags: Vec<String>,
    pub deleted: Option<Option<i64>>,
    pub now_ms: i64,
}

/// One entry of an artifact listing: a file, or a folder holding files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactEntry {
    /// The full path from the artifact root.
    pub path: String,
    pub is_dir: bool,
    /// Bytes of a file; 0 for a folder.
    pub size: u64,
}

impl ArtifactEntry {
    /// The entries directly under the folder `prefix` (empty, or ending in
    /// '/'), from every file under it as (path, size) in path order: its
    /// files, and one folder entry per subfolder holding any.
    pub(crate) fn listing(
        prefix: &str,
        files: impl IntoIterator<Item = (String, u64)>,
    ) -> Vec<ArtifactEntry> {
        let mut out: Vec<ArtifactEntry> = Vec::new();
        for (path, size) in files {
            let Some(rest) = path.strip_prefix(prefix) else {
                continue;
            };
            match rest.split_once('/') {
                None => out.push(ArtifactEntry {
                    path,
                    is_dir: false,
                    size,
                }),
                Some((child, _)) => {
                    let child_path = format!("{prefix}{child}");
                    if !out.last().is_some_and(|e| e.is_dir && e.path == child_path) {
                        out.push(ArtifactEntry {
                            path: child_path,
                            is_dir: true,
                            size: 0,
                        });
                    }
                }
            }
        }
        out
    }
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

/// A key some of a project's live runs have: how many, and (for config
/// keys) how many of those hold a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUse {
    pub key: String,
    pub runs: usize,
    pub numeric_runs: usize,
}

/// The config, metric and summary keys of a project's live runs, each list
/// sorted by key: what a column picker offers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyCatalog {
    pub config: Vec<KeyUse>,
    pub metrics: Vec<KeyUse>,
    pub summary: Vec<KeyUse>,
}

impl KeyCatalog {
    /// Computed from the runs themselves: the catalog a store keeps must
    /// always equal this.
    pub fn of_runs<'a>(runs: impl IntoIterator<Item = &'a labbook_core::RunRecord>) -> KeyCatalog {
        let mut config: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        let mut metrics: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        let mut summary: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for run in runs {
            for (key, value) in &run.config {
                let entry = config.entry(key).or_default();
                entry.0 += 1;
                entry.1 += usize::from(value.as_f64().is_some());
            }
            for key in run.metrics.keys() {
                let entry = metrics.entry(key).or_default();
                entry.0 += 1;
                entry.1 += 1;
            }
            for key in run.summary.keys() {
                summary.entry(key).or_default().0 += 1;
            }
        }
        let list = |counts: BTreeMap<&str, (usize, usize)>| {
            counts
                .into_iter()
                .map(|(key, (runs, numeric_runs))| KeyUse {
                    key: key.to_string(),
                    runs,
                    numeric_runs,
                })
                .collect()
        };
        KeyCatalog {
            config: list(config),
            metrics: list(metrics),
            summary: list(summary),
        }
    }
}

/// One guesser's wrong passwords in the current window (see
/// `Store::signin_failures`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigninFailures {
    pub guesser: String,
    pub count: u32,
    pub since_ms: i64,
}
