//! `labbook init`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use labbook_store::private::{SHARED_DIR_MODE, create_store_dir};

use crate::InitArgs;
use crate::app::{App, open_store};

pub fn run(app: &App, args: InitArgs) -> Result<ExitCode> {
    let dir = app.init_dir();
    let existed = dir.is_dir();
    if args.shared {
        create_store_dir(&dir, SHARED_DIR_MODE)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        if existed {
            share_with_group(&dir)
                .with_context(|| format!("cannot open {} to its group", dir.display()))?;
        }
    }
    // Opening creates the directory and the database, and is a no-op on an
    // existing store apart from pending migrations.
    drop(open_store(&dir)?);
    let shown = std::fs::canonicalize(&dir).unwrap_or(dir);
    let mut out = std::io::stdout().lock();
    let whose = if args.shared {
        "shared with its group"
    } else {
        "private to you"
    };
    if existed {
        writeln!(
            out,
            "labbook store already exists in {} ({whose})",
            shown.display()
        )?;
    } else {
        writeln!(
            out,
            "Initialized labbook store in {} ({whose})",
            shown.display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Gives the group of an existing store what its owner has: the directory
/// becomes 2770 (new files keep its group), files and folders in it gain
/// the group's read and write (and search, for folders).
fn share_with_group(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(SHARED_DIR_MODE))?;
        let mut pending = vec![dir.to_path_buf()];
        while let Some(folder) = pending.pop() {
            for entry in std::fs::read_dir(&folder)? {
                let entry = entry?;
                let kind = entry.file_type()?;
                if kind.is_symlink() {
                    continue;
                }
                let mode = entry.metadata()?.permissions().mode();
                let shared = if kind.is_dir() {
                    pending.push(entry.path());
                    mode | 0o2070
                } else {
                    mode | 0o060
                };
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(shared))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
