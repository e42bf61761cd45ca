//! Starting, resuming or attaching to a run: the rules `labbook.init()`
//! follows, whether the SDK writes into an embedded store or a server
//! applies them for a client.

use labbook_core::{RunRecord, RunStatus, ValidationError};

use crate::{NewRun, Result, RunPatch, Store, StoreError};

/// Which existing runs a start may continue, as W&B spells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Resume {
    /// An id already in use is an error.
    #[default]
    Never,
    /// Continue the run when it exists, else start it.
    Allow,
    /// The run must exist.
    Must,
}

impl Resume {
    pub fn as_str(self) -> &'static str {
        match self {
            Resume::Never => "never",
            Resume::Allow => "allow",
            Resume::Must => "must",
        }
    }
}

impl std::str::FromStr for Resume {
    type Err = ValidationError;

    fn from_str(s: &str) -> std::result::Result<Resume, ValidationError> {
        match s {
            "allow" | "auto" => Ok(Resume::Allow),
            "must" => Ok(Resume::Must),
            "never" => Ok(Resume::Never),
            other => Err(ValidationError::new(
                "resume",
                format!("must be 'allow', 'must' or 'never', not {other:?}"),
            )),
        }
    }
}

/// A request to start a run: the run to create when there is none, and
/// how to treat one that exists.
#[derive(Debug, Clone, Default)]
pub struct OpenRun {
    /// Its `id`, when given, names the run to resume or attach to.
    pub run: NewRun,
    /// The run was started by `labbook run` and this process logs into
    /// it: it must exist, and it is not reopened.
    pub attach: bool,
    pub resume: Resume,
    /// A new run (one without an id) is not inserted here: the answer
    /// carries it in `pending_create` for the run's writer thread to insert
    /// before anything else, so starting a run waits on no transaction.
    pub defer_create: bool,
}

#[derive(Debug, Clone)]
pub struct OpenedRun {
    pub record: RunRecord,
    /// The step the run's next `log()` without a step gets.
    pub next_step: i64,
    /// Whether an existing run was continued (so its tails were compacted).
    pub resumed: bool,
    /// With `defer_create`: the run as it is to be inserted (id and name
    /// drawn), which `record` already describes.
    pub pending_create: Option<NewRun>,
}

/// Starts, resumes or attaches as `request` says. `this_host` and
/// `pid_alive` tell whether the process that last wrote a running run is
/// still alive, so that a live run is never taken over.
pub fn open_run(
    store: &dyn Store,
    request: &OpenRun,
    now_ms: i64,
    this_host: Option<&str>,
    pid_alive: &dyn Fn(u32) -> bool,
) -> Result<OpenedRun> {
    store.check_writable()?;
    let new = &request.run;
    let existing = match new.id.as_deref() {
        Some(id) => match store.get_run(id) {
            Ok(run) => Some(run),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    let Some(run) = existing else {
        if request.attach {
            return Err(StoreError::NotFound {
                what: "run",
                id: new.id.clone().unwrap_or_default(),
            });
        }
        if request.resume == Resume::Must {
            return Err(ValidationError::new(
                "id",
                format!(
                    "resume='must' but no run {:?} exists",
                    new.id.as_deref().unwrap_or_default()
                ),
            )
            .into());
        }
        if request.defer_create && new.id.is_none() {
            return deferred(new);
        }
        let record = store.create_run(new)?;
        return Ok(OpenedRun {
            next_step: 0,
            record,
            resumed: false,
            pending_create: None,
        });
    };
    let same_process = run.host == new.host && run.pid == new.pid;
    // A client that lost the answer to its start asks again: the run it
    // made is the answer.
    if !request.attach && same_process && run.created_ms == new.created_ms {
        return Ok(OpenedRun {
            next_step: next_step(&run),
            record: run,
            resumed: false,
            pending_create: None,
        });
    }
    if !request.attach {
        if request.resume == Resume::Never {
            return Err(ValidationError::new(
                "id",
                format!(
                    "run id {:?} already exists; pass resume='allow' to continue it",
                    run.id
                ),
            )
            .into());
        }
        let live = run.status == RunStatus::Running
            && run.pid.is_some()
            && !same_process
            && !run.is_stale(now_ms, crate::heartbeat_timeout_ms(), this_host, pid_alive);
        if live {
            return Err(StoreError::Conflict(format!(
                "run {} is still running in process {} on {}; resume it once that process has ended",
                run.id,
                run.pid.unwrap_or(0),
                run.host.as_deref().unwrap_or("another host")
            )));
        }
        store.compact_run(&run.id)?;
    }
    let patch = RunPatch {
        reopen: (!request.attach).then(|| (new.host.clone(), new.pid)),
        name: new.name.clone(),
        group: new.group.clone(),
        // The wrapper's `--why` (or a replay's) was given for this very
        // run; the program's own notes are a default it does not override.
        notes: if request.attach && run.notes.as_deref().is_some_and(|n| !n.is_empty()) {
            None
        } else {
            new.notes.clone()
        },
        add_tags: new.tags.clone(),
        config: (!new.config.is_empty()).then(|| new.config.clone()),
        ..Default::default()
    };
    store.update_run(&run.id, &patch)?;
    let record = store.get_run(&run.id)?;
    Ok(OpenedRun {
        next_step: next_step(&record),
        record,
        resumed: !request.attach,
        pending_create: None,
    })
}

/// A new run checked as the store would check it, its id and name drawn,
/// described as the store will hold it once inserted.
fn deferred(new: &NewRun) -> Result<OpenedRun> {
    crate::sqlite::SqliteStore::validate_new_run(new)?;
    labbook_core::run::validate_name("project", &new.project)?;
    let mut insert = new.clone();
    let id = labbook_core::ids::run_id_from_bits(crate::random_bits());
    let name = new
        .name
        .clone()
        .unwrap_or_else(|| labbook_core::ids::run_name_from_bits(crate::random_bits()));
    insert.id = Some(id.clone());
    insert.name = Some(name.clone());
    let mut tags: Vec<String> = Vec::new();
    for t in &new.tags {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    let record = RunRecord {
        id,
        project: new.project.clone(),
        project_id: 0,
        name,
        group: new.group.clone(),
        tags,
        notes: new.notes.clone(),
        status: RunStatus::Running,
        created_ms: new.created_ms,
        ended_ms: None,
        heartbeat_ms: new.created_ms,
        host: new.host.clone(),
        pid: new.pid,
        exit_code: None,
        error: None,
        config: new.config.clone(),
        metrics: Default::default(),
        summary: Default::default(),
        deleted_ms: None,
        kv_tags: Default::default(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        param_text: Default::default(),
        model_inputs: Vec::new(),
    };
    Ok(OpenedRun {
        record,
        next_step: 0,
        resumed: false,
        pending_create: Some(insert),
    })
}

/// One past the last step logged, system metrics aside (they count
/// samples, not training steps).
fn next_step(run: &RunRecord) -> i64 {
    run.metrics
        .iter()
        .filter(|(k, _)| !k.starts_with("sys/"))
        .map(|(_, s)| s.last_step + 1)
        .max()
        .unwrap_or(0)
}
