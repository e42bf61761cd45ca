//! Versioned artifacts (issue 11): named, immutable versions whose files
//! live in the same content-addressed blobs as MLflow's artifacts, with
//! aliases, lineage edges to runs, a hash cache and garbage collection.
//!
//! Crash safety and the race with garbage collection rest on one rule:
//! a blob is placed (renamed from `tmp/`) and the rows that reference it
//! are inserted in one write transaction, and a blob is removed only in a
//! write transaction that finds no row referencing it. The write lock
//! orders the two, so a collector can never remove a blob between a
//! writer finding it present and the writer's rows landing.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, Transaction, params};

use labbook_core::ValidationError;
use labbook_core::artifact::normalize_artifact_path;
use labbook_core::artifact_version::{
    ArtifactRef, LATEST, Manifest, ManifestEntry, VersionSelector, validate_alias,
    validate_artifact_name, validate_artifact_type,
};

use super::SqliteStore;
use crate::content_hash::{FileStamp, hash_and_copy, manifest_digest, parallel_map, walk_tree};
use crate::error::{Result, StoreError};
use crate::private::Modes;
use crate::random_bits;
use crate::versions::*;

/// Metadata kept beside a version, as JSON.
const MAX_METADATA_BYTES: usize = 1 << 20;
const MAX_DESCRIPTION_BYTES: usize = 64 * 1024;
/// A file whose modification time is this close to the moment it was read
/// is not cached: a write within the filesystem's time granularity could
/// change it without changing its stamp (git's "racily clean" files).
const RACY_WINDOW_NS: i64 = 1_000_000_000;
/// Temporary files older than this belong to writers that died.
const STALE_TEMP_MS: i64 = 24 * 3600 * 1000;
/// Blobs removed per hold of the write lock by `gc`.
const GC_BLOBS_PER_LOCK: usize = 1024;
/// Hops a lineage walk takes each way, and the nodes it returns at most.
const LINEAGE_DEPTH: usize = 16;
const LINEAGE_NODES: usize = 2_000;

/// A file about to become part of a version.
struct Staged {
    rel: String,
    path: PathBuf,
    stamp: FileStamp,
    reference: Option<String>,
}

/// What reading a staged file gave.
struct Hashed {
    hash: String,
    size: u64,
    stamp: FileStamp,
    temp: Option<PathBuf>,
    from_cache: bool,
}

/// What a log brings to its write transaction: the manifest and its
/// digest, the temp files holding new contents by hash, the hash cache's
/// new rows, and the tree's stamps when they may be remembered.
#[derive(Clone, Copy)]
struct Landing<'a> {
    manifest: &'a Manifest,
    digest: &'a str,
    temps: &'a HashMap<String, PathBuf>,
    cache_rows: &'a [(String, FileStamp, String)],
    tree: Option<&'a str>,
}

enum Landed {
    /// The version, whether it is new, bytes stored, whether the run's
    /// edge to it is new.
    Done(Box<(i64, bool, u64, bool)>),
    /// Contents the transaction needed and found neither as a blob nor as
    /// a temp file: copied outside the lock, then tried again.
    Missing(Vec<String>),
}

fn invalid(name: &str, field: &str, problem: impl std::fmt::Display) -> StoreError {
    ValidationError::new(field, format!("artifact {name}: {problem}")).into()
}

/// A validation error of a file or field, said of the artifact it is in.
fn within(name: &str, e: ValidationError) -> StoreError {
    let ValidationError::Invalid { field, problem } = e;
    invalid(name, &field, problem)
}

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |source| {
        if source.raw_os_error() == Some(libc::ENOSPC) {
            StoreError::DiskFull(context)
        } else {
            StoreError::Io { context, source }
        }
    }
}

/// The local path a `file://` URI names.
fn file_uri_path(name: &str, uri: &str) -> Result<PathBuf> {
    match uri.split_once("://") {
        Some(("file", _)) => reference_path(uri).ok_or_else(|| {
            invalid(
                name,
                "reference",
                format!("{uri} is not an absolute file:// URI"),
            )
        }),
        Some((scheme, _)) => Err(invalid(
            name,
            "reference",
            format!("{scheme}:// references are not supported yet; only file:// is"),
        )),
        None => Ok(PathBuf::from(uri)),
    }
}

fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn join_rel(prefix: &str, rel: &str) -> String {
    match (prefix.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}/{rel}"),
    }
}

/// A new version's name, type, aliases, metadata and description checked;
/// the metadata as the JSON text stored.
fn checked_fields(new: &NewArtifactVersion) -> Result<String> {
    let name = new.name.as_str();
    validate_artifact_name(name)?;
    validate_artifact_type(&new.kind).map_err(|e| within(name, e))?;
    for alias in new.aliases.iter().filter(|a| *a != LATEST) {
        validate_alias(alias).map_err(|e| within(name, e))?;
    }
    let metadata = serde_json::Value::Object(new.metadata.clone()).to_string();
    if metadata.len() > MAX_METADATA_BYTES {
        return Err(invalid(
            name,
            "metadata",
            format!("is {} bytes; at most {MAX_METADATA_BYTES}", metadata.len()),
        ));
    }
    if new
        .description
        .as_ref()
        .is_some_and(|d| d.len() > MAX_DESCRIPTION_BYTES)
    {
        return Err(invalid(
            name,
            "description",
            format!("is longer than {MAX_DESCRIPTION_BYTES} bytes"),
        ));
    }
    Ok(metadata)
}

/// The files a version will hold, found from its sources.
fn stage(new: &NewArtifactVersion) -> Result<Vec<Staged>> {
    let name = &new.name;
    let mut staged = Vec::new();
    let mut add = |root: &Path, prefix: &str, reference: bool| -> Result<()> {
        let prefix = normalize_artifact_path(prefix).map_err(|e| within(name, e))?;
        let meta = std::fs::metadata(root).map_err(|e| {
            invalid(
                name,
                "path",
                format!("{} cannot be read ({e})", root.display()),
            )
        })?;
        let uri = |p: &Path| reference.then(|| file_uri(p));
        if meta.is_dir() {
            for f in walk_tree(root).map_err(|e| match e {
                StoreError::Invalid(v) => within(name, v),
                other => other,
            })? {
                staged.push(Staged {
                    rel: join_rel(&prefix, &f.rel),
                    reference: uri(&f.path),
                    path: f.path,
                    stamp: f.stamp,
                });
            }
        } else if meta.is_file() {
            let path = std::fs::canonicalize(root).map_err(io_err(format!(
                "artifact {name}: {} cannot be read",
                root.display()
            )))?;
            let rel = if prefix.is_empty() {
                root.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("file")
                    .to_string()
            } else {
                prefix
            };
            staged.push(Staged {
                rel,
                reference: uri(&path),
                path,
                stamp: FileStamp::of(&meta),
            });
        } else {
            return Err(invalid(
                name,
                "path",
                format!("{} is neither a file nor a folder", root.display()),
            ));
        }
        Ok(())
    };
    for source in &new.sources {
        match source {
            VersionSource::File { path, name: at } => add(path, at, new.in_place)?,
            VersionSource::Dir { path, prefix } => {
                if !path.is_dir() {
                    return Err(invalid(
                        name,
                        "path",
                        format!("{} is not a folder", path.display()),
                    ));
                }
                add(path, prefix, new.in_place)?
            }
            VersionSource::Reference { uri, name: at } => {
                let path = file_uri_path(name, uri)?;
                add(&path, at, true)?
            }
        }
    }
    if staged.is_empty() {
        return Err(invalid(
            name,
            "files",
            "holds no files; add a file, a folder or a reference",
        ));
    }
    Ok(staged)
}

impl SqliteStore {
    fn tmp_dir(&self) -> PathBuf {
        self.dir.join("artifacts").join("tmp")
    }

    /// Hashes of files whose stamp is the one the cache holds.
    fn cached_hashes(&self, staged: &[Staged]) -> Result<Vec<Option<String>>> {
        let conn = self.conn.lock();
        // One read transaction: the lookups share one shared lock instead
        // of taking and dropping it per file.
        let tx = conn.unchecked_transaction()?;
        let mut stmt = tx.prepare_cached(
            "SELECT dev, ino, size, mtime_ns, ctime_ns, hash FROM hash_cache WHERE path = ?1",
        )?;
        let found = staged
            .iter()
            .map(|s| {
                let Some(key) = s.path.to_str() else {
                    return Ok(None);
                };
                let row = stmt
                    .query_row([key], |r| {
                        Ok((
                            FileStamp {
                                dev: r.get::<_, i64>(0)? as u64,
                                ino: r.get::<_, i64>(1)? as u64,
                                size: r.get::<_, i64>(2)? as u64,
                                mtime_ns: r.get(3)?,
                                ctime_ns: r.get(4)?,
                            },
                            r.get::<_, String>(5)?,
                        ))
                    })
                    .optional()?;
                Ok(row.and_then(|(stamp, hash)| (stamp == s.stamp).then_some(hash)))
            })
            .collect();
        drop(stmt);
        found
    }

    /// Reads (and, when `copy`, copies into a temp file) the file. The
    /// temp files made are also pushed to `temps`, so a failure elsewhere
    /// can remove them.
    fn read_staged(
        &self,
        name: &str,
        s: &Staged,
        copy: bool,
        temps: &parking_lot::Mutex<Vec<PathBuf>>,
    ) -> Result<Hashed> {
        let mut temp = None;
        let mut file = None;
        if copy {
            let path = self
                .tmp_dir()
                .join(format!("{:016x}{:016x}", random_bits(), random_bits()));
            let f = Modes::of(&self.dir)
                .create_new(&path)
                .map_err(io_err(format!(
                    "artifact {name}: cannot write into the store"
                )))?;
            temps.lock().push(path.clone());
            temp = Some(path);
            file = Some(f);
        }
        let (hash, stamp) = hash_and_copy(&s.path, file.as_mut()).map_err(|e| match e {
            StoreError::Invalid(v) => within(name, v),
            StoreError::Io { context, source } => {
                io_err(format!("artifact {name}: {context}"))(source)
            }
            other => other,
        })?;
        if let Some(f) = &file {
            // Blobs are read-only: downloads hard-link them.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = f
                    .metadata()
                    .map(|m| m.permissions().mode() & !0o222)
                    .unwrap_or(0o444);
                let _ = f.set_permissions(std::fs::Permissions::from_mode(mode));
            }
            if !cfg!(target_os = "linux") {
                f.sync_all().map_err(io_err(format!(
                    "artifact {name}: cannot write {} into the store",
                    s.rel
                )))?;
            }
        }
        Ok(Hashed {
            hash: hash.hash,
            size: hash.size,
            stamp,
            temp,
            from_cache: false,
        })
    }

    /// Logs a version: hashes (through the cache) and stores the files,
    /// and records the version, unless a live version of the name already
    /// has the same contents, which is then returned with the new aliases.
    pub fn log_artifact_version(&self, new: &NewArtifactVersion) -> Result<LoggedVersion> {
        let name = new.name.as_str();
        let metadata = checked_fields(new)?;
        let staged = stage(new)?;
        let started_ns = FileStamp::now_ns();
        // A tree whose every path and stamp is as it was when it was last
        // logged has the digest it had then: no per-file lookups at all.
        let stamps = stamps_digest(&staged);
        if let Some(landed) = self.land_known_tree(new, &stamps)? {
            return Ok(landed);
        }
        let cached = self.cached_hashes(&staged)?;
        let stored = |s: &Staged| s.reference.is_none();
        if staged.iter().any(stored) {
            self.real_dir(&self.tmp_dir())?;
        }
        let temps = parking_lot::Mutex::new(Vec::new());
        let result = (|| {
            // A cached hash is taken without looking for its blob: the
            // landing transaction finds any blob missing, and then those
            // files are read and copied. Re-logging an unchanged folder
            // thus costs one stat per file, no reads.
            let hashed: Vec<Hashed> = parallel_map(&(0..staged.len()).collect::<Vec<_>>(), |&i| {
                let s = &staged[i];
                if let Some(hash) = &cached[i] {
                    return Ok(Hashed {
                        hash: hash.clone(),
                        size: s.stamp.size,
                        stamp: s.stamp,
                        temp: None,
                        from_cache: true,
                    });
                }
                self.read_staged(name, s, stored(s), &temps)
            })?;
            if cfg!(target_os = "linux") && hashed.iter().any(|h| h.temp.is_some()) {
                crate::blobs::sync_filesystem(&self.tmp_dir()).map_err(io_err(format!(
                    "artifact {name}: cannot write into the store"
                )))?;
            }
            let manifest = Manifest::new(
                staged
                    .iter()
                    .zip(&hashed)
                    .map(|(s, h)| ManifestEntry {
                        path: s.rel.clone(),
                        size: h.size,
                        hash: h.hash.clone(),
                        reference: s.reference.clone(),
                    })
                    .collect(),
            )
            .map_err(|e| within(name, e))?;
            let digest = manifest_digest(&manifest);
            let mut temps_by_hash: HashMap<String, PathBuf> = HashMap::new();
            for h in &hashed {
                if let Some(t) = &h.temp {
                    temps_by_hash
                        .entry(h.hash.clone())
                        .or_insert_with(|| t.clone());
                }
            }
            let settled = staged
                .iter()
                .zip(&hashed)
                .all(|(s, h)| h.stamp == s.stamp && h.stamp.mtime_ns < started_ns - RACY_WINDOW_NS);
            let tree = settled.then_some(stamps.as_str());
            let cache_rows: Vec<(String, FileStamp, String)> = staged
                .iter()
                .zip(&hashed)
                .filter(|(_, h)| !h.from_cache && h.stamp.mtime_ns < started_ns - RACY_WINDOW_NS)
                .filter_map(|(s, h)| Some((s.path.to_str()?.to_string(), h.stamp, h.hash.clone())))
                .collect();
            let blobs = self.blobs();
            let mut bytes_staged = 0u64;
            for _attempt in 0..4 {
                // Uploads to a bucket happen here, outside the write lock.
                for (hash, temp) in &temps_by_hash {
                    bytes_staged += blobs.stage(temp, hash)?;
                }
                match self.land_version(
                    new,
                    &metadata,
                    &Landing {
                        manifest: &manifest,
                        digest: &digest,
                        temps: &temps_by_hash,
                        cache_rows: &cache_rows,
                        tree,
                    },
                )? {
                    Landed::Done(done) => {
                        let (id, created, bytes_stored, new_edge) = *done;
                        return Ok(LoggedVersion {
                            version: self.artifact_version_by_id(id)?,
                            created,
                            bytes_stored: bytes_stored + bytes_staged,
                            new_edge,
                            cached_files: hashed.iter().filter(|h| h.from_cache).count() as u64,
                        });
                    }
                    Landed::Missing(hashes) => {
                        // Contents known from the cache but not in the
                        // store (or collected since): read and copy them.
                        let first_with: HashMap<&str, usize> = hashed
                            .iter()
                            .enumerate()
                            .rev()
                            .map(|(i, h)| (h.hash.as_str(), i))
                            .collect();
                        let wanted: Vec<(String, usize)> = hashes
                            .into_iter()
                            .filter_map(|h| {
                                let i = *first_with.get(h.as_str())?;
                                Some((h, i))
                            })
                            .collect();
                        let copied = parallel_map(&wanted, |(hash, i)| {
                            let again = self.read_staged(name, &staged[*i], true, &temps)?;
                            if again.hash != *hash {
                                return Err(invalid(
                                    name,
                                    "path",
                                    format!(
                                        "{} changed while it was logged; log it again once it is written",
                                        staged[*i].path.display()
                                    ),
                                ));
                            }
                            Ok(again.temp)
                        })?;
                        for ((hash, _), temp) in wanted.into_iter().zip(copied) {
                            if let Some(t) = temp {
                                temps_by_hash.insert(hash, t);
                            }
                        }
                        if cfg!(target_os = "linux") {
                            crate::blobs::sync_filesystem(&self.tmp_dir()).map_err(io_err(
                                format!("artifact {name}: cannot write into the store"),
                            ))?;
                        }
                    }
                }
            }
            Err(StoreError::Busy(format!(
                "artifact {name}: its contents kept being collected while it was logged"
            )))
        })();
        for t in temps.into_inner() {
            let _ = std::fs::remove_file(t);
        }
        result
    }

    /// The fast path of re-logging an unchanged tree: if these stamps were
    /// logged before and a live version of the name has their digest, that
    /// version is the answer (with the aliases and the run's edge added).
    fn land_known_tree(
        &self,
        new: &NewArtifactVersion,
        stamps: &str,
    ) -> Result<Option<LoggedVersion>> {
        let known: Option<String> = self
            .conn
            .lock()
            .prepare_cached("SELECT digest FROM tree_stamps WHERE stamps = ?1")?
            .query_row([stamps], |r| r.get(0))
            .optional()?;
        let Some(digest) = known else {
            return Ok(None);
        };
        let landed = self.write(|tx| {
            let project_id = Self::project_id(tx, &new.project, new.now_ms)?;
            let Some(name_id) = tx
                .prepare_cached(
                    "SELECT id FROM artifact_names WHERE project_id = ?1 AND name = ?2 AND kind = ?3",
                )?
                .query_row(params![project_id, new.name, new.kind], |r| r.get::<_, i64>(0))
                .optional()?
            else {
                return Ok(None);
            };
            let Some(id) = tx
                .prepare_cached(
                    "SELECT id FROM artifact_versions
                     WHERE name_id = ?1 AND digest = ?2 AND deleted_ms IS NULL
                     ORDER BY version LIMIT 1",
                )?
                .query_row(params![name_id, digest], |r| r.get::<_, i64>(0))
                .optional()?
            else {
                return Ok(None);
            };
            point_aliases(tx, name_id, id, &new.aliases)?;
            let new_edge = match &new.run_id {
                Some(run) => add_edge(tx, id, run, new.run_role, new.now_ms)?,
                None => false,
            };
            Ok(Some((id, new_edge)))
        })?;
        let Some((id, new_edge)) = landed else {
            return Ok(None);
        };
        let version = self.artifact_version_by_id(id)?;
        Ok(Some(LoggedVersion {
            cached_files: version.files,
            version,
            created: false,
            bytes_stored: 0,
            new_edge,
        }))
    }

    /// The one write transaction of a log: see the module's comment.
    fn land_version(
        &self,
        new: &NewArtifactVersion,
        metadata: &str,
        landing: &Landing<'_>,
    ) -> Result<Landed> {
        let name = new.name.as_str();
        let Landing {
            manifest,
            digest,
            temps,
            cache_rows,
            tree,
        } = *landing;
        self.write(|tx| {
            let project_id = Self::project_id(tx, &new.project, new.now_ms)?;
            let name_id = name_row(tx, project_id, name, &new.kind, new.now_ms)?;
            save_cache(tx, cache_rows)?;
            if let Some(stamps) = tree {
                tx.prepare_cached(
                    "INSERT INTO tree_stamps (stamps, digest) VALUES (?1, ?2)
                     ON CONFLICT (stamps) DO UPDATE SET digest = excluded.digest",
                )?
                .execute(params![stamps, digest])?;
            }
            let existing: Option<i64> = tx
                .prepare_cached(
                    "SELECT id FROM artifact_versions
                     WHERE name_id = ?1 AND digest = ?2 AND deleted_ms IS NULL
                     ORDER BY version LIMIT 1",
                )?
                .query_row(params![name_id, digest], |r| r.get(0))
                .optional()?;
            if let Some(id) = existing {
                point_aliases(tx, name_id, id, &new.aliases)?;
                let linked = match &new.run_id {
                    Some(run) => add_edge(tx, id, run, new.run_role, new.now_ms)?,
                    None => false,
                };
                return Ok(Landed::Done(Box::new((id, false, 0, linked))));
            }
            let needed: BTreeSet<&str> = manifest
                .entries()
                .iter()
                .filter(|e| e.reference.is_none())
                .map(|e| e.hash.as_str())
                .collect();
            let mut to_place = Vec::new();
            let mut missing = Vec::new();
            let blobs = self.blobs();
            for hash in needed {
                if blobs.contains(hash)? {
                    continue;
                }
                match temps.get(hash) {
                    Some(t) => to_place.push((hash, t)),
                    None => missing.push(hash.to_string()),
                }
            }
            if !missing.is_empty() {
                return Ok(Landed::Missing(missing));
            }
            let mut bytes_stored = 0u64;
            for (hash, temp) in &to_place {
                bytes_stored += blobs.place(temp, hash)?;
            }
            if !to_place.is_empty() {
                blobs.sync()?;
            }
            let version: i64 = tx
                .prepare_cached(
                    "SELECT COALESCE(MAX(version) + 1, 0) FROM artifact_versions WHERE name_id = ?1",
                )?
                .query_row([name_id], |r| r.get(0))?;
            tx.prepare_cached(
                "INSERT INTO artifact_versions
                     (name_id, version, digest, size, files, metadata, description, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                name_id,
                version,
                digest,
                manifest.total_size() as i64,
                manifest.entries().len() as i64,
                metadata,
                new.description,
                new.now_ms
            ])?;
            let id = tx.last_insert_rowid();
            let mut insert = tx.prepare_cached(
                "INSERT INTO artifact_files (version_id, path, hash, size, reference)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for e in manifest.entries() {
                insert.execute(params![id, e.path, e.hash, e.size as i64, e.reference])?;
            }
            let mut aliases = new.aliases.clone();
            aliases.push(LATEST.to_string());
            point_aliases(tx, name_id, id, &aliases)?;
            let linked = match &new.run_id {
                Some(run) => add_edge(tx, id, run, new.run_role, new.now_ms)?,
                None => false,
            };
            Ok(Landed::Done(Box::new((id, true, bytes_stored, linked))))
        })
    }

    /// Records a version whose files the store already holds (stored
    /// entries must name blobs present) or that has none (a dataset known
    /// only by its source and digest, as an MLflow client logs one): the
    /// MLflow API's datasets and logged models join the lineage this way.
    /// `digest` replaces the manifest's when the version has no files.
    pub fn record_artifact_version(
        &self,
        new: &NewArtifactVersion,
        entries: Vec<ManifestEntry>,
        digest: Option<String>,
    ) -> Result<ArtifactVersion> {
        let name = new.name.as_str();
        let metadata = checked_fields(new)?;
        let manifest = Manifest::new(entries).map_err(|e| within(name, e))?;
        let digest = match digest {
            Some(d) if manifest.entries().is_empty() => d,
            _ => manifest_digest(&manifest),
        };
        match self.land_version(
            new,
            &metadata,
            &Landing {
                manifest: &manifest,
                digest: &digest,
                temps: &HashMap::new(),
                cache_rows: &[],
                tree: None,
            },
        )? {
            Landed::Done(done) => self.artifact_version_by_id(done.0),
            Landed::Missing(hashes) => Err(StoreError::NotFound {
                what: "artifact contents",
                id: hashes.join(", "),
            }),
        }
    }

    /// Makes a version's stored files also plain artifact files under
    /// `prefix` (replacing what was there), so a listing of that folder
    /// (a run's MLflow artifacts) shows them. No bytes are copied.
    pub fn link_version_files(&self, version_id: i64, prefix: &str, now_ms: i64) -> Result<()> {
        let prefix = normalize_artifact_path(prefix)?;
        if prefix.is_empty() {
            return Err(ValidationError::new(
                "path",
                "a version is linked under a folder, not the root",
            )
            .into());
        }
        let manifest = self.artifact_manifest(version_id)?;
        let upper = format!("{prefix}0");
        let under = format!("{prefix}/");
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM artifacts WHERE path >= ?1 AND path < ?2")?
                .execute(params![under, upper])?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO artifacts (path, hash, size, created_ms, version_id) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (path) DO UPDATE SET hash = excluded.hash, size = excluded.size,
                     created_ms = excluded.created_ms, version_id = excluded.version_id",
            )?;
            for e in manifest.entries().iter().filter(|e| e.reference.is_none()) {
                insert.execute(params![
                    format!("{under}{}", e.path),
                    e.hash,
                    e.size as i64,
                    now_ms,
                    version_id
                ])?;
            }
            Ok(())
        })
    }

    /// Every plain artifact file under `dir` with its hash, paths relative
    /// to `dir`: what a logged model's folder holds, as a manifest.
    pub fn artifact_files_under(&self, dir: &str) -> Result<Vec<ManifestEntry>> {
        let dir = normalize_artifact_path(dir)?;
        let under = format!("{dir}/");
        let upper = format!("{dir}0");
        let conn = self.conn.lock();
        let rows = conn
            .prepare_cached(
                "SELECT path, size, hash FROM artifacts WHERE path >= ?1 AND path < ?2 ORDER BY path",
            )?
            .query_map(params![under, upper], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(path, size, hash)| {
                Some(ManifestEntry {
                    path: path.strip_prefix(&under)?.to_string(),
                    size: size as u64,
                    hash,
                    reference: None,
                })
            })
            .collect())
    }

    /// A version by its row id.
    pub fn artifact_version_by_id(&self, id: i64) -> Result<ArtifactVersion> {
        let conn = self.conn.lock();
        load_versions(&conn, "v.id = ?1", &[&id])?
            .pop()
            .ok_or_else(|| StoreError::NotFound {
                what: "artifact version",
                id: id.to_string(),
            })
    }

    /// The version `reference` (`name:v3`, `name:alias`, `name`) names,
    /// deleted ones included when named by number. Without a project, the
    /// name must be in one project only.
    pub fn resolve_artifact(
        &self,
        project: Option<&str>,
        reference: &str,
    ) -> Result<ArtifactVersion> {
        let parsed = ArtifactRef::parse(reference)?;
        let conn = self.conn.lock();
        let names: Vec<(i64, String)> = conn
            .prepare_cached(
                "SELECT n.id, p.name FROM artifact_names n JOIN projects p ON p.id = n.project_id
                 WHERE n.name = ?1 AND (?2 IS NULL OR p.name = ?2) ORDER BY p.name",
            )?
            .query_map(params![parsed.name, project], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let name_id = match names.as_slice() {
            [] => {
                return Err(StoreError::NotFound {
                    what: "artifact",
                    id: match project {
                        Some(p) => format!("{} (in project {p})", parsed.name),
                        None => parsed.name.clone(),
                    },
                });
            }
            [(id, _)] => *id,
            several => {
                return Err(StoreError::Ambiguous {
                    what: "artifacts",
                    reference: parsed.name.clone(),
                    candidates: several
                        .iter()
                        .map(|(_, p)| format!("project {p}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        };
        let found = match &parsed.version {
            VersionSelector::Number(n) => load_versions(
                &conn,
                "v.name_id = ?1 AND v.version = ?2",
                &[&name_id, &(*n as i64)],
            )?,
            VersionSelector::Alias(a) => load_versions(
                &conn,
                "v.id = (SELECT version_id FROM artifact_aliases WHERE name_id = ?1 AND alias = ?2)",
                &[&name_id, a],
            )?,
        };
        found.into_iter().next().ok_or(StoreError::NotFound {
            what: "artifact version",
            id: parsed.to_string(),
        })
    }

    /// Named artifacts, by project and name, optionally of one type.
    pub fn artifact_names(
        &self,
        project: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<ArtifactName>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT n.id, p.name, n.name, n.kind, n.created_ms,
                (SELECT COUNT(*) FROM artifact_versions v WHERE v.name_id = n.id AND v.deleted_ms IS NULL),
                (SELECT MAX(v.created_ms) FROM artifact_versions v WHERE v.name_id = n.id)
             FROM artifact_names n JOIN projects p ON p.id = n.project_id
             WHERE (?1 IS NULL OR p.name = ?1) AND (?2 IS NULL OR n.kind = ?2)
             ORDER BY p.name, n.name",
        )?;
        let mut out: Vec<(i64, ArtifactName)> = stmt
            .query_map(params![project, kind], |r| {
                let created: i64 = r.get(4)?;
                Ok((
                    r.get(0)?,
                    ArtifactName {
                        project: r.get(1)?,
                        name: r.get(2)?,
                        kind: r.get(3)?,
                        versions: r.get::<_, i64>(5)? as u64,
                        latest: None,
                        latest_size: 0,
                        aliases: Vec::new(),
                        updated_ms: r.get::<_, Option<i64>>(6)?.unwrap_or(created),
                    },
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut aliases_of = conn.prepare_cached(
            "SELECT a.alias, v.version, v.size FROM artifact_aliases a
             JOIN artifact_versions v ON v.id = a.version_id WHERE a.name_id = ?1 ORDER BY a.alias",
        )?;
        for (id, name) in &mut out {
            for row in aliases_of.query_map([*id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                ))
            })? {
                let (alias, version, size) = row?;
                if alias == LATEST {
                    name.latest = Some(version);
                    name.latest_size = size;
                }
                name.aliases.push((alias, version));
            }
        }
        Ok(out.into_iter().map(|(_, name)| name).collect())
    }

    /// Every version of a name, newest first, deleted ones included.
    pub fn artifact_versions(&self, project: &str, name: &str) -> Result<Vec<ArtifactVersion>> {
        let conn = self.conn.lock();
        let mut out = load_versions(
            &conn,
            "v.name_id = (SELECT n.id FROM artifact_names n JOIN projects p ON p.id = n.project_id
                          WHERE p.name = ?1 AND n.name = ?2)",
            &[&project, &name],
        )?;
        out.sort_by_key(|v| std::cmp::Reverse(v.version));
        Ok(out)
    }

    /// A version's files.
    pub fn artifact_manifest(&self, version_id: i64) -> Result<Manifest> {
        let conn = self.conn.lock();
        let entries = conn
            .prepare_cached(
                "SELECT path, size, hash, reference FROM artifact_files WHERE version_id = ?1 ORDER BY path",
            )?
            .query_map([version_id], |r| {
                Ok(ManifestEntry {
                    path: r.get(0)?,
                    size: r.get::<_, i64>(1)? as u64,
                    hash: r.get(2)?,
                    reference: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Manifest::new(entries)?)
    }

    /// The runs that produced and used a version, oldest first.
    pub fn artifact_edges(&self, version_id: i64) -> Result<Vec<RunArtifactEdge>> {
        let conn = self.conn.lock();
        let rows = conn
            .prepare_cached(
                "SELECT run_id, role, created_ms FROM artifact_edges WHERE version_id = ?1
                 ORDER BY created_ms, run_id",
            )?
            .query_map([version_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows
            .into_iter()
            .map(|(run_id, role, created_ms)| RunArtifactEdge {
                run_id,
                role: role_of(&role),
                created_ms,
            })
            .collect())
    }

    /// The versions a run used and produced.
    pub fn run_artifact_versions(&self, run_id: &str) -> Result<Vec<(ArtifactVersion, EdgeRole)>> {
        let conn = self.conn.lock();
        let edges: Vec<(i64, String)> = conn
            .prepare_cached(
                "SELECT version_id, role FROM artifact_edges WHERE run_id = ?1 ORDER BY created_ms",
            )?
            .query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::with_capacity(edges.len());
        for (id, role) in edges {
            if let Some(v) = load_versions(&conn, "v.id = ?1", &[&id])?.pop() {
                out.push((v, role_of(&role)));
            }
        }
        Ok(out)
    }

    /// Records that `run_id` used the version.
    pub fn use_artifact_version(&self, run_id: &str, version_id: i64, now_ms: i64) -> Result<()> {
        self.write(|tx| {
            Self::run_pk(tx, run_id)?;
            add_edge(tx, version_id, run_id, EdgeRole::Input, now_ms).map(|_| ())
        })
    }

    /// Points `alias` at the version (moving it from another).
    pub fn set_artifact_alias(&self, version_id: i64, alias: &str) -> Result<()> {
        validate_alias(alias)?;
        self.write(|tx| {
            let (name_id, deleted): (i64, Option<i64>) = tx
                .prepare_cached("SELECT name_id, deleted_ms FROM artifact_versions WHERE id = ?1")?
                .query_row([version_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .ok_or(StoreError::NotFound {
                    what: "artifact version",
                    id: version_id.to_string(),
                })?;
            if deleted.is_some() {
                return Err(StoreError::Conflict(
                    "that version is deleted; an alias cannot point at it".into(),
                ));
            }
            point_aliases(tx, name_id, version_id, &[alias.to_string()])
        })
    }

    /// Removes an alias of a name; true if it was set.
    pub fn remove_artifact_alias(&self, version: &ArtifactVersion, alias: &str) -> Result<bool> {
        validate_alias(alias)?;
        self.write(|tx| {
            Ok(tx
                .prepare_cached(
                    "DELETE FROM artifact_aliases WHERE alias = ?2
                     AND name_id = (SELECT name_id FROM artifact_versions WHERE id = ?1)",
                )?
                .execute(params![version.id, alias])?
                > 0)
        })
    }

    /// Soft-deletes a version: hidden from listings and resolution by
    /// alias, its aliases dropped (`latest` moves to the newest live
    /// version); `gc` frees its contents later.
    pub fn delete_artifact_version(&self, version_id: i64, now_ms: i64) -> Result<()> {
        self.write(|tx| {
            let name_id: i64 = tx
                .prepare_cached("SELECT name_id FROM artifact_versions WHERE id = ?1")?
                .query_row([version_id], |r| r.get(0))
                .optional()?
                .ok_or(StoreError::NotFound {
                    what: "artifact version",
                    id: version_id.to_string(),
                })?;
            tx.prepare_cached(
                "UPDATE artifact_versions SET deleted_ms = ?2 WHERE id = ?1 AND deleted_ms IS NULL",
            )?
            .execute(params![version_id, now_ms])?;
            tx.prepare_cached("DELETE FROM artifact_aliases WHERE version_id = ?1")?
                .execute([version_id])?;
            // Its files shown among a run's go with it.
            tx.prepare_cached("DELETE FROM artifacts WHERE version_id = ?1")?
                .execute([version_id])?;
            let newest: Option<i64> = tx
                .prepare_cached(
                    "SELECT id FROM artifact_versions WHERE name_id = ?1 AND deleted_ms IS NULL
                     ORDER BY version DESC LIMIT 1",
                )?
                .query_row([name_id], |r| r.get(0))
                .optional()?;
            if let Some(id) = newest {
                point_aliases(tx, name_id, id, &[LATEST.to_string()])?;
            }
            Ok(())
        })
    }

    /// Lays the version's files out under `dest`: stored files as hard
    /// links to their blobs where the filesystem allows (blobs are
    /// read-only), copies otherwise; referenced files copied from where
    /// they are, after checking they still hash as recorded.
    pub fn download_artifact_version(
        &self,
        version: &ArtifactVersion,
        dest: &Path,
        placement: Placement,
    ) -> Result<()> {
        if version.purged {
            return Err(StoreError::Conflict(format!(
                "{} was deleted and its contents freed by gc",
                version.reference()
            )));
        }
        let changed = self.verify_artifact_references(version)?;
        if let Some(c) = changed.first() {
            return Err(StoreError::Conflict(format!(
                "{}: {} ({}) is {} since it was logged{}",
                version.reference(),
                c.path,
                c.location,
                c.state,
                if changed.len() > 1 {
                    format!(", and {} more files", changed.len() - 1)
                } else {
                    String::new()
                }
            )));
        }
        let manifest = self.artifact_manifest(version.id)?;
        let what = version.reference();
        let dirs: BTreeSet<PathBuf> = manifest
            .entries()
            .iter()
            .filter_map(|e| dest.join(&e.path).parent().map(Path::to_path_buf))
            .chain(std::iter::once(dest.to_path_buf()))
            .collect();
        for dir in &dirs {
            std::fs::create_dir_all(dir)
                .map_err(io_err(format!("{what}: cannot create {}", dir.display())))?;
        }
        let blobs = self.blobs();
        parallel_map(manifest.entries(), |e| {
            let target = dest.join(&e.path);
            let what = &what;
            let failed = |verb: &'static str| {
                move |err| io_err(format!("{what}: cannot {verb} {}", e.path))(err)
            };
            match &e.reference {
                None => blobs
                    .fetch(&e.hash, &target, placement)
                    .map_err(|err| match err {
                        StoreError::Io { source, .. } => failed("place")(source),
                        err => err,
                    }),
                Some(uri) => {
                    let source = file_uri_path(&version.name, uri)?;
                    crate::blobs::copy_file_replacing(&source, &target).map_err(failed("copy"))
                }
            }
        })?;
        Ok(())
    }

    /// The referenced files of a version that no longer hash as recorded
    /// (unchanged stamps are taken from the hash cache without reading).
    pub fn verify_artifact_references(
        &self,
        version: &ArtifactVersion,
    ) -> Result<Vec<ChangedFile>> {
        let manifest = self.artifact_manifest(version.id)?;
        // Only files can be checked: a reference elsewhere (an MLflow
        // dataset's source) is a record of where the data came from.
        let refs: Vec<&ManifestEntry> = manifest
            .entries()
            .iter()
            .filter(|e| {
                e.reference
                    .as_deref()
                    .is_some_and(|r| r.starts_with("file://"))
            })
            .collect();
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let mut staged = Vec::with_capacity(refs.len());
        let mut changed = Vec::new();
        for e in &refs {
            let uri = e.reference.clone().unwrap_or_default();
            let path = file_uri_path(&version.name, &uri)?;
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => staged.push((
                    e,
                    Staged {
                        rel: e.path.clone(),
                        path,
                        stamp: FileStamp::of(&meta),
                        reference: Some(uri),
                    },
                )),
                _ => changed.push(ChangedFile {
                    path: e.path.clone(),
                    location: uri,
                    state: "missing",
                }),
            }
        }
        let just: Vec<Staged> = staged
            .iter()
            .map(|(_, s)| Staged {
                rel: s.rel.clone(),
                path: s.path.clone(),
                stamp: s.stamp,
                reference: s.reference.clone(),
            })
            .collect();
        let cached = self.cached_hashes(&just)?;
        let started_ns = FileStamp::now_ns();
        let fresh = parallel_map(&(0..just.len()).collect::<Vec<_>>(), |&i| {
            if let Some(h) = &cached[i] {
                return Ok((h.clone(), None));
            }
            match hash_and_copy(&just[i].path, None) {
                Ok((h, stamp)) => Ok((h.hash, Some(stamp))),
                Err(_) => Ok((String::new(), None)),
            }
        })?;
        let mut cache_rows = Vec::new();
        for (i, (entry, s)) in staged.iter().enumerate() {
            let (hash, stamp) = &fresh[i];
            if *hash != entry.hash || s.stamp.size != entry.size {
                changed.push(ChangedFile {
                    path: entry.path.clone(),
                    location: s.reference.clone().unwrap_or_default(),
                    state: if hash.is_empty() {
                        "missing"
                    } else {
                        "changed"
                    },
                });
            }
            if let (Some(stamp), Some(key)) = (stamp, s.path.to_str())
                && !hash.is_empty()
                && stamp.mtime_ns < started_ns - RACY_WINDOW_NS
            {
                cache_rows.push((key.to_string(), *stamp, hash.clone()));
            }
        }
        if !cache_rows.is_empty() {
            self.write(|tx| save_cache(tx, &cache_rows))?;
        }
        changed.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(changed)
    }

    /// The lineage graph around a version or a run: producers and what
    /// they used, upwards; consumers and what they produced, downwards.
    pub fn lineage(&self, start: &LineageStart) -> Result<LineageGraph> {
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        enum Key {
            Version(i64),
            Run(String),
        }
        let conn = self.conn.lock();
        let mut edges_of = conn.prepare_cached(
            "SELECT run_id, role FROM artifact_edges WHERE version_id = ?1 ORDER BY created_ms",
        )?;
        // A run's code snapshot is left out of the walk: every run of a
        // project shares a few of them, so through one the walk would
        // reach every run and show nothing of how data became a model.
        let mut of_run = conn.prepare_cached(
            "SELECT e.version_id, e.role FROM artifact_edges e
             JOIN artifact_versions v ON v.id = e.version_id
             JOIN artifact_names n ON n.id = v.name_id
             WHERE e.run_id = ?1 AND n.kind != ?2 ORDER BY e.created_ms",
        )?;
        let root = match start {
            LineageStart::Version(id) => Key::Version(*id),
            LineageStart::Run(id) => {
                Self::run_pk(&conn, id)?;
                Key::Run(id.clone())
            }
        };
        let mut seen: HashSet<Key> = HashSet::from([root.clone()]);
        let mut order = vec![root.clone()];
        let mut edges: BTreeSet<(Key, Key)> = BTreeSet::new();
        let mut truncated = false;
        // Upwards (`up`): a version's producers, a run's inputs.
        // Downwards: a version's consumers, a run's outputs.
        for up in [true, false] {
            let mut queue = VecDeque::from([(root.clone(), 0usize)]);
            while let Some((node, depth)) = queue.pop_front() {
                if depth >= LINEAGE_DEPTH || seen.len() >= LINEAGE_NODES {
                    truncated = true;
                    continue;
                }
                let next: Vec<(Key, bool)> = match &node {
                    Key::Version(v) => edges_of
                        .query_map([v], |r| {
                            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                        })?
                        .filter_map(|r| r.ok())
                        .filter(|(_, role)| (role == "output") == up)
                        .map(|(run, _)| (Key::Run(run), up))
                        .collect(),
                    Key::Run(run) => of_run
                        .query_map(
                            rusqlite::params![run, labbook_core::artifact_version::CODE_ARTIFACT],
                            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
                        )?
                        .filter_map(|r| r.ok())
                        .filter(|(_, role)| (role == "input") == up)
                        .map(|(v, _)| (Key::Version(v), up))
                        .collect(),
                };
                for (other, _) in next {
                    let (from, to) = if up {
                        (other.clone(), node.clone())
                    } else {
                        (node.clone(), other.clone())
                    };
                    edges.insert((from, to));
                    if seen.insert(other.clone()) {
                        order.push(other.clone());
                        queue.push_back((other, depth + 1));
                    }
                }
            }
        }
        drop(edges_of);
        drop(of_run);
        let mut ids: HashMap<Key, String> = HashMap::new();
        let mut nodes = Vec::with_capacity(order.len());
        for key in &order {
            let node = match key {
                Key::Version(id) => {
                    let Some(v) = load_versions(&conn, "v.id = ?1", &[id])?.pop() else {
                        continue;
                    };
                    LineageNode::Artifact {
                        id: format!("{}/{}", v.project, v.reference()),
                        project: v.project,
                        name: v.name,
                        version: v.version,
                        artifact_type: v.kind,
                        digest: v.digest,
                        deleted: v.deleted_ms.is_some(),
                    }
                }
                Key::Run(id) => {
                    let found: Option<(String, String, String)> = conn
                        .prepare_cached(
                            "SELECT r.name, p.name, r.status FROM runs r JOIN projects p ON p.id = r.project_id
                             WHERE r.id = ?1",
                        )?
                        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()?;
                    let (name, project, status) = found
                        .unwrap_or_else(|| ("(deleted)".into(), String::new(), "deleted".into()));
                    LineageNode::Run {
                        id: id.clone(),
                        name,
                        project,
                        status,
                    }
                }
            };
            ids.insert(key.clone(), node.id().to_string());
            nodes.push(node);
        }
        let root_id = ids.get(&root).cloned().unwrap_or_default();
        let edges = edges
            .into_iter()
            .filter_map(|(a, b)| {
                Some(LineageEdge {
                    from: ids.get(&a)?.clone(),
                    to: ids.get(&b)?.clone(),
                })
            })
            .collect();
        Ok(LineageGraph {
            root: root_id,
            nodes,
            edges,
            truncated,
        })
    }

    /// Frees what nothing live references: first the rows of soft-deleted
    /// versions, then every blob no row points at (each re-checked and
    /// removed under the write lock, see the module's comment), then temp
    /// files left by writers that died. `dry_run` only reports.
    pub fn gc(&self, dry_run: bool, now_ms: i64) -> Result<GcReport> {
        let mut report = GcReport {
            dry_run,
            ..GcReport::default()
        };
        {
            let conn = self.conn.lock();
            report.versions_purged = conn
                .prepare_cached(
                    "SELECT n.name, v.version FROM artifact_versions v JOIN artifact_names n ON n.id = v.name_id
                     WHERE v.deleted_ms IS NOT NULL AND v.purged_ms IS NULL ORDER BY n.name, v.version",
                )?
                .query_map([], |r| Ok(format!("{}:v{}", r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
        }
        if !dry_run && !report.versions_purged.is_empty() {
            self.write(|tx| {
                tx.execute(
                    "DELETE FROM artifact_files WHERE version_id IN
                         (SELECT id FROM artifact_versions WHERE deleted_ms IS NOT NULL AND purged_ms IS NULL)",
                    [],
                )?;
                tx.execute(
                    "UPDATE artifact_versions SET purged_ms = ?1 WHERE deleted_ms IS NOT NULL AND purged_ms IS NULL",
                    [now_ms],
                )?;
                Ok(())
            })?;
        }
        let referenced: HashSet<String> = {
            let conn = self.conn.lock();
            let mut set = HashSet::new();
            let mut stmt = conn.prepare(
                "SELECT hash FROM artifacts
                 UNION SELECT f.hash FROM artifact_files f JOIN artifact_versions v ON v.id = f.version_id
                 WHERE f.reference IS NULL AND v.deleted_ms IS NULL",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                set.insert(row.get::<_, String>(0)?);
            }
            set
        };
        let blobs = self.blobs();
        let mut candidates = Vec::new();
        for (hash, size) in blobs.list()? {
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
            let pause = gc_pause();
            for (i, batch) in candidates.chunks(GC_BLOBS_PER_LOCK).enumerate() {
                if i > 0 && !pause.is_zero() {
                    std::thread::sleep(pause);
                }
                let freed = self.write(|tx| {
                    let mut in_use = tx.prepare_cached(
                        "SELECT 1 FROM artifacts WHERE hash = ?1
                         UNION ALL SELECT 1 FROM artifact_files WHERE hash = ?1 AND reference IS NULL
                         LIMIT 1",
                    )?;
                    let mut unreferenced = Vec::new();
                    for blob in batch {
                        if in_use.query_row([&blob.hash], |_| Ok(())).optional()?.is_none() {
                            unreferenced.push(blob);
                        }
                    }
                    let removed = blobs.remove(
                        &unreferenced
                            .iter()
                            .map(|b| b.hash.as_str())
                            .collect::<Vec<_>>(),
                    );
                    Ok(unreferenced
                        .into_iter()
                        .zip(removed)
                        .filter(|(_, ok)| *ok)
                        .map(|(b, _)| b.clone())
                        .collect::<Vec<_>>())
                })?;
                report.bytes += freed.iter().map(|b| b.size).sum::<u64>();
                report.blobs.extend(freed);
            }
        }
        if let Ok(temps) = std::fs::read_dir(self.tmp_dir()) {
            let cutoff = std::time::SystemTime::now()
                - std::time::Duration::from_millis(STALE_TEMP_MS as u64);
            for temp in temps.flatten() {
                let old = temp
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < cutoff);
                if old && temp.file_type().is_ok_and(|t| t.is_file()) {
                    report.stale_temp_files += 1;
                    if !dry_run {
                        let _ = std::fs::remove_file(temp.path());
                    }
                }
            }
        }
        Ok(report)
    }
}

/// The hash of every staged file's place, source and stamp, in order:
/// equal for two stagings only if no file of the tree was touched between.
fn stamps_digest(staged: &[Staged]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"labbook-tree-stamps-1\n");
    for s in staged {
        for field in [
            s.rel.as_bytes(),
            s.path.as_os_str().as_encoded_bytes(),
            s.reference.as_deref().unwrap_or("").as_bytes(),
        ] {
            h.update(&(field.len() as u64).to_le_bytes());
            h.update(field);
        }
        let st = &s.stamp;
        for n in [
            st.dev,
            st.ino,
            st.size,
            st.mtime_ns as u64,
            st.ctime_ns as u64,
        ] {
            h.update(&n.to_le_bytes());
        }
    }
    h.finalize().to_hex().to_string()
}

fn role_of(role: &str) -> EdgeRole {
    if role == "input" {
        EdgeRole::Input
    } else {
        EdgeRole::Output
    }
}

fn name_row(
    tx: &Transaction<'_>,
    project_id: i64,
    name: &str,
    kind: &str,
    now_ms: i64,
) -> Result<i64> {
    let found: Option<(i64, String)> = tx
        .prepare_cached("SELECT id, kind FROM artifact_names WHERE project_id = ?1 AND name = ?2")?
        .query_row(params![project_id, name], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match found {
        Some((id, k)) if k == kind => Ok(id),
        Some((_, k)) => Err(invalid(
            name,
            "type",
            format!("is a {k}, not a {kind}; use another name or type={k:?}"),
        )),
        None => {
            tx.prepare_cached(
                "INSERT INTO artifact_names (project_id, name, kind, created_ms) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![project_id, name, kind, now_ms])?;
            Ok(tx.last_insert_rowid())
        }
    }
}

fn point_aliases(
    tx: &Transaction<'_>,
    name_id: i64,
    version_id: i64,
    aliases: &[String],
) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO artifact_aliases (name_id, alias, version_id) VALUES (?1, ?2, ?3)
         ON CONFLICT (name_id, alias) DO UPDATE SET version_id = excluded.version_id",
    )?;
    for alias in aliases {
        stmt.execute(params![name_id, alias, version_id])?;
    }
    Ok(())
}

/// Links a run to a version; false if that link was there already.
fn add_edge(
    tx: &Transaction<'_>,
    version_id: i64,
    run_id: &str,
    role: EdgeRole,
    now_ms: i64,
) -> Result<bool> {
    Ok(tx
        .prepare_cached(
            "INSERT INTO artifact_edges (version_id, run_id, role, created_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![version_id, run_id, role.as_str(), now_ms])?
        > 0)
}

fn save_cache(tx: &Transaction<'_>, rows: &[(String, FileStamp, String)]) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO hash_cache (path, dev, ino, size, mtime_ns, ctime_ns, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (path) DO UPDATE SET dev = excluded.dev, ino = excluded.ino, size = excluded.size,
             mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns, hash = excluded.hash",
    )?;
    for (path, s, hash) in rows {
        stmt.execute(params![
            path,
            s.dev as i64,
            s.ino as i64,
            s.size as i64,
            s.mtime_ns,
            s.ctime_ns,
            hash
        ])?;
    }
    Ok(())
}

fn load_versions(
    conn: &rusqlite::Connection,
    where_sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<ArtifactVersion>> {
    let sql = format!(
        "SELECT v.id, p.name, n.name, n.kind, v.version, v.digest, v.size, v.files, v.metadata,
                v.description, v.created_ms, v.deleted_ms, v.purged_ms,
                (SELECT GROUP_CONCAT(alias, char(31)) FROM
                    (SELECT alias FROM artifact_aliases a WHERE a.version_id = v.id ORDER BY alias)),
                (SELECT run_id FROM artifact_edges e WHERE e.version_id = v.id AND e.role = 'output'
                 ORDER BY e.created_ms LIMIT 1)
         FROM artifact_versions v JOIN artifact_names n ON n.id = v.name_id
         JOIN projects p ON p.id = n.project_id WHERE {where_sql} ORDER BY v.version"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(args, |r| {
        let metadata: String = r.get(8)?;
        let aliases: Option<String> = r.get(13)?;
        Ok(ArtifactVersion {
            id: r.get(0)?,
            project: r.get(1)?,
            name: r.get(2)?,
            kind: r.get(3)?,
            version: r.get::<_, i64>(4)? as u64,
            digest: r.get(5)?,
            size: r.get::<_, i64>(6)? as u64,
            files: r.get::<_, i64>(7)? as u64,
            metadata: serde_json::from_str(&metadata).unwrap_or(serde_json::Value::Null),
            description: r.get(9)?,
            created_ms: r.get(10)?,
            deleted_ms: r.get(11)?,
            purged: r.get::<_, Option<i64>>(12)?.is_some(),
            aliases: aliases
                .map(|a| a.split('\u{1f}').map(str::to_string).collect())
                .unwrap_or_default(),
            producer: r.get(14)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The environment variable that makes `gc` wait this many milliseconds
/// between its batches: for tests that kill a collection half-way, at a
/// point that does not depend on the disk's speed. Unset, no wait.
const GC_PAUSE_ENV: &str = "LABBOOK_GC_PAUSE_MS";

fn gc_pause() -> std::time::Duration {
    std::env::var(GC_PAUSE_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(std::time::Duration::ZERO, std::time::Duration::from_millis)
}
