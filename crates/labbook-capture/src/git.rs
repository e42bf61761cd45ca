//! Git state of the working tree a run starts from, read through the `git`
//! command line so that every repository layout git understands (worktrees,
//! submodules, `safe.directory`, sparse checkouts) is handled by git itself.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use labbook_core::redact::{secret_file, strip_url_credentials};

use crate::{DEFAULT_MAX_DIFF_BYTES, GitState};

/// A git command still running after this long is killed: a run must not
/// wait on a hung network filesystem or a stuck fsmonitor hook.
const GIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Enough of git's stderr to explain a failure.
const STDERR_KEEP: usize = 4096;

/// Untracked paths kept; a virtualenv or dataset that is not ignored can
/// otherwise add tens of thousands of entries to every run.
const MAX_UNTRACKED: usize = 1000;

/// Whether git could find a repository from `dir`: it looks for `.git` in
/// `dir` and each parent, unless `GIT_DIR` points elsewhere. Checking first
/// spares a run outside any repository three `git` processes (~3 ms).
fn may_be_in_a_repository(dir: &Path) -> bool {
    let found = |dir: &Path| dir.ancestors().any(|d| d.join(".git").exists());
    std::env::var_os("GIT_DIR").is_some()
        || found(dir)
        || dir.canonicalize().is_ok_and(|real| found(&real))
}

/// Reads the git state of the working tree containing `dir`.
///
/// Returns `Ok(None)` outside a git repository and when git is not
/// installed. Diffs longer than `max_diff_bytes` (4 MiB when 0) are cut at a
/// line boundary. Parts that fail on their own (the remote, the diff) are left
/// empty; [`crate::capture`] records why in `Environment::errors`.
pub fn capture_git(dir: &Path, max_diff_bytes: usize) -> Result<Option<GitState>, String> {
    capture(dir, max_diff_bytes).0
}

/// Like [`capture_git`], also returning the reasons for parts left empty.
pub(crate) fn capture(
    dir: &Path,
    max_diff_bytes: usize,
) -> (Result<Option<GitState>, String>, Vec<String>) {
    let max_diff_bytes = if max_diff_bytes == 0 {
        DEFAULT_MAX_DIFF_BYTES
    } else {
        max_diff_bytes
    };
    let mut warnings = Vec::new();
    if !dir.is_dir() {
        let msg = format!("git: {} is not a directory", dir.display());
        return (Err(msg), warnings);
    }

    if !may_be_in_a_repository(dir) {
        return (Ok(None), warnings);
    }
    // Started together so that the three run concurrently; each is waited
    // for below even when an earlier one already decided the outcome, so no
    // zombie is left behind.
    let toplevel = Git::spawn(dir, &["rev-parse", "--show-toplevel"]);
    if matches!(toplevel, Err(RunError::NotInstalled)) {
        return (Ok(None), warnings);
    }
    let status = Git::spawn(
        dir,
        &[
            "status",
            "--porcelain=v2",
            "--branch",
            "-z",
            "--untracked-files=all",
        ],
    );
    let remotes = Git::spawn(dir, &["config", "-z", "--get-regexp", r"^remote\..*\.url$"]);
    let toplevel = toplevel.and_then(|g| g.finish(usize::MAX));
    let status = status.and_then(|g| g.finish(usize::MAX));
    let remotes = remotes.and_then(|g| g.finish(usize::MAX));

    let root = match toplevel {
        Ok(out) if out.status.success() => {
            let root = String::from_utf8_lossy(&out.stdout);
            root.trim_end_matches(['\n', '\r']).to_owned()
        }
        Ok(out) if is_outside_work_tree(&out.stderr) => return (Ok(None), warnings),
        Ok(out) => return (Err(out.failure("git rev-parse")), warnings),
        Err(RunError::NotInstalled) => return (Ok(None), warnings),
        Err(RunError::Failed(e)) => return (Err(format!("git rev-parse: {e}")), warnings),
    };
    // Inside `.git` of a non-bare repository git succeeds with no top level.
    if root.is_empty() {
        return (Ok(None), warnings);
    }

    let status = match status {
        Ok(out) if out.status.success() => parse_status(&out.stdout),
        Ok(out) => return (Err(out.failure("git status")), warnings),
        Err(e) => return (Err(format!("git status: {e}")), warnings),
    };

    let remote_url = match remotes {
        Ok(out) if out.status.success() => {
            pick_remote(&out.stdout).map(|u| strip_url_credentials(&u))
        }
        // `git config --get-regexp` exits with 1 when nothing matched.
        Ok(out) if out.status.code() == Some(1) => None,
        Ok(out) => {
            warnings.push(out.failure("git config"));
            None
        }
        Err(e) => {
            warnings.push(format!("git config: {e}"));
            None
        }
    };

    let diff = if status.dirty {
        match read_diff(dir, status.commit.is_some(), max_diff_bytes) {
            Ok(d) => d,
            Err(e) => {
                warnings.push(e);
                Diff::default()
            }
        }
    } else {
        Diff::default()
    };

    if status.untracked_total > status.untracked.len() {
        warnings.push(format!(
            "git: {} untracked files, kept the first {}",
            status.untracked_total,
            status.untracked.len()
        ));
    }

    let state = GitState {
        root,
        commit: status.commit,
        branch: status.branch,
        remote_url,
        dirty: status.dirty,
        diff: diff.text,
        diff_truncated: diff.truncated,
        diff_excluded: diff.excluded,
        untracked: status.untracked,
        changed: status.changed,
    };
    (Ok(Some(state)), warnings)
}

/// Whether git refused because `dir` is not inside a work tree, which is a
/// normal situation rather than an error.
fn is_outside_work_tree(stderr: &str) -> bool {
    stderr.contains("not a git repository") || stderr.contains("must be run in a work tree")
}

/// What `git diff` gave, without the files named like secrets.
#[derive(Debug, Default)]
struct Diff {
    text: String,
    truncated: bool,
    excluded: Vec<String>,
}

/// Settings for every diff command: `diff.relative` would make paths
/// relative to `dir` and leave out the rest of the tree, so the names listed
/// would not be the ones the `:(top)` excludes below refer to.
const DIFF_CONFIG: [&str; 2] = ["-c", "diff.relative=false"];

fn read_diff(dir: &Path, has_commit: bool, max_bytes: usize) -> Result<Diff, String> {
    // Without a commit there is no HEAD to diff against; the staged files are
    // the whole content of the first commit-to-be.
    let against: &[&str] = if has_commit { &["HEAD"] } else { &["--cached"] };

    // The changed files first, so that those named like secrets (`.env`,
    // `*.pem`, see `secret_file`) are left out by path. Renames are listed
    // as their two paths, so a secret file renamed is caught by either name.
    let mut args: Vec<OsString> = DIFF_CONFIG.iter().map(OsString::from).collect();
    args.extend(["diff", "--name-only", "-z", "--no-renames"].map(OsString::from));
    args.extend(against.iter().map(OsString::from));
    args.push("--".into());
    let names = Git::spawn(dir, &args)
        .and_then(|g| g.finish(usize::MAX))
        .map_err(|e| format!("git diff: {e}"))?;
    // Without the list of files there is no knowing which to leave out, so
    // no diff is stored at all.
    if !names.status.success() {
        return Err(names.failure("git diff --name-only"));
    }
    let secret: Vec<&[u8]> = names
        .stdout
        .split(|&b| b == 0)
        .filter(|path| !path.is_empty() && secret_file(&String::from_utf8_lossy(path)))
        .collect();

    let mut args: Vec<OsString> = DIFF_CONFIG.iter().map(OsString::from).collect();
    args.extend(["diff", "--no-color", "--no-ext-diff", "--no-textconv"].map(OsString::from));
    args.extend(against.iter().map(OsString::from));
    args.push("--".into());
    for path in &secret {
        // `literal`: a path is not a glob; `top`: paths are relative to the
        // root, as `--name-only` printed them, wherever `dir` is.
        let mut spec = OsString::from(":(top,exclude,literal)");
        spec.push(os_str(path));
        args.push(spec);
    }
    let excluded = secret
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();

    // One byte past the limit tells a diff of exactly `max_bytes` from a
    // longer one; reading stops there and git ends on the closed pipe.
    let limit = max_bytes.saturating_add(1);
    let out = Git::spawn(dir, &args)
        .and_then(|g| g.finish(limit))
        .map_err(|e| format!("git diff: {e}"))?;
    let (text, truncated) = if out.stdout_truncated {
        (cut_at_line(&out.stdout, max_bytes), true)
    } else if !out.status.success() {
        return Err(out.failure("git diff"));
    } else {
        let diff = String::from_utf8_lossy(&out.stdout).into_owned();
        if diff.len() > max_bytes {
            // Invalid UTF-8 became replacement characters and grew past the limit.
            (cut_at_line(diff.as_bytes(), max_bytes), true)
        } else {
            (diff, false)
        }
    };
    Ok(Diff {
        text,
        truncated,
        excluded,
    })
}

/// A path as git printed it, passed back to git unchanged even when it is
/// not UTF-8.
#[cfg(unix)]
fn os_str(bytes: &[u8]) -> &OsStr {
    use std::os::unix::ffi::OsStrExt;
    OsStr::from_bytes(bytes)
}

#[cfg(not(unix))]
fn os_str(bytes: &[u8]) -> OsString {
    OsString::from(String::from_utf8_lossy(bytes).into_owned())
}

/// The longest prefix of `bytes` that ends with a newline and, once decoded,
/// fits in `max` bytes.
fn cut_at_line(bytes: &[u8], max: usize) -> String {
    let mut end = max.min(bytes.len());
    loop {
        let kept = match bytes[..end].iter().rposition(|&b| b == b'\n') {
            Some(pos) => &bytes[..=pos],
            None => return String::new(),
        };
        let text = String::from_utf8_lossy(kept);
        if text.len() <= max {
            return text.into_owned();
        }
        end = kept.len() - 1;
    }
}

/// What `git status --porcelain=v2 --branch -z` says about the tree.
#[derive(Debug, Default, PartialEq)]
struct StatusInfo {
    commit: Option<String>,
    branch: Option<String>,
    dirty: bool,
    untracked: Vec<String>,
    untracked_total: usize,
    changed: Vec<String>,
}

impl StatusInfo {
    /// Keeps the path of a changed entry, which follows `fields` fields
    /// separated by single spaces (the path itself may hold spaces).
    fn push_changed(&mut self, record: &[u8], fields: usize) {
        if self.changed.len() >= MAX_UNTRACKED {
            return;
        }
        let mut rest = record;
        for _ in 0..fields {
            match rest.iter().position(|&b| b == b' ') {
                Some(at) => rest = &rest[at + 1..],
                None => return,
            }
        }
        if !rest.is_empty() {
            self.changed
                .push(String::from_utf8_lossy(rest).into_owned());
        }
    }
}

fn parse_status(out: &[u8]) -> StatusInfo {
    let mut info = StatusInfo::default();
    let mut records = out.split(|&b| b == 0);
    while let Some(record) = records.next() {
        let Some(&kind) = record.first() else {
            continue;
        };
        match kind {
            b'#' => {
                let line = String::from_utf8_lossy(record);
                if let Some(oid) = line.strip_prefix("# branch.oid ") {
                    if oid != "(initial)" {
                        info.commit = Some(oid.to_owned());
                    }
                } else if let Some(head) = line.strip_prefix("# branch.head ")
                    && head != "(detached)"
                {
                    info.branch = Some(head.to_owned());
                }
            }
            b'1' if !is_submodule_untracked_only(record) => {
                info.dirty = true;
                info.push_changed(record, 8);
            }
            b'2' => {
                info.dirty = true;
                info.push_changed(record, 9);
                // With -z the source path of a rename is its own record.
                records.next();
            }
            b'u' => {
                info.dirty = true;
                info.push_changed(record, 10);
            }
            b'?' => {
                info.untracked_total += 1;
                if info.untracked.len() < MAX_UNTRACKED
                    && let Some(path) = record.get(2..)
                {
                    info.untracked
                        .push(String::from_utf8_lossy(path).into_owned());
                }
            }
            _ => {}
        }
    }
    info
}

/// A submodule whose only change is untracked files inside it: reported by
/// status as modified, but it changes no tracked content of this repository.
fn is_submodule_untracked_only(record: &[u8]) -> bool {
    let mut fields = record.split(|&b| b == b' ');
    let _kind = fields.next();
    let xy = fields.next();
    let sub = fields.next();
    xy == Some(b".M") && sub == Some(b"S..U")
}

/// `origin` if there is one, else the first remote in configuration order.
fn pick_remote(out: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(out);
    let mut first = None;
    for entry in text.split('\0') {
        let Some((key, url)) = entry.split_once('\n') else {
            continue;
        };
        let Some(name) = key
            .strip_prefix("remote.")
            .and_then(|k| k.strip_suffix(".url"))
        else {
            continue;
        };
        if name == "origin" {
            return Some(url.to_owned());
        }
        if first.is_none() {
            first = Some(url.to_owned());
        }
    }
    first
}

#[derive(Debug)]
enum RunError {
    NotInstalled,
    Failed(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::NotInstalled => f.write_str("git is not installed"),
            RunError::Failed(e) => f.write_str(e),
        }
    }
}

struct GitOutput {
    status: ExitStatus,
    stdout: Vec<u8>,
    stdout_truncated: bool,
    stderr: String,
}

impl GitOutput {
    /// A one-line description of a failed command.
    fn failure(&self, what: &str) -> String {
        let reason = self
            .stderr
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map_or_else(|| self.status.to_string(), str::to_owned);
        format!("{what} failed: {reason}")
    }
}

/// A started git command.
struct Git {
    child: Child,
    started: Instant,
}

impl Git {
    fn spawn<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Result<Git, RunError> {
        let mut cmd = Command::new("git");
        cmd.arg("-C")
            .arg(dir)
            .args(args)
            // Reading must never take the index lock from a concurrent git
            // the user is running.
            .env("GIT_OPTIONAL_LOCKS", "0")
            // Messages are matched above, so they must not be translated.
            .env("LC_ALL", "C")
            .env("LANGUAGE", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match cmd.spawn() {
            Ok(child) => Ok(Git {
                child,
                started: Instant::now(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(RunError::NotInstalled),
            Err(e) => Err(RunError::Failed(e.to_string())),
        }
    }

    /// Waits for the command, keeping at most `stdout_limit` bytes of its
    /// output, and kills it once it has run for [`GIT_TIMEOUT`].
    fn finish(mut self, stdout_limit: usize) -> Result<GitOutput, RunError> {
        let (Some(stdout), Some(stderr)) = (self.child.stdout.take(), self.child.stderr.take())
        else {
            self.reap();
            return Err(RunError::Failed("no pipes to git".to_owned()));
        };
        thread::scope(|s| {
            // Both pipes are drained while waiting: a git blocked on a full
            // pipe would otherwise never exit.
            let out_reader =
                thread::Builder::new().spawn_scoped(s, move || read_stdout(stdout, stdout_limit));
            let err_reader =
                thread::Builder::new().spawn_scoped(s, move || read_stderr(stderr, STDERR_KEEP));
            let (out_reader, err_reader) = match (out_reader, err_reader) {
                (Ok(o), Ok(e)) => (o, e),
                _ => {
                    // Killing closes the pipes, which ends whichever reader
                    // did start.
                    self.reap();
                    return Err(RunError::Failed("cannot start a reader thread".to_owned()));
                }
            };
            let status = self.wait();
            let stdout = out_reader.join();
            let stderr = err_reader.join();
            let status = status?;
            let (Ok(stdout), Ok(stderr)) = (stdout, stderr) else {
                return Err(RunError::Failed("reader thread panicked".to_owned()));
            };
            let (stdout, stdout_truncated) =
                stdout.map_err(|e| RunError::Failed(format!("reading output: {e}")))?;
            Ok(GitOutput {
                status,
                stdout,
                stdout_truncated,
                stderr,
            })
        })
    }

    /// Polls rather than blocks so that the timeout can be enforced without
    /// signalling a pid from another thread, which could race with reaping.
    fn wait(&mut self) -> Result<ExitStatus, RunError> {
        let deadline = self.started + GIT_TIMEOUT;
        let mut pause = Duration::from_micros(200);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) => {}
                Err(e) => {
                    self.reap();
                    return Err(RunError::Failed(e.to_string()));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                self.reap();
                return Err(RunError::Failed(format!(
                    "timed out after {}s",
                    GIT_TIMEOUT.as_secs()
                )));
            }
            thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    fn reap(&mut self) {
        // Both fail only when the child already exited and was reaped, which
        // is the state wanted here.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads up to `limit` bytes, then stops reading; dropping the pipe makes
/// git exit instead of producing output nobody keeps.
fn read_stdout(mut pipe: ChildStdout, limit: usize) -> io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let n = match pipe.read(&mut chunk) {
            Ok(0) => return Ok((buf, false)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let room = limit - buf.len();
        if n >= room {
            buf.extend_from_slice(&chunk[..room]);
            return Ok((buf, true));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Keeps the first `keep` bytes but drains the rest: git would die of
/// SIGPIPE on a closed stderr halfway through its real work.
fn read_stderr(mut pipe: ChildStderr, keep: usize) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8 * 1024];
    loop {
        match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                let room = keep.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule itself lives in `labbook_core::redact`; these are the
    /// remote forms git users have.
    #[test]
    fn remote_urls_lose_credentials() {
        let cases = [
            (
                "https://user:ghp_xxx@github.com/a/b.git",
                "https://github.com/a/b.git",
            ),
            ("https://token@host/x", "https://host/x"),
            ("HTTP://u:p@host:8080/x?q=a@b", "HTTP://host:8080/x?q=a@b"),
            ("https://github.com/a/b.git", "https://github.com/a/b.git"),
            (
                "https://u:p@host/r.git?private_token=abc",
                "https://host/r.git?private_token=***",
            ),
            ("git@github.com:a/b.git", "git@github.com:a/b.git"),
            (
                "ssh://git@github.com/a/b.git",
                "ssh://git@github.com/a/b.git",
            ),
            // A password of a non-web URL is masked, the user name kept.
            ("ssh://me:hunter2@host/a.git", "ssh://me:***@host/a.git"),
            ("/srv/repos/a.git", "/srv/repos/a.git"),
        ];
        for (url, expected) in cases {
            assert_eq!(strip_url_credentials(url), expected, "{url}");
        }
    }

    #[test]
    fn picks_origin_else_first_remote() {
        let out = b"remote.upstream.url\nhttps://u/x\0remote.origin.url\nhttps://o/x\0";
        assert_eq!(pick_remote(out).as_deref(), Some("https://o/x"));
        let out = b"remote.my.fork.url\nhttps://f/x\0remote.up.url\nhttps://u/x\0";
        assert_eq!(pick_remote(out).as_deref(), Some("https://f/x"));
        assert_eq!(pick_remote(b""), None);
    }

    #[test]
    fn parses_porcelain_v2() {
        let oid = "0123456789abcdef0123456789abcdef01234567";
        let out = format!(
            "# branch.oid {oid}\0# branch.head feature/x\0\
             2 R. N... 100644 100644 100644 {oid} {oid} R100 new name.txt\0old.txt\0\
             1 .D N... 100644 100644 000000 {oid} {oid} gone.py\0\
             ? with space.txt\0? dir/nested.txt\0"
        );
        let info = parse_status(out.as_bytes());
        assert_eq!(info.commit.as_deref(), Some(oid));
        assert_eq!(info.branch.as_deref(), Some("feature/x"));
        assert!(info.dirty);
        // The rename's source path must not be taken for an untracked file.
        assert_eq!(info.untracked, ["with space.txt", "dir/nested.txt"]);
        assert_eq!(info.changed, ["new name.txt", "gone.py"]);
    }

    #[test]
    fn initial_detached_and_submodule_untracked() {
        let info = parse_status(b"# branch.oid (initial)\0# branch.head (detached)\0");
        assert_eq!(info, StatusInfo::default());

        let sub = b"1 .M S..U 160000 160000 160000 aaaa aaaa vendor/lib\0";
        assert!(!parse_status(sub).dirty);
        let sub = b"1 .M SC.. 160000 160000 160000 aaaa aaaa vendor/lib\0";
        assert!(parse_status(sub).dirty);
    }

    #[test]
    fn cuts_at_line_boundaries() {
        assert_eq!(cut_at_line(b"ab\ncd\nef\n", 7), "ab\ncd\n");
        assert_eq!(cut_at_line(b"ab\ncd\nef\n", 6), "ab\ncd\n");
        assert_eq!(cut_at_line(b"abcdef\n", 3), "");
        // An invalid byte decodes to three bytes and pushes the line out.
        assert_eq!(cut_at_line(b"a\n\xffb\n", 4), "a\n");
    }
}
