//! A new store starts as a copy of an empty one built at compile time
//! (`build.rs`): writing its few hundred KB of non-zero bytes and one fsync
//! replaces running every migration's SQL through a fresh write-ahead log
//! (about 2 MB of 32 KiB pages, and a checkpoint) on the first `init()`.
//!
//! The copy is written under a temporary name, synced, then hard-linked to
//! `labbook.db`: the link either creates the file whole or fails because
//! another process's store is already there, so 32 processes creating one
//! store at once all end up opening the same complete file.

use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use crate::private::Modes;

static EXTENTS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/empty_store.extents"));

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Bytes of the empty store at an offset.
type Extent = (u64, &'static [u8]);

/// The empty store's length and its non-zero extents.
fn extents() -> Option<(u64, Vec<Extent>)> {
    let len = read_u64(EXTENTS, 0)?;
    let mut at = 8;
    let mut out = Vec::new();
    while at < EXTENTS.len() {
        let offset = read_u64(EXTENTS, at)?;
        let size = read_u64(EXTENTS, at + 8)? as usize;
        at += 16;
        out.push((offset, EXTENTS.get(at..at + size)?));
        at += size;
    }
    Some((len, out))
}

/// Gives the file's zeros real blocks. Left as holes, they would be
/// allocated only when SQLite first reads them through its memory map, and
/// on a full tmpfs that read is a SIGBUS instead of an error; allocated
/// here, a full disk is a clear "no space" when the store is created.
fn allocate(file: &std::fs::File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let len =
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the descriptor belongs to `file`, open for writing, for the
    // whole call; posix_fallocate only allocates the file's blocks.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Puts the empty store at `path` unless a file is there. Returns false
/// when it could not (a file system without hard links, say): the caller
/// then creates the store the slow way, by running the migrations.
pub(super) fn create(path: &Path, modes: &Modes) -> io::Result<bool> {
    if path.symlink_metadata().is_ok() {
        return Ok(true);
    }
    let Some((len, extents)) = extents() else {
        return Ok(false);
    };
    let tmp = path.with_extension(format!(
        "db.new-{}-{:x}",
        std::process::id(),
        crate::random_bits()
    ));
    let written = (|| {
        let file = modes.create_new(&tmp)?;
        file.set_len(len)?;
        allocate(&file, len)?;
        for (offset, bytes) in &extents {
            file.write_all_at(bytes, *offset)?;
        }
        file.sync_all()
    })();
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::StorageFull => Err(e),
        Err(_) => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_template_is_a_few_extents_of_a_whole_number_of_pages() {
        let (len, extents) = super::extents().expect("the template decodes");
        assert_eq!(len % 32_768, 0);
        let data: usize = extents.iter().map(|(_, b)| b.len()).sum();
        assert!(data < len as usize / 4, "{data} of {len} bytes are data");
        assert!(
            extents
                .windows(2)
                .all(|w| w[0].0 + w[0].1.len() as u64 <= w[1].0)
        );
    }
}
