//! `make bench`'s Rust half: the series engine through the real SQLite
//! store. Prints one JSON object per figure (median over repetitions) for
//! bench/report.py to tabulate; the machine is shared and noisy, so every
//! figure is a median and the ranges are printed too.

#![allow(clippy::unwrap_used)] // a benchmark that cannot set up should stop

use std::time::{Duration, Instant};

use labbook_core::{Point, SeriesColumns};
use labbook_store::series::SeriesWriter;
use labbook_store::{NewRun, SqliteStore, StepRange, Store, WriteSet};

/// A deterministic xorshift generator: the same curves every run.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal (Irwin–Hall with 4 terms).
    fn noise(&mut self) -> f64 {
        (self.next_f64() + self.next_f64() + self.next_f64() + self.next_f64() - 2.0) * 0.866
    }
}

/// A training-loss-like curve: decay plus noise, logged every ~3 ms.
fn curve(n: usize, float32: bool, seed: u64) -> SeriesColumns {
    let mut rng = Rng(seed);
    let mut s = SeriesColumns::with_capacity(n);
    let mut ts = 1_763_800_000_000i64;
    for i in 0..n {
        ts += 2 + (rng.next_f64() * 3.0) as i64;
        let v = 2.0 * (-(i as f64) / 150_000.0).exp() + 0.1 + 0.02 * rng.noise();
        let value = if float32 { v as f32 as f64 } else { v };
        s.push(Point {
            step: i as i64,
            ts_ms: ts,
            value,
        });
    }
    s
}

fn write_series(store: &SqliteStore, run_id: &str, key: &str, series: SeriesColumns) {
    let writer = SeriesWriter::new();
    let plan = writer.plan(vec![(key.to_string(), series)], true).unwrap();
    let write = WriteSet {
        run_id: run_id.to_string(),
        series: plan,
        ..Default::default()
    };
    store.commit(&write).unwrap();
}

fn new_run(store: &SqliteStore) -> String {
    store
        .create_run(&NewRun {
            project: "bench".into(),
            created_ms: 0,
            ..Default::default()
        })
        .unwrap()
        .id
}

fn median(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    (xs[xs.len() / 2], xs[0], xs[xs.len() - 1])
}

fn report(name: &str, unit: &str, samples: Vec<f64>) {
    let (med, lo, hi) = median(samples);
    println!(
        r#"{{"figure": "{name}", "unit": "{unit}", "median": {med}, "min": {lo}, "max": {hi}}}"#
    );
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 1_000_000;

    // Ingest: encode + commit of 1M points (one key), fresh run each time.
    let store = SqliteStore::open(&tmp.path().join("ingest")).unwrap();
    let data = curve(n, false, 1);
    let mut rates = Vec::new();
    for _ in 0..15 {
        let run = new_run(&store);
        let copy = data.clone();
        let started = Instant::now();
        write_series(&store, &run, "loss", copy);
        rates.push(n as f64 / secs(started.elapsed()));
    }
    report("rust_ingest", "points/s", rates);

    // Disk bytes per point: one 1M-point curve in an otherwise empty store.
    for (name, float32) in [("disk_noisy_f64", false), ("disk_f32_valued", true)] {
        let dir = tmp.path().join(name);
        let store = SqliteStore::open(&dir).unwrap();
        let run = new_run(&store);
        store.checkpoint().unwrap();
        let empty = store.disk_bytes();
        write_series(&store, &run, "loss", curve(n, float32, 2));
        store.checkpoint().unwrap();
        let bytes = store.disk_bytes() - empty;
        report(name, "bytes/point", vec![bytes as f64 / n as f64]);
    }

    // Read a full 1M-point history.
    let store = SqliteStore::open(&tmp.path().join("read")).unwrap();
    let run = new_run(&store);
    write_series(&store, &run, "loss", curve(n, false, 3));
    let mut times = Vec::new();
    for _ in 0..15 {
        let started = Instant::now();
        let s = store.read_series(&run, "loss", StepRange::ALL).unwrap();
        times.push(secs(started.elapsed()) * 1e3);
        assert_eq!(s.len(), n);
    }
    report("read_1m", "ms", times);

    // A 1,000-bucket min/max downsample of a 10M-point series.
    let big = 10_000_000;
    let run = new_run(&store);
    let mut writer = SeriesWriter::new();
    for part in 0..10 {
        let mut s = curve(big / 10, false, 10 + part as u64);
        for step in &mut s.steps {
            *step += (part * big / 10) as i64;
        }
        let plan = writer.plan(vec![("loss".into(), s)], part == 9).unwrap();
        let write = WriteSet {
            run_id: run.clone(),
            series: plan,
            ..Default::default()
        };
        let ids = store.commit(&write).unwrap().unwrap();
        writer.apply(write.series, &ids);
    }
    let mut times = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        let (s, _) = store
            .downsample(&run, "loss", StepRange::ALL, 1000, true)
            .unwrap();
        times.push(secs(started.elapsed()) * 1e3);
        assert!(s.len() <= 4000 && s.len() >= 1000);
    }
    report("downsample_10m", "ms", times);
}
