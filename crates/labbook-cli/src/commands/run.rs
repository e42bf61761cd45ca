//! `labbook run -- COMMAND…`: runs a program as a tracked run.
//!
//! The wrapper is meant to be invisible: the program's output reaches the
//! terminal byte for byte as it is written, signals sent to the wrapper
//! reach the program, and the wrapper exits with the program's status. On
//! the side it records the output, the exit, the environment and system
//! metrics, and hands the run to the program (LABBOOK_RUN_ID) so the Python
//! SDK logs into the same run.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use labbook_capture::{CaptureOptions, Monitor, SnapshotLimits, capture_with_snapshot, hostname};
use labbook_core::config::config_from_json;
use labbook_core::{Config, RunRecord, RunStatus};
use labbook_server::client::{Client, HttpSink};
use labbook_server::wire::StartRun;
use labbook_store::versions::log_code_snapshot;
use labbook_store::writer::{PendingPoint, RunWriter, WriterOptions};
use labbook_store::{NewRun, OutputStream, RunPatch, Store};

use crate::RunArgs;
use crate::app::{App, default_project, open_store};
use crate::error::hinted;
use crate::fmt::{self, now_ms};
use crate::signals;

/// How often the program's CPU, memory and GPU use is sampled.
const MONITOR_INTERVAL: Duration = Duration::from_secs(5);
/// How long the final write may take before the wrapper gives up on it.
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to keep reading output after the program exited. Longer only
/// when a background process it started still holds the pipes open; the
/// wrapper should not wait for that one.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

pub fn run(app: &App, args: RunArgs) -> Result<ExitCode> {
    let config = parse_config(&args.config)?;
    let mut launch = Launch {
        store_dir: app.store_dir_for_run(),
        cwd: app.cwd.clone(),
        project: args.project,
        name: args.name,
        group: args.group,
        tags: split_tags(&args.tags),
        kv_tags: Default::default(),
        why: args.why,
        config,
        command: args.command,
        env_set: Vec::new(),
        env_remove: Vec::new(),
        no_monitor: args.no_monitor,
        recorded: None,
        server: args.url.map(|url| Server {
            url,
            attach: args.attach,
        }),
    };
    // A sweep's trial: `labbook sweep run` starts each trial as `labbook
    // run` with LABBOOK_TRIAL set, and the run takes the trial's
    // parameters, sweep and reason, and is linked to it once it exists.
    let trial = match std::env::var("LABBOOK_TRIAL") {
        Ok(reference) if !reference.is_empty() && launch.server.is_none() => Some(
            crate::commands::sweep::trial_launch(&mut launch, &reference)
                .context("cannot start the sweep's trial")?,
        ),
        _ => None,
    };
    let linked = |run: &RunRecord| match &trial {
        Some(link) => link.attach(run),
        None => Ok(()),
    };
    Ok(launch_run(app, launch, linked)?.0)
}

/// A program to run as a tracked run: what `labbook run` is given, and
/// what a replay rebuilds from the run it replays.
pub struct Launch {
    pub store_dir: std::path::PathBuf,
    /// Where the program runs and its git state is read.
    pub cwd: std::path::PathBuf,
    pub project: Option<String>,
    pub name: Option<String>,
    pub group: Option<String>,
    pub tags: Vec<String>,
    pub kv_tags: std::collections::BTreeMap<String, String>,
    pub why: Option<String>,
    pub config: Config,
    pub command: Vec<OsString>,
    /// Variables set for the program, after the wrapper's own.
    pub env_set: Vec<(String, String)>,
    pub env_remove: Vec<String>,
    pub no_monitor: bool,
    /// Environment entries recorded as given instead of captured: a
    /// replay's code is the original's (its `git` and `code`), not the
    /// state of the folder it was rebuilt in.
    pub recorded: Option<serde_json::Map<String, serde_json::Value>>,
    /// Log into this server instead of the store at `store_dir`.
    pub server: Option<Server>,
}

/// A `labbook serve` a run logs into.
pub struct Server {
    pub url: String,
    /// The run the server already made for this one (a sweep agent's
    /// claimed trial), which the wrapper takes over.
    pub attach: Option<String>,
}

/// Where a run is recorded.
enum Home {
    Store(Arc<dyn Store>),
    Server(Arc<Client>),
}

/// What the wrapper needs to know of the run it started.
struct Started {
    id: String,
    name: String,
    project: String,
    created_ms: i64,
}

/// Runs `launch` as a tracked run and waits for it. `started` sees the run
/// once it exists, before the program starts (a replay records there what
/// it replays); an error from it ends the run as failed. Returns the exit
/// code to give and the run's id.
pub fn launch_run(
    app: &App,
    launch: Launch,
    started: impl FnOnce(&RunRecord) -> Result<()>,
) -> Result<(ExitCode, String)> {
    let paint = app.err();
    // First, so that a SIGTERM during setup is held and delivered to the
    // program once it starts, rather than killing a half-created run.
    if let Err(e) = signals::install() {
        say!(
            "labbook: {}: signals will not be forwarded to the program: {e}",
            paint.warn("warning")
        );
    }
    let command = launch.command;
    let Some(program) = command.first().cloned() else {
        return Err(anyhow!(
            "no command given; usage: labbook run [OPTIONS] -- COMMAND [ARGS]..."
        ));
    };
    let argv: Vec<String> = command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();

    let (home, record, location) = match &launch.server {
        None => {
            let dir = launch.store_dir.clone();
            let created_store = !dir.is_dir();
            let store = open_store(&dir)?;
            let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
            if created_store {
                say!("labbook: created a store in {}", dir.display());
            }
            let project = launch
                .project
                .clone()
                .unwrap_or_else(|| default_project(&dir));
            let record = store
                .create_run(&NewRun {
                    id: None,
                    project,
                    name: launch.name.clone(),
                    group: launch.group.clone(),
                    tags: launch.tags.clone(),
                    notes: launch.why.clone(),
                    config: launch.config.clone(),
                    created_ms: now_ms(),
                    host: hostname(),
                    pid: Some(std::process::id()),
                })
                .context("cannot create the run")?;
            let store: Arc<dyn Store> = store;
            if !launch.kv_tags.is_empty() {
                store
                    .update_run(
                        &record.id,
                        &RunPatch {
                            set_kv_tags: launch.kv_tags.clone(),
                            ..RunPatch::default()
                        },
                    )
                    .context("cannot tag the run")?;
            }
            if let Err(e) = started(&record) {
                let _ = store.update_run(
                    &record.id,
                    &RunPatch {
                        status: Some(RunStatus::Failed),
                        ended_ms: Some(now_ms()),
                        error: Some(format!("{e:#}")),
                        ..RunPatch::default()
                    },
                );
                return Err(e);
            }
            let started = Started {
                id: record.id.clone(),
                name: record.name.clone(),
                project: record.project.clone(),
                created_ms: record.created_ms,
            };
            (
                Home::Store(store),
                started,
                ("LABBOOK_DIR", dir.to_string_lossy().into_owned()),
            )
        }
        Some(server) => {
            let client = Arc::new(Client::new(&server.url)?);
            let created_ms = now_ms();
            let start = StartRun {
                id: Some(server.attach.clone().unwrap_or_else(|| {
                    labbook_core::ids::run_id_from_bits(labbook_store::random_bits())
                })),
                attach: server.attach.is_some(),
                resume: None,
                project: launch
                    .project
                    .clone()
                    .or_else(|| {
                        std::env::var("LABBOOK_PROJECT")
                            .ok()
                            .filter(|p| !p.is_empty())
                    })
                    .unwrap_or_else(|| default_project(&launch.cwd)),
                name: launch.name.clone(),
                group: launch.group.clone(),
                notes: launch.why.clone(),
                tags: launch.tags.clone(),
                config: (!launch.config.is_empty())
                    .then(|| serde_json::to_value(&launch.config).ok())
                    .flatten(),
                created_ms: Some(created_ms),
                host: hostname(),
                pid: Some(std::process::id()),
            };
            let run = client
                .start_run(&start)
                .with_context(|| format!("cannot start the run on {}", server.url))?;
            let started = Started {
                id: run.id,
                name: run.name,
                project: run.project,
                created_ms,
            };
            (
                Home::Server(client),
                started,
                ("LABBOOK_URL", server.url.clone()),
            )
        }
    };
    say!(
        "labbook: run {} ({}) started in project {}",
        paint.bold(&record.name),
        paint.id(&record.id),
        record.project
    );

    let env_capture = start_capture(&home, &record, &launch.cwd, argv, launch.recorded);
    let writer = match &home {
        Home::Store(store) => {
            RunWriter::start(Arc::clone(store), &record.id, WriterOptions::default())
        }
        Home::Server(client) => RunWriter::start_with(
            Box::new(HttpSink::new(Arc::clone(client), &record.id)),
            &record.id,
            WriterOptions::default(),
        ),
    };
    let writer = Arc::new(writer.context("cannot start the run's writer")?);
    if let (Home::Server(_), false) = (&home, launch.kv_tags.is_empty()) {
        writer.patch(RunPatch {
            set_kv_tags: launch.kv_tags,
            ..RunPatch::default()
        });
    }
    let mut child_cmd = Command::new(&program);
    child_cmd
        .args(&command[1..])
        .current_dir(&launch.cwd)
        .env("LABBOOK_RUN_ID", &record.id)
        .env(location.0, &location.1)
        .env("LABBOOK_PROJECT", &record.project)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Python block-buffers a pipe, which would hold its prints back until
    // exit; the wrapper promises output as it is written.
    if std::env::var_os("PYTHONUNBUFFERED").is_none() {
        child_cmd.env("PYTHONUNBUFFERED", "1");
    }
    for name in &launch.env_remove {
        child_cmd.env_remove(name);
    }
    for (name, value) in &launch.env_set {
        child_cmd.env(name, value);
    }
    let mut child = match child_cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let code = could_not_start(app, &home, &writer, env_capture, &record, &program, &e);
            return Ok((code, record.id));
        }
    };
    signals::set_child(child.id());

    let (done_tx, done_rx) = mpsc::channel();
    let mut tees = 0;
    if let Some(out) = child.stdout.take() {
        tees += spawn_tee(
            out,
            OutputStream::Stdout,
            Arc::clone(&writer),
            done_tx.clone(),
        );
    }
    if let Some(err) = child.stderr.take() {
        tees += spawn_tee(
            err,
            OutputStream::Stderr,
            Arc::clone(&writer),
            done_tx.clone(),
        );
    }
    drop(done_tx);
    let mut monitor = if launch.no_monitor {
        None
    } else {
        start_monitor(child.id(), Arc::clone(&writer))
    };

    let status = child.wait();
    signals::clear_child();
    let ended_ms = now_ms();
    if let Some(m) = monitor.as_mut() {
        m.stop();
    }
    let drain_deadline = Instant::now() + DRAIN_TIMEOUT;
    for _ in 0..tees {
        let left = drain_deadline.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            break;
        }
    }
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            // The program ran but its status is lost (should not happen):
            // record a failure rather than leave the run "running".
            let patch = RunPatch {
                status: Some(RunStatus::Failed),
                ended_ms: Some(ended_ms),
                error: Some(format!("cannot wait for the program: {e}")),
                ..RunPatch::default()
            };
            let _ = writer.finish(patch, FINISH_TIMEOUT);
            return Err(anyhow!(e).context("cannot wait for the program"));
        }
    };
    let (code, signal) = exit_of(status);
    let mut run_status = RunStatus::from_exit(code, signal);
    if run_status == RunStatus::Failed && signals::received().is_some() {
        run_status = RunStatus::Killed;
    }
    let exit_code = code.or(signal.map(|s| 128 + s));
    warn_capture(app, env_capture);
    let finish = writer.finish(
        RunPatch {
            status: Some(run_status),
            ended_ms: Some(ended_ms),
            exit_code,
            ..RunPatch::default()
        },
        FINISH_TIMEOUT,
    );
    if let Err(e) = finish {
        say!(
            "labbook: {}: the end of the run may not be saved: {e}",
            paint.warn("warning")
        );
    }

    let how = match (run_status, code, signal) {
        (RunStatus::Finished, _, _) => String::new(),
        (_, _, Some(s)) => format!(" by {}", fmt::signal_name(s)),
        (_, Some(c), None) => format!(" with exit code {c}"),
        _ => String::new(),
    };
    say!(
        "labbook: run {} ({}) {}{how} {} {} · labbook show {}",
        paint.bold(&record.name),
        paint.id(&record.id),
        paint.status(run_status),
        if run_status == RunStatus::Finished {
            "in"
        } else {
            "after"
        },
        fmt::duration(ended_ms - record.created_ms),
        record.id
    );
    let _ = io::stdout().flush();
    Ok((
        ExitCode::from(u8::try_from(exit_code.unwrap_or(1)).unwrap_or(1)),
        record.id,
    ))
}

/// The program could not be started (not found, not executable): the run
/// is recorded as failed and the wrapper exits as a shell would (127, 126).
fn could_not_start(
    app: &App,
    home: &Home,
    writer: &RunWriter,
    env_capture: Option<JoinHandle<Result<(), String>>>,
    record: &Started,
    program: &OsString,
    e: &io::Error,
) -> ExitCode {
    let code = match e.kind() {
        io::ErrorKind::PermissionDenied => 126,
        _ => 127,
    };
    let reason = match e.kind() {
        io::ErrorKind::NotFound => "command not found".to_string(),
        _ => e.to_string(),
    };
    let message = format!("cannot start `{}`: {reason}", program.to_string_lossy());
    warn_capture(app, env_capture);
    let patch = RunPatch {
        status: Some(RunStatus::Failed),
        ended_ms: Some(now_ms()),
        exit_code: Some(code),
        error: Some(message.clone()),
        ..RunPatch::default()
    };
    if writer.finish(patch.clone(), FINISH_TIMEOUT).is_err()
        && let Home::Store(store) = home
    {
        // The writer thread could not write; try once directly.
        let _ = store.update_run(&record.id, &patch);
    }
    let _ = signals::take_pending();
    let paint = app.err();
    say!(
        "{}: {message} (run {} marked failed)",
        paint.error("error"),
        record.id
    );
    ExitCode::from(code as u8)
}

fn exit_of(status: ExitStatus) -> (Option<i32>, Option<i32>) {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        (status.code(), status.signal())
    }
    #[cfg(not(unix))]
    {
        (status.code(), None)
    }
}

/// `--config KEY=VALUE` values: JSON when the value parses as JSON (numbers,
/// booleans, lists, objects), else the text itself. Keys keep their dots,
/// and objects are flattened into dotted keys like any other config.
pub fn parse_config(items: &[String]) -> Result<Config> {
    let mut map = serde_json::Map::new();
    for item in items {
        let Some((key, raw)) = item.split_once('=') else {
            return Err(hinted(
                format!(
                    "--config expects KEY=VALUE, got {}",
                    labbook_core::config::truncate_for_message(item)
                ),
                "for example: --config lr=0.001 --config model.depth=4 --config opt=adam",
            ));
        };
        let value = serde_json::from_str(raw)
            .unwrap_or_else(|_| serde_json::Value::String(raw.to_string()));
        map.insert(key.trim().to_string(), value);
    }
    config_from_json(&serde_json::Value::Object(map)).context("invalid --config")
}

/// Tags from repeated flags, each of which may hold a comma-separated list.
pub fn split_tags(raw: &[String]) -> Vec<String> {
    raw.iter()
        .flat_map(|t| t.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Copies one of the program's streams to ours as it arrives and into the
/// run. Returns how many threads it started (0 or 1).
fn spawn_tee(
    mut source: impl Read + Send + 'static,
    stream: OutputStream,
    writer: Arc<RunWriter>,
    done: mpsc::Sender<()>,
) -> usize {
    let spawned = thread::Builder::new()
        .name(format!("labbook-tee-{stream:?}"))
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            // Once our own stdout is gone (`labbook run … | head`), keep
            // recording: killing a training run because a viewer quit
            // would be worse than what a plain pipe does.
            let mut echo = true;
            loop {
                match source.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if echo {
                            echo = echo_chunk(stream, &buf[..n]).is_ok();
                        }
                        writer.push_output(stream, buf[..n].to_vec());
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            let _ = done.send(());
        });
    usize::from(spawned.is_ok())
}

fn echo_chunk(stream: OutputStream, data: &[u8]) -> io::Result<()> {
    match stream {
        OutputStream::Stdout => {
            // Stdout is line-buffered; flushing each chunk passes a partial
            // line (a progress bar) through at once.
            let mut out = io::stdout().lock();
            out.write_all(data)?;
            out.flush()
        }
        OutputStream::Stderr => {
            let mut err = io::stderr().lock();
            err.write_all(data)?;
            err.flush()
        }
    }
}

fn start_monitor(pid: u32, writer: Arc<RunWriter>) -> Option<Monitor> {
    Monitor::spawn(pid, MONITOR_INTERVAL, move |index, sample| {
        let ts_ms = now_ms();
        let step = i64::try_from(index).unwrap_or(i64::MAX);
        let points: Vec<PendingPoint> = sample
            .into_iter()
            .filter_map(|(key, value)| {
                let key = writer.key_index(&key).ok()?;
                Some(PendingPoint {
                    key,
                    step,
                    ts_ms,
                    value,
                })
            })
            .collect();
        writer.push(&points);
    })
}

/// Captures the environment (git state, host, GPUs) and stores the code
/// snapshot on a thread, since git on a large repository can take a while
/// and the program should not wait.
fn start_capture(
    home: &Home,
    record: &Started,
    cwd: &Path,
    argv: Vec<String>,
    recorded: Option<serde_json::Map<String, serde_json::Value>>,
) -> Option<JoinHandle<Result<(), String>>> {
    let run_id = record.id.clone();
    let project = record.project.clone();
    let mut errors = Vec::new();
    // A server does not take artifacts yet, so a run logged into one has
    // no code snapshot (its git state and diff are still recorded).
    let snapshot = if recorded.is_some() || matches!(home, Home::Server(_)) {
        None
    } else {
        SnapshotLimits::from_env(&mut errors)
    };
    let home = match home {
        Home::Store(store) => Home::Store(Arc::clone(store)),
        Home::Server(client) => Home::Server(Arc::clone(client)),
    };
    let options = CaptureOptions {
        cwd: cwd.to_path_buf(),
        argv,
        snapshot,
        skip_git: recorded.is_some(),
        ..CaptureOptions::default()
    };
    thread::Builder::new()
        .name("labbook-capture".into())
        .spawn(move || {
            let (mut env, plan) = capture_with_snapshot(&options);
            env.errors.extend(errors);
            if let (Some(plan), Some(code), Home::Store(store)) = (plan, env.code.as_mut(), &home) {
                code.store_with(&plan, |files| {
                    log_code_snapshot(&**store, &project, &run_id, files, now_ms())
                        .map(|v| v.map(|v| (v.reference(), v.digest)))
                });
            }
            let mut value = serde_json::to_value(&env).map_err(|e| e.to_string())?;
            if let (Some(map), Some(recorded)) = (value.as_object_mut(), recorded) {
                map.extend(recorded);
            }
            // The store merges top-level keys, so what the Python SDK in the
            // program adds (the interpreter, its packages) stays.
            match &home {
                Home::Store(store) => store.set_environment(&run_id, &value),
                Home::Server(client) => client.set_environment(&run_id, &value),
            }
            .map_err(|e| e.to_string())
        })
        .ok()
}

fn warn_capture(app: &App, handle: Option<JoinHandle<Result<(), String>>>) {
    let problem = match handle.map(JoinHandle::join) {
        None => Some("cannot start the capture thread".to_string()),
        Some(Ok(Ok(()))) => None,
        Some(Ok(Err(e))) => Some(e),
        Some(Err(_)) => Some("the capture thread panicked".to_string()),
    };
    if let Some(problem) = problem {
        say!(
            "labbook: {}: the environment was not recorded: {problem}",
            app.err().warn("warning")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use labbook_core::ConfigValue;

    #[test]
    fn config_values_are_typed() {
        let config = parse_config(&[
            "lr=0.1".into(),
            "model.depth=4".into(),
            "name=abc".into(),
            "layers=[64, 64]".into(),
            "amp=true".into(),
            "opt={\"name\": \"adam\", \"beta\": 0.9}".into(),
            "empty=".into(),
        ])
        .unwrap();
        assert_eq!(config["lr"], ConfigValue::Float(0.1));
        assert_eq!(config["model.depth"], ConfigValue::Int(4));
        assert_eq!(config["name"], ConfigValue::Str("abc".into()));
        assert_eq!(config["amp"], ConfigValue::Bool(true));
        assert_eq!(config["opt.name"], ConfigValue::Str("adam".into()));
        assert_eq!(config["opt.beta"], ConfigValue::Float(0.9));
        assert_eq!(config["empty"], ConfigValue::Str(String::new()));
        assert!(matches!(config["layers"], ConfigValue::List(_)));
    }

    #[test]
    fn bad_config_is_an_error_not_a_panic() {
        assert!(parse_config(&["novalue".into()]).is_err());
        assert!(parse_config(&["=1".into()]).is_err());
    }

    #[test]
    fn tags_split_on_commas() {
        assert_eq!(
            split_tags(&["a,b".into(), " c ".into(), ",".into()]),
            vec!["a", "b", "c"]
        );
    }
}
