//! `labbook backup DEST`: a consistent copy of the store, taken while runs
//! may be writing it (`labbook_store::sqlite::backup` says how).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::app::App;
use crate::fmt;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The directory to create with the copy; it must not exist. Use it
    /// with `--dir DEST` or `LABBOOK_DIR=DEST`, or copy it anywhere once made.
    dest: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn backup(app: &App, args: BackupArgs) -> Result<ExitCode> {
    let (store, dir) = app.open_existing()?;
    let dest = app.cwd.join(&args.dest);
    let report = store.backup(&dest)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        return crate::fmt::print_json(&mut out, &report);
    }
    let paint = app.out();
    writeln!(
        out,
        "copied the store at {} to {}: the database ({}) and {} other files ({})",
        dir.display(),
        paint.bold(&report.dest.display().to_string()),
        fmt::bytes(report.database_bytes),
        report.files,
        fmt::bytes(report.file_bytes),
    )?;
    Ok(ExitCode::SUCCESS)
}
