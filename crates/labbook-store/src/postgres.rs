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

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{IsolationLevel, NoTls, Row, Statement};

use crate::error::{Result, StoreError};

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
    pool: r2d2::Pool<Manager>,
    /// The database as messages name it: host, port and name, never the
    /// password.
    shown: String,
    index: Mutex<run_index::RunIndex>,
    /// Where artifact contents live (`artifacts`).
    blobs: Mutex<std::sync::Arc<dyn crate::blobs::Blobs>>,
    /// Each study's trials as this process last read them (`studies`).
    trial_cache: Mutex<HashMap<i64, crate::studies::TrialCache>>,
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

impl Db<'_> {
    fn prepared(&mut self, sql: &str) -> Result<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.tx.prepare(sql)?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
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
        if config.get_password().is_none()
            && let Ok(password) = std::env::var("PGPASSWORD")
        {
            config.password(password);
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
            pool,
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
        self.pool.get().map_err(|e| {
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
