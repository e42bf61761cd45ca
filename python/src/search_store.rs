//! `_native.SearchStore`: the store's studies and trials as Optuna's storage
//! interface needs them (`labbook.optuna.Storage` is a thin adapter over
//! this). Optuna's distributions are read and written in Optuna's own JSON
//! (`{"name": "FloatDistribution", "attributes": {…}}`) and kept as
//! labbook's domains, so a study driven by Optuna and one by
//! `labbook.study()` hold the same records. Each trial is a labbook run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use pyo3::create_exception;
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::{Value, json};

use labbook_core::{Config, ConfigValue, RunStatus, SeriesColumns};
use labbook_search::{Direction, Domain, TrialState};
use labbook_store::appender::Appender;
use labbook_store::{
    Claim, Claimed, NewRun, NewStudy, NewTrial, RunPatch, SqliteStore, Store, StoreError,
    StudyKind, StudyPatch, TrialPatch, TrialRecord, Worker,
};

use crate::convert::{json_map_to_py, json_to_py, to_config_value};
use crate::{LabbookError, now_ms, to_py_err};

create_exception!(
    _native,
    DuplicateStudyError,
    LabbookError,
    "A study of that name exists already."
);
create_exception!(
    _native,
    TrialFinishedError,
    LabbookError,
    "The trial has finished and cannot be changed."
);

/// An Optuna distribution's JSON as a domain.
pub fn domain_from_optuna(text: &str) -> Result<Domain, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let attrs = &v["attributes"];
    let f = |k: &str| attrs[k].as_f64();
    let domain = match v["name"].as_str().unwrap_or_default() {
        "FloatDistribution" => Domain::Float {
            low: f("low").ok_or("FloatDistribution without low")?,
            high: f("high").ok_or("FloatDistribution without high")?,
            log: attrs["log"].as_bool().unwrap_or(false),
            step: f("step"),
        },
        "IntDistribution" => Domain::Int {
            low: attrs["low"].as_i64().ok_or("IntDistribution without low")?,
            high: attrs["high"]
                .as_i64()
                .ok_or("IntDistribution without high")?,
            log: attrs["log"].as_bool().unwrap_or(false),
            step: attrs["step"].as_i64().unwrap_or(1),
        },
        "CategoricalDistribution" => Domain::Categorical {
            choices: attrs["choices"]
                .as_array()
                .cloned()
                .ok_or("CategoricalDistribution without choices")?,
        },
        // Optuna's older names, which its storages still read.
        "UniformDistribution" => Domain::Float {
            low: f("low").ok_or("no low")?,
            high: f("high").ok_or("no high")?,
            log: false,
            step: None,
        },
        "LogUniformDistribution" => Domain::Float {
            low: f("low").ok_or("no low")?,
            high: f("high").ok_or("no high")?,
            log: true,
            step: None,
        },
        "DiscreteUniformDistribution" => Domain::Float {
            low: f("low").ok_or("no low")?,
            high: f("high").ok_or("no high")?,
            log: false,
            step: f("q"),
        },
        "IntUniformDistribution" | "IntLogUniformDistribution" => Domain::Int {
            low: attrs["low"].as_i64().ok_or("no low")?,
            high: attrs["high"].as_i64().ok_or("no high")?,
            log: v["name"] == "IntLogUniformDistribution",
            step: attrs["step"].as_i64().unwrap_or(1),
        },
        other => return Err(format!("unknown distribution {other:?}")),
    };
    Ok(domain)
}

/// A domain as Optuna's distribution JSON.
pub fn domain_to_optuna(domain: &Domain) -> String {
    match domain {
        Domain::Float {
            low,
            high,
            log,
            step,
        } => json!({"name": "FloatDistribution", "attributes": {"step": step, "low": low, "high": high, "log": log}}),
        Domain::Int {
            low,
            high,
            log,
            step,
        } => json!({"name": "IntDistribution", "attributes": {"log": log, "step": step, "low": low, "high": high}}),
        Domain::Categorical { choices } => {
            json!({"name": "CategoricalDistribution", "attributes": {"choices": choices}})
        }
    }
    .to_string()
}

fn py_json(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Value> {
    let v = to_config_value(obj, what, 0)?;
    serde_json::to_value(&v).map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

fn state_of(s: &str) -> PyResult<TrialState> {
    match s {
        "RUNNING" | "running" => Ok(TrialState::Running),
        "COMPLETE" | "complete" => Ok(TrialState::Complete),
        "PRUNED" | "pruned" => Ok(TrialState::Pruned),
        "FAIL" | "failed" => Ok(TrialState::Failed),
        "WAITING" | "waiting" => Ok(TrialState::Waiting),
        other => Err(PyValueError::new_err(format!(
            "state: unknown trial state {other:?}"
        ))),
    }
}

fn state_name(s: TrialState) -> &'static str {
    match s {
        TrialState::Running => "RUNNING",
        TrialState::Complete => "COMPLETE",
        TrialState::Pruned => "PRUNED",
        // Optuna has no "crashed": a trial whose process died failed.
        TrialState::Failed | TrialState::Crashed => "FAIL",
        TrialState::Waiting => "WAITING",
    }
}

#[pyclass(frozen, module = "labbook._native")]
pub struct SearchStore {
    store: Arc<SqliteStore>,
    dir: PathBuf,
    project: String,
    worker: Worker,
}

impl SearchStore {
    fn err(&self, e: StoreError) -> PyErr {
        match e {
            StoreError::NotFound { .. } => PyKeyError::new_err(e.to_string()),
            other => to_py_err(other),
        }
    }

    fn trial_or_key_error(&self, trial_id: i64) -> PyResult<TrialRecord> {
        self.store.trial(trial_id).map_err(|e| self.err(e))
    }

    fn updatable(&self, trial_id: i64) -> PyResult<TrialRecord> {
        let t = self.trial_or_key_error(trial_id)?;
        if t.state().is_finished() {
            return Err(TrialFinishedError::new_err(format!(
                "Trial#{} has already finished and can not be updated.",
                t.number()
            )));
        }
        Ok(t)
    }

    fn update(&self, py: Python<'_>, trial_id: i64, patch: TrialPatch) -> PyResult<bool> {
        py.detach(|| self.store.update_trial(trial_id, &patch))
            .map_err(|e| match e {
                StoreError::Conflict(m) if m.contains("already finished") => {
                    TrialFinishedError::new_err(m)
                }
                StoreError::Invalid(v) => PyValueError::new_err(v.to_string()),
                other => self.err(other),
            })
    }

    fn study_pk_of(&self, study_id: i64) -> PyResult<()> {
        self.store
            .study_by_pk(study_id)
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}

fn trial_to_py<'py>(py: Python<'py>, t: &TrialRecord) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("trial_id", t.id)?;
    d.set_item("study_id", t.study)?;
    d.set_item("number", t.number())?;
    d.set_item("state", state_name(t.state()))?;
    d.set_item("values", t.values.clone())?;
    let params = PyDict::new(py);
    let distributions = PyDict::new(py);
    for (k, v) in &t.obs.params {
        params.set_item(k, json_to_py(py, v)?)?;
        if let Some(dist) = t.distributions.get(k) {
            distributions.set_item(k, domain_to_optuna(dist))?;
        }
    }
    d.set_item("params", params)?;
    d.set_item("distributions", distributions)?;
    let iv = PyDict::new(py);
    for (s, v) in &t.obs.intermediate {
        iv.set_item(s, v)?;
    }
    d.set_item("intermediate_values", iv)?;
    d.set_item("user_attrs", json_map_to_py(py, &t.user_attrs)?)?;
    d.set_item("system_attrs", json_map_to_py(py, &t.system_attrs)?)?;
    d.set_item("started_ms", t.started_ms)?;
    d.set_item("ended_ms", t.ended_ms)?;
    d.set_item("run_id", &t.run_id)?;
    Ok(d)
}

#[pymethods]
impl SearchStore {
    /// Opens (creating if needed) the store at `dir` (a `.labbook` folder or
    /// the folder holding one), else the one `labbook.init` would use;
    /// Optuna's studies go to `project`.
    #[new]
    #[pyo3(signature = (dir, project))]
    fn new(py: Python<'_>, dir: Option<PathBuf>, project: String) -> PyResult<SearchStore> {
        let (store, dir) = py.detach(|| crate::study::open(dir))?;
        Ok(SearchStore {
            store,
            dir,
            project,
            worker: Worker {
                host: labbook_capture::hostname(),
                pid: Some(std::process::id()),
            },
        })
    }

    /// The store folder.
    #[getter]
    fn dir(&self) -> String {
        self.dir.display().to_string()
    }

    /// A new study; raises DuplicateStudyError when the name is taken.
    fn create_study(&self, py: Python<'_>, name: String, directions: Vec<String>) -> PyResult<i64> {
        let directions: Vec<Direction> = directions
            .iter()
            .map(|d| {
                Direction::parse(d).ok_or_else(|| {
                    PyValueError::new_err(format!("direction: {d:?} is not minimize or maximize"))
                })
            })
            .collect::<PyResult<_>>()?;
        let new = NewStudy {
            project: self.project.clone(),
            name,
            kind: StudyKind::Study,
            directions,
            spec: json!({"driver": "optuna", "metric": "objective"}),
            why: None,
            created_ms: now_ms(),
        };
        match py.detach(|| self.store.create_study(&new, false)) {
            Ok((study, _)) => Ok(study.pk),
            Err(StoreError::Conflict(m)) => Err(DuplicateStudyError::new_err(m)),
            Err(e) => Err(to_py_err(e)),
        }
    }

    fn delete_study(&self, py: Python<'_>, study_id: i64) -> PyResult<()> {
        py.detach(|| self.store.delete_study(study_id, now_ms()))
            .map_err(|e| self.err(e))
    }

    fn set_study_attr(
        &self,
        py: Python<'_>,
        study_id: i64,
        system: bool,
        key: String,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let value = py_json(value, &key)?;
        let patch = if system {
            StudyPatch {
                system_attrs: vec![(key, value)],
                ..StudyPatch::default()
            }
        } else {
            StudyPatch {
                user_attrs: vec![(key, value)],
                ..StudyPatch::default()
            }
        };
        py.detach(|| self.store.update_study(study_id, &patch))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// A study's id by name (in this storage's project).
    fn study_id(&self, py: Python<'_>, name: String) -> PyResult<i64> {
        let studies = py
            .detach(|| self.store.list_studies(Some(&self.project)))
            .map_err(to_py_err)?;
        studies
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.pk)
            .ok_or_else(|| PyKeyError::new_err(format!("no study named {name:?}")))
    }

    /// Every study of the project (or one): dicts with study_id, name,
    /// directions, user_attrs, system_attrs.
    #[pyo3(signature = (study_id=None))]
    fn studies<'py>(&self, py: Python<'py>, study_id: Option<i64>) -> PyResult<Bound<'py, PyList>> {
        let studies = match study_id {
            Some(pk) => vec![
                py.detach(|| self.store.study_by_pk(pk))
                    .map_err(|e| self.err(e))?,
            ],
            None => py
                .detach(|| self.store.list_studies(Some(&self.project)))
                .map_err(to_py_err)?,
        };
        let list = PyList::empty(py);
        for s in studies {
            let d = PyDict::new(py);
            d.set_item("study_id", s.pk)?;
            d.set_item("name", &s.name)?;
            d.set_item(
                "directions",
                s.directions.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
            )?;
            d.set_item("user_attrs", json_map_to_py(py, &s.user_attrs)?)?;
            d.set_item("system_attrs", json_map_to_py(py, &s.system_attrs)?)?;
            list.append(d)?;
        }
        Ok(list)
    }

    /// A new trial, empty and running, or a copy of `template` (a dict as
    /// `trial()` returns, its number ignored). Its run is created with it.
    #[pyo3(signature = (study_id, template=None))]
    fn create_trial(
        &self,
        py: Python<'_>,
        study_id: i64,
        template: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<i64> {
        self.study_pk_of(study_id)?;
        let mut new = NewTrial::default();
        if let Some(t) = template {
            let get = |k: &str| t.get_item(k).ok().flatten().filter(|v| !v.is_none());
            if let Some(s) = get("state") {
                new.state = Some(state_of(&s.extract::<String>()?)?);
            }
            if let Some(v) = get("values") {
                new.values = Some(v.extract::<Vec<f64>>()?);
            }
            if let Some(p) = get("params") {
                let p = p.cast::<PyDict>()?;
                let dists = get("distributions");
                for (k, v) in p.iter() {
                    let name: String = k.extract()?;
                    let value = py_json(&v, &name)?;
                    if let Some(dists) = &dists {
                        let text: String = dists.get_item(&name)?.extract()?;
                        let domain = domain_from_optuna(&text)
                            .map_err(|e| PyValueError::new_err(format!("{name}: {e}")))?;
                        new.distributions.insert(name.clone(), domain);
                    }
                    new.params.insert(name, value);
                }
            }
            if let Some(iv) = get("intermediate_values") {
                let iv = iv.cast::<PyDict>()?;
                for (k, v) in iv.iter() {
                    new.intermediate.push((k.extract()?, v.extract()?));
                }
                new.intermediate.sort_by_key(|&(s, _)| s);
            }
            for (key, target) in [
                ("user_attrs", &mut new.user_attrs),
                ("system_attrs", &mut new.system_attrs),
            ] {
                if let Some(a) = get(key) {
                    for (k, v) in a.cast::<PyDict>()?.iter() {
                        let name: String = k.extract()?;
                        let value = py_json(&v, &name)?;
                        target.insert(name, value);
                    }
                }
            }
            new.started_ms = get("started_ms").map(|v| v.extract()).transpose()?;
            new.ended_ms = get("ended_ms").map(|v| v.extract()).transpose()?;
        }
        let study = py
            .detach(|| self.store.study_by_pk(study_id))
            .map_err(|e| self.err(e))?;
        let finished = new.state.is_some_and(TrialState::is_finished);
        let waiting = new.state == Some(TrialState::Waiting);
        let run = trial_run(
            &study,
            &new.params,
            None,
            new.started_ms.unwrap_or_else(now_ms),
            &self.worker,
        );
        // A waiting trial gets its run when a process starts it, so the run
        // carries that process and is not reaped with the one that queued it.
        new.run = (!waiting).then_some(run);
        let now = now_ms();
        let claimed = py
            .detach(|| {
                self.store.claim_trial(
                    study_id,
                    &self.worker,
                    now,
                    // Optuna decides itself which trials are stale.
                    &|_| true,
                    &mut |_, _| Ok(Claim::Trial(Box::new(new.clone()))),
                )
            })
            .map_err(|e| self.err(e))?;
        let Claimed::Trial(trial) = claimed else {
            return Err(LabbookError::new_err("the study takes no new trials"));
        };
        if finished {
            self.end_run(py, &trial)?;
        }
        Ok(trial.id)
    }

    fn set_trial_param(
        &self,
        py: Python<'_>,
        trial_id: i64,
        name: String,
        value: &Bound<'_, PyAny>,
        distribution: String,
    ) -> PyResult<()> {
        self.updatable(trial_id)?;
        let domain = domain_from_optuna(&distribution)
            .map_err(|e| PyValueError::new_err(format!("{name}: {e}")))?;
        let value = py_json(value, &name)?;
        self.update(
            py,
            trial_id,
            TrialPatch {
                params: vec![(name, value, domain)],
                now_ms: now_ms(),
                ..TrialPatch::default()
            },
        )?;
        Ok(())
    }

    /// Sets a trial's state (and values); False when asked to start a trial
    /// that is not waiting (another process took it).
    #[pyo3(signature = (trial_id, state, values=None))]
    fn set_trial_state_values(
        &self,
        py: Python<'_>,
        trial_id: i64,
        state: &str,
        values: Option<Vec<f64>>,
    ) -> PyResult<bool> {
        let current = self.updatable(trial_id)?;
        let state = state_of(state)?;
        if state == TrialState::Running && current.state() != TrialState::Waiting {
            return Ok(false);
        }
        let changed = self.update(
            py,
            trial_id,
            TrialPatch {
                state: Some(state),
                only_if: (state == TrialState::Running).then_some(TrialState::Waiting),
                values,
                now_ms: now_ms(),
                ..TrialPatch::default()
            },
        )?;
        if changed && state == TrialState::Running && current.run_id.is_none() {
            self.start_run(py, &current)?;
        }
        if changed && state.is_finished() {
            let trial = self.trial_or_key_error(trial_id)?;
            self.end_run(py, &trial)?;
        }
        Ok(changed)
    }

    fn set_trial_intermediate_value(
        &self,
        py: Python<'_>,
        trial_id: i64,
        step: i64,
        value: f64,
    ) -> PyResult<()> {
        self.updatable(trial_id)?;
        self.update(
            py,
            trial_id,
            TrialPatch {
                intermediate: vec![(step, value)],
                now_ms: now_ms(),
                ..TrialPatch::default()
            },
        )?;
        Ok(())
    }

    fn set_trial_attr(
        &self,
        py: Python<'_>,
        trial_id: i64,
        system: bool,
        key: String,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.updatable(trial_id)?;
        let value = py_json(value, &key)?;
        let attr = vec![(key, value)];
        let patch = if system {
            TrialPatch {
                system_attrs: attr,
                now_ms: now_ms(),
                ..TrialPatch::default()
            }
        } else {
            TrialPatch {
                user_attrs: attr,
                now_ms: now_ms(),
                ..TrialPatch::default()
            }
        };
        self.update(py, trial_id, patch)?;
        Ok(())
    }

    fn trial<'py>(&self, py: Python<'py>, trial_id: i64) -> PyResult<Bound<'py, PyDict>> {
        let t = py
            .detach(|| self.store.trial(trial_id))
            .map_err(|e| self.err(e))?;
        trial_to_py(py, &t)
    }

    /// A study's trials by number, optionally only those in `states`.
    #[pyo3(signature = (study_id, states=None))]
    fn trials<'py>(
        &self,
        py: Python<'py>,
        study_id: i64,
        states: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let wanted: Option<Vec<&'static str>> = states.map(|s| {
            s.iter()
                .filter_map(|x| state_of(x).ok().map(state_name))
                .collect()
        });
        let trials = py
            .detach(|| self.store.trials(study_id))
            .map_err(|e| self.err(e))?;
        let list = PyList::empty(py);
        for t in &trials {
            if wanted
                .as_ref()
                .is_some_and(|w| !w.contains(&state_name(t.state())))
            {
                continue;
            }
            list.append(trial_to_py(py, t)?)?;
        }
        Ok(list)
    }
}

/// A trial's parameters as its run's config.
pub(crate) fn params_config(params: &BTreeMap<String, Value>) -> Config {
    params
        .iter()
        .map(|(k, v)| (k.clone(), ConfigValue::from_json(v)))
        .collect()
}

/// The run a trial of `study` is: in the study's project and group, tagged
/// `trial`, its parameters as config.
pub(crate) fn trial_run(
    study: &labbook_store::StudyRecord,
    params: &BTreeMap<String, Value>,
    notes: Option<String>,
    created_ms: i64,
    worker: &Worker,
) -> NewRun {
    NewRun {
        id: None,
        project: study.project.clone(),
        name: None,
        group: Some(study.name.clone()),
        tags: vec!["trial".into()],
        notes,
        config: params_config(params),
        created_ms,
        host: worker.host.clone(),
        pid: worker.pid,
    }
}

impl SearchStore {
    /// Creates the run of a trial that waited and now starts.
    fn start_run(&self, py: Python<'_>, trial: &TrialRecord) -> PyResult<()> {
        let study = py
            .detach(|| self.store.study_by_pk(trial.study))
            .map_err(|e| self.err(e))?;
        let new = trial_run(&study, &trial.obs.params, None, now_ms(), &self.worker);
        let run = py
            .detach(|| self.store.create_run(&new))
            .map_err(to_py_err)?;
        self.update(
            py,
            trial.id,
            TrialPatch {
                run_id: Some(run.id),
                now_ms: now_ms(),
                ..TrialPatch::default()
            },
        )?;
        Ok(())
    }

    /// A finished trial's run ends with it: its status, its parameters as
    /// config, its first value as `objective`, its reports as the curve.
    fn end_run(&self, py: Python<'_>, trial: &TrialRecord) -> PyResult<()> {
        let Some(run_id) = trial.run_id.clone() else {
            return Ok(());
        };
        let status = match trial.state() {
            TrialState::Complete => RunStatus::Finished,
            TrialState::Pruned => RunStatus::Pruned,
            _ => RunStatus::Failed,
        };
        let mut summary = BTreeMap::new();
        if let Some(v) = trial.obs.value.filter(|v| v.is_finite()) {
            summary.insert("objective".to_string(), json!(v));
        }
        let config = params_config(&trial.obs.params);
        let mut cols = SeriesColumns::with_capacity(trial.obs.intermediate.len());
        let ts = trial.ended_ms.unwrap_or_else(now_ms);
        for &(step, v) in &trial.obs.intermediate {
            cols.steps.push(step);
            cols.ts_ms.push(ts);
            cols.values.push(v);
        }
        let series = if cols.steps.is_empty() {
            Vec::new()
        } else {
            vec![("objective".to_string(), cols)]
        };
        let patch = RunPatch {
            status: Some(status),
            ended_ms: trial.ended_ms,
            config: Some(config),
            summary,
            ..RunPatch::default()
        };
        let store: Arc<dyn Store> = self.store.clone();
        py.detach(|| Appender::new(store).commit(&run_id, series, Some(patch), true))
            .map_err(to_py_err)
    }
}
