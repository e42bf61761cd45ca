//! `labbook sync [RUN…] --to URL`: pushes local runs to a labbook server
//! (`labbook_server::sync` says how a pass decides what to send).

use std::cell::Cell;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use labbook_core::{RunRecord, RunStatus};
use labbook_server::client::Client;
use labbook_server::sync::{Progress, SyncedRun, sync_run};
use labbook_store::{Deleted, RunQuery, Store};

use crate::app::{App, default_project, resolve};
use crate::fmt;
use crate::table::{Align, Table};

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Runs to send (id, id prefix or name); by default every run of the
    /// project.
    runs: Vec<String>,
    /// The labbook server to send to (e.g. http://10.0.0.5:5000).
    #[arg(long, env = "LABBOOK_URL", value_name = "URL")]
    to: String,
    /// The project whose runs are sent (default: LABBOOK_PROJECT, else the
    /// store's directory name).
    #[arg(long, short = 'p', conflicts_with = "all_projects")]
    project: Option<String>,
    /// Send the runs of every project.
    #[arg(long)]
    all_projects: bool,
    /// Keep sending what runs still logging add, until every one has ended.
    #[arg(long)]
    watch: bool,
    /// Seconds between passes with --watch.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    interval: f64,
    /// Seconds to keep retrying a server that cannot be reached or fails,
    /// before giving up (run sync again to go on where it stopped).
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    retry: f64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn sync(app: &App, args: SyncArgs) -> Result<ExitCode> {
    if !(args.interval.is_finite() && args.interval > 0.0) {
        return Err(crate::error::hinted(
            format!(
                "--interval {} is not a positive number of seconds",
                args.interval
            ),
            "e.g. --interval 5",
        ));
    }
    if !(args.retry.is_finite() && args.retry >= 0.0) {
        return Err(crate::error::hinted(
            format!("--retry {} is not a number of seconds", args.retry),
            "e.g. --retry 300 to ride out a server restart",
        ));
    }
    let (store, dir) = app.open_existing()?;
    app.reap(store.as_ref());
    let client = Client::new(&args.to)?.retrying_for(Duration::from_secs_f64(args.retry));
    let ids = selected_runs(store.as_ref(), &args, &default_project(&dir))?;
    let bar = Bar::new(!args.json && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let mut totals: Vec<SyncedRun> = Vec::new();
    loop {
        let mut running = 0;
        for id in &ids {
            let run = store.get_run(id)?;
            let pass = sync_run(store.as_ref(), &client, &run, &bar)?;
            if run.status == RunStatus::Running {
                running += 1;
            }
            add_pass(&mut totals, pass);
        }
        if !args.watch || running == 0 {
            break;
        }
        bar.waiting(running);
        std::thread::sleep(Duration::from_secs_f64(args.interval));
    }
    bar.finish();

    let mut out = std::io::stdout().lock();
    if args.json {
        return fmt::print_json(
            &mut out,
            &serde_json::json!({ "server": client.url(), "runs": totals }),
        );
    }
    let paint = app.out();
    let mut table = Table::new(vec![
        ("run".into(), Align::Left),
        ("project".into(), Align::Left),
        ("sent".into(), Align::Left),
        ("points".into(), Align::Right),
        ("output".into(), Align::Right),
        ("notes".into(), Align::Right),
        ("files".into(), Align::Right),
    ]);
    for r in &totals {
        let what = if r.created {
            paint.good("new")
        } else if r.sent_anything() {
            "updated".to_string()
        } else {
            paint.dim("up to date")
        };
        table.push(vec![
            format!("{} {}", paint.id(&r.id), r.name),
            r.project.clone(),
            what,
            r.points.to_string(),
            r.output_chunks.to_string(),
            r.notes.to_string(),
            if r.files == 0 {
                "0".to_string()
            } else {
                format!("{} ({})", r.files, fmt::bytes(r.file_bytes))
            },
        ]);
    }
    for line in table.render(|h| paint.heading(h)) {
        writeln!(out, "{line}")?;
    }
    let points: u64 = totals.iter().map(|r| r.points).sum();
    let changed = totals.iter().filter(|r| r.sent_anything()).count();
    writeln!(
        out,
        "{} of {} runs sent to {} ({points} points)",
        changed,
        totals.len(),
        paint.bold(client.url()),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The ids of the runs to send: those named, else the project's (or every
/// project's) runs, oldest first so a parent arrives before its children.
fn selected_runs(store: &dyn Store, args: &SyncArgs, default: &str) -> Result<Vec<String>> {
    if !args.runs.is_empty() {
        let mut ids = Vec::new();
        for reference in &args.runs {
            let run = resolve(store, reference)?;
            if !ids.contains(&run.id) {
                ids.push(run.id);
            }
        }
        return Ok(ids);
    }
    let project =
        (!args.all_projects).then(|| args.project.clone().unwrap_or_else(|| default.to_string()));
    let mut runs: Vec<RunRecord> = store.list_runs(&RunQuery {
        project,
        deleted: Deleted::Exclude,
        ..Default::default()
    })?;
    runs.sort_by(|a, b| {
        a.created_ms
            .cmp(&b.created_ms)
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(runs.into_iter().map(|r| r.id).collect())
}

/// Folds a pass into the run's total (one row per run under --watch).
fn add_pass(totals: &mut Vec<SyncedRun>, pass: SyncedRun) {
    match totals.iter_mut().find(|t| t.id == pass.id) {
        Some(t) => {
            t.created |= pass.created;
            t.updated |= pass.updated;
            t.environment |= pass.environment;
            t.points += pass.points;
            t.output_chunks += pass.output_chunks;
            t.notes += pass.notes;
            t.files += pass.files;
            t.file_bytes += pass.file_bytes;
            t.status = pass.status;
        }
        None => totals.push(pass),
    }
}

/// The progress bar on stderr, counting points and file bytes (a point
/// weighs as 16 bytes, about what it costs raw).
struct Bar {
    bar: Option<ProgressBar>,
    points: Cell<u64>,
    bytes: Cell<u64>,
}

const BYTES_PER_POINT: u64 = 16;

impl Bar {
    fn new(shown: bool) -> Bar {
        let bar = shown.then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} {bar:30} {percent:>3}% {msg} ({elapsed})")
            {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Bar {
            bar,
            points: Cell::new(0),
            bytes: Cell::new(0),
        }
    }

    fn show(&self, run: Option<&str>) {
        if let Some(bar) = &self.bar {
            let run = run.map(|r| format!("{r}: ")).unwrap_or_default();
            bar.set_message(format!(
                "{run}{} points, {}",
                self.points.get(),
                fmt::bytes(self.bytes.get())
            ));
        }
    }

    fn waiting(&self, running: usize) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{} points, {}; waiting for {running} running run(s)",
                self.points.get(),
                fmt::bytes(self.bytes.get())
            ));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn planned(&self, run: &RunRecord, points: u64, file_bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc_length(points * BYTES_PER_POINT + file_bytes);
        }
        self.show(Some(&run.name));
    }

    fn sent(&self, points: u64, file_bytes: u64) {
        self.points.set(self.points.get() + points);
        self.bytes.set(self.bytes.get() + file_bytes);
        if let Some(bar) = &self.bar {
            bar.inc(points * BYTES_PER_POINT + file_bytes);
        }
        self.show(None);
    }
}
