//! `labbook queue`: tonight's experiments, each with the reason it runs.
//! The queue is a study of kind `queue` per project whose trials are jobs:
//! a command (with its why, GPUs and folder) or a sweep to run trials of,
//! so jobs and sweep trials share one scheduler and the crash safety of a
//! claim: a runner killed at any moment leaves its jobs running in the
//! store, the next runner marks them crashed and queues each once more.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use labbook_capture::hostname;
use labbook_core::RunStatus;
use labbook_search::TrialState;
use labbook_search::sweep::SweepSpec;
use labbook_store::{
    Claim, Claimed, NewStudy, NewTrial, SqliteStore, Store, StudyKind, StudyRecord, TrialPatch,
    TrialRecord, Worker,
};

use crate::app::{App, default_project};
use crate::commands::run::Launch;
use crate::commands::sweep;
use crate::commands::sweep::{LocalSweep, LsArgs, SweepHome};
use crate::error::hinted;
use crate::fmt::{self, now_ms};
use crate::table::{Align, Table};
use labbook_store::sweeps::Ending;

/// The queue's name in each project.
pub const QUEUE_NAME: &str = "labbook-queue";

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Queue a command (`-- CMD…`), a sweep (`--sweep ID`), or tonight's
    /// plan (`--file plan.yaml`).
    Add(AddArgs),
    /// Run the queue's jobs on free slots until it is empty (or --until).
    Run(RunArgs),
    /// List the queue's jobs.
    Ls(LsArgs),
    /// Take a waiting job out of the queue.
    Rm(RmArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// What the job tests and why; its run says it.
    #[arg(long)]
    pub why: Option<String>,
    /// GPUs the job needs at once.
    #[arg(long, default_value_t = 0)]
    pub gpus: u32,
    #[arg(long)]
    pub project: Option<String>,
    /// A plan: a YAML file with `jobs:` (each a `command` or a `sweep`,
    /// with its `why` and `gpus`).
    #[arg(long, conflicts_with_all = ["sweep", "command"])]
    pub file: Option<std::path::PathBuf>,
    /// Run trials of this sweep (its id or name) as one job.
    #[arg(long, conflicts_with = "command")]
    pub sweep: Option<String>,
    /// With --sweep: how many trials (default: until the sweep is done).
    #[arg(long)]
    pub count: Option<u64>,
    /// The command to run.
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Start no job after this local time (HH:MM, the next one to come).
    #[arg(long)]
    pub until: Option<String>,
    /// GPUs to share out (CUDA_VISIBLE_DEVICES).
    #[arg(long, value_delimiter = ',')]
    pub gpus: Vec<String>,
    /// Jobs to run at once when no GPUs are given.
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    #[arg(long)]
    pub project: Option<String>,
    /// When the queue is done: write the report of the night and run this
    /// shell command with it (`{report}` is its path; also $LABBOOK_REPORT).
    #[arg(long)]
    pub then: Option<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// The job's number.
    pub job: u64,
    #[arg(long)]
    pub project: Option<String>,
}

pub fn run(app: &App, command: QueueCommand) -> Result<ExitCode> {
    match command {
        QueueCommand::Add(args) => add(app, args),
        QueueCommand::Run(args) => run_queue(app, args),
        QueueCommand::Ls(args) => ls(app, args),
        QueueCommand::Rm(args) => rm(app, args),
    }
}

fn open_queue(
    app: &App,
    project: Option<String>,
    create: bool,
) -> Result<(Arc<SqliteStore>, StudyRecord, std::path::PathBuf)> {
    let dir = if create {
        app.store_dir_for_run()
    } else {
        app.existing_store_dir()?
    };
    let store = crate::app::open_store(&dir)?;
    let project = project.unwrap_or_else(|| default_project(&dir));
    let (queue, _) = store.create_study(
        &NewStudy {
            project,
            name: QUEUE_NAME.into(),
            kind: StudyKind::Queue,
            directions: vec![labbook_search::Direction::Minimize],
            spec: json!({}),
            why: None,
            created_ms: now_ms(),
        },
        true,
    )?;
    Ok((store, queue, dir))
}

/// One job to queue.
struct JobSpec {
    why: Option<String>,
    gpus: u32,
    command: Option<Vec<String>>,
    sweep: Option<String>,
    count: Option<u64>,
    plan: Option<String>,
}

fn job_attrs(job: &JobSpec, cwd: &std::path::Path) -> BTreeMap<String, Value> {
    let mut attrs = BTreeMap::new();
    if let Some(c) = &job.command {
        attrs.insert("command".into(), json!(c));
    }
    if let Some(s) = &job.sweep {
        attrs.insert("sweep".into(), json!(s));
    }
    if let Some(n) = job.count {
        attrs.insert("count".into(), json!(n));
    }
    if let Some(w) = &job.why {
        attrs.insert("why".into(), json!(w));
    }
    if let Some(p) = &job.plan {
        attrs.insert("plan".into(), json!(p));
    }
    attrs.insert("gpus".into(), json!(job.gpus));
    attrs.insert("cwd".into(), json!(cwd.to_string_lossy()));
    attrs.insert("queued_ms".into(), json!(now_ms()));
    attrs
}

/// Reads a plan file: `name`, `why` (the default reason) and `jobs`.
fn read_plan(path: &std::path::Path) -> Result<Vec<JobSpec>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc = labbook_search::sweep::yaml_to_json(&text)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let bad = |field: &str, msg: &str| {
        hinted(
            format!("{}: {field}: {msg}", path.display()),
            "a plan is `name:`, `why:` and `jobs:`, each job a `command` (a string or a list) or a `sweep`, with its `why` and `gpus`",
        )
    };
    let top = doc
        .as_object()
        .ok_or_else(|| bad("(file)", "must be a mapping"))?;
    for key in top.keys() {
        if !["name", "why", "jobs"].contains(&key.as_str()) {
            return Err(bad(key, "unknown key; expected name, why, jobs"));
        }
    }
    let plan = top.get("name").and_then(Value::as_str).map(str::to_string);
    let default_why = top.get("why").and_then(Value::as_str).map(str::to_string);
    let jobs = top
        .get("jobs")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("jobs", "is required: a list of jobs"))?;
    if jobs.is_empty() {
        return Err(bad("jobs", "is empty"));
    }
    let mut out = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let at = |k: &str| format!("jobs[{i}].{k}");
        let map = job
            .as_object()
            .ok_or_else(|| bad(&format!("jobs[{i}]"), "must be a mapping"))?;
        for key in map.keys() {
            if !["command", "sweep", "count", "why", "gpus"].contains(&key.as_str()) {
                return Err(bad(
                    &at(key),
                    "unknown key; expected command, sweep, count, why, gpus",
                ));
            }
        }
        let command = match map.get("command") {
            None => None,
            Some(Value::String(s)) => Some(shell_words(s).map_err(|m| bad(&at("command"), &m))?),
            Some(Value::Array(words)) => Some(
                words
                    .iter()
                    .map(|w| {
                        w.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| bad(&at("command"), "each word must be a string"))
                    })
                    .collect::<Result<_>>()?,
            ),
            Some(_) => return Err(bad(&at("command"), "must be a string or a list of words")),
        };
        let sweep = map
            .get("sweep")
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(&at("sweep"), "must be a sweep id, name or file"))
            })
            .transpose()?;
        if command.is_some() == sweep.is_some() {
            return Err(bad(
                &format!("jobs[{i}]"),
                "give a command or a sweep (one of them)",
            ));
        }
        if command.as_ref().is_some_and(Vec::is_empty) {
            return Err(bad(&at("command"), "is empty"));
        }
        let gpus = match map.get("gpus") {
            None => 0,
            Some(v) => v
                .as_u64()
                .and_then(|g| u32::try_from(g).ok())
                .ok_or_else(|| bad(&at("gpus"), "must be a whole number ≥ 0"))?,
        };
        let count = map
            .get("count")
            .map(|v| {
                v.as_u64()
                    .filter(|c| *c > 0)
                    .ok_or_else(|| bad(&at("count"), "must be a whole number ≥ 1"))
            })
            .transpose()?;
        let why = match map.get("why") {
            None => default_why.clone(),
            Some(v) => Some(
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(&at("why"), "must be text"))?,
            ),
        };
        out.push(JobSpec {
            why,
            gpus,
            command,
            sweep,
            count,
            plan: plan.clone(),
        });
    }
    Ok(out)
}

/// Splits a command line as a POSIX shell would (quotes and backslashes;
/// no expansion).
fn shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("an unclosed ' quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => cur.push(c),
                            None => return Err("a trailing \\".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("an unclosed \" quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => return Err("a trailing \\".into()),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

fn add(app: &App, args: AddArgs) -> Result<ExitCode> {
    let jobs = if let Some(file) = &args.file {
        read_plan(file)?
    } else if let Some(sweep) = args.sweep {
        vec![JobSpec {
            why: args.why,
            gpus: args.gpus,
            command: None,
            sweep: Some(sweep),
            count: args.count,
            plan: None,
        }]
    } else {
        if args.command.is_empty() {
            return Err(hinted(
                "nothing to queue",
                "labbook queue add --why \"does warmup help?\" -- python train.py --warmup 500",
            ));
        }
        vec![JobSpec {
            why: args.why,
            gpus: args.gpus,
            command: Some(args.command),
            sweep: None,
            count: None,
            plan: None,
        }]
    };
    let (store, queue, _) = open_queue(app, args.project, true)?;
    // A sweep named by file is created now, so the plan fails here, not at 3 a.m.
    let mut resolved = Vec::new();
    for mut job in jobs {
        if let Some(reference) = &job.sweep {
            let as_file = app.cwd.join(reference);
            let study = if as_file.is_file() {
                let text = std::fs::read_to_string(&as_file)?;
                let spec = labbook_search::sweep::parse_yaml(&text)
                    .map_err(|e| anyhow!("{}: {e}", as_file.display()))?;
                let config =
                    labbook_search::sweep::yaml_to_json(&text).map_err(|e| anyhow!("{e}"))?;
                let name = spec.name.clone().unwrap_or_else(|| {
                    labbook_core::ids::run_name_from_bits(labbook_store::random_bits())
                });
                store.create_study(
                    &NewStudy {
                        project: queue.project.clone(),
                        name,
                        kind: StudyKind::Sweep,
                        directions: vec![spec.direction()],
                        spec: json!({"config": config, "seed": labbook_store::random_bits() >> 11, "dir": app.cwd.to_string_lossy()}),
                        why: job.why.clone().or(spec.description.clone()),
                        created_ms: now_ms(),
                    },
                    false,
                )?.0
            } else {
                store
                    .study(reference, Some(&queue.project))
                    .map_err(|e| hinted(e.to_string(), "give a sweep's id, name, or its file"))?
            };
            if study.kind != StudyKind::Sweep {
                bail!("{reference} is not a sweep");
            }
            job.sweep = Some(study.id.clone());
            if job.why.is_none() {
                job.why = study.why.clone();
            }
        }
        resolved.push(job);
    }
    let out = app.out();
    for job in resolved {
        let attrs = job_attrs(&job, &app.cwd);
        let claimed = store.claim_trial(
            queue.pk,
            &Worker::default(),
            now_ms(),
            &|_| true,
            &mut |_, _| {
                Ok(Claim::Trial(Box::new(NewTrial {
                    state: Some(TrialState::Waiting),
                    system_attrs: attrs.clone(),
                    ..NewTrial::default()
                })))
            },
        )?;
        if let Claimed::Trial(t) = claimed {
            println!(
                "queued #{} {}{}",
                t.number(),
                out.bold(&describe(&t)),
                job.why
                    .as_deref()
                    .map(|w| format!("  {}", out.dim(&format!("— {w}"))))
                    .unwrap_or_default()
            );
        }
    }
    println!("run it:  labbook queue run [--until 07:00] [--gpus 0,1]");
    Ok(ExitCode::SUCCESS)
}

fn attr_str<'a>(t: &'a TrialRecord, key: &str) -> Option<&'a str> {
    t.system_attrs.get(key).and_then(Value::as_str)
}

fn describe(t: &TrialRecord) -> String {
    if let Some(s) = attr_str(t, "sweep") {
        let count = t.system_attrs.get("count").and_then(Value::as_u64);
        return format!(
            "sweep {s}{}",
            count.map(|c| format!(" ×{c}")).unwrap_or_default()
        );
    }
    t.system_attrs
        .get("command")
        .and_then(Value::as_array)
        .map(|w| {
            w.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// What `labbook run` does for a queued job: the run says why it ran, is
/// tagged as queued and grouped under its plan.
pub fn job_launch(launch: &mut Launch, queue: &StudyRecord, job: &TrialRecord) {
    launch.project.get_or_insert_with(|| queue.project.clone());
    if launch.why.is_none() {
        launch.why = attr_str(job, "why").map(str::to_string);
    }
    if launch.group.is_none() {
        launch.group = attr_str(job, "plan").map(str::to_string);
    }
    if !launch.tags.iter().any(|t| t == "queued") {
        launch.tags.push("queued".into());
    }
    launch
        .kv_tags
        .insert("labbook.queue_job".into(), job.number().to_string());
    if let Some(plan) = attr_str(job, "plan") {
        launch
            .kv_tags
            .insert("labbook.plan".into(), plan.to_string());
    }
}

/// The next time of day `hh:mm` comes, as epoch ms (local time).
fn next_local_time(hhmm: &str, now_ms: i64) -> Result<i64> {
    let (h, m) = hhmm
        .split_once(':')
        .and_then(|(h, m)| Some((h.parse::<i64>().ok()?, m.parse::<i64>().ok()?)))
        .filter(|(h, m)| (0..24).contains(h) && (0..60).contains(m))
        .ok_or_else(|| {
            hinted(
                format!("--until {hhmm:?} is not a time of day"),
                "write it as HH:MM, e.g. --until 07:00",
            )
        })?;
    let offset = crate::fmt::local_offset_ms(now_ms);
    let local = now_ms + offset;
    let day_ms = 86_400_000;
    let midnight = local - local.rem_euclid(day_ms);
    let mut at = midnight + (h * 60 + m) * 60_000;
    if at <= local {
        at += day_ms;
    }
    Ok(at - offset)
}

struct Slot {
    gpu: Option<String>,
    busy: bool,
}

enum Job {
    Command {
        job: Arc<TrialRecord>,
        child: std::process::Child,
        slots: Vec<usize>,
        /// When the runner sent it SIGTERM.
        stop_sent: Option<Instant>,
    },
    SweepTrial {
        trial: Arc<TrialRecord>,
        child: std::process::Child,
        slot: usize,
        /// When the runner sent it SIGTERM.
        stop_sent: Option<Instant>,
        /// Why the sweep's early termination stopped it.
        pruned: Option<String>,
    },
}

impl Job {
    /// SIGTERM once; SIGKILL once the grace period has passed.
    fn stop(&mut self) {
        let (Job::Command {
            child, stop_sent, ..
        }
        | Job::SweepTrial {
            child, stop_sent, ..
        }) = self;
        match stop_sent {
            None => {
                sweep::terminate(child);
                *stop_sent = Some(Instant::now());
            }
            Some(sent) if sent.elapsed() > sweep::STOP_GRACE => {
                let _ = child.kill();
            }
            Some(_) => {}
        }
    }
}

/// A sweep job being run: its sweep, and how many trials it started.
struct ActiveSweep {
    job: Arc<TrialRecord>,
    home: LocalSweep,
    started: u64,
    count: Option<u64>,
    done: Option<String>,
    last_check: Instant,
}

fn run_queue(app: &App, args: RunArgs) -> Result<ExitCode> {
    let (store, queue, store_dir) = open_queue(app, args.project, false)?;
    let paint = app.err();
    let started_ms = now_ms();
    let deadline = args
        .until
        .as_deref()
        .map(|u| next_local_time(u, started_ms))
        .transpose()?;
    let mut slots: Vec<Slot> = if args.gpus.is_empty() {
        (0..args.parallel.max(1))
            .map(|_| Slot {
                gpu: None,
                busy: false,
            })
            .collect()
    } else {
        args.gpus
            .iter()
            .map(|g| Slot {
                gpu: Some(g.trim().to_string()),
                busy: false,
            })
            .collect()
    };
    let host = hostname();
    let worker = Worker {
        host: host.clone(),
        pid: Some(std::process::id()),
    };
    let exe = std::env::current_exe().context("cannot find the labbook binary")?;
    crate::signals::install().ok();
    let mut running: Vec<Job> = Vec::new();
    let mut sweep: Option<ActiveSweep> = None;
    let mut queue_empty = false;
    let mut last_beat = Instant::now();
    say!(
        "labbook: queue of {}: {} slot(s){}{}",
        paint.bold(&queue.project),
        slots.len(),
        if args.gpus.is_empty() {
            String::new()
        } else {
            format!(" on GPU {}", args.gpus.join(","))
        },
        deadline
            .map(|d| format!(", no new job after {}", fmt::iso_utc(d)))
            .unwrap_or_default()
    );
    loop {
        // Jobs and trials that ended.
        let mut i = 0;
        while i < running.len() {
            let ended = match &mut running[i] {
                Job::Command { child, .. } | Job::SweepTrial { child, .. } => {
                    child.try_wait().ok().flatten().is_some()
                }
            };
            if !ended {
                i += 1;
                continue;
            }
            match running.remove(i) {
                Job::Command {
                    job, slots: used, ..
                } => {
                    for s in used {
                        slots[s].busy = false;
                    }
                    finish_job(&*store, &job, app)?;
                }
                Job::SweepTrial {
                    trial,
                    slot,
                    stop_sent,
                    pruned,
                    ..
                } => {
                    slots[slot].busy = false;
                    if let Some(active) = sweep.as_mut() {
                        let ending = match (pruned, stop_sent) {
                            (Some(why), _) => Ending::Pruned(why),
                            (None, Some(_)) => Ending::Stopped,
                            (None, None) => Ending::Natural,
                        };
                        let ended = active.home.finish(trial.id, &ending)?;
                        sweep::say_ended(app, active.home.spec(), &trial, ended.as_ref());
                    }
                }
            }
        }
        // A sweep job ends when its sweep is done and its trials have ended.
        if let Some(active) = &sweep
            && active.done.is_some()
            && !running.iter().any(|j| matches!(j, Job::SweepTrial { .. }))
        {
            let reason = active.done.clone().unwrap_or_default();
            store.update_trial(
                active.job.id,
                &TrialPatch {
                    state: Some(TrialState::Complete),
                    note: Some(format!(
                        "sweep {}: {reason}; {} trial(s) here",
                        active.home.study().name,
                        active.started
                    )),
                    now_ms: now_ms(),
                    ..TrialPatch::default()
                },
            )?;
            say!(
                "labbook: job #{} (sweep {}) done: {reason}",
                active.job.number(),
                active.home.study().name
            );
            sweep = None;
        }
        let interrupted = crate::signals::received().is_some();
        for job in running.iter_mut() {
            let stopping = match job {
                Job::Command { stop_sent, .. } => stop_sent.is_some(),
                Job::SweepTrial {
                    stop_sent, pruned, ..
                } => stop_sent.is_some() || pruned.is_some(),
            };
            if interrupted || stopping {
                job.stop();
            }
        }
        if last_beat.elapsed() >= Duration::from_secs(10) {
            last_beat = Instant::now();
            for job in &running {
                let id = match job {
                    Job::Command { job, .. } => job.id,
                    Job::SweepTrial { trial, .. } => trial.id,
                };
                let _ = store.update_trial(
                    id,
                    &TrialPatch {
                        heartbeat: true,
                        now_ms: now_ms(),
                        ..TrialPatch::default()
                    },
                );
            }
            if let Some(active) = &sweep {
                let _ = store.update_trial(
                    active.job.id,
                    &TrialPatch {
                        heartbeat: true,
                        now_ms: now_ms(),
                        ..TrialPatch::default()
                    },
                );
            }
        }
        // The active sweep's early termination, as `sweep run` applies it.
        if let Some(active) = sweep.as_mut()
            && active.home.spec().early_terminate.is_some()
            && active.last_check.elapsed() >= Duration::from_secs(2)
        {
            active.last_check = Instant::now();
            let ids: Vec<i64> = running
                .iter()
                .filter_map(|j| match j {
                    Job::SweepTrial { trial, .. } => Some(trial.id),
                    Job::Command { .. } => None,
                })
                .collect();
            if !ids.is_empty() {
                for (trial_id, why) in active.home.poll(&ids, false, true)?.stops {
                    for job in running.iter_mut() {
                        if let Job::SweepTrial { trial, pruned, .. } = job
                            && trial.id == trial_id
                            && pruned.is_none()
                        {
                            say!("labbook: trial #{} pruned: {why}", trial.number());
                            *pruned = Some(why.clone());
                            job.stop();
                        }
                    }
                }
            }
        }
        let past_deadline = deadline.is_some_and(|d| now_ms() >= d);
        let can_start = !interrupted && !past_deadline;
        if can_start {
            // Feed the active sweep first, one trial per free slot.
            if let Some(active) = sweep.as_mut().filter(|a| a.done.is_none()) {
                while let Some(slot) = slots.iter().position(|s| !s.busy) {
                    if active.count.is_some_and(|c| active.started >= c) {
                        active.done = Some(format!("{} trial(s) run", active.started));
                        break;
                    }
                    match active.home.claim()? {
                        Claimed::Trial(trial) => {
                            active.started += 1;
                            match active.home.spawn(&trial, slots[slot].gpu.as_deref()) {
                                Ok(child) => {
                                    slots[slot].busy = true;
                                    running.push(Job::SweepTrial {
                                        trial,
                                        child,
                                        slot,
                                        stop_sent: None,
                                        pruned: None,
                                    });
                                }
                                Err(e) => {
                                    active
                                        .home
                                        .finish(trial.id, &Ending::NotStarted(format!("{e:#}")))?;
                                }
                            }
                        }
                        Claimed::Wait(_) => break,
                        Claimed::Done(state, reason) => {
                            active.done =
                                Some(reason.unwrap_or_else(|| state.as_str().to_string()));
                            break;
                        }
                    }
                }
            }
            // Then the next job, when no sweep holds the slots.
            while sweep.is_none() {
                let free_slots: Vec<usize> = (0..slots.len()).filter(|&s| !slots[s].busy).collect();
                if free_slots.is_empty() {
                    break;
                }
                let gpus_on = !args.gpus.is_empty();
                let free_gpus = if gpus_on {
                    free_slots.len() as u64
                } else {
                    u64::MAX
                };
                let now = now_ms();
                let alive = |t: &TrialRecord| sweep::worker_alive(t, host.as_deref(), now);
                let claimed =
                    store.claim_trial(queue.pk, &worker, now, &alive, &mut |_, jobs| {
                        Ok(next_job(jobs, free_gpus))
                    })?;
                let job = match claimed {
                    Claimed::Trial(job) => job,
                    Claimed::Wait(_) => {
                        queue_empty = true;
                        break;
                    }
                    Claimed::Done(..) => {
                        queue_empty = true;
                        break;
                    }
                };
                queue_empty = false;
                if let Some(sid) = attr_str(&job, "sweep") {
                    match store.study(sid, None) {
                        Ok(study) => match SweepSpec::from_value(&study.spec["config"]) {
                            Ok(spec) => {
                                say!(
                                    "labbook: job #{}: sweep {} ({})",
                                    job.number(),
                                    paint.bold(&study.name),
                                    study.id
                                );
                                let count = job.system_attrs.get("count").and_then(Value::as_u64);
                                sweep = Some(ActiveSweep {
                                    job,
                                    home: LocalSweep::new(app, Arc::clone(&store), study, spec)?,
                                    started: 0,
                                    count,
                                    done: None,
                                    last_check: Instant::now(),
                                });
                            }
                            Err(e) => fail_job(
                                &*store,
                                &job,
                                &format!("the sweep's file no longer reads: {e}"),
                            )?,
                        },
                        Err(e) => fail_job(&*store, &job, &e.to_string())?,
                    }
                    break;
                }
                let needed = job
                    .system_attrs
                    .get("gpus")
                    .and_then(Value::as_u64)
                    .unwrap_or(0) as usize;
                let take: Vec<usize> = if gpus_on {
                    free_slots.iter().copied().take(needed.max(1)).collect()
                } else {
                    vec![free_slots[0]]
                };
                let gpu_list: Vec<String> =
                    take.iter().filter_map(|&s| slots[s].gpu.clone()).collect();
                let words: Vec<String> = job
                    .system_attrs
                    .get("command")
                    .and_then(Value::as_array)
                    .map(|w| {
                        w.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let cwd = attr_str(&job, "cwd")
                    .map(std::path::PathBuf::from)
                    .filter(|d| d.is_dir())
                    .unwrap_or_else(|| app.cwd.clone());
                say!(
                    "labbook: job #{}: {}",
                    job.number(),
                    paint.bold(&describe(&job))
                );
                let gpus = (!gpu_list.is_empty() && needed > 0).then(|| gpu_list.join(","));
                match sweep::spawn_labbook_run(
                    &exe,
                    &store_dir,
                    &cwd,
                    &queue,
                    job.id,
                    &words,
                    &[],
                    gpus.as_deref(),
                ) {
                    Ok(child) => {
                        for &s in &take {
                            slots[s].busy = true;
                        }
                        running.push(Job::Command {
                            job,
                            child,
                            slots: take,
                            stop_sent: None,
                        });
                    }
                    Err(e) => fail_job(&*store, &job, &format!("could not start: {e:#}"))?,
                }
            }
        }
        let idle = running.is_empty() && sweep.is_none();
        if idle && (queue_empty || !can_start) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let reason = if crate::signals::received().is_some() {
        "interrupted"
    } else if deadline.is_some_and(|d| now_ms() >= d) {
        "the --until time came"
    } else {
        "the queue is empty"
    };
    say!(
        "labbook: queue runner stops: {reason} · labbook report --since {}",
        fmt::iso_utc(started_ms)
    );
    if let Some(then) = &args.then {
        let path = crate::commands::report::write_report_file(
            app,
            &*store,
            &store_dir,
            &queue.project,
            started_ms,
        )?;
        let shown = path.to_string_lossy().into_owned();
        let cmd = then.replace("{report}", &shell_quote(&shown));
        say!("labbook: report written to {shown}; running: {cmd}");
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .env("LABBOOK_REPORT", &path)
            .status()
            .with_context(|| format!("cannot run --then {cmd:?}"))?;
        if !status.success() {
            say!(
                "labbook: {}: --then command exited with {status}",
                paint.warn("warning")
            );
        }
    }
    Ok(if crate::signals::received().is_some() {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The next job: a crashed one once more first, then the oldest waiting
/// one that fits the free GPUs.
fn next_job(jobs: &[Arc<TrialRecord>], free_gpus: u64) -> Claim {
    let retried: std::collections::BTreeSet<u64> = jobs.iter().filter_map(|t| t.retry_of).collect();
    if let Some(crashed) = jobs.iter().find(|t| {
        t.state() == TrialState::Crashed && t.retry_of.is_none() && !retried.contains(&t.number())
    }) {
        return Claim::Trial(Box::new(NewTrial {
            retry_of: Some(crashed.number()),
            system_attrs: crashed.system_attrs.clone(),
            ..NewTrial::default()
        }));
    }
    let fits = |t: &&Arc<TrialRecord>| {
        t.system_attrs
            .get("gpus")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            <= free_gpus
    };
    match jobs
        .iter()
        .filter(|t| t.state() == TrialState::Waiting)
        .find(fits)
    {
        Some(t) => Claim::Take(t.id),
        None if jobs.iter().any(|t| t.state() == TrialState::Waiting) => {
            Claim::Wait("the next job needs more GPUs than are free".into())
        }
        None => Claim::Wait("the queue is empty".into()),
    }
}

fn fail_job(store: &dyn Store, job: &TrialRecord, why: &str) -> Result<()> {
    store.update_trial(
        job.id,
        &TrialPatch {
            state: Some(TrialState::Failed),
            note: Some(why.to_string()),
            now_ms: now_ms(),
            ..TrialPatch::default()
        },
    )?;
    say!("labbook: job #{} failed: {why}", job.number());
    Ok(())
}

fn finish_job(store: &dyn Store, job: &TrialRecord, app: &App) -> Result<()> {
    let current = store.trial(job.id)?;
    if current.state().is_finished() {
        return Ok(());
    }
    let run = current
        .run_id
        .as_deref()
        .and_then(|id| store.get_run(id).ok());
    let (state, note) = match &run {
        None => (
            TrialState::Failed,
            Some("its run was never created".to_string()),
        ),
        Some(r) => match r.status {
            RunStatus::Finished => (TrialState::Complete, None),
            RunStatus::Killed if crate::signals::received().is_some() => (
                TrialState::Crashed,
                Some("interrupted with its runner".into()),
            ),
            RunStatus::Running | RunStatus::Crashed => {
                (TrialState::Crashed, Some("its run crashed".into()))
            }
            other => (
                TrialState::Failed,
                r.error.clone().or(Some(other.as_str().to_string())),
            ),
        },
    };
    store.update_trial(
        job.id,
        &TrialPatch {
            state: Some(state),
            note,
            now_ms: now_ms(),
            ..TrialPatch::default()
        },
    )?;
    let paint = app.err();
    say!(
        "labbook: job #{} {}{}",
        job.number(),
        if state == TrialState::Complete {
            paint.good(state.as_str())
        } else {
            paint.warn(state.as_str())
        },
        run.map(|r| format!(" · run {}", r.id)).unwrap_or_default()
    );
    Ok(())
}

fn ls(app: &App, args: LsArgs) -> Result<ExitCode> {
    let (store, queue, _) = open_queue(app, args.project, false)?;
    let jobs = store.trials(queue.pk)?;
    if args.json {
        let rows: Vec<Value> = jobs
            .iter()
            .map(|t| {
                json!({
                    "number": t.number(),
                    "state": t.state().as_str(),
                    "command": t.system_attrs.get("command"),
                    "sweep": t.system_attrs.get("sweep"),
                    "count": t.system_attrs.get("count"),
                    "why": t.system_attrs.get("why"),
                    "plan": t.system_attrs.get("plan"),
                    "gpus": t.system_attrs.get("gpus"),
                    "queued_ms": t.system_attrs.get("queued_ms"),
                    "run_id": t.run_id,
                    "retry_of": t.retry_of,
                    "started_ms": t.started_ms,
                    "ended_ms": t.ended_ms,
                    "note": t.note,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if jobs.is_empty() {
        say!(
            "the queue of {} is empty: labbook queue add --why \"…\" -- CMD",
            queue.project
        );
        return Ok(ExitCode::SUCCESS);
    }
    let out = app.out();
    let mut table = Table::new(vec![
        ("#".into(), Align::Right),
        ("STATE".into(), Align::Left),
        ("RUN".into(), Align::Left),
        ("GPUS".into(), Align::Right),
        ("JOB".into(), Align::Left),
        ("WHY".into(), Align::Left),
    ]);
    for t in &jobs {
        let state = match t.state() {
            TrialState::Waiting => "queued",
            other => other.as_str(),
        };
        table.push(vec![
            t.number().to_string(),
            state.to_string(),
            t.run_id.clone().unwrap_or_else(|| "-".into()),
            t.system_attrs
                .get("gpus")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .to_string(),
            describe(t),
            attr_str(t, "why").unwrap_or("").to_string(),
        ]);
    }
    for line in table.render(|h| out.heading(h)) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

fn rm(app: &App, args: RmArgs) -> Result<ExitCode> {
    let (store, queue, _) = open_queue(app, args.project, false)?;
    let jobs = store.trials(queue.pk)?;
    let job = jobs
        .iter()
        .find(|t| t.number() == args.job)
        .ok_or_else(|| {
            hinted(
                format!("no job #{} in the queue", args.job),
                "labbook queue ls",
            )
        })?;
    let taken = store.update_trial(
        job.id,
        &TrialPatch {
            state: Some(TrialState::Failed),
            only_if: Some(TrialState::Waiting),
            note: Some("removed from the queue".into()),
            now_ms: now_ms(),
            ..TrialPatch::default()
        },
    )?;
    if !taken {
        bail!(
            "job #{} is {}, not waiting; only a waiting job can be removed",
            args.job,
            job.state().as_str()
        );
    }
    say!("labbook: job #{} removed", args.job);
    Ok(ExitCode::SUCCESS)
}
