//! `labbook replay RUN`: rebuilds a run's code in a fresh folder (the
//! commit from the local repository, the diff, the snapshot's files),
//! checks the data it used and the environment it ran in, and runs the same
//! command again as a new run linked to the original; `--check` and
//! `labbook check-replay` then compare the two runs' curves.
//!
//! Nothing here touches the user's working tree or checkout: git is only
//! read (`cat-file`, `archive`), and the patch is applied in the new folder
//! with repository discovery fenced off.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use labbook_capture::{
    CaptureOptions, CodeSnapshot, Environment, SnapshotBase, hostname, scan_python_packages,
};
use labbook_core::replay::{
    CHECK_DOCUMENT, REPLAY_LABEL, REPLAY_OF_TAG, ReplayCheck, Tolerance, VERDICT_TAG, set_argument,
};
use labbook_core::{RunRecord, SeriesColumns};
use labbook_store::versions::{ArtifactVersion, EdgeRole, Placement};
use labbook_store::{RunPatch, StepRange, Store};
use serde_json::json;

use super::run::{Launch, launch_run, parse_config};
use crate::app::{App, resolve};
use crate::error::hinted;
use crate::fmt::{self, now_ms};
use crate::style::Painter;
use crate::table::{Align, Table};

/// The kv tag that says what a "what if" replay changed.
const SET_TAG: &str = "labbook.replay_set";

/// Variables that change a program's numbers: a replay gives the program
/// the run's values and unsets those the run did not have.
const NUMERIC_VARS: &[&str] = &[
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "PYTHONHASHSEED",
    "CUBLAS_WORKSPACE_CONFIG",
    "XLA_FLAGS",
];

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The run to replay (id, id prefix or name).
    run: String,
    /// Where to rebuild the code [default: .labbook/replays/<run id>-N].
    /// Must not exist, or be empty.
    #[arg(long, value_name = "DIR")]
    into: Option<PathBuf>,
    /// Replay with a config value changed ("what if"): KEY=VALUE, the
    /// value read as JSON when it parses. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// After the replay, compare its curves with the original's and exit
    /// with 0 when they reproduce, 1 when they diverge.
    #[arg(long)]
    check: bool,
    /// How close the curves must be for --check [default: rel=1e-6,abs=0].
    #[arg(long, value_name = "rel=R,abs=A")]
    tolerance: Option<String>,
    /// Go on when data the run used has changed since.
    #[arg(long)]
    allow_data_drift: bool,
    /// Print what the replay would do and do nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CheckReplayArgs {
    /// The original run.
    original: String,
    /// The replay (or any run to compare with it).
    replay: String,
    /// How close the curves must be [default: rel=1e-6,abs=0].
    #[arg(long, value_name = "rel=R,abs=A")]
    tolerance: Option<String>,
    /// Leave out metrics whose key starts with this (repeatable); system
    /// metrics (sys/…) always are.
    #[arg(long = "ignore", value_name = "PREFIX")]
    ignore: Vec<String>,
    /// Print the check as JSON.
    #[arg(long)]
    json: bool,
}

/// Where the replay's code comes from.
enum CodeSource {
    /// A commit of a local repository, the diff on top, then the
    /// snapshot's files (changed and untracked).
    Git {
        repo: PathBuf,
        commit: String,
        diff: String,
        diff_files: usize,
        snapshot: Option<ArtifactVersion>,
    },
    /// The snapshot is the whole code (the run was outside git).
    Snapshot(ArtifactVersion),
}

/// A data version the run used, and what became of it.
struct DataCheck {
    reference: String,
    problems: Vec<String>,
    note: String,
}

/// A config value a "what if" replay changes.
struct SetValue {
    key: String,
    value: String,
    /// As typed, for the command line.
    raw: String,
    was: Option<String>,
    /// Whether the command line carries it (found there, or added as a
    /// flag the script declares).
    on_command_line: bool,
}

/// Everything decided before anything is written.
struct Plan {
    original: RunRecord,
    env: Environment,
    code: CodeSource,
    root: PathBuf,
    rel_cwd: PathBuf,
    dest: PathBuf,
    command: Vec<String>,
    config: labbook_core::Config,
    sets: Vec<SetValue>,
    env_set: Vec<(String, String)>,
    env_remove: Vec<String>,
    data: Vec<DataCheck>,
    notes: Vec<String>,
    drift: Vec<String>,
    requirements: Vec<String>,
}

pub fn replay(app: &App, args: ReplayArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let tolerance = parse_tolerance(args.tolerance.as_deref())?;
    let (store, store_dir) = app.open_existing()?;
    let original = resolve(&*store, &args.run)?;
    let mut plan = make_plan(app, &*store, &store_dir, original, &args)?;
    let paint = app.err();
    print_plan(&paint, &plan);

    let drifted: Vec<&DataCheck> = plan
        .data
        .iter()
        .filter(|d| !d.problems.is_empty())
        .collect();
    if !drifted.is_empty() && !args.allow_data_drift {
        let what = drifted
            .iter()
            .map(|d| d.reference.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(hinted(
            format!("the data this run used has changed since: {what}"),
            "restore the data, or pass --allow-data-drift to replay with the data as it is now",
        ));
    }
    if args.dry_run {
        say!("labbook: dry run: nothing was written and nothing ran");
        return Ok(ExitCode::SUCCESS);
    }

    materialize(&*store, &plan).with_context(|| {
        format!(
            "cannot rebuild the code in {} (it is left there to inspect)",
            plan.dest.display()
        )
    })?;
    let before = plan.command.len();
    let cwd = plan.dest.join(&plan.rel_cwd);
    add_declared_flags(&mut plan.command, &mut plan.sets, &cwd);
    if plan.command.len() > before {
        say!(
            "labbook: the script declares {}: added to the command line",
            plan.command[before..].join(" ")
        );
    }
    let requirements = write_requirements(&plan)?;
    link_data(&*store, &plan);
    say!(
        "labbook: code rebuilt in {} in {} ms{}",
        plan.dest.display(),
        started.elapsed().as_millis(),
        requirements
            .map(|r| format!("; the run's packages pinned in {}", r.display()))
            .unwrap_or_default()
    );

    let (code, replay_id) = run_plan(app, &*store, &store_dir, &plan, started)?;
    if !args.check {
        return Ok(code);
    }
    let check = check_runs(&*store, &plan.original.id, &replay_id, tolerance, &[])?;
    print_check(app, &check);
    store_check(&*store, &check)?;
    Ok(if check.passed() {
        code
    } else {
        ExitCode::from(1)
    })
}

pub fn check_replay(app: &App, args: CheckReplayArgs) -> Result<ExitCode> {
    let tolerance = parse_tolerance(args.tolerance.as_deref())?;
    let (store, _) = app.open_existing()?;
    let original = resolve(&*store, &args.original)?;
    let replay = resolve(&*store, &args.replay)?;
    if original.id == replay.id {
        bail!("a run compared with itself proves nothing; give the original and its replay");
    }
    let check = check_runs(&*store, &original.id, &replay.id, tolerance, &args.ignore)?;
    store_check(&*store, &check)?;
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &check)?;
        writeln!(out)?;
    } else {
        print_check(app, &check);
    }
    Ok(if check.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn parse_tolerance(text: Option<&str>) -> Result<Tolerance> {
    match text {
        None => Ok(Tolerance::default()),
        Some(t) => t.parse().map_err(|e| {
            hinted(
                format!("--tolerance: {e}"),
                "for example --tolerance rel=1e-4,abs=1e-8",
            )
        }),
    }
}

fn make_plan(
    app: &App,
    store: &dyn Store,
    store_dir: &Path,
    original: RunRecord,
    args: &ReplayArgs,
) -> Result<Plan> {
    let value = store.environment(&original.id)?.ok_or_else(|| {
        anyhow!(
            "run {} has no recorded environment (its command and code are unknown), so it cannot be replayed",
            original.id
        )
    })?;
    // A replay of a replay ran in its rebuilt folder: its place in the code
    // is relative to that folder.
    let rebuilt_in = value
        .pointer("/replay/dir")
        .and_then(|d| d.as_str())
        .map(PathBuf::from);
    let env: Environment = serde_json::from_value(value).with_context(|| {
        format!(
            "run {}: its recorded environment cannot be read",
            original.id
        )
    })?;
    if env.command.is_empty() {
        bail!("run {} has no recorded command line", original.id);
    }
    let mut notes = Vec::new();
    let (code, root) = code_source(store, store_dir, app, &original, &env, &mut notes)?;
    let orig_cwd = PathBuf::from(&env.cwd);
    let rel_cwd = match orig_cwd.strip_prefix(&root).or_else(|e| {
        rebuilt_in
            .as_deref()
            .map_or(Err(e), |d| orig_cwd.strip_prefix(d))
    }) {
        Ok(rel) => rel.to_path_buf(),
        Err(_) => {
            notes.push(format!(
                "the run started in {}, outside its code ({}); the replay starts at the code's top",
                env.cwd,
                root.display()
            ));
            PathBuf::new()
        }
    };
    if env.host.as_deref() != hostname().as_deref() {
        notes.push(format!(
            "the run ran on {} in {}; this replay runs on {}",
            env.host.as_deref().unwrap_or("another host"),
            env.cwd,
            hostname().as_deref().unwrap_or("this host")
        ));
    } else if !orig_cwd.is_dir() {
        notes.push(format!("the run's folder {} is gone", env.cwd));
    }

    let mut command = env.command.clone();
    if let Some(at) = command.iter().position(|a| a == "***") {
        bail!(
            "argument {at} of the run's command line held a secret and was not recorded, so the command cannot be rebuilt"
        );
    }
    let mut config = original.config.clone();
    let mut sets = Vec::new();
    for item in &args.set {
        let parsed = parse_config(std::slice::from_ref(item)).map_err(|e| {
            hinted(
                format!("--set: {e:#}"),
                "for example: --set lr=0.01 --set model.depth=4",
            )
        })?;
        let raw = item.split_once('=').map(|(_, v)| v).unwrap_or_default();
        for (key, value) in parsed {
            let was = config.get(&key).map(|v| v.display());
            let on_command_line = set_argument(&mut command, &key, raw);
            sets.push(SetValue {
                key: key.clone(),
                value: value.display(),
                raw: raw.to_owned(),
                was,
                on_command_line,
            });
            config.insert(key, value);
        }
    }
    // A flag the script declares but the run left at its default.
    add_declared_flags(&mut command, &mut sets, &orig_cwd);
    for path in outside_paths(&command, &orig_cwd, &root) {
        let here = if Path::new(&path).exists() {
            "present here"
        } else {
            "missing here"
        };
        notes.push(format!(
            "the command names {path}, outside the code: read where it is ({here})"
        ));
    }

    let mut env_set = Vec::new();
    let mut env_remove = Vec::new();
    for name in NUMERIC_VARS {
        let recorded = env.env_vars.get(*name);
        let now = std::env::var(name).ok();
        match (recorded, now) {
            (Some(v), now) => {
                if now.as_ref() != Some(v) {
                    notes.push(format!(
                        "{name}={v} as the run had it (here: {})",
                        now.as_deref().unwrap_or("unset")
                    ));
                }
                env_set.push(((*name).to_owned(), v.clone()));
            }
            (None, Some(v)) => {
                notes.push(format!("{name} unset as in the run (here: {v})"));
                env_remove.push((*name).to_owned());
            }
            (None, None) => {}
        }
    }

    let data = check_data(store, &original.id, &root)?;
    let (drift, requirements) = environment_drift(&env, &command);
    let dest = match &args.into {
        Some(dir) => {
            let dir = app.cwd.join(dir);
            if dir.exists()
                && (!dir.is_dir() || std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()))
            {
                return Err(hinted(
                    format!("{} exists and is not empty", dir.display()),
                    "give --into a new or empty folder",
                ));
            }
            dir
        }
        None => {
            let base = store_dir.join("replays");
            let mut n = 1;
            loop {
                let candidate = base.join(format!("{}-{n}", original.id));
                if !candidate.exists() {
                    break candidate;
                }
                n += 1;
            }
        }
    };
    Ok(Plan {
        original,
        env,
        code,
        root,
        rel_cwd,
        dest,
        command,
        config,
        sets,
        env_set,
        env_remove,
        data,
        notes,
        drift,
        requirements,
    })
}

fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir).stdin(Stdio::null());
    cmd
}

fn has_commit(repo: &Path, commit: &str) -> bool {
    repo.is_dir()
        && git(repo)
            .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

fn code_version(
    store: &dyn Store,
    project: &str,
    code: &CodeSnapshot,
) -> Result<Option<ArtifactVersion>> {
    let Some(reference) = &code.version else {
        return Ok(None);
    };
    let version = store
        .resolve_artifact(Some(project), reference)
        .with_context(|| format!("the run's code snapshot {reference}"))?;
    if version.purged {
        bail!(
            "the run's code snapshot {reference} was deleted and freed by gc, so its files are gone"
        );
    }
    Ok(Some(version))
}

fn code_source(
    store: &dyn Store,
    store_dir: &Path,
    app: &App,
    original: &RunRecord,
    env: &Environment,
    notes: &mut Vec<String>,
) -> Result<(CodeSource, PathBuf)> {
    let snapshot = match &env.code {
        Some(code) => {
            if let Some(error) = &code.error {
                notes.push(format!("the code snapshot was not kept: {error}"));
            }
            for skipped in &code.skipped {
                notes.push(format!(
                    "not in the snapshot: {} ({})",
                    skipped.path, skipped.reason
                ));
            }
            code_version(store, &original.project, code)?
        }
        None => None,
    };
    match &env.git {
        Some(state) => {
            let Some(commit) = state.commit.clone() else {
                bail!("the run was in a git repository with no commit yet; nothing to check out");
            };
            let recorded_root = PathBuf::from(&state.root);
            let mut candidates = vec![recorded_root.clone()];
            if let Some(parent) = store_dir.parent() {
                candidates.push(parent.to_path_buf());
            }
            candidates.push(app.cwd.clone());
            let Some(repo) = candidates.iter().find(|c| has_commit(c, &commit)).cloned() else {
                let looked: Vec<String> =
                    candidates.iter().map(|c| c.display().to_string()).collect();
                return Err(hinted(
                    format!(
                        "commit {commit} is not in a local repository (looked in {})",
                        looked.join(", ")
                    ),
                    "fetch it (git fetch origin) or run labbook replay from a clone that has it",
                ));
            };
            if repo != recorded_root {
                notes.push(format!(
                    "the commit is read from {} (the run's repository was {})",
                    repo.display(),
                    state.root
                ));
            }
            if state.diff_truncated {
                notes.push("the recorded diff was cut at its size limit; the snapshot's copies of the changed files are used".into());
            }
            for excluded in &state.diff_excluded {
                notes.push(format!(
                    "not restored: {excluded} (named like a secret, never recorded)"
                ));
            }
            if env.code.is_none() && !state.untracked.is_empty() {
                notes.push(format!(
                    "this run predates code snapshots: its {} untracked file(s) are not restored ({})",
                    state.untracked.len(),
                    state.untracked.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            let diff_files = state.diff.matches("\ndiff --git ").count()
                + usize::from(state.diff.starts_with("diff --git "));
            Ok((
                CodeSource::Git {
                    repo,
                    commit,
                    diff: state.diff.clone(),
                    diff_files,
                    snapshot,
                },
                recorded_root,
            ))
        }
        None => match (snapshot, &env.code) {
            (Some(version), Some(code)) if code.base == SnapshotBase::Directory => {
                Ok((CodeSource::Snapshot(version), PathBuf::from(&code.root)))
            }
            _ => bail!(
                "run {} was not in a git repository and has no code snapshot, so its code cannot be rebuilt",
                original.id
            ),
        },
    }
}

/// For each set value not on the command line: when the script
/// (the first `.py` argument) spells one of its flags (`"--lr"`, as
/// argparse declares it), adds `--flag=value`, since the run used the
/// flag's default.
fn add_declared_flags(command: &mut Vec<String>, sets: &mut [SetValue], cwd: &Path) {
    let Some(script) = command.iter().skip(1).find(|a| a.ends_with(".py")) else {
        return;
    };
    let Ok(text) = std::fs::read_to_string(cwd.join(script)) else {
        return;
    };
    for set in sets.iter_mut().filter(|s| !s.on_command_line) {
        let declared = labbook_core::replay::flag_names(&set.key)
            .into_iter()
            .find(|flag| {
                text.contains(&format!("\"{flag}\"")) || text.contains(&format!("'{flag}'"))
            });
        if let Some(flag) = declared {
            command.push(format!("{flag}={}", set.raw));
            set.on_command_line = true;
        }
    }
}

/// Paths on the command line that lead outside the code's root.
fn outside_paths(command: &[String], cwd: &Path, root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for arg in command.iter().skip(1) {
        let value = match arg.split_once('=') {
            Some((flag, v)) if flag.starts_with('-') => v,
            _ => arg.as_str(),
        };
        if value.starts_with('-') || !value.contains('/') || value.contains("://") {
            continue;
        }
        let path = cwd.join(value);
        let mut normal = PathBuf::new();
        for part in path.components() {
            match part {
                Component::ParentDir => {
                    normal.pop();
                }
                Component::CurDir => {}
                other => normal.push(other),
            }
        }
        if !normal.starts_with(root) {
            found.push(value.to_owned());
        }
    }
    found
}

fn check_data(store: &dyn Store, run_id: &str, root: &Path) -> Result<Vec<DataCheck>> {
    let mut checks = Vec::new();
    for (version, role) in store.run_artifact_versions(run_id)? {
        if role != EdgeRole::Input || version.kind == labbook_core::artifact_version::CODE_ARTIFACT
        {
            continue;
        }
        let reference = format!("{}:v{}", version.name, version.version);
        if version.purged {
            checks.push(DataCheck {
                reference,
                problems: vec!["deleted, and its contents freed by gc".into()],
                note: String::new(),
            });
            continue;
        }
        let manifest = store.artifact_manifest(version.id)?;
        let entries = manifest.entries();
        let references = entries.iter().filter(|e| e.reference.is_some()).count();
        if entries.is_empty() {
            let digest = version.metadata.get("digest").and_then(|d| d.as_str());
            let source = version.metadata.get("source").and_then(|d| d.as_str());
            checks.push(DataCheck {
                reference,
                problems: Vec::new(),
                note: format!(
                    "recorded by MLflow (digest {}, source {}): labbook holds no files to check it against",
                    digest.unwrap_or("?"),
                    source.unwrap_or("?")
                ),
            });
            continue;
        }
        let problems: Vec<String> = store
            .verify_artifact_references(&version)?
            .into_iter()
            .map(|c| format!("{} {} ({})", c.path, c.state, c.location))
            .collect();
        let note = if references == 0 {
            "stored in labbook: read from the store".to_owned()
        } else if problems.is_empty() {
            let inside = entries
                .iter()
                .filter_map(|e| e.reference.as_deref())
                .filter_map(file_uri_path)
                .any(|p| p.starts_with(root));
            format!(
                "{references} file(s) unchanged{}",
                if inside {
                    ", linked into the replay at the same place"
                } else {
                    ", read where they are"
                }
            )
        } else {
            String::new()
        };
        checks.push(DataCheck {
            reference,
            problems,
            note,
        });
    }
    Ok(checks)
}

/// A `file://` reference's local path (other schemes are not linked).
fn file_uri_path(uri: &str) -> Option<PathBuf> {
    uri.starts_with("file://")
        .then(|| labbook_store::versions::reference_path(uri))
        .flatten()
}

/// What the interpreter that would run the command says about itself.
#[derive(serde::Deserialize)]
struct PythonNow {
    version: String,
    paths: Vec<PathBuf>,
}

const PYTHON_PROBE: &str = "import json, platform, sys; print(json.dumps({'version': platform.python_version(), 'paths': [p for p in sys.path if p]}))";

fn python_now(command: &[String], recorded: &str) -> Option<PythonNow> {
    let first = command.first()?;
    let name = Path::new(first)
        .file_name()?
        .to_string_lossy()
        .to_lowercase();
    let interpreter = if name.starts_with("python") {
        first.clone()
    } else {
        recorded.to_owned()
    };
    let out = Command::new(&interpreter)
        .args(["-I", "-c", PYTHON_PROBE])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

fn normalize_package(name: &str) -> String {
    name.to_lowercase().replace(['_', '.'], "-")
}

/// Differences between the run's environment and this machine's, and the
/// run's packages as requirement lines.
fn environment_drift(env: &Environment, command: &[String]) -> (Vec<String>, Vec<String>) {
    let mut drift = Vec::new();
    let mut requirements = Vec::new();
    let (now, python) = std::thread::scope(|s| {
        let python = env
            .python
            .as_ref()
            .map(|p| s.spawn(move || python_now(command, &p.executable)));
        let now = labbook_capture::capture(&CaptureOptions {
            skip_git: true,
            argv: vec!["labbook".into()],
            ..CaptureOptions::default()
        });
        (now, python.and_then(|h| h.join().ok()).flatten())
    });
    if let Some(recorded) = &env.python {
        match &python {
            Some(p) if p.version != recorded.version => drift.push(format!(
                "Python {} here, the run had {}",
                p.version, recorded.version
            )),
            Some(_) => {}
            None => drift.push(format!(
                "no Python found to compare with the run's {}",
                recorded.version
            )),
        }
        if let Some(p) = &python {
            let installed: BTreeMap<String, String> = scan_python_packages(&p.paths)
                .into_iter()
                .map(|pkg| (normalize_package(&pkg.name), pkg.version))
                .collect();
            for pkg in &recorded.packages {
                match installed.get(&normalize_package(&pkg.name)) {
                    Some(v) if *v == pkg.version => {}
                    Some(v) => drift.push(format!(
                        "{} {v} here, the run had {}",
                        pkg.name, pkg.version
                    )),
                    None => drift.push(format!(
                        "{} {} is not installed here",
                        pkg.name, pkg.version
                    )),
                }
            }
        }
        let mut pins: Vec<String> = recorded
            .packages
            .iter()
            .map(|p| format!("{}=={}", p.name, p.version))
            .collect();
        pins.sort_by_key(|p| p.to_lowercase());
        pins.dedup();
        requirements = pins;
    }
    let gpu_names = |e: &Environment| e.gpus.iter().map(|g| g.name.clone()).collect::<Vec<_>>();
    if gpu_names(env) != gpu_names(&now) {
        drift.push(format!(
            "GPUs: {} here, the run had {}",
            describe_gpus(&now),
            describe_gpus(env)
        ));
    }
    let driver = |e: &Environment| {
        e.gpus
            .first()
            .map(|g| (g.driver_version.clone(), g.cuda_version.clone()))
    };
    if let (Some(then), Some(here)) = (driver(env), driver(&now))
        && then != here
    {
        drift.push(format!(
            "NVIDIA driver {} (CUDA {}) here, the run had {} (CUDA {})",
            here.0.unwrap_or_default(),
            here.1.unwrap_or_default(),
            then.0.unwrap_or_default(),
            then.1.unwrap_or_default()
        ));
    }
    if env.cpu_model.is_some() && env.cpu_model != now.cpu_model {
        drift.push(format!(
            "CPU {} here, the run had {}",
            now.cpu_model.as_deref().unwrap_or("?"),
            env.cpu_model.as_deref().unwrap_or("?")
        ));
    }
    (drift, requirements)
}

fn describe_gpus(env: &Environment) -> String {
    if env.gpus.is_empty() {
        return "none".into();
    }
    let names: Vec<&str> = env.gpus.iter().map(|g| g.name.as_str()).collect();
    names.join(", ")
}

fn print_plan(paint: &Painter, plan: &Plan) {
    let o = &plan.original;
    say!(
        "{} {} ({}), {} {}",
        paint.heading("replay of"),
        paint.bold(&o.name),
        paint.id(&o.id),
        paint.status(o.status),
        fmt::date(o.created_ms)
    );
    match &plan.code {
        CodeSource::Git {
            repo,
            commit,
            diff_files,
            snapshot,
            ..
        } => {
            say!(
                "  code     commit {} from {}{}{}",
                &commit[..commit.len().min(12)],
                repo.display(),
                if *diff_files > 0 {
                    format!(", diff of {diff_files} file(s)")
                } else {
                    String::new()
                },
                snapshot
                    .as_ref()
                    .map(|v| format!(", {} file(s) from {}", v.files, v.reference()))
                    .unwrap_or_default()
            );
        }
        CodeSource::Snapshot(v) => say!(
            "  code     {} file(s) from the snapshot {} (the run was outside git)",
            v.files,
            v.reference()
        ),
    }
    for d in &plan.data {
        if d.problems.is_empty() {
            say!("  data     {}: {}", d.reference, d.note);
        } else {
            say!("  data     {}: {}", d.reference, paint.error("changed"));
            for p in &d.problems {
                say!("             {p}");
            }
        }
    }
    if plan.drift.is_empty() {
        say!("  env      no drift: Python, packages and GPUs as the run had them");
    }
    for line in &plan.drift {
        say!("  env      {}", paint.warn(line));
    }
    for set in &plan.sets {
        say!(
            "  set      {} = {} (was {}){}",
            set.key,
            set.value,
            set.was.as_deref().unwrap_or("unset"),
            if set.on_command_line {
                ""
            } else {
                "; not on the command line: the program sees it only through run.config"
            }
        );
    }
    say!(
        "  command  {} (in {})",
        plan.command.join(" "),
        if plan.rel_cwd.as_os_str().is_empty() {
            ".".into()
        } else {
            plan.rel_cwd.display().to_string()
        }
    );
    say!("  into     {}", plan.dest.display());
    for note in &plan.notes {
        say!("  {}     {note}", paint.dim("note"));
    }
}

/// Rebuilds the code in `plan.dest`.
fn materialize(store: &dyn Store, plan: &Plan) -> Result<()> {
    std::fs::create_dir_all(&plan.dest)
        .with_context(|| format!("cannot create {}", plan.dest.display()))?;
    match &plan.code {
        CodeSource::Snapshot(version) => {
            store.download_artifact_version(version, &plan.dest, Placement::Copy)?;
        }
        CodeSource::Git {
            repo,
            commit,
            diff,
            snapshot,
            ..
        } => {
            check_out(repo, commit, &plan.dest)?;
            let applied = if diff.is_empty() {
                Ok(())
            } else {
                apply_diff(&plan.dest, diff)
            };
            let code = plan.env.code.clone().unwrap_or_default();
            if let Err(e) = applied {
                let changed = plan
                    .env
                    .git
                    .as_ref()
                    .map(|g| g.changed.clone())
                    .unwrap_or_default();
                let kept: std::collections::BTreeSet<String> = match snapshot {
                    Some(v) => store
                        .artifact_manifest(v.id)?
                        .entries()
                        .iter()
                        .map(|e| e.path.clone())
                        .collect(),
                    None => Default::default(),
                };
                let missing: Vec<&String> = changed
                    .iter()
                    .filter(|p| !kept.contains(*p) && !code.deleted.contains(p))
                    .collect();
                if !missing.is_empty() || changed.is_empty() {
                    return Err(e.context(format!(
                        "the run's diff does not apply, and the snapshot lacks {}",
                        if missing.is_empty() {
                            "the changed files".to_owned()
                        } else {
                            missing
                                .iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    )));
                }
                say!(
                    "labbook: the diff did not apply ({e:#}); the snapshot's copies of the changed files are used"
                );
            }
            if let Some(version) = snapshot {
                store.download_artifact_version(version, &plan.dest, Placement::Copy)?;
            }
            for gone in &code.deleted {
                let _ = std::fs::remove_file(plan.dest.join(gone));
            }
        }
    }
    Ok(())
}

/// The commit's files, from the repository's objects: no checkout, no
/// worktree, nothing written to the repository.
fn check_out(repo: &Path, commit: &str, dest: &Path) -> Result<()> {
    let mut archive = git(repo)
        .args(["archive", "--format=tar", commit])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run git")?;
    let tar_in = archive
        .stdout
        .take()
        .ok_or_else(|| anyhow!("git archive gave no output"))?;
    let tar = Command::new("tar")
        .args(["-x", "-f", "-", "-C"])
        .arg(dest)
        .stdin(tar_in)
        .stderr(Stdio::piped())
        .output()
        .context("cannot run tar")?;
    let archived = archive.wait_with_output().context("git archive")?;
    if !archived.status.success() {
        bail!(
            "git archive {commit}: {}",
            String::from_utf8_lossy(&archived.stderr).trim()
        );
    }
    if !tar.status.success() {
        bail!("tar: {}", String::from_utf8_lossy(&tar.stderr).trim());
    }
    Ok(())
}

/// Applies the recorded diff in `dest`. Repository discovery stops at
/// `dest`, so a replay folder inside the user's repository (the default,
/// under `.labbook/`) can never patch the user's files.
fn apply_diff(dest: &Path, diff: &str) -> Result<()> {
    let ceiling = dest.parent().unwrap_or(dest);
    let mut child = Command::new("git")
        .args(["apply", "--whitespace=nowarn", "-"])
        .current_dir(dest)
        .env("GIT_CEILING_DIRECTORIES", ceiling)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run git apply")?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(diff.as_bytes()).context("git apply")?;
    }
    let out = child.wait_with_output().context("git apply")?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        bail!("git apply: {}", why.lines().next().unwrap_or("failed"));
    }
    Ok(())
}

fn write_requirements(plan: &Plan) -> Result<Option<PathBuf>> {
    if plan.requirements.is_empty() {
        return Ok(None);
    }
    let plain = plan.dest.join("requirements.txt");
    // The code's own file stays as it was.
    let path = if plain.exists() {
        plan.dest.join("requirements.replay.txt")
    } else {
        plain
    };
    let mut text = format!(
        "# The packages of run {} ({}), pinned: pip install -r {}\n",
        plan.original.name,
        plan.original.id,
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    for line in &plan.requirements {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Some(path))
}

/// Puts the referenced data files that lived inside the run's code folder
/// at the same place in the replay, so relative paths still find them.
fn link_data(store: &dyn Store, plan: &Plan) {
    let Ok(versions) = store.run_artifact_versions(&plan.original.id) else {
        return;
    };
    for (version, role) in versions {
        if role != EdgeRole::Input {
            continue;
        }
        let Ok(manifest) = store.artifact_manifest(version.id) else {
            continue;
        };
        for entry in manifest.entries() {
            let Some(source) = entry.reference.as_deref().and_then(file_uri_path) else {
                continue;
            };
            let Ok(rel) = source.strip_prefix(&plan.root) else {
                continue;
            };
            let target = plan.dest.join(rel);
            if target.exists() {
                continue;
            }
            if let Some(dir) = target.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            if std::fs::hard_link(&source, &target).is_err() {
                let _ = std::fs::copy(&source, &target);
            }
        }
    }
}

fn run_plan(
    app: &App,
    store: &dyn Store,
    store_dir: &Path,
    plan: &Plan,
    started: Instant,
) -> Result<(ExitCode, String)> {
    let o = &plan.original;
    let sets: Vec<String> = plan
        .sets
        .iter()
        .map(|s| format!("{}={}", s.key, s.value))
        .collect();
    let mut kv_tags = BTreeMap::from([(REPLAY_OF_TAG.to_owned(), o.id.clone())]);
    if !sets.is_empty() {
        kv_tags.insert(SET_TAG.to_owned(), sets.join(", "));
    }
    let mut why = format!("Replays {} ({})", o.name, o.id);
    if !plan.sets.is_empty() {
        let changes: Vec<String> = plan
            .sets
            .iter()
            .map(|s| {
                format!(
                    "{}={} (was {})",
                    s.key,
                    s.value,
                    s.was.as_deref().unwrap_or("unset")
                )
            })
            .collect();
        why.push_str(&format!(" with {}", changes.join(", ")));
    }
    why.push_str(": does it reproduce?");
    if let Some(notes) = o.notes.as_deref().filter(|n| !n.is_empty()) {
        why.push_str(&format!(" The original asked: {notes}"));
    }
    let mut env_set = plan.env_set.clone();
    if !plan.sets.is_empty() {
        let overrides: serde_json::Map<String, serde_json::Value> = plan
            .sets
            .iter()
            .filter_map(|s| {
                let value = serde_json::to_value(plan.config.get(&s.key)?).ok()?;
                Some((s.key.clone(), value))
            })
            .collect();
        env_set.push((
            "LABBOOK_CONFIG_SET".into(),
            serde_json::Value::Object(overrides).to_string(),
        ));
    }
    let mut recorded = serde_json::Map::new();
    if let Some(git) = &plan.env.git {
        recorded.insert("git".into(), serde_json::to_value(git)?);
    }
    if let Some(code) = &plan.env.code {
        recorded.insert("code".into(), serde_json::to_value(code)?);
    }
    recorded.insert(
        "replay".into(),
        json!({
            "of": o.id,
            "dir": plan.dest.display().to_string(),
            "set": sets,
            "data_drift": plan.data.iter().any(|d| !d.problems.is_empty()),
            "drift": plan.drift,
        }),
    );
    let code_version = match &plan.code {
        CodeSource::Git { snapshot, .. } => snapshot.clone(),
        CodeSource::Snapshot(v) => Some(v.clone()),
    };
    let launch = Launch {
        store_dir: store_dir.to_path_buf(),
        cwd: plan.dest.join(&plan.rel_cwd),
        project: Some(o.project.clone()),
        name: None,
        group: o.group.clone(),
        tags: vec![REPLAY_LABEL.to_owned()],
        kv_tags,
        why: Some(why),
        config: plan.config.clone(),
        command: plan.command.iter().map(OsString::from).collect(),
        env_set,
        env_remove: plan.env_remove.clone(),
        no_monitor: false,
        recorded: Some(recorded),
        server: None,
    };
    launch_run(app, launch, |record| {
        if let Some(version) = &code_version {
            store.use_artifact_version(&record.id, version.id, now_ms())?;
        }
        say!(
            "labbook: replay starts {} ms after `labbook replay` did",
            started.elapsed().as_millis()
        );
        Ok(())
    })
}

fn series_of(
    store: &dyn Store,
    run_id: &str,
    ignore: &[String],
) -> Result<BTreeMap<String, SeriesColumns>> {
    let mut out = BTreeMap::new();
    for (key, _) in store.series_keys(run_id)? {
        if key.starts_with("sys/") || ignore.iter().any(|p| key.starts_with(p.as_str())) {
            continue;
        }
        let columns = store.read_series(run_id, &key, StepRange::ALL)?;
        out.insert(key, columns);
    }
    Ok(out)
}

fn check_runs(
    store: &dyn Store,
    original: &str,
    replay: &str,
    tolerance: Tolerance,
    ignore: &[String],
) -> Result<ReplayCheck> {
    let a = series_of(store, original, ignore)?;
    let b = series_of(store, replay, ignore)?;
    Ok(ReplayCheck::judge(
        original,
        replay,
        tolerance,
        &a,
        &b,
        now_ms(),
    ))
}

fn store_check(store: &dyn Store, check: &ReplayCheck) -> Result<()> {
    let value = serde_json::to_value(check)?;
    store.update_document(CHECK_DOCUMENT, &check.replay, &mut |_| {
        Ok(Some(value.clone()))
    })?;
    store.update_run(
        &check.replay,
        &RunPatch {
            set_kv_tags: [(VERDICT_TAG.to_owned(), check.verdict.to_string())].into(),
            ..RunPatch::default()
        },
    )?;
    Ok(())
}

fn deviation_text(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else {
        format!("{v:.3e}")
    }
}

fn value_text(v: Option<f64>) -> String {
    v.map(fmt::number).unwrap_or_else(|| "–".into())
}

fn print_check(app: &App, check: &ReplayCheck) {
    let paint = app.out();
    let mut table = Table::new(vec![
        ("metric".into(), Align::Left),
        ("verdict".into(), Align::Left),
        ("steps".into(), Align::Right),
        ("max abs dev".into(), Align::Right),
        ("max rel dev".into(), Align::Right),
        ("final original".into(), Align::Right),
        ("final replay".into(), Align::Right),
    ]);
    for m in &check.metrics {
        let verdict = m.verdict.to_string();
        table.push(vec![
            m.key.clone(),
            if m.verdict.passed() {
                paint.good(&verdict)
            } else {
                paint.error(&verdict)
            },
            m.compared.to_string(),
            deviation_text(m.max_abs_dev),
            deviation_text(m.max_rel_dev),
            value_text(m.final_original),
            value_text(m.final_replay),
        ]);
    }
    let mut out = std::io::stdout().lock();
    for line in table.render(|h| paint.heading(h)) {
        let _ = writeln!(out, "{line}");
    }
    let verdict = check.verdict.to_string();
    let _ = writeln!(
        out,
        "{}: {} (tolerance {}; {} vs {})",
        paint.bold("verdict"),
        if check.passed() {
            paint.good(&verdict)
        } else {
            paint.error(&verdict)
        },
        check.tolerance,
        check.original,
        check.replay
    );
}
