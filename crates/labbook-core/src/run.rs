//! Runs: status, record and the liveness rule that turns a dead run into a
//! crashed one.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigValue};
use crate::error::ValidationError;
use crate::lineage::{DatasetInput, ModelOutput};
use crate::metric::SeriesSummary;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Finished,
    Failed,
    Killed,
    Crashed,
    /// A search's trial stopped early by its pruner: not a failure, and
    /// its curve up to the stop is a result.
    Pruned,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Running,
        RunStatus::Finished,
        RunStatus::Failed,
        RunStatus::Killed,
        RunStatus::Crashed,
        RunStatus::Pruned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Finished => "finished",
            RunStatus::Failed => "failed",
            RunStatus::Killed => "killed",
            RunStatus::Crashed => "crashed",
            RunStatus::Pruned => "pruned",
        }
    }

    pub fn is_terminal(self) -> bool {
        self != RunStatus::Running
    }

    /// The status a wrapped program's exit implies: 0 finished; killed by
    /// SIGINT/SIGTERM/SIGKILL (or the shell's 128+n for them) killed; else failed.
    pub fn from_exit(code: Option<i32>, signal: Option<i32>) -> RunStatus {
        const SIGINT: i32 = 2;
        const SIGKILL: i32 = 9;
        const SIGTERM: i32 = 15;
        let killed = |s: i32| matches!(s, SIGINT | SIGKILL | SIGTERM);
        match (code, signal) {
            (_, Some(s)) if killed(s) => RunStatus::Killed,
            (Some(0), _) => RunStatus::Finished,
            (Some(c), _) if c > 128 && killed(c - 128) => RunStatus::Killed,
            _ => RunStatus::Failed,
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                ValidationError::new(
                    "status",
                    format!("unknown status {s:?}; expected one of running, finished, failed, killed, crashed, pruned"),
                )
            })
    }
}

/// Everything a listing or `show` needs about one run. The captured
/// environment and the output stay out: they are large and read on demand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub project: String,
    /// The project's number (MLflow's experiment id).
    #[serde(default)]
    pub project_id: i64,
    pub name: String,
    pub group: Option<String>,
    pub tags: Vec<String>,
    /// The "why": what this run tests.
    pub notes: Option<String>,
    pub status: RunStatus,
    pub created_ms: i64,
    pub ended_ms: Option<i64>,
    pub heartbeat_ms: i64,
    pub host: Option<String>,
    pub pid: Option<u32>,
    pub exit_code: Option<i32>,
    /// The traceback or message of a failed run.
    pub error: Option<String>,
    pub config: Config,
    /// Per-metric summaries computed from the logged series.
    pub metrics: BTreeMap<String, SeriesSummary>,
    /// Values the user set with `run.summary[k] = v`; they win over `metrics`
    /// where a key is in both.
    pub summary: BTreeMap<String, serde_json::Value>,
    pub deleted_ms: Option<i64>,
    /// Key/value tags (MLflow's run tags); `tags` are labels.
    #[serde(default)]
    pub kv_tags: BTreeMap<String, String>,
    /// The datasets the run read.
    #[serde(default)]
    pub inputs: Vec<DatasetInput>,
    /// The models the run logged.
    #[serde(default)]
    pub outputs: Vec<ModelOutput>,
    /// The exact text an MLflow client sent for a param stored as a number
    /// whose own spelling differs (`5e-05` kept as 5e-5): labbook compares
    /// and sorts the number, MLflow's API answers the text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub param_text: BTreeMap<String, String>,
    /// The logged models the run read (MLflow's model inputs), by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_inputs: Vec<String>,
}

/// How long a running run may go without a heartbeat before it is called
/// crashed, by default. Writers beat every flush (≤ 1 s) and at least every
/// 10 s when idle.
pub const HEARTBEAT_TIMEOUT_MS: i64 = 60_000;

/// The key/value tag naming the run a run is nested under: MLflow's own, so
/// autologged parent and child runs and `labbook.init(parent=…)` agree.
pub const PARENT_TAG: &str = "mlflow.parentRunId";

impl RunRecord {
    /// The run this one is nested under, if any.
    pub fn parent_id(&self) -> Option<&str> {
        self.kv_tags
            .get(PARENT_TAG)
            .map(String::as_str)
            .filter(|p| !p.is_empty())
    }

    /// A config value as MLflow's param string: the text the client sent.
    pub fn param_string(&self, key: &str) -> Option<String> {
        match self.param_text.get(key) {
            Some(text) => Some(text.clone()),
            None => self.config.get(key).map(ConfigValue::display),
        }
    }

    /// Seconds from creation to end (or to `now_ms` while running).
    pub fn duration_ms(&self, now_ms: i64) -> i64 {
        let end = match self.status {
            RunStatus::Running => now_ms,
            _ => self.ended_ms.unwrap_or(self.heartbeat_ms),
        };
        end.saturating_sub(self.created_ms).max(0)
    }

    /// Whether a run that says it is running is in fact dead: its process is
    /// gone from this host, or it has not beaten for `heartbeat_timeout_ms`.
    /// `pid_alive` is asked only for runs on `this_host`. A run without a pid
    /// has no process to watch (an MLflow client created it over HTTP): only
    /// its client ends it.
    pub fn is_stale(
        &self,
        now_ms: i64,
        heartbeat_timeout_ms: i64,
        this_host: Option<&str>,
        pid_alive: impl Fn(u32) -> bool,
    ) -> bool {
        if self.status != RunStatus::Running || self.pid.is_none() {
            return false;
        }
        if let (Some(host), Some(this), Some(pid)) = (self.host.as_deref(), this_host, self.pid)
            && host == this
            && !pid_alive(pid)
        {
            return true;
        }
        now_ms.saturating_sub(self.heartbeat_ms) > heartbeat_timeout_ms
    }
}

/// Tags: non-empty, at most 128 bytes, no control characters or commas (a
/// comma-separated list is how the CLI takes several).
pub fn validate_tag(tag: &str) -> Result<(), ValidationError> {
    if tag.trim().is_empty() {
        return Err(ValidationError::new("tag", "must not be empty"));
    }
    if tag.len() > 128 {
        return Err(ValidationError::new(
            "tag",
            format!("is {} bytes; the limit is 128", tag.len()),
        ));
    }
    if tag.chars().any(|c| c.is_control() || c == ',') {
        return Err(ValidationError::new(
            format!("tag {}", crate::config::truncate_for_message(tag)),
            "contains a comma or a control character",
        ));
    }
    Ok(())
}

/// Project, run and group names: non-empty, at most 256 bytes, one line.
pub fn validate_name(field: &str, name: &str) -> Result<(), ValidationError> {
    if name.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if name.len() > 256 {
        return Err(ValidationError::new(
            field,
            format!("is {} bytes; the limit is 256", name.len()),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ValidationError::new(field, "contains a control character"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_maps_to_status() {
        assert_eq!(RunStatus::from_exit(Some(0), None), RunStatus::Finished);
        assert_eq!(RunStatus::from_exit(Some(1), None), RunStatus::Failed);
        assert_eq!(RunStatus::from_exit(None, Some(15)), RunStatus::Killed);
        assert_eq!(RunStatus::from_exit(Some(130), None), RunStatus::Killed);
        assert_eq!(RunStatus::from_exit(None, Some(11)), RunStatus::Failed);
    }

    #[test]
    fn status_parses_and_names_bad_input() {
        assert_eq!("crashed".parse::<RunStatus>().unwrap(), RunStatus::Crashed);
        let err = "done".parse::<RunStatus>().unwrap_err();
        assert_eq!(err.field(), "status");
    }

    #[test]
    fn tags_and_names_are_validated() {
        assert!(validate_tag("baseline").is_ok());
        assert!(validate_tag("a,b").is_err());
        assert!(validate_tag(" ").is_err());
        assert!(validate_name("project", "mnist").is_ok());
        assert!(validate_name("project", "a\nb").is_err());
    }
}
