//! `RunCore`: a run being logged from Python. `labbook.Run` subclasses it
//! without adding methods, so `run.log` is this type's method with no
//! Python frame in between.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use pyo3::exceptions::{PyAttributeError, PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use labbook_capture::{
    CaptureOptions, CodeSnapshot, Monitor, PythonProbe, SnapshotLimits, SnapshotPlan,
};
use labbook_core::config::{config_from_json, find_seed, flatten};
use labbook_core::{Config, ConfigValue, RunStatus, SeriesColumns, SeriesSummary};
use labbook_server::client::{Client, HttpSink};
use labbook_server::wire::StartRun;
use labbook_store::locate::{STORE_DIR, store_dir_for};
use labbook_store::session::{OpenRun, Resume, open_run};
use labbook_store::writer::{Creation, PendingPoint, RunWriter, Sink, StoreSink, WriterOptions};
use labbook_store::{NewRun, RunPatch, SqliteStore, Store, StoreError};

use crate::artifact::{Artifact, ArtifactVersionView};
use crate::convert::{
    config_value_to_py, json_to_py, summary_to_py, text_arg, to_config_tree, to_f64_column,
    to_i64_column, utf8,
};
use crate::{now_ms, to_py_err};
use labbook_store::versions::{ArtifactVersion, VersionSource, log_code_snapshot};

/// Key objects seen by `log`, by address. Holding a strong reference keeps
/// the address from being reused by another object while it is cached, so
/// a hit by address is a hit by identity; equal strings at other addresses
/// fall back to the name lookup and get their own entry.
const KEY_CACHE_LIMIT: usize = 4096;

struct LogState {
    step: i64,
    keys: HashMap<usize, (Py<PyAny>, u32)>,
    scratch: Vec<PendingPoint>,
}

#[pyclass(subclass, frozen, module = "labbook._native")]
pub struct RunCore {
    id: String,
    name: String,
    project: String,
    /// The store directory, or the server's address.
    location: String,
    attached: bool,
    backend: Backend,
    writer: Arc<RunWriter>,
    state: Mutex<LogState>,
    config: Mutex<Config>,
    summary: Mutex<BTreeMap<String, serde_json::Value>>,
    monitor: Mutex<Option<Monitor>>,
    capture: Mutex<Option<JoinHandle<()>>>,
    finished: AtomicBool,
}

/// A store some run of this process has open, and how to tell it is still
/// the same file and the same process.
struct OpenStore {
    dir: PathBuf,
    pid: u32,
    file_id: Option<(u64, u64)>,
    store: std::sync::Weak<SqliteStore>,
}

static OPEN_STORES: Mutex<Vec<OpenStore>> = Mutex::new(Vec::new());

/// The database file's device and inode: a store deleted and created again
/// at the same path is another file.
fn file_id(store_dir: &std::path::Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(store_dir.join(labbook_store::DB_FILE))
            .ok()
            .map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = store_dir;
        None
    }
}

/// Opens the store at `dir`, or shares the one a live run of this process
/// has open: a second `init()` then skips opening the file and parsing the
/// schema (about 0.7 ms of its 1.2). Never across a fork, where a SQLite
/// connection must not be used by the child.
fn shared_store(dir: &std::path::Path) -> Result<Arc<SqliteStore>, StoreError> {
    let pid = std::process::id();
    let mut open = OPEN_STORES.lock();
    open.retain(|o| o.store.strong_count() > 0);
    let file = file_id(dir);
    if let Some(store) = open
        .iter()
        .filter(|o| o.dir == dir && o.pid == pid && file.is_some() && o.file_id == file)
        .find_map(|o| o.store.upgrade())
    {
        return Ok(store);
    }
    let store = Arc::new(SqliteStore::open(dir)?);
    open.push(OpenStore {
        dir: dir.to_path_buf(),
        pid,
        file_id: file_id(dir),
        store: Arc::downgrade(&store),
    });
    Ok(store)
}

/// The project a server run gets when none is named: the directory's name.
fn directory_name(dir: &std::path::Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into())
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The project when none is given: `LABBOOK_PROJECT`, else the name of the
/// directory that holds the store (a project's store lives at its root).
fn default_project(store_dir: &std::path::Path) -> String {
    env_var("LABBOOK_PROJECT").unwrap_or_else(|| {
        store_dir
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into())
    })
}

fn python_probe(py: Python<'_>) -> PyResult<PythonProbe> {
    let sys = py.import("sys")?;
    let site_paths = sys
        .getattr("path")?
        .try_iter()?
        .filter_map(|p| p.ok()?.extract::<String>().ok())
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect();
    Ok(PythonProbe {
        version: sys
            .getattr("version")?
            .extract::<String>()?
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string(),
        executable: sys.getattr("executable")?.extract()?,
        implementation: sys.getattr("implementation")?.getattr("name")?.extract()?,
        site_paths,
    })
}

/// Where a run's records go besides its points (which go through the
/// writer's sink): the embedded store, or a labbook server.
#[derive(Clone)]
enum Backend {
    /// The store, and the insert of the run that `init()` left to the
    /// writer thread: what writes under the run's id waits for it.
    Local(Arc<SqliteStore>, Arc<Creation>),
    Remote(Arc<Client>),
}

/// How long a write under a new run's id waits for the run's insert
/// (which waits on the store's write lock at worst as long).
const CREATION_WAIT: Duration = Duration::from_secs(120);

/// Inserts of runs started in this process that may not have landed yet.
static PENDING_CREATIONS: Mutex<Vec<std::sync::Weak<Creation>>> = Mutex::new(Vec::new());

/// Waits until every run this process started is in its store, so that
/// reading the store right after `init()` finds the run (a parent named
/// by id, `Api().runs()`). Almost always they are already there.
pub(crate) fn settle_creations() {
    let pending: Vec<Arc<Creation>> = {
        let mut list = PENDING_CREATIONS.lock();
        list.retain(|c| c.strong_count() > 0);
        list.iter().filter_map(std::sync::Weak::upgrade).collect()
    };
    for creation in pending {
        // An insert that failed says so where the run writes; a read
        // goes on with what the store holds.
        let _ = creation.wait(CREATION_WAIT);
    }
}

impl Backend {
    fn add_note(&self, run_id: &str, text: &str) -> Result<(), StoreError> {
        match self {
            Backend::Local(store, created) => {
                created.wait(CREATION_WAIT)?;
                store.add_note(run_id, text, now_ms())
            }
            Backend::Remote(client) => client.add_note(run_id, text),
        }
    }

    fn set_environment(&self, run_id: &str, env: &serde_json::Value) -> Result<(), StoreError> {
        match self {
            Backend::Local(store, created) => {
                created.wait(CREATION_WAIT)?;
                store.set_environment(run_id, env)
            }
            Backend::Remote(client) => client.set_environment(run_id, env),
        }
    }

    fn store_code_snapshot(
        &self,
        project: &str,
        run_id: &str,
        plan: &SnapshotPlan,
        code: &mut CodeSnapshot,
    ) {
        let Backend::Local(store, created) = self else {
            code.error = Some("not stored: runs logged over url= cannot store files yet".into());
            return;
        };
        if let Err(e) = created.wait(CREATION_WAIT) {
            code.error = Some(format!("not stored: {e}"));
            return;
        }
        code.store_with(plan, |files| {
            log_code_snapshot(&**store, project, run_id, files, now_ms())
                .map(|v| v.map(|v| (v.reference(), v.digest)))
        });
    }

    fn metric_summaries(
        &self,
        run_id: &str,
    ) -> Result<BTreeMap<String, SeriesSummary>, StoreError> {
        match self {
            Backend::Local(store, created) => {
                created.wait(CREATION_WAIT)?;
                Ok(store.get_run(run_id)?.metrics)
            }
            Backend::Remote(client) => client.metric_summaries(run_id),
        }
    }
}

/// What starting a run gives back, wherever it was started.
struct Opened {
    id: String,
    name: String,
    project: String,
    config: Config,
    summary: BTreeMap<String, serde_json::Value>,
    next_step: i64,
}

/// The command line as typed: the interpreter, its options and the
/// script's arguments (`sys.orig_argv`, Python 3.10+), with the interpreter
/// as the full path of this one, so a replay runs the same program.
fn command_line(py: Python<'_>) -> PyResult<Vec<String>> {
    let sys = py.import("sys")?;
    let orig: Option<Vec<String>> = sys.getattr("orig_argv").ok().and_then(|v| v.extract().ok());
    match orig {
        Some(mut argv) if !argv.is_empty() => {
            if let Ok(exe) = sys.getattr("executable")?.extract::<String>()
                && !exe.is_empty()
            {
                argv[0] = exe;
            }
            Ok(argv)
        }
        _ => Ok(sys.getattr("argv")?.extract().unwrap_or_default()),
    }
}

fn parse_resume(resume: Option<&Bound<'_, PyAny>>) -> PyResult<Resume> {
    let Some(value) = resume.filter(|v| !v.is_none()) else {
        return Ok(Resume::Never);
    };
    if let Ok(flag) = value.extract::<bool>() {
        return Ok(if flag { Resume::Allow } else { Resume::Never });
    }
    let text: String = value.extract()?;
    text.parse().map_err(|_| {
        PyValueError::new_err(format!(
            "resume must be 'allow', 'must' or 'never', not {text:?}"
        ))
    })
}

/// `step=` of `log`: an int that fits in 64 bits, or None.
fn step_arg(step: Option<&Bound<'_, PyAny>>) -> PyResult<Option<i64>> {
    let Some(step) = step.filter(|s| !s.is_none()) else {
        return Ok(None);
    };
    step.extract::<i64>().map(Some).map_err(|_| {
        let shown = step
            .repr()
            .map_or_else(|_| "?".to_string(), |r| r.to_string());
        PyValueError::new_err(format!(
            "step must be an int within ±2**63, got {}",
            labbook_core::config::clip(&shown, 1, 60)
        ))
    })
}

/// Logs a version a run produced, and the first time the run logs those
/// contents, shows its files among the run's own (`<name>/…` in the run's
/// artifacts), where MLflow clients and the dashboard list them.
fn log_and_show(
    store: &SqliteStore,
    new: &labbook_store::versions::NewArtifactVersion,
) -> Result<ArtifactVersion, StoreError> {
    let logged = store.log_artifact_version(new)?;
    if logged.new_edge
        && let Some(run_id) = &new.run_id
        && let Some(dir) = labbook_server::run_artifact_dir(store, &store.get_run(run_id)?)
    {
        store.link_version_files(
            logged.version.id,
            &format!("{dir}/{}", logged.version.name),
            now_ms(),
        )?;
    }
    Ok(logged.version)
}

/// An artifact of one file or folder, named after it unless `name` says.
fn path_version(
    path: &std::path::Path,
    name: Option<String>,
    kind: &str,
    metadata: Option<&Bound<'_, PyAny>>,
) -> PyResult<Artifact> {
    let name = match name {
        Some(n) => n,
        None => labbook_core::artifact_version::name_from_path(path).ok_or_else(|| {
            PyValueError::new_err(format!(
                "name: {} gives no artifact name; pass name=",
                path.display()
            ))
        })?,
    };
    let mut artifact = Artifact::py_new(name, kind)?;
    artifact.metadata = crate::artifact::metadata_object(metadata)?;
    artifact.sources.push(if path.is_dir() {
        VersionSource::Dir {
            path: path.to_path_buf(),
            prefix: String::new(),
        }
    } else {
        VersionSource::File {
            path: path.to_path_buf(),
            name: String::new(),
        }
    });
    Ok(artifact)
}

/// An error listing the referenced files of `version` that changed.
fn check_references(store: &SqliteStore, version: &ArtifactVersion) -> Result<(), StoreError> {
    let changed = store.verify_artifact_references(version)?;
    if changed.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = changed
        .iter()
        .take(5)
        .map(|c| format!("{} ({})", c.path, c.state))
        .collect();
    Err(StoreError::Conflict(format!(
        "{}: {} referenced file(s) changed since it was logged: {}{}; log a new version with use_dataset() or log_artifact()",
        version.reference(),
        changed.len(),
        shown.join(", "),
        if changed.len() > 5 { ", …" } else { "" }
    )))
}

fn string_list(obj: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Vec<String>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(Vec::new());
    };
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(vec![utf8(s, what)?.into_owned()]);
    }
    obj.try_iter()
        .map_err(|_| PyTypeError::new_err(format!("{what} must be a list of strings")))?
        .map(|t| {
            let t = t?;
            let s = t
                .cast::<PyString>()
                .map_err(|_| PyTypeError::new_err(format!("{what} must be a list of strings")))?;
            Ok(utf8(s, what)?.into_owned())
        })
        .collect()
}

impl RunCore {
    /// The embedded store: artifacts are kept locally (a run logging to
    /// a server cannot log them yet).
    fn local_store(&self) -> PyResult<Arc<SqliteStore>> {
        match &self.backend {
            Backend::Local(store, created) => {
                created.wait(CREATION_WAIT).map_err(to_py_err)?;
                Ok(store.clone())
            }
            Backend::Remote(_) => Err(crate::LabbookError::new_err(
                "artifacts are kept in a local store; this run logs to a server (url= or LABBOOK_URL), which does not take artifacts yet",
            )),
        }
    }

    fn ensure_open(&self) -> PyResult<()> {
        if self.finished.load(Ordering::Acquire) {
            return Err(crate::LabbookError::new_err(format!(
                "run {} is finished; start a new one with labbook.init() or resume it with labbook.init(id={:?}, resume='allow')",
                self.id, self.id
            )));
        }
        Ok(())
    }

    /// The slow path of `log`: a key object not seen before.
    fn key_slow(&self, state: &mut LogState, key: &Bound<'_, PyAny>) -> PyResult<u32> {
        let Ok(text) = key.cast::<PyString>() else {
            let type_name = key.get_type().name()?.to_string();
            return Err(PyTypeError::new_err(format!(
                "metric keys must be strings, not {type_name}"
            )));
        };
        let index = self
            .writer
            .key_index(&utf8(text, "a metric key")?)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        if state.keys.len() >= KEY_CACHE_LIMIT {
            state.keys.clear();
        }
        state
            .keys
            .insert(key.as_ptr() as usize, (key.clone().unbind(), index));
        Ok(index)
    }

    fn stage_value(
        &self,
        state: &mut LogState,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        prefix: Option<&str>,
    ) -> PyResult<()> {
        if let Ok(nested) = value.cast::<PyDict>() {
            let name: String = key
                .extract()
                .map_err(|_| PyTypeError::new_err("metric keys must be strings"))?;
            let prefix = match prefix {
                Some(p) => format!("{p}.{name}"),
                None => name,
            };
            for (k, v) in nested.iter() {
                self.stage_value(state, &k, &v, Some(&prefix))?;
            }
            return Ok(());
        }
        let index = match prefix {
            Some(p) => {
                let name: String = key
                    .extract()
                    .map_err(|_| PyTypeError::new_err("metric keys must be strings"))?;
                self.writer
                    .key_index(&format!("{p}.{name}"))
                    .map_err(|e| PyValueError::new_err(e.to_string()))?
            }
            None => match state.keys.get(&(key.as_ptr() as usize)) {
                Some((_, index)) => *index,
                None => self.key_slow(state, key)?,
            },
        };
        let value = value.extract::<f64>().map_err(|_| {
            let shown = key.str().map(|s| s.to_string()).unwrap_or_default();
            let type_name = value.get_type().name().map(|n| n.to_string()).unwrap_or_default();
            PyTypeError::new_err(format!(
                "metric {shown:?}: expected a number, got {type_name}; nothing from this log() call was recorded"
            ))
        })?;
        state.scratch.push(PendingPoint {
            key: index,
            step: 0,
            ts_ms: 0,
            value,
        });
        Ok(())
    }

    fn finish_with(
        &self,
        py: Python<'_>,
        status: RunStatus,
        error: Option<String>,
        exit_code: Option<i32>,
    ) -> PyResult<()> {
        if self.finished.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if let Some(mut monitor) = self.monitor.lock().take() {
            py.detach(|| monitor.stop());
        }
        // Under `labbook run` the wrapper decides the final status from the
        // exit code; the SDK only reports a failure it saw.
        let patch = if self.attached && status == RunStatus::Finished {
            RunPatch::default()
        } else {
            RunPatch {
                status: Some(status),
                ended_ms: Some(now_ms()),
                error,
                exit_code,
                ..Default::default()
            }
        };
        // The final flush and a capture still reading git run side by side.
        self.writer.begin_finish(patch);
        if let Some(capture) = self.capture.lock().take() {
            py.detach(|| {
                let _ = capture.join();
            });
        }
        let writer = Arc::clone(&self.writer);
        py.detach(move || writer.finish(RunPatch::default(), Duration::from_secs(60)))
            .map_err(to_py_err)
    }
}

#[pymethods]
impl RunCore {
    #[new]
    #[pyo3(signature = (project=None, name=None, group=None, tags=None, notes=None, config=None, id=None, resume=None, dir=None, url=None, system_metrics=true, system_interval=5.0, flush_interval=0.5, parent=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        project: Option<&Bound<'_, PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
        group: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
        notes: Option<&Bound<'_, PyAny>>,
        config: Option<&Bound<'_, PyAny>>,
        id: Option<&Bound<'_, PyAny>>,
        resume: Option<&Bound<'_, PyAny>>,
        dir: Option<PathBuf>,
        url: Option<&Bound<'_, PyAny>>,
        system_metrics: bool,
        system_interval: f64,
        flush_interval: f64,
        parent: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<RunCore> {
        // A parent is a run id (or prefix) or a run object.
        let mut parent = match parent {
            Some(p) if !p.is_instance_of::<pyo3::types::PyString>() && p.hasattr("id")? => {
                Some(p.getattr("id")?.extract::<String>()?)
            }
            other => text_arg(other, "parent")?,
        };
        let project = text_arg(project, "project")?;
        let name = text_arg(name, "name")?;
        let group = text_arg(group, "group")?;
        let notes = text_arg(notes, "notes")?;
        let id = text_arg(id, "id")?;
        let url = text_arg(url, "url")?.or_else(|| env_var("LABBOOK_URL"));
        let resume = parse_resume(resume)?;
        let tags = string_list(tags, "tags")?;
        let config_tree = match config {
            Some(c) => to_config_tree(c)?,
            None => BTreeMap::new(),
        };
        let mut config = flatten(&config_tree).map_err(|e| PyValueError::new_err(e.to_string()))?;
        // A "what if" replay (`labbook replay --set`) changes values the
        // program passes: they win, as a W&B sweep's do.
        if let Some(raw) = env_var("LABBOOK_CONFIG_SET") {
            let set = serde_json::from_str(&raw)
                .map_err(|e| e.to_string())
                .and_then(|v| config_from_json(&v).map_err(|e| e.to_string()))
                .map_err(|e| {
                    PyValueError::new_err(format!(
                        "LABBOOK_CONFIG_SET is not a JSON object of config values: {e}"
                    ))
                })?;
            config.extend(set);
        }
        if !(flush_interval > 0.0 && flush_interval <= 60.0) {
            return Err(PyValueError::new_err(
                "flush_interval must be between 0 and 60 seconds",
            ));
        }
        if url.is_some() && dir.is_some() {
            return Err(PyValueError::new_err(
                "pass dir= (log into a store) or url= / LABBOOK_URL (log into a server), not both",
            ));
        }
        let cwd = std::env::current_dir().map_err(|e| {
            PyValueError::new_err(format!("cannot read the current directory: {e}"))
        })?;
        let attach_id = if id.is_none() {
            env_var("LABBOOK_RUN_ID")
        } else {
            None
        };
        let attached = attach_id.is_some();
        let host = labbook_capture::hostname();
        let pid = std::process::id();
        let mut request = OpenRun {
            run: NewRun {
                id: attach_id.clone().or(id),
                project: String::new(),
                name,
                group,
                notes,
                tags,
                config,
                created_ms: now_ms(),
                host: host.clone(),
                pid: Some(pid),
            },
            attach: attached,
            resume,
            // Only a store's run: a server inserts its own.
            defer_create: url.is_none(),
        };

        let (backend, location, opened, sink): (Backend, String, Opened, Box<dyn Sink>) = match url
        {
            Some(url) => {
                let client = Arc::new(Client::new(&url).map_err(to_py_err)?);
                // The id is made here, so that repeating a start whose
                // answer was lost finds the run instead of making another.
                let new = &mut request.run;
                let id = new.id.clone().unwrap_or_else(|| {
                    labbook_core::ids::run_id_from_bits(labbook_store::random_bits())
                });
                let start = StartRun {
                    id: Some(id),
                    attach: attached,
                    resume: Some(resume.as_str().to_string()),
                    project: project
                        .or_else(|| env_var("LABBOOK_PROJECT"))
                        .unwrap_or_else(|| directory_name(&cwd)),
                    name: new.name.take(),
                    group: new.group.take(),
                    notes: new.notes.take(),
                    tags: std::mem::take(&mut new.tags),
                    config: serde_json::to_value(&new.config).ok(),
                    created_ms: Some(new.created_ms),
                    host: host.clone(),
                    pid: Some(pid),
                };
                let started = py.detach(|| client.start_run(&start)).map_err(to_py_err)?;
                let sink = Box::new(HttpSink::new(Arc::clone(&client), &started.id));
                let opened = Opened {
                    id: started.id,
                    name: started.name,
                    project: started.project,
                    config: started.config,
                    summary: started.summary,
                    next_step: started.next_step,
                };
                (Backend::Remote(client), url, opened, sink)
            }
            None => {
                let store_dir = match dir {
                    Some(d)
                        if d.file_name().is_some_and(|n| n == STORE_DIR)
                            || d.join("labbook.db").exists() =>
                    {
                        cwd.join(d)
                    }
                    Some(d) => cwd.join(d).join(STORE_DIR),
                    None => {
                        store_dir_for(&cwd, env_var("LABBOOK_DIR").map(PathBuf::from).as_deref())
                    }
                };
                request.run.project = project.unwrap_or_else(|| default_project(&store_dir));
                let store = py.detach(|| shared_store(&store_dir)).map_err(to_py_err)?;
                // The parent must exist before the child is made; a prefix
                // becomes the full id.
                if let Some(reference) = parent.take() {
                    py.detach(settle_creations);
                    let found = py
                        .detach(|| store.resolve_run(&reference, None))
                        .map_err(|e| match e {
                            StoreError::NotFound { .. } => PyValueError::new_err(format!(
                                "parent: no run {reference:?} in {}",
                                store_dir.display()
                            )),
                            other => to_py_err(other),
                        })?;
                    parent = Some(found.id);
                }
                let opened = py
                        .detach(|| {
                            open_run(
                                &*store,
                                &request,
                                now_ms(),
                                host.as_deref(),
                                &labbook_capture::pid_alive,
                            )
                        })
                        .map_err(|e| match e {
                            StoreError::NotFound { .. } if attached => {
                                crate::LabbookError::new_err(format!(
                                    "LABBOOK_RUN_ID={} names no run in {}; unset it or point LABBOOK_DIR at the right store",
                                    attach_id.clone().unwrap_or_default(),
                                    store_dir.display()
                                ))
                            }
                            other => to_py_err(other),
                        })?;
                let record = opened.record;
                let dyn_store: Arc<dyn Store> = store.clone();
                let (sink, created) = match opened.pending_create {
                    Some(new) => {
                        let created = Arc::new(Creation::default());
                        PENDING_CREATIONS.lock().push(Arc::downgrade(&created));
                        let sink = StoreSink::creating(dyn_store, new, Arc::clone(&created));
                        (Box::new(sink), created)
                    }
                    None => (
                        Box::new(StoreSink::new(dyn_store, &record.id)),
                        Creation::done(),
                    ),
                };
                let opened = Opened {
                    id: record.id,
                    name: record.name,
                    project: record.project,
                    config: record.config,
                    summary: record.summary,
                    next_step: opened.next_step,
                };
                (
                    Backend::Local(store, created),
                    store_dir.display().to_string(),
                    opened,
                    sink,
                )
            }
        };
        let options = WriterOptions {
            flush_interval: Duration::from_secs_f64(flush_interval),
            ..Default::default()
        };
        let writer = Arc::new(RunWriter::start_with(sink, &opened.id, options).map_err(to_py_err)?);
        if let Some(parent) = parent {
            if parent == opened.id {
                return Err(PyValueError::new_err(
                    "parent: a run cannot be nested under itself",
                ));
            }
            writer.patch(RunPatch {
                set_kv_tags: [(labbook_core::run::PARENT_TAG.to_string(), parent)].into(),
                ..Default::default()
            });
        }

        let probe = python_probe(py)?;
        let argv = command_line(py)?;
        let seed = find_seed(&opened.config);
        let capture = {
            let backend = backend.clone();
            let run_id = opened.id.clone();
            let project = opened.project.clone();
            let mut errors = Vec::new();
            // Under `labbook run` the wrapper keeps the snapshot.
            let snapshot = if attached {
                None
            } else {
                SnapshotLimits::from_env(&mut errors)
            };
            let options = CaptureOptions {
                cwd,
                argv,
                python: Some(probe),
                snapshot,
                ..Default::default()
            };
            std::thread::Builder::new()
                .name("labbook-capture".into())
                .spawn(move || {
                    let (mut env, plan) = labbook_capture::capture_with_snapshot(&options);
                    env.errors.extend(errors);
                    if let (Some(plan), Some(code)) = (plan, env.code.as_mut()) {
                        backend.store_code_snapshot(&project, &run_id, &plan, code);
                    }
                    let Ok(mut value) = serde_json::to_value(&env) else { return };
                    if let (Some(map), Some((key, seed))) = (value.as_object_mut(), seed) {
                        map.insert("seed".into(), serde_json::json!({ "key": key, "value": seed }));
                    }
                    // Under `labbook run` the wrapper recorded the command and
                    // git state; the SDK adds what only it can see.
                    if attached {
                        value = serde_json::json!({ "python": value.get("python"), "seed": value.get("seed") });
                    }
                    let _ = backend.set_environment(&run_id, &value);
                })
                .ok()
        };
        let monitor = if system_metrics && !attached && system_interval > 0.0 {
            let writer = Arc::clone(&writer);
            Monitor::spawn(
                pid,
                Duration::from_secs_f64(system_interval.max(0.1)),
                move |index, sample| {
                    let ts = now_ms();
                    let points: Vec<PendingPoint> = sample
                        .iter()
                        .filter_map(|(key, value)| {
                            let key = writer.key_index(key).ok()?;
                            Some(PendingPoint {
                                key,
                                step: index as i64,
                                ts_ms: ts,
                                value: *value,
                            })
                        })
                        .collect();
                    writer.push(&points);
                },
            )
        } else {
            None
        };
        Ok(RunCore {
            id: opened.id,
            name: opened.name,
            project: opened.project,
            location,
            attached,
            backend,
            writer,
            state: Mutex::new(LogState {
                step: opened.next_step,
                keys: HashMap::new(),
                scratch: Vec::with_capacity(32),
            }),
            config: Mutex::new(opened.config),
            summary: Mutex::new(opened.summary),
            monitor: Mutex::new(monitor),
            capture: Mutex::new(capture),
            finished: AtomicBool::new(false),
        })
    }

    /// Logs a dict of metric values at the next step (or at `step`).
    /// Returns at once: a background thread writes the points.
    #[pyo3(signature = (data, step=None))]
    fn log(&self, data: &Bound<'_, PyDict>, step: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.ensure_open()?;
        let step = step_arg(step)?;
        let mut guard = self.state.lock();
        let state = &mut *guard;
        state.scratch.clear();
        for (key, value) in data.iter() {
            self.stage_value(state, &key, &value, None)?;
        }
        let step = step.unwrap_or(state.step);
        state.step = step + 1;
        let ts_ms = now_ms();
        for p in &mut state.scratch {
            p.step = step;
            p.ts_ms = ts_ms;
        }
        self.writer.push(&state.scratch);
        Ok(())
    }

    /// Logs a whole series for one key: `steps` (or None for the next
    /// steps) and `values` as lists or NumPy arrays; `timestamps` in
    /// seconds since the epoch, as `time.time()` gives, or None for now.
    #[pyo3(signature = (key, steps, values, timestamps=None))]
    fn log_series(
        &self,
        key: &Bound<'_, PyAny>,
        steps: Option<&Bound<'_, PyAny>>,
        values: &Bound<'_, PyAny>,
        timestamps: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.ensure_open()?;
        let key = text_arg(Some(key), "key")?
            .ok_or_else(|| PyTypeError::new_err("key must be a str, not None"))?;
        let index = self
            .writer
            .key_index(&key)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let values = to_f64_column(values, "values")?;
        let n = values.len();
        let mut state = self.state.lock();
        let steps = match steps.filter(|s| !s.is_none()) {
            Some(s) => to_i64_column(s, "steps")?,
            None => (state.step..state.step + n as i64).collect(),
        };
        if steps.len() != n {
            return Err(PyValueError::new_err(format!(
                "log_series({key:?}): {} steps but {n} values",
                steps.len()
            )));
        }
        let ts_ms = match timestamps.filter(|t| !t.is_none()) {
            Some(t) => {
                let seconds = to_f64_column(t, "timestamps")?;
                if seconds.len() != n {
                    return Err(PyValueError::new_err(format!(
                        "log_series({key:?}): {} timestamps but {n} values",
                        seconds.len()
                    )));
                }
                seconds.iter().map(|s| (s * 1000.0) as i64).collect()
            }
            None => vec![now_ms(); n],
        };
        if let Some(max) = steps.iter().max() {
            state.step = state.step.max(max + 1);
        }
        drop(state);
        self.writer.push_series(
            index,
            SeriesColumns {
                steps,
                ts_ms,
                values,
            },
        );
        Ok(())
    }

    /// Writes everything logged so far and waits for it.
    #[pyo3(signature = (timeout=30.0))]
    fn flush(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        let writer = Arc::clone(&self.writer);
        py.detach(move || writer.flush(Duration::from_secs_f64(timeout.max(0.0))))
            .map_err(to_py_err)
    }

    /// Ends the run: flushes, seals its series and records the status.
    #[pyo3(signature = (status="finished", exit_code=None))]
    fn finish(&self, py: Python<'_>, status: &str, exit_code: Option<i32>) -> PyResult<()> {
        let status: RunStatus = status
            .parse()
            .map_err(|e: labbook_core::ValidationError| PyValueError::new_err(e.to_string()))?;
        self.finish_with(py, status, None, exit_code)
    }

    /// Ends the run as failed (or killed), keeping the error text.
    #[pyo3(signature = (error, status="failed"))]
    fn fail(&self, py: Python<'_>, error: String, status: &str) -> PyResult<()> {
        let status: RunStatus = status
            .parse()
            .map_err(|e: labbook_core::ValidationError| PyValueError::new_err(e.to_string()))?;
        self.finish_with(py, status, Some(error), Some(1))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: &Bound<'_, PyAny>,
        exc: &Bound<'_, PyAny>,
        tb: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        if exc_type.is_none() {
            self.finish_with(py, RunStatus::Finished, None, None)?;
        } else {
            let lines = py
                .import("traceback")?
                .call_method1("format_exception", (exc_type, exc, tb))?;
            let text: String = PyString::new(py, "")
                .call_method1("join", (lines,))?
                .extract()?;
            let interrupted = exc_type.is(py.get_type::<pyo3::exceptions::PyKeyboardInterrupt>());
            let status = if interrupted {
                RunStatus::Killed
            } else {
                RunStatus::Failed
            };
            self.finish_with(py, status, Some(text), Some(1))?;
        }
        Ok(false)
    }

    /// Appends an entry to the run's notebook.
    fn note(&self, py: Python<'_>, text: &str) -> PyResult<()> {
        py.detach(|| self.backend.add_note(&self.id, text))
            .map_err(to_py_err)
    }

    /// Logs a version of an artifact as this run's output: an `Artifact`,
    /// or a file or folder path (with `name=` and `type=`). The same
    /// contents logged again under a name give back the version that has
    /// them and store nothing new; `aliases` move to it, as `latest` does.
    #[pyo3(signature = (artifact, name=None, r#type=None, aliases=None))]
    fn log_artifact(
        &self,
        py: Python<'_>,
        artifact: &Bound<'_, PyAny>,
        name: Option<String>,
        r#type: Option<String>,
        aliases: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<ArtifactVersionView> {
        self.ensure_open()?;
        let store = self.local_store()?;
        let aliases = string_list(aliases, "aliases")?;
        let new = match artifact.cast::<Artifact>() {
            Ok(a) => a
                .borrow()
                .new_version(&self.project, aliases, Some(self.id.clone())),
            Err(_) => {
                let path: PathBuf = artifact.extract().map_err(|_| {
                    PyTypeError::new_err("log_artifact takes a labbook.Artifact or a path")
                })?;
                path_version(&path, name, r#type.as_deref().unwrap_or("dataset"), None)?
                    .new_version(&self.project, aliases, Some(self.id.clone()))
            }
        };
        let version = py
            .detach(|| log_and_show(&store, &new))
            .map_err(to_py_err)?;
        Ok(ArtifactVersionView { version, store })
    }

    /// Logs a model file or folder: `log_artifact` with `type="model"`.
    #[pyo3(signature = (path, name=None, aliases=None, metadata=None))]
    fn log_model(
        &self,
        py: Python<'_>,
        path: PathBuf,
        name: Option<String>,
        aliases: Option<&Bound<'_, PyAny>>,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<ArtifactVersionView> {
        self.ensure_open()?;
        let store = self.local_store()?;
        let artifact = path_version(&path, name, "model", metadata)?;
        let new = artifact.new_version(
            &self.project,
            string_list(aliases, "aliases")?,
            Some(self.id.clone()),
        );
        let version = py
            .detach(|| log_and_show(&store, &new))
            .map_err(to_py_err)?;
        Ok(ArtifactVersionView { version, store })
    }

    /// Records that this run reads a version (`name`, `name:v3`,
    /// `name:alias`), in the run's project. A version that references
    /// files is checked first: if any changed, nothing is recorded and the
    /// error lists them.
    #[pyo3(signature = (reference, r#type=None))]
    fn use_artifact(
        &self,
        py: Python<'_>,
        reference: &str,
        r#type: Option<&str>,
    ) -> PyResult<ArtifactVersionView> {
        self.ensure_open()?;
        let store = self.local_store()?;
        let version = py.detach(|| -> Result<_, StoreError> {
            let version = store.resolve_artifact(Some(&self.project), reference)?;
            if let Some(t) = r#type
                && t != version.kind
            {
                return Err(labbook_core::ValidationError::new(
                    "type",
                    format!("{} is a {}, not a {t}", version.reference(), version.kind),
                )
                .into());
            }
            if version.deleted_ms.is_some() {
                return Err(StoreError::Conflict(format!(
                    "{} was deleted; use another version",
                    version.reference()
                )));
            }
            check_references(&store, &version)?;
            store.use_artifact_version(&self.id, version.id, now_ms())?;
            Ok(version)
        });
        Ok(ArtifactVersionView {
            version: version.map_err(to_py_err)?,
            store,
        })
    }

    /// Hashes a file or folder where it is and records it as a dataset
    /// this run reads, copying nothing: a version of `name` whose files
    /// are references.
    #[pyo3(signature = (path, name=None, metadata=None))]
    fn use_dataset(
        &self,
        py: Python<'_>,
        path: PathBuf,
        name: Option<String>,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<ArtifactVersionView> {
        self.ensure_open()?;
        let store = self.local_store()?;
        let artifact = path_version(&path, name, "dataset", metadata)?;
        let mut new = artifact.new_version(&self.project, Vec::new(), None);
        new.in_place = true;
        let version = py.detach(|| -> Result<_, StoreError> {
            let logged = store.log_artifact_version(&new)?;
            store.use_artifact_version(&self.id, logged.version.id, now_ms())?;
            Ok(logged.version)
        });
        Ok(ArtifactVersionView {
            version: version.map_err(to_py_err)?,
            store,
        })
    }

    /// Adds tags to the run.
    #[pyo3(signature = (*tags))]
    fn tag(&self, tags: &Bound<'_, PyTuple>) -> PyResult<()> {
        let tags: Vec<String> = tags.extract()?;
        for t in &tags {
            labbook_core::run::validate_tag(t).map_err(|e| PyValueError::new_err(e.to_string()))?;
        }
        self.writer.patch(RunPatch {
            add_tags: tags,
            ..Default::default()
        });
        Ok(())
    }

    #[getter]
    fn id(&self) -> &str {
        &self.id
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    #[getter]
    fn project(&self) -> &str {
        &self.project
    }

    /// The `.labbook` store this run writes to, or the server's address.
    #[getter]
    fn dir(&self) -> &str {
        &self.location
    }

    /// The step the next `log()` without `step=` will use.
    #[getter]
    fn step(&self) -> i64 {
        self.state.lock().step
    }

    /// How many times this run's writes found the store locked by another
    /// process (SQLITE_BUSY) and waited or tried again: contention that was
    /// absorbed, not an error. 0 for a run logged into a server.
    #[getter]
    fn lock_retries(&self) -> u64 {
        self.writer.lock_retries()
    }

    #[getter]
    fn finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Whether this process attached to a run started by `labbook run`.
    #[getter]
    fn attached(&self) -> bool {
        self.attached
    }

    #[getter]
    fn config(slf: &Bound<'_, Self>) -> ConfigView {
        ConfigView {
            run: slf.clone().unbind(),
            prefix: String::new(),
        }
    }

    #[getter]
    fn summary(slf: &Bound<'_, Self>) -> SummaryView {
        SummaryView {
            run: slf.clone().unbind(),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<labbook.Run {} ({}) project={:?}>",
            self.name, self.id, self.project
        )
    }
}

/// Nested dict of the dotted keys under `prefix`.
fn nested_under<'py>(
    py: Python<'py>,
    config: &Config,
    prefix: &str,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let root = PyDict::new(py);
    let mut any = false;
    let dotted = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}.")
    };
    for (key, value) in config.range(dotted.clone()..) {
        let Some(rest) = key.strip_prefix(&dotted) else {
            break;
        };
        any = true;
        let mut node = root.clone();
        let parts: Vec<&str> = rest.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            let child = match node.get_item(part)? {
                Some(existing) if existing.cast::<PyDict>().is_ok() => {
                    existing.cast_into::<PyDict>()?
                }
                _ => {
                    let d = PyDict::new(py);
                    node.set_item(part, &d)?;
                    d
                }
            };
            node = child;
        }
        node.set_item(parts[parts.len() - 1], config_value_to_py(py, value)?)?;
    }
    Ok(any.then_some(root))
}

/// `run.config`: item and attribute access over the flattened config
/// (`config["model.depth"]`, `config.model.depth`, `config["model"]["depth"]`).
/// A key with keys under it gives a view of them (`config.model`), so
/// attribute access goes on at any depth; a view compares equal to the
/// nested dict it shows. Assignments are recorded in the store.
#[pyclass(module = "labbook._native")]
pub struct ConfigView {
    run: Py<RunCore>,
    /// The dotted key this view shows the keys under; empty for the root.
    prefix: String,
}

/// Whether some key of `config` lies under `key` (`model` for `model.depth`).
fn has_keys_under(config: &Config, key: &str) -> bool {
    let dotted = format!("{key}.");
    config
        .range(dotted.clone()..)
        .next()
        .is_some_and(|(k, _)| k.starts_with(&dotted))
}

impl ConfigView {
    /// The full dotted key of `key`, relative to this view.
    fn full(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// The keys of this view (dotted, relative to it) with their values.
    fn entries(&self) -> Vec<(String, ConfigValue)> {
        let config = self.run.get().config.lock();
        if self.prefix.is_empty() {
            return config.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        }
        let dotted = format!("{}.", self.prefix);
        config
            .range(dotted.clone()..)
            .map_while(|(k, v)| Some((k.strip_prefix(&dotted)?.to_string(), v.clone())))
            .collect()
    }

    fn lookup<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let full = self.full(key);
        let run = self.run.get();
        let config = run.config.lock();
        if let Some(value) = config.get(&full) {
            return Ok(Some(config_value_to_py(py, value)?));
        }
        if !has_keys_under(&config, &full) {
            return Ok(None);
        }
        let view = ConfigView {
            run: self.run.clone_ref(py),
            prefix: full,
        };
        Ok(Some(Bound::new(py, view)?.into_any()))
    }

    fn assign(&self, key: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let tree = BTreeMap::from([(
            key.to_string(),
            crate::convert::to_config_value(value, &self.full(key), 0)?,
        )]);
        self.merge(tree)
    }

    fn merge(&self, tree: BTreeMap<String, ConfigValue>) -> PyResult<()> {
        let flat: BTreeMap<String, ConfigValue> = flatten(&tree)
            .map_err(|e| PyValueError::new_err(e.to_string()))?
            .into_iter()
            .map(|(k, v)| (self.full(&k), v))
            .collect();
        let run = self.run.get();
        run.config.lock().extend(flat.clone());
        run.writer.patch(RunPatch {
            config: Some(flat),
            ..Default::default()
        });
        Ok(())
    }
}

#[pymethods]
impl ConfigView {
    fn __getitem__<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyAny>> {
        self.lookup(py, key)?
            .ok_or_else(|| PyKeyError::new_err(self.full(key)))
    }

    fn __getattr__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        self.lookup(py, name)?.ok_or_else(|| {
            PyAttributeError::new_err(format!("config has no key {:?}", self.full(name)))
        })
    }

    fn __setitem__(&self, key: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.assign(key, value)
    }

    fn __setattr__(&self, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.assign(name, value)
    }

    fn __contains__(&self, key: &str) -> bool {
        let config = self.run.get().config.lock();
        let full = self.full(key);
        config.contains_key(&full) || has_keys_under(&config, &full)
    }

    fn __len__(&self) -> usize {
        self.entries().len()
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.keys(py)?.try_iter().map(|i| i.into_any())
    }

    /// The flattened keys (`model.depth`), relative to this view.
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.entries().into_iter().map(|(k, _)| k))
    }

    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let values = self
            .entries()
            .iter()
            .map(|(_, v)| config_value_to_py(py, v))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, values)
    }

    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .entries()
            .iter()
            .map(|(k, v)| {
                PyTuple::new(
                    py,
                    [PyString::new(py, k).into_any(), config_value_to_py(py, v)?],
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    #[pyo3(signature = (key, default=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(self
            .lookup(py, key)?
            .or(default)
            .unwrap_or_else(|| py.None().into_bound(py)))
    }

    /// Merges a dict (nested or dotted) into the config, under this view.
    fn update(&self, values: &Bound<'_, PyAny>) -> PyResult<()> {
        self.merge(to_config_tree(values)?)
    }

    /// The keys of this view as nested dicts.
    fn as_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        Ok(
            nested_under(py, &self.run.get().config.lock(), &self.prefix)?
                .unwrap_or_else(|| PyDict::new(py)),
        )
    }

    /// Equal to another view, or to a mapping, showing the same keys:
    /// nested (`{"depth": 4}`) or dotted (`{"layers.n": 2}`).
    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let other = match other.cast::<ConfigView>() {
            Ok(view) => view.borrow().as_dict(py)?.into_any(),
            Err(_) => other.clone(),
        };
        if self.as_dict(py)?.eq(&other)? {
            return Ok(true);
        }
        let flat = PyDict::new(py);
        for (k, v) in self.entries() {
            flat.set_item(k, config_value_to_py(py, &v)?)?;
        }
        flat.eq(&other)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("Config({})", self.as_dict(py)?.repr()?))
    }
}

/// `run.summary`: the values a run's table row shows. Logged metrics
/// contribute their last value; assignments override them.
#[pyclass(module = "labbook._native")]
pub struct SummaryView {
    run: Py<RunCore>,
}

impl SummaryView {
    fn metrics(&self, py: Python<'_>) -> PyResult<BTreeMap<String, SeriesSummary>> {
        let run = self.run.get();
        if !run.finished.load(Ordering::Acquire) {
            let writer = Arc::clone(&run.writer);
            py.detach(move || writer.flush(Duration::from_secs(30)))
                .map_err(to_py_err)?;
        }
        py.detach(|| run.backend.metric_summaries(&run.id))
            .map_err(to_py_err)
    }
}

#[pymethods]
impl SummaryView {
    fn __setitem__(&self, key: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = crate::convert::to_config_value(value, key, 0)?;
        let json =
            serde_json::to_value(&value).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let run = self.run.get();
        run.summary.lock().insert(key.to_string(), json.clone());
        run.writer.patch(RunPatch {
            summary: BTreeMap::from([(key.to_string(), json)]),
            ..Default::default()
        });
        Ok(())
    }

    fn __getitem__<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyAny>> {
        if let Some(value) = self.run.get().summary.lock().get(key) {
            return json_to_py(py, value);
        }
        match self.metrics(py)?.get(key) {
            Some(s) => Ok(s.last.into_pyobject(py)?.into_any()),
            None => Err(PyKeyError::new_err(key.to_string())),
        }
    }

    fn update(&self, values: &Bound<'_, PyDict>) -> PyResult<()> {
        for (k, v) in values.iter() {
            self.__setitem__(&k.extract::<String>()?, &v)?;
        }
        Ok(())
    }

    /// Every metric's summary (count, last, min, max) and the assigned values.
    fn as_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (key, s) in &self.metrics(py)? {
            out.set_item(key, summary_to_py(py, s)?)?;
        }
        for (key, value) in self.run.get().summary.lock().iter() {
            out.set_item(key, json_to_py(py, value)?)?;
        }
        Ok(out)
    }

    fn __contains__(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        if self.run.get().summary.lock().contains_key(key) {
            return Ok(true);
        }
        Ok(self.metrics(py)?.contains_key(key))
    }
}
