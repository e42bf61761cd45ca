//! Artifacts in PostgreSQL: the same index as the SQLite store's (a path →
//! content hash table), the contents in a bucket or a shared folder that
//! every replica reaches (`crate::blobs`), recorded once in `settings`.
//!
//! SQLite places and removes blobs under its one write lock, so a delete
//! can never remove contents between an upload placing them and recording
//! them. Here each content hash has its own lock (an advisory lock held to
//! the end of the transaction), taken by whoever places it and by whoever
//! removes it; several hashes are always locked in sorted order.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use labbook_core::artifact::normalize_artifact_path;

use super::{Db, PgStore};
use crate::blobs::{ArtifactLocation, Blobs};
use crate::error::{Result, StoreError};
use crate::random_bits;
use crate::types::ArtifactEntry;
use crate::versions::{FreedBlob, GcReport};

/// Blobs removed per transaction: each removal holds that blob's lock, so
/// this keeps one transaction short.
const BLOBS_PER_TRANSACTION: usize = 64;

/// Waits for the lock of one content hash, held to the end of `db`'s
/// transaction.
pub(super) fn lock_blob(db: &mut Db<'_>, hash: &str) -> Result<()> {
    db.exec(
        "SELECT pg_advisory_xact_lock(hashtextextended('blob/' || $1, 0))",
        &[&hash],
    )?;
    Ok(())
}

/// Whether anything live points at the contents `hash`.
fn referenced(db: &mut Db<'_>, hash: &str) -> Result<bool> {
    Ok(db
        .row(
            "SELECT 1 FROM artifacts WHERE hash = $1
             UNION ALL SELECT 1 FROM artifact_files WHERE hash = $1 AND reference IS NULL
             LIMIT 1",
            &[&hash],
        )?
        .is_some())
}

/// What a store without a recorded location answers for contents.
pub(super) fn no_location() -> Box<dyn Blobs> {
    crate::blobs::unreachable(
        "this team server keeps no artifact contents: start it with --artifacts s3://bucket/prefix or file:///shared/path"
            .into(),
        ArtifactLocation::InStore,
    )
}

/// Where a process spools uploads before they go to `location`: beside a
/// shared folder's contents (so placing one is a rename), else this
/// machine's temporary folder.
pub(super) fn spool_for(location: &ArtifactLocation) -> PathBuf {
    match location {
        ArtifactLocation::Folder(folder) => folder.join("tmp"),
        _ => std::env::temp_dir().join(format!("labbook-spool-{}", this_uid())),
    }
}

/// The modes of files in the spool `dir`: a shared folder's own, or
/// private ones in this machine's temporary folder.
pub(super) fn spool_modes(dir: &std::path::Path) -> crate::private::Modes {
    match dir.parent() {
        Some(parent) if parent.is_dir() && !parent.starts_with(std::env::temp_dir()) => {
            crate::private::Modes::of(parent)
        }
        _ => crate::private::Modes::private(),
    }
}

/// This process's user id, so that two users' servers on one machine
/// never share a spool.
fn this_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

impl PgStore {
    pub(super) fn blobs(&self) -> Arc<dyn Blobs> {
        self.blobs.lock().clone()
    }

    /// Where this database's artifact contents live, as recorded.
    pub fn artifact_location(&self) -> ArtifactLocation {
        self.blobs().location()
    }

    /// Keeps the artifact contents at `location` from now on, and records it
    /// for every replica. A database whose contents already live elsewhere
    /// is refused, naming both places, rather than split between them.
    pub fn use_artifact_location(&self, location: &ArtifactLocation) -> Result<()> {
        if *location == ArtifactLocation::InStore {
            return Err(labbook_core::ValidationError::new(
                "artifacts",
                "a team server on PostgreSQL has no store folder: use s3://bucket/prefix or file:///shared/path",
            )
            .into());
        }
        if let ArtifactLocation::Folder(folder) = location {
            crate::private::Modes::private()
                .create_dir_all(folder)
                .map_err(|source| StoreError::Io {
                    context: format!("cannot create {}", folder.display()),
                    source,
                })?;
        }
        let blobs: Arc<dyn Blobs> = crate::blobs::connect(&spool_for(location), location).into();
        // A bucket that cannot be reached is said now, not at the first upload.
        blobs.check()?;
        let url = location.url();
        self.write(|db| {
            db.exec(
                "SELECT pg_advisory_xact_lock(hashtextextended('settings/artifacts', 0))",
                &[],
            )?;
            let recorded: Option<String> = db
                .row("SELECT value FROM settings WHERE key = 'artifacts'", &[])?
                .map(|r| r.try_get(0))
                .transpose()?;
            match recorded {
                Some(current) if current == url => Ok(()),
                Some(current) => {
                    let held: i64 = db
                        .one(
                            "SELECT (SELECT COUNT(*) FROM artifacts) + (SELECT COUNT(*) FROM artifact_files WHERE reference IS NULL)",
                            &[],
                        )?
                        .try_get(0)?;
                    if held > 0 {
                        return Err(StoreError::Conflict(format!(
                            "this database already keeps artifacts in {current} ({held} files); it cannot move them to {url}: \
                             serve it with --artifacts {current}"
                        )));
                    }
                    db.exec("UPDATE settings SET value = $1 WHERE key = 'artifacts'", &[&url])?;
                    Ok(())
                }
                None => {
                    db.exec(
                        "INSERT INTO settings (key, value) VALUES ('artifacts', $1)",
                        &[&url],
                    )?;
                    Ok(())
                }
            }
        })?;
        *self.blobs.lock() = blobs;
        Ok(())
    }

    /// The blobs of the location the database records, or the answer for
    /// none.
    pub(super) fn recorded_blobs(&self) -> Result<Box<dyn Blobs>> {
        let recorded: Option<String> = self.read(|db| {
            Ok(db
                .row("SELECT value FROM settings WHERE key = 'artifacts'", &[])?
                .map(|r| r.try_get(0))
                .transpose()?)
        })?;
        let Some(text) = recorded else {
            return Ok(no_location());
        };
        let location = ArtifactLocation::parse(&text).map_err(|problem| {
            StoreError::Damaged(format!(
                "the recorded artifact location {text:?}: {problem}"
            ))
        })?;
        Ok(crate::blobs::connect(&spool_for(&location), &location))
    }

    pub(super) fn spool(&self) -> Result<PathBuf> {
        let dir = spool_for(&self.artifact_location());
        spool_modes(&dir)
            .create_dir_all(&dir)
            .map_err(|source| StoreError::Io {
                context: format!("cannot create the upload spool {}", dir.display()),
                source,
            })?;
        Ok(dir)
    }

    pub fn artifact_space_available(&self) -> Option<u64> {
        self.blobs().space_available()
    }

    pub fn put_artifact(
        &self,
        path: &str,
        data: &mut dyn Read,
        now_ms: i64,
    ) -> Result<ArtifactEntry> {
        let path = normalize_artifact_path(path)?;
        if path.is_empty() {
            return Err(labbook_core::ValidationError::new("path", "names no file").into());
        }
        let blobs = self.blobs();
        let spool = self.spool()?;
        let tmp = spool.join(format!("{:016x}", random_bits()));
        let (hash, size) =
            crate::blobs::spool_hashed(data, &tmp, spool_modes(&spool)).map_err(|source| {
                StoreError::Io {
                    context: format!("cannot store artifact {path:?}"),
                    source,
                }
            })?;
        // The upload happens before any lock, so a large file holds up no one.
        let staged = blobs.stage(&tmp, &hash);
        let replaced: Result<Option<String>> = staged.and_then(|_| {
            self.write(|db| {
                lock_blob(db, &hash)?;
                blobs.place(&tmp, &hash)?;
                let old: Option<String> = db
                    .row(
                        "SELECT hash FROM artifacts WHERE path = $1 FOR UPDATE",
                        &[&path],
                    )?
                    .map(|r| r.try_get(0))
                    .transpose()?;
                db.exec(
                    "INSERT INTO artifacts (path, hash, size, created_ms) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (path) DO UPDATE SET hash = excluded.hash, size = excluded.size,
                         created_ms = excluded.created_ms, version_id = NULL",
                    &[&path, &hash, &(size as i64), &now_ms],
                )?;
                Ok(old.filter(|h| *h != hash))
            })
        });
        let _ = std::fs::remove_file(&tmp);
        if let Some(old) = replaced? {
            self.drop_unreferenced_blobs(&[old])?;
        }
        Ok(ArtifactEntry {
            path,
            is_dir: false,
            size,
        })
    }

    pub fn open_artifact(&self, path: &str) -> Result<(Box<dyn Read + Send>, u64)> {
        let path = normalize_artifact_path(path)?;
        let found = self.read(|db| {
            db.row("SELECT hash, size FROM artifacts WHERE path = $1", &[&path])?
                .map(|r| Ok::<_, StoreError>((r.try_get::<_, String>(0)?, r.try_get::<_, i64>(1)?)))
                .transpose()
        })?;
        let (hash, size) = found.ok_or(StoreError::NotFound {
            what: "artifact",
            id: path.clone(),
        })?;
        let reader = self.blobs().open(&hash).map_err(|e| match e {
            StoreError::Io { source, .. } => StoreError::Io {
                context: format!("the contents of artifact {path:?} are missing"),
                source,
            },
            e => e,
        })?;
        Ok((reader, size as u64))
    }

    pub fn list_artifacts(&self, dir: &str) -> Result<Vec<ArtifactEntry>> {
        let dir = normalize_artifact_path(dir)?;
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        // '/' + 1 is '0': every path under `prefix` sorts before `prefix0`
        // in the bytewise collation the paths are compared in.
        let upper = format!("{dir}0");
        let rows = self.read(|db| {
            db.rows(
                "SELECT path, size FROM artifacts
                 WHERE path COLLATE \"C\" >= $1 AND ($2 = '' OR path COLLATE \"C\" < $3)
                 ORDER BY path COLLATE \"C\"",
                &[&prefix, &dir, &upper],
            )?
            .iter()
            .map(|r| Ok((r.try_get::<_, String>(0)?, r.try_get::<_, i64>(1)? as u64)))
            .collect::<Result<Vec<_>>>()
        })?;
        Ok(ArtifactEntry::listing(&prefix, rows))
    }

    pub fn delete_artifacts(&self, path: &str) -> Result<u64> {
        let path = normalize_artifact_path(path)?;
        if path.is_empty() {
            return Err(labbook_core::ValidationError::new(
                "path",
                "the artifact root cannot be deleted: name a file or a folder",
            )
            .into());
        }
        let upper = format!("{path}0");
        let prefix = format!("{path}/");
        let hashes: Vec<String> = self.write(|db| {
            db.rows(
                "DELETE FROM artifacts WHERE path = $1 OR (path COLLATE \"C\" >= $2 AND path COLLATE \"C\" < $3)
                 RETURNING hash",
                &[&path, &prefix, &upper],
            )?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
        })?;
        let count = hashes.len() as u64;
        self.drop_unreferenced_blobs(&hashes)?;
        Ok(count)
    }

    /// Removes the blobs of `hashes` nothing points at any more, each under
    /// its own lock. A crash before this leaves them unreferenced: space,
    /// never a wrong answer; `gc` frees them.
    pub(super) fn drop_unreferenced_blobs(&self, hashes: &[String]) -> Result<()> {
        let mut hashes = hashes.to_vec();
        hashes.sort_unstable();
        hashes.dedup();
        for batch in hashes.chunks(BLOBS_PER_TRANSACTION) {
            let removed = self.remove_unreferenced(batch)?;
            // Storage that takes no removal (a bucket that went away) is not
            // asked again batch after batch: `gc` frees the rest later.
            if !removed.is_empty() && removed.iter().all(|(_, gone)| !gone) {
                break;
            }
        }
        Ok(())
    }

    /// Of `batch` (sorted), removes the blobs nothing references, each
    /// under its lock: each one considered, and whether it went.
    fn remove_unreferenced<'h>(&self, batch: &'h [String]) -> Result<Vec<(&'h str, bool)>> {
        let blobs = self.blobs();
        self.write(|db| {
            let mut unreferenced = Vec::new();
            for hash in batch {
                lock_blob(db, hash)?;
                if !referenced(db, hash)? {
                    unreferenced.push(hash.as_str());
                }
            }
            let removed = blobs.remove(&unreferenced);
            Ok(unreferenced.into_iter().zip(removed).collect())
        })
    }

    /// Frees what nothing live references: the rows of soft-deleted
    /// versions, then every blob no row points at, then spool files left
    /// by writers that died. `dry_run` only reports.
    pub fn gc(&self, dry_run: bool, now_ms: i64) -> Result<GcReport> {
        let mut report = GcReport {
            dry_run,
            ..GcReport::default()
        };
        report.versions_purged = self.read(|db| {
            db.rows(
                "SELECT n.name, v.version FROM artifact_versions v JOIN artifact_names n ON n.id = v.name_id
                 WHERE v.deleted_ms IS NOT NULL AND v.purged_ms IS NULL ORDER BY n.name, v.version",
                &[],
            )?
            .iter()
            .map(|r| Ok(format!("{}:v{}", r.try_get::<_, String>(0)?, r.try_get::<_, i64>(1)?)))
            .collect::<Result<Vec<_>>>()
        })?;
        if !dry_run && !report.versions_purged.is_empty() {
            self.write(|db| {
                db.exec(
                    "DELETE FROM artifact_files WHERE version_id IN
                         (SELECT id FROM artifact_versions WHERE deleted_ms IS NOT NULL AND purged_ms IS NULL)",
                    &[],
                )?;
                db.exec(
                    "UPDATE artifact_versions SET purged_ms = $1 WHERE deleted_ms IS NOT NULL AND purged_ms IS NULL",
                    &[&now_ms],
                )?;
                Ok(())
            })?;
        }
        let referenced: std::collections::HashSet<String> = self.read(|db| {
            db.rows(
                "SELECT hash FROM artifacts
                 UNION SELECT f.hash FROM artifact_files f JOIN artifact_versions v ON v.id = f.version_id
                 WHERE f.reference IS NULL AND v.deleted_ms IS NULL",
                &[],
            )?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
        })?;
        let mut candidates = Vec::new();
        for (hash, size) in self.blobs().list()? {
            report.blobs_scanned += 1;
            if !referenced.contains(&hash) {
                candidates.push(FreedBlob { hash, size });
            }
        }
        candidates.sort_by(|a, b| a.hash.cmp(&b.hash));
        if dry_run {
            report.bytes = candidates.iter().map(|b| b.size).sum();
            report.blobs = candidates;
        } else {
            for batch in candidates.chunks(BLOBS_PER_TRANSACTION) {
                let hashes: Vec<String> = batch.iter().map(|b| b.hash.clone()).collect();
                let removed = self.remove_unreferenced(&hashes)?;
                for blob in batch {
                    if removed.iter().any(|(h, gone)| *gone && *h == blob.hash) {
                        report.bytes += blob.size;
                        report.blobs.push(blob.clone());
                    }
                }
            }
        }
        report.stale_temp_files =
            crate::blobs::sweep_stale_temps(&spool_for(&self.artifact_location()), dry_run);
        Ok(report)
    }
}
