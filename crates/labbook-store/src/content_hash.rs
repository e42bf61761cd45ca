//! Content hashes of files logged or used as artifacts (issue 11): blake3,
//! as the blob store names its blobs, read in a stream (never whole into
//! memory), and refused when the file changes while it is read, so a
//! version's manifest never records contents that were never on disk.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use labbook_core::artifact_version::{Manifest, ManifestEntry};

use crate::error::{Result, StoreError};

/// A file's content hash (hex) and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHash {
    pub hash: String,
    pub size: u64,
}

/// What identifies a file's contents without reading them: what changes
/// when it is written to, replaced, or has its times set back. The hash
/// cache keys on it, as DVC's state database and git's index do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl FileStamp {
    /// The wall clock, in the stamps' unit.
    pub fn now_ns() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64)
    }

    pub fn of(meta: &std::fs::Metadata) -> FileStamp {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            FileStamp {
                dev: meta.dev(),
                ino: meta.ino(),
                size: meta.len(),
                mtime_ns: meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec(),
                ctime_ns: meta.ctime().saturating_mul(1_000_000_000) + meta.ctime_nsec(),
            }
        }
        #[cfg(not(unix))]
        {
            let ns = |t: std::io::Result<std::time::SystemTime>| {
                t.ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos() as i64)
            };
            FileStamp {
                dev: 0,
                ino: 0,
                size: meta.len(),
                mtime_ns: ns(meta.modified()),
                ctime_ns: ns(meta.created()),
            }
        }
    }
}

fn changed_while_hashed(path: &Path) -> StoreError {
    labbook_core::ValidationError::new(
        "path",
        format!(
            "{} changed while it was hashed; log it again once it is written",
            path.display()
        ),
    )
    .into()
}

/// Hashes the file at `path`. An error names the file when it cannot be
/// read, is not a regular file, or changed while it was hashed (its size,
/// modification time or identity differ before and after, or it did not
/// hold as many bytes as it said).
pub fn hash_file(path: &Path) -> Result<FileHash> {
    hash_and_copy(path, None).map(|(h, _)| h)
}

/// Hashes the file at `path` as [`hash_file`] does, writing its bytes to
/// `copy` as they are read (one read serves both), and returns the stamp
/// the file had while it was read.
pub fn hash_and_copy(path: &Path, mut copy: Option<&mut File>) -> Result<(FileHash, FileStamp)> {
    let io = |what: &str| {
        let context = format!("{}: {what}", path.display());
        move |source| StoreError::Io { context, source }
    };
    let mut file = File::open(path).map_err(io("cannot be read"))?;
    let before = file.metadata().map_err(io("cannot be read"))?;
    if !before.is_file() {
        return Err(labbook_core::ValidationError::new(
            "path",
            format!("{} is not a regular file", path.display()),
        )
        .into());
    }
    let mut hasher = blake3::Hasher::new();
    let mut write_error = None;
    let size = stream(&mut file, |chunk| {
        hasher.update(chunk);
        if let Some(out) = copy.as_deref_mut() {
            out.write_all(chunk).map_err(|e| {
                let kind = e.kind();
                write_error = Some(e);
                std::io::Error::from(kind)
            })?;
        }
        Ok(())
    });
    if let Some(e) = write_error {
        return Err(StoreError::Io {
            context: format!("cannot copy {} into the store", path.display()),
            source: e,
        });
    }
    let size = size.map_err(io("cannot be read"))?;
    // The path's current file, not only the open one: a file replaced by a
    // rename while it was read is a change too.
    let after = std::fs::metadata(path).map_err(io("disappeared while it was hashed"))?;
    let stamp = FileStamp::of(&before);
    if stamp != FileStamp::of(&after) || size != before.len() {
        return Err(changed_while_hashed(path));
    }
    Ok((
        FileHash {
            hash: hasher.finalize().to_hex().to_string(),
            size,
        },
        stamp,
    ))
}

/// Reads `data` to its end in 256 KiB pieces, handing each to `each`
/// (retrying reads a signal interrupted); the number of bytes read.
pub(crate) fn stream(
    data: &mut dyn Read,
    mut each: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => return Ok(size),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        each(&buf[..n])?;
        size += n as u64;
    }
}

/// A file found under a folder: its path relative to the folder (`/`
/// separators), the file to read (a link's target) and its stamp.
#[derive(Debug, Clone)]
pub struct WalkedFile {
    pub rel: String,
    pub path: PathBuf,
    pub stamp: FileStamp,
}

/// Every file under `root`, sorted by relative path. The walk keeps its
/// own stack, so no depth of folders can exhaust the thread's. A symbolic
/// link is followed when it resolves inside `root` (its target's contents
/// are recorded under the link's path) and refused, by name, when it points
/// outside or at a folder: a version never silently records less, or other
/// data, than the folder shows.
pub fn walk_tree(root: &Path) -> Result<Vec<WalkedFile>> {
    // The message is built only on failure: a walk makes tens of
    // thousands of calls that succeed.
    fn io<'a>(at: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
        move |source| StoreError::Io {
            context: format!("{}: {what}", at.display()),
            source,
        }
    }
    fn utf8_name(path: &Path, name: &std::ffi::OsStr) -> Result<String> {
        name.to_str().map(str::to_string).ok_or_else(|| {
            labbook_core::ValidationError::new(
                "path",
                format!("{}: the name is not UTF-8", path.display()),
            )
            .into()
        })
    }
    let join = |prefix: &str, name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        }
    };
    let real_root = std::fs::canonicalize(root).map_err(io(root, "cannot be read"))?;
    // First every folder, from the entries' types alone (no stat); then
    // the folders' files are stat'ed on every core, each relative to its
    // open folder. Stats are most of the cost of re-checking a big tree.
    let mut dirs = vec![(String::new(), real_root.clone())];
    let mut next = 0;
    while let Some((prefix, dir)) = dirs.get(next).cloned() {
        next += 1;
        for item in std::fs::read_dir(&dir).map_err(io(&dir, "cannot be read"))? {
            let item = item.map_err(io(&dir, "cannot be read"))?;
            let kind = item.file_type().map_err(io(&dir, "cannot be read"))?;
            if kind.is_dir() {
                let path = item.path();
                let name = utf8_name(&path, &item.file_name())?;
                dirs.push((join(&prefix, &name), path));
            }
        }
    }
    let per_dir = parallel_map(&dirs, |(prefix, dir)| {
        let mut files = Vec::new();
        for item in std::fs::read_dir(dir).map_err(io(dir, "cannot be read"))? {
            let item = item.map_err(io(dir, "cannot be read"))?;
            let path = item.path();
            let kind = item.file_type().map_err(io(&path, "cannot be read"))?;
            if kind.is_dir() {
                continue;
            }
            let rel = join(prefix, &utf8_name(&path, &item.file_name())?);
            let (target, meta) = if kind.is_symlink() {
                let real = std::fs::canonicalize(&path).map_err(io(&path, "is a broken link"))?;
                if !real.starts_with(&real_root) {
                    return Err(labbook_core::ValidationError::new(
                        "path",
                        format!(
                            "{} links outside the folder (to {}); links are followed only inside it: copy the file in or add it on its own",
                            path.display(),
                            real.display()
                        ),
                    )
                    .into());
                }
                let meta = std::fs::metadata(&real).map_err(io(&real, "cannot be read"))?;
                if meta.is_dir() {
                    // A link to a folder inside the root would be walked
                    // twice, or forever if it points at an ancestor.
                    return Err(labbook_core::ValidationError::new(
                        "path",
                        format!(
                            "{} links to a folder; add the folder itself",
                            real.display()
                        ),
                    )
                    .into());
                }
                (real, meta)
            } else {
                let meta = item.metadata().map_err(io(&path, "cannot be read"))?;
                (path, meta)
            };
            if !meta.is_file() {
                return Err(labbook_core::ValidationError::new(
                    "path",
                    format!("{} is neither a file nor a folder", target.display()),
                )
                .into());
            }
            files.push(WalkedFile {
                rel,
                path: target,
                stamp: FileStamp::of(&meta),
            });
        }
        Ok(files)
    })?;
    let mut files: Vec<WalkedFile> = per_dir.into_iter().flatten().collect();
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(files)
}

/// The files under `root`, hashed in parallel, as manifest entries whose
/// paths are relative to `root` (see [`walk_tree`]).
pub fn hash_tree(root: &Path) -> Result<Vec<ManifestEntry>> {
    let files = walk_tree(root)?;
    let hashed = parallel_map(&files, |f| hash_file(&f.path))?;
    Ok(files
        .into_iter()
        .zip(hashed)
        .map(|(f, h)| ManifestEntry {
            path: f.rel,
            size: h.size,
            hash: h.hash,
            reference: None,
        })
        .collect())
}

/// `work` applied to every item on as many threads as there are cores, the
/// results in the items' order; the first error met is the answer.
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    work: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let results: Vec<Result<Vec<(usize, R)>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        if failed.load(std::sync::atomic::Ordering::Relaxed) {
                            return Ok(done);
                        }
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            return Ok(done);
                        };
                        match work(item) {
                            Ok(r) => done.push((i, r)),
                            Err(e) => {
                                failed.store(true, std::sync::atomic::Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(StoreError::Internal("a worker thread panicked".into()))
                })
            })
            .collect()
    });
    let mut out: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    for part in results {
        for (i, r) in part? {
            out[i] = Some(r);
        }
    }
    out.into_iter()
        .enumerate()
        .map(|(i, r)| r.ok_or_else(|| StoreError::Internal(format!("item {i} was not done"))))
        .collect()
}

/// A version's digest: the hash of its manifest's canonical encoding.
pub fn manifest_digest(manifest: &Manifest) -> String {
    blake3::hash(&manifest.canonical_bytes())
        .to_hex()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_hashes_as_its_contents_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        let contents: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &contents).unwrap();
        let got = hash_file(&path).unwrap();
        assert_eq!(got.size, contents.len() as u64);
        assert_eq!(got.hash, blake3::hash(&contents).to_hex().to_string());
    }

    #[test]
    fn a_folder_or_a_missing_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = hash_file(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let missing = dir.path().join("nope.csv");
        let err = hash_file(&missing).unwrap_err().to_string();
        assert!(
            err.contains("nope.csv") && err.contains("cannot be read"),
            "{err}"
        );
    }

    #[test]
    fn a_file_replaced_while_it_is_hashed_is_refused() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grows.bin");
        const BIG: usize = 16 * 1024 * 1024;
        std::fs::write(&path, vec![1u8; BIG]).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let path = path.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                // Replaced by a rename, as editors and writers of
                // checkpoints do, again and again until a read catches it:
                // on a loaded machine the two threads may not overlap soon.
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let tmp = path.with_extension(format!("tmp{i}"));
                    std::fs::write(&tmp, vec![(i % 251) as u8; BIG]).unwrap();
                    std::fs::rename(&tmp, &path).unwrap();
                    i += 1;
                }
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut refused = 0;
        while refused == 0 && std::time::Instant::now() < deadline {
            match hash_file(&path) {
                Err(e) if e.to_string().contains("changed while it was hashed") => refused += 1,
                Err(e) => panic!("unexpected error: {e}"),
                Ok(h) => assert_eq!(h.size, BIG as u64),
            }
        }
        stop.store(true, Ordering::SeqCst);
        writer.join().unwrap();
        assert!(refused > 0, "no hash saw the file change in 60 s");
    }

    #[test]
    fn a_digest_follows_the_manifest_only() {
        let entry = |p: &str, h: &str| ManifestEntry {
            path: p.into(),
            size: 1,
            hash: h.into(),
            reference: None,
        };
        let a = Manifest::new(vec![entry("x", "aa"), entry("y", "bb")]).unwrap();
        let b = Manifest::new(vec![entry("y", "bb"), entry("x", "aa")]).unwrap();
        let c = Manifest::new(vec![entry("x", "aa"), entry("y", "bc")]).unwrap();
        assert_eq!(manifest_digest(&a), manifest_digest(&b));
        assert_ne!(manifest_digest(&a), manifest_digest(&c));
        assert_eq!(manifest_digest(&a).len(), 64);
    }

    #[test]
    fn a_tree_is_every_file_under_it_by_relative_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("top.txt"), b"top").unwrap();
        std::fs::write(root.join("a/b/deep.bin"), b"deep").unwrap();
        std::fs::write(root.join("a/mid.csv"), b"x,y\n").unwrap();
        let entries = hash_tree(&root).unwrap();
        let got: Vec<_> = entries.iter().map(|e| (e.path.as_str(), e.size)).collect();
        assert_eq!(got, [("a/b/deep.bin", 4), ("a/mid.csv", 4), ("top.txt", 3)]);
        assert_eq!(entries[2].hash, blake3::hash(b"top").to_hex().to_string());
        let m = Manifest::new(entries).unwrap();
        assert_eq!(m.total_size(), 11);
    }

    #[cfg(unix)]
    #[test]
    fn links_inside_are_followed_and_links_outside_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("real.txt"), b"inside").unwrap();
        std::os::unix::fs::symlink(root.join("real.txt"), root.join("alias.txt")).unwrap();
        let entries = hash_tree(&root).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].path, "alias.txt");
        assert_eq!(entries[0].hash, entries[1].hash);

        std::fs::write(dir.path().join("secret"), b"outside").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("leak")).unwrap();
        let err = hash_tree(&root).unwrap_err().to_string();
        assert!(
            err.contains("leak") && err.contains("links outside the folder"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_link_to_a_folder_is_refused_rather_than_walked_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/f"), b"f").unwrap();
        std::os::unix::fs::symlink(&root, root.join("sub/loop")).unwrap();
        let err = hash_tree(&root).unwrap_err().to_string();
        assert!(err.contains("links to a folder"), "{err}");
    }

    #[test]
    fn a_deep_tree_is_walked_without_recursion() {
        let dir = tempfile::tempdir().unwrap();
        let mut at = dir.path().join("d");
        for _ in 0..200 {
            at = at.join("x");
        }
        std::fs::create_dir_all(&at).unwrap();
        std::fs::write(at.join("leaf"), b"1").unwrap();
        let entries = hash_tree(&dir.path().join("d")).unwrap();
        assert_eq!(entries.len(), 1);
        assert!(entries[0].path.ends_with("x/leaf"));
    }
}
