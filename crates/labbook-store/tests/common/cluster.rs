//! Throwaway PostgreSQL servers for tests: a cluster made with `initdb` and
//! started with `pg_ctl` from the machine's PostgreSQL, or the server
//! `LABBOOK_TEST_POSTGRES` names (a URL to a role that may create
//! databases). Without either a test says why and passes, except under
//! `CI=1`, where it must run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A PostgreSQL server, stopped when dropped.
pub struct Cluster {
    /// A URL to its `postgres` database, where databases are made.
    admin: String,
    /// The server's programs, data directory, `postgres` options, and the
    /// folder holding it all; `None` for a server this test did not start.
    data: Option<(PathBuf, PathBuf, String, tempfile::TempDir)>,
}

fn postgres_bin() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Some(dir);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a PostgreSQL tool as the `postgres` user when this process is root
/// (PostgreSQL refuses to run as root), else as this user.
fn as_postgres(tool: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(tool);
        cmd
    } else {
        Command::new(tool)
    }
}

impl Cluster {
    /// A server of this test's own; `None` where none can run here.
    pub fn start() -> Option<Cluster> {
        if let Ok(admin) = std::env::var("LABBOOK_TEST_POSTGRES") {
            return Some(Cluster { admin, data: None });
        }
        let Some(bin) = postgres_bin() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL is not installed, and CI must run these tests"
            );
            eprintln!(
                "skipped: no PostgreSQL here (install postgresql, or set LABBOOK_TEST_POSTGRES)"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let socket = dir.path().join("socket");
        std::fs::create_dir(&socket).unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let out = as_postgres(&bin.join("initdb"))
            .args(["-A", "trust", "--no-sync", "-U", "postgres", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
            socket.display()
        );
        let cluster = Cluster {
            admin: format!("postgresql://postgres@127.0.0.1:{port}/postgres"),
            data: Some((bin, data, options, dir)),
        };
        cluster.pg_ctl("start");
        Some(cluster)
    }

    /// Whether this test started the server, and so may stop it.
    pub fn is_own(&self) -> bool {
        self.data.is_some()
    }

    /// Makes an empty database; its URL.
    pub fn create_database(&self) -> String {
        let name = format!("t{:016x}", labbook_store::random_bits());
        let out = Command::new("psql")
            .arg(&self.admin)
            .args(["-v", "ON_ERROR_STOP=1", "-qc"])
            .arg(format!("CREATE DATABASE {name}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (base, _) = self.admin.rsplit_once('/').unwrap();
        format!("{base}/{name}")
    }

    pub fn pg_ctl(&self, action: &str) {
        let (bin, data, options, dir) = self.data.as_ref().unwrap();
        let out = as_postgres(&bin.join("pg_ctl"))
            .args(["-w", "-m", "fast", "-D"])
            .arg(data)
            .arg("-o")
            .arg(options)
            .arg("-l")
            .arg(dir.path().join("log"))
            .arg(action)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server at once, if this test started it. Never panics:
    /// it also runs as the process exits.
    fn stop(&self) {
        if let Some((bin, data, _, _)) = &self.data {
            let _ = as_postgres(&bin.join("pg_ctl"))
                .args(["-w", "-m", "immediate", "-D"])
                .arg(data)
                .arg("stop")
                .output();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The cluster this test process shares among its tests, each test in a
/// database of its own. A static is never dropped, so the server is
/// stopped, and its folder removed, as the process exits.
static SHARED: OnceLock<Option<Cluster>> = OnceLock::new();

extern "C" fn stop_shared() {
    if let Some(Some(cluster)) = SHARED.get() {
        cluster.stop();
        if let Some((_, _, _, dir)) = &cluster.data {
            let _ = std::fs::remove_dir_all(dir.path());
        }
    }
}

/// A fresh database in this process's shared cluster, started on first
/// use; `None` where PostgreSQL cannot run here.
pub fn fresh_database() -> Option<String> {
    let shared = SHARED.get_or_init(|| {
        let cluster = Cluster::start()?;
        // SAFETY: `stop_shared` is a plain function without arguments that
        // cannot unwind (it ignores every error), as atexit requires, and it
        // only reads SHARED, which is either unset (it does nothing) or set
        // for good.
        unsafe { libc::atexit(stop_shared) };
        Some(cluster)
    });
    Some(shared.as_ref()?.create_database())
}
