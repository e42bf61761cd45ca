//! Capture of everything labbook records about where and how a run started:
//! host, OS, hardware, GPUs, git state, Python packages and an allow-listed
//! slice of the environment, plus a sampler for per-process system metrics.
//!
//! Nothing in this crate fails its caller: whatever cannot be read is left
//! `None` or empty and a short reason goes to [`Environment::errors`].

#![warn(missing_docs)]

mod envvars;
mod git;
mod gpu;
mod host;
mod monitor;
mod python;
mod sampler;
mod snapshot;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::thread::{self, Scope, ScopedJoinHandle};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use labbook_core::redact::{redact_argv, redact_value};
use serde::{Deserialize, Serialize};

pub use envvars::env_var_allowed;
pub use git::capture_git;
pub use host::{hostname, pid_alive};
pub use monitor::Monitor;
pub use python::scan_python_packages;
pub use sampler::SystemSampler;
pub use snapshot::{
    SkippedFile, SnapshotBase, SnapshotFile, SnapshotLimits, SnapshotPlan, plan_snapshot,
};

/// `git diff` bytes kept when [`CaptureOptions::max_diff_bytes`] is 0.
pub const DEFAULT_MAX_DIFF_BYTES: usize = 4 * 1024 * 1024;

/// What the caller knows that capture cannot find itself.
#[derive(Debug, Clone, Default)]
pub struct CaptureOptions {
    /// Working directory of the run; the git state is read from here.
    /// Empty means the current directory of this process.
    pub cwd: PathBuf,
    /// Command line of the run. Empty means this process's own arguments.
    pub argv: Vec<String>,
    /// Filled when the caller is the Python SDK.
    pub python: Option<PythonProbe>,
    /// Skip the git subprocesses (tests, or users who opt out).
    pub skip_git: bool,
    /// Maximum bytes of `git diff` kept; longer diffs are cut at a line
    /// boundary and `diff_truncated` is set. Default used when 0: 4 MiB.
    pub max_diff_bytes: usize,
    /// Choose the files of a code snapshot ([`capture_with_snapshot`]).
    pub snapshot: Option<SnapshotLimits>,
}

/// Facts about the Python interpreter, as reported by the Python SDK.
#[derive(Debug, Clone, Default)]
pub struct PythonProbe {
    /// `platform.python_version()`, e.g. "3.12.4".
    pub version: String,
    /// `sys.executable`.
    pub executable: String,
    /// `platform.python_implementation()`, e.g. "CPython".
    pub implementation: String,
    /// `site-packages` style directories to scan for installed distributions,
    /// in import-precedence order.
    pub site_paths: Vec<PathBuf>,
}

/// Everything recorded about where and how a run was started.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Environment {
    /// When the capture started, in milliseconds since the Unix epoch.
    pub captured_at_ms: i64,
    /// How long [`capture`] took, in microseconds.
    pub capture_micros: u64,
    /// Command line of the run, with secrets in it replaced by `***`
    /// ([`labbook_core::redact::redact_argv`]).
    pub command: Vec<String>,
    /// Working directory of the run.
    pub cwd: String,
    /// Host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Name of the user running the capture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Process id of the capturing process.
    pub pid: u32,
    /// Operating system, e.g. "Debian GNU/Linux 12".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Kernel version, e.g. "6.1.0-18-amd64".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// CPU architecture as Rust names it (`std::env::consts::ARCH`).
    pub arch: String,
    /// CPU brand string of the first CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
    /// Logical CPUs.
    pub cpu_count: usize,
    /// Total RAM in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Python interpreter and packages, when the caller is the Python SDK.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub python: Option<PythonEnv>,
    /// NVIDIA GPUs visible through NVML; empty without NVML.
    pub gpus: Vec<Gpu>,
    /// Git state of the working directory; `None` outside a repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git: Option<GitState>,
    /// Environment variables that passed [`env_var_allowed`], their values
    /// without credentials ([`labbook_core::redact::redact_value`]).
    pub env_vars: BTreeMap<String, String>,
    /// The run's code snapshot: what was kept beside the commit and diff
    /// (or, outside git, instead of them), and what was left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<CodeSnapshot>,
    /// Short reasons for whatever could not be captured.
    pub errors: Vec<String>,
}

/// The record of a run's code snapshot, kept in its environment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct CodeSnapshot {
    /// What the paths are relative to.
    pub base: SnapshotBase,
    /// The repository's top level, or the working directory outside git.
    pub root: String,
    /// The artifact version holding the files (`code:v3`); `None` when
    /// there were none or they could not be stored (`error` says why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The version's digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Files kept.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Tracked files deleted in the working tree.
    pub deleted: Vec<String>,
    /// Files left out, each with the reason.
    pub skipped: Vec<SkippedFile>,
    /// Why the files were not stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CodeSnapshot {
    /// Stores `plan`'s files through `log` (given (where, path in the
    /// snapshot) pairs; it answers the version's reference and digest, or
    /// `None` for no files) and records the version, or why there is none.
    pub fn store_with<E: std::fmt::Display>(
        &mut self,
        plan: &SnapshotPlan,
        log: impl FnOnce(Vec<(PathBuf, String)>) -> Result<Option<(String, String)>, E>,
    ) {
        let files = plan.files.iter().map(|f| (f.path.clone(), f.rel.clone()));
        match log(files.collect()) {
            Ok(Some((reference, digest))) => {
                self.version = Some(reference);
                self.digest = Some(digest);
            }
            Ok(None) => {}
            Err(e) => self.error = Some(format!("the snapshot was not stored: {e}")),
        }
    }

    /// The record of `plan`, before its files are stored.
    pub fn of(plan: &SnapshotPlan) -> CodeSnapshot {
        CodeSnapshot {
            base: plan.base,
            root: plan.root.to_string_lossy().into_owned(),
            files: plan.files.len() as u64,
            bytes: plan.bytes,
            deleted: plan.deleted.clone(),
            skipped: plan.skipped.clone(),
            ..CodeSnapshot::default()
        }
    }
}

/// The Python interpreter of the run and what is installed in it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PythonEnv {
    /// Python version, e.g. "3.12.4".
    pub version: String,
    /// Path of the interpreter.
    pub executable: String,
    /// Implementation, e.g. "CPython".
    pub implementation: String,
    /// Installed distributions, as found by [`scan_python_packages`].
    pub packages: Vec<Package>,
}

/// One installed Python distribution.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Package {
    /// Distribution name as written in its metadata directory name.
    pub name: String,
    /// Version as written in its metadata directory name.
    pub version: String,
}

/// One NVIDIA GPU as NVML reports it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Gpu {
    /// NVML index (not affected by `CUDA_VISIBLE_DEVICES`).
    pub index: u32,
    /// Product name, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Stable identifier, e.g. "GPU-5c2f…".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Total framebuffer memory in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Driver version, e.g. "550.54.15".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// Highest CUDA version the driver supports, e.g. "12.4".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuda_version: Option<String>,
}

/// State of the git working tree the run started in.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct GitState {
    /// Top-level directory of the working tree.
    pub root: String,
    /// Full object id of `HEAD`; `None` in a repository with no commits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Checked-out branch; `None` when `HEAD` is detached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// URL of `origin`, else of the first remote, with credentials removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_url: Option<String>,
    /// Whether tracked files changed (staged or not). Untracked files alone
    /// do not make the tree dirty.
    pub dirty: bool,
    /// `git diff HEAD` of tracked files, except those in `diff_excluded`;
    /// binary files are summarized as git does. In a repository with no
    /// commits, the diff of staged files.
    pub diff: String,
    /// Whether `diff` was cut to the size limit.
    pub diff_truncated: bool,
    /// Changed files left out of `diff` because they are named like secrets
    /// (`.env`, `*.pem`, `credentials.json`; see
    /// [`labbook_core::redact::secret_file`]), relative to `root`.
    pub diff_excluded: Vec<String>,
    /// Untracked files, relative to `root`, respecting `.gitignore`. Only
    /// names: a file named like a secret is listed too, its contents never.
    pub untracked: Vec<String>,
    /// Tracked files that differ from `HEAD` (staged or not, deleted
    /// ones included), relative to `root`: the files a code snapshot
    /// keeps whole beside the diff.
    pub changed: Vec<String>,
}

/// Records the environment of a run. Never fails and never panics: whatever
/// cannot be read is left empty and explained in [`Environment::errors`].
///
/// Git and the GPU probe run on their own threads while the rest is read, so
/// the call takes about as long as the slowest of them.
pub fn capture(opts: &CaptureOptions) -> Environment {
    capture_with_snapshot(opts).0
}

/// [`capture`], plus the files of a code snapshot when
/// [`CaptureOptions::snapshot`] asks for one (`Environment::code` then
/// describes it; the caller stores the files and fills in the version).
pub fn capture_with_snapshot(opts: &CaptureOptions) -> (Environment, Option<SnapshotPlan>) {
    let started = Instant::now();
    let mut env = Environment {
        captured_at_ms: unix_millis(SystemTime::now()),
        pid: std::process::id(),
        arch: std::env::consts::ARCH.to_owned(),
        ..Environment::default()
    };

    let cwd = if opts.cwd.as_os_str().is_empty() {
        match std::env::current_dir() {
            Ok(dir) => dir,
            Err(e) => {
                env.errors.push(format!("cwd: {e}"));
                PathBuf::new()
            }
        }
    } else {
        opts.cwd.clone()
    };
    env.cwd = cwd.to_string_lossy().into_owned();
    env.command = if opts.argv.is_empty() {
        let own: Vec<String> = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        redact_argv(&own)
    } else {
        redact_argv(&opts.argv)
    };

    let max_diff_bytes = opts.max_diff_bytes;
    let cwd = &cwd;
    let probe_git = !opts.skip_git && !cwd.as_os_str().is_empty();
    let mut git_failed = false;
    thread::scope(|s| {
        let git_job = probe_git.then(|| Job::start(s, move || git::capture(cwd, max_diff_bytes)));
        let gpu_job = Job::start(s, gpu::probe);

        host::fill(&mut env);
        env.env_vars = envvars::collect();
        env.python = opts.python.as_ref().map(|p| PythonEnv {
            version: p.version.clone(),
            executable: p.executable.clone(),
            implementation: p.implementation.clone(),
            packages: scan_python_packages(&p.site_paths),
        });

        if let Some(job) = git_job {
            match job.join() {
                Ok((state, errors)) => {
                    match state {
                        Ok(state) => env.git = state,
                        Err(e) => {
                            git_failed = true;
                            env.errors.push(e);
                        }
                    }
                    env.errors.extend(errors);
                }
                Err(e) => {
                    git_failed = true;
                    env.errors.push(format!("git: {e}"));
                }
            }
        }
        match gpu_job.join() {
            Ok((gpus, errors)) => {
                env.gpus = gpus;
                env.errors.extend(errors);
            }
            Err(e) => env.errors.push(format!("gpu: {e}")),
        }
    });

    // A failed git is no reason to walk what may be a huge repository.
    let plan = opts
        .snapshot
        .filter(|_| !git_failed && !cwd.as_os_str().is_empty())
        .map(|limits| plan_snapshot(cwd, env.git.as_ref(), &limits));
    env.code = plan.as_ref().map(CodeSnapshot::of);

    // Git's messages can quote a remote or a config value.
    for error in &mut env.errors {
        *error = redact_value(error);
    }
    env.capture_micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    (env, plan)
}

/// Milliseconds since the Unix epoch, negative for earlier times, so that a
/// badly set clock is still recorded as what it said.
fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// Work that runs on a scoped thread, or inline when no thread can be
/// started, so that thread exhaustion slows capture down instead of failing.
enum Job<'scope, T> {
    Spawned(ScopedJoinHandle<'scope, T>),
    Done(T),
}

impl<'scope, T: Send + 'scope> Job<'scope, T> {
    // `Copy` lets the closure run inline after the spawn attempt consumed it.
    fn start<'env, F>(scope: &'scope Scope<'scope, 'env>, f: F) -> Self
    where
        F: FnOnce() -> T + Send + Copy + 'scope,
    {
        match thread::Builder::new()
            .name("labbook-capture".to_owned())
            .spawn_scoped(scope, f)
        {
            Ok(handle) => Job::Spawned(handle),
            Err(_) => Job::Done(f()),
        }
    }

    fn join(self) -> Result<T, String> {
        match self {
            Job::Spawned(handle) => handle.join().map_err(|_| "probe panicked".to_owned()),
            Job::Done(value) => Ok(value),
        }
    }
}
