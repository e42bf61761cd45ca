//! Hyperparameter searches as the store keeps them: a study (a W&B-style
//! sweep, or an Optuna-style study driven from Python) and its numbered
//! trials. The search itself is `labbook-search`'s; the store's part is
//! that claiming a trial is one write transaction, so two workers never
//! take the same grid point and a killed worker's trial is found and
//! marked crashed by whoever claims next.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use labbook_search::trial::{AsObservation, Observation};
use labbook_search::{Direction, Domain, TrialState};

/// What a study is driven by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StudyKind {
    /// A W&B-style sweep file; trials are processes.
    Sweep,
    /// `labbook.study()` or Optuna through `labbook.optuna.Storage`.
    Study,
    /// A project's overnight queue: each trial is a job (a command and why
    /// it runs, or a sweep to run trials of).
    Queue,
}

impl StudyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StudyKind::Sweep => "sweep",
            StudyKind::Study => "study",
            StudyKind::Queue => "queue",
        }
    }

    pub fn parse(s: &str) -> Option<StudyKind> {
        match s {
            "sweep" => Some(StudyKind::Sweep),
            "study" => Some(StudyKind::Study),
            "queue" => Some(StudyKind::Queue),
            _ => None,
        }
    }
}

/// Whether a study hands out new trials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StudyState {
    Running,
    /// No new trials; running ones finish (W&B's `sweep stop`).
    Stopped,
    /// No new trials; running ones are stopped by their agents.
    Cancelled,
    /// Done: the grid is covered, the run cap or target reached, or too
    /// many trials failed in a row (the reason says which).
    Finished,
}

impl StudyState {
    pub fn as_str(self) -> &'static str {
        match self {
            StudyState::Running => "running",
            StudyState::Stopped => "stopped",
            StudyState::Cancelled => "cancelled",
            StudyState::Finished => "finished",
        }
    }

    pub fn parse(s: &str) -> Option<StudyState> {
        [
            StudyState::Running,
            StudyState::Stopped,
            StudyState::Cancelled,
            StudyState::Finished,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct NewStudy {
    pub project: String,
    pub name: String,
    pub kind: StudyKind,
    /// One direction per objective (Optuna's multi-objective studies have
    /// several; sweeps and `labbook.study` one).
    pub directions: Vec<Direction>,
    /// The definition: a sweep's file as JSON, a study's sampler and
    /// pruner settings.
    pub spec: Value,
    pub why: Option<String>,
    pub created_ms: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StudyRecord {
    /// The store's number for it (Optuna's study id).
    pub pk: i64,
    /// The short id people type (`labbook sweep run 3kq9x2ab`).
    pub id: String,
    pub project: String,
    pub name: String,
    pub kind: StudyKind,
    pub directions: Vec<Direction>,
    pub spec: Value,
    pub why: Option<String>,
    pub state: StudyState,
    pub state_reason: Option<String>,
    pub user_attrs: BTreeMap<String, Value>,
    pub system_attrs: BTreeMap<String, Value>,
    pub created_ms: i64,
}

impl StudyRecord {
    pub fn direction(&self) -> Direction {
        self.directions.first().copied().unwrap_or_default()
    }
}

/// Changes to a study; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StudyPatch {
    pub state: Option<(StudyState, Option<String>)>,
    pub user_attrs: Vec<(String, Value)>,
    pub system_attrs: Vec<(String, Value)>,
}

/// One trial of a study.
#[derive(Clone, Debug, PartialEq)]
pub struct TrialRecord {
    /// Unique in the store, never reused (Optuna's trial id).
    pub id: i64,
    pub study: i64,
    /// What the samplers and pruners read: number, state, parameters,
    /// value and intermediate values.
    pub obs: Observation,
    /// Each parameter's domain as it was suggested.
    pub distributions: BTreeMap<String, Domain>,
    /// Every objective's value (one for a single-objective study).
    pub values: Option<Vec<f64>>,
    /// The run that holds the trial's config, curves and output.
    pub run_id: Option<String>,
    pub grid_index: Option<u64>,
    /// The crashed trial this one runs again.
    pub retry_of: Option<u64>,
    /// The process that claimed it.
    pub host: Option<String>,
    pub pid: Option<u32>,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub heartbeat_ms: Option<i64>,
    pub user_attrs: BTreeMap<String, Value>,
    pub system_attrs: BTreeMap<String, Value>,
    /// Why it ended as it did (a crash, a failure's last error line).
    pub note: Option<String>,
}

impl TrialRecord {
    pub fn state(&self) -> TrialState {
        self.obs.state()
    }

    pub fn number(&self) -> u64 {
        self.obs.number
    }
}

impl AsObservation for TrialRecord {
    fn obs(&self) -> &Observation {
        &self.obs
    }
}

impl labbook_search::study::TrialView for TrialRecord {
    fn distributions(&self) -> &BTreeMap<String, Domain> {
        &self.distributions
    }
}

/// A trial a claim creates.
#[derive(Clone, Debug, Default)]
pub struct NewTrial {
    pub state: Option<TrialState>,
    pub params: BTreeMap<String, Value>,
    pub distributions: BTreeMap<String, Domain>,
    pub grid_index: Option<u64>,
    pub retry_of: Option<u64>,
    pub values: Option<Vec<f64>>,
    pub intermediate: Vec<(i64, f64)>,
    pub user_attrs: BTreeMap<String, Value>,
    pub system_attrs: BTreeMap<String, Value>,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub run_id: Option<String>,
    /// A run to create with the trial, in the same transaction.
    pub run: Option<crate::NewRun>,
}

/// What a claim's decision says.
#[derive(Clone, Debug)]
pub enum Claim {
    Trial(Box<NewTrial>),
    /// Start this waiting trial (by id) as the claiming worker's.
    Take(i64),
    /// Nothing to run now (trials still running may yet change that).
    Wait(String),
    /// The study is done, for this reason; it is marked finished.
    Finish(String),
    /// The study does not hand out trials (stopped, cancelled).
    Closed(StudyState),
}

/// What a claim's `decide` is: given the study and its trials, what to do.
pub type Decide<'a> = dyn FnMut(&StudyRecord, &[Arc<TrialRecord>]) -> crate::Result<Claim> + 'a;

/// The answer to a claim.
#[derive(Clone, Debug, PartialEq)]
pub enum Claimed {
    Trial(Arc<TrialRecord>),
    Wait(String),
    Done(StudyState, Option<String>),
}

/// The process claiming trials.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Worker {
    pub host: Option<String>,
    pub pid: Option<u32>,
}

/// Changes to a trial. A finished trial refuses every change but its
/// attributes' (Optuna's rule); `only_if` makes the change conditional on
/// the trial's current state (claiming a waiting trial).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrialPatch {
    pub state: Option<TrialState>,
    pub only_if: Option<TrialState>,
    pub values: Option<Vec<f64>>,
    pub params: Vec<(String, Value, Domain)>,
    pub intermediate: Vec<(i64, f64)>,
    pub user_attrs: Vec<(String, Value)>,
    pub system_attrs: Vec<(String, Value)>,
    pub run_id: Option<String>,
    pub note: Option<String>,
    pub now_ms: i64,
    pub heartbeat: bool,
    /// Changes to the trial's run, in the same transaction.
    pub run: Option<crate::RunPatch>,
}

/// A float as JSON, non-finite ones as MLflow writes them.
pub(crate) fn float_to_json(v: f64) -> Value {
    if v.is_finite() {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    } else if v.is_nan() {
        Value::String("NaN".into())
    } else if v > 0.0 {
        Value::String("Infinity".into())
    } else {
        Value::String("-Infinity".into())
    }
}

pub(crate) fn float_from_json(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}
