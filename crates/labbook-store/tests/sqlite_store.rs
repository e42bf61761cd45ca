//! What only the SQLite store has to show: its file (the template, schema
//! versions, read-only opening, backups) and rows older versions wrote.
//! What every backend must do is in `conformance`.
#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use labbook_store::series::SeriesWriter;
use labbook_store::*;

mod common;
use common::{LONG_RUN, downsampled_from_every_point, log, log_long_run, new_run, same, series};

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join(".labbook")).unwrap();
    (dir, store)
}

#[test]
fn runs_from_before_the_change_sequence_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".labbook");
    let store = SqliteStore::open(&path).unwrap();
    let run = store.create_run(&new_run("p")).unwrap();
    drop(store);
    // What a store written by the first schema looks like after migrating.
    let conn = rusqlite::Connection::open(path.join("labbook.db")).unwrap();
    conn.execute_batch("UPDATE runs SET seq = 0; UPDATE change_seq SET value = 0;")
        .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.list_runs(&RunQuery::default()).unwrap()[0].id, run.id);
}

/// Sketches where older stores keep them, in the chunk's own row, are
/// read from there; a damaged or missing sketch is read from the points.
#[test]
fn sketches_in_a_chunks_row_or_damaged_are_read_right() {
    let (dir, store) = store();
    let (run, all) = log_long_run(&store);
    let buckets = 500;
    let exact = downsampled_from_every_point(&all, buckets);
    // Sketches kept in the chunk's row, as chunks sealed before their own
    // table existed keep them: read from there.
    let (sketched, _) = store
        .downsample(&run, "y", StepRange::ALL, buckets, true)
        .unwrap();
    assert!(!same(&sketched, &exact), "the sketches were not used");
    let db = rusqlite::Connection::open(dir.path().join(".labbook").join(DB_FILE)).unwrap();
    db.execute_batch(
        "UPDATE chunks SET sketch = (SELECT sketch FROM chunk_sketches WHERE chunk_id = chunks.id);
         DELETE FROM chunk_sketches;",
    )
    .unwrap();
    let (in_row, _) = store
        .downsample(&run, "y", StepRange::ALL, buckets, true)
        .unwrap();
    assert!(same(&in_row, &sketched));
    // A damaged sketch in the table is read from the points, not from an
    // older sketch in the row.
    db.execute_batch(
        "INSERT INTO chunk_sketches SELECT id, substr(sketch, 1, 200) FROM chunks WHERE sketch IS NOT NULL",
    )
    .unwrap();
    let (down, _) = store
        .downsample(&run, "y", StepRange::ALL, buckets, true)
        .unwrap();
    assert!(same(&down, &exact), "a damaged sketch was used");
    db.execute_batch("DELETE FROM chunk_sketches").unwrap();
    // Chunks sealed before sketches existed, and a damaged sketch: read
    // from the chunks themselves, exactly.
    for damage in ["substr(sketch, 1, 200)", "x'B500'", "NULL"] {
        db.execute_batch(&format!(
            "UPDATE chunks SET sketch = {damage} WHERE sketch IS NOT NULL"
        ))
        .unwrap();
        let (down, total) = store
            .downsample(&run, "y", StepRange::ALL, buckets, true)
            .unwrap();
        assert!(
            same(&down, &exact) && total == LONG_RUN as usize,
            "sketch = {damage}"
        );
    }
}

/// The schema and rows a store gets from the build-time template are the
/// ones running the migrations gives (the path a store whose file exists
/// but is empty takes).
#[test]
fn a_store_from_the_template_is_a_migrated_store() {
    fn schema(dir: &std::path::Path) -> Vec<(String, String, String)> {
        let db = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
        let mut rows: Vec<(String, String, String)> = db
            .prepare("SELECT type, name, coalesce(sql, '') FROM sqlite_master")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.sort();
        let version: i64 = db
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        let mode: String = db
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let page: i64 = db.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        let projects: i64 = db
            .query_row("SELECT count(*) FROM projects", [], |r| r.get(0))
            .unwrap();
        rows.push((
            "pragma".into(),
            format!("{version} {mode} {page}"),
            projects.to_string(),
        ));
        rows
    }
    let templated = tempfile::tempdir().unwrap();
    SqliteStore::open(&templated.path().join(".labbook")).unwrap();
    let migrated = tempfile::tempdir().unwrap();
    let dir = migrated.path().join(".labbook");
    std::fs::create_dir(&dir).unwrap();
    std::fs::File::create(dir.join(DB_FILE)).unwrap();
    SqliteStore::open(&dir).unwrap();
    assert_eq!(schema(&templated.path().join(".labbook")), schema(&dir));
}

/// A closed store whose schema version is this one's plus `delta`: as a
/// newer (or older) labbook left it.
fn store_of_version(delta: i64) -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, store) = store();
    drop(store);
    let path = dir.path().join(".labbook");
    let db = rusqlite::Connection::open(path.join(DB_FILE)).unwrap();
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    db.execute_batch(&format!("PRAGMA user_version = {}", version + delta))
        .unwrap();
    (dir, path)
}

/// A store a newer labbook wrote is refused with what to do, not misread.
#[test]
fn a_store_from_a_newer_labbook_is_refused() {
    let (_dir, path) = store_of_version(1);
    let Err(e) = SqliteStore::open(&path) else {
        panic!("a newer store opened");
    };
    assert!(matches!(e, StoreError::NewerStore { .. }), "{e}");
    assert!(e.to_string().contains("upgrade labbook"), "{e}");
}

#[test]
fn a_backup_holds_the_runs_and_the_files_and_reads_on_its_own() {
    let (dir, store) = store();
    let run = store.create_run(&new_run("p")).unwrap();
    let mut writer = SeriesWriter::default();
    let curve = series(0..1_000, |i| i as f64 / 7.0);
    log(
        &store,
        &mut writer,
        &run.id,
        vec![("loss".into(), curve)],
        true,
    );
    store
        .put_artifact("model/weights.bin", &mut &b"weights"[..], 1)
        .unwrap();
    let dest = dir.path().join("copies").join("first");
    let report = store.backup(&dest).unwrap();
    assert_eq!(report.dest, dest);
    assert!(report.files >= 2, "{report:?}"); // .gitignore and the blob
    // Taken again into the same place: refused, the first copy untouched.
    assert!(matches!(store.backup(&dest), Err(StoreError::Conflict(_))));
    drop(store);
    std::fs::remove_dir_all(dir.path().join(".labbook")).unwrap();
    let copy = SqliteStore::open(&dest).unwrap();
    assert!(copy.read_only().is_none());
    let got = copy.get_run(&run.id).unwrap();
    assert_eq!(got.metrics["loss"].count, 1_000);
    let (mut file, size) = copy.open_artifact("model/weights.bin").unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).unwrap();
    assert_eq!((bytes.as_slice(), size), (&b"weights"[..], 7));
    let leftovers: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["first"], "a partial copy was left behind");
}

#[test]
fn a_store_opened_read_only_reads_and_refuses_every_write() {
    let (dir, store) = store();
    let run = store.create_run(&new_run("p")).unwrap();
    drop(store);
    let store = SqliteStore::open_read_only(&dir.path().join(".labbook")).unwrap();
    assert!(store.read_only().is_some() && !store.log_unread());
    assert_eq!(store.get_run(&run.id).unwrap().id, run.id);
    assert!(matches!(
        store.check_writable(),
        Err(StoreError::ReadOnly(_))
    ));
    let refused = store.create_run(&new_run("p")).unwrap_err();
    assert!(matches!(refused, StoreError::ReadOnly(_)), "{refused}");
    assert!(refused.to_string().contains("labbook backup"), "{refused}");
    let tag = RunPatch {
        add_tags: vec!["t".into()],
        ..Default::default()
    };
    assert!(matches!(
        store.update_run(&run.id, &tag),
        Err(StoreError::ReadOnly(_))
    ));
}

#[test]
fn an_older_store_that_cannot_be_written_says_it_needs_an_upgrade() {
    let (_dir, path) = store_of_version(-1);
    let refused = SqliteStore::open_read_only(&path).err().unwrap();
    assert!(matches!(refused, StoreError::ReadOnly(_)), "{refused}");
    assert!(refused.to_string().contains("older labbook"), "{refused}");
}
