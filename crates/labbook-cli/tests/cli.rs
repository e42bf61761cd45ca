//! The `labbook` binary end to end: every command through the real
//! executable, in temporary directories, checked against its output and
//! against what the store holds afterwards.
#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use labbook_core::config::config_from_json;
use labbook_core::{ConfigValue, RunRecord, RunStatus};
use labbook_store::writer::{PendingPoint, RunWriter, WriterOptions};
use labbook_store::{NewRun, OutputStream, RunPatch, RunQuery, SqliteStore, Store};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_labbook");

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap()
}

/// A project directory `proj/` in a fresh temporary directory, with its
/// store at `proj/.labbook` (created on first use).
struct Sandbox {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    cwd: PathBuf,
    store_dir: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        // Canonical, so paths compare equal to what the binary prints.
        let root = fs::canonicalize(tmp.path()).unwrap();
        let cwd = root.join("proj");
        fs::create_dir_all(&cwd).unwrap();
        let store_dir = cwd.join(".labbook");
        Sandbox {
            _tmp: tmp,
            root,
            cwd,
            store_dir,
        }
    }

    /// The binary, run in `cwd` with no inherited labbook settings (the
    /// test itself may run under `labbook run`).
    fn bare(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(cwd)
            .env("NO_COLOR", "1")
            .env_remove("LABBOOK_DIR")
            .env_remove("LABBOOK_PROJECT")
            .env_remove("LABBOOK_RUN_ID")
            .env_remove("COLUMNS")
            .stdin(Stdio::null());
        cmd
    }

    /// The binary pointed at this sandbox's store through LABBOOK_DIR.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.bare(&self.cwd, args);
        cmd.env("LABBOOK_DIR", &self.store_dir);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and asserts success, returning stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "labbook {args:?} failed: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn json(&self, args: &[&str]) -> Value {
        let stdout = self.ok(args);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }

    fn store(&self) -> Arc<SqliteStore> {
        Arc::new(SqliteStore::open(&self.store_dir).unwrap())
    }

    fn only_run(&self) -> RunRecord {
        let runs = self.store().list_runs(&RunQuery::default()).unwrap();
        assert_eq!(runs.len(), 1, "{runs:?}");
        runs.into_iter().next().unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn output_of(store: &dyn Store, run_id: &str, stream: OutputStream) -> String {
    let bytes: Vec<u8> = store
        .read_output(run_id)
        .unwrap()
        .into_iter()
        .filter(|c| c.stream == stream)
        .flat_map(|c| c.data)
        .collect();
    text(&bytes)
}

/// A finished run created through the store, with metrics logged through
/// the run writer, `age_s` seconds old.
fn seed_run(
    store: &Arc<SqliteStore>,
    name: &str,
    age_s: i64,
    config: Value,
    notes: Option<&str>,
    metrics: &[(&str, &[f64])],
) -> RunRecord {
    let created = now_ms() - age_s * 1000;
    let run = store
        .create_run(&NewRun {
            project: "proj".into(),
            name: Some(name.into()),
            notes: notes.map(str::to_string),
            config: config_from_json(&config).unwrap(),
            created_ms: created,
            ..NewRun::default()
        })
        .unwrap();
    let dyn_store: Arc<dyn Store> = store.clone();
    let writer = RunWriter::start(dyn_store, &run.id, WriterOptions::default()).unwrap();
    for (key, values) in metrics {
        let k = writer.key_index(key).unwrap();
        let points: Vec<PendingPoint> = values
            .iter()
            .enumerate()
            .map(|(i, &value)| PendingPoint {
                key: k,
                step: i as i64,
                ts_ms: created + i as i64,
                value,
            })
            .collect();
        writer.push(&points);
    }
    writer
        .finish(
            RunPatch {
                status: Some(RunStatus::Finished),
                ended_ms: Some(created + 1500),
                exit_code: Some(0),
                ..RunPatch::default()
            },
            Duration::from_secs(30),
        )
        .unwrap();
    store.get_run(&run.id).unwrap()
}

/// Three finished runs with differing `lr`, a shared `opt`, and metrics.
fn seed_three(sb: &Sandbox) -> (RunRecord, RunRecord, RunRecord) {
    let store = sb.store();
    let a = seed_run(
        &store,
        "alpha",
        300,
        json!({"lr": 0.1, "opt": "adam", "model": {"depth": 2}}),
        Some("baseline with a high learning rate"),
        &[("loss", &[1.0, 0.5, 0.25]), ("sys/rss_mb", &[100.0])],
    );
    let b = seed_run(
        &store,
        "beta",
        200,
        json!({"lr": 0.01, "opt": "adam", "model": {"depth": 4}}),
        None,
        &[("loss", &[1.0, 0.8]), ("sys/rss_mb", &[120.0])],
    );
    let c = seed_run(
        &store,
        "gamma",
        100,
        json!({"lr": 0.001, "opt": "adam", "model": {"depth": 8}}),
        None,
        &[("loss", &[2.0, 1.5, 1.2, 0.9])],
    );
    (a, b, c)
}

/// The cells of the table row that starts with `id`.
fn row<'a>(table: &'a str, id: &str) -> Vec<&'a str> {
    table
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("no row for {id} in\n{table}"))
        .split_whitespace()
        .collect()
}

// ---------------------------------------------------------------- init

#[test]
fn init_creates_the_store_and_is_idempotent() {
    let sb = Sandbox::new();
    let out = sb.bare(&sb.cwd, &["init"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        format!(
            "Initialized labbook store in {} (private to you)\n",
            sb.store_dir.display()
        )
    );
    assert!(sb.store_dir.join("labbook.db").is_file());
    assert!(
        fs::read_to_string(sb.store_dir.join(".gitignore"))
            .unwrap()
            .contains('*')
    );

    let again = sb.bare(&sb.cwd, &["init"]).output().unwrap();
    assert!(again.status.success());
    assert!(
        text(&again.stdout).contains("already exists"),
        "{}",
        text(&again.stdout)
    );

    // A subdirectory finds the store above it, like git.
    let deep = sb.cwd.join("a/b");
    fs::create_dir_all(&deep).unwrap();
    let out = sb.bare(&deep, &["ls"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no runs"));
}

#[test]
fn init_with_dir_creates_it_there() {
    let sb = Sandbox::new();
    let target = sb.root.join("elsewhere/.labbook");
    let out = sb
        .bare(&sb.cwd, &["init", "--dir", target.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&*target.to_string_lossy()));
    assert!(target.join("labbook.db").is_file());
    assert!(!sb.store_dir.exists());
}

// ---------------------------------------------------------------- run

#[test]
fn run_tees_output_and_records_a_finished_run() {
    let sb = Sandbox::new();
    let out = sb.run(&[
        "run",
        "--",
        "sh",
        "-c",
        "echo hello; printf 'no newline'; echo oops >&2; exit 0",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Byte for byte: labbook's own messages go to stderr only.
    assert_eq!(text(&out.stdout), "hello\nno newline");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("oops\n"), "{stderr}");

    let run = sb.only_run();
    assert_eq!(run.status, RunStatus::Finished);
    assert_eq!(run.exit_code, Some(0));
    assert_eq!(run.project, "proj");
    // The wrapper's own pid, so a dead wrapper marks the run crashed.
    assert!(run.pid.is_some());
    assert!(run.ended_ms.is_some());
    assert!(
        stderr.contains(&format!("labbook show {}", run.id)),
        "summary line missing: {stderr}"
    );
    let store = sb.store();
    assert_eq!(
        output_of(&*store, &run.id, OutputStream::Stdout),
        "hello\nno newline"
    );
    assert_eq!(output_of(&*store, &run.id, OutputStream::Stderr), "oops\n");
    let env = store
        .environment(&run.id)
        .unwrap()
        .expect("environment captured");
    assert_eq!(
        env["command"],
        json!([
            "sh",
            "-c",
            "echo hello; printf 'no newline'; echo oops >&2; exit 0"
        ])
    );
}

#[test]
fn run_hands_the_run_to_the_program() {
    let sb = Sandbox::new();
    let stdout = sb.ok(&[
        "run",
        "--project",
        "vision",
        "--",
        "sh",
        "-c",
        "echo \"$LABBOOK_RUN_ID|$LABBOOK_PROJECT|$LABBOOK_DIR\"",
    ]);
    let run = sb.only_run();
    assert_eq!(
        stdout.trim_end(),
        format!("{}|vision|{}", run.id, sb.store_dir.display())
    );
    assert_eq!(run.project, "vision");
}

#[test]
fn run_exit_code_is_passed_through_and_the_run_failed() {
    let sb = Sandbox::new();
    let out = sb.run(&["run", "--no-monitor", "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    let run = sb.only_run();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.exit_code, Some(3));
    assert!(
        text(&out.stderr).contains("exit code 3"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn run_of_a_missing_command_fails_with_127() {
    let sb = Sandbox::new();
    let out = sb.run(&["run", "--", "labbook-test-no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    let stderr = text(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("labbook-test-no-such-command"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let run = sb.only_run();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.exit_code, Some(127));
    assert!(
        run.error.as_deref().unwrap_or("").contains("not found"),
        "{:?}",
        run.error
    );
}

#[test]
fn run_records_typed_config_tags_and_why() {
    let sb = Sandbox::new();
    sb.ok(&[
        "run",
        "--name",
        "typed",
        "--group",
        "sweep-1",
        "--tag",
        "a,b",
        "--tag",
        "c",
        "--why",
        "does depth help?",
        "--config",
        "lr=0.1",
        "--config",
        "model.depth=4",
        "--config",
        "name=abc",
        "--config",
        "layers=[64,32]",
        "--no-monitor",
        "--",
        "true",
    ]);
    let run = sb.only_run();
    assert_eq!(run.name, "typed");
    assert_eq!(run.group.as_deref(), Some("sweep-1"));
    assert_eq!(run.tags, vec!["a", "b", "c"]);
    assert_eq!(run.notes.as_deref(), Some("does depth help?"));
    assert_eq!(run.config["lr"], ConfigValue::Float(0.1));
    assert_eq!(run.config["model.depth"], ConfigValue::Int(4));
    assert_eq!(run.config["name"], ConfigValue::Str("abc".into()));
    assert_eq!(
        run.config["layers"],
        ConfigValue::List(vec![ConfigValue::Int(64), ConfigValue::Int(32)])
    );
}

#[test]
fn run_rejects_a_bad_config_without_running_anything() {
    let sb = Sandbox::new();
    let out = sb.run(&["run", "--config", "novalue", "--", "touch", "ran"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: --config expects KEY=VALUE"),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(!sb.cwd.join("ran").exists());
}

/// A child in a process group of its own, killed whole when the test ends
/// however it ends, so a failing test never leaves a program behind.
struct Group(std::process::Child);

impl Group {
    /// Spawns `cmd` as a program started from a terminal would be: with
    /// SIGINT and SIGTERM at their defaults even when the test runs with
    /// them ignored (`nohup make test &` ignores SIGINT, and a shell never
    /// traps a signal it was started ignoring).
    fn spawn(cmd: &mut Command) -> Group {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the forked child before exec and
        // calls only signal(2), which POSIX lists as async-signal-safe; it
        // touches no memory shared with the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::signal(libc::SIGTERM, libc::SIG_DFL);
                Ok(())
            });
        }
        Group(cmd.process_group(0).spawn().unwrap())
    }
}

impl std::ops::Deref for Group {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Group {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.wait();
    }
}

/// Waits (at most 30 s) until a child of `parent` runs `name`.
fn wait_for_child(parent: u32, name: &str) {
    let children_of = |pid: u32| -> Vec<(u32, String)> {
        let mut out = Vec::new();
        for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid …; comm may hold spaces, so split at ')'.
            let Some((head, tail)) = stat.rsplit_once(')') else {
                continue;
            };
            let comm = head.split_once('(').map_or("", |(_, c)| c);
            let ppid = tail.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            if ppid == Some(pid)
                && let Ok(child) = entry.file_name().to_string_lossy().parse()
            {
                out.push((child, comm.to_string()));
            }
        }
        out
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = children_of(parent).iter().any(|(_, comm)| comm == name);
        if found {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never started under {parent}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `signal` to the wrapper once the program has set its trap, and
/// checks that the program's handler ran and the run was recorded as killed.
fn signal_reaches_the_program(signal: &str, exit_code: i32) {
    let sb = Sandbox::new();
    let script = format!(
        "trap 'echo got-{signal}; exit {exit_code}' {signal}; echo ready; i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done"
    );
    let mut child = Group::spawn(
        sb.cmd(&["run", "--no-monitor", "--", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(first)) = lines.next() {
            let _ = tx.send(first);
        }
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        let _ = tx.send(rest.join("\n"));
    });
    let first = rx.recv_timeout(Duration::from_secs(60));
    assert_eq!(first.as_deref(), Ok("ready"), "the program did not start");
    let killed = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(rest, format!("got-{signal}"), "stderr: {stderr}");
    assert_eq!(status.code(), Some(exit_code), "stderr: {stderr}");
    let run = sb.only_run();
    assert_eq!(run.status, RunStatus::Killed);
    assert_eq!(run.exit_code, Some(exit_code));
}

#[test]
fn sigterm_to_the_wrapper_reaches_the_program() {
    signal_reaches_the_program("TERM", 143);
}

#[test]
fn sigint_from_another_process_reaches_the_program() {
    signal_reaches_the_program("INT", 130);
}

#[test]
fn sigterm_kills_a_program_without_a_handler_and_the_run_is_killed() {
    let sb = Sandbox::new();
    let mut child = Group::spawn(
        sb.cmd(&[
            "run",
            "--no-monitor",
            "--",
            "sh",
            "-c",
            "echo ready; exec sleep 60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null()),
    );
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    // `exec` replaces the shell: signal once `sleep` is what runs.
    wait_for_child(child.id(), "sleep");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 15));
    let run = sb.only_run();
    assert_eq!(run.status, RunStatus::Killed);
}

#[test]
fn run_creates_the_store_at_the_git_root() {
    let sb = Sandbox::new();
    let repo = sb.root.join("repo");
    let sub = repo.join("src/deep");
    fs::create_dir_all(&sub).unwrap();
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(args)
            .current_dir(&repo)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["checkout", "-q", "-b", "main"]);
    fs::write(repo.join("train.py"), "print('hi')\n").unwrap();
    git(&["add", "train.py"]);
    git(&["commit", "-q", "-m", "init"]);
    fs::write(repo.join("train.py"), "print('hi')\nprint('changed')\n").unwrap();

    let out = sb
        .bare(&sub, &["run", "--no-monitor", "--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(repo.join(".labbook/labbook.db").is_file());
    assert!(!sub.join(".labbook").exists());

    // Found again from the subdirectory; the project is the repo's name.
    let show = sb.bare(&sub, &["ls", "--json"]).output().unwrap();
    let runs: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(runs[0]["project"], "repo");
    let id = runs[0]["id"].as_str().unwrap().to_string();
    let show = sb.bare(&sub, &["show", &id, "--json"]).output().unwrap();
    let shown: Value = serde_json::from_slice(&show.stdout).unwrap();
    let git_state = &shown["environment"]["git"];
    assert_eq!(git_state["branch"], "main");
    assert_eq!(git_state["commit"].as_str().unwrap().len(), 40);
    assert_eq!(git_state["dirty"], true);
    // The store itself is not an untracked file of the repository.
    assert_eq!(git_state["untracked"], json!([]));

    let human = sb.bare(&sub, &["show", &id]).output().unwrap();
    let human = text(&human.stdout);
    assert!(human.contains("on main · dirty: 1 changed line"), "{human}");
}

/// Every file of a store, as bytes: the database, its WAL and anything
/// beside them.
fn store_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let bytes = fs::read(&path).unwrap();
                files.push((path, bytes));
            }
        }
    }
    files
}

#[test]
fn run_stores_no_secret_from_the_command_line_environment_config_or_git() {
    let sb = Sandbox::new();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(&sb.cwd)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    };
    git(&["init", "-q"]);
    fs::write(sb.cwd.join(".env"), "HF_TOKEN=SEKRET9old\n").unwrap();
    fs::write(sb.cwd.join("train.py"), "lr = 0.1\n").unwrap();
    git(&["add", ".env", "train.py"]);
    git(&["commit", "-q", "-m", "init"]);
    git(&[
        "remote",
        "add",
        "origin",
        "https://u:SEKRET10@host/r.git?private_token=SEKRET11",
    ]);
    fs::write(sb.cwd.join(".env"), "HF_TOKEN=SEKRET9new\n").unwrap();
    fs::write(sb.cwd.join("train.py"), "lr = 0.01\n").unwrap();

    let out = sb
        .cmd(&[
            "run",
            "--no-monitor",
            "-p",
            "proj-name",
            "--config",
            "api_key=SEKRET7",
            "--config",
            "db=postgres://u:SEKRET8@h/x",
            "--config",
            "lr=0.1",
            "--",
            "sh",
            "-c",
            "exit 0",
            "x",
            "--api-key=SEKRET1",
            "--password",
            "SEKRET2",
            "--token=SEKRET3",
            "postgres://u:SEKRET4@h/db",
            "--lr",
            "0.1",
        ])
        .env("SLURM_JWT", "SEKRET5")
        .env("SLURM_DB_URL", "postgres://u:SEKRET6@h/db")
        .env("CUDA_VISIBLE_DEVICES", "0")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The raw files first, before anything else opens the store.
    let files = store_bytes(&sb.store_dir);
    assert!(
        files.iter().any(|(p, _)| p.ends_with("labbook.db")),
        "{files:?}"
    );
    for (path, bytes) in &files {
        assert!(
            !bytes.windows(6).any(|w| w == b"SEKRET"),
            "a secret is stored in {}",
            path.display()
        );
    }
    let printed = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!printed.contains("SEKRET"), "{printed}");

    let run = sb.only_run();
    assert_eq!(run.project, "proj-name", "-p is labbook's project");
    let shown = sb.ok(&["show", &run.id, "--json"]);
    assert!(!shown.contains("SEKRET"), "{shown}");
    let shown: Value = serde_json::from_str(&shown).unwrap();
    let env = &shown["environment"];
    assert_eq!(
        env["command"],
        json!([
            "sh",
            "-c",
            "exit 0",
            "x",
            "--api-key=***",
            "--password",
            "***",
            "--token=***",
            "postgres://u:***@h/db",
            "--lr",
            "0.1"
        ])
    );
    assert_eq!(env["env_vars"]["CUDA_VISIBLE_DEVICES"], "0");
    assert_eq!(env["env_vars"]["SLURM_DB_URL"], "postgres://u:***@h/db");
    assert!(env["env_vars"].get("SLURM_JWT").is_none(), "{env}");
    assert_eq!(
        env["git"]["remote_url"],
        "https://host/r.git?private_token=***"
    );
    assert_eq!(env["git"]["diff_excluded"], json!([".env"]));
    let diff = env["git"]["diff"].as_str().unwrap();
    assert!(diff.contains("+lr = 0.01"), "{diff}");
    assert_eq!(run.config["api_key"], ConfigValue::Str("***".into()));
    assert_eq!(
        run.config["db"],
        ConfigValue::Str("postgres://u:***@h/x".into())
    );
    assert_eq!(run.config["lr"], ConfigValue::Float(0.1));

    // The human view says which files the diff leaves out.
    let human = sb.ok(&["show", &run.id]);
    assert!(human.contains("not in the diff (secrets): .env"), "{human}");
    assert!(!human.contains("SEKRET"), "{human}");
}

#[test]
fn run_samples_system_metrics_unless_told_not_to() {
    let sb = Sandbox::new();
    // The sampler reports every 5 s; 7 s leaves room for a slow machine.
    sb.ok(&["run", "--name", "watched", "--", "sleep", "7"]);
    sb.ok(&["run", "--name", "unwatched", "--no-monitor", "--", "true"]);
    let store = sb.store();
    let watched = store.resolve_run("watched", None).unwrap();
    let keys: Vec<String> = store
        .series_keys(&watched.id)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(keys.iter().any(|k| k == "sys/rss_mb"), "{keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("sys/")), "{keys:?}");
    let rss = store
        .read_series(&watched.id, "sys/rss_mb", labbook_store::StepRange::ALL)
        .unwrap();
    assert_eq!(rss.steps[0], 0);
    let unwatched = store.resolve_run("unwatched", None).unwrap();
    assert!(store.series_keys(&unwatched.id).unwrap().is_empty());
}

// ---------------------------------------------------------------- ls

#[test]
fn ls_lists_runs_with_differing_config_and_metrics() {
    let sb = Sandbox::new();
    let (a, b, c) = seed_three(&sb);
    let table = sb.ok(&["ls"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        &header[..5],
        &["ID", "NAME", "STATUS", "CREATED", "DURATION"]
    );
    // Config keys that differ get columns; `opt` is the same everywhere.
    assert!(
        header.contains(&"lr") && header.contains(&"model.depth"),
        "{table}"
    );
    assert!(!header.contains(&"opt"), "{table}");
    // The user's metrics come before the sampler's.
    let loss = header.iter().position(|h| *h == "loss").unwrap();
    let rss = header.iter().position(|h| *h == "sys/rss_mb").unwrap();
    assert!(loss < rss, "{table}");
    assert_eq!(*header.last().unwrap(), "NOTES");
    // Newest first.
    assert!(
        lines[1].starts_with(&c.id) && lines[3].starts_with(&a.id),
        "{table}"
    );

    let row_a = row(&table, &a.id);
    assert_eq!(&row_a[1..3], &["alpha", "finished"]);
    assert_eq!(row_a[3..5], ["5m", "ago"]);
    assert_eq!(row_a[5], "1.5s");
    assert!(
        row_a.contains(&"0.1") && row_a.contains(&"0.25"),
        "{row_a:?}"
    );
    assert!(table.contains("baseline with a high"), "{table}");
    let row_c = row(&table, &c.id);
    assert!(row_c.contains(&"0.9") && row_c.contains(&"-"), "{row_c:?}");
    let _ = b;
}

#[test]
fn ls_filters_sorts_limits_and_prints_json() {
    let sb = Sandbox::new();
    let (a, b, c) = seed_three(&sb);

    let table = sb.ok(&["ls", "--filter", "config.lr >= 0.01"]);
    assert!(table.contains(&a.id) && table.contains(&b.id), "{table}");
    assert!(!table.contains(&c.id), "{table}");

    let table = sb.ok(&["ls", "--sort", "metrics.loss"]);
    let ids: Vec<&str> = table.lines().skip(1).map(|l| &l[..8]).collect();
    assert_eq!(ids, vec![a.id.as_str(), b.id.as_str(), c.id.as_str()]);

    let out = sb.run(&["ls", "--limit", "1", "--sort", "-config.lr"]);
    let table = text(&out.stdout);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.contains(&a.id));
    assert!(text(&out.stderr).contains("showing 1 of 3"));

    let runs = sb.json(&[
        "ls",
        "--json",
        "--filter",
        "status = \"finished\" and config.model.depth > 2",
    ]);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert_eq!(run["status"], "finished");
        assert_eq!(run["duration_ms"], 1500);
        assert_eq!(run["project"], "proj");
        assert!(run["config"]["lr"].is_number());
        assert!(run["metrics"]["loss"]["last"].is_number());
    }
    assert_eq!(runs[0]["id"], c.id.as_str());
}

#[test]
fn ls_reports_a_bad_filter_in_one_line_with_the_column() {
    let sb = Sandbox::new();
    seed_three(&sb);
    let out = sb.run(&["ls", "--filter", "config.lr >> 1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: invalid filter at column 12"),
        "{stderr}"
    );

    let out = sb.run(&["ls", "--sort", "config.lr desc"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("invalid sort at column"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_port_in_use_is_one_error_with_a_hint() {
    let sb = Sandbox::new();
    seed_three(&sb);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    for command in ["ui", "serve"] {
        let out = sb.run(&[command, "--port", &port]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = text(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{stderr}");
        assert_eq!(
            lines[0],
            format!("error: cannot serve on 127.0.0.1:{port}: the port is in use")
        );
        assert!(lines[1].starts_with("hint: "), "{stderr}");
        assert!(lines[1].contains("--port 0"), "{stderr}");
    }
}

#[test]
fn ls_refuses_a_sort_key_no_run_has() {
    let sb = Sandbox::new();
    seed_three(&sb);
    let out = sb.run(&["ls", "--sort", "-metrics.nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr,
        "error: unknown sort key metrics.nope: no listed run has it\n\
         hint: the listed runs have these metrics: loss, sys/rss_mb\n"
    );
    let out = sb.run(&["ls", "--sort", "config.lrr", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown sort key config.lrr"));
    // Keys some run has, and attributes, sort as before.
    for sort in [
        "-metrics.loss",
        "config.lr",
        "config.model.depth",
        "-created",
        "name",
    ] {
        let out = sb.run(&["ls", "--sort", sort]);
        assert_eq!(out.status.code(), Some(0), "{sort}: {}", text(&out.stderr));
    }
}

#[test]
fn ls_without_a_store_says_so_with_a_hint() {
    let sb = Sandbox::new();
    let out = sb.bare(&sb.cwd, &["ls"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        vec![
            format!(
                "error: no labbook store in {} or any parent directory",
                sb.cwd.display()
            )
            .as_str(),
            "hint: run `labbook init` here, or set LABBOOK_DIR",
        ]
    );
    // Other read commands fail the same way, and none creates a store.
    for args in [
        &["show", "abcd"][..],
        &["tag", "abcd", "x"],
        &["export", "abcd"],
    ] {
        let out = sb.bare(&sb.cwd, args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).starts_with("error: no labbook store"),
            "{args:?}"
        );
    }
    assert!(!sb.store_dir.exists());
}

#[test]
fn ls_of_nothing_says_so_on_stderr() {
    let sb = Sandbox::new();
    sb.ok(&["init"]);
    let out = sb.run(&["ls"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).starts_with("no runs"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(sb.json(&["ls", "--json"]), json!([]));

    seed_three(&sb);
    let out = sb.run(&["ls", "--filter", "config.lr > 5"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).starts_with("no runs match the filter"));

    // Runs of another project are pointed at, not silently hidden.
    let out = sb.run(&["ls", "--project", "other"]);
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("proj (3)"),
        "{}",
        text(&out.stderr)
    );
    let all = sb.json(&["ls", "--all-projects", "--json"]);
    assert_eq!(all.as_array().unwrap().len(), 3);
}

#[test]
fn ls_shows_a_run_whose_process_died_as_crashed() {
    let sb = Sandbox::new();
    let mut gone = Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let store = sb.store();
    let run = store
        .create_run(&NewRun {
            project: "proj".into(),
            name: Some("ghost".into()),
            created_ms: now_ms(),
            host: labbook_capture::hostname(),
            pid: Some(dead_pid),
            ..NewRun::default()
        })
        .unwrap();
    assert_eq!(run.status, RunStatus::Running);
    drop(store);

    let table = sb.ok(&["ls"]);
    assert_eq!(row(&table, &run.id)[2], "crashed", "{table}");
    assert_eq!(
        sb.store().get_run(&run.id).unwrap().status,
        RunStatus::Crashed
    );
}

// ---------------------------------------------------------------- show

#[test]
fn show_finds_runs_by_id_prefix_and_name() {
    let sb = Sandbox::new();
    let (a, _, _) = seed_three(&sb);
    sb.store()
        .add_note(&a.id, "loss plateaus after step 2", now_ms())
        .unwrap();
    for reference in [a.id.as_str(), &a.id[..5], "alpha"] {
        let shown = sb.ok(&["show", reference]);
        let first = shown.lines().next().unwrap();
        assert_eq!(first, format!("alpha  {}  finished", a.id), "{reference}");
    }
    let shown = sb.ok(&["show", "alpha"]);
    for expected in [
        "project   proj",
        "exit code 0",
        "baseline with a high learning rate",
        "loss plateaus after step 2",
        "lr          = 0.1",
        "model.depth = 2",
        "opt         = \"adam\"",
    ] {
        assert!(
            shown.contains(expected),
            "{expected:?} missing from\n{shown}"
        );
    }
    // Metrics: key, count, last, min, max; sys/ keys last.
    let loss: Vec<&str> = shown
        .lines()
        .find(|l| l.trim_start().starts_with("loss "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(loss, vec!["loss", "3", "0.25", "0.25", "1"]);
    let metrics_at = |k: &str| shown.find(&format!("  {k} ")).unwrap();
    assert!(metrics_at("loss") < metrics_at("sys/rss_mb"));

    let out = sb.run(&["show", "nosuchrun"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: run \"nosuchrun\" not found\n"),
        "{stderr}"
    );
    assert!(
        stderr.lines().nth(1).unwrap().starts_with("hint: "),
        "{stderr}"
    );

    // A prefix too short to be one says so, rather than only "not found".
    let short = &a.id[..2];
    let out = sb.run(&["show", short]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: run \"{short}\" not found\n\
             hint: an id prefix needs at least 4 characters; `labbook ls --all-projects` lists runs\n"
        )
    );
    assert!(sb.ok(&["show", &a.id[..4]]).contains("alpha"));
}

#[test]
fn show_json_has_record_environment_notebook_and_keys() {
    let sb = Sandbox::new();
    sb.ok(&["run", "--name", "j", "--no-monitor", "--", "true"]);
    let run = sb.only_run();
    sb.ok(&["note", "j", "first", "entry"]);
    let shown = sb.json(&["show", &run.id, "--json"]);
    assert_eq!(shown["id"], run.id.as_str());
    assert_eq!(shown["name"], "j");
    assert_eq!(shown["status"], "finished");
    assert!(shown["duration_ms"].is_i64());
    assert_eq!(shown["environment"]["command"], json!(["true"]));
    assert!(shown["environment"]["host"].is_string());
    assert_eq!(shown["notebook"][0]["text"], "first entry");
    assert_eq!(shown["metric_keys"], json!([]));

    let (a, _, _) = seed_three(&sb);
    let shown = sb.json(&["show", &a.id, "--json"]);
    assert_eq!(
        shown["metric_keys"],
        json!([{"key": "loss", "count": 3}, {"key": "sys/rss_mb", "count": 1}])
    );
    assert_eq!(shown["environment"], Value::Null);
}

// ---------------------------------------------------------------- tag, note, rm

#[test]
fn tag_adds_and_removes() {
    let sb = Sandbox::new();
    let (a, _, _) = seed_three(&sb);
    let out = sb.ok(&["tag", &a.id, "baseline", "keep,best"]);
    assert_eq!(out, format!("alpha ({}): baseline, keep, best\n", a.id));
    assert_eq!(
        sb.store().get_run(&a.id).unwrap().tags,
        vec!["baseline", "keep", "best"]
    );
    let out = sb.ok(&["tag", "alpha", "keep", "--remove"]);
    assert_eq!(out, format!("alpha ({}): baseline, best\n", a.id));
    let runs = sb.json(&["ls", "--json", "--filter", "tags contains \"best\""]);
    assert_eq!(runs.as_array().unwrap().len(), 1);
    let out = sb.ok(&["tag", "alpha", "baseline,best", "-r"]);
    assert!(out.contains("(no tags)"), "{out}");
}

#[test]
fn note_appends_to_the_notebook() {
    let sb = Sandbox::new();
    let (a, _, _) = seed_three(&sb);
    let out = sb.ok(&["note", &a.id[..6], "lr", "too", "high"]);
    assert!(
        out.contains(&a.id) && out.contains("1 notebook entry"),
        "{out}"
    );
    sb.ok(&["note", "alpha", "second thought"]);
    let notes = sb.store().notes(&a.id).unwrap();
    let texts: Vec<&str> = notes.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(texts, vec!["lr too high", "second thought"]);
}

#[test]
fn rm_hides_runs_until_restored() {
    let sb = Sandbox::new();
    let (a, b, c) = seed_three(&sb);
    let out = sb.ok(&["rm", &a.id, "beta"]);
    assert!(
        out.contains(&format!("labbook restore {} {}", a.id, b.id)),
        "{out}"
    );
    let listed = sb.ok(&["ls"]);
    assert!(!listed.contains(&a.id) && !listed.contains(&b.id) && listed.contains(&c.id));
    let deleted = sb.ok(&["ls", "--deleted"]);
    assert!(deleted.contains(&a.id) && deleted.contains(&b.id) && !deleted.contains(&c.id));
    assert!(sb.store().get_run(&a.id).unwrap().deleted_ms.is_some());

    // A typo anywhere changes nothing.
    let out = sb.run(&["restore", &a.id, "nosuchrun"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(sb.store().get_run(&a.id).unwrap().deleted_ms.is_some());

    let out = sb.ok(&["restore", &a.id, &b.id]);
    assert!(out.contains("restored alpha"), "{out}");
    assert_eq!(sb.json(&["ls", "--json"]).as_array().unwrap().len(), 3);
    assert!(sb.run(&["ls", "--deleted"]).stdout.is_empty());
}

// ---------------------------------------------------------------- export

fn seed_export(sb: &Sandbox) -> RunRecord {
    let store = sb.store();
    seed_run(
        &store,
        "exported",
        10,
        json!({"lr": 0.1}),
        None,
        &[
            ("train/loss", &[1.0, f64::NAN, 0.5]),
            ("val,acc", &[0.1, f64::INFINITY, f64::NEG_INFINITY, 0.75]),
        ],
    )
}

#[test]
fn export_csv_is_long_format_with_non_finite_values() {
    let sb = Sandbox::new();
    let run = seed_export(&sb);
    let csv = sb.ok(&["export", &run.id, "--format", "csv"]);
    let t = run.created_ms;
    let expected = format!(
        "key,step,timestamp_ms,value\n\
         train/loss,0,{},1.0\ntrain/loss,1,{},NaN\ntrain/loss,2,{},0.5\n\
         \"val,acc\",0,{},0.1\n\"val,acc\",1,{},inf\n\"val,acc\",2,{},-inf\n\"val,acc\",3,{},0.75\n",
        t,
        t + 1,
        t + 2,
        t,
        t + 1,
        t + 2,
        t + 3
    );
    assert_eq!(csv, expected);

    let only = sb.ok(&["export", "exported", "--key", "train/loss"]);
    assert_eq!(only.lines().count(), 4);

    let out = sb.run(&["export", "exported", "--key", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("has no metric \"nope\""));
}

#[test]
fn export_json_writes_columns_with_string_non_finite_values() {
    let sb = Sandbox::new();
    let run = seed_export(&sb);
    let path = sb.root.join("out.json");
    sb.ok(&[
        "export",
        &run.id,
        "--format",
        "json",
        "--output",
        path.to_str().unwrap(),
    ]);
    let doc: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(doc["run"]["id"], run.id.as_str());
    assert_eq!(doc["run"]["config"]["lr"], 0.1);
    let loss = &doc["metrics"]["train/loss"];
    assert_eq!(loss["steps"], json!([0, 1, 2]));
    let t = run.created_ms;
    assert_eq!(loss["timestamps_ms"], json!([t, t + 1, t + 2]));
    assert_eq!(loss["values"], json!([1.0, "NaN", 0.5]));
    assert_eq!(
        doc["metrics"]["val,acc"]["values"],
        json!([0.1, "Infinity", "-Infinity", 0.75])
    );
    // Same document on stdout.
    let stdout: Value =
        serde_json::from_str(&sb.ok(&["export", "exported", "-f", "json"])).unwrap();
    assert_eq!(stdout, doc);
}

#[test]
fn export_parquet_is_a_readable_long_table() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::RowAccessor;

    let sb = Sandbox::new();
    let run = seed_export(&sb);
    let path = sb.root.join("metrics.parquet");
    sb.ok(&[
        "export",
        &run.id,
        "--format",
        "parquet",
        "--output",
        path.to_str().unwrap(),
    ]);
    let bytes = fs::read(&path).unwrap();
    assert_eq!(&bytes[..4], b"PAR1");
    assert_eq!(&bytes[bytes.len() - 4..], b"PAR1");

    let reader = SerializedFileReader::new(fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(reader.metadata().file_metadata().num_rows(), 7);
    let fields: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    assert_eq!(fields, vec!["key", "step", "timestamp_ms", "value"]);
    let rows: Vec<(String, i64, i64, f64)> = reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (
                r.get_string(0).unwrap().clone(),
                r.get_long(1).unwrap(),
                r.get_long(2).unwrap(),
                r.get_double(3).unwrap(),
            )
        })
        .collect();
    assert_eq!(rows[0], ("train/loss".to_string(), 0, run.created_ms, 1.0));
    assert!(rows[1].3.is_nan());
    assert_eq!(rows[4].0, "val,acc");
    assert_eq!(rows[4].3, f64::INFINITY);
    assert_eq!(rows[5].3, f64::NEG_INFINITY);

    // The extension picks the format; no temporary file is left behind.
    let inferred = sb.root.join("again.parquet");
    sb.ok(&["export", "exported", "-o", inferred.to_str().unwrap()]);
    assert_eq!(fs::read(&inferred).unwrap(), bytes);
    let leftovers: Vec<_> = fs::read_dir(&sb.root)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn export_rejects_an_unknown_format_with_clap_usage() {
    let sb = Sandbox::new();
    let run = seed_export(&sb);
    let out = sb.run(&["export", &run.id, "--format", "xlsx"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("xlsx"));
}

// ---------------------------------------------------------------- misc

#[test]
fn version_and_help() {
    let sb = Sandbox::new();
    let version = sb.ok(&["--version"]);
    assert_eq!(version, format!("labbook {}\n", env!("CARGO_PKG_VERSION")));
    let help = sb.ok(&["help"]);
    for command in [
        "init", "run", "ls", "show", "tag", "note", "rm", "restore", "export",
    ] {
        assert!(
            help.contains(&format!("  {command} ")),
            "{command} missing from\n{help}"
        );
    }
    let run_help = sb.ok(&["help", "run"]);
    assert!(run_help.contains("--config"), "{run_help}");
}

/// The binary's output as a terminal shows it: run under a pseudo-terminal
/// by util-linux `script`, which every Debian has (bsdutils).
fn on_a_terminal(sb: &Sandbox, args: &[&str], envs: &[(&str, &str)]) -> String {
    let line: Vec<String> = std::iter::once(BIN)
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .current_dir(&sb.cwd)
        .env("LABBOOK_DIR", &sb.store_dir)
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn a_terminal_gets_color_unless_told_not_to() {
    let sb = Sandbox::new();
    seed_three(&sb);
    // On a terminal, tables and the run view are colored…
    assert!(on_a_terminal(&sb, &["ls"], &[]).contains("\x1b["));
    assert!(on_a_terminal(&sb, &["show", "alpha"], &[]).contains("\x1b["));
    // …unless NO_COLOR, --no-color or TERM=dumb says otherwise…
    for (args, envs) in [
        (&["ls"][..], &[("NO_COLOR", "1")][..]),
        (&["ls", "--no-color"][..], &[][..]),
        (&["show", "alpha", "--no-color"][..], &[][..]),
        (&["ls"][..], &[("TERM", "dumb")][..]),
    ] {
        let out = on_a_terminal(&sb, args, envs);
        assert!(!out.contains('\x1b'), "{args:?} {envs:?}: {out:?}");
        assert!(out.contains("alpha"), "{args:?}: {out:?}");
    }
    // …and a pipe never gets escape codes.
    let mut piped = sb.cmd(&["ls"]);
    piped.env_remove("NO_COLOR");
    let out = piped.output().unwrap();
    assert!(!text(&out.stdout).contains('\x1b'));
}

#[test]
fn ls_fits_the_terminal_dropping_the_least_telling_columns_first() {
    let sb = Sandbox::new();
    let store = sb.store();
    let mut ids = Vec::new();
    for (i, lr) in [0.1, 0.01, 0.001].iter().enumerate() {
        let config = json!({
            "learning_rate_for_the_encoder": lr,
            "batch_size_per_device": 32 * (i + 1),
            "dropout_probability": 0.1 * i as f64,
            "weight_decay_coefficient": 1e-4 * (i + 1) as f64,
        });
        let run = seed_run(
            &store,
            &format!("a-rather-long-run-name-{i}"),
            100,
            config,
            Some("what this run tests, at some length so the notes column is wide"),
            &[
                ("validation/accuracy", &[0.5, 0.7 + 0.01 * i as f64]),
                ("validation/loss", &[1.0, 0.5]),
                ("train/loss", &[1.0, 0.4]),
            ],
        );
        ids.push(run.id);
    }
    let wide = sb.ok(&["ls"]);
    assert!(wide.lines().map(str::len).max().unwrap() > 80, "{wide}");
    for columns in ["80", "100", "60"] {
        let out = sb.cmd(&["ls"]).env("COLUMNS", columns).output().unwrap();
        assert!(out.status.success());
        let table = text(&out.stdout);
        let limit: usize = columns.parse().unwrap();
        for line in table.lines() {
            assert!(
                line.chars().count() < limit,
                "{columns}: {line:?} is too wide"
            );
        }
        // Every run is still there, named, with its status.
        for id in &ids {
            let cells = row(&table, id);
            assert!(
                cells.iter().any(|c| c.starts_with("a-rather-long")),
                "{table}"
            );
        }
        let header = table.lines().next().unwrap();
        assert!(
            header.starts_with("ID") && header.contains("NAME"),
            "{header}"
        );
        if limit >= 80 {
            assert!(header.contains("STATUS"), "{header}");
            // A config or metric column still tells the runs apart.
            assert!(header.split_whitespace().count() >= 5, "{header}");
        }
        if limit >= 100 {
            assert!(header.contains("batch_size_per_device"), "{header}");
        }
    }
}

#[test]
fn models_of_an_empty_registry_say_so() {
    let sb = Sandbox::new();
    seed_three(&sb);
    let out = sb.run(&["models", "ls"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).starts_with("no registered models yet"));
    assert_eq!(sb.json(&["models", "ls", "--json"]), json!([]));
    let out = sb.run(&["models", "show", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: no registered model \"nope\": the registry is empty\n"
    );
}
