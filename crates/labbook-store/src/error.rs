use thiserror::Error;

use labbook_core::ValidationError;
use labbook_core::query::QueryError;

use crate::codec::CodecError;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{reference:?} matches several {what}: {candidates}; use the full id")]
    Ambiguous {
        what: &'static str,
        reference: String,
        candidates: String,
    },
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("{0}")]
    Conflict(String),
    #[error("the disk is full: {0}; free space and retry (nothing already stored was changed)")]
    DiskFull(String),
    #[error("the store is busy (another process held the write lock too long): {0}")]
    Busy(String),
    #[error("store error: {0}")]
    Sqlite(rusqlite::Error),
    /// The database server refused or failed a statement for a reason no
    /// other variant names.
    #[error("database error: {0}")]
    Database(String),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// The store's schema is newer than this labbook knows: reading it
    /// could answer wrongly, and writing it could break it.
    #[error(
        "this store was written by a newer labbook (schema version {found}; this one knows up to {known}): upgrade labbook to open it"
    )]
    NewerStore { found: i64, known: usize },
    /// The store can be read but not written: its files or its filesystem
    /// are read-only to this process.
    #[error(
        "the store is read-only ({0}): it can be read, not changed; `labbook backup DEST` copies it where it can be"
    )]
    ReadOnly(String),
    /// SQLite found the database file malformed. A store copied file by
    /// file while a run was writing it is the usual cause.
    #[error(
        "the store's database is damaged ({0}); if it was copied while runs were writing to it, copy it again with `labbook backup DEST`, which takes a consistent copy of a store in use; otherwise `sqlite3 labbook.db .recover` salvages what it can"
    )]
    Damaged(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// A writer's open chunks were compacted by someone else (a reaper that
    /// thought its process dead): its view of them is stale, nothing was
    /// written, and it must start its tails afresh.
    #[error("the run's open chunks were compacted while its writer was away: {0}")]
    StaleTails(String),
    /// A labbook server could not be reached, or failed; the write may be
    /// repeated.
    #[error("{0}")]
    Remote(String),
    /// Storage the store depends on (an artifact bucket) did not answer:
    /// nothing was changed, and the call may be repeated later.
    #[error("{0}")]
    Unavailable(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::DiskFull(e.to_string()),
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                StoreError::Busy(e.to_string())
            }
            Some(ErrorCode::ReadOnly) => StoreError::ReadOnly(
                "its files or its filesystem may not be written by this process".into(),
            ),
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                StoreError::Damaged(e.to_string())
            }
            _ => StoreError::Sqlite(e),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Internal(format!("stored JSON does not parse: {e}"))
    }
}

impl StoreError {
    /// Whether retrying the same write later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::DiskFull(_) | StoreError::Busy(_) | StoreError::Io { .. }
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
