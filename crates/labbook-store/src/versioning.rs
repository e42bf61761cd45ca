//! Versioned artifacts over any database: logging a version (hashing
//! through the cache, storing new contents, landing the rows in one
//! transaction), recording one, downloading and verifying one, and walking
//! lineage. What each database does differently is [`VersionIndex`]; the
//! rules live here once.
//!
//! Crash safety and the race with garbage collection rest on one rule:
//! a blob is placed (renamed from the spool) and the rows that reference
//! it are inserted in one write transaction, and a blob is removed only
//! in a write transaction that finds no row referencing it. The database's
//! lock for that blob (SQLite's write lock, PostgreSQL's per-hash lock)
//! orders the two, so a collector can never remove a blob between a
//! writer finding it present and the writer's rows landing.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use labbook_core::ValidationError;
use labbook_core::artifact::normalize_artifact_path;
use labbook_core::artifact_version::{
    LATEST, Manifest, ManifestEntry, validate_alias, validate_artifact_name, validate_artifact_type,
};

use crate::blobs::Blobs;
use crate::content_hash::{FileStamp, hash_and_copy, manifest_digest, parallel_map, walk_tree};
use crate::error::{Result, StoreError};
use crate::private::Modes;
use crate::random_bits;
use crate::versions::*;

/// What a database does for versioned artifacts.
pub(crate) trait VersionIndex: Sync {
    /// Where new contents are spooled before they are placed.
    fn spool_dir(&self) -> PathBuf;
    /// Makes the spool ready to write into.
    fn prepare_spool(&self) -> Result<()>;
    fn spool_modes(&self) -> Modes;
    fn version_blobs(&self) -> Arc<dyn Blobs>;
    /// Hashes of files whose stamp is the one the cache holds.
    fn cached_hashes(&self, staged: &[Staged]) -> Result<Vec<Option<String>>>;
    fn save_cache(&self, rows: &[(String, FileStamp, String)]) -> Result<()>;
    /// The digest a tree of these stamps had when last logged.
    fn known_tree(&self, stamps: &str) -> Result<Option<String>>;
    /// If a live version of `new`'s name has `digest`: its id (aliases and
    /// the run's edge added) and whether the edge is new.
    fn land_known(&self, new: &NewArtifactVersion, digest: &str) -> Result<Option<(i64, bool)>>;
    /// The one write transaction of a log.
    fn land_version(
        &self,
        new: &NewArtifactVersion,
        metadata: &str,
        landing: &Landing<'_>,
    ) -> Result<Landed>;
    fn version_by_id(&self, id: i64) -> Result<ArtifactVersion>;
    fn version_opt(&self, id: i64) -> Result<Option<ArtifactVersion>>;
    fn manifest(&self, version_id: i64) -> Result<Manifest>;
    /// Not found unless the run exists.
    fn check_run(&self, run_id: &str) -> Result<()>;
    /// The runs linked to a version, with their role, oldest first.
    fn version_edges(&self, version_id: i64) -> Result<Vec<(String, String)>>;
    /// The versions linked to a run, with their role, oldest first,
    /// leaving out versions of the type `skip_kind`.
    fn run_edges(&self, run_id: &str, skip_kind: &str) -> Result<Vec<(i64, String)>>;
    /// A run's name, project and status.
    fn run_label(&self, run_id: &str) -> Result<Option<(String, String, String)>>;
}

/// Metadata kept beside a version, as JSON.
pub(crate) const MAX_METADATA_BYTES: usize = 1 << 20;
pub(crate) const MAX_DESCRIPTION_BYTES: usize = 64 * 1024;
/// A file whose modification time is this close to the moment it was read
/// is not cached: a write within the filesystem's time granularity could
/// change it without changing its stamp (git's "racily clean" files).
pub(crate) const RACY_WINDOW_NS: i64 = 1_000_000_000;
/// Hops a lineage walk takes each way, and the nodes it returns at most.
pub(crate) const LINEAGE_DEPTH: usize = 16;
pub(crate) const LINEAGE_NODES: usize = 2_000;

/// A file about to become part of a version.
pub(crate) struct Staged {
    pub(crate) rel: String,
    pub(crate) path: PathBuf,
    pub(crate) stamp: FileStamp,
    pub(crate) reference: Option<String>,
}

/// What reading a staged file gave.
pub(crate) struct Hashed {
    pub(crate) hash: String,
    pub(crate) size: u64,
    pub(crate) stamp: FileStamp,
    pub(crate) temp: Option<PathBuf>,
    pub(crate) from_cache: bool,
}

/// What a log brings to its write transaction: the manifest and its
/// digest, the temp files holding new contents by hash, the hash cache's
/// new rows, and the tree's stamps when they may be remembered.
#[derive(Clone, Copy)]
pub(crate) struct Landing<'a> {
    pub(crate) manifest: &'a Manifest,
    pub(crate) digest: &'a str,
    pub(crate) temps: &'a HashMap<String, PathBuf>,
    pub(crate) cache_rows: &'a [(String, FileStamp, String)],
    pub(crate) tree: Option<&'a str>,
}

pub(crate) enum Landed {
    /// The version, whether it is new, bytes stored, whether the run's
    /// edge to it is new.
    Done(Box<(i64, bool, u64, bool)>),
    /// Contents the transaction needed and found neither as a blob nor as
    /// a temp file: copied outside the lock, then tried again.
    Missing(Vec<String>),
}

pub(crate) fn invalid(name: &str, field: &str, problem: impl std::fmt::Display) -> StoreError {
    ValidationError::new(field, format!("artifact {name}: {problem}")).into()
}

/// A validation error of a file or field, said of the artifact it is in.
pub(crate) fn within(name: &str, e: ValidationError) -> StoreError {
    let ValidationError::Invalid { field, problem } = e;
    invalid(name, &field, problem)
}

pub(crate) fn io_err(context: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |source| {
        if source.raw_os_error() == Some(libc::ENOSPC) {
            StoreError::DiskFull(context)
        } else {
            StoreError::Io { context, source }
        }
    }
}

/// The local path a `file://` URI names.
pub(crate) fn file_uri_path(name: &str, uri: &str) -> Result<PathBuf> {
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
pub(crate) fn checked_fields(new: &NewArtifactVersion) -> Result<String> {
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
pub(crate) fn stage(new: &NewArtifactVersion) -> Result<Vec<Staged>> {
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

/// Reads (and, when `copy`, copies into a temp file) the file. The
/// temp files made are also pushed to `temps`, so a failure elsewhere
/// can remove them.
fn read_staged(
    ix: &dyn VersionIndex,
    spool: &Path,
    name: &str,
    s: &Staged,
    copy: bool,
    temps: &parking_lot::Mutex<Vec<PathBuf>>,
) -> Result<Hashed> {
    let mut temp = None;
    let mut file = None;
    if copy {
        let path = spool.join(format!("{:016x}{:016x}", random_bits(), random_bits()));
        let f = ix.spool_modes().create_new(&path).map_err(io_err(format!(
            "artifact {name}: cannot write into the store"
        )))?;
        temps.lock().push(path.clone());
        temp = Some(path);
        file = Some(f);
    }
    let (hash, stamp) = hash_and_copy(&s.path, file.as_mut()).map_err(|e| match e {
        StoreError::Invalid(v) => within(name, v),
        StoreError::Io { context, source } => io_err(format!("artifact {name}: {context}"))(source),
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
pub(crate) fn log_artifact_version(
    ix: &dyn VersionIndex,
    new: &NewArtifactVersion,
) -> Result<LoggedVersion> {
    let name = new.name.as_str();
    let metadata = checked_fields(new)?;
    let staged = stage(new)?;
    let started_ns = FileStamp::now_ns();
    // A tree whose every path and stamp is as it was when it was last
    // logged has the digest it had then: no per-file lookups at all.
    let stamps = stamps_digest(&staged);
    if let Some(landed) = land_known_tree(ix, new, &stamps)? {
        return Ok(landed);
    }
    let cached = ix.cached_hashes(&staged)?;
    let stored = |s: &Staged| s.reference.is_none();
    let spool = ix.spool_dir();
    if staged.iter().any(stored) {
        ix.prepare_spool()?;
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
            read_staged(ix, &spool, name, s, stored(s), &temps)
        })?;
        if cfg!(target_os = "linux") && hashed.iter().any(|h| h.temp.is_some()) {
            crate::blobs::sync_filesystem(&spool).map_err(io_err(format!(
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
        let blobs = ix.version_blobs();
        let mut bytes_staged = 0u64;
        for _attempt in 0..4 {
            // Uploads to a bucket happen here, outside the write lock.
            for (hash, temp) in &temps_by_hash {
                bytes_staged += blobs.stage(temp, hash)?;
            }
            match ix.land_version(
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
                        version: ix.version_by_id(id)?,
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
                        let again = read_staged(ix, &spool, name, &staged[*i], true, &temps)?;
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
                        crate::blobs::sync_filesystem(&spool).map_err(io_err(format!(
                            "artifact {name}: cannot write into the store"
                        )))?;
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
    ix: &dyn VersionIndex,
    new: &NewArtifactVersion,
    stamps: &str,
) -> Result<Option<LoggedVersion>> {
    let Some(digest) = ix.known_tree(stamps)? else {
        return Ok(None);
    };
    let Some((id, new_edge)) = ix.land_known(new, &digest)? else {
        return Ok(None);
    };
    let version = ix.version_by_id(id)?;
    Ok(Some(LoggedVersion {
        cached_files: version.files,
        version,
        created: false,
        bytes_stored: 0,
        new_edge,
    }))
}

/// Records a version whose files the store already holds (stored
/// entries must name blobs present) or that has none (a dataset known
/// only by its source and digest, as an MLflow client logs one): the
/// MLflow API's datasets and logged models join the lineage this way.
/// `digest` replaces the manifest's when the version has no files.
pub(crate) fn record_artifact_version(
    ix: &dyn VersionIndex,
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
    match ix.land_version(
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
        Landed::Done(done) => ix.version_by_id(done.0),
        Landed::Missing(hashes) => Err(StoreError::NotFound {
            what: "artifact contents",
            id: hashes.join(", "),
        }),
    }
}

/// Lays the version's files out under `dest`: stored files as hard
/// links to their blobs where the filesystem allows (blobs are
/// read-only), copies otherwise; referenced files copied from where
/// they are, after checking they still hash as recorded.
pub(crate) fn download_artifact_version(
    ix: &dyn VersionIndex,
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
    let changed = verify_artifact_references(ix, version)?;
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
    let manifest = ix.manifest(version.id)?;
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
    let blobs = ix.version_blobs();
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
pub(crate) fn verify_artifact_references(
    ix: &dyn VersionIndex,
    version: &ArtifactVersion,
) -> Result<Vec<ChangedFile>> {
    let manifest = ix.manifest(version.id)?;
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
    let cached = ix.cached_hashes(&just)?;
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
        ix.save_cache(&cache_rows)?;
    }
    changed.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(changed)
}

/// The lineage graph around a version or a run: producers and what
/// they used, upwards; consumers and what they produced, downwards.
pub(crate) fn lineage(ix: &dyn VersionIndex, start: &LineageStart) -> Result<LineageGraph> {
    #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
    enum Key {
        Version(i64),
        Run(String),
    }
    let root = match start {
        LineageStart::Version(id) => Key::Version(*id),
        LineageStart::Run(id) => {
            ix.check_run(id)?;
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
                Key::Version(v) => ix
                    .version_edges(*v)?
                    .into_iter()
                    .filter(|(_, role)| (role == "output") == up)
                    .map(|(run, _)| (Key::Run(run), up))
                    .collect(),
                // A run's code snapshot is left out of the walk: every run
                // of a project shares a few of them, so through one the walk
                // would reach every run and show nothing of how data became
                // a model.
                Key::Run(run) => ix
                    .run_edges(run, labbook_core::artifact_version::CODE_ARTIFACT)?
                    .into_iter()
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
    let mut ids: HashMap<Key, String> = HashMap::new();
    let mut nodes = Vec::with_capacity(order.len());
    for key in &order {
        let node = match key {
            Key::Version(id) => {
                let Some(v) = ix.version_opt(*id)? else {
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
                let found = ix.run_label(id)?;
                let (name, project, status) =
                    found.unwrap_or_else(|| ("(deleted)".into(), String::new(), "deleted".into()));
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

/// The hash of every staged file's place, source and stamp, in order:
/// equal for two stagings only if no file of the tree was touched between.
pub(crate) fn stamps_digest(staged: &[Staged]) -> String {
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

pub(crate) fn role_of(role: &str) -> EdgeRole {
    if role == "input" {
        EdgeRole::Input
    } else {
        EdgeRole::Output
    }
}

/// The id of the one name among `names` (id, project) that `name` may
/// mean: not found when none, ambiguous when it is in several projects.
pub(crate) fn the_one_name(
    name: &str,
    project: Option<&str>,
    names: &[(i64, String)],
) -> Result<i64> {
    match names {
        [] => Err(StoreError::NotFound {
            what: "artifact",
            id: match project {
                Some(p) => format!("{name} (in project {p})"),
                None => name.to_string(),
            },
        }),
        [(id, _)] => Ok(*id),
        several => Err(StoreError::Ambiguous {
            what: "artifacts",
            reference: name.to_string(),
            candidates: several
                .iter()
                .map(|(_, p)| format!("project {p}"))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}
