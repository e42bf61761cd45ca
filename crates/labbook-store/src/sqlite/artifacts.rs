//! Artifacts: a table maps each path to a content hash; the contents live
//! once per hash where the store keeps them (`crate::blobs`). A write lands
//! in a temporary file, is synced, placed, and only then recorded, so a
//! crash leaves at worst an unreferenced blob, never a path without
//! contents.
//!
//! Nothing under `artifacts/` is reached through a symbolic link: a link
//! planted there (by another local user of a shared store, or a restored
//! backup) must not make the server read or write outside the store.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{OptionalExtension, params};

use labbook_core::artifact::normalize_artifact_path;

use super::SqliteStore;
use crate::Store;
use crate::blobs::{ArtifactLocation, Blobs, LOCATION_FILE};
use crate::error::{Result, StoreError};
use crate::private::Modes;
use crate::random_bits;
use crate::types::ArtifactEntry;

fn io_error(context: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |source| StoreError::Io { context, source }
}

impl SqliteStore {
    fn artifacts_dir(&self) -> PathBuf {
        self.dir.join("artifacts")
    }

    /// Where artifact contents live, as of now.
    pub(super) fn blobs(&self) -> Arc<dyn Blobs> {
        self.blobs.lock().clone()
    }

    /// Where this store keeps its artifacts' contents.
    pub fn artifact_location(&self) -> ArtifactLocation {
        self.blobs().location()
    }

    /// Keeps this store's artifacts' contents at `location` from now on,
    /// and records it, so every later opening of the store finds them. A
    /// store keeps one location: one that already holds contents elsewhere
    /// is refused rather than left half here, half there.
    pub fn use_artifact_location(&self, location: &ArtifactLocation) -> Result<()> {
        let current = self.artifact_location();
        if current == *location {
            return Ok(());
        }
        self.check_writable()?;
        // Counted, never guessed: a store whose contents cannot be listed
        // is not moved.
        let recorded: i64 = self.conn.lock().query_row(
            "SELECT (SELECT COUNT(*) FROM artifacts) + (SELECT COUNT(*) FROM artifact_files WHERE reference IS NULL)",
            [],
            |r| r.get(0),
        )?;
        let held = self.blobs().list()?.len() + recorded as usize;
        if held > 0 {
            return Err(StoreError::Conflict(format!(
                "this store already keeps artifacts in {} ({held} files); it cannot move them to {}: \
                 serve it with --artifacts {} or start a new store",
                current.url(),
                location.url(),
                current.url()
            )));
        }
        if let ArtifactLocation::Folder(folder) = location {
            Modes::of(&self.dir)
                .create_dir_all(folder)
                .map_err(io_error(format!("cannot create {}", folder.display())))?;
        }
        let blobs: Arc<dyn Blobs> = crate::blobs::connect(&self.dir, location).into();
        // A bucket that cannot be reached is said now, not at the first upload.
        blobs.check()?;
        let dir = self.artifacts_dir();
        self.real_dir(&dir)?;
        let file = dir.join(LOCATION_FILE);
        let tmp = dir.join(format!(".{LOCATION_FILE}.{:016x}", random_bits()));
        (|| -> std::io::Result<()> {
            let mut out = Modes::of(&self.dir).create_new(&tmp)?;
            out.write_all(format!("{}\n", location.url()).as_bytes())?;
            out.sync_all()?;
            std::fs::rename(&tmp, &file)?;
            File::open(&dir)?.sync_all()
        })()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .map_err(io_error(format!(
            "cannot record the artifact location in {}",
            file.display()
        )))?;
        *self.blobs.lock() = blobs;
        Ok(())
    }

    /// Creates `dir` (inside the store) as a real folder, refusing one that
    /// is, or lies under, a symbolic link below the store directory.
    pub(super) fn real_dir(&self, dir: &Path) -> Result<()> {
        crate::blobs::real_dir_below(&self.dir, dir)
    }

    pub(super) fn artifact_space_available_impl(&self) -> Option<u64> {
        self.blobs().space_available()
    }

    pub(super) fn put_artifact_impl(
        &self,
        path: &str,
        data: &mut dyn Read,
        now_ms: i64,
    ) -> Result<ArtifactEntry> {
        let path = normalize_artifact_path(path)?;
        if path.is_empty() {
            return Err(labbook_core::ValidationError::new("path", "names no file").into());
        }
        let tmp_dir = self.artifacts_dir().join("tmp");
        self.real_dir(&tmp_dir)?;
        let modes = Modes::of(&self.dir);
        let tmp = tmp_dir.join(format!("{:016x}", random_bits()));
        let (hash, size) =
            crate::blobs::spool_hashed(data, &tmp, modes).map_err(|source| StoreError::Io {
                context: format!("cannot store artifact {path:?}"),
                source,
            })?;
        let blobs = self.blobs();
        // An upload to a bucket happens here, before the write lock, so a
        // large file never holds up other writers.
        if let Err(e) = blobs.stage(&tmp, &hash) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        // Placing happens under the write lock, as blob removal does, so
        // a concurrent delete of the same contents cannot remove the blob
        // between its placing and its recording.
        let replaced: Option<String> = self.write(|tx| {
            blobs.place(&tmp, &hash)?;
            let old: Option<String> = tx
                .prepare_cached("SELECT hash FROM artifacts WHERE path = ?1")?
                .query_row([&path], |r| r.get(0))
                .optional()?;
            tx.prepare_cached(
                "INSERT INTO artifacts (path, hash, size, created_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (path) DO UPDATE SET hash = excluded.hash, size = excluded.size,
                     created_ms = excluded.created_ms, version_id = NULL",
            )?
            .execute(params![path, hash, size as i64, now_ms])?;
            Ok(old.filter(|h| *h != hash))
        })?;
        if let Some(old) = replaced {
            self.drop_unreferenced_blobs(&[old])?;
        }
        Ok(ArtifactEntry {
            path,
            is_dir: false,
            size,
        })
    }

    pub(super) fn open_artifact_impl(&self, path: &str) -> Result<(Box<dyn Read + Send>, u64)> {
        let path = normalize_artifact_path(path)?;
        let found: Option<(String, i64)> = self
            .conn
            .lock()
            .prepare_cached("SELECT hash, size FROM artifacts WHERE path = ?1")?
            .query_row([&path], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
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

    pub(super) fn list_artifacts_impl(&self, dir: &str) -> Result<Vec<ArtifactEntry>> {
        let dir = normalize_artifact_path(dir)?;
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        // '/' + 1 is '0': every path under `prefix` sorts before `prefix0`.
        let upper = format!("{dir}0");
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT path, size FROM artifacts WHERE path >= ?1 AND (?2 = '' OR path < ?3) ORDER BY path",
        )?;
        let rows = stmt
            .query_map(params![prefix, dir, upper], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(ArtifactEntry::listing(&prefix, rows))
    }

    pub(super) fn delete_artifacts_impl(&self, path: &str) -> Result<u64> {
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
        let hashes: Vec<String> = self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT hash FROM artifacts WHERE path = ?1 OR (path >= ?2 AND path < ?3)",
            )?;
            let hashes = stmt
                .query_map(params![path, prefix, upper], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            tx.prepare_cached(
                "DELETE FROM artifacts WHERE path = ?1 OR (path >= ?2 AND path < ?3)",
            )?
            .execute(params![path, prefix, upper])?;
            Ok(hashes)
        })?;
        let count = hashes.len() as u64;
        self.drop_unreferenced_blobs(&hashes)?;
        Ok(count)
    }

    /// Removes the blobs no path points at any more. A crash before this
    /// leaves them on disk unreferenced: space, never a wrong answer.
    ///
    /// Each removal happens under the write lock, so a concurrent upload of
    /// the same contents cannot have its blob removed between placing and
    /// recording it; but the lock is taken per small batch, so deleting a
    /// folder of thousands of files never stalls other writers for long.
    fn drop_unreferenced_blobs(&self, hashes: &[String]) -> Result<()> {
        let mut hashes = hashes.to_vec();
        hashes.sort_unstable();
        hashes.dedup();
        let blobs = self.blobs();
        for batch in hashes.chunks(BLOBS_PER_LOCK) {
            let none_went = self.write(|tx| {
                // A version's files hold blobs too (see `versions`).
                let mut stmt = tx.prepare_cached(
                    "SELECT 1 FROM artifacts WHERE hash = ?1
                     UNION ALL SELECT 1 FROM artifact_files WHERE hash = ?1 AND reference IS NULL
                     LIMIT 1",
                )?;
                let mut unreferenced = Vec::new();
                for hash in batch {
                    if stmt.query_row([hash], |_| Ok(())).optional()?.is_none() {
                        unreferenced.push(hash.as_str());
                    }
                }
                let removed = blobs.remove(&unreferenced);
                Ok(!removed.is_empty() && removed.iter().all(|gone| !gone))
            })?;
            // Storage that takes no removal (a bucket that went away) is not
            // asked again batch after batch under the lock: what is left is
            // unreferenced, and `gc` frees it later.
            if none_went {
                break;
            }
        }
        Ok(())
    }
}

/// Blob files removed per hold of the write lock: unlinking costs up to a
/// few milliseconds a file on a busy disk, so this keeps one hold short.
const BLOBS_PER_LOCK: usize = 16;
