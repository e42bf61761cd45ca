//! `labbook.Api`: reading a store from Python (runs, histories, notes).

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use labbook_core::RunRecord;
use labbook_core::query::{parse_filter, parse_sort};
use labbook_store::locate::{STORE_DIR, find_store};
use labbook_store::{Deleted, RunQuery, SqliteStore, StepRange, Store};

use crate::column::{f64_view, i64_view};
use crate::convert::{config_value_to_py, json_to_py, summary_to_py};
use crate::to_py_err;

#[pyclass(frozen, module = "labbook._native")]
pub struct Api {
    store: SqliteStore,
    dir: PathBuf,
}

fn record_to_py<'py>(py: Python<'py>, run: &RunRecord) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("id", &run.id)?;
    d.set_item("name", &run.name)?;
    d.set_item("project", &run.project)?;
    d.set_item("group", &run.group)?;
    d.set_item("tags", &run.tags)?;
    d.set_item("notes", &run.notes)?;
    d.set_item("status", run.status.as_str())?;
    d.set_item("created_ms", run.created_ms)?;
    d.set_item("ended_ms", run.ended_ms)?;
    d.set_item("heartbeat_ms", run.heartbeat_ms)?;
    d.set_item("host", &run.host)?;
    d.set_item("pid", run.pid)?;
    d.set_item("exit_code", run.exit_code)?;
    d.set_item("error", &run.error)?;
    let config = PyDict::new(py);
    for (k, v) in &run.config {
        config.set_item(k, config_value_to_py(py, v)?)?;
    }
    d.set_item("config", config)?;
    let metrics = PyDict::new(py);
    for (k, s) in &run.metrics {
        metrics.set_item(k, summary_to_py(py, s)?)?;
    }
    d.set_item("metrics", metrics)?;
    let summary = PyDict::new(py);
    for (k, v) in &run.summary {
        summary.set_item(k, json_to_py(py, v)?)?;
    }
    d.set_item("summary", summary)?;
    d.set_item("deleted", run.deleted_ms.is_some())?;
    d.set_item("kv_tags", &run.kv_tags)?;
    d.set_item("parent", run.parent_id())?;
    Ok(d)
}

fn now_ms() -> i64 {
    crate::now_ms()
}

impl Api {
    /// Marks runs whose process died as crashed before anything is read, so
    /// a listing never shows a dead run as running.
    fn reap(&self) -> labbook_store::Result<Vec<String>> {
        crate::run::settle_creations();
        let host = labbook_capture::hostname();
        self.store
            .reap_stale_runs(now_ms(), host.as_deref(), &labbook_capture::pid_alive)
    }
}

#[pymethods]
impl Api {
    /// Opens the store at `dir` (a `.labbook` directory or the folder holding
    /// one), else the one found from the current directory like git finds `.git`.
    #[new]
    #[pyo3(signature = (dir=None))]
    fn new(py: Python<'_>, dir: Option<PathBuf>) -> PyResult<Api> {
        let cwd = std::env::current_dir().map_err(|e| PyValueError::new_err(e.to_string()))?;
        let dir = match dir {
            Some(d) if d.file_name().is_some_and(|n| n == STORE_DIR) || d.join("labbook.db").exists() => cwd.join(d),
            Some(d) => cwd.join(d).join(STORE_DIR),
            None => find_store(&cwd, std::env::var_os("LABBOOK_DIR").filter(|v| !v.is_empty()).map(PathBuf::from).as_deref())
                .ok_or_else(|| {
                    crate::LabbookError::new_err(format!(
                        "no labbook store in {} or any parent directory; run `labbook init` or pass dir=",
                        cwd.display()
                    ))
                })?,
        };
        let store = py.detach(|| SqliteStore::open(&dir)).map_err(to_py_err)?;
        Ok(Api { store, dir })
    }

    #[getter]
    fn dir(&self) -> String {
        self.dir.display().to_string()
    }

    /// Runs as dicts, newest first unless `sort` says otherwise.
    #[pyo3(signature = (project=None, filter=None, sort=None, limit=None, deleted=false))]
    fn runs<'py>(
        &self,
        py: Python<'py>,
        project: Option<String>,
        filter: Option<&str>,
        sort: Option<&str>,
        limit: Option<usize>,
        deleted: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let query = RunQuery {
            project,
            project_ids: None,
            filter: filter
                .map(parse_filter)
                .transpose()
                .map_err(|e| PyValueError::new_err(e.to_string()))?,
            sort: sort
                .map(parse_sort)
                .transpose()
                .map_err(|e| PyValueError::new_err(e.to_string()))?
                .unwrap_or_default(),
            limit,
            offset: 0,
            deleted: if deleted {
                Deleted::Only
            } else {
                Deleted::Exclude
            },
        };
        let runs = py
            .detach(|| {
                self.reap()?;
                self.store.list_runs(&query)
            })
            .map_err(to_py_err)?;
        PyList::new(
            py,
            runs.iter()
                .map(|r| record_to_py(py, r))
                .collect::<PyResult<Vec<_>>>()?,
        )
    }

    /// One run by id, id prefix or name, with its environment and notebook.
    fn run<'py>(&self, py: Python<'py>, reference: &str) -> PyResult<Bound<'py, PyDict>> {
        let (run, env, notes) = py
            .detach(|| {
                self.reap()?;
                let run = self.store.resolve_run(reference, None)?;
                let env = self.store.environment(&run.id)?;
                let notes = self.store.notes(&run.id)?;
                Ok::<_, labbook_store::StoreError>((run, env, notes))
            })
            .map_err(to_py_err)?;
        let d = record_to_py(py, &run)?;
        d.set_item("environment", env.map(|e| json_to_py(py, &e)).transpose()?)?;
        let notebook = PyList::empty(py);
        for n in notes {
            let entry = PyDict::new(py);
            entry.set_item("created_ms", n.created_ms)?;
            entry.set_item("text", n.text)?;
            notebook.append(entry)?;
        }
        d.set_item("notebook", notebook)?;
        Ok(d)
    }

    /// The metric keys of a run.
    fn keys(&self, py: Python<'_>, run: &str) -> PyResult<Vec<String>> {
        let keys = py
            .detach(|| {
                crate::run::settle_creations();
                self.store.series_keys(run)
            })
            .map_err(to_py_err)?;
        Ok(keys.into_iter().map(|(k, _)| k).collect())
    }

    /// A metric's full history (or the steps in `[start, end]`) as
    /// `{"step": memoryview('q'), "timestamp_ms": memoryview('q'), "value":
    /// memoryview('d')}` over the decoded columns themselves (no copy);
    /// `numpy.asarray` wraps each without copying either.
    #[pyo3(signature = (run, key, start=None, end=None, buckets=None))]
    fn history<'py>(
        &self,
        py: Python<'py>,
        run: &str,
        key: &str,
        start: Option<i64>,
        end: Option<i64>,
        buckets: Option<usize>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let range = StepRange { lo: start, hi: end };
        let series = py
            .detach(|| {
                crate::run::settle_creations();
                match buckets {
                    Some(b) => self
                        .store
                        .downsample(run, key, range, b, true)
                        .map(|(points, _)| points),
                    None => self.store.read_series(run, key, range),
                }
            })
            .map_err(to_py_err)?;
        let d = PyDict::new(py);
        d.set_item("step", i64_view(py, series.steps)?)?;
        d.set_item("timestamp_ms", i64_view(py, series.ts_ms)?)?;
        d.set_item("value", f64_view(py, series.values)?)?;
        Ok(d)
    }

    /// The run's captured stdout and stderr, interleaved as written.
    fn output(&self, py: Python<'_>, run: &str) -> PyResult<String> {
        let chunks = py
            .detach(|| {
                crate::run::settle_creations();
                self.store.read_output(run)
            })
            .map_err(to_py_err)?;
        let bytes: Vec<u8> = chunks.into_iter().flat_map(|c| c.data).collect();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Projects with run counts.
    fn projects<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let projects = py
            .detach(|| {
                crate::run::settle_creations();
                self.store.list_projects()
            })
            .map_err(to_py_err)?;
        let list = PyList::empty(py);
        for p in projects.into_iter().filter(|p| p.is_listed()) {
            let d = PyDict::new(py);
            d.set_item("name", p.project.name)?;
            d.set_item("runs", p.runs)?;
            d.set_item("running", p.running)?;
            d.set_item("last_activity_ms", p.last_activity_ms)?;
            list.append(d)?;
        }
        Ok(list)
    }
}
