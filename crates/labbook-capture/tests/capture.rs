//! Behaviour of the public capture API against real git repositories, real
//! directories and this machine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use labbook_capture::{
    CaptureOptions, Environment, Package, PythonProbe, SystemSampler, capture, capture_git,
    env_var_allowed, hostname, pid_alive, scan_python_packages,
};

/// Runs git in `dir`, isolated from the user's and the system's config, and
/// returns its trimmed stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A fresh repository on branch `main` with a local identity.
fn init_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    git(dir.path(), &["-c", "init.defaultBranch=main", "init", "-q"]);
    git(dir.path(), &["config", "user.name", "Test"]);
    git(
        dir.path(),
        &["config", "user.email", "test@example.invalid"],
    );
    dir
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent");
    }
    std::fs::write(path, text).expect("write file");
}

fn commit_all(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).expect("canonicalize")
}

#[test]
fn dirty_repository() {
    let repo = init_repo();
    let root = repo.path();
    write(&root.join("tracked.txt"), "line one\n");
    write(&root.join(".gitignore"), "*.log\n");
    commit_all(root, "first");
    git(
        root,
        &[
            "remote",
            "add",
            "origin",
            "https://user:ghp_secret123@github.com/a/b.git",
        ],
    );
    write(&root.join("tracked.txt"), "line one\nline two changed\n");
    write(&root.join("new.txt"), "untracked\n");
    write(&root.join("sub/deep.txt"), "untracked too\n");
    write(&root.join("ignored.log"), "ignored\n");

    let state = capture_git(root, 0)
        .expect("git state")
        .expect("inside a repository");

    let head = git(root, &["rev-parse", "HEAD"]);
    assert_eq!(head.len(), 40);
    assert!(head.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(state.commit.as_deref(), Some(head.as_str()));
    assert_eq!(state.branch.as_deref(), Some("main"));
    assert!(state.dirty);
    assert!(state.diff.contains("+line two changed"), "{}", state.diff);
    assert!(!state.diff_truncated);
    assert_eq!(
        state.remote_url.as_deref(),
        Some("https://github.com/a/b.git")
    );
    let mut untracked = state.untracked.clone();
    untracked.sort();
    assert_eq!(untracked, ["new.txt", "sub/deep.txt"]);
    assert_eq!(canonical(Path::new(&state.root)), canonical(root));

    // From a subdirectory, paths stay relative to the root.
    let from_sub = capture_git(&root.join("sub"), 0)
        .expect("git state")
        .expect("inside a repository");
    assert_eq!(from_sub.root, state.root);
    assert_eq!(from_sub.untracked, state.untracked);
}

#[test]
fn staged_change_is_dirty_and_untracked_alone_is_not() {
    let repo = init_repo();
    let root = repo.path();
    write(&root.join("a.txt"), "a\n");
    commit_all(root, "first");

    write(&root.join("only-untracked.txt"), "x\n");
    let state = capture_git(root, 0).expect("git state").expect("repo");
    assert!(!state.dirty);
    assert!(state.diff.is_empty());
    assert_eq!(state.untracked, ["only-untracked.txt"]);
    assert_eq!(state.remote_url, None);

    write(&root.join("a.txt"), "b\n");
    git(root, &["add", "a.txt"]);
    let state = capture_git(root, 0).expect("git state").expect("repo");
    assert!(state.dirty);
    assert!(state.diff.contains("-a\n+b\n"), "{}", state.diff);
}

#[test]
fn clean_repository() {
    let repo = init_repo();
    let root = repo.path();
    write(&root.join("a.txt"), "a\n");
    commit_all(root, "first");
    git(
        root,
        &["remote", "add", "upstream", "git@github.com:a/b.git"],
    );

    let state = capture_git(root, 0).expect("git state").expect("repo");
    assert!(!state.dirty);
    assert_eq!(state.diff, "");
    assert!(!state.diff_truncated);
    assert!(state.untracked.is_empty());
    assert_eq!(state.remote_url.as_deref(), Some("git@github.com:a/b.git"));
}

#[test]
fn detached_head_has_no_branch() {
    let repo = init_repo();
    let root = repo.path();
    write(&root.join("a.txt"), "a\n");
    commit_all(root, "first");
    let head = git(root, &["rev-parse", "HEAD"]);
    git(root, &["checkout", "-q", "--detach"]);

    let state = capture_git(root, 0).expect("git state").expect("repo");
    assert_eq!(state.branch, None);
    assert_eq!(state.commit, Some(head));
}

#[test]
fn not_a_repository() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(capture_git(dir.path(), 0), Ok(None));

    let env = capture(&CaptureOptions {
        cwd: dir.path().to_path_buf(),
        ..CaptureOptions::default()
    });
    assert_eq!(env.git, None);
    assert!(
        !env.errors.iter().any(|e| e.contains("git")),
        "{:?}",
        env.errors
    );
}

#[test]
fn repository_without_commits() {
    let repo = init_repo();
    let root = repo.path();
    write(&root.join("staged.txt"), "first content\n");
    git(root, &["add", "staged.txt"]);
    write(&root.join("loose.txt"), "x\n");

    let env = capture(&CaptureOptions {
        cwd: root.to_path_buf(),
        ..CaptureOptions::default()
    });
    assert!(
        !env.errors.iter().any(|e| e.contains("git")),
        "{:?}",
        env.errors
    );
    let state = env.git.expect("inside a repository");
    assert_eq!(state.commit, None);
    assert_eq!(state.branch.as_deref(), Some("main"));
    assert!(state.dirty);
    assert!(state.diff.contains("+first content"), "{}", state.diff);
    assert_eq!(state.untracked, ["loose.txt"]);
}

#[test]
fn diff_is_cut_at_a_line_boundary() {
    let repo = init_repo();
    let root = repo.path();
    let original: String = (0..200).map(|i| format!("line {i}\n")).collect();
    write(&root.join("big.txt"), &original);
    commit_all(root, "first");
    let changed: String = (0..200).map(|i| format!("changed line {i}\n")).collect();
    write(&root.join("big.txt"), &changed);

    let full = capture_git(root, 0).expect("git state").expect("repo");
    assert!(!full.diff_truncated);
    assert!(full.diff.len() > 1000);

    let max = 500;
    let cut = capture_git(root, max).expect("git state").expect("repo");
    assert!(cut.diff_truncated);
    assert!(cut.diff.len() <= max);
    assert!(cut.diff.ends_with('\n'));
    assert!(full.diff.starts_with(&cut.diff));
    // Cut at the last line boundary, not earlier.
    let next_line_end = full.diff[cut.diff.len()..]
        .find('\n')
        .map(|i| cut.diff.len() + i + 1);
    assert!(next_line_end.is_some_and(|end| end > max));

    let exact = capture_git(root, full.diff.len())
        .expect("git state")
        .expect("repo");
    assert!(!exact.diff_truncated);
    assert_eq!(exact.diff, full.diff);
}

#[test]
fn untracked_list_is_capped_and_the_cut_reported() {
    let repo = init_repo();
    let root = repo.path();
    write(&root.join("a.txt"), "a\n");
    commit_all(root, "first");
    let many = root.join("venv");
    std::fs::create_dir(&many).expect("mkdir");
    for i in 0..1200 {
        std::fs::write(many.join(format!("f{i}")), "x").expect("write");
    }

    let env = capture(&CaptureOptions {
        cwd: root.to_path_buf(),
        ..CaptureOptions::default()
    });
    let state = env.git.expect("inside a repository");
    assert!(!state.dirty);
    assert_eq!(state.untracked.len(), 1000);
    assert!(state.untracked.iter().all(|p| p.starts_with("venv/f")));
    assert!(
        env.errors.iter().any(|e| e.contains("1200 untracked")),
        "{:?}",
        env.errors
    );
}

#[test]
fn skip_git_leaves_git_empty() {
    let repo = init_repo();
    let env = capture(&CaptureOptions {
        cwd: repo.path().to_path_buf(),
        skip_git: true,
        ..CaptureOptions::default()
    });
    assert_eq!(env.git, None);
}

#[test]
fn python_packages_from_directory_names() {
    let first = tempfile::tempdir().expect("tempdir");
    let second = tempfile::tempdir().expect("tempdir");
    for dir in [
        "foo_bar-1.2.3.dist-info",
        "Baz-0.1.egg-info",
        "foo_bar",
        "nodash.dist-info",
    ] {
        std::fs::create_dir(first.path().join(dir)).expect("mkdir");
    }
    write(&first.path().join("README.txt"), "not a package\n");
    write(&first.path().join("thing-1.0.pth"), "\n");
    for dir in ["foo_bar-9.9.dist-info", "aardvark-2.0.dist-info"] {
        std::fs::create_dir(second.path().join(dir)).expect("mkdir");
    }

    let packages = scan_python_packages(&[
        first.path().to_path_buf(),
        first.path().join("does-not-exist"),
        second.path().to_path_buf(),
    ]);
    let expected =
        [("aardvark", "2.0"), ("Baz", "0.1"), ("foo_bar", "1.2.3")].map(|(name, version)| {
            Package {
                name: name.to_owned(),
                version: version.to_owned(),
            }
        });
    assert_eq!(packages, expected);
}

#[test]
fn env_var_allow_list() {
    assert!(env_var_allowed("CUDA_VISIBLE_DEVICES"));
    assert!(env_var_allowed("SLURM_JOB_ID"));
    for denied in [
        "HF_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "WANDB_API_KEY",
        "SLURM_AUTH_KEY",
        "PATH",
        "HOME",
    ] {
        assert!(!env_var_allowed(denied), "{denied} must be denied");
    }
}

#[test]
fn capture_on_this_machine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let site = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(site.path().join("numpy-2.1.0.dist-info")).expect("mkdir");
    let argv: Vec<String> = ["train.py", "--lr", "0.1"].map(String::from).into();
    let opts = CaptureOptions {
        cwd: dir.path().to_path_buf(),
        argv: argv.clone(),
        python: Some(PythonProbe {
            version: "3.12.4".to_owned(),
            executable: "/usr/bin/python3".to_owned(),
            implementation: "CPython".to_owned(),
            site_paths: vec![site.path().to_path_buf()],
        }),
        ..CaptureOptions::default()
    };

    let started = Instant::now();
    let env = capture(&opts);
    let wall = started.elapsed();
    println!(
        "capture() took {} us (wall {wall:?}), errors: {:?}",
        env.capture_micros, env.errors
    );

    assert!(env.cpu_count > 0);
    assert_eq!(env.arch, std::env::consts::ARCH);
    assert_eq!(env.pid, std::process::id());
    assert_eq!(env.command, argv);
    assert_eq!(env.cwd, dir.path().to_string_lossy());
    assert!(env.host.is_some());
    assert_eq!(env.host, hostname());
    assert!(env.captured_at_ms > 1_600_000_000_000);
    assert!(env.capture_micros > 0);
    assert!(Duration::from_micros(env.capture_micros) <= wall);
    let python = env.python.as_ref().expect("python recorded");
    assert_eq!(python.version, "3.12.4");
    assert_eq!(python.packages.len(), 1);
    assert_eq!(python.packages[0].name, "numpy");
    for name in env.env_vars.keys() {
        assert!(env_var_allowed(name), "{name} leaked");
    }

    let json = serde_json::to_string(&env).expect("serialize");
    let back: Environment = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, env);
    // Absent options are left out rather than written as null.
    let value: serde_json::Value = serde_json::from_str(&json).expect("parse");
    assert!(!has_null(&value), "{json}");
}

fn has_null(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::Array(items) => items.iter().any(has_null),
        serde_json::Value::Object(fields) => fields.values().any(has_null),
        _ => false,
    }
}

#[test]
fn sampler_reports_process_and_system_metrics() {
    let mut sampler = SystemSampler::new(std::process::id());
    let first = sampler.sample();
    assert!(!first.iter().any(|(k, _)| k == "sys/cpu_percent"));

    // Keep this thread busy for longer than sysinfo's minimum CPU interval.
    let started = Instant::now();
    let mut x = 0u64;
    while started.elapsed() < Duration::from_millis(250) {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    let second = sampler.sample();
    println!("second sample: {second:?}");
    let get = |key: &str| second.iter().find(|(k, _)| k == key).map(|&(_, v)| v);

    let rss = get("sys/rss_mb").expect("rss reported");
    assert!(rss > 0.0);
    let cpu = get("sys/cpu_percent").expect("cpu reported on the second sample");
    assert!(cpu > 0.0, "busy loop measured as {cpu}%");
    let system_cpu = get("sys/system_cpu_percent").expect("system cpu reported");
    assert!((0.0..=100.0).contains(&system_cpu));
    let mem = get("sys/system_mem_percent").expect("system memory reported");
    assert!(mem > 0.0 && mem <= 100.0);
    if !sampler.has_nvml() {
        assert!(
            !second.iter().any(|(k, _)| k.starts_with("sys/gpu")),
            "{second:?}"
        );
    }
}

#[test]
fn sampler_for_a_missing_process_reports_only_the_machine() {
    let mut child = Command::new("true").spawn().expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait");
    let mut sampler = SystemSampler::new(pid);
    let sample = sampler.sample();
    assert!(!sample.iter().any(|(k, _)| k == "sys/rss_mb"));
    assert!(sample.iter().any(|(k, _)| k == "sys/system_mem_percent"));
}

#[test]
fn pid_liveness() {
    assert!(pid_alive(std::process::id()));
    let mut child = Command::new("true").spawn().expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait");
    assert!(!pid_alive(pid));
}

/// Secret values written into the repositories below; none may appear in
/// anything captured.
const SECRETS: &[&str] = &[
    "SEKRET_ENV_OLD",
    "SEKRET_ENV_NEW",
    "SEKRET_DB_OLD",
    "SEKRET_DB_NEW",
    "SEKRET_PEM_OLD",
    "SEKRET_PEM_NEW",
    "SEKRET_LOCAL",
    "SEKRET_REMOTE_PW",
    "SEKRET_REMOTE_TOKEN",
];

/// A repository with a committed `.env`, `key.pem` and `config/.env.local`,
/// all three then modified along with `train.py`, and a remote with
/// credentials in its user-info and query string.
fn repository_with_secrets() -> tempfile::TempDir {
    let repo = init_repo();
    let root = repo.path();
    write(
        &root.join(".env"),
        "API_KEY=SEKRET_ENV_OLD\nDB_PASSWORD=SEKRET_DB_OLD\n",
    );
    write(
        &root.join("key.pem"),
        "-----BEGIN KEY-----\nSEKRET_PEM_OLD\n",
    );
    write(&root.join("config/.env.local"), "X=1\n");
    write(&root.join(".env.example"), "API_KEY=changeme\n");
    write(&root.join("train.py"), "lr = 0.1\n");
    commit_all(root, "first");
    git(
        root,
        &[
            "remote",
            "add",
            "origin",
            "https://u:SEKRET_REMOTE_PW@host/r.git?private_token=SEKRET_REMOTE_TOKEN",
        ],
    );
    write(
        &root.join(".env"),
        "API_KEY=SEKRET_ENV_NEW\nDB_PASSWORD=SEKRET_DB_NEW\n",
    );
    write(
        &root.join("key.pem"),
        "-----BEGIN KEY-----\nSEKRET_PEM_NEW\n",
    );
    write(&root.join("config/.env.local"), "X=SEKRET_LOCAL\n");
    write(&root.join(".env.example"), "API_KEY=\nDB_PASSWORD=\n");
    write(&root.join("train.py"), "lr = 0.01\n");
    // Untracked secrets are listed by name only; git never reads them here.
    write(&root.join("id_rsa"), "SEKRET_UNTRACKED\n");
    repo
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS.iter().chain(&["SEKRET_UNTRACKED"]) {
        assert!(!text.contains(secret), "{secret} in {what}: {text}");
    }
}

#[test]
fn secrets_never_reach_the_captured_git_state() {
    type Setup = fn(&Path) -> PathBuf;
    let cases: &[(&str, Setup, &[&str])] = &[
        (
            "from the root",
            |root| root.to_path_buf(),
            &[".env", "config/.env.local", "key.pem"],
        ),
        (
            "from a subdirectory, paths stay relative to the root",
            |root| root.join("config"),
            &[".env", "config/.env.local", "key.pem"],
        ),
        (
            "with diff.relative set, which would change the paths git prints",
            |root| {
                git(root, &["config", "diff.relative", "true"]);
                root.join("config")
            },
            &[".env", "config/.env.local", "key.pem"],
        ),
        (
            "a secret file deleted shows its old content as removed lines",
            |root| {
                std::fs::remove_file(root.join(".env")).expect("remove");
                root.to_path_buf()
            },
            &[".env", "config/.env.local", "key.pem"],
        ),
        (
            "a secret file renamed is left out under its old name",
            |root| {
                git(root, &["mv", "key.pem", "moved.pem"]);
                root.to_path_buf()
            },
            &[".env", "config/.env.local", "key.pem", "moved.pem"],
        ),
    ];
    for (label, setup, excluded) in cases {
        let repo = repository_with_secrets();
        let dir = setup(repo.path());
        let env = capture(&CaptureOptions {
            cwd: dir,
            ..CaptureOptions::default()
        });
        let state = env.git.clone().expect("inside a repository");
        assert!(state.dirty, "{label}");
        assert!(
            state.diff.contains("-lr = 0.1\n+lr = 0.01"),
            "{label}: {}",
            state.diff
        );
        assert!(
            state.diff.contains("+API_KEY=\n"),
            "{label}: {}",
            state.diff
        );
        let mut got = state.diff_excluded.clone();
        got.sort();
        assert_eq!(got, *excluded, "{label}");
        assert_eq!(
            state.remote_url.as_deref(),
            Some("https://host/r.git?private_token=***"),
            "{label}"
        );
        assert!(state.untracked.contains(&"id_rsa".to_owned()), "{label}");
        let json = serde_json::to_string(&env).expect("serialize");
        assert_no_secret(label, &json);
    }
}

#[test]
fn secrets_never_reach_a_first_commit_diff() {
    let repo = init_repo();
    let root = repo.path();
    write(&root.join(".env"), "TOKEN=SEKRET_ENV_NEW\n");
    write(&root.join("train.py"), "lr = 0.1\n");
    git(root, &["add", "-A"]);
    let state = capture_git(root, 0).expect("git state").expect("repo");
    assert_eq!(state.commit, None);
    assert!(state.diff.contains("+lr = 0.1"), "{}", state.diff);
    assert_eq!(state.diff_excluded, [".env"]);
    assert_no_secret("diff", &state.diff);
}

#[test]
fn a_clean_tree_or_plain_changes_exclude_nothing() {
    let repo = init_repo();
    let root = repo.path();
    write(&root.join("a.txt"), "a\n");
    commit_all(root, "first");
    let clean = capture_git(root, 0).expect("git state").expect("repo");
    assert!(clean.diff_excluded.is_empty());
    write(&root.join("a.txt"), "b\n");
    let dirty = capture_git(root, 0).expect("git state").expect("repo");
    assert!(dirty.diff.contains("+b"));
    assert!(dirty.diff_excluded.is_empty());
}

#[test]
fn old_git_state_without_diff_excluded_still_reads() {
    let old = r#"{"root": "/r", "dirty": true, "diff": "x", "untracked": []}"#;
    let state: labbook_capture::GitState = serde_json::from_str(old).expect("old JSON");
    assert!(state.diff_excluded.is_empty());
    assert_eq!(state.diff, "x");
}

#[test]
fn command_and_environment_lose_their_secrets() {
    let argv: Vec<String> = [
        "train.py",
        "--api-key=SEKRET_A",
        "--password",
        "SEKRET_B",
        "postgres://u:SEKRET_C@h/db",
        "HF_TOKEN=SEKRET_D",
        "--lr",
        "0.1",
        "--author",
        "me",
    ]
    .map(String::from)
    .into();
    let env = capture(&CaptureOptions {
        argv,
        skip_git: true,
        ..CaptureOptions::default()
    });
    assert_eq!(
        env.command,
        [
            "train.py",
            "--api-key=***",
            "--password",
            "***",
            "postgres://u:***@h/db",
            "HF_TOKEN=***",
            "--lr",
            "0.1",
            "--author",
            "me",
        ]
    );
    // This process's own arguments are redacted as well.
    let own = capture(&CaptureOptions {
        skip_git: true,
        ..CaptureOptions::default()
    });
    let args: Vec<String> = std::env::args().collect();
    assert_eq!(own.command, labbook_core::redact::redact_argv(&args));
}
