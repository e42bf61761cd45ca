//! The PostgreSQL backend: a team server's store, shared by any number of
//! `labbook serve` replicas. The tables are the SQLite store's; every write
//! is one transaction, retried whole when PostgreSQL reports a
//! serialization failure or a deadlock. Writes to one run take that run's
//! row lock first, so writers of the same run queue instead of deadlocking
//! (SQLite queues every writer; here only a run's own do).
//!
//! Connections come from a pool. A connection the server dropped is
//! replaced; a database that does not answer makes calls fail with
//! [`StoreError::Unavailable`], which a client may retry, and the pool
//! reconnects by itself once the database is back.

mod accounts;
mod artifacts;
mod run_index;
mod runs;
mod schema;
mod studies;
mod versions;

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{GenericClient, IsolationLevel, NoTls, Row, Statement};

use crate::Store;
use crate::error::{Result, StoreError};
use crate::studies::*;
use crate::types::*;
use crate::versions::*;
use labbook_core::account::{Permission, ResourceKind, Role, TokenInfo, User};
use labbook_core::{RunRecord, SeriesColumns};

use schema::{MIGRATION_LOCK, MIGRATIONS};

/// How many connections one process keeps open at most.
const POOL_SIZE: u32 = 16;
/// How long a call waits for a connection before the database counts as
/// unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times a write is tried when PostgreSQL aborts it for a
/// serialization failure or deadlock (each time after a short pause).
const WRITE_ATTEMPTS: u32 = 8;

/// Whether `text` is a PostgreSQL connection URL (what `--store` takes for
/// a team server).
pub fn is_postgres_url(text: &str) -> bool {
    text.starts_with("postgresql://") || text.starts_with("postgres://")
}

pub struct PgStore {
    /// Always `Some` until dropped (see `Drop`).
    pool: Option<r2d2::Pool<Manager>>,
    /// The database as messages name it: host, port and name, never the
    /// password.
    shown: String,
    index: Mutex<run_index::RunIndex>,
    /// Where artifact contents live (`artifacts`).
    blobs: Mutex<std::sync::Arc<dyn crate::blobs::Blobs>>,
    /// Each study's trials as this process last read them (`studies`).
    trial_cache: Mutex<HashMap<i64, crate::studies::TrialCache>>,
}

impl Drop for PgStore {
    /// A `postgres` client closes its connection by blocking on a runtime of
    /// its own, which panics on a thread that drives async tasks (a server
    /// dropping its store as it shuts down): the pool is dropped on a plain
    /// thread instead.
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let closing = std::thread::spawn(move || drop(pool));
            let _ = closing.join();
        }
    }
}

/// One pooled connection and the statements prepared on it.
pub(crate) struct PgConn {
    client: postgres::Client,
    statements: HashMap<String, Statement>,
}

struct Manager {
    config: postgres::Config,
}

impl r2d2::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> std::result::Result<PgConn, postgres::Error> {
        Ok(PgConn {
            client: self.config.connect(NoTls)?,
            statements: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut PgConn) -> std::result::Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.client.is_closed()
    }
}

/// A transaction, with the connection's prepared statements: every query
/// of the backend runs in one.
pub(crate) struct Db<'a> {
    tx: postgres::Transaction<'a>,
    statements: &'a mut HashMap<String, Statement>,
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

/// `sql` prepared on this connection, once: later calls reuse it.
fn prepared(
    client: &mut impl GenericClient,
    statements: &mut HashMap<String, Statement>,
    sql: &str,
) -> Result<Statement> {
    if let Some(statement) = statements.get(sql) {
        return Ok(statement.clone());
    }
    let statement = client.prepare(sql)?;
    statements.insert(sql.to_string(), statement.clone());
    Ok(statement)
}

impl Db<'_> {
    fn prepared(&mut self, sql: &str) -> Result<Statement> {
        prepared(&mut self.tx, self.statements, sql)
    }

    pub(crate) fn rows(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let statement = self.prepared(sql)?;
        Ok(self.tx.query(&statement, params)?)
    }

    pub(crate) fn row(&mut self, sql: &str, params: Params<'_>) -> Result<Option<Row>> {
        let statement = self.prepared(sql)?;
        Ok(self.tx.query_opt(&statement, params)?)
    }

    pub(crate) fn one(&mut self, sql: &str, params: Params<'_>) -> Result<Row> {
        let statement = self.prepared(sql)?;
        Ok(self.tx.query_one(&statement, params)?)
    }

    pub(crate) fn exec(&mut self, sql: &str, params: Params<'_>) -> Result<u64> {
        let statement = self.prepared(sql)?;
        Ok(self.tx.execute(&statement, params)?)
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            // A value that does not convert to or from its column's type is
            // this program's fault, and repeating the call will not help.
            let text = e.to_string();
            if text.starts_with("error serializing") || text.starts_with("error deserializing") {
                return StoreError::Database(text);
            }
            // No answer from the server: the connection failed or closed.
            return StoreError::Unavailable(format!("the database did not answer: {e}"));
        };
        let code = db.code();
        if *code == SqlState::DISK_FULL {
            return StoreError::DiskFull(db.message().to_string());
        }
        if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
        {
            return StoreError::Busy(db.message().to_string());
        }
        if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
            return StoreError::ReadOnly(db.message().to_string());
        }
        // Connection problems, a server shutting down or starting up, too
        // many connections: all pass, so the call may be repeated.
        if code.code().starts_with("08")
            || code.code().starts_with("53")
            || code.code().starts_with("57P")
        {
            return StoreError::Unavailable(format!("the database is unavailable: {}", db));
        }
        StoreError::Database(db.to_string())
    }
}

/// The password `~/.pgpass` (or the file PGPASSFILE names) holds for this
/// connection, as libpq reads it: lines `host:port:database:user:password`,
/// `*` matching anything, the first match winning; a file others may read
/// is ignored, as libpq ignores it.
fn password_file_entry(config: &postgres::Config) -> Option<String> {
    let path = match std::env::var_os("PGPASSFILE") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".pgpass"),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if std::fs::metadata(&path).ok()?.permissions().mode() & 0o077 != 0 {
            return None;
        }
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let host = match config.get_hosts().first()? {
        postgres::config::Host::Tcp(h) => h.clone(),
        #[cfg(unix)]
        postgres::config::Host::Unix(_) => "localhost".to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let fields = split_pgpass(line);
            let [h, p, d, u, password] = fields.as_slice() else {
                return None;
            };
            let matches = |field: &str, value: &str| field == "*" || field == value;
            (matches(h, &host) && matches(p, &port) && matches(d, db) && matches(u, user))
                .then(|| password.clone())
        })
}

/// A `.pgpass` line's fields: split at ':' not escaped by a backslash.
fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next()
                    && let Some(field) = fields.last_mut()
                {
                    field.push(next);
                }
            }
            ':' => fields.push(String::new()),
            c => {
                if let Some(field) = fields.last_mut() {
                    field.push(c);
                }
            }
        }
    }
    fields
}

/// `url` with its password, if any, taken out.
fn shown_url(config: &postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(host, port)| match host {
            postgres::config::Host::Tcp(h) => format!("{h}:{port}"),
            #[cfg(unix)]
            postgres::config::Host::Unix(p) => format!("{}:{port}", p.display()),
        })
        .collect();
    format!(
        "postgresql://{}/{}",
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

impl PgStore {
    /// Connects to the database at `url` (`postgresql://user@host:port/db`)
    /// and brings its schema up to date. A password missing from the URL
    /// is read from `PGPASSWORD`, so it need not appear in `ps`.
    pub fn connect(url: &str) -> Result<PgStore> {
        let mut config: postgres::Config = url.parse().map_err(|e| {
            labbook_core::ValidationError::new(
                "store",
                format!("{url:?} is not a PostgreSQL URL: {e}"),
            )
        })?;
        if config.get_password().is_none() {
            if let Ok(password) = std::env::var("PGPASSWORD") {
                config.password(password);
            } else if let Some(password) = password_file_entry(&config) {
                config.password(password);
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("labbook");
        let shown = shown_url(&config);
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(CONNECT_TIMEOUT)
            .test_on_check_out(false)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(Manager { config });
        let store = PgStore {
            pool: Some(pool),
            shown,
            index: Mutex::new(run_index::RunIndex::default()),
            blobs: Mutex::new(artifacts::no_location().into()),
            trial_cache: Mutex::new(HashMap::new()),
        };
        store.migrate()?;
        *store.blobs.lock() = store.recorded_blobs()?.into();
        Ok(store)
    }

    /// The database as messages name it (no password).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn connection(&self) -> Result<r2d2::PooledConnection<Manager>> {
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| StoreError::Internal("the store is closing".into()))?;
        pool.get().map_err(|e| {
            StoreError::Unavailable(format!(
                "the database at {} did not answer: {e}",
                self.shown
            ))
        })
    }

    /// Runs `f` in a read-only transaction that sees one snapshot.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&mut Db<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.connection()?;
        let PgConn { client, statements } = &mut *conn;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let mut db = Db { tx, statements };
        let out = f(&mut db)?;
        db.tx.commit()?;
        Ok(out)
    }

    /// The rows of one statement, run outside a transaction: one statement
    /// sees one snapshot by itself, and leaving out BEGIN and COMMIT saves
    /// two round trips on the reads every request makes (its token, its
    /// roles, its run).
    pub(crate) fn read_rows(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let mut conn = self.connection()?;
        let PgConn { client, statements } = &mut *conn;
        let statement = prepared(client, statements, sql)?;
        Ok(client.query(&statement, params)?)
    }

    /// Runs `f` in a transaction and commits it; again, from the start, when
    /// PostgreSQL aborted it for a deadlock or a serialization failure.
    pub(crate) fn write<T>(&self, mut f: impl FnMut(&mut Db<'_>) -> Result<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut conn = self.connection()?;
            let PgConn { client, statements } = &mut *conn;
            let outcome = (|| {
                let tx = client.transaction()?;
                let mut db = Db { tx, statements };
                let out = f(&mut db)?;
                db.tx.commit()?;
                Ok(out)
            })();
            match outcome {
                Err(StoreError::Busy(_)) if attempt < WRITE_ATTEMPTS => {
                    crate::count_lock_retry();
                    std::thread::sleep(Duration::from_millis(u64::from(attempt) * 5));
                }
                other => return other,
            }
        }
    }

    fn migrate(&self) -> Result<()> {
        let mut conn = self.connection()?;
        let mut tx = conn.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS labbook_schema (id INT PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL)",
        )?;
        let current: i64 = tx
            .query_opt("SELECT version FROM labbook_schema WHERE id = 1", &[])?
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or(0);
        if current as usize > MIGRATIONS.len() {
            return Err(StoreError::NewerStore {
                found: current,
                known: MIGRATIONS.len(),
            });
        }
        for migration in MIGRATIONS.iter().skip(current as usize) {
            tx.batch_execute(migration)?;
        }
        tx.execute(
            "INSERT INTO labbook_schema (id, version) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            &[&(MIGRATIONS.len() as i64)],
        )?;
        tx.commit()?;
        Ok(())
    }
}

/// Every `Store` call is answered by the method of the same name above.
impl Store for PgStore {
    fn artifact_location(&self) -> crate::ArtifactLocation {
        PgStore::artifact_location(self)
    }
    fn use_artifact_location(&self, location: &crate::ArtifactLocation) -> Result<()> {
        PgStore::use_artifact_location(self, location)
    }
    fn create_run(&self, new: &NewRun) -> Result<RunRecord> {
        PgStore::create_run(self, new)
    }
    fn get_run(&self, id: &str) -> Result<RunRecord> {
        PgStore::get_run(self, id)
    }
    fn resolve_run(&self, reference: &str, project: Option<&str>) -> Result<RunRecord> {
        PgStore::resolve_run(self, reference, project)
    }
    fn update_run(&self, id: &str, patch: &RunPatch) -> Result<()> {
        PgStore::update_run(self, id, patch)
    }
    fn visit_runs(&self, query: &RunQuery, visit: &mut dyn FnMut(&[&RunRecord])) -> Result<()> {
        PgStore::visit_runs(self, query, visit)
    }
    fn changes_since(&self, seq: i64) -> Result<(i64, Vec<RunRecord>)> {
        PgStore::changes_since(self, seq)
    }
    fn list_projects(&self) -> Result<Vec<ProjectInfo>> {
        PgStore::list_projects(self)
    }
    fn create_project(&self, new: &NewProject) -> Result<Project> {
        PgStore::create_project(self, new)
    }
    fn project(&self, reference: ProjectRef<'_>) -> Result<Project> {
        PgStore::project(self, reference)
    }
    fn update_project(&self, id: i64, patch: &ProjectPatch) -> Result<()> {
        PgStore::update_project(self, id, patch)
    }
    fn delete_run(&self, id: &str, now_ms: i64) -> Result<()> {
        PgStore::delete_run(self, id, now_ms)
    }
    fn restore_run(&self, id: &str) -> Result<()> {
        PgStore::restore_run(self, id)
    }
    fn purge_run(&self, id: &str) -> Result<()> {
        PgStore::purge_run(self, id)
    }
    fn commit(&self, write: &WriteSet) -> Result<Option<Vec<i64>>> {
        PgStore::commit(self, write)
    }
    fn read_series(&self, run_id: &str, key: &str, range: StepRange) -> Result<SeriesColumns> {
        PgStore::read_series(self, run_id, key, range)
    }
    fn downsample(
        &self,
        run_id: &str,
        key: &str,
        range: StepRange,
        buckets: usize,
        timestamps: bool,
    ) -> Result<(SeriesColumns, usize)> {
        PgStore::downsample(self, run_id, key, range, buckets, timestamps)
    }
    fn series_keys(&self, run_id: &str) -> Result<Vec<(String, u64)>> {
        PgStore::series_keys(self, run_id)
    }
    fn compact_run(&self, run_id: &str) -> Result<()> {
        PgStore::compact_run(self, run_id)
    }
    fn set_environment(&self, run_id: &str, env: &serde_json::Value) -> Result<()> {
        PgStore::set_environment(self, run_id, env)
    }
    fn environment(&self, run_id: &str) -> Result<Option<serde_json::Value>> {
        PgStore::environment(self, run_id)
    }
    fn read_output(&self, run_id: &str) -> Result<Vec<OutputChunk>> {
        PgStore::read_output(self, run_id)
    }
    fn add_note(&self, run_id: &str, text: &str, now_ms: i64) -> Result<()> {
        PgStore::add_note(self, run_id, text, now_ms)
    }
    fn notes(&self, run_id: &str) -> Result<Vec<NoteEntry>> {
        PgStore::notes(self, run_id)
    }
    fn project_notes(&self, project: &str) -> Result<Vec<NotebookNote>> {
        PgStore::project_notes(self, project)
    }
    fn add_project_note(
        &self,
        project: &str,
        text: &str,
        run_id: Option<&str>,
        now_ms: i64,
    ) -> Result<NotebookNote> {
        PgStore::add_project_note(self, project, text, run_id, now_ms)
    }
    fn put_artifact(
        &self,
        path: &str,
        data: &mut dyn std::io::Read,
        now_ms: i64,
    ) -> Result<ArtifactEntry> {
        PgStore::put_artifact(self, path, data, now_ms)
    }
    fn open_artifact(&self, path: &str) -> Result<(Box<dyn std::io::Read + Send>, u64)> {
        PgStore::open_artifact(self, path)
    }
    fn list_artifacts(&self, dir: &str) -> Result<Vec<ArtifactEntry>> {
        PgStore::list_artifacts(self, dir)
    }
    fn delete_artifacts(&self, path: &str) -> Result<u64> {
        PgStore::delete_artifacts(self, path)
    }
    fn artifact_space_available(&self) -> Option<u64> {
        PgStore::artifact_space_available(self)
    }
    fn document(&self, kind: &str, key: &str) -> Result<Option<serde_json::Value>> {
        PgStore::document(self, kind, key)
    }
    fn documents(&self, kind: &str) -> Result<Vec<(String, serde_json::Value)>> {
        PgStore::documents(self, kind)
    }
    fn update_document(
        &self,
        kind: &str,
        key: &str,
        update: &mut dyn FnMut(Option<serde_json::Value>) -> Result<Option<serde_json::Value>>,
    ) -> Result<Option<serde_json::Value>> {
        PgStore::update_document(self, kind, key, update)
    }
    fn record_artifact_version(
        &self,
        new: &NewArtifactVersion,
        entries: Vec<labbook_core::artifact_version::ManifestEntry>,
        digest: Option<String>,
    ) -> Result<ArtifactVersion> {
        PgStore::record_artifact_version(self, new, entries, digest)
    }
    fn artifact_files_under(
        &self,
        dir: &str,
    ) -> Result<Vec<labbook_core::artifact_version::ManifestEntry>> {
        PgStore::artifact_files_under(self, dir)
    }
    fn link_version_files(&self, version_id: i64, prefix: &str, now_ms: i64) -> Result<()> {
        PgStore::link_version_files(self, version_id, prefix, now_ms)
    }
    fn log_artifact_version(&self, new: &NewArtifactVersion) -> Result<LoggedVersion> {
        PgStore::log_artifact_version(self, new)
    }
    fn resolve_artifact(&self, project: Option<&str>, reference: &str) -> Result<ArtifactVersion> {
        PgStore::resolve_artifact(self, project, reference)
    }
    fn artifact_version_by_id(&self, id: i64) -> Result<ArtifactVersion> {
        PgStore::artifact_version_by_id(self, id)
    }
    fn artifact_names(
        &self,
        project: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<ArtifactName>> {
        PgStore::artifact_names(self, project, kind)
    }
    fn artifact_versions(&self, project: &str, name: &str) -> Result<Vec<ArtifactVersion>> {
        PgStore::artifact_versions(self, project, name)
    }
    fn artifact_manifest(
        &self,
        version_id: i64,
    ) -> Result<labbook_core::artifact_version::Manifest> {
        PgStore::artifact_manifest(self, version_id)
    }
    fn artifact_edges(&self, version_id: i64) -> Result<Vec<RunArtifactEdge>> {
        PgStore::artifact_edges(self, version_id)
    }
    fn run_artifact_versions(&self, run_id: &str) -> Result<Vec<(ArtifactVersion, EdgeRole)>> {
        PgStore::run_artifact_versions(self, run_id)
    }
    fn use_artifact_version(&self, run_id: &str, version_id: i64, now_ms: i64) -> Result<()> {
        PgStore::use_artifact_version(self, run_id, version_id, now_ms)
    }
    fn set_artifact_alias(&self, version_id: i64, alias: &str) -> Result<()> {
        PgStore::set_artifact_alias(self, version_id, alias)
    }
    fn remove_artifact_alias(&self, version: &ArtifactVersion, alias: &str) -> Result<bool> {
        PgStore::remove_artifact_alias(self, version, alias)
    }
    fn delete_artifact_version(&self, version_id: i64, now_ms: i64) -> Result<()> {
        PgStore::delete_artifact_version(self, version_id, now_ms)
    }
    fn download_artifact_version(
        &self,
        version: &ArtifactVersion,
        dest: &std::path::Path,
        placement: crate::versions::Placement,
    ) -> Result<()> {
        PgStore::download_artifact_version(self, version, dest, placement)
    }
    fn verify_artifact_references(&self, version: &ArtifactVersion) -> Result<Vec<ChangedFile>> {
        PgStore::verify_artifact_references(self, version)
    }
    fn lineage(&self, start: &LineageStart) -> Result<LineageGraph> {
        PgStore::lineage(self, start)
    }
    fn gc(&self, dry_run: bool, now_ms: i64) -> Result<GcReport> {
        PgStore::gc(self, dry_run, now_ms)
    }
    fn create_study(&self, new: &NewStudy, resume: bool) -> Result<(StudyRecord, bool)> {
        PgStore::create_study(self, new, resume)
    }
    fn study(&self, reference: &str, project: Option<&str>) -> Result<StudyRecord> {
        PgStore::study(self, reference, project)
    }
    fn study_by_pk(&self, pk: i64) -> Result<StudyRecord> {
        PgStore::study_by_pk(self, pk)
    }
    fn list_studies(&self, project: Option<&str>) -> Result<Vec<StudyRecord>> {
        PgStore::list_studies(self, project)
    }
    fn update_study(&self, pk: i64, patch: &StudyPatch) -> Result<StudyRecord> {
        PgStore::update_study(self, pk, patch)
    }
    fn delete_study(&self, pk: i64, now_ms: i64) -> Result<()> {
        PgStore::delete_study(self, pk, now_ms)
    }
    fn trials(&self, study: i64) -> Result<Vec<std::sync::Arc<TrialRecord>>> {
        PgStore::trials(self, study)
    }
    fn trial(&self, trial_id: i64) -> Result<TrialRecord> {
        PgStore::trial(self, trial_id)
    }
    fn waiting_trials(&self, study: i64) -> Result<Vec<std::sync::Arc<TrialRecord>>> {
        PgStore::waiting_trials(self, study)
    }
    fn claim_trial(
        &self,
        study: i64,
        worker: &Worker,
        now_ms: i64,
        alive: &dyn Fn(&TrialRecord) -> bool,
        decide: &mut Decide<'_>,
    ) -> Result<Claimed> {
        PgStore::claim_trial(self, study, worker, now_ms, alive, decide)
    }
    fn update_trial(&self, trial_id: i64, patch: &TrialPatch) -> Result<bool> {
        PgStore::update_trial(self, trial_id, patch)
    }
    fn reap_stale_runs(
        &self,
        now_ms: i64,
        this_host: Option<&str>,
        pid_alive: &dyn Fn(u32) -> bool,
    ) -> Result<Vec<String>> {
        PgStore::reap_stale_runs(self, now_ms, this_host, pid_alive)
    }
    fn create_user(&self, name: &str, password_hash: &str, now_ms: i64) -> Result<User> {
        PgStore::create_user(self, name, password_hash, now_ms)
    }
    fn set_password(&self, name: &str, password_hash: &str) -> Result<()> {
        PgStore::set_password(self, name, password_hash)
    }
    fn users(&self) -> Result<Vec<User>> {
        PgStore::users(self)
    }
    fn delete_user(&self, name: &str) -> Result<()> {
        PgStore::delete_user(self, name)
    }
    fn password_hash(&self, name: &str) -> Result<Option<(User, String)>> {
        PgStore::password_hash(self, name)
    }
    fn create_token(
        &self,
        user: &str,
        name: &str,
        digest: &str,
        now_ms: i64,
        expires_ms: Option<i64>,
    ) -> Result<TokenInfo> {
        PgStore::create_token(self, user, name, digest, now_ms, expires_ms)
    }
    fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>> {
        PgStore::tokens(self, user)
    }
    fn revoke_token(&self, id: i64, now_ms: i64) -> Result<TokenInfo> {
        PgStore::revoke_token(self, id, now_ms)
    }
    fn revoke_token_digest(&self, digest: &str, now_ms: i64) -> Result<bool> {
        PgStore::revoke_token_digest(self, digest, now_ms)
    }
    fn user_of_token(&self, digest: &str, now_ms: i64) -> Result<Option<User>> {
        PgStore::user_of_token(self, digest, now_ms)
    }
    fn set_admin(&self, name: &str, admin: bool) -> Result<()> {
        PgStore::set_admin(self, name, admin)
    }
    fn signin_failures(
        &self,
        guessers: &[String],
        since_ms: i64,
    ) -> Result<Option<Vec<SigninFailures>>> {
        PgStore::signin_failures(self, guessers, since_ms).map(Some)
    }
    fn record_signin_failure(
        &self,
        guessers: &[String],
        now_ms: i64,
        window_ms: i64,
    ) -> Result<()> {
        PgStore::record_signin_failure(self, guessers, now_ms, window_ms)
    }
    fn forget_signin_failures(&self, guesser: &str) -> Result<()> {
        PgStore::forget_signin_failures(self, guesser)
    }
    fn set_permission(
        &self,
        user: &str,
        kind: ResourceKind,
        resource: &str,
        role: Role,
    ) -> Result<Permission> {
        PgStore::set_permission(self, user, kind, resource, role)
    }
    fn remove_permission(&self, user: &str, kind: ResourceKind, resource: &str) -> Result<()> {
        PgStore::remove_permission(self, user, kind, resource)
    }
    fn permissions(&self, user: Option<&str>) -> Result<Vec<Permission>> {
        PgStore::permissions(self, user)
    }
    fn move_permissions(&self, kind: ResourceKind, from: &str, to: Option<&str>) -> Result<()> {
        PgStore::move_permissions(self, kind, from, to)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn password_file_lines_split_at_unescaped_colons() {
        assert_eq!(
            super::split_pgpass(r"db.example:5432:*:ada:pa\:ss\\word"),
            vec!["db.example", "5432", "*", "ada", "pa:ss\\word"]
        );
    }
}
