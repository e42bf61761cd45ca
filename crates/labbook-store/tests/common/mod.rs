//! What the store's test targets share: the stores a conformance test runs
//! against, and throwaway PostgreSQL servers.
// Each test target uses a part of this module; the rest is not dead code.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use labbook_core::{Point, SeriesColumns};
use labbook_store::series::SeriesWriter;
use labbook_store::{NewRun, SqliteStore, Store, WriteSet};

#[cfg(feature = "postgres")]
pub mod cluster;

/// One test's own empty store, on one backend. Every `open` is another
/// connection to it, as another process or replica makes.
pub enum Backend {
    Sqlite {
        dir: tempfile::TempDir,
    },
    #[cfg(feature = "postgres")]
    Postgres {
        url: String,
        /// The folder the database's artifact contents are kept in.
        contents: tempfile::TempDir,
    },
}

impl Backend {
    pub fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        SqliteStore::open(&dir.path().join(".labbook")).unwrap();
        Backend::Sqlite { dir }
    }

    /// A fresh database in this process's throwaway cluster; `None` (the
    /// test passes, saying why) where PostgreSQL cannot run.
    pub fn postgres() -> Option<Backend> {
        #[cfg(feature = "postgres")]
        {
            let url = cluster::fresh_database()?;
            let contents = tempfile::tempdir().unwrap();
            labbook_store::PgStore::connect(&url)
                .unwrap()
                .use_artifact_location(&labbook_store::ArtifactLocation::Folder(
                    contents.path().to_path_buf(),
                ))
                .unwrap();
            Some(Backend::Postgres { url, contents })
        }
        #[cfg(not(feature = "postgres"))]
        {
            eprintln!("skipped: built without the `postgres` feature");
            None
        }
    }

    pub fn open(&self) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite { dir } => {
                Arc::new(SqliteStore::open(&dir.path().join(".labbook")).unwrap())
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres { url, .. } => {
                Arc::new(labbook_store::PgStore::connect(url).unwrap())
            }
        }
    }

    /// The folder holding the store's content-addressed files.
    pub fn contents(&self) -> PathBuf {
        match self {
            Backend::Sqlite { dir } => dir.path().join(".labbook/artifacts/blobs"),
            #[cfg(feature = "postgres")]
            Backend::Postgres { contents, .. } => contents.path().to_path_buf(),
        }
    }

    /// Whether a freed row id may be given to a later row (SQLite's
    /// rowids); PostgreSQL's sequences never give an id twice.
    pub fn reuses_ids(&self) -> bool {
        matches!(self, Backend::Sqlite { .. })
    }
}

/// A run of host `h`, process 1, created at 1 s.
pub fn new_run(project: &str) -> NewRun {
    NewRun {
        project: project.into(),
        created_ms: 1_000,
        host: Some("h".into()),
        pid: Some(1),
        ..Default::default()
    }
}

/// Points over `range`, valued by `f`, each step's time 5 s + step ms.
pub fn series(range: std::ops::Range<i64>, f: impl Fn(i64) -> f64) -> SeriesColumns {
    let mut s = SeriesColumns::default();
    for i in range {
        s.push(Point {
            step: i,
            ts_ms: 5_000 + i,
            value: f(i),
        });
    }
    s
}

/// Commits `new` through `writer` as one flush, sealing its tails if `seal`.
pub fn log(
    store: &dyn Store,
    writer: &mut SeriesWriter,
    run: &str,
    new: Vec<(String, SeriesColumns)>,
    seal: bool,
) {
    let plan = writer.plan(new, seal).unwrap();
    let write = WriteSet {
        run_id: run.into(),
        series: plan,
        heartbeat_ms: Some(9_000),
        ..Default::default()
    };
    let ids = store.commit(&write).unwrap().unwrap();
    writer.apply(write.series, &ids);
}

/// Equal points, NaN values included.
pub fn same(a: &SeriesColumns, b: &SeriesColumns) -> bool {
    let bits = |c: &SeriesColumns| c.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    a.steps == b.steps && a.ts_ms == b.ts_ms && bits(a) == bits(b)
}

/// The points of a long run's curve: noise over a decay, with spikes, a
/// dip and a gap of NaNs, over more than one sealed chunk.
pub const LONG_RUN: i64 = 300_000;
pub const LONG_RUN_SPIKES: [i64; 6] = [1_000, 65_535, 66_300, 131_071, 200_000, 299_999];

pub fn long_run_value(i: i64) -> f64 {
    if LONG_RUN_SPIKES.contains(&i) {
        1_000.0 + i as f64
    } else if i == 150_000 {
        -500.0
    } else if (180_000..180_040).contains(&i) {
        f64::NAN
    } else {
        ((i * 7_919) % 1_000) as f64 / 1_000.0 + (-(i as f64) / 90_000.0).exp()
    }
}

/// Logs the long curve, sealed, to a new run: its id and every point as
/// read back.
pub fn log_long_run(store: &dyn Store) -> (String, SeriesColumns) {
    let run = store.create_run(&new_run("p")).unwrap();
    log(
        store,
        &mut SeriesWriter::new(),
        &run.id,
        vec![("y".into(), series(0..LONG_RUN, long_run_value))],
        true,
    );
    let all = store
        .read_series(&run.id, "y", labbook_store::StepRange::ALL)
        .unwrap();
    (run.id, all)
}

/// The long run downsampled from every one of its points (`all`), no
/// sketch read: what a sketched answer is measured against.
pub fn downsampled_from_every_point(all: &SeriesColumns, buckets: usize) -> SeriesColumns {
    let mut d = labbook_store::series::Downsampler::new(0, LONG_RUN - 1, buckets);
    d.add(all);
    d.finish()
}

/// Declares each listed conformance test once per backend:
/// `sqlite::NAME` and `postgres::NAME`, each on a store of its own.
#[allow(unused_macros)] // only `conformance` declares tests with it
macro_rules! on_every_backend {
    ($($module:ident :: $test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $test() {
                    super::$module::$test(&$crate::common::Backend::sqlite());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $test() {
                    if let Some(backend) = $crate::common::Backend::postgres() {
                        super::$module::$test(&backend);
                    }
                }
            )*
        }
    };
}
