//! Commands that change a run's annotations: tag, note, rm, restore.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use labbook_core::RunRecord;
use labbook_store::{RunPatch, Store};

use crate::app::{App, resolve};
use crate::commands::run::split_tags;
use crate::fmt::now_ms;
use crate::{NoteArgs, RmArgs, RunsArgs, TagArgs};

fn label(app: &App, run: &RunRecord) -> String {
    let paint = app.out();
    format!("{} ({})", paint.bold(&run.name), paint.id(&run.id))
}

pub fn tag(app: &App, args: TagArgs) -> Result<ExitCode> {
    let (store, _) = app.open_existing()?;
    let run = resolve(&*store, &args.run)?;
    let tags = split_tags(&args.tags);
    let patch = if args.remove {
        RunPatch {
            remove_tags: tags,
            ..RunPatch::default()
        }
    } else {
        RunPatch {
            add_tags: tags,
            ..RunPatch::default()
        }
    };
    store.update_run(&run.id, &patch)?;
    let run = store.get_run(&run.id)?;
    let shown = if run.tags.is_empty() {
        app.out().dim("(no tags)")
    } else {
        run.tags.join(", ")
    };
    writeln!(std::io::stdout().lock(), "{}: {shown}", label(app, &run))?;
    Ok(ExitCode::SUCCESS)
}

pub fn note(app: &App, args: NoteArgs) -> Result<ExitCode> {
    let (store, _) = app.open_existing()?;
    let run = resolve(&*store, &args.run)?;
    let text = args.text.join(" ");
    store.add_note(&run.id, &text, now_ms())?;
    let count = store.notes(&run.id)?.len();
    let s = if count == 1 { "y" } else { "ies" };
    writeln!(
        std::io::stdout().lock(),
        "noted on {} ({count} notebook entr{s})",
        label(app, &run)
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves every reference before changing anything, so a typo in the
/// third id does not leave the first two deleted.
fn resolve_all(store: &dyn Store, refs: &[String]) -> Result<Vec<RunRecord>> {
    let mut runs: Vec<RunRecord> = Vec::with_capacity(refs.len());
    for reference in refs {
        let run = resolve(store, reference)?;
        if !runs.iter().any(|r| r.id == run.id) {
            runs.push(run);
        }
    }
    Ok(runs)
}

pub fn remove(app: &App, args: RmArgs) -> Result<ExitCode> {
    let (store, _) = app.open_existing()?;
    let runs = resolve_all(&*store, &args.runs)?;
    let mut out = std::io::stdout().lock();
    if args.purge {
        for run in &runs {
            // The files first: a purge cut short leaves a run to purge
            // again, never files that no run owns.
            let files = match labbook_server::run_artifact_dir(&*store, run) {
                Some(dir) => match store.delete_artifacts(&dir) {
                    Ok(n) => n,
                    Err(labbook_store::StoreError::NotFound { .. }) => 0,
                    Err(e) => return Err(e.into()),
                },
                None => 0,
            };
            store.purge_run(&run.id)?;
            writeln!(out, "deleted {} for good ({files} files)", label(app, run))?;
        }
        writeln!(
            out,
            "`labbook gc` frees the contents nothing else references"
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut deleted = Vec::new();
    for run in &runs {
        if run.deleted_ms.is_some() {
            writeln!(out, "{} was already deleted", label(app, run))?;
            continue;
        }
        store.delete_run(&run.id, now_ms())?;
        writeln!(out, "deleted {}", label(app, run))?;
        deleted.push(run.id.as_str());
    }
    if !deleted.is_empty() {
        writeln!(out, "undo with: labbook restore {}", deleted.join(" "))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn restore(app: &App, args: RunsArgs) -> Result<ExitCode> {
    let (store, _) = app.open_existing()?;
    let runs = resolve_all(&*store, &args.runs)?;
    let mut out = std::io::stdout().lock();
    for run in &runs {
        if run.deleted_ms.is_none() {
            writeln!(out, "{} is not deleted", label(app, run))?;
            continue;
        }
        store.restore_run(&run.id)?;
        writeln!(out, "restored {}", label(app, run))?;
    }
    Ok(ExitCode::SUCCESS)
}
