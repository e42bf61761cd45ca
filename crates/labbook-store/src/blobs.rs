//! Where artifact contents live. Every stored file is kept once, named by
//! the BLAKE3 hash of its bytes, in one of three places: the store's own
//! `artifacts/blobs/` folder (the default), a folder elsewhere (a shared
//! filesystem), or an S3-compatible bucket. The index that maps paths and
//! versions to hashes stays in the database; this module only moves bytes.
//!
//! Writers first land a file in the store's `artifacts/tmp/` (hashing it as
//! it streams), then [`Blobs::stage`] it outside the write lock (an upload
//! to a bucket, which may take long) and [`Blobs::place`] it under the
//! lock, where blob removal also happens: so a concurrent delete of the
//! same contents can never remove a blob between its placing and its
//! recording. A crash leaves at worst an unreferenced blob, which `gc`
//! frees, never a recorded path without contents.
//!
//! The location is chosen once per store and written to
//! `artifacts/location`, so every later opening of the store (the CLI, the
//! SDK, another `serve`) finds its contents. Credentials are never written
//! there: a bucket is reached with the `AWS_*` variables of the process.

mod local;
#[cfg(feature = "s3")]
mod object;

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};
use crate::versions::Placement;

pub(crate) use local::{LocalBlobs, copy_file_replacing, real_dir_below, sync_filesystem};

/// Where a store keeps its artifacts' contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactLocation {
    /// `artifacts/blobs/` inside the store directory.
    InStore,
    /// A folder outside the store (`file:///shared/path`).
    Folder(PathBuf),
    /// A bucket of an S3-compatible server (`s3://bucket/prefix`).
    S3 { bucket: String, prefix: String },
}

impl ArtifactLocation {
    /// Parses `s3://bucket[/prefix]`, `file:///absolute/path`, or `store`.
    pub fn parse(text: &str) -> std::result::Result<ArtifactLocation, String> {
        let text = text.trim();
        if text == "store" {
            return Ok(ArtifactLocation::InStore);
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                })
                && !bucket.starts_with(['-', '.'])
                && !bucket.ends_with(['-', '.']);
            if !valid_bucket {
                return Err(format!(
                    "{bucket:?} is not a bucket name (3 to 63 lowercase letters, digits, '-' or '.')"
                ));
            }
            let prefix = prefix.trim_matches('/');
            if prefix
                .split('/')
                .any(|part| part == "." || part == ".." || (part.is_empty() && !prefix.is_empty()))
                || prefix.chars().any(char::is_control)
            {
                return Err(format!("{prefix:?} is not a plain key prefix"));
            }
            return Ok(ArtifactLocation::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        if let Some(path) = text.strip_prefix("file://") {
            let path = Path::new(path);
            if !path.is_absolute() {
                return Err(
                    "a file:// location needs an absolute path (file:///shared/path)".into(),
                );
            }
            if path
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err("a file:// location may not contain '..'".into());
            }
            return Ok(ArtifactLocation::Folder(path.to_path_buf()));
        }
        Err(format!(
            "{text:?} is not an artifact location: use s3://bucket/prefix or file:///absolute/path"
        ))
    }

    /// The location as [`ArtifactLocation::parse`] reads it.
    pub fn url(&self) -> String {
        match self {
            ArtifactLocation::InStore => "store".to_string(),
            ArtifactLocation::Folder(path) => format!("file://{}", path.display()),
            ArtifactLocation::S3 { bucket, prefix } if prefix.is_empty() => {
                format!("s3://{bucket}")
            }
            ArtifactLocation::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// The file, inside the store directory, naming where its artifacts live.
pub(crate) const LOCATION_FILE: &str = "location";

/// What a place for artifact contents does. Each method names contents by
/// their hash; none knows paths, versions or runs.
pub(crate) trait Blobs: Send + Sync {
    /// Where the contents are, for messages.
    fn location(&self) -> ArtifactLocation;
    /// An error unless contents can be written there now.
    fn check(&self) -> Result<()>;
    /// The slow part of storing `temp` as `hash`, done before the write
    /// lock: bytes uploaded (0 where placing is a rename, or the contents
    /// are already there). `temp` stays where it is.
    fn stage(&self, temp: &Path, hash: &str) -> Result<u64>;
    /// Makes `temp` (synced, named by the hash of its bytes) the blob
    /// `hash`, under the write lock; `temp` is gone afterwards. Bytes newly
    /// stored.
    fn place(&self, temp: &Path, hash: &str) -> Result<u64>;
    /// Whether the blob is there.
    fn contains(&self, hash: &str) -> Result<bool>;
    /// The blob's bytes, streamed.
    fn open(&self, hash: &str) -> Result<Box<dyn Read + Send>>;
    /// Removes blobs (under the write lock): whether each went.
    fn remove(&self, hashes: &[&str]) -> Vec<bool>;
    /// Every blob there, with its size.
    fn list(&self) -> Result<Vec<(String, u64)>>;
    /// Writes the blob to `target`, as `placement` asks where it can.
    fn fetch(&self, hash: &str, target: &Path, placement: Placement) -> Result<()>;
    /// Bytes that may still be written, where that is known.
    fn space_available(&self) -> Option<u64>;
    /// Makes blobs placed so far durable.
    fn sync(&self) -> Result<()>;
}

/// The blobs of the store in `dir`, as its location file says.
pub(crate) fn open(dir: &Path) -> Box<dyn Blobs> {
    match recorded(dir) {
        Ok(location) => connect(dir, &location),
        Err(e) => Box::new(Unreachable(e.to_string(), ArtifactLocation::InStore)),
    }
}

/// The location the store in `dir` has recorded (the store's own folder
/// when it has recorded none).
pub(crate) fn recorded(dir: &Path) -> Result<ArtifactLocation> {
    let file = dir.join("artifacts").join(LOCATION_FILE);
    match std::fs::read_to_string(&file) {
        Ok(text) => ArtifactLocation::parse(&text).map_err(|problem| {
            StoreError::Damaged(format!(
                "{} names no artifact location: {problem}",
                file.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ArtifactLocation::InStore),
        Err(source) => Err(StoreError::Io {
            context: format!("cannot read {}", file.display()),
            source,
        }),
    }
}

pub(crate) fn connect(dir: &Path, location: &ArtifactLocation) -> Box<dyn Blobs> {
    match location {
        ArtifactLocation::InStore => Box::new(LocalBlobs::new(
            dir.join("artifacts").join("blobs"),
            dir.to_path_buf(),
            location.clone(),
        )),
        ArtifactLocation::Folder(folder) => Box::new(LocalBlobs::new(
            folder.join("blobs"),
            folder.clone(),
            location.clone(),
        )),
        #[cfg(feature = "s3")]
        ArtifactLocation::S3 { bucket, prefix } => match object::ObjectBlobs::new(bucket, prefix) {
            Ok(blobs) => Box::new(blobs),
            Err(e) => Box::new(Unreachable(e.to_string(), location.clone())),
        },
        #[cfg(not(feature = "s3"))]
        ArtifactLocation::S3 { .. } => Box::new(Unreachable(
            format!(
                "this store keeps its artifacts in {}, and this build has no S3 support: use the labbook command or a labbook server",
                location.url()
            ),
            location.clone(),
        )),
    }
}

/// Contents that cannot be reached at all (a damaged location file, a
/// bucket this build cannot speak to): every call says why.
#[cfg(feature = "postgres")]
pub(crate) fn unreachable(reason: String, location: ArtifactLocation) -> Box<dyn Blobs> {
    Box::new(Unreachable(reason, location))
}

struct Unreachable(String, ArtifactLocation);

impl Unreachable {
    fn fail<T>(&self) -> Result<T> {
        Err(StoreError::Unavailable(self.0.clone()))
    }
}

impl Blobs for Unreachable {
    fn location(&self) -> ArtifactLocation {
        self.1.clone()
    }
    fn check(&self) -> Result<()> {
        self.fail()
    }
    fn stage(&self, _: &Path, _: &str) -> Result<u64> {
        self.fail()
    }
    fn place(&self, _: &Path, _: &str) -> Result<u64> {
        self.fail()
    }
    fn contains(&self, _: &str) -> Result<bool> {
        self.fail()
    }
    fn open(&self, _: &str) -> Result<Box<dyn Read + Send>> {
        self.fail()
    }
    fn remove(&self, hashes: &[&str]) -> Vec<bool> {
        vec![false; hashes.len()]
    }
    fn list(&self) -> Result<Vec<(String, u64)>> {
        self.fail()
    }
    fn fetch(&self, _: &str, _: &Path, _: Placement) -> Result<()> {
        self.fail()
    }
    fn space_available(&self) -> Option<u64> {
        None
    }
    fn sync(&self) -> Result<()> {
        self.fail()
    }
}

/// Whether `name` is a blob's name: 64 hex digits. Nothing else found in a
/// blob folder or bucket is ever listed or removed.
/// Writes `data` into the new file `tmp` (made with `modes`), hashing it as
/// it streams, and syncs it: its BLAKE3 hash and size. A failed write
/// leaves no file behind.
pub(crate) fn spool_hashed(
    data: &mut dyn Read,
    tmp: &Path,
    modes: crate::private::Modes,
) -> std::io::Result<(String, u64)> {
    use std::io::Write as _;
    let written = (|| {
        let mut file = modes.create_new(tmp)?;
        let mut hasher = blake3::Hasher::new();
        let size = crate::content_hash::stream(data, |chunk| {
            hasher.update(chunk);
            file.write_all(chunk)
        })?;
        file.sync_all()?;
        Ok((hasher.finalize().to_hex().to_string(), size))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    written
}

/// How old a file in a spool folder must be to count as left by a writer
/// that died.
const STALE_TEMP_MS: u64 = 24 * 3600 * 1000;

/// Removes (or with `dry_run` only counts) the files in the spool folder
/// `dir` older than a day: what writers that died left.
pub(crate) fn sweep_stale_temps(dir: &Path, dry_run: bool) -> u64 {
    let Ok(temps) = std::fs::read_dir(dir) else {
        return 0;
    };
    let cutoff = std::time::SystemTime::now() - std::time::Duration::from_millis(STALE_TEMP_MS);
    let mut stale = 0;
    for temp in temps.flatten() {
        let old = temp
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < cutoff);
        if old && temp.file_type().is_ok_and(|t| t.is_file()) {
            stale += 1;
            if !dry_run {
                let _ = std::fs::remove_file(temp.path());
            }
        }
    }
    stale
}

pub(crate) fn is_blob_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::ArtifactLocation;

    #[test]
    fn locations_parse_and_print_back() {
        for text in [
            "s3://bucket",
            "s3://my-bucket/team/artifacts",
            "file:///srv/shared",
            "store",
        ] {
            let location = ArtifactLocation::parse(text).unwrap();
            assert_eq!(location.url(), text);
        }
        assert_eq!(
            ArtifactLocation::parse("s3://bucket/a/b/").unwrap(),
            ArtifactLocation::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into()
            }
        );
    }

    #[test]
    fn bad_locations_are_refused_with_the_reason() {
        for (text, says) in [
            ("s3://", "bucket name"),
            ("s3://UPPER/x", "bucket name"),
            ("s3://bucket/../x", "key prefix"),
            ("s3://bucket/a//b", "key prefix"),
            ("file://relative/path", "absolute"),
            ("file:///srv/../etc", "'..'"),
            ("http://host/x", "not an artifact location"),
        ] {
            let e = ArtifactLocation::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
