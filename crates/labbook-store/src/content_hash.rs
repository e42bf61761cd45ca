//! Content hashes of files logged or used as artifacts (issue 11): blake3,
//! as the blob store names its blobs, read in a stream (never whole into
//! memory), and refused when the file changes while it is read, so a
//! version's manifest never records contents that were never on disk.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::SystemTime;

use labbook_core::artifact_version::Manifest;

use crate::error::{Result, StoreError};

/// A file's content hash (hex) and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHash {
    pub hash: String,
    pub size: u64,
}

/// What identifies a file's contents without reading them: what changes
/// when it is written to or replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            inode: (meta.dev(), meta.ino()),
        }
    }
}

/// Hashes the file at `path`. An error names the file when it cannot be
/// read, is not a regular file, or changed while it was hashed (its size,
/// modification time or identity differ before and after, or it did not
/// hold as many bytes as it said).
pub fn hash_file(path: &Path) -> Result<FileHash> {
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
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io("cannot be read")(e)),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    // The path's current file, not only the open one: a file replaced by a
    // rename while it was read is a change too.
    let after = std::fs::metadata(path).map_err(io("disappeared while it was hashed"))?;
    if Stamp::of(&before) != Stamp::of(&after) || size != before.len() {
        return Err(labbook_core::ValidationError::new(
            "path",
            format!(
                "{} changed while it was hashed; log it again once it is written",
                path.display()
            ),
        )
        .into());
    }
    Ok(FileHash {
        hash: hasher.finalize().to_hex().to_string(),
        size,
    })
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
    use labbook_core::artifact_version::ManifestEntry;

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
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grows.bin");
        std::fs::write(&path, vec![1u8; 64 * 1024 * 1024]).unwrap();
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                // Replaced by a rename, as editors and writers of
                // checkpoints do, while the first read is under way.
                for i in 0..200u8 {
                    let tmp = path.with_extension(format!("tmp{i}"));
                    std::fs::write(&tmp, [i]).unwrap();
                    std::fs::rename(&tmp, &path).unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            })
        };
        let mut refused = 0;
        for _ in 0..50 {
            match hash_file(&path) {
                Err(e) if e.to_string().contains("changed while it was hashed") => refused += 1,
                Err(e) => panic!("unexpected error: {e}"),
                Ok(h) => assert!(h.size == 1 || h.size == 64 * 1024 * 1024),
            }
        }
        writer.join().unwrap();
        assert!(refused > 0, "no hash saw the file change");
    }

    #[test]
    fn a_digest_follows_the_manifest_only() {
        let entry = |p: &str, h: &str| ManifestEntry {
            path: p.into(),
            size: 1,
            hash: h.into(),
        };
        let a = Manifest::new(vec![entry("x", "aa"), entry("y", "bb")]).unwrap();
        let b = Manifest::new(vec![entry("y", "bb"), entry("x", "aa")]).unwrap();
        let c = Manifest::new(vec![entry("x", "aa"), entry("y", "bc")]).unwrap();
        assert_eq!(manifest_digest(&a), manifest_digest(&b));
        assert_ne!(manifest_digest(&a), manifest_digest(&c));
        assert_eq!(manifest_digest(&a).len(), 64);
    }
}
