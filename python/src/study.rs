//! `labbook.study()`: Optuna-style studies whose state is the store's. Each
//! trial is claimed in one write transaction (so any number of processes
//! share a study without "database is locked") and is a labbook run: its
//! parameters are the run's config, its reports the run's curve, and the
//! run sits in the study's group.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::{Value, json};

use labbook_core::{Config, RunStatus, SeriesColumns};
use labbook_search::pruner::Pruner;
use labbook_search::study::{Sampler, StudySettings, best};
use labbook_search::{Direction, Domain, TrialState};
use labbook_store::appender::Appender;
use labbook_store::locate::{STORE_DIR, store_dir_for};
use labbook_store::{
    Claim, Claimed, NewRun, NewStudy, NewTrial, RunPatch, SqliteStore, Store, StudyKind,
    StudyPatch, StudyRecord, TrialPatch, TrialRecord, Worker,
};

use crate::convert::{json_map_to_py, json_to_py, to_config_value};
use crate::{now_ms, to_py_err};

struct Inner {
    store: Arc<SqliteStore>,
    study: StudyRecord,
    settings: StudySettings,
    worker: Worker,
    metric: String,
    /// The domain each parameter was last asked for with in this process.
    known: Mutex<BTreeMap<String, Domain>>,
}

impl Inner {
    fn direction(&self) -> Direction {
        self.study.direction()
    }

    fn alive(&self, trial: &TrialRecord, now: i64) -> bool {
        match (&trial.host, trial.pid) {
            (Some(h), Some(pid)) if Some(h) == self.worker.host.as_ref() => {
                labbook_capture::pid_alive(pid)
            }
            _ => trial
                .heartbeat_ms
                .is_some_and(|hb| now - hb < labbook_store::heartbeat_timeout_ms()),
        }
    }
}

fn py_to_json(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Value> {
    let v = to_config_value(obj, what, 0)?;
    serde_json::to_value(&v).map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

fn value_err(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// The project and store a study lives in, found as `labbook.init` finds
/// them.
pub(crate) fn open(store: Option<PathBuf>) -> PyResult<(Arc<SqliteStore>, PathBuf)> {
    let cwd = std::env::current_dir().map_err(value_err)?;
    let dir = match store {
        Some(d)
            if d.file_name().is_some_and(|n| n == STORE_DIR) || d.join("labbook.db").exists() =>
        {
            cwd.join(d)
        }
        Some(d) => cwd.join(d).join(STORE_DIR),
        None => store_dir_for(
            &cwd,
            std::env::var_os("LABBOOK_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .as_deref(),
        ),
    };
    let store = SqliteStore::open(&dir).map_err(to_py_err)?;
    Ok((Arc::new(store), dir))
}

fn default_project(store_dir: &std::path::Path) -> String {
    std::env::var("LABBOOK_PROJECT")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| {
            std::fs::canonicalize(store_dir)
                .unwrap_or_else(|_| store_dir.to_path_buf())
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".into())
        })
}

fn pruner_from(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Pruner> {
    let Some(obj) = obj else {
        return Ok(Pruner::None);
    };
    if obj.is_none() {
        return Ok(Pruner::None);
    }
    if let Ok(name) = obj.extract::<String>() {
        return Pruner::by_name(&name).ok_or_else(|| {
            PyValueError::new_err(format!(
                "pruner: unknown pruner {name:?}; use \"median\", \"asha\", \"hyperband\" or None"
            ))
        });
    }
    // A mapping: {"kind": "asha", "reduction_factor": 3, ...}.
    let json = py_to_json(obj, "pruner")?;
    serde_json::from_value(json).map_err(|e| PyValueError::new_err(format!("pruner: {e}")))
}

#[pyclass(frozen, module = "labbook._native")]
pub struct StudyCore {
    inner: Arc<Inner>,
}

#[pymethods]
impl StudyCore {
    #[new]
    #[pyo3(signature = (name, direction="minimize", sampler="tpe", pruner=None, seed=None, project=None, store=None, why=None, metric=None, grid=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: String,
        direction: &str,
        sampler: &str,
        pruner: Option<&Bound<'_, PyAny>>,
        seed: Option<u64>,
        project: Option<String>,
        store: Option<PathBuf>,
        why: Option<String>,
        metric: Option<String>,
        grid: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<StudyCore> {
        let direction = Direction::parse(direction).ok_or_else(|| {
            PyValueError::new_err(format!(
                "direction: {direction:?} is not \"minimize\" or \"maximize\""
            ))
        })?;
        let sampler = match (sampler, grid) {
            ("grid", Some(grid)) => {
                let mut space = Vec::new();
                for (k, v) in grid.iter() {
                    let name: String = k.extract()?;
                    let values = py_to_json(&v, &format!("grid.{name}"))?;
                    let Value::Array(values) = values else {
                        return Err(PyValueError::new_err(format!(
                            "grid.{name}: give a list of values"
                        )));
                    };
                    space.push((name, values));
                }
                Sampler::Grid { space }
            }
            ("grid", None) => {
                return Err(PyValueError::new_err(
                    "sampler=\"grid\" needs grid={\"name\": [values], ...}",
                ));
            }
            (other, _) => Sampler::by_name(other).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "sampler: unknown sampler {other:?}; use \"tpe\", \"random\" or \"grid\""
                ))
            })?,
        };
        let pruner = pruner_from(pruner)?;
        let (store, dir) = open(store)?;
        let project = project.unwrap_or_else(|| default_project(&dir));
        let metric = metric.unwrap_or_else(|| "objective".into());
        let seed_given = seed;
        let settings = StudySettings {
            sampler,
            pruner,
            seed: seed.unwrap_or_else(|| labbook_store::random_bits() >> 11),
        };
        let spec = json!({ "settings": settings, "metric": metric });
        let (study, created) = py
            .detach(|| {
                store.create_study(
                    &NewStudy {
                        project,
                        name,
                        kind: StudyKind::Study,
                        directions: vec![direction],
                        spec,
                        why,
                        created_ms: now_ms(),
                    },
                    true,
                )
            })
            .map_err(to_py_err)?;
        // A resumed study keeps its seed unless one is given, so its draws go
        // on as they would have; the sampler and pruner are the caller's.
        let mut settings = settings;
        if !created
            && seed_given.is_none()
            && let Some(seed) = study.spec["settings"]["seed"].as_u64()
        {
            settings.seed = seed;
        }
        let metric = study.spec["metric"].as_str().unwrap_or(&metric).to_string();
        Ok(StudyCore {
            inner: Arc::new(Inner {
                store,
                study,
                settings,
                worker: Worker {
                    host: labbook_capture::hostname(),
                    pid: Some(std::process::id()),
                },
                metric,
                known: Mutex::new(BTreeMap::new()),
            }),
        })
    }

    #[getter]
    fn id(&self) -> String {
        self.inner.study.id.clone()
    }

    #[getter]
    fn study_id(&self) -> i64 {
        self.inner.study.pk
    }

    #[getter]
    fn name(&self) -> String {
        self.inner.study.name.clone()
    }

    #[getter]
    fn project(&self) -> String {
        self.inner.study.project.clone()
    }

    #[getter]
    fn direction(&self) -> &'static str {
        self.inner.direction().as_str()
    }

    #[getter]
    fn sampler(&self) -> &'static str {
        self.inner.settings.sampler.name()
    }

    /// A new trial (or the oldest enqueued one), claimed for this process.
    #[pyo3(signature = (fixed=None))]
    fn ask(&self, py: Python<'_>, fixed: Option<&Bound<'_, PyDict>>) -> PyResult<TrialCore> {
        let mut fixed_params = BTreeMap::new();
        if let Some(fixed) = fixed {
            for (k, v) in fixed.iter() {
                let name: String = k.extract()?;
                let value = py_to_json(&v, &name)?;
                fixed_params.insert(name, value);
            }
        }
        let inner = Arc::clone(&self.inner);
        let claimed = py
            .detach(|| claim(&inner, fixed_params))
            .map_err(to_py_err)?;
        match claimed {
            Claimed::Trial(trial) => Ok(TrialCore::new(Arc::clone(&self.inner), &trial)),
            Claimed::Wait(why) => Err(PyRuntimeError::new_err(why)),
            Claimed::Done(_, reason) => {
                Err(PyRuntimeError::new_err(reason.unwrap_or_else(|| {
                    "the study hands out no more trials".into()
                })))
            }
        }
    }

    /// Adds a trial to run next with these parameters (Optuna's
    /// `enqueue_trial`).
    fn enqueue(&self, py: Python<'_>, params: &Bound<'_, PyDict>) -> PyResult<u64> {
        let mut fixed = BTreeMap::new();
        for (k, v) in params.iter() {
            let name: String = k.extract()?;
            fixed.insert(name.clone(), py_to_json(&v, &name)?);
        }
        let inner = Arc::clone(&self.inner);
        let claimed = py
            .detach(|| {
                inner.store.claim_trial(
                    inner.study.pk,
                    &inner.worker,
                    now_ms(),
                    &|t| inner.alive(t, now_ms()),
                    &mut |_, _| {
                        let mut system_attrs = BTreeMap::new();
                        system_attrs.insert(
                            "fixed_params".to_string(),
                            Value::Object(fixed.clone().into_iter().collect()),
                        );
                        Ok(Claim::Trial(Box::new(NewTrial {
                            state: Some(TrialState::Waiting),
                            system_attrs,
                            ..NewTrial::default()
                        })))
                    },
                )
            })
            .map_err(to_py_err)?;
        match claimed {
            Claimed::Trial(t) => Ok(t.number()),
            Claimed::Wait(why) => Err(PyRuntimeError::new_err(why)),
            Claimed::Done(_, reason) => Err(PyRuntimeError::new_err(
                reason.unwrap_or_else(|| "the study is closed".into()),
            )),
        }
    }

    /// Every trial, as dicts, by number.
    fn trials<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let trials = py
            .detach(|| self.inner.store.trials(self.inner.study.pk))
            .map_err(to_py_err)?;
        let list = PyList::empty(py);
        for t in &trials {
            list.append(trial_dict(py, t)?)?;
        }
        Ok(list)
    }

    /// The best complete trial as a dict, or None.
    fn best<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let trials = py
            .detach(|| self.inner.store.trials(self.inner.study.pk))
            .map_err(to_py_err)?;
        best(&trials, self.inner.direction())
            .map(|t| trial_dict(py, t))
            .transpose()
    }

    fn set_user_attr(&self, py: Python<'_>, key: String, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = py_to_json(value, &key)?;
        py.detach(|| {
            self.inner.store.update_study(
                self.inner.study.pk,
                &StudyPatch {
                    user_attrs: vec![(key, value)],
                    ..StudyPatch::default()
                },
            )
        })
        .map_err(to_py_err)?;
        Ok(())
    }

    fn user_attrs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let study = py
            .detach(|| self.inner.store.study_by_pk(self.inner.study.pk))
            .map_err(to_py_err)?;
        json_map_to_py(py, &study.user_attrs)
    }
}

/// Claims the next trial: an enqueued one first, else a new one with what
/// the sampler fixes at `ask`, and its run, in one transaction.
fn claim(inner: &Inner, fixed: BTreeMap<String, Value>) -> labbook_store::Result<Claimed> {
    // An enqueued trial is taken by moving it from waiting to running, which
    // only one process can do.
    if fixed.is_empty() {
        for t in inner.store.waiting_trials(inner.study.pk)?.iter() {
            let taken = inner.store.update_trial(
                t.id,
                &TrialPatch {
                    state: Some(TrialState::Running),
                    only_if: Some(TrialState::Waiting),
                    now_ms: now_ms(),
                    heartbeat: true,
                    ..TrialPatch::default()
                },
            )?;
            if taken {
                let run = inner
                    .store
                    .create_run(&new_run(inner, t.number(), &BTreeMap::new()))?;
                inner.store.update_trial(
                    t.id,
                    &TrialPatch {
                        run_id: Some(run.id),
                        now_ms: now_ms(),
                        heartbeat: true,
                        ..TrialPatch::default()
                    },
                )?;
                return Ok(Claimed::Trial(Arc::new(inner.store.trial(t.id)?)));
            }
        }
    }
    let now = now_ms();
    inner.store.claim_trial(
        inner.study.pk,
        &inner.worker,
        now,
        &|t| inner.alive(t, now),
        &mut |_, trials| {
            let number = trials.last().map_or(0, |t| t.number() + 1);
            let plan = inner
                .settings
                .ask(inner.direction(), trials, number)
                .map_err(|e| labbook_core::ValidationError::new(e.path, e.message))?;
            if plan.exhausted {
                return Ok(Claim::Wait(
                    "every point of the grid has been handed out".into(),
                ));
            }
            let mut params = BTreeMap::new();
            let mut distributions = BTreeMap::new();
            for (name, (value, domain)) in plan.params {
                params.insert(name.clone(), value);
                distributions.insert(name, domain);
            }
            let mut system_attrs = BTreeMap::new();
            let mut pinned: serde_json::Map<String, Value> = plan.fixed.into_iter().collect();
            pinned.extend(fixed.clone());
            if !pinned.is_empty() {
                system_attrs.insert("fixed_params".to_string(), Value::Object(pinned));
            }
            let config: BTreeMap<String, Value> = params.clone();
            Ok(Claim::Trial(Box::new(NewTrial {
                params,
                distributions,
                grid_index: plan.grid_index,
                system_attrs,
                run: Some(new_run(inner, number, &config)),
                ..NewTrial::default()
            })))
        },
    )
}

fn new_run(inner: &Inner, number: u64, params: &BTreeMap<String, Value>) -> NewRun {
    let notes = match &inner.study.why {
        Some(why) => format!("{why} · trial #{number}"),
        None => format!("study {} trial #{number}", inner.study.name),
    };
    crate::search_store::trial_run(&inner.study, params, Some(notes), now_ms(), &inner.worker)
}

fn trial_dict<'py>(py: Python<'py>, t: &TrialRecord) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("trial_id", t.id)?;
    d.set_item("number", t.number())?;
    d.set_item("state", t.state().as_str())?;
    d.set_item("value", t.obs.value)?;
    d.set_item("values", t.values.clone())?;
    d.set_item("params", json_map_to_py(py, &t.obs.params)?)?;
    let distributions = PyDict::new(py);
    for (k, v) in &t.distributions {
        distributions.set_item(k, serde_json::to_string(v).unwrap_or_default())?;
    }
    d.set_item("distributions", distributions)?;
    let iv = PyDict::new(py);
    for (s, v) in &t.obs.intermediate {
        iv.set_item(s, v)?;
    }
    d.set_item("intermediate_values", iv)?;
    d.set_item("user_attrs", json_map_to_py(py, &t.user_attrs)?)?;
    d.set_item("system_attrs", json_map_to_py(py, &t.system_attrs)?)?;
    d.set_item("run_id", &t.run_id)?;
    d.set_item("started_ms", t.started_ms)?;
    d.set_item("ended_ms", t.ended_ms)?;
    d.set_item("note", &t.note)?;
    Ok(d)
}

/// What a trial knows that the store does not yet: parameters asked for
/// since the last write.
#[derive(Default)]
struct Pending {
    params: Vec<(String, Value, Domain)>,
    intermediate: Vec<(i64, f64)>,
}

#[pyclass(frozen, module = "labbook._native")]
pub struct TrialCore {
    inner: Arc<Inner>,
    id: i64,
    number: u64,
    run_id: Option<String>,
    /// Parameters fixed at `ask` or asked for already: value and domain
    /// (none yet for a grid's or an enqueued trial's fixed values).
    params: Mutex<BTreeMap<String, (Value, Option<Domain>)>>,
    pending: Mutex<Pending>,
    done: Mutex<bool>,
}

impl TrialCore {
    fn new(inner: Arc<Inner>, trial: &TrialRecord) -> TrialCore {
        let mut params: BTreeMap<String, (Value, Option<Domain>)> = trial
            .obs
            .params
            .iter()
            .map(|(k, v)| (k.clone(), (v.clone(), trial.distributions.get(k).cloned())))
            .collect();
        if let Some(Value::Object(fixed)) = trial.system_attrs.get("fixed_params") {
            for (k, v) in fixed {
                params.entry(k.clone()).or_insert((v.clone(), None));
            }
        }
        TrialCore {
            inner,
            id: trial.id,
            number: trial.number(),
            run_id: trial.run_id.clone(),
            params: Mutex::new(params),
            pending: Mutex::new(Pending::default()),
            done: Mutex::new(false),
        }
    }

    fn suggest(&self, py: Python<'_>, name: String, domain: Domain) -> PyResult<Value> {
        domain.validate(&name).map_err(value_err)?;
        if *self.done.lock() {
            return Err(PyRuntimeError::new_err(format!(
                "trial #{} has already finished; ask for a new trial",
                self.number
            )));
        }
        {
            let params = self.params.lock();
            if let Some((value, known)) = params.get(&name) {
                match known {
                    Some(d) if *d == domain => return Ok(value.clone()),
                    Some(d) => {
                        return Err(PyValueError::new_err(format!(
                            "{name}: asked for again in trial #{} with another distribution ({} then {})",
                            self.number,
                            serde_json::to_string(d).unwrap_or_default(),
                            serde_json::to_string(&domain).unwrap_or_default()
                        )));
                    }
                    None => {}
                }
            }
        }
        let inner = Arc::clone(&self.inner);
        // The study's own rule first: one distribution per parameter. The
        // domains seen are remembered, so a parameter asked for again (the
        // common case) needs no look at the trials.
        let known = inner.known.lock().get(&name).cloned();
        let before = match known {
            Some(d) => Some(d),
            None => {
                let trials = py
                    .detach(|| inner.store.trials(inner.study.pk))
                    .map_err(to_py_err)?;
                trials
                    .iter()
                    .rev()
                    .find_map(|t| t.distributions.get(&name))
                    .cloned()
            }
        };
        if let Some(before) = &before
            && let Err(why) = domain.compatible_with(before)
        {
            return Err(PyValueError::new_err(format!(
                "{name}: the parameter's distribution changed within study {:?}: {why}",
                inner.study.name
            )));
        }
        inner.known.lock().insert(name.clone(), domain.clone());
        let fixed = self.params.lock().get(&name).map(|(v, _)| v.clone());
        let value = match fixed.filter(|v| domain.contains(v)) {
            Some(v) => v,
            // Random search needs no history.
            None if matches!(inner.settings.sampler, Sampler::Random) => {
                labbook_search::random::sample_param(
                    &labbook_search::ParamSpec::new(name.clone(), domain.clone()),
                    inner.settings.seed,
                    self.number,
                )
            }
            None => {
                let trials = py
                    .detach(|| inner.store.trials(inner.study.pk))
                    .map_err(to_py_err)?;
                py.detach(|| {
                    inner
                        .settings
                        .suggest(inner.direction(), &trials, self.number, &name, &domain)
                })
            }
        };
        self.params
            .lock()
            .insert(name.clone(), (value.clone(), Some(domain.clone())));
        self.pending
            .lock()
            .params
            .push((name, value.clone(), domain));
        Ok(value)
    }

    fn flush(&self, py: Python<'_>, patch: TrialPatch) -> PyResult<bool> {
        let pending = std::mem::take(&mut *self.pending.lock());
        let mut patch = patch;
        patch.params = pending.params;
        patch.intermediate = pending.intermediate;
        patch.now_ms = now_ms();
        patch.heartbeat = true;
        let inner = Arc::clone(&self.inner);
        py.detach(|| inner.store.update_trial(self.id, &patch))
            .map_err(to_py_err)
    }

    fn params_config(&self) -> Config {
        let params: BTreeMap<String, Value> = self
            .params
            .lock()
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        crate::search_store::params_config(&params)
    }
}

fn to_json_value(py: Python<'_>, v: &Value) -> PyResult<Py<PyAny>> {
    Ok(json_to_py(py, v)?.unbind())
}

#[pymethods]
impl TrialCore {
    #[getter]
    fn number(&self) -> u64 {
        self.number
    }

    #[getter]
    fn trial_id(&self) -> i64 {
        self.id
    }

    #[getter]
    fn run_id(&self) -> Option<String> {
        self.run_id.clone()
    }

    #[getter]
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, (v, domain)) in self.params.lock().iter() {
            if domain.is_some() {
                d.set_item(k, to_json_value(py, v)?)?;
            }
        }
        Ok(d)
    }

    #[pyo3(signature = (name, low, high, *, step=None, log=false))]
    fn suggest_float(
        &self,
        py: Python<'_>,
        name: String,
        low: f64,
        high: f64,
        step: Option<f64>,
        log: bool,
    ) -> PyResult<f64> {
        let v = self.suggest(
            py,
            name,
            Domain::Float {
                low,
                high,
                log,
                step,
            },
        )?;
        Ok(v.as_f64().unwrap_or(f64::NAN))
    }

    #[pyo3(signature = (name, low, high, *, step=1, log=false))]
    fn suggest_int(
        &self,
        py: Python<'_>,
        name: String,
        low: i64,
        high: i64,
        step: i64,
        log: bool,
    ) -> PyResult<i64> {
        let v = self.suggest(
            py,
            name,
            Domain::Int {
                low,
                high,
                log,
                step,
            },
        )?;
        Ok(v.as_i64().unwrap_or(low))
    }

    fn suggest_categorical(
        &self,
        py: Python<'_>,
        name: String,
        choices: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let choices = match py_to_json(choices, &name)? {
            Value::Array(items) => items,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "{name}: choices must be a list"
                )));
            }
        };
        if let Some(bad) = choices.iter().find(|c| c.is_array() || c.is_object()) {
            return Err(PyValueError::new_err(format!(
                "{name}: a choice must be None, a bool, a number or a string, got {bad}"
            )));
        }
        let v = self.suggest(py, name, Domain::Categorical { choices })?;
        to_json_value(py, &v)
    }

    /// Records `value` at `step` (logged as the trial run's curve).
    fn report(&self, py: Python<'_>, value: f64, step: i64) -> PyResult<()> {
        self.pending.lock().intermediate.push((step, value));
        self.flush(py, TrialPatch::default())?;
        Ok(())
    }

    /// Whether the study's pruner says to stop this trial now.
    fn should_prune(&self, py: Python<'_>) -> PyResult<bool> {
        if !self.pending.lock().params.is_empty() {
            self.flush(py, TrialPatch::default())?;
        }
        let inner = Arc::clone(&self.inner);
        let id = self.id;
        py.detach(|| {
            let trials = inner.store.trials(inner.study.pk)?;
            let Some(me) = trials.iter().find(|t| t.id == id) else {
                return Ok(false);
            };
            Ok(inner.settings.pruner.should_prune(
                &inner.study.name,
                &me.obs,
                &trials,
                inner.direction(),
            ))
        })
        .map_err(to_py_err)
    }

    fn set_user_attr(&self, py: Python<'_>, key: String, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = py_to_json(value, &key)?;
        self.flush(
            py,
            TrialPatch {
                user_attrs: vec![(key, value)],
                ..TrialPatch::default()
            },
        )?;
        Ok(())
    }

    /// Ends the trial: "complete" with its value, "pruned" (its last
    /// report is its value), or "failed" with an error.
    #[pyo3(signature = (state, value=None, error=None))]
    fn finish(
        &self,
        py: Python<'_>,
        state: &str,
        value: Option<f64>,
        error: Option<String>,
    ) -> PyResult<()> {
        let state = TrialState::parse(state)
            .filter(|s| {
                matches!(
                    s,
                    TrialState::Complete | TrialState::Pruned | TrialState::Failed
                )
            })
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "state: {state:?} is not complete, pruned or failed"
                ))
            })?;
        {
            let mut done = self.done.lock();
            if *done {
                return Err(PyRuntimeError::new_err(format!(
                    "trial #{} has already finished",
                    self.number
                )));
            }
            *done = true;
        }
        if state == TrialState::Complete && value.is_none() {
            return Err(PyValueError::new_err(
                "value: a complete trial needs its objective's value",
            ));
        }
        // As Optuna: a NaN result fails the trial and keeps no value; a
        // pruned trial's value is its last report.
        let (state, error, value) = match value {
            Some(v) if v.is_nan() && state == TrialState::Complete => (
                TrialState::Failed,
                Some("the objective returned NaN".to_string()),
                None,
            ),
            None if state == TrialState::Pruned => {
                let last = self.pending.lock().intermediate.last().map(|&(_, v)| v);
                let stored = last.or_else(|| {
                    self.inner
                        .store
                        .trial(self.id)
                        .ok()
                        .and_then(|t| t.obs.last_intermediate().map(|(_, v)| v))
                });
                (state, error, stored)
            }
            _ => (state, error, value),
        };
        let run_status = match state {
            TrialState::Complete => RunStatus::Finished,
            TrialState::Pruned => RunStatus::Pruned,
            _ => RunStatus::Failed,
        };
        let mut summary = BTreeMap::new();
        if let Some(v) = value.filter(|v| v.is_finite()) {
            summary.insert(self.inner.metric.clone(), json!(v));
        }
        let mut kv = BTreeMap::new();
        kv.insert("labbook.study".to_string(), self.inner.study.id.clone());
        kv.insert("labbook.trial".to_string(), self.number.to_string());
        let run_patch = RunPatch {
            status: Some(run_status),
            ended_ms: Some(now_ms()),
            error: error.clone(),
            config: Some(self.params_config()),
            summary,
            set_kv_tags: kv,
            ..RunPatch::default()
        };
        let has_run = self.run_id.is_some();
        self.flush(
            py,
            TrialPatch {
                state: Some(state),
                values: value.map(|v| vec![v]),
                note: error,
                run: has_run.then_some(run_patch),
                ..TrialPatch::default()
            },
        )?;
        // The reports become the run's curve.
        if let Some(run_id) = &self.run_id {
            let inner = Arc::clone(&self.inner);
            let id = self.id;
            py.detach(|| -> labbook_store::Result<()> {
                let trial = inner.store.trial(id)?;
                if trial.obs.intermediate.is_empty() {
                    return Ok(());
                }
                let now = now_ms();
                let mut cols = SeriesColumns::with_capacity(trial.obs.intermediate.len());
                for &(step, v) in &trial.obs.intermediate {
                    cols.steps.push(step);
                    cols.ts_ms.push(now);
                    cols.values.push(v);
                }
                let store: Arc<dyn Store> = inner.store.clone();
                Appender::new(store).commit(run_id, vec![(inner.metric.clone(), cols)], None, true)
            })
            .map_err(to_py_err)?;
        }
        Ok(())
    }
}
