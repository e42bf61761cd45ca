//! `labbook sweep`: W&B-style sweep files run offline. A sweep is a study
//! in the store; `sweep run` (alias `sweep agent`) claims trials one write
//! transaction at a time and starts each as `labbook run` of the sweep's
//! command in its own process, with its own GPU. Any number of runners on
//! any number of machines sharing the store join the same sweep, and a
//! runner killed at any moment loses nothing: its trials are found crashed
//! by the next claim, and a crashed grid point runs once more.

use std::collections::BTreeMap;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use labbook_capture::{hostname, pid_alive};
use labbook_core::RunRecord;
use labbook_core::config::config_from_json;
use labbook_search::TrialState;
use labbook_search::command::{Context as MacroContext, expand, needs_json_file};
use labbook_search::sweep::{SweepSpec, parse_yaml};
use labbook_server::client::Client;
use labbook_store::sweeps::{self, Ended, Ending, FinishedCurves};
use labbook_store::{
    Claimed, NewStudy, Store, StudyKind, StudyPatch, StudyRecord, StudyState, TrialPatch,
    TrialRecord, Worker,
};

use crate::app::{App, default_project};
use crate::commands::run::Launch;
use crate::error::hinted;
use crate::fmt::{self, now_ms};
use crate::table::{Align, Table};

#[derive(Debug, Subcommand)]
pub enum SweepCommand {
    /// Create a sweep from a W&B sweep file (YAML or JSON); prints its id.
    Create(CreateArgs),
    /// Run the sweep's trials here until it is done (or --count trials).
    Run(RunArgs),
    /// Join a sweep from another process or machine sharing the store
    /// (the same as `sweep run`).
    Agent(RunArgs),
    /// List sweeps.
    Ls(LsArgs),
    /// A sweep's state, its trials and its best trial so far.
    Status(StatusArgs),
    /// What a sweep (or a `labbook.study`) found: the best so far over the
    /// trials, each parameter's importance and slice, pruned against kept.
    Show(StatusArgs),
    /// Start no new trials; running ones finish.
    Stop(StateArgs),
    /// Start no new trials and stop the running ones.
    Cancel(StateArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The sweep file.
    pub file: std::path::PathBuf,
    /// What the sweep tests and why; each trial's run says it.
    #[arg(long)]
    pub why: Option<String>,
    /// The project its trials log to (default: the file's `project`, else
    /// LABBOOK_PROJECT, else the store's folder name).
    #[arg(long)]
    pub project: Option<String>,
    /// Print the sweep as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The sweep's id (or name).
    pub sweep: String,
    /// Trials to run at once.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// GPUs to share out, one trial per GPU at a time
    /// (CUDA_VISIBLE_DEVICES); sets the number of workers.
    #[arg(long, value_delimiter = ',')]
    pub gpus: Vec<String>,
    /// Stop after starting this many trials.
    #[arg(long)]
    pub count: Option<u64>,
    /// Join the sweep through a `labbook serve` at this address, from a
    /// machine that does not share its store (e.g. http://10.0.0.5:5000).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    #[arg(long)]
    pub project: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    pub sweep: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StateArgs {
    pub sweep: String,
}

pub fn run(app: &App, command: SweepCommand) -> Result<ExitCode> {
    match command {
        SweepCommand::Create(args) => create(app, args),
        SweepCommand::Run(args) | SweepCommand::Agent(args) => run_sweep(app, args),
        SweepCommand::Ls(args) => ls(app, args),
        SweepCommand::Status(args) => status(app, args),
        SweepCommand::Show(args) => show(app, args),
        SweepCommand::Stop(args) => set_state(app, args, StudyState::Stopped),
        SweepCommand::Cancel(args) => set_state(app, args, StudyState::Cancelled),
    }
}

/// How often a runner tells the store its trials are alive.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// How often a runner applies the sweep's early termination.
const EARLY_TERMINATE_EVERY: Duration = Duration::from_secs(2);
/// How long a trial that was told to stop gets before it is killed.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(10);

fn create(app: &App, args: CreateArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let spec = parse_yaml(&text).map_err(|e| {
        hinted(
            format!("{}: {e}", args.file.display()),
            "the file follows W&B's sweep configuration: method, metric, parameters, program, command",
        )
    })?;
    let config: Value = serde_norway_to_json(&text)?;
    let dir = app.store_dir_for_run();
    let store = crate::app::open_store(&dir)?;
    let project = args
        .project
        .or_else(|| spec.project.clone())
        .unwrap_or_else(|| default_project(&dir));
    let name = spec
        .name
        .clone()
        .unwrap_or_else(|| labbook_core::ids::run_name_from_bits(labbook_store::random_bits()));
    let why = args.why.or_else(|| spec.description.clone());
    let (study, _) = store.create_study(
        &NewStudy {
            project,
            name,
            kind: StudyKind::Sweep,
            directions: vec![spec.direction()],
            spec: json!({
                "config": config,
                "seed": labbook_store::random_bits() >> 11,
                "dir": app.cwd.to_string_lossy(),
            }),
            why,
            created_ms: now_ms(),
        },
        false,
    )?;
    let paint = app.err();
    for w in &spec.warnings {
        say!("labbook: {}: {w}", paint.warn("warning"));
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&study_json(&study, &[]))?
        );
    } else {
        let out = app.out();
        println!(
            "created sweep {} ({}) in project {}: {} search over {} parameter(s){}",
            out.bold(&study.name),
            out.id(&study.id),
            study.project,
            spec.method.as_str(),
            spec.parameters.len(),
            match spec.run_cap {
                Some(cap) => format!(", at most {cap} trials"),
                None => String::new(),
            }
        );
        println!("run it:  labbook sweep run {}", study.id);
    }
    Ok(ExitCode::SUCCESS)
}

/// YAML text as JSON, to keep the file as it was written.
fn serde_norway_to_json(text: &str) -> Result<Value> {
    labbook_search::sweep::yaml_to_json(text).map_err(|e| anyhow!("{e}"))
}

fn open_sweep(
    app: &App,
    reference: &str,
) -> Result<(Arc<labbook_store::SqliteStore>, StudyRecord, SweepSpec)> {
    let (store, _) = app.open_existing()?;
    let study = store
        .study(reference, None)
        .map_err(|e| hinted(e.to_string(), "`labbook sweep ls` lists the sweeps"))?;
    if study.kind != StudyKind::Sweep {
        bail!(
            "{} is a study, not a sweep (labbook sweep works on sweep files)",
            study.name
        );
    }
    let spec = sweeps::spec_of(&study).map_err(|e| anyhow!("{e}"))?;
    Ok((store, study, spec))
}

/// Whether a trial's worker is still there, judged from this machine.
pub(crate) fn worker_alive(trial: &TrialRecord, this_host: Option<&str>, now: i64) -> bool {
    sweeps::worker_alive(trial, this_host, now, &pid_alive)
}

/// What a runner learns when it checks on its sweep.
pub(crate) struct Poll {
    pub state: StudyState,
    /// Running trials the sweep's early termination stops, with why.
    pub stops: Vec<(i64, String)>,
}

/// Where a runner claims, keeps alive and ends a sweep's trials: the store
/// it shares with other runners, or a `labbook serve` (`--url`) that runs
/// the same rules on its side.
pub(crate) trait SweepHome {
    fn claim(&mut self) -> Result<Claimed>;
    /// `beat`: tell it the running trials are alive; `prune`: ask which
    /// of them the sweep's early termination stops.
    fn poll(&mut self, running: &[i64], beat: bool, prune: bool) -> Result<Poll>;
    fn finish(&mut self, trial_id: i64, ending: &Ending) -> Result<Option<Ended>>;
    /// Starts the trial's `labbook run`.
    fn spawn(&self, trial: &TrialRecord, gpu: Option<&str>) -> Result<Child>;
    /// How often the runner checks on the sweep.
    fn poll_every(&self) -> Duration;
    fn study(&self) -> &StudyRecord;
    fn spec(&self) -> &SweepSpec;
}

/// A sweep in the store on this machine's disk.
pub(crate) struct LocalSweep {
    store: Arc<labbook_store::SqliteStore>,
    study: StudyRecord,
    spec: SweepSpec,
    worker: Worker,
    exe: std::path::PathBuf,
    store_dir: std::path::PathBuf,
    workdir: std::path::PathBuf,
    finished: FinishedCurves,
}

impl LocalSweep {
    /// The sweep's trials run in its folder when that exists here, else in
    /// the current one.
    pub(crate) fn new(
        app: &App,
        store: Arc<labbook_store::SqliteStore>,
        study: StudyRecord,
        spec: SweepSpec,
    ) -> Result<LocalSweep> {
        let workdir = study.spec["dir"]
            .as_str()
            .map(std::path::PathBuf::from)
            .filter(|d| d.is_dir())
            .unwrap_or_else(|| app.cwd.clone());
        Ok(LocalSweep {
            store,
            study,
            spec,
            worker: Worker {
                host: hostname(),
                pid: Some(std::process::id()),
            },
            exe: std::env::current_exe().context("cannot find the labbook binary")?,
            store_dir: app.existing_store_dir()?,
            workdir,
            finished: FinishedCurves::default(),
        })
    }
}

impl SweepHome for LocalSweep {
    fn claim(&mut self) -> Result<Claimed> {
        let now = now_ms();
        let host = self.worker.host.clone();
        let alive = |t: &TrialRecord| worker_alive(t, host.as_deref(), now);
        let (spec, seed) = (&self.spec, sweeps::seed_of(&self.study));
        Ok(self.store.claim_trial(
            self.study.pk,
            &self.worker,
            now,
            &alive,
            &mut |_, trials| Ok(sweeps::decide(spec, seed, trials)),
        )?)
    }

    fn poll(&mut self, running: &[i64], beat: bool, prune: bool) -> Result<Poll> {
        if beat {
            for &id in running {
                let _ = self.store.update_trial(
                    id,
                    &TrialPatch {
                        heartbeat: true,
                        now_ms: now_ms(),
                        ..TrialPatch::default()
                    },
                );
            }
        }
        let stops = if prune {
            sweeps::early_terminations(&*self.store, &self.study, &self.spec, &mut self.finished)?
        } else {
            Vec::new()
        };
        Ok(Poll {
            state: self.store.study_by_pk(self.study.pk)?.state,
            stops,
        })
    }

    fn finish(&mut self, trial_id: i64, ending: &Ending) -> Result<Option<Ended>> {
        Ok(sweeps::finish_trial(
            &*self.store,
            &self.spec,
            trial_id,
            ending,
            now_ms(),
        )?)
    }

    fn spawn(&self, trial: &TrialRecord, gpu: Option<&str>) -> Result<Child> {
        spawn_trial(
            &self.exe,
            &self.store_dir,
            &self.workdir,
            &self.study,
            &self.spec,
            trial,
            gpu,
        )
    }

    fn poll_every(&self) -> Duration {
        Duration::from_millis(100)
    }

    fn study(&self) -> &StudyRecord {
        &self.study
    }

    fn spec(&self) -> &SweepSpec {
        &self.spec
    }
}

/// A sweep a `labbook serve` holds, joined over HTTP.
struct RemoteSweep {
    client: Arc<Client>,
    study: StudyRecord,
    spec: SweepSpec,
    exe: std::path::PathBuf,
    workdir: std::path::PathBuf,
    /// Where `${args_json_file}` files go (no store here).
    scratch: std::path::PathBuf,
}

impl RemoteSweep {
    fn join(client: Arc<Client>, reference: &str, app: &App) -> Result<RemoteSweep> {
        let answer = client.sweep(reference).map_err(|e| {
            hinted(
                e.to_string(),
                "the sweep's id is what `labbook sweep create` printed on the server's machine",
            )
        })?;
        let brief = &answer["study"];
        if brief["kind"].as_str() != Some("sweep") {
            bail!(
                "{} is a study, not a sweep (labbook sweep works on sweep files)",
                brief["name"].as_str().unwrap_or(reference)
            );
        }
        let spec = SweepSpec::from_value(&answer["config"])
            .map_err(|e| anyhow!("the server's sweep file does not read here: {e}"))?;
        let text = |k: &str| brief[k].as_str().unwrap_or_default().to_string();
        let study = StudyRecord {
            pk: 0,
            id: text("id"),
            project: text("project"),
            name: text("name"),
            kind: StudyKind::Sweep,
            directions: vec![spec.direction()],
            spec: Value::Null,
            why: brief["why"].as_str().map(str::to_string),
            state: StudyState::parse(&text("state")).unwrap_or(StudyState::Running),
            state_reason: brief["state_reason"].as_str().map(str::to_string),
            user_attrs: BTreeMap::new(),
            system_attrs: BTreeMap::new(),
            created_ms: brief["created_ms"].as_i64().unwrap_or(0),
        };
        let scratch = std::env::temp_dir()
            .join(format!("labbook-sweep-{}", std::process::id()))
            .join(&study.id);
        Ok(RemoteSweep {
            client,
            study,
            spec,
            exe: std::env::current_exe().context("cannot find the labbook binary")?,
            workdir: app.cwd.clone(),
            scratch,
        })
    }
}

impl SweepHome for RemoteSweep {
    fn claim(&mut self) -> Result<Claimed> {
        let host = hostname();
        let answer =
            self.client
                .claim_trial(&self.study.id, host.as_deref(), std::process::id())?;
        Ok(match answer["claimed"].as_str() {
            Some("trial") => {
                let t = &answer["trial"];
                let params: BTreeMap<String, Value> = match &t["params"] {
                    Value::Object(map) => map.clone().into_iter().collect(),
                    _ => BTreeMap::new(),
                };
                Claimed::Trial(Arc::new(TrialRecord {
                    id: t["id"]
                        .as_i64()
                        .context("the server's claim has no trial id")?,
                    study: 0,
                    obs: labbook_search::trial::Observation {
                        number: t["number"].as_u64().unwrap_or(0),
                        state: Some(TrialState::Running),
                        params,
                        value: None,
                        intermediate: Vec::new(),
                    },
                    distributions: BTreeMap::new(),
                    values: None,
                    run_id: t["run_id"].as_str().map(str::to_string),
                    grid_index: t["grid_index"].as_u64(),
                    retry_of: t["retry_of"].as_u64(),
                    host,
                    pid: Some(std::process::id()),
                    started_ms: Some(now_ms()),
                    ended_ms: None,
                    heartbeat_ms: None,
                    user_attrs: BTreeMap::new(),
                    system_attrs: BTreeMap::new(),
                    note: None,
                }))
            }
            Some("wait") => Claimed::Wait(answer["reason"].as_str().unwrap_or("").to_string()),
            _ => Claimed::Done(
                answer["state"]
                    .as_str()
                    .and_then(StudyState::parse)
                    .unwrap_or(StudyState::Finished),
                answer["reason"].as_str().map(str::to_string),
            ),
        })
    }

    fn poll(&mut self, running: &[i64], _beat: bool, prune: bool) -> Result<Poll> {
        // Every poll is a heartbeat: one request says both.
        let answer = self
            .client
            .sweep_heartbeat(&self.study.id, running, prune)?;
        let stops = answer["stop"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|s| Some((s["trial"].as_i64()?, s["why"].as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Poll {
            state: answer["state"]
                .as_str()
                .and_then(StudyState::parse)
                .unwrap_or(StudyState::Running),
            stops,
        })
    }

    fn finish(&mut self, trial_id: i64, ending: &Ending) -> Result<Option<Ended>> {
        let (name, why) = match ending {
            Ending::Natural => ("natural", None),
            Ending::Stopped => ("stopped", None),
            Ending::Pruned(why) => ("pruned", Some(why.as_str())),
            Ending::NotStarted(why) => ("not_started", Some(why.as_str())),
        };
        let answer = self.client.finish_trial(trial_id, name, why)?;
        if answer["already_ended"].as_bool() == Some(true) {
            return Ok(None);
        }
        Ok(Some(Ended {
            state: answer["state"]
                .as_str()
                .and_then(TrialState::parse)
                .unwrap_or(TrialState::Failed),
            value: answer["value"].as_f64(),
        }))
    }

    fn spawn(&self, trial: &TrialRecord, gpu: Option<&str>) -> Result<Child> {
        let run_id = trial
            .run_id
            .as_deref()
            .context("the server made no run for the trial")?;
        let command = trial_command(&self.spec, &self.study, trial, &self.scratch)?;
        let mut cmd = Command::new(&self.exe);
        cmd.arg("run")
            .arg("--url")
            .arg(self.client.url())
            .arg("--attach")
            .arg(run_id)
            .arg("--")
            .args(&command.words)
            .current_dir(&self.workdir)
            .env_remove("LABBOOK_DIR")
            .env_remove("LABBOOK_TRIAL")
            .env("LABBOOK_PROJECT", &self.study.project)
            .stdin(Stdio::null());
        for (k, v) in &command.env {
            cmd.env(k, v);
        }
        if let Some(gpu) = gpu {
            cmd.env("CUDA_VISIBLE_DEVICES", gpu);
        }
        stop_with_parent(&mut cmd);
        cmd.spawn()
            .with_context(|| format!("cannot start {}", self.exe.display()))
    }

    fn poll_every(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn study(&self) -> &StudyRecord {
        &self.study
    }

    fn spec(&self) -> &SweepSpec {
        &self.spec
    }
}

struct Running {
    child: Child,
    trial: Arc<TrialRecord>,
    stop_sent: Option<Instant>,
    pruned: Option<String>,
}

fn run_sweep(app: &App, args: RunArgs) -> Result<ExitCode> {
    let mut home: Box<dyn SweepHome> = match &args.url {
        Some(url) => {
            let client = Arc::new(Client::new(url)?);
            Box::new(RemoteSweep::join(client, &args.sweep, app)?)
        }
        None => {
            let (store, study, spec) = open_sweep(app, &args.sweep)?;
            Box::new(LocalSweep::new(app, store, study, spec)?)
        }
    };
    let (study, spec) = (home.study().clone(), home.spec().clone());
    let paint = app.err();
    let slots: Vec<Option<String>> = if args.gpus.is_empty() {
        vec![None; args.workers.max(1)]
    } else {
        args.gpus
            .iter()
            .map(|g| Some(g.trim().to_string()))
            .collect()
    };
    crate::signals::install().ok();
    let mut running: Vec<(usize, Running)> = Vec::new();
    let mut started: u64 = 0;
    let mut done: Option<String> = None;
    let mut last_wait = String::new();
    let mut last_beat = Instant::now();
    let mut last_check = Instant::now();
    let mut last_poll: Option<Instant> = None;
    say!(
        "labbook: sweep {} ({}): {} worker(s){}{}",
        paint.bold(&study.name),
        paint.id(&study.id),
        slots.len(),
        if args.gpus.is_empty() {
            String::new()
        } else {
            format!(" on GPU {}", args.gpus.join(","))
        },
        match &args.url {
            Some(url) => format!(" · through {url}"),
            None => String::new(),
        }
    );
    loop {
        // Trials that ended.
        let mut i = 0;
        while i < running.len() {
            match running[i].1.child.try_wait() {
                Ok(Some(_)) => {
                    let (_, r) = running.remove(i);
                    let ending = match (r.pruned, r.stop_sent) {
                        (Some(why), _) => Ending::Pruned(why),
                        (None, Some(_)) => Ending::Stopped,
                        (None, None) => Ending::Natural,
                    };
                    let ended = home.finish(r.trial.id, &ending)?;
                    say_ended(app, &spec, &r.trial, ended.as_ref());
                }
                _ => i += 1,
            }
        }
        let interrupted = crate::signals::received().is_some();
        let ids: Vec<i64> = running.iter().map(|(_, r)| r.trial.id).collect();
        let mut state = None;
        if last_poll.is_none_or(|t| t.elapsed() >= home.poll_every()) {
            last_poll = Some(Instant::now());
            let beat = last_beat.elapsed() >= HEARTBEAT_EVERY;
            if beat {
                last_beat = Instant::now();
            }
            let prune = spec.early_terminate.is_some()
                && !running.is_empty()
                && last_check.elapsed() >= EARLY_TERMINATE_EVERY;
            if prune {
                last_check = Instant::now();
            }
            let poll = home.poll(&ids, beat, prune)?;
            state = Some(poll.state);
            for (trial_id, why) in poll.stops {
                if let Some((_, r)) = running
                    .iter_mut()
                    .find(|(_, r)| r.trial.id == trial_id && r.stop_sent.is_none())
                {
                    say!("labbook: trial #{} pruned: {why}", r.trial.number());
                    terminate(&mut r.child);
                    r.stop_sent = Some(Instant::now());
                    r.pruned = Some(why);
                }
            }
        }
        if interrupted || state == Some(StudyState::Cancelled) {
            for (_, r) in running.iter_mut() {
                if r.stop_sent.is_none() {
                    terminate(&mut r.child);
                    r.stop_sent = Some(Instant::now());
                }
            }
            if done.is_none() {
                done = Some(if interrupted {
                    "interrupted".into()
                } else {
                    "cancelled".into()
                });
            }
        }
        for (_, r) in running.iter_mut() {
            if r.stop_sent.is_some_and(|t| t.elapsed() > STOP_GRACE) {
                let _ = r.child.kill();
            }
        }
        let can_start = done.is_none() && args.count.is_none_or(|c| started < c);
        let free: Vec<usize> = (0..slots.len())
            .filter(|s| !running.iter().any(|(slot, _)| slot == s))
            .collect();
        if can_start {
            for slot in free {
                match home.claim()? {
                    Claimed::Trial(trial) => {
                        started += 1;
                        match home.spawn(&trial, slots[slot].as_deref()) {
                            Ok(child) => running.push((
                                slot,
                                Running {
                                    child,
                                    trial,
                                    stop_sent: None,
                                    pruned: None,
                                },
                            )),
                            Err(e) => {
                                home.finish(trial.id, &Ending::NotStarted(format!("{e:#}")))?;
                                say!(
                                    "labbook: {}: trial #{}: {e:#}",
                                    paint.error("error"),
                                    trial.number()
                                );
                            }
                        }
                        if args.count.is_some_and(|c| started >= c) {
                            break;
                        }
                    }
                    Claimed::Wait(why) => {
                        if why != last_wait {
                            say!("labbook: waiting: {why}");
                            last_wait = why;
                        }
                        break;
                    }
                    Claimed::Done(state, reason) => {
                        done = Some(match reason {
                            Some(r) => format!("{}: {r}", state.as_str()),
                            None => state.as_str().to_string(),
                        });
                        break;
                    }
                }
            }
        }
        if running.is_empty() && (done.is_some() || !can_start) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    say!(
        "labbook: sweep {} ({}): {} · {} trial(s) started here · labbook sweep status {}",
        paint.bold(&study.name),
        paint.id(&study.id),
        done.as_deref().unwrap_or("count reached"),
        started,
        study.id
    );
    Ok(if crate::signals::received().is_some() {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

pub(crate) fn terminate(child: &mut Child) {
    // SAFETY: kill(2) with a pid we spawned and still hold (not yet
    // reaped, so it cannot have been reused) and a valid signal number.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
}

/// A trial's command line, its macros expanded here (`${env}` and
/// `${envvar:…}` are this machine's), and the variables that hand the
/// trial's values to the program.
struct TrialCommand {
    words: Vec<String>,
    env: Vec<(String, String)>,
}

/// `${args_json_file}` files go in `dir`.
fn trial_command(
    spec: &SweepSpec,
    study: &StudyRecord,
    trial: &TrialRecord,
    dir: &std::path::Path,
) -> Result<TrialCommand> {
    let args = spec.nested_args(&trial.obs.params);
    let json_file = if needs_json_file(&spec.command) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("config-{}.json", trial.number()));
        std::fs::write(&path, labbook_search::command::args_json(&args))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Some(path.to_string_lossy().into_owned())
    } else {
        None
    };
    let env = |name: &str| std::env::var(name).ok();
    let words = expand(
        &spec.command,
        &MacroContext {
            program: spec.program.as_deref(),
            args: &args,
            args_json_file: json_file.as_deref(),
            env: &env,
        },
    )
    .map_err(|e| anyhow!("the sweep's command: {e}"))?;
    let vars = vec![
        ("LABBOOK_SWEEP_ID".to_string(), study.id.clone()),
        (
            "LABBOOK_CONFIG_SET".to_string(),
            Value::Object(args).to_string(),
        ),
    ];
    Ok(TrialCommand { words, env: vars })
}

pub(crate) fn spawn_trial(
    exe: &std::path::Path,
    store_dir: &std::path::Path,
    workdir: &std::path::Path,
    study: &StudyRecord,
    spec: &SweepSpec,
    trial: &TrialRecord,
    gpu: Option<&str>,
) -> Result<Child> {
    let command = trial_command(
        spec,
        study,
        trial,
        &store_dir.join("sweeps").join(&study.id),
    )?;
    spawn_labbook_run(
        exe,
        store_dir,
        workdir,
        study,
        trial.id,
        &command.words,
        &command.env,
        gpu,
    )
}

/// Makes the child stop (SIGTERM, which `labbook run` forwards to the
/// program) if this runner dies, so a killed runner leaves no orphan to
/// run twice once its trial is found crashed.
fn stop_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches
        // only the child's own state.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGTERM as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// Starts `labbook run -- WORDS` for a trial (or a queued job) of `study`:
/// the run links itself to the trial through LABBOOK_TRIAL.
#[allow(clippy::too_many_arguments)]
pub(crate) fn spawn_labbook_run(
    exe: &std::path::Path,
    store_dir: &std::path::Path,
    workdir: &std::path::Path,
    study: &StudyRecord,
    trial_id: i64,
    words: &[String],
    env: &[(String, String)],
    gpus: Option<&str>,
) -> Result<Child> {
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .arg("--")
        .args(words)
        .current_dir(workdir)
        .env("LABBOOK_DIR", store_dir)
        .env("LABBOOK_PROJECT", &study.project)
        .env("LABBOOK_TRIAL", format!("{}:{}", study.pk, trial_id))
        .env_remove("LABBOOK_URL")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(gpus) = gpus {
        cmd.env("CUDA_VISIBLE_DEVICES", gpus);
    }
    stop_with_parent(&mut cmd);
    cmd.spawn()
        .with_context(|| format!("cannot start {}", exe.display()))
}

pub(crate) fn say_ended(app: &App, spec: &SweepSpec, trial: &TrialRecord, ended: Option<&Ended>) {
    let Some(ended) = ended else { return };
    let paint = app.err();
    let shown = match (ended.value, &spec.metric) {
        (Some(v), Some(m)) => format!(" · {} {}", m.name, fmt::number(v)),
        _ => String::new(),
    };
    say!(
        "labbook: trial #{} {}{shown}",
        trial.number(),
        match ended.state {
            TrialState::Complete => paint.good(ended.state.as_str()),
            _ => paint.warn(ended.state.as_str()),
        }
    );
}

/// What `labbook run` does for a sweep's trial (LABBOOK_TRIAL is
/// `STUDY:TRIAL`): the run takes the trial's parameters as its config,
/// the sweep's name as its group, its reason, and is linked to the trial.
pub struct TrialLink {
    store: Arc<labbook_store::SqliteStore>,
    trial_id: i64,
}

impl TrialLink {
    pub fn attach(&self, run: &RunRecord) -> Result<()> {
        self.store.update_trial(
            self.trial_id,
            &TrialPatch {
                run_id: Some(run.id.clone()),
                heartbeat: true,
                now_ms: now_ms(),
                ..TrialPatch::default()
            },
        )?;
        Ok(())
    }
}

pub fn trial_launch(launch: &mut Launch, reference: &str) -> Result<TrialLink> {
    let (study_pk, trial_id) = reference
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse::<i64>().ok()?, b.parse::<i64>().ok()?)))
        .ok_or_else(|| anyhow!("LABBOOK_TRIAL must be STUDY:TRIAL, got {reference:?}"))?;
    let store = crate::app::open_store(&launch.store_dir)?;
    let study = store.study_by_pk(study_pk)?;
    let trial = store.trial(trial_id)?;
    if trial.study != study.pk {
        bail!("trial {trial_id} is not one of study {study_pk}'s");
    }
    if study.kind == StudyKind::Queue {
        crate::commands::queue::job_launch(launch, &study, &trial);
        return Ok(TrialLink { store, trial_id });
    }
    let params: serde_json::Map<String, Value> = trial
        .obs
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let config = config_from_json(&Value::Object(params)).context("the trial's parameters")?;
    launch.config.extend(config);
    launch.project.get_or_insert_with(|| study.project.clone());
    launch.group.get_or_insert_with(|| study.name.clone());
    if !launch.tags.iter().any(|t| t == "sweep") {
        launch.tags.push("sweep".into());
    }
    launch
        .kv_tags
        .extend(sweeps::trial_labels(&study, trial.number()));
    if launch.why.is_none() {
        launch.why = Some(sweeps::trial_why(&study, trial.number(), &trial.obs.params));
    }
    Ok(TrialLink { store, trial_id })
}

fn counts(trials: &[Arc<TrialRecord>]) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::new();
    for t in trials {
        *out.entry(t.state().as_str()).or_insert(0) += 1;
    }
    out
}

fn best<'a>(spec: &SweepSpec, trials: &'a [Arc<TrialRecord>]) -> Option<&'a Arc<TrialRecord>> {
    let goal = spec.direction();
    trials
        .iter()
        .filter(|t| t.state() == TrialState::Complete)
        .filter(|t| t.obs.value.is_some_and(|v| !v.is_nan()))
        .fold(None, |b: Option<&Arc<TrialRecord>>, t| match b {
            Some(b)
                if !goal.better(
                    t.obs.value.unwrap_or(f64::NAN),
                    b.obs.value.unwrap_or(f64::NAN),
                ) =>
            {
                Some(b)
            }
            _ => Some(t),
        })
}

fn trial_json(t: &TrialRecord) -> Value {
    json!({
        "number": t.number(),
        "state": t.state().as_str(),
        "params": t.obs.params,
        "value": t.obs.value.filter(|v| v.is_finite()),
        "run_id": t.run_id,
        "grid_index": t.grid_index,
        "retry_of": t.retry_of,
        "started_ms": t.started_ms,
        "ended_ms": t.ended_ms,
        "note": t.note,
    })
}

fn study_json(study: &StudyRecord, trials: &[Arc<TrialRecord>]) -> Value {
    json!({
        "id": study.id,
        "name": study.name,
        "project": study.project,
        "kind": study.kind.as_str(),
        "state": study.state.as_str(),
        "state_reason": study.state_reason,
        "why": study.why,
        "direction": study.direction().as_str(),
        "created_ms": study.created_ms,
        "trials": counts(trials),
    })
}

fn ls(app: &App, args: LsArgs) -> Result<ExitCode> {
    let (store, _) = app.open_existing()?;
    let studies: Vec<StudyRecord> = store
        .list_studies(args.project.as_deref())?
        .into_iter()
        .filter(|s| s.kind == StudyKind::Sweep)
        .collect();
    if args.json {
        let rows: Vec<Value> = studies
            .iter()
            .map(|s| Ok(study_json(s, &store.trials(s.pk)?)))
            .collect::<Result<_>>()?;
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if studies.is_empty() {
        say!("no sweeps yet: labbook sweep create sweep.yaml");
        return Ok(ExitCode::SUCCESS);
    }
    let out = app.out();
    let mut table = Table::new(vec![
        ("ID".into(), Align::Left),
        ("NAME".into(), Align::Left),
        ("PROJECT".into(), Align::Left),
        ("STATE".into(), Align::Left),
        ("TRIALS".into(), Align::Right),
        ("BEST".into(), Align::Right),
        ("CREATED".into(), Align::Left),
    ]);
    let now = now_ms();
    for s in &studies {
        let trials = store.trials(s.pk)?;
        let spec = SweepSpec::from_value(&s.spec["config"]).ok();
        let best = spec
            .as_ref()
            .and_then(|spec| best(spec, &trials))
            .and_then(|t| t.obs.value)
            .map(fmt::number)
            .unwrap_or_else(|| "-".into());
        table.push(vec![
            out.id(&s.id),
            s.name.clone(),
            s.project.clone(),
            s.state.as_str().to_string(),
            trials.len().to_string(),
            best,
            fmt::ago(now, s.created_ms),
        ]);
    }
    for line in table.render(|h| out.heading(h)) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

fn status(app: &App, args: StatusArgs) -> Result<ExitCode> {
    let (store, study, spec) = open_sweep(app, &args.sweep)?;
    app.reap(&*store);
    let trials = store.trials(study.pk)?;
    let metric_missing = spec.metric.as_ref().map(|m| {
        let finished_without = trials
            .iter()
            .filter(|t| t.state() == TrialState::Complete && t.obs.value.is_none())
            .count();
        (m.name.clone(), finished_without)
    });
    if args.json {
        let mut doc = study_json(&study, &trials);
        doc["method"] = json!(spec.method.as_str());
        doc["metric"] = json!(
            spec.metric
                .as_ref()
                .map(|m| json!({"name": m.name, "goal": m.goal.as_str()}))
        );
        doc["best"] = best(&spec, &trials)
            .map(|t| trial_json(t))
            .unwrap_or(Value::Null);
        doc["trial_list"] = Value::Array(trials.iter().map(|t| trial_json(t)).collect());
        if let Some((name, n)) = &metric_missing
            && *n > 0
        {
            doc["warnings"] = json!([format!(
                "{n} finished trial(s) never logged the metric {name:?}"
            )]);
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    let out = app.out();
    println!(
        "{} {} ({}) · project {} · {} · {}",
        out.heading("sweep"),
        out.bold(&study.name),
        out.id(&study.id),
        study.project,
        spec.method.as_str(),
        match &study.state_reason {
            Some(r) => format!("{}: {r}", study.state.as_str()),
            None => study.state.as_str().to_string(),
        }
    );
    if let Some(why) = &study.why {
        println!("{} {why}", out.dim("why"));
    }
    let summary: Vec<String> = counts(&trials)
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    println!(
        "{} {}",
        out.dim("trials"),
        if summary.is_empty() {
            "none yet".to_string()
        } else {
            summary.join(", ")
        }
    );
    if let Some(m) = &spec.metric {
        match best(&spec, &trials) {
            Some(b) => println!(
                "{} #{} {} {} = {}  {}",
                out.dim("best"),
                b.number(),
                b.run_id.as_deref().map(|r| out.id(r)).unwrap_or_default(),
                m.name,
                out.good(&fmt::number(b.obs.value.unwrap_or(f64::NAN))),
                params_text(&b.obs.params)
            ),
            None => println!(
                "{} none yet ({} {})",
                out.dim("best"),
                m.goal.as_str(),
                m.name
            ),
        }
    }
    if let Some((name, n)) = &metric_missing
        && *n > 0
    {
        say!(
            "labbook: {}: {n} finished trial(s) never logged the metric {name:?}: check the metric's name in the sweep file and in the program",
            app.err().warn("warning")
        );
    }
    if !trials.is_empty() {
        let mut table = Table::new(vec![
            ("#".into(), Align::Right),
            ("STATE".into(), Align::Left),
            ("RUN".into(), Align::Left),
            ("VALUE".into(), Align::Right),
            ("PARAMETERS".into(), Align::Left),
        ]);
        for t in &trials {
            let mut params = params_text(&t.obs.params);
            if let Some(note) = &t.note {
                params = format!("{params}  {}", out.dim(note));
            }
            table.push(vec![
                t.number().to_string(),
                t.state().as_str().to_string(),
                t.run_id.clone().unwrap_or_else(|| "-".into()),
                t.obs.value.map(fmt::number).unwrap_or_else(|| "-".into()),
                params,
            ]);
        }
        for line in table.render(|h| out.heading(h)) {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn params_text(params: &BTreeMap<String, Value>) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={}", labbook_search::command::python_str(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn set_state(app: &App, args: StateArgs, state: StudyState) -> Result<ExitCode> {
    let (store, study, _) = open_sweep(app, &args.sweep)?;
    if matches!(study.state, StudyState::Finished | StudyState::Cancelled)
        && state == StudyState::Stopped
    {
        say!(
            "labbook: sweep {} is {} already",
            study.name,
            study.state.as_str()
        );
        return Ok(ExitCode::SUCCESS);
    }
    store.update_study(
        study.pk,
        &StudyPatch {
            state: Some((
                state,
                Some(match state {
                    StudyState::Cancelled => "cancelled by labbook sweep cancel".to_string(),
                    _ => "stopped by labbook sweep stop".to_string(),
                }),
            )),
            ..StudyPatch::default()
        },
    )?;
    say!(
        "labbook: sweep {} ({}) {}: {}",
        study.name,
        study.id,
        state.as_str(),
        match state {
            StudyState::Cancelled => "its runners stop their running trials",
            _ => "no new trials; running ones finish",
        }
    );
    Ok(ExitCode::SUCCESS)
}

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

fn spark(values: &[f64], lower_is_up: bool) -> String {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (lo, hi) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    values
        .iter()
        .map(|v| {
            if !v.is_finite() {
                return ' ';
            }
            let mut t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
            if lower_is_up {
                t = 1.0 - t;
            }
            BARS[((t * 7.0).round() as usize).min(7)]
        })
        .collect()
}

/// The number a parameter's value sits at on its axis (a choice's index).
fn axis_value(domain: Option<&labbook_search::Domain>, v: &Value) -> Option<f64> {
    match domain {
        Some(d) => d.to_internal(v).map(|x| match d {
            labbook_search::Domain::Float { log: true, .. }
            | labbook_search::Domain::Int { log: true, .. } => x.max(f64::MIN_POSITIVE).ln(),
            _ => x,
        }),
        None => v.as_f64(),
    }
}

fn show(app: &App, args: StatusArgs) -> Result<ExitCode> {
    let (store, _) = app.open_existing()?;
    let study = store
        .study(&args.sweep, None)
        .map_err(|e| hinted(e.to_string(), "`labbook sweep ls` lists the sweeps"))?;
    let trials = store.trials(study.pk)?;
    let direction = study.direction();
    let history = labbook_search::analysis::history(&trials, direction);
    let importance = labbook_search::analysis::importance(&trials, direction);
    if args.json {
        let doc = json!({
            "id": study.id,
            "name": study.name,
            "direction": direction.as_str(),
            "history": history,
            "importance": importance,
            "importance_method": "PED-ANOVA (target quantile 10%)",
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    let out = app.out();
    let minimize = direction == labbook_search::Direction::Minimize;
    println!(
        "{} {} ({}) · {} · {} trials",
        out.heading(study.kind.as_str()),
        out.bold(&study.name),
        out.id(&study.id),
        direction.as_str(),
        trials.len()
    );
    if history.is_empty() {
        println!("no complete trial yet");
        return Ok(ExitCode::SUCCESS);
    }
    let last = &history[history.len() - 1];
    println!();
    println!("{}", out.heading("best so far"));
    let bests: Vec<f64> = history.iter().map(|h| h.best).collect();
    let values: Vec<f64> = history.iter().map(|h| h.value).collect();
    let width = 60usize;
    let pick = |v: &[f64]| -> Vec<f64> {
        if v.len() <= width {
            return v.to_vec();
        }
        (0..width).map(|i| v[i * v.len() / width]).collect()
    };
    println!(
        "  best   {}  {}",
        spark(&pick(&bests), minimize),
        fmt::number(last.best)
    );
    println!("  trials {}", spark(&pick(&values), minimize));
    if !importance.is_empty() {
        println!();
        println!(
            "{} {}",
            out.heading("importance"),
            out.dim("(PED-ANOVA, best 10% against all)")
        );
        let name_w = importance.iter().map(|i| i.name.len()).max().unwrap_or(0);
        for i in &importance {
            let bar = "█".repeat((i.importance * 30.0).round() as usize);
            println!(
                "  {:<name_w$}  {:>5.1}%  {bar}",
                i.name,
                i.importance * 100.0
            );
        }
    }
    // Slices: for each parameter, the best value reached in each of 24 bins
    // of its range (a choice per bin for categorical ones).
    let mut names: Vec<&String> = trials.iter().flat_map(|t| t.obs.params.keys()).collect();
    names.sort();
    names.dedup();
    let complete: Vec<&Arc<TrialRecord>> = trials
        .iter()
        .filter(|t| t.state() == TrialState::Complete && t.obs.value.is_some_and(f64::is_finite))
        .collect();
    println!();
    println!(
        "{} {}",
        out.heading("slices"),
        out.dim("(best value per part of each parameter's range, low → high)")
    );
    let name_w = names.iter().map(|n| n.len()).max().unwrap_or(0);
    for name in names {
        let domain = trials.iter().rev().find_map(|t| t.distributions.get(name));
        let points: Vec<(f64, f64)> = complete
            .iter()
            .filter_map(|t| Some((axis_value(domain, t.obs.params.get(name)?)?, t.obs.value?)))
            .collect();
        if points.is_empty() {
            continue;
        }
        let (lo, hi) = points
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (x, _)| {
                (a.min(*x), b.max(*x))
            });
        let bins = match domain {
            Some(labbook_search::Domain::Categorical { choices }) => choices.len().clamp(1, 24),
            _ => 24,
        };
        let mut best_in: Vec<f64> = vec![f64::NAN; bins];
        for (x, v) in &points {
            let b = if hi > lo {
                (((x - lo) / (hi - lo)) * bins as f64) as usize
            } else {
                0
            };
            let b = b.min(bins - 1);
            if best_in[b].is_nan() || direction.better(*v, best_in[b]) {
                best_in[b] = *v;
            }
        }
        let best_trial = complete
            .iter()
            .copied()
            .fold(None, |b: Option<&Arc<TrialRecord>>, t| match b {
                Some(b)
                    if !direction.better(
                        t.obs.value.unwrap_or(f64::NAN),
                        b.obs.value.unwrap_or(f64::NAN),
                    ) =>
                {
                    Some(b)
                }
                _ => Some(t),
            });
        let at = best_trial
            .and_then(|t| t.obs.params.get(name))
            .map(labbook_search::command::python_str)
            .unwrap_or_default();
        println!(
            "  {:<name_w$}  {}  best at {at}",
            name,
            spark(&best_in, minimize)
        );
    }
    let pruned = trials
        .iter()
        .filter(|t| t.state() == TrialState::Pruned)
        .count();
    if pruned > 0 {
        let mut stops: Vec<i64> = trials
            .iter()
            .filter(|t| t.state() == TrialState::Pruned)
            .filter_map(|t| t.obs.last_intermediate().map(|(s, _)| s))
            .collect();
        stops.sort_unstable();
        let kept_len: Vec<i64> = complete
            .iter()
            .filter_map(|t| t.obs.last_intermediate().map(|(s, _)| s))
            .collect();
        println!();
        println!(
            "{} {pruned} pruned{}, {} kept{}",
            out.heading("pruning"),
            stops
                .get(stops.len() / 2)
                .map(|s| format!(" (half of them by step {s})"))
                .unwrap_or_default(),
            complete.len(),
            kept_len
                .iter()
                .max()
                .map(|s| format!(" (to step {s})"))
                .unwrap_or_default()
        );
    }
    println!();
    println!(
        "{} labbook ui → /p/{}/sweep/{}",
        out.dim("dashboard:"),
        study.project,
        study.id
    );
    Ok(ExitCode::SUCCESS)
}
