//! What every command needs: where the store is, which project is meant,
//! and whether to color.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use labbook_capture::{hostname, pid_alive};
use labbook_core::RunRecord;
use labbook_store::locate::{default_store, find_store};
use labbook_store::{SqliteStore, Store};

use crate::error::hinted;
use crate::style::{self, Painter};

pub struct App {
    pub cwd: PathBuf,
    /// `--dir` or LABBOOK_DIR: the store directory itself.
    pub dir_override: Option<PathBuf>,
    pub color_stdout: bool,
    pub color_stderr: bool,
    /// `--store` or LABBOOK_STORE: a team server's database.
    pub team_store: Option<String>,
}

impl App {
    pub fn new(dir_override: Option<PathBuf>, no_color: bool) -> Result<App> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        Ok(App {
            cwd,
            // An empty LABBOOK_DIR (`LABBOOK_DIR= labbook ls`) means unset.
            dir_override: dir_override.filter(|d| !d.as_os_str().is_empty()),
            color_stdout: style::stdout_color(no_color),
            color_stderr: style::stderr_color(no_color),
            team_store: None,
        })
    }

    /// With the team server's database `--store` names (empty means unset).
    pub fn with_team_store(mut self, store: Option<String>) -> App {
        self.team_store = store.filter(|s| !s.trim().is_empty());
        self
    }

    /// The store a server or the account commands work on: the team
    /// server's database `--store` names, else the `.labbook` store found as
    /// `labbook run` finds it. Also how to name it in messages.
    pub fn open_served_store(&self) -> Result<ServedStore> {
        let Some(url) = &self.team_store else {
            let dir = self.store_dir_for_run();
            let store = open_store(&dir)?;
            let shown = std::fs::canonicalize(&dir)
                .unwrap_or(dir)
                .display()
                .to_string();
            return Ok(ServedStore {
                read_only: store.read_only().map(str::to_string),
                local: Some(store.clone()),
                store,
                shown,
            });
        };
        if !labbook_store::is_postgres_url(url) {
            return Err(hinted(
                format!("--store {url:?} is not a PostgreSQL URL"),
                "give postgresql://user@host:port/db, or --dir for a .labbook store",
            ));
        }
        if url_password_in_argv(url) {
            return Err(hinted(
                "the database password is on the command line, where `ps` shows it to every user of this machine".to_string(),
                "put it in PGPASSWORD or ~/.pgpass, or the whole URL in LABBOOK_STORE",
            ));
        }
        let store = labbook_store::PgStore::connect(url).map_err(|e| {
            hinted(
                format!("cannot open the team database: {e}"),
                "check that PostgreSQL is running there, and the user, database and password (PGPASSWORD or ~/.pgpass)",
            )
        })?;
        let shown = store.shown().to_string();
        Ok(ServedStore {
            store: Arc::new(store),
            local: None,
            shown,
            read_only: None,
        })
    }

    pub fn out(&self) -> Painter {
        Painter::new(self.color_stdout)
    }

    pub fn err(&self) -> Painter {
        Painter::new(self.color_stderr)
    }

    fn override_dir(&self) -> Option<PathBuf> {
        self.dir_override.as_ref().map(|d| absolute(&self.cwd, d))
    }

    /// The directory `labbook init` creates.
    pub fn init_dir(&self) -> PathBuf {
        self.override_dir()
            .unwrap_or_else(|| self.cwd.join(labbook_store::locate::STORE_DIR))
    }

    /// The store `labbook run` uses, created where git would put it when
    /// none exists yet.
    pub fn store_dir_for_run(&self) -> PathBuf {
        find_store(&self.cwd, self.override_dir().as_deref())
            .unwrap_or_else(|| default_store(&self.cwd))
    }

    /// The existing store the read commands use; never creates one.
    pub fn existing_store_dir(&self) -> Result<PathBuf> {
        let Some(dir) = find_store(&self.cwd, self.override_dir().as_deref()) else {
            return Err(hinted(
                format!(
                    "no labbook store in {} or any parent directory",
                    self.cwd.display()
                ),
                "run `labbook init` here, or set LABBOOK_DIR",
            ));
        };
        if !dir.is_dir() {
            return Err(hinted(
                format!("no labbook store at {}", dir.display()),
                "run `labbook init` (with the same --dir / LABBOOK_DIR) to create it",
            ));
        }
        Ok(dir)
    }

    pub fn open_existing(&self) -> Result<(Arc<SqliteStore>, PathBuf)> {
        let dir = self.existing_store_dir()?;
        let store = open_store(&dir)?;
        Ok((store, dir))
    }

    /// Marks runs whose process is gone as crashed, so listings do not show
    /// dead runs as running. A store this user cannot write to is still
    /// worth reading, so a failure here is only a warning.
    pub fn reap(&self, store: &dyn Store) {
        let host = hostname();
        if let Err(e) = store.reap_stale_runs(crate::fmt::now_ms(), host.as_deref(), &pid_alive)
            // The command's own read says it, once.
            && !matches!(e, labbook_store::StoreError::Damaged(_))
        {
            say!(
                "{}: cannot update the status of stale runs: {e}",
                self.err().warn("warning")
            );
        }
    }
}

pub fn open_store(dir: &Path) -> Result<Arc<SqliteStore>> {
    let store = SqliteStore::open(dir)
        .with_context(|| format!("cannot open the labbook store at {}", dir.display()))?;
    if store.log_unread()
        && let Some(why) = store.read_only()
    {
        say!(
            "{}: the store at {} is read-only: {why}",
            crate::style::Painter::new(crate::style::stderr_color(false)).warn("warning"),
            dir.display()
        );
    }
    Ok(Arc::new(store))
}

fn absolute(cwd: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    }
}

/// The project meant when `--project` is not given: LABBOOK_PROJECT, else
/// the name of the directory holding the store (`~/mnist/.labbook` → mnist).
pub fn default_project(store_dir: &Path) -> String {
    if let Some(p) = std::env::var("LABBOOK_PROJECT")
        .ok()
        .filter(|p| !p.trim().is_empty())
    {
        return p;
    }
    let dir = std::fs::canonicalize(store_dir).unwrap_or_else(|_| store_dir.to_path_buf());
    dir.parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "default".to_string())
}

/// Resolves a run reference (id, id prefix or name) in any project.
pub fn resolve(store: &dyn Store, reference: &str) -> Result<RunRecord> {
    Ok(store.resolve_run(reference, None)?)
}

/// A run as `ls --json` and `show --json` print it: the record's serde
/// form plus `duration_ms` (which depends on now for a running run).
pub fn run_json(
    run: &RunRecord,
    now_ms: i64,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut object = match serde_json::to_value(run)? {
        serde_json::Value::Object(map) => map,
        other => {
            return Err(anyhow::anyhow!(
                "a run serialized as {other}, not as an object"
            ));
        }
    };
    object.insert("duration_ms".into(), run.duration_ms(now_ms).into());
    Ok(object)
}

/// Terminal columns of stdout, when it is a terminal.
pub fn terminal_width() -> Option<usize> {
    terminal_size::terminal_size_of(std::io::stdout())
        .map(|(w, _)| usize::from(w.0))
        // COLUMNS, as `ls` and `git` read it: a width for output that is
        // not a terminal (a pager, a test).
        .or_else(|| std::env::var("COLUMNS").ok()?.trim().parse().ok())
        .filter(|w| *w > 0)
}

/// A store opened for `serve` or the account commands.
pub struct ServedStore {
    pub store: Arc<dyn Store>,
    /// The same store when it is a `.labbook` one.
    pub local: Option<Arc<SqliteStore>>,
    /// How messages name it: a folder, or a database URL without password.
    pub shown: String,
    pub read_only: Option<String>,
}

/// Whether `url` carries a password and was given on this process's
/// command line (not through LABBOOK_STORE).
fn url_password_in_argv(url: &str) -> bool {
    let has_password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?']).next())
        .and_then(|authority| authority.rsplit_once('@'))
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    has_password && std::env::args().skip(1).any(|a| a.contains(url))
}
