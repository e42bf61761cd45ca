//! Many processes (32) open one store at the same moment: a sweep's workers all
//! start together, often before the store exists. SQLite answers one of those
//! races (two connections switching a new file to WAL) with SQLITE_BUSY
//! without waiting on the busy timeout; the store must ride through it.
//!
//! SQLite's locks between connections of one process do not race the same
//! way, so the test runs its workers as processes: it starts its own binary
//! again with `LABBOOK_TEST_STORE` naming the store to open.
#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use std::path::Path;
use std::process::{Command, Stdio};

use labbook_store::*;

const TEST_NAME: &str = "processes_create_and_open_one_store_at_once";
const CHILD_ENV: &str = "LABBOOK_TEST_STORE";
/// As many as a sweep's workers on a big machine: each one races the
/// others to put the new store's file in place.
const PROCESSES: usize = 32;

#[test]
fn processes_create_and_open_one_store_at_once() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        return open_and_log(Path::new(&dir));
    }
    let exe = std::env::current_exe().unwrap();
    for round in 0..24 {
        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().join(".labbook");
        let children: Vec<_> = (0..PROCESSES)
            .map(|_| {
                Command::new(&exe)
                    .args(["--exact", TEST_NAME, "--test-threads=1", "-q"])
                    .env(CHILD_ENV, &store_dir)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "round {round}: {err}");
        }
        let store = SqliteStore::open(&store_dir).unwrap();
        assert_eq!(
            store.list_runs(&RunQuery::default()).unwrap().len(),
            PROCESSES
        );
    }
}

fn open_and_log(store_dir: &Path) {
    let store = SqliteStore::open(store_dir).unwrap_or_else(|e| panic!("open: {e}"));
    store
        .create_run(&NewRun {
            project: "sweep".into(),
            created_ms: 1,
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("create_run: {e}"));
}
