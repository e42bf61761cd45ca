//! Hyperparameter searches as the store keeps them: a study (a W&B-style
//! sweep, or an Optuna-style study driven from Python) and its numbered
//! trials. The search itself is `labbook-search`'s; the store's part is
//! that claiming a trial is one write transaction, so two workers never
//! take the same grid point and a killed worker's trial is found and
//! marked crashed by whoever claims next.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;

use labbook_core::ValidationError;

use crate::error::{Result, StoreError};

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

/// A study's trials as of change `seq`, by number, with where the running
/// and waiting ones are, so that a claim reads no trial it need not (a
/// study of 10,000 trials is claimed from as fast as one of 100).
#[derive(Default)]
pub(crate) struct TrialCache {
    pub(crate) seq: i64,
    pub(crate) trials: Vec<Arc<TrialRecord>>,
    /// Positions in `trials` of the running trials.
    pub(crate) running: BTreeSet<usize>,
    /// Positions in `trials` of the waiting trials.
    pub(crate) waiting: BTreeSet<usize>,
}

impl TrialCache {
    pub(crate) fn put(&mut self, trial: TrialRecord) {
        let number = trial.number();
        let state = trial.state();
        // Numbers grow with each claim, so a changed trial is found by
        // bisection and a new one goes at the end.
        let at = match self.trials.last() {
            Some(last) if last.number() < number => {
                self.trials.push(Arc::new(trial));
                self.trials.len() - 1
            }
            None => {
                self.trials.push(Arc::new(trial));
                0
            }
            Some(_) => match self.trials.binary_search_by_key(&number, |t| t.number()) {
                Ok(i) => {
                    self.trials[i] = Arc::new(trial);
                    i
                }
                Err(i) => {
                    // Out of order (not made by a claim): positions after
                    // it move, so the sets are rebuilt.
                    self.trials.insert(i, Arc::new(trial));
                    self.reindex();
                    return;
                }
            },
        };
        self.running.remove(&at);
        self.waiting.remove(&at);
        match state {
            TrialState::Running => {
                self.running.insert(at);
            }
            TrialState::Waiting => {
                self.waiting.insert(at);
            }
            _ => {}
        }
    }

    fn reindex(&mut self) {
        self.running.clear();
        self.waiting.clear();
        for (i, t) in self.trials.iter().enumerate() {
            match t.state() {
                TrialState::Running => {
                    self.running.insert(i);
                }
                TrialState::Waiting => {
                    self.waiting.insert(i);
                }
                _ => {}
            }
        }
    }
}

/// A trial's stored objective values (JSON text, `None` before it has any).
pub(crate) fn values_from_json(text: Option<&str>) -> Result<Option<Vec<f64>>> {
    let Some(text) = text else {
        return Ok(None);
    };
    let raw: Vec<Value> = serde_json::from_str(text)?;
    Ok(Some(
        raw.iter()
            .map(|v| float_from_json(v).unwrap_or(f64::NAN))
            .collect(),
    ))
}

/// A trial's stored intermediate values, (step, value) in step order.
pub(crate) fn intermediate_from_json(text: &str) -> Result<Vec<(i64, f64)>> {
    let raw: Vec<(i64, Value)> = serde_json::from_str(text)?;
    Ok(raw
        .into_iter()
        .map(|(s, v)| (s, float_from_json(&v).unwrap_or(f64::NAN)))
        .collect())
}

pub(crate) fn values_json(values: &Option<Vec<f64>>) -> Result<Option<String>> {
    values
        .as_ref()
        .map(|v| serde_json::to_string(&v.iter().map(|x| float_to_json(*x)).collect::<Vec<_>>()))
        .transpose()
        .map_err(Into::into)
}

pub(crate) fn intermediate_json(iv: &[(i64, f64)]) -> Result<String> {
    let raw: Vec<(i64, Value)> = iv.iter().map(|&(s, v)| (s, float_to_json(v))).collect();
    Ok(serde_json::to_string(&raw)?)
}

pub(crate) fn finished_error(trial: &TrialRecord) -> StoreError {
    StoreError::Conflict(format!(
        "trial #{} has already finished ({}) and cannot be changed",
        trial.number(),
        trial.state().as_str()
    ))
}

/// The one study `reference` names among `found`.
pub(crate) fn the_one_study(reference: &str, mut found: Vec<StudyRecord>) -> Result<StudyRecord> {
    match found.len() {
        0 => Err(StoreError::NotFound {
            what: "sweep or study",
            id: reference.to_string(),
        }),
        1 => Ok(found.remove(0)),
        _ => Err(StoreError::Ambiguous {
            what: "sweeps or studies",
            reference: reference.to_string(),
            candidates: found
                .iter()
                .map(|s| format!("{} ({})", s.id, s.project))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Whether `reference` may be a study id's prefix: at least 3 of an id's
/// characters; anything else (a LIKE wildcard above all) never matches.
pub(crate) fn may_be_study_id_prefix(reference: &str) -> bool {
    reference.len() >= 3
        && reference
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Whether `new` may resume the existing `study` of the same name: only when
/// asked to, and only as the same kind with the same directions.
pub(crate) fn check_resumable(study: &StudyRecord, new: &NewStudy, resume: bool) -> Result<()> {
    if !resume {
        return Err(StoreError::Conflict(format!(
            "a {} named {:?} exists already in project {:?} (id {}); pick another name, or resume it",
            study.kind.as_str(),
            study.name,
            study.project,
            study.id
        )));
    }
    if study.kind != new.kind {
        return Err(StoreError::Conflict(format!(
            "{:?} is a {}, not a {}",
            study.name,
            study.kind.as_str(),
            new.kind.as_str()
        )));
    }
    if study.directions != new.directions {
        let show = |d: &[Direction]| d.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ");
        return Err(ValidationError::new(
            "direction",
            format!(
                "study {:?} was created to {}; it cannot now {}",
                study.name,
                show(&study.directions),
                show(&new.directions)
            ),
        )
        .into());
    }
    Ok(())
}

/// The checks a new study passes.
pub(crate) fn check_new_study(new: &NewStudy) -> Result<()> {
    labbook_core::run::validate_name("name", &new.name)?;
    if new.directions.is_empty() {
        return Err(
            ValidationError::new("directions", "a study needs at least one direction").into(),
        );
    }
    Ok(())
}

/// What a worker's death leaves in its running trial's note.
pub(crate) fn crashed_note(trial: &TrialRecord) -> String {
    format!(
        "crashed: its worker{} stopped without ending it",
        match (&trial.host, trial.pid) {
            (Some(h), Some(p)) => format!(" ({h}, pid {p})"),
            _ => String::new(),
        }
    )
}

/// What a patch leaves of a trial's times and values.
pub(crate) struct TrialChange {
    pub started: Option<i64>,
    pub ended: Option<i64>,
    pub values: Option<Vec<f64>>,
}

/// Applies `patch` to `trial` (params checked against the distributions
/// the study's `history` used): `None` when it changes nothing (the trial
/// finished, or is not in the state the patch expects), an error when it
/// may not change it.
pub(crate) fn apply_trial_patch(
    trial: &mut TrialRecord,
    patch: &TrialPatch,
    history: &[Arc<TrialRecord>],
) -> Result<Option<TrialChange>> {
    let changes_anything = patch.state.is_some()
        || patch.values.is_some()
        || !patch.params.is_empty()
        || !patch.intermediate.is_empty()
        || !patch.user_attrs.is_empty()
        || !patch.system_attrs.is_empty()
        || patch.run_id.is_some()
        || patch.note.is_some()
        || patch.run.is_some();
    if trial.state().is_finished() {
        if changes_anything {
            return Err(finished_error(trial));
        }
        return Ok(None);
    }
    if let Some(expected) = patch.only_if
        && trial.state() != expected
    {
        return Ok(None);
    }
    if !patch.params.is_empty() {
        for (name, value, domain) in &patch.params {
            domain
                .validate(&format!("params.{name}"))
                .map_err(|e| ValidationError::new(e.path, e.message))?;
            if let Some(before) = trial
                .distributions
                .get(name)
                .or_else(|| history.iter().find_map(|t| t.distributions.get(name)))
            {
                domain.compatible_with(before).map_err(|why| {
                    ValidationError::new(
                        format!("params.{name}"),
                        format!("the parameter's distribution changed within the study: {why}"),
                    )
                })?;
            }
            if trial.obs.params.contains_key(name) && trial.distributions.get(name) != Some(domain)
            {
                return Err(ValidationError::new(
                    format!("params.{name}"),
                    "was suggested already in this trial with another distribution",
                )
                .into());
            }
            trial.obs.params.insert(name.clone(), value.clone());
            trial.distributions.insert(name.clone(), domain.clone());
        }
    }
    for &(step, v) in &patch.intermediate {
        match trial
            .obs
            .intermediate
            .binary_search_by_key(&step, |&(s, _)| s)
        {
            Ok(i) => trial.obs.intermediate[i].1 = v,
            Err(i) => trial.obs.intermediate.insert(i, (step, v)),
        }
    }
    trial.user_attrs.extend(patch.user_attrs.iter().cloned());
    trial
        .system_attrs
        .extend(patch.system_attrs.iter().cloned());
    let mut started = trial.started_ms;
    let mut ended = trial.ended_ms;
    if let Some(state) = patch.state {
        if state == TrialState::Running && trial.state() == TrialState::Waiting {
            started = Some(patch.now_ms);
        }
        if state.is_finished() {
            ended = Some(patch.now_ms);
        }
    }
    let values = patch.values.clone().or(trial.values.clone());
    Ok(Some(TrialChange {
        started,
        ended,
        values,
    }))
}

/// The record of a trial a claim just made from `new`, as stored.
#[allow(clippy::too_many_arguments)]
pub(crate) fn claimed_trial(
    id: i64,
    study: i64,
    number: u64,
    state: TrialState,
    new: &NewTrial,
    worker: &Worker,
    started_ms: Option<i64>,
    now_ms: i64,
) -> TrialRecord {
    TrialRecord {
        id,
        study,
        obs: Observation {
            number,
            state: Some(state),
            params: new.params.clone(),
            value: new.values.as_ref().and_then(|v| v.first().copied()),
            intermediate: new.intermediate.clone(),
        },
        distributions: new.distributions.clone(),
        values: new.values.clone(),
        run_id: new.run_id.clone(),
        grid_index: new.grid_index,
        retry_of: new.retry_of,
        host: worker.host.clone(),
        pid: worker.pid,
        started_ms,
        ended_ms: new.ended_ms,
        heartbeat_ms: Some(now_ms),
        user_attrs: new.user_attrs.clone(),
        system_attrs: new.system_attrs.clone(),
        note: None,
    }
}
