//! A consistent copy of a store that runs may be writing (`labbook backup`).
//!
//! Copying `.labbook/` file by file while a run logs can tear it: a
//! checkpoint may move pages from the write-ahead log into the database
//! between the copy of one and of the other, which no recovery can mend.
//! The database is copied instead by `VACUUM INTO`, one read transaction
//! that sees one committed state, while writers carry on. The other files
//! (artifact blobs, reports, sweep logs) are immutable or advisory; they are
//! copied before the database and again after it, so every blob the copied
//! database names is there: a blob only goes (gc) once no committed state
//! names it. The copy is built beside its destination and renamed into
//! place, so a copy cut short is never mistaken for a store.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{DB_FILE, SqliteStore};
use crate::error::{Result, StoreError};
use crate::private::{Modes, create_store_dir};

/// What `backup` wrote.
#[derive(Debug, Default, Clone, Serialize)]
pub struct BackupReport {
    pub dest: PathBuf,
    /// The copied database, compacted: free pages are left out.
    pub database_bytes: u64,
    /// Files besides the database: artifact blobs, reports, sweep logs.
    pub files: u64,
    pub file_bytes: u64,
}

fn io_error(context: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |source| StoreError::Io { context, source }
}

impl SqliteStore {
    /// Copies the store into `dest`, a directory that must not exist yet,
    /// as one consistent state, while other processes go on writing it.
    pub fn backup(&self, dest: &Path) -> Result<BackupReport> {
        if dest.symlink_metadata().is_ok() {
            return Err(StoreError::Conflict(format!(
                "{} already exists: give a new directory to back up into",
                dest.display()
            )));
        }
        let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
            return Err(StoreError::Conflict(format!(
                "{} cannot be a store directory",
                dest.display()
            )));
        };
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        std::fs::create_dir_all(parent)
            .map_err(io_error(format!("cannot create {}", parent.display())))?;
        let partial = parent.join(format!(
            ".{}.partial-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&partial);
        // The copy is its maker's to write, whatever the original allowed.
        let store = Modes::of(&self.dir);
        let modes = Modes {
            file: store.file | 0o600,
            dir: store.dir | 0o700,
        };
        create_store_dir(&partial, modes.dir)
            .map_err(io_error(format!("cannot create {}", partial.display())))?;
        let copied = self.backup_into(&partial, &modes).and_then(|mut report| {
            std::fs::rename(&partial, dest).map_err(io_error(format!(
                "cannot move the copy into place at {}",
                dest.display()
            )))?;
            if let Ok(dir) = std::fs::File::open(parent) {
                let _ = dir.sync_all();
            }
            report.dest = dest.to_path_buf();
            Ok(report)
        });
        if copied.is_err() {
            let _ = std::fs::remove_dir_all(&partial);
        }
        copied
    }

    fn backup_into(&self, partial: &Path, modes: &Modes) -> Result<BackupReport> {
        let mut report = BackupReport::default();
        self.copy_store_files(partial, modes, &mut report)?;
        let db = partial.join(DB_FILE);
        // VACUUM INTO takes an empty file: made first, it has the store's mode.
        modes
            .create_new(&db)
            .map_err(io_error(format!("cannot create {}", db.display())))?;
        let target = db.to_str().ok_or_else(|| {
            StoreError::Conflict(format!(
                "{} is not valid UTF-8, which SQLite needs of a file name",
                db.display()
            ))
        })?;
        self.conn.lock().execute("VACUUM INTO ?1", [target])?;
        self.copy_store_files(partial, modes, &mut report)?;
        let file =
            std::fs::File::open(&db).map_err(io_error(format!("cannot open {}", db.display())))?;
        file.sync_all()
            .map_err(io_error(format!("cannot sync {}", db.display())))?;
        report.database_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        crate::blobs::sync_filesystem(partial)
            .map_err(io_error(format!("cannot sync {}", partial.display())))?;
        Ok(report)
    }

    /// Copies every regular file of the store but its database and the
    /// artifacts' temporary files into `into`, skipping those already there.
    /// Symbolic links are not followed: none belongs in a store.
    fn copy_store_files(
        &self,
        into: &Path,
        modes: &Modes,
        report: &mut BackupReport,
    ) -> Result<()> {
        let skipped = [
            PathBuf::from(DB_FILE),
            PathBuf::from(format!("{DB_FILE}-wal")),
            PathBuf::from(format!("{DB_FILE}-shm")),
            Path::new("artifacts").join("tmp"),
        ];
        let mut pending = vec![PathBuf::new()];
        while let Some(rel) = pending.pop() {
            let from = self.dir.join(&rel);
            let entries = std::fs::read_dir(&from)
                .map_err(io_error(format!("cannot read {}", from.display())))?;
            for entry in entries {
                let entry = entry.map_err(io_error(format!("cannot read {}", from.display())))?;
                let rel = rel.join(entry.file_name());
                if skipped.contains(&rel) {
                    continue;
                }
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                let to = into.join(&rel);
                if kind.is_dir() {
                    modes
                        .create_dir_all(&to)
                        .map_err(io_error(format!("cannot create {}", to.display())))?;
                    pending.push(rel);
                } else if kind.is_file() && to.symlink_metadata().is_err() {
                    let bytes = std::fs::copy(entry.path(), &to).map_err(io_error(format!(
                        "cannot copy {} to {}",
                        entry.path().display(),
                        to.display()
                    )))?;
                    report.files += 1;
                    report.file_bytes += bytes;
                }
            }
        }
        Ok(())
    }
}
