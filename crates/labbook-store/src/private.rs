//! Who may read the store. A store holds configs, notes, command lines and
//! artifacts, so it is private to its owner by default: `.labbook/` is made
//! 0700 and every file in it 0600, whatever the umask. A team that shares a
//! store on one machine makes the directory group-accessible (`labbook init
//! --shared`, or `chmod 2770`): files then take the directory's group bits.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::path::Path;

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};

/// The mode of a new store directory.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// The mode `labbook init --shared` gives the store directory: the group may
/// read and write, and new files inherit the directory's group (setgid).
pub const SHARED_DIR_MODE: u32 = 0o2770;

/// Creates the store directory (and missing parents, with the usual modes)
/// with `mode`; an existing directory is left as it is.
pub fn create_store_dir(dir: &Path, mode: u32) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut builder = DirBuilder::new();
    #[cfg(unix)]
    builder.mode(mode & 0o777);
    match builder.create(dir) {
        Ok(()) => {}
        // Another process made it first: theirs has the same mode.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    // The umask cannot clear bits set explicitly, and the setgid bit is not
    // taken from DirBuilder's mode.
    #[cfg(unix)]
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// The modes for files and subdirectories made inside the store `dir`: its
/// own permission bits (0700 → 0600 files and 0700 folders; 2770 → 0660 and
/// 2770), so a private store stays private and a shared one shared.
#[derive(Debug, Clone, Copy)]
pub struct Modes {
    pub file: u32,
    pub dir: u32,
}

impl Modes {
    /// Files only this user reads, in folders only this user enters.
    pub fn private() -> Modes {
        Modes {
            file: 0o600,
            dir: PRIVATE_DIR_MODE,
        }
    }

    pub fn of(dir: &Path) -> Modes {
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(dir) {
            let bits = meta.mode() & 0o7777;
            return Modes {
                file: bits & 0o666,
                dir: bits,
            };
        }
        let _ = dir;
        Modes::private()
    }

    /// Creates a file that does not exist yet, with the store's file mode
    /// (set explicitly: the umask would take a shared store's group bits).
    pub fn create_new(&self, path: &Path) -> io::Result<File> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(self.file);
        let file = options.open(path)?;
        #[cfg(unix)]
        file.set_permissions(std::fs::Permissions::from_mode(self.file))?;
        Ok(file)
    }

    /// `create_dir_all`, giving each folder it makes the store's folder mode.
    pub fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let missing: Vec<&Path> = path.ancestors().take_while(|p| !p.is_dir()).collect();
        for dir in missing.into_iter().rev() {
            let mut builder = DirBuilder::new();
            #[cfg(unix)]
            builder.mode(self.dir & 0o777);
            match builder.create(dir) {
                Ok(()) => {
                    #[cfg(unix)]
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(self.dir))?;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Opens an existing file of the store for reading without following a
/// symbolic link in its last component: a link planted in the store must
/// not make the server read files outside it.
pub fn open_no_follow(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    options.custom_flags(libc::O_NOFOLLOW);
    options.open(path)
}
