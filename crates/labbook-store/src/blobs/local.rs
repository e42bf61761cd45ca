//! Blobs as files: `blobs/<first two hex digits>/<hash>`, read-only, under
//! the store directory or a shared folder.
//!
//! Nothing below the base folder is reached through a symbolic link: a
//! link planted there (by another local user of a shared store, or a
//! restored backup) must not make the server read or write outside it.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{ArtifactLocation, Blobs, is_blob_name};
use crate::error::{Result, StoreError};
use crate::private::{Modes, open_no_follow};
use crate::random_bits;
use crate::versions::Placement;

fn io_error(context: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |source| StoreError::Io { context, source }
}

pub(crate) struct LocalBlobs {
    root: PathBuf,
    base: PathBuf,
    location: ArtifactLocation,
}

impl LocalBlobs {
    pub(crate) fn new(root: PathBuf, base: PathBuf, location: ArtifactLocation) -> LocalBlobs {
        LocalBlobs {
            root,
            base,
            location,
        }
    }

    fn path(&self, hash: &str) -> PathBuf {
        self.root.join(hash.get(..2).unwrap_or("00")).join(hash)
    }

    fn real_dir(&self, dir: &Path) -> Result<()> {
        real_dir_below(&self.base, dir)
    }

    fn refuse_links(&self, path: &Path) -> Result<()> {
        refuse_links_below(&self.base, path)
    }
}

/// Creates `dir` (below `base`) as a real folder, refusing one that is, or
/// lies under, a symbolic link.
pub(crate) fn real_dir_below(base: &Path, dir: &Path) -> Result<()> {
    Modes::of(base)
        .create_dir_all(dir)
        .map_err(io_error(format!("cannot create {}", dir.display())))?;
    refuse_links_below(base, dir)
}

/// An error if any component of `path` below `base` is a symbolic link.
pub(crate) fn refuse_links_below(base: &Path, path: &Path) -> Result<()> {
    let Ok(inside) = path.strip_prefix(base) else {
        return Ok(());
    };
    let mut at = base.to_path_buf();
    for part in inside.components() {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(StoreError::Io {
                    context: format!("{} is a symbolic link", at.display()),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "links inside the artifact store are never followed",
                    ),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

impl Blobs for LocalBlobs {
    fn location(&self) -> ArtifactLocation {
        self.location.clone()
    }

    fn check(&self) -> Result<()> {
        self.real_dir(&self.root)
    }

    fn stage(&self, _temp: &Path, _hash: &str) -> Result<u64> {
        Ok(0)
    }

    fn place(&self, temp: &Path, hash: &str) -> Result<u64> {
        let blob = self.path(hash);
        let parent = blob.parent().unwrap_or(&self.root).to_path_buf();
        let placed = self.real_dir(&parent).and_then(|()| {
            match std::fs::rename(temp, &blob) {
                Ok(()) => Ok(()),
                // A shared folder on another filesystem: copied beside the
                // blob, then renamed into place, so no reader sees half.
                Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                    replace_via_staging(&blob, |staging| {
                        std::fs::copy(temp, staging)?;
                        File::open(staging)?.sync_all()
                    })
                    .and_then(|()| std::fs::remove_file(temp))
                }
                Err(e) => Err(e),
            }
            .map_err(io_error(format!("cannot move contents {hash} into place")))
        });
        if placed.is_err() {
            let _ = std::fs::remove_file(temp);
        }
        placed?;
        if let Ok(dir) = File::open(&parent) {
            let _ = dir.sync_all();
        }
        Ok(std::fs::metadata(&blob).map_or(0, |m| m.len()))
    }

    fn contains(&self, hash: &str) -> Result<bool> {
        Ok(std::fs::symlink_metadata(self.path(hash)).is_ok_and(|m| m.is_file()))
    }

    fn open(&self, hash: &str) -> Result<Box<dyn Read + Send>> {
        let blob = self.path(hash);
        self.refuse_links(&blob)?;
        let file =
            open_no_follow(&blob).map_err(io_error(format!("contents {hash} are missing")))?;
        Ok(Box::new(file))
    }

    fn remove(&self, hashes: &[&str]) -> Vec<bool> {
        remove_files(&hashes.iter().map(|h| self.path(h)).collect::<Vec<_>>())
    }

    fn list(&self) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        let Ok(shards) = std::fs::read_dir(&self.root) else {
            return Ok(out);
        };
        for shard in shards.flatten() {
            if !shard.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(files) = std::fs::read_dir(shard.path()) else {
                continue;
            };
            for file in files.flatten() {
                let name = file.file_name();
                let Some(hash) = name.to_str() else { continue };
                if is_blob_name(hash) {
                    out.push((hash.to_string(), file.metadata().map_or(0, |m| m.len())));
                }
            }
        }
        Ok(out)
    }

    fn fetch(&self, hash: &str, target: &Path, placement: Placement) -> Result<()> {
        let blob = self.path(hash);
        if let Some(shard) = blob.parent() {
            self.refuse_links(shard)?;
        }
        match placement {
            Placement::Copy => copy_writable(&blob, target),
            Placement::Link => place_link_or_copy(&blob, target),
        }
        .map_err(io_error(format!("cannot write {}", target.display())))
    }

    fn space_available(&self) -> Option<u64> {
        let probe = if self.root.is_dir() {
            &self.root
        } else {
            &self.base
        };
        free_bytes(probe)
    }

    fn sync(&self) -> Result<()> {
        let probe = if self.root.is_dir() {
            &self.root
        } else {
            &self.base
        };
        sync_filesystem(probe).map_err(io_error(format!("cannot sync {}", probe.display())))
    }
}

/// Makes `target` the blob's contents: a hard link (so a download of many
/// gigabytes costs no copy), or a copy where links cannot be made. A file
/// already there that is not that link is replaced.
fn place_link_or_copy(blob: &Path, target: &Path) -> std::io::Result<()> {
    // The blob itself, never what a link in its place points at.
    let b = std::fs::symlink_metadata(blob)?;
    if !b.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is not a regular file", blob.display()),
        ));
    }
    match std::fs::symlink_metadata(target) {
        #[cfg(unix)]
        Ok(t)
            if {
                use std::os::unix::fs::MetadataExt;
                t.dev() == b.dev() && t.ino() == b.ino()
            } =>
        {
            return Ok(());
        }
        Ok(_) => {}
        // Nothing there: the link is made in place, atomically. If that
        // fails (made meanwhile, or links refused across filesystems),
        // the staged way below replaces or copies.
        Err(_) => {
            if std::fs::hard_link(blob, target).is_ok() {
                return Ok(());
            }
        }
    }
    replace_via_staging(target, |staging| match std::fs::hard_link(blob, staging) {
        Ok(()) => Ok(()),
        Err(_) => {
            std::fs::copy(blob, staging)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(staging, std::fs::Permissions::from_mode(0o444))?;
            }
            Ok(())
        }
    })
}

/// A copy the owner may change (blobs are read-only), for files that are
/// meant to be edited, such as a replay's code.
fn copy_writable(blob: &Path, target: &Path) -> std::io::Result<()> {
    if !std::fs::symlink_metadata(blob)?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is not a regular file", blob.display()),
        ));
    }
    replace_via_staging(target, |staging| {
        std::fs::copy(blob, staging)?;
        make_writable(staging)
    })
}

pub(super) fn make_writable(path: &Path) -> std::io::Result<()> {
    let mut perms = std::fs::metadata(path)?.permissions();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        perms.set_mode(0o644);
    }
    #[cfg(not(unix))]
    perms.set_readonly(false);
    std::fs::set_permissions(path, perms)
}

pub(crate) fn copy_file_replacing(source: &Path, target: &Path) -> std::io::Result<()> {
    replace_via_staging(target, |staging| std::fs::copy(source, staging).map(|_| ()))
}

/// Makes `target` by filling a hidden file beside it and renaming that
/// over it, so a reader never sees a file half made.
pub(super) fn replace_via_staging(
    target: &Path,
    fill: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let staging = target.with_file_name(format!(
        ".{}.labbook-{:016x}",
        target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("file"),
        random_bits()
    ));
    fill(&staging)
        .and_then(|()| std::fs::rename(&staging, target))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&staging);
        })
}

/// Removes the files, several at a time: an unlink waits on the disk (a
/// filesystem mounted with `discard` trims each freed extent before it
/// returns), so the waits overlap even on few cores. Whether each went.
fn remove_files(paths: &[PathBuf]) -> Vec<bool> {
    const AT_ONCE: usize = 16;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done: Vec<std::sync::atomic::AtomicBool> = paths
        .iter()
        .map(|_| std::sync::atomic::AtomicBool::new(false))
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..AT_ONCE.min(paths.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(path) = paths.get(i) else { return };
                    if std::fs::remove_file(path).is_ok() {
                        done[i].store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    done.into_iter().map(|d| d.into_inner()).collect()
}

/// Makes everything written to the filesystem holding `dir` durable with
/// one call, where per-file fsyncs of ten thousand files would take
/// seconds. Elsewhere than Linux each file is synced as it is written.
pub(crate) fn sync_filesystem(dir: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let handle = File::open(dir)?;
        // SAFETY: the descriptor is open for the duration of the call
        // (`handle` outlives it) and syncfs only reads it.
        if unsafe { libc::syncfs(handle.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Bytes available to this user on the filesystem holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: `c_path` is a NUL-terminated string that outlives the
        // call, and `stat` points to writable memory of the struct's size;
        // statvfs fills all of it when it returns 0, and only then is it read.
        let ok = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) } == 0;
        if !ok {
            return None;
        }
        // SAFETY: statvfs returned 0, so the struct is initialized.
        let stat = unsafe { stat.assume_init() };
        // The fields are u64 on 64-bit Linux, narrower on other targets.
        #[allow(clippy::useless_conversion)]
        let (blocks, block_size) = (u64::from(stat.f_bavail), u64::from(stat.f_frsize));
        Some(blocks.saturating_mul(block_size))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}
