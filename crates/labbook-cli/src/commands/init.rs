//! `labbook init`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use crate::app::{App, open_store};

pub fn run(app: &App) -> Result<ExitCode> {
    let dir = app.init_dir();
    let existed = dir.is_dir();
    // Opening creates the directory and the database, and is a no-op on an
    // existing store apart from pending migrations.
    drop(open_store(&dir)?);
    let shown = std::fs::canonicalize(&dir).unwrap_or(dir);
    let mut out = std::io::stdout().lock();
    if existed {
        writeln!(out, "labbook store already exists in {}", shown.display())?;
    } else {
        writeln!(out, "Initialized labbook store in {}", shown.display())?;
    }
    Ok(ExitCode::SUCCESS)
}
