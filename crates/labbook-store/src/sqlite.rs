//! The embedded SQLite backend: one file in WAL mode that many processes
//! write at once. Every write runs in a `BEGIN IMMEDIATE` transaction, which
//! takes the write lock up front (so two writers never deadlock upgrading a
//! read lock) and waits up to the busy timeout for it; WAL with
//! `synchronous=NORMAL` keeps every committed transaction through a process
//! crash.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior, params,
};

use labbook_core::account::{Permission, ResourceKind, Role, TokenInfo, User};
use labbook_core::run::{validate_name, validate_tag};
use labbook_core::{RunRecord, RunStatus, SeriesColumns, SeriesSummary, ids};

use crate::chunk_read::{self, ChunkInfo, ChunkRead, ChunkSource};
use crate::error::{Result, StoreError};
use crate::run_fields::{RUN_FIELD_COLUMNS, RunFields};
use crate::series::SEALED_LEVEL;
use crate::studies::*;
use crate::types::*;
use crate::versions::*;
use crate::writer::now_ms;
use crate::{Store, random_bits};

mod artifacts;
mod backup;
pub use backup::BackupReport;
mod accounts;
#[cfg(feature = "postgres")]
pub(crate) use accounts::stored_permission;
mod key_catalog;
mod projects;
mod pushdown;
mod run_index;
mod schema;
mod studies;
mod template;

use schema::MIGRATIONS;
mod versions;

/// The database file inside a `.labbook` directory.
pub const DB_FILE: &str = "labbook.db";
const BUSY_TIMEOUT: Duration = Duration::from_secs(120);
/// The most runs a cold query reads in full after SQL narrowed its filter
/// (about 8 µs each); one that narrows less loads the index instead.
const NARROWED_MOST: usize = 2_000;

/// Runs `f` again while it fails with SQLITE_BUSY, up to the busy timeout.
/// SQLite answers a few races with SQLITE_BUSY at once instead of consulting
/// the busy handler, because waiting could deadlock: two connections that
/// switch a new file to WAL together (a sweep's workers all starting before
/// the store exists) is one. Whoever lost has released its locks, so trying
/// again after a pause is safe.
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && Instant::now() < deadline =>
            {
                crate::count_lock_retry();
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// The busy handler: what `busy_timeout` does (SQLite's own schedule of
/// pauses, giving up after the busy timeout), and it counts each wait, so a
/// writer can tell how much contention it absorbed. `count` is how many
/// times SQLite called it before for the same lock.
fn wait_for_lock(count: i32) -> bool {
    const PAUSES_MS: [u64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];
    const LAST_MS: u64 = PAUSES_MS[PAUSES_MS.len() - 1];
    let count = usize::try_from(count).unwrap_or(0);
    let waited: u64 = PAUSES_MS.iter().take(count).sum::<u64>()
        + LAST_MS * count.saturating_sub(PAUSES_MS.len()) as u64;
    let limit = BUSY_TIMEOUT.as_millis() as u64;
    if waited >= limit {
        return false;
    }
    let pause = PAUSES_MS.get(count).copied().unwrap_or(LAST_MS);
    crate::count_lock_retry();
    thread::sleep(Duration::from_millis(pause.min(limit - waited)));
    true
}

pub struct SqliteStore {
    conn: Mutex<Connection>,
    dir: PathBuf,
    /// Every run, in memory, as of a change sequence (`run_index`).
    index: Mutex<run_index::RunIndex>,
    trial_cache: Mutex<HashMap<i64, crate::studies::TrialCache>>,
    /// Why this store was opened read-only, if it was.
    read_only: Option<String>,
    /// Whether commits in its write-ahead log could not be read (see
    /// `open_read_only`).
    log_unread: bool,
    /// Where artifact contents live (`blobs`).
    blobs: Mutex<std::sync::Arc<dyn crate::blobs::Blobs>>,
}

/// Whether opening failed because this process may not write the store,
/// which is no reason not to read it.
fn cannot_write(e: &StoreError) -> bool {
    use rusqlite::ErrorCode;
    match e {
        StoreError::ReadOnly(_) => true,
        StoreError::Io { source, .. } => matches!(
            source.kind(),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
        ),
        StoreError::Sqlite(e) => matches!(
            e.sqlite_error_code(),
            Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly)
        ),
        _ => false,
    }
}

/// `path` for a `file:` URI: the bytes SQLite would read as URI syntax
/// (`%`, `?`, `#`) and anything outside printable ASCII, percent-encoded.
fn uri_path(path: &Path) -> String {
    use std::fmt::Write as _;
    #[cfg(unix)]
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()).to_vec();
    #[cfg(not(unix))]
    let bytes = path.to_string_lossy().into_owned().into_bytes();
    let mut out = String::with_capacity(bytes.len());
    for b in bytes {
        if b.is_ascii_graphic() && !matches!(b, b'%' | b'?' | b'#') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Reads a REAL that SQLite may have stored as NULL: SQLite turns NaN into
/// NULL, so a NULL where a value must exist means NaN.
fn real_or_nan(row: &Row<'_>, idx: usize) -> rusqlite::Result<f64> {
    Ok(row.get::<_, Option<f64>>(idx)?.unwrap_or(f64::NAN))
}

const RUN_COLUMNS: &str = "r.pk, r.id, p.name, r.name, r.grp, r.tags, r.notes, r.status, r.created_ms, r.ended_ms, \
     r.heartbeat_ms, r.host, r.pid, r.exit_code, r.error, r.config, r.summary, r.deleted_ms, \
     p.id, r.kv_tags, r.inputs, r.outputs, r.param_text, r.model_inputs";

struct RawRun {
    pk: i64,
    record: RunRecord,
}

fn run_from_row(row: &Row<'_>) -> rusqlite::Result<(i64, String, String, String, String)> {
    Ok((
        row.get(0)?,
        row.get(5)?,
        row.get(7)?,
        row.get(15)?,
        row.get(16)?,
    ))
}

fn decode_run(row: &Row<'_>) -> Result<RawRun> {
    let (pk, tags, status, config, summary) = run_from_row(row)?;
    let status: RunStatus = status
        .parse()
        .map_err(|_| StoreError::Internal(format!("stored status {status:?}")))?;
    Ok(RawRun {
        pk,
        record: RunRecord {
            id: row.get(1)?,
            project: row.get(2)?,
            name: row.get(3)?,
            group: row.get(4)?,
            tags: serde_json::from_str(&tags)?,
            notes: row.get(6)?,
            status,
            created_ms: row.get(8)?,
            ended_ms: row.get(9)?,
            heartbeat_ms: row.get(10)?,
            host: row.get(11)?,
            pid: row.get(12)?,
            exit_code: row.get(13)?,
            error: row.get(14)?,
            config: serde_json::from_str(&config)?,
            metrics: BTreeMap::new(),
            summary: serde_json::from_str(&summary)?,
            deleted_ms: row.get(17)?,
            project_id: row.get(18)?,
            kv_tags: serde_json::from_str(&row.get::<_, String>(19)?)?,
            inputs: serde_json::from_str(&row.get::<_, String>(20)?)?,
            outputs: serde_json::from_str(&row.get::<_, String>(21)?)?,
            param_text: serde_json::from_str(&row.get::<_, String>(22)?)?,
            model_inputs: serde_json::from_str(&row.get::<_, String>(23)?)?,
        },
    })
}

fn summary_from_row(row: &Row<'_>, first: usize) -> rusqlite::Result<SeriesSummary> {
    Ok(SeriesSummary {
        count: row.get::<_, i64>(first)? as u64,
        last_step: row.get::<_, Option<i64>>(first + 1)?.unwrap_or(0),
        last_ts_ms: row.get::<_, Option<i64>>(first + 2)?.unwrap_or(0),
        last: real_or_nan(row, first + 3)?,
        min: row.get(first + 4)?,
        max: row.get(first + 5)?,
    })
}

impl SqliteStore {
    /// Opens (creating if needed) the store in a `.labbook` directory. An
    /// existing store this process may not write (a read-only filesystem,
    /// another user's files) is opened read-only instead: see
    /// [`SqliteStore::read_only`].
    pub fn open(dir: &Path) -> Result<SqliteStore> {
        match Self::open_writable(dir) {
            Ok(store) => Ok(store),
            Err(e) if dir.join(DB_FILE).is_file() && cannot_write(&e) => {
                Self::open_read_only(dir).map_err(|read_only| match read_only {
                    // SQLite could not open it even to read: the first
                    // failure names the cause. Any other refusal (an older
                    // schema, a newer one) is the more precise of the two.
                    StoreError::Sqlite(_) => e,
                    other => other,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Opens an existing store for reading only, writing nothing into its
    /// directory: SQLite reads a write-ahead log through a read-only `-shm`.
    /// Where neither the log's index can be opened nor made (a read-only
    /// directory holding the database without its `-shm`), the database
    /// file is read as immutable, and the log, if any, is left unread: the
    /// store is shown as of its last checkpoint, which the reason says.
    pub fn open_read_only(dir: &Path) -> Result<SqliteStore> {
        let path = dir.join(DB_FILE);
        if !path.is_file() {
            return Err(StoreError::NotFound {
                what: "store database",
                id: path.display().to_string(),
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let version = |conn: &Connection| -> rusqlite::Result<i64> {
            conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        };
        let mut reason =
            "its files or its filesystem may not be written by this process".to_string();
        let mut log_unread = false;
        let conn = match Connection::open_with_flags(&path, flags)
            .and_then(|conn| version(&conn).map(|_| conn))
        {
            Ok(conn) => conn,
            Err(first) => {
                let immutable = format!("file:{}?immutable=1", uri_path(&path));
                let conn = Connection::open_with_flags(&immutable, flags).map_err(|_| first)?;
                let wal = dir.join(format!("{DB_FILE}-wal"));
                if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
                    log_unread = true;
                    reason = format!(
                        "its directory is read-only and has no {DB_FILE}-shm, so the writes still in {DB_FILE}-wal cannot be read: \
                         it is shown as of its last checkpoint; copy the whole directory somewhere writable to see them"
                    );
                }
                conn
            }
        };
        conn.busy_handler(Some(wait_for_lock))?;
        conn.execute_batch(
            "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-32000; PRAGMA mmap_size=1073741824;",
        )?;
        let current = version(&conn)?;
        if current as usize > MIGRATIONS.len() {
            return Err(StoreError::NewerStore {
                found: current,
                known: MIGRATIONS.len(),
            });
        }
        if (current as usize) < MIGRATIONS.len() {
            return Err(StoreError::ReadOnly(format!(
                "it was written by an older labbook (schema version {current}; this one reads {}), and upgrading it needs write access once",
                MIGRATIONS.len()
            )));
        }
        Ok(SqliteStore::on(conn, dir, Some(reason), log_unread))
    }

    fn on(conn: Connection, dir: &Path, read_only: Option<String>, log_unread: bool) -> Self {
        SqliteStore {
            conn: Mutex::new(conn),
            dir: dir.to_path_buf(),
            index: Mutex::new(run_index::RunIndex::default()),
            trial_cache: Mutex::new(HashMap::new()),
            read_only,
            log_unread,
            blobs: Mutex::new(crate::blobs::open(dir).into()),
        }
    }

    /// Why the store is read-only, when it is: writes fail with
    /// [`StoreError::ReadOnly`].
    pub fn read_only(&self) -> Option<&str> {
        self.read_only.as_deref()
    }

    /// Whether the store, opened read-only, is shown without the commits in
    /// its write-ahead log, which could not be read; `read_only` says why.
    pub fn log_unread(&self) -> bool {
        self.log_unread
    }

    fn open_writable(dir: &Path) -> Result<SqliteStore> {
        crate::private::create_store_dir(dir, crate::private::PRIVATE_DIR_MODE).map_err(
            |source| StoreError::Io {
                context: format!("cannot create the store directory {}", dir.display()),
                source,
            },
        )?;
        let modes = crate::private::Modes::of(dir);
        // A store inside a git repository would otherwise show up as
        // untracked files in every run's captured git state. Best effort.
        let ignore = dir.join(".gitignore");
        if !ignore.exists()
            && let Ok(mut file) = modes.create_new(&ignore)
        {
            use std::io::Write as _;
            let _ =
                file.write_all(b"# Created by labbook: the store is local data, not source.\n*\n");
        }
        let path = dir.join(DB_FILE);
        let cannot_create = |source| StoreError::Io {
            context: format!("cannot create {}", path.display()),
            source,
        };
        // SQLite gives its -wal and -shm files the database file's mode, so
        // the file is made first with the store's mode: from the template,
        // or else empty, for SQLite to open as new and the migrations to fill.
        if !template::create(&path, &modes).map_err(cannot_create)? {
            match modes.create_new(&path) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => return Err(cannot_create(source)),
            }
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags)?;
        conn.busy_handler(Some(wait_for_lock))?;
        // SQLite opens a write-protected file for reading without a word.
        if conn.is_readonly(rusqlite::MAIN_DB)? {
            return Err(StoreError::ReadOnly(
                "its database file may not be written by this process".into(),
            ));
        }
        // Chunks are blobs of tens to hundreds of KB: 32 KiB pages cut the
        // overflow-page chains that SQLite walks per blob by 8× against the
        // 4 KiB default. Only takes effect when the file is created.
        conn.execute_batch("PRAGMA page_size=32768")?;
        retry_busy(|| conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(())))?;
        conn.execute_batch(
            "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY; PRAGMA cache_size=-32000;
             PRAGMA mmap_size=1073741824;",
        )?;
        let store = SqliteStore::on(conn, dir, None, false);
        store.migrate()?;
        Ok(store)
    }

    /// Moves the write-ahead log into the database file and truncates it, so
    /// the file size is the data's size (benchmarks, backups).
    pub fn checkpoint(&self) -> Result<()> {
        self.conn
            .lock()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Bytes on disk: the database file plus its write-ahead log.
    pub fn disk_bytes(&self) -> u64 {
        let db = self.dir.join(DB_FILE);
        let wal = self.dir.join(format!("{DB_FILE}-wal"));
        [db, wal]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// The `.labbook` directory this store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn migrate(&self) -> Result<()> {
        let mut conn = self.conn.lock();
        let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if current as usize > MIGRATIONS.len() {
            return Err(StoreError::NewerStore {
                found: current,
                known: MIGRATIONS.len(),
            });
        }
        if current as usize == MIGRATIONS.len() {
            return Ok(());
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        for migration in MIGRATIONS.iter().skip(current as usize) {
            tx.execute_batch(migration)?;
        }
        tx.execute_batch(&format!("PRAGMA user_version = {}", MIGRATIONS.len()))?;
        tx.commit()?;
        Ok(())
    }

    /// The checks a new run's fields pass before it is inserted.
    pub(crate) fn validate_new_run(new: &NewRun) -> Result<()> {
        if let Some(name) = &new.name {
            validate_name("name", name)?;
        }
        if let Some(group) = &new.group {
            validate_name("group", group)?;
        }
        for tag in &new.tags {
            validate_tag(tag)?;
        }
        if let Some(id) = &new.id
            && (id.is_empty()
                || id.len() > 64
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return Err(labbook_core::ValidationError::new(
                "id",
                "use 1–64 letters, digits, '-' or '_'",
            )
            .into());
        }
        Ok(())
    }

    /// Inserts a run in `tx` (ids and names drawn until free); its id.
    pub(super) fn insert_run(tx: &Transaction<'_>, new: &NewRun) -> Result<String> {
        let project_id = Self::project_id(tx, &new.project, new.created_ms)?;
        let mut tags = Vec::new();
        for t in &new.tags {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        for attempt in 0..8 {
            let id = new
                .id
                .clone()
                .unwrap_or_else(|| ids::run_id_from_bits(random_bits()));
            let name = new
                .name
                .clone()
                .unwrap_or_else(|| ids::run_name_from_bits(random_bits()));
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO runs (id, project_id, name, grp, tags, notes, status, created_ms, heartbeat_ms, host, pid, config)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?7, ?8, ?9, ?10) ON CONFLICT (id) DO NOTHING",
                )?
                .execute(params![
                    id,
                    project_id,
                    name,
                    new.group,
                    serde_json::to_string(&tags)?,
                    new.notes,
                    new.created_ms,
                    new.host,
                    new.pid,
                    serde_json::to_string(&new.config)?,
                ],
            )?;
            if inserted == 1 {
                return Ok(id);
            }
            if new.id.is_some() || attempt == 7 {
                return Err(StoreError::Conflict(format!(
                    "a run with id {id:?} already exists"
                )));
            }
        }
        Err(StoreError::Internal("no free run id".into()))
    }

    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    fn run_pk(conn: &Connection, id: &str) -> Result<i64> {
        conn.prepare_cached("SELECT pk FROM runs WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| StoreError::NotFound {
                what: "run",
                id: id.to_string(),
            })
    }

    fn load_runs(
        conn: &Connection,
        where_sql: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<RunRecord>> {
        Ok(Self::load_runs_keyed(conn, where_sql, args)?
            .into_iter()
            .map(|(_, run)| run)
            .collect())
    }

    /// The runs `where_sql` selects, in full, each with its primary key.
    fn load_runs_keyed(
        conn: &Connection,
        where_sql: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<(i64, RunRecord)>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN projects p ON p.id = r.project_id WHERE {where_sql}"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(args)?;
        let mut runs = Vec::new();
        let mut by_pk = HashMap::new();
        while let Some(row) = rows.next()? {
            let raw = decode_run(row)?;
            by_pk.insert(raw.pk, runs.len());
            runs.push((raw.pk, raw.record));
        }
        if runs.is_empty() {
            return Ok(runs);
        }
        // One pass over the series table beats one query per run.
        let sql = format!(
            "SELECT s.run_pk, s.key, s.count, s.last_step, s.last_ts, s.last_value, s.min_value, s.max_value \
             FROM series s JOIN runs r ON r.pk = s.run_pk JOIN projects p ON p.id = r.project_id \
             WHERE s.count > 0 AND {where_sql}"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(args)?;
        while let Some(row) = rows.next()? {
            let pk: i64 = row.get(0)?;
            if let Some(&i) = by_pk.get(&pk) {
                runs[i]
                    .1
                    .metrics
                    .insert(row.get(1)?, summary_from_row(row, 2)?);
            }
        }
        Ok(runs)
    }

    fn load_run(conn: &Connection, id: &str) -> Result<RunRecord> {
        Self::load_runs(conn, "r.id = ?1", &[&id])?
            .pop()
            .ok_or_else(|| StoreError::NotFound {
                what: "run",
                id: id.to_string(),
            })
    }

    fn project_id(tx: &Transaction<'_>, name: &str, now_ms: i64) -> Result<i64> {
        validate_name("project", name)?;
        tx.prepare_cached(
            "INSERT INTO projects (name, created_ms) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        )?
        .execute(params![name, now_ms])?;
        Ok(tx
            .prepare_cached("SELECT id FROM projects WHERE name = ?1")?
            .query_row([name], |r| r.get(0))?)
    }

    fn apply_patch(tx: &Transaction<'_>, pk: i64, patch: &RunPatch) -> Result<()> {
        if patch.is_empty() {
            return Ok(());
        }
        let texts: [String; 8] = tx
            .prepare_cached(&format!(
                "SELECT {RUN_FIELD_COLUMNS} FROM runs WHERE pk = ?1"
            ))?
            .query_row([pk], |r| {
                Ok([
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ])
            })?;
        let mut fields = RunFields::decode(&texts)?;
        fields.apply(patch)?;
        let [
            tags,
            config,
            summary,
            kv_tags,
            inputs,
            outputs,
            param_text,
            model_inputs,
        ] = fields.encode()?;
        tx.prepare_cached(
            "UPDATE runs SET tags = ?2, config = ?3, summary = ?4,
                 status = COALESCE(?5, status), ended_ms = COALESCE(?6, ended_ms),
                 exit_code = COALESCE(?7, exit_code), error = COALESCE(?8, error),
                 name = COALESCE(?9, name), grp = COALESCE(?10, grp), notes = COALESCE(?11, notes),
                 kv_tags = ?12, inputs = ?13, outputs = ?14, param_text = ?15,
                 model_inputs = ?16
             WHERE pk = ?1",
        )?
        .execute(params![
            pk,
            tags,
            config,
            summary,
            patch.status.map(RunStatus::as_str),
            patch.ended_ms,
            patch.exit_code,
            patch.error,
            patch.name,
            patch.group,
            patch.notes,
            kv_tags,
            inputs,
            outputs,
            param_text,
            model_inputs,
        ])?;
        if let Some((host, pid)) = &patch.reopen {
            tx.execute(
                "UPDATE runs SET status = 'running', ended_ms = NULL, exit_code = NULL, error = NULL,
                     host = ?2, pid = ?3 WHERE pk = ?1",
                params![pk, host, pid],
            )?;
        }
        Ok(())
    }

    fn series_id(
        tx: &Transaction<'_>,
        run_pk: i64,
        key: &str,
        cache: &mut HashMap<String, i64>,
    ) -> Result<i64> {
        if let Some(&id) = cache.get(key) {
            return Ok(id);
        }
        labbook_core::metric::validate_metric_key(key)?;
        tx.prepare_cached(
            "INSERT INTO series (run_pk, key) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?
        .execute(params![run_pk, key])?;
        let id: i64 = tx
            .prepare_cached("SELECT id FROM series WHERE run_pk = ?1 AND key = ?2")?
            .query_row(params![run_pk, key], |r| r.get(0))?;
        cache.insert(key.to_string(), id);
        Ok(id)
    }

    fn insert_chunk(
        tx: &Transaction<'_>,
        series_id: i64,
        chunk: &crate::series::EncodedChunk,
    ) -> Result<i64> {
        let m = &chunk.meta;
        tx.prepare_cached(
            "INSERT INTO chunks (series_id, level, n, step_min, step_max, ts_min, ts_max, v_min, v_max, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            series_id,
            chunk.level,
            m.n as i64,
            m.step_min,
            m.step_max,
            m.ts_min,
            m.ts_max,
            m.v_min,
            m.v_max,
            chunk.data,
        ])?;
        let id = tx.last_insert_rowid();
        if let Some(sketch) = &chunk.sketch {
            tx.prepare_cached("INSERT INTO chunk_sketches (chunk_id, sketch) VALUES (?1, ?2)")?
                .execute(params![id, sketch])?;
        }
        Ok(id)
    }

    fn merge_summary(tx: &Transaction<'_>, series_id: i64, delta: &SeriesSummary) -> Result<()> {
        let existing: Option<SeriesSummary> = tx
            .prepare_cached(
                "SELECT count, last_step, last_ts, last_value, min_value, max_value FROM series WHERE id = ?1 AND count > 0",
            )?
            .query_row([series_id], |r| summary_from_row(r, 0))
            .optional()?;
        let merged = match existing {
            Some(mut s) => {
                s.merge(delta);
                s
            }
            None => *delta,
        };
        tx.prepare_cached(
            "UPDATE series SET count = ?2, last_step = ?3, last_ts = ?4, last_value = ?5, min_value = ?6, max_value = ?7
             WHERE id = ?1",
        )?
        .execute(params![
            series_id,
            merged.count as i64,
            merged.last_step,
            merged.last_ts_ms,
            merged.last,
            merged.min,
            merged.max
        ])?;
        Ok(())
    }

    /// A series' chunks, to read back ([`chunk_read`]).
    fn chunk_source(&self, run_id: &str, key: &str) -> Result<SqliteChunks<'_>> {
        let series_id = Self::series_of(&self.conn.lock(), run_id, key)?;
        Ok(SqliteChunks {
            store: self,
            series_id,
        })
    }

    /// The id of a run's series, or not found.
    fn series_of(conn: &Connection, run_id: &str, key: &str) -> Result<i64> {
        let run_pk = Self::run_pk(conn, run_id)?;
        conn.prepare_cached("SELECT id FROM series WHERE run_pk = ?1 AND key = ?2")?
            .query_row(params![run_pk, key], |r| r.get(0))
            .optional()?
            .ok_or_else(|| StoreError::NotFound {
                what: "metric",
                id: key.to_string(),
            })
    }
}

/// One series' chunks in the SQLite file.
struct SqliteChunks<'a> {
    store: &'a SqliteStore,
    series_id: i64,
}

impl ChunkSource for SqliteChunks<'_> {
    fn extent(&self, range: StepRange) -> Result<(Option<i64>, Option<i64>, Option<i64>)> {
        let (from, to) = range.bounds();
        Ok(self
            .store
            .conn
            .lock()
            .prepare_cached(
                "SELECT MIN(step_min), MAX(step_max), SUM(n) FROM chunks
                 WHERE series_id = ?1 AND step_max >= ?2 AND step_min <= ?3",
            )?
            .query_row(params![self.series_id, from, to], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?)
    }

    fn blobs(&self, range: StepRange) -> Result<Vec<Vec<u8>>> {
        let conn = self.store.conn.lock();
        let (from, to) = range.bounds();
        let mut stmt = conn.prepare_cached(
            "SELECT data FROM chunks WHERE series_id = ?1 AND step_max >= ?2 AND step_min <= ?3 ORDER BY step_min, id",
        )?;
        let rows = stmt.query_map(params![self.series_id, from, to], |r| {
            r.get::<_, Vec<u8>>(0)
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn chunks(
        &self,
        range: StepRange,
        use_sketch: &dyn Fn(&ChunkInfo) -> bool,
    ) -> Result<Vec<ChunkRead>> {
        let conn = self.store.conn.lock();
        let (from, to) = range.bounds();
        let infos: Vec<(i64, ChunkInfo)> = conn
            .prepare_cached(
                "SELECT c.id, c.n, c.step_min, c.step_max, s.chunk_id IS NOT NULL OR c.sketch IS NOT NULL
                 FROM chunks c LEFT JOIN chunk_sketches s ON s.chunk_id = c.id
                 WHERE c.series_id = ?1 AND c.step_max >= ?2 AND c.step_min <= ?3
                 ORDER BY c.step_min, c.id",
            )?
            .query_map(params![self.series_id, from, to], |r| {
                Ok((
                    r.get(0)?,
                    ChunkInfo {
                        n: r.get::<_, i64>(1)? as usize,
                        step_min: r.get(2)?,
                        step_max: r.get(3)?,
                        has_sketch: r.get(4)?,
                    },
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        // Its own table first; a chunk sealed before that table keeps its
        // sketch in its row.
        let mut sketch = conn.prepare_cached(
            "SELECT sketch FROM chunk_sketches WHERE chunk_id = ?1
             UNION ALL SELECT sketch FROM chunks WHERE id = ?1 AND sketch IS NOT NULL LIMIT 1",
        )?;
        let mut data = conn.prepare_cached("SELECT data FROM chunks WHERE id = ?1")?;
        let mut out = Vec::with_capacity(infos.len());
        for (id, info) in infos {
            out.push(if use_sketch(&info) {
                ChunkRead::Sketch {
                    id,
                    n: info.n,
                    bytes: sketch.query_row([id], |r| r.get(0))?,
                }
            } else {
                ChunkRead::Data(data.query_row([id], |r| r.get(0))?)
            });
        }
        Ok(out)
    }

    fn chunk_data(&self, id: i64) -> Result<Vec<u8>> {
        Ok(self
            .store
            .conn
            .lock()
            .prepare_cached("SELECT data FROM chunks WHERE id = ?1")?
            .query_row([id], |r| r.get(0))?)
    }
}

impl Store for SqliteStore {
    fn artifact_location(&self) -> crate::ArtifactLocation {
        SqliteStore::artifact_location(self)
    }
    fn use_artifact_location(&self, location: &crate::ArtifactLocation) -> Result<()> {
        SqliteStore::use_artifact_location(self, location)
    }
    fn create_user(&self, name: &str, password_hash: &str, now_ms: i64) -> Result<User> {
        self.create_user_impl(name, password_hash, now_ms)
    }
    fn set_password(&self, name: &str, password_hash: &str) -> Result<()> {
        self.set_password_impl(name, password_hash)
    }
    fn users(&self) -> Result<Vec<User>> {
        self.users_impl()
    }
    fn delete_user(&self, name: &str) -> Result<()> {
        self.delete_user_impl(name)
    }
    fn password_hash(&self, name: &str) -> Result<Option<(User, String)>> {
        self.password_hash_impl(name)
    }
    fn create_token(
        &self,
        user: &str,
        name: &str,
        digest: &str,
        now_ms: i64,
        expires_ms: Option<i64>,
    ) -> Result<TokenInfo> {
        self.create_token_impl(user, name, digest, now_ms, expires_ms)
    }
    fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>> {
        self.tokens_impl(user)
    }
    fn revoke_token(&self, id: i64, now_ms: i64) -> Result<TokenInfo> {
        self.revoke_token_impl(id, now_ms)
    }
    fn revoke_token_digest(&self, digest: &str, now_ms: i64) -> Result<bool> {
        self.revoke_token_digest_impl(digest, now_ms)
    }
    fn user_of_token(&self, digest: &str, now_ms: i64) -> Result<Option<User>> {
        self.user_of_token_impl(digest, now_ms)
    }
    fn set_admin(&self, name: &str, admin: bool) -> Result<()> {
        self.set_admin_impl(name, admin)
    }
    fn set_permission(
        &self,
        user: &str,
        kind: ResourceKind,
        resource: &str,
        role: Role,
    ) -> Result<Permission> {
        self.set_permission_impl(user, kind, resource, role)
    }
    fn remove_permission(&self, user: &str, kind: ResourceKind, resource: &str) -> Result<()> {
        self.remove_permission_impl(user, kind, resource)
    }
    fn permissions(&self, user: Option<&str>) -> Result<Vec<Permission>> {
        self.permissions_impl(user)
    }
    fn move_permissions(&self, kind: ResourceKind, from: &str, to: Option<&str>) -> Result<()> {
        self.move_permissions_impl(kind, from, to)
    }

    fn check_writable(&self) -> Result<()> {
        match &self.read_only {
            Some(why) => Err(StoreError::ReadOnly(why.clone())),
            None => Ok(()),
        }
    }

    fn artifact_files_under(
        &self,
        dir: &str,
    ) -> Result<Vec<labbook_core::artifact_version::ManifestEntry>> {
        SqliteStore::artifact_files_under(self, dir)
    }
    fn record_artifact_version(
        &self,
        new: &NewArtifactVersion,
        entries: Vec<labbook_core::artifact_version::ManifestEntry>,
        digest: Option<String>,
    ) -> Result<ArtifactVersion> {
        SqliteStore::record_artifact_version(self, new, entries, digest)
    }
    fn link_version_files(&self, version_id: i64, prefix: &str, now_ms: i64) -> Result<()> {
        SqliteStore::link_version_files(self, version_id, prefix, now_ms)
    }
    fn log_artifact_version(&self, new: &NewArtifactVersion) -> Result<LoggedVersion> {
        SqliteStore::log_artifact_version(self, new)
    }
    fn resolve_artifact(&self, project: Option<&str>, reference: &str) -> Result<ArtifactVersion> {
        SqliteStore::resolve_artifact(self, project, reference)
    }
    fn artifact_version_by_id(&self, id: i64) -> Result<ArtifactVersion> {
        SqliteStore::artifact_version_by_id(self, id)
    }
    fn artifact_names(
        &self,
        project: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<ArtifactName>> {
        SqliteStore::artifact_names(self, project, kind)
    }
    fn artifact_versions(&self, project: &str, name: &str) -> Result<Vec<ArtifactVersion>> {
        SqliteStore::artifact_versions(self, project, name)
    }
    fn artifact_manifest(
        &self,
        version_id: i64,
    ) -> Result<labbook_core::artifact_version::Manifest> {
        SqliteStore::artifact_manifest(self, version_id)
    }
    fn artifact_edges(&self, version_id: i64) -> Result<Vec<RunArtifactEdge>> {
        SqliteStore::artifact_edges(self, version_id)
    }
    fn run_artifact_versions(&self, run_id: &str) -> Result<Vec<(ArtifactVersion, EdgeRole)>> {
        SqliteStore::run_artifact_versions(self, run_id)
    }
    fn use_artifact_version(&self, run_id: &str, version_id: i64, now_ms: i64) -> Result<()> {
        SqliteStore::use_artifact_version(self, run_id, version_id, now_ms)
    }
    fn set_artifact_alias(&self, version_id: i64, alias: &str) -> Result<()> {
        SqliteStore::set_artifact_alias(self, version_id, alias)
    }
    fn remove_artifact_alias(&self, version: &ArtifactVersion, alias: &str) -> Result<bool> {
        SqliteStore::remove_artifact_alias(self, version, alias)
    }
    fn delete_artifact_version(&self, version_id: i64, now_ms: i64) -> Result<()> {
        SqliteStore::delete_artifact_version(self, version_id, now_ms)
    }
    fn download_artifact_version(
        &self,
        version: &ArtifactVersion,
        dest: &std::path::Path,
        placement: crate::versions::Placement,
    ) -> Result<()> {
        SqliteStore::download_artifact_version(self, version, dest, placement)
    }
    fn verify_artifact_references(&self, version: &ArtifactVersion) -> Result<Vec<ChangedFile>> {
        SqliteStore::verify_artifact_references(self, version)
    }
    fn lineage(&self, start: &LineageStart) -> Result<LineageGraph> {
        SqliteStore::lineage(self, start)
    }
    fn gc(&self, dry_run: bool, now_ms: i64) -> Result<GcReport> {
        SqliteStore::gc(self, dry_run, now_ms)
    }
    fn create_study(&self, new: &NewStudy, resume: bool) -> Result<(StudyRecord, bool)> {
        self.create_study_impl(new, resume)
    }
    fn study(&self, reference: &str, project: Option<&str>) -> Result<StudyRecord> {
        self.study_impl(reference, project)
    }
    fn study_by_pk(&self, pk: i64) -> Result<StudyRecord> {
        self.study_by_pk_impl(pk)
    }
    fn list_studies(&self, project: Option<&str>) -> Result<Vec<StudyRecord>> {
        self.list_studies_impl(project)
    }
    fn update_study(&self, pk: i64, patch: &StudyPatch) -> Result<StudyRecord> {
        self.update_study_impl(pk, patch)
    }
    fn delete_study(&self, pk: i64, now_ms: i64) -> Result<()> {
        self.delete_study_impl(pk, now_ms)
    }
    fn trials(&self, study: i64) -> Result<Vec<std::sync::Arc<TrialRecord>>> {
        self.trials_impl(study)
    }
    fn waiting_trials(&self, study: i64) -> Result<Vec<std::sync::Arc<TrialRecord>>> {
        self.waiting_trials_impl(study)
    }
    fn trial(&self, trial_id: i64) -> Result<TrialRecord> {
        self.trial_impl(trial_id)
    }
    fn claim_trial(
        &self,
        study: i64,
        worker: &Worker,
        now_ms: i64,
        alive: &dyn Fn(&TrialRecord) -> bool,
        decide: &mut Decide<'_>,
    ) -> Result<Claimed> {
        self.claim_trial_impl(study, worker, now_ms, alive, decide)
    }
    fn update_trial(&self, trial_id: i64, patch: &TrialPatch) -> Result<bool> {
        self.update_trial_impl(trial_id, patch)
    }
    fn create_run(&self, new: &NewRun) -> Result<RunRecord> {
        Self::validate_new_run(new)?;
        let id = self.write(|tx| Self::insert_run(tx, new))?;
        self.get_run(&id)
    }

    fn get_run(&self, id: &str) -> Result<RunRecord> {
        Self::load_run(&self.conn.lock(), id)
    }

    fn resolve_run(&self, reference: &str, project: Option<&str>) -> Result<RunRecord> {
        let conn = self.conn.lock();
        if let Ok(run) = Self::load_run(&conn, reference) {
            return Ok(run);
        }
        let project = project.unwrap_or("");
        let by_prefix = if crate::run_select::may_be_id_prefix(reference) {
            Self::load_runs(
                &conn,
                "r.id >= ?1 AND r.id < ?1 || '~' AND (?2 = '' OR p.name = ?2)",
                &[&reference, &project],
            )?
        } else {
            Vec::new()
        };
        let candidates = if by_prefix.is_empty() {
            Self::load_runs(
                &conn,
                "r.name = ?1 AND (?2 = '' OR p.name = ?2)",
                &[&reference, &project],
            )?
        } else {
            by_prefix
        };
        crate::run_select::the_one(reference, candidates)
    }

    fn update_run(&self, id: &str, patch: &RunPatch) -> Result<()> {
        self.write(|tx| {
            let pk = Self::run_pk(tx, id)?;
            Self::apply_patch(tx, pk, patch)
        })
    }

    fn visit_runs(&self, query: &RunQuery, visit: &mut dyn FnMut(&[&RunRecord])) -> Result<()> {
        let mut index = self.index.lock();
        {
            let conn = self.conn.lock();
            index.refresh(&conn)?;
            index.complete(&conn)?;
        }
        let selected = index.select(query, now_ms());
        visit(&index.records(&selected));
        Ok(())
    }

    fn list_runs_counted(&self, query: &RunQuery) -> Result<(Vec<RunRecord>, usize)> {
        let mut index = self.index.lock();
        let conn = self.conn.lock();
        // Before the index is loaded: a project's newest runs come by SQL's
        // own order, and a filter SQL narrows to a few runs is answered
        // from those alone.
        if index.is_cold()
            && let Some(found) = run_index::answer_newest(&conn, query)?
        {
            return Ok(found);
        }
        if index.should_narrow(query)
            && let Some(found) = run_index::answer_narrowed(&conn, query, NARROWED_MOST, now_ms())?
        {
            return Ok(found);
        }
        index.refresh(&conn)?;
        index.load_for(&conn, query)?;
        let selected = index.select(query, now_ms());
        let page = selected.iter().skip(query.offset);
        let page: Vec<i64> = match query.limit {
            Some(limit) => page.take(limit).copied().collect(),
            None => page.copied().collect(),
        };
        index.hydrate(&conn, &page)?;
        let runs = index.records(&page).into_iter().cloned().collect();
        Ok((runs, selected.len()))
    }

    fn changes_since(&self, seq: i64) -> Result<(i64, Vec<RunRecord>)> {
        let conn = self.conn.lock();
        let current: i64 =
            conn.query_row("SELECT value FROM change_seq WHERE id = 1", [], |r| {
                r.get(0)
            })?;
        if current == seq {
            return Ok((current, Vec::new()));
        }
        Ok((current, Self::load_runs(&conn, "r.seq > ?1", &[&seq])?))
    }

    fn list_projects(&self) -> Result<Vec<ProjectInfo>> {
        self.load_projects()
    }

    fn create_project(&self, new: &NewProject) -> Result<Project> {
        self.create_project_impl(new)
    }

    fn project(&self, reference: ProjectRef<'_>) -> Result<Project> {
        self.project_impl(reference)
    }

    fn update_project(&self, id: i64, patch: &ProjectPatch) -> Result<()> {
        self.update_project_impl(id, patch)
    }

    fn put_artifact(
        &self,
        path: &str,
        data: &mut dyn std::io::Read,
        now_ms: i64,
    ) -> Result<ArtifactEntry> {
        self.put_artifact_impl(path, data, now_ms)
    }

    fn open_artifact(&self, path: &str) -> Result<(Box<dyn std::io::Read + Send>, u64)> {
        self.open_artifact_impl(path)
    }

    fn list_artifacts(&self, dir: &str) -> Result<Vec<ArtifactEntry>> {
        self.list_artifacts_impl(dir)
    }

    fn delete_artifacts(&self, path: &str) -> Result<u64> {
        self.delete_artifacts_impl(path)
    }

    fn artifact_space_available(&self) -> Option<u64> {
        self.artifact_space_available_impl()
    }

    fn document(&self, kind: &str, key: &str) -> Result<Option<serde_json::Value>> {
        let conn = self.conn.lock();
        let body: Option<String> = conn
            .prepare_cached("SELECT body FROM documents WHERE kind = ?1 AND key = ?2")?
            .query_row([kind, key], |r| r.get(0))
            .optional()?;
        Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
    }

    fn documents(&self, kind: &str) -> Result<Vec<(String, serde_json::Value)>> {
        let conn = self.conn.lock();
        let mut stmt =
            conn.prepare_cached("SELECT key, body FROM documents WHERE kind = ?1 ORDER BY key")?;
        let rows = stmt.query_map([kind], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (key, body) = row?;
            out.push((key, serde_json::from_str(&body)?));
        }
        Ok(out)
    }

    fn update_document(
        &self,
        kind: &str,
        key: &str,
        update: &mut dyn FnMut(Option<serde_json::Value>) -> Result<Option<serde_json::Value>>,
    ) -> Result<Option<serde_json::Value>> {
        self.write(|tx| {
            let body: Option<String> = tx
                .prepare_cached("SELECT body FROM documents WHERE kind = ?1 AND key = ?2")?
                .query_row([kind, key], |r| r.get(0))
                .optional()?;
            let current = body.map(|b| serde_json::from_str(&b)).transpose()?;
            let next = update(current)?;
            match &next {
                Some(doc) => {
                    tx.prepare_cached(
                        "INSERT INTO documents (kind, key, body) VALUES (?1, ?2, ?3)
                         ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body",
                    )?
                    .execute(params![
                        kind,
                        key,
                        serde_json::to_string(doc)?
                    ])?;
                }
                None => {
                    tx.prepare_cached("DELETE FROM documents WHERE kind = ?1 AND key = ?2")?
                        .execute([kind, key])?;
                }
            }
            Ok(next)
        })
    }

    fn delete_run(&self, id: &str, now_ms: i64) -> Result<()> {
        self.write(|tx| {
            let pk = Self::run_pk(tx, id)?;
            tx.execute(
                "UPDATE runs SET deleted_ms = ?2 WHERE pk = ?1 AND deleted_ms IS NULL",
                params![pk, now_ms],
            )?;
            Ok(())
        })
    }

    fn purge_run(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            let pk = Self::run_pk(tx, id)?;
            // Metrics, output, environment and notes go by cascade.
            tx.execute("DELETE FROM applied_batches WHERE run_pk = ?1", [pk])?;
            tx.execute("DELETE FROM runs WHERE pk = ?1", [pk])?;
            // Other processes' run indexes learn of it by the sequence.
            tx.execute("UPDATE change_seq SET value = value + 1 WHERE id = 1", [])?;
            tx.execute(
                "INSERT INTO purged_runs (id, seq) VALUES (?1, (SELECT value FROM change_seq WHERE id = 1))
                 ON CONFLICT (id) DO UPDATE SET seq = excluded.seq",
                [id],
            )?;
            Ok(())
        })
    }

    fn restore_run(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            let pk = Self::run_pk(tx, id)?;
            tx.execute("UPDATE runs SET deleted_ms = NULL WHERE pk = ?1", [pk])?;
            Ok(())
        })
    }

    fn commit(&self, write: &WriteSet) -> Result<Option<Vec<i64>>> {
        self.write(|tx| {
            let run_pk = Self::run_pk(tx, &write.run_id)?;
            if let Some(batch) = &write.batch_id {
                let fresh = tx
                    .prepare_cached("INSERT INTO applied_batches (run_pk, batch_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING")?
                    .execute(params![run_pk, batch])?;
                if fresh == 0 {
                    return Ok(None);
                }
            }
            for id in &write.series.deletes {
                // Only a tail of this run: chunk ids are reused once freed, so
                // an id whose tail was compacted away may name another chunk.
                let deleted = tx
                    .prepare_cached(
                        "DELETE FROM chunks WHERE id = ?1 AND level < ?2
                         AND series_id IN (SELECT id FROM series WHERE run_pk = ?3)",
                    )?
                    .execute(params![id, SEALED_LEVEL, run_pk])?;
                // Rewriting tails that are gone would store their points twice.
                if deleted == 0 {
                    return Err(StoreError::StaleTails(format!("chunk {id} of run {} is gone", write.run_id)));
                }
            }
            let mut series_ids = HashMap::new();
            let mut inserted = Vec::with_capacity(write.series.inserts.len());
            for chunk in &write.series.inserts {
                let series_id = Self::series_id(tx, run_pk, &chunk.key, &mut series_ids)?;
                inserted.push(Self::insert_chunk(tx, series_id, chunk)?);
            }
            for (key, summary) in &write.series.summaries {
                let series_id = Self::series_id(tx, run_pk, key, &mut series_ids)?;
                Self::merge_summary(tx, series_id, summary)?;
            }
            for out in &write.output {
                tx.prepare_cached("INSERT INTO output (run_pk, stream, ts_ms, data) VALUES (?1, ?2, ?3, ?4)")?
                    .execute(params![run_pk, out.stream.code(), out.ts_ms, out.data])?;
            }
            if let Some(beat) = write.heartbeat_ms {
                // A writer that beats is alive: a run reaped as crashed while
                // it was unreachable runs again (before the patch, which may
                // end the run itself).
                tx.prepare_cached(
                    "UPDATE runs SET heartbeat_ms = MAX(heartbeat_ms, ?2),
                        ended_ms = CASE WHEN status = 'crashed' THEN NULL ELSE ended_ms END,
                        status = CASE WHEN status = 'crashed' THEN 'running' ELSE status END
                     WHERE pk = ?1",
                )?
                .execute(params![run_pk, beat])?;
            }
            if let Some(patch) = &write.patch {
                Self::apply_patch(tx, run_pk, patch)?;
            }
            Ok(Some(inserted))
        })
    }

    fn read_series(&self, run_id: &str, key: &str, range: StepRange) -> Result<SeriesColumns> {
        chunk_read::read_series(&self.chunk_source(run_id, key)?, range)
    }

    fn downsample(
        &self,
        run_id: &str,
        key: &str,
        range: StepRange,
        buckets: usize,
        timestamps: bool,
    ) -> Result<(SeriesColumns, usize)> {
        chunk_read::downsample(&self.chunk_source(run_id, key)?, range, buckets, timestamps)
    }

    fn key_catalog(&self, project: &str) -> Result<KeyCatalog> {
        key_catalog::read(&self.conn.lock(), project)
    }

    fn series_keys(&self, run_id: &str) -> Result<Vec<(String, u64)>> {
        let conn = self.conn.lock();
        let run_pk = Self::run_pk(&conn, run_id)?;
        let mut stmt = conn.prepare_cached(
            "SELECT key, count FROM series WHERE run_pk = ?1 AND count > 0 ORDER BY key",
        )?;
        let rows = stmt.query_map([run_pk], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn compact_run(&self, run_id: &str) -> Result<()> {
        self.write(|tx| {
            let run_pk = Self::run_pk(tx, run_id)?;
            let series: Vec<i64> = tx
                .prepare(
                    "SELECT DISTINCT c.series_id FROM chunks c JOIN series s ON s.id = c.series_id
                     WHERE s.run_pk = ?1 AND c.level < ?2",
                )?
                .query_map(params![run_pk, SEALED_LEVEL], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for series_id in series {
                let rows: Vec<(i64, Vec<u8>)> = tx
                    .prepare("SELECT id, data FROM chunks WHERE series_id = ?1 AND level < ?2 ORDER BY step_min, id")?
                    .query_map(params![series_id, SEALED_LEVEL], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                for (id, _) in &rows {
                    tx.prepare_cached("DELETE FROM chunks WHERE id = ?1")?.execute([id])?;
                }
                let tails: Vec<Vec<u8>> = rows.into_iter().map(|(_, data)| data).collect();
                for chunk in crate::series::seal_tails(&tails)? {
                    Self::insert_chunk(tx, series_id, &chunk)?;
                }
            }
            Ok(())
        })
    }

    fn set_environment(&self, run_id: &str, env: &serde_json::Value) -> Result<()> {
        self.write(|tx| {
            let pk = Self::run_pk(tx, run_id)?;
            let existing: Option<String> =
                tx.query_row("SELECT env FROM run_env WHERE run_pk = ?1", [pk], |r| r.get(0)).optional()?;
            let merged = crate::run_fields::merged_environment(existing.as_deref(), env)?;
            tx.execute(
                "INSERT INTO run_env (run_pk, env) VALUES (?1, ?2) ON CONFLICT (run_pk) DO UPDATE SET env = excluded.env",
                params![pk, serde_json::to_string(&merged)?],
            )?;
            Ok(())
        })
    }

    fn environment(&self, run_id: &str) -> Result<Option<serde_json::Value>> {
        let conn = self.conn.lock();
        let pk = Self::run_pk(&conn, run_id)?;
        let text: Option<String> = conn
            .query_row("SELECT env FROM run_env WHERE run_pk = ?1", [pk], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
    }

    fn read_output(&self, run_id: &str) -> Result<Vec<OutputChunk>> {
        let conn = self.conn.lock();
        let pk = Self::run_pk(&conn, run_id)?;
        let mut stmt = conn.prepare_cached(
            "SELECT stream, ts_ms, data FROM output WHERE run_pk = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([pk], |r| {
            Ok(OutputChunk {
                stream: OutputStream::from_code(r.get(0)?),
                ts_ms: r.get(1)?,
                data: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn add_note(&self, run_id: &str, text: &str, now_ms: i64) -> Result<()> {
        crate::run_fields::check_run_note(text)?;
        self.write(|tx| {
            let (pk, project_id): (i64, i64) = tx
                .query_row("SELECT pk, project_id FROM runs WHERE id = ?1", [run_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .ok_or_else(|| StoreError::NotFound { what: "run", id: run_id.to_string() })?;
            tx.execute(
                "INSERT INTO notebook (project_id, run_pk, created_ms, text) VALUES (?1, ?2, ?3, ?4)",
                params![project_id, pk, now_ms, text],
            )?;
            Ok(())
        })
    }

    fn notes(&self, run_id: &str) -> Result<Vec<NoteEntry>> {
        let conn = self.conn.lock();
        let pk = Self::run_pk(&conn, run_id)?;
        let mut stmt = conn.prepare_cached(
            "SELECT created_ms, text FROM notebook WHERE run_pk = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([pk], |r| {
            Ok(NoteEntry {
                created_ms: r.get(0)?,
                text: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn project_notes(&self, project: &str) -> Result<Vec<NotebookNote>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT n.id, n.created_ms, n.text, r.id FROM notebook n JOIN projects p ON p.id = n.project_id
             LEFT JOIN runs r ON r.pk = n.run_pk WHERE p.name = ?1 ORDER BY n.created_ms DESC, n.id DESC",
        )?;
        let rows = stmt.query_map([project], |r| {
            Ok(NotebookNote {
                id: r.get(0)?,
                created_ms: r.get(1)?,
                text: r.get(2)?,
                run_id: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn add_project_note(
        &self,
        project: &str,
        text: &str,
        run_id: Option<&str>,
        now_ms: i64,
    ) -> Result<NotebookNote> {
        crate::run_fields::check_project_note(text)?;
        let id = self.write(|tx| {
            let project_id: i64 = tx
                .query_row("SELECT id FROM projects WHERE name = ?1", [project], |r| r.get(0))
                .optional()?
                .ok_or_else(|| StoreError::NotFound { what: "project", id: project.to_string() })?;
            let run_pk = match run_id {
                Some(id) => Some(Self::run_pk(tx, id)?),
                None => None,
            };
            tx.execute(
                "INSERT INTO notebook (project_id, run_pk, created_ms, text) VALUES (?1, ?2, ?3, ?4)",
                params![project_id, run_pk, now_ms, text],
            )?;
            Ok(tx.last_insert_rowid())
        })?;
        Ok(NotebookNote {
            id,
            created_ms: now_ms,
            text: text.to_string(),
            run_id: run_id.map(str::to_string),
        })
    }

    fn reap_stale_runs(
        &self,
        now_ms: i64,
        this_host: Option<&str>,
        pid_alive: &dyn Fn(u32) -> bool,
    ) -> Result<Vec<String>> {
        // A read-only store is shown as it was written; a copy's runs may
        // well be alive on the machine they were copied from.
        if self.read_only.is_some() {
            return Ok(Vec::new());
        }
        let running = Self::load_runs(&self.conn.lock(), "r.status = 'running'", &[])?;
        let timeout_ms = crate::heartbeat_timeout_ms();
        let mut reaped = Vec::new();
        for run in running
            .iter()
            .filter(|r| r.is_stale(now_ms, timeout_ms, this_host, pid_alive))
        {
            let changed = self.write(|tx| {
                Ok(tx.execute(
                    "UPDATE runs SET status = 'crashed', ended_ms = heartbeat_ms WHERE id = ?1 AND status = 'running'",
                    [&run.id],
                )?)
            })?;
            if changed == 1 {
                self.compact_run(&run.id)?;
                reaped.push(run.id.clone());
            }
        }
        Ok(reaped)
    }
}
