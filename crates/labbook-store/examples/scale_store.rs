//! Builds the stores `make bench-scale` measures, through the store's own
//! API (the writes `labbook.init()` + `log()` + `finish()` make, without a
//! Python process per run):
//!
//! `scale_store DIR --runs N [--from K] [--config-keys 20] [--metrics 10]
//! [--points 100] [--project scale]` adds runs K..N to the store in DIR,
//! each with a config of `--config-keys` keys and `--metrics` noisy
//! float64 curves of `--points` points. Run i is the same whatever the
//! batch it is written in, so a store grown 1k → 10k → 100k is the store
//! built at 100k at once. Prints one JSON line: what it wrote and how fast.

#![allow(clippy::unwrap_used)] // a benchmark tool that cannot set up should stop

use std::collections::BTreeMap;
use std::time::Instant;

use labbook_core::{ConfigValue, Point, RunStatus, SeriesColumns};
use labbook_store::series::SeriesWriter;
use labbook_store::{NewRun, RunPatch, SqliteStore, StepRange, Store, WriteSet};

/// A deterministic xorshift generator.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The learning rates run i draws from: `config.lr = 0.01` picks a quarter.
pub const LRS: [f64; 4] = [0.1, 0.01, 0.001, 0.0001];

fn config(i: u64, keys: usize) -> BTreeMap<String, ConfigValue> {
    let mut rng = Rng::new(i ^ 0x00C0_FFEE);
    let mut config = BTreeMap::new();
    config.insert("lr".into(), ConfigValue::Float(LRS[(i % 4) as usize]));
    config.insert("seed".into(), ConfigValue::Int(i as i64));
    let optimizers = ["adam", "sgd", "adamw", "lion"];
    config.insert(
        "optimizer".into(),
        ConfigValue::Str(optimizers[(i / 4 % 4) as usize].into()),
    );
    for k in config.len()..keys {
        let value = match k % 3 {
            0 => ConfigValue::Int((rng.next_f64() * 1000.0) as i64),
            1 => ConfigValue::Float(rng.next_f64()),
            _ => ConfigValue::Str(format!("choice-{}", (rng.next_f64() * 8.0) as u32)),
        };
        config.insert(format!("param_{k:02}"), value);
    }
    config
}

/// Metric `m` of run i: a noisy decaying curve; `acc` (metric 0) ends near
/// a value uniform in [0, 1), so `metrics.acc > 0.99` picks 1 % of runs.
fn curve(i: u64, m: usize, points: usize, start_ms: i64) -> SeriesColumns {
    let mut rng = Rng::new(i * 131 + m as u64);
    let target = rng.next_f64();
    let mut s = SeriesColumns::with_capacity(points);
    let mut ts = start_ms;
    for step in 0..points {
        ts += 20 + (rng.next_f64() * 10.0) as i64;
        let progress = (step + 1) as f64 / points as f64;
        let noise = (rng.next_f64() - 0.5) * 0.02 * (1.0 - progress);
        let value = if m == 0 {
            target * progress.sqrt() + noise
        } else {
            (1.0 - target) * (-(step as f64) / (points as f64 / 5.0)).exp() + noise
        };
        s.push(Point {
            step: step as i64,
            ts_ms: ts,
            value,
        });
    }
    s
}

fn metric_name(m: usize) -> String {
    match m {
        0 => "acc".into(),
        1 => "loss".into(),
        m => format!("metric_{m:02}"),
    }
}

struct Args {
    dir: std::path::PathBuf,
    from: u64,
    runs: u64,
    config_keys: usize,
    metrics: usize,
    points: usize,
    project: String,
    /// Measure instead of build: open the store and read run `read`'s
    /// `acc` in full.
    read: Option<String>,
}

fn args() -> Args {
    let mut args = Args {
        dir: std::path::PathBuf::new(),
        from: 0,
        runs: 0,
        config_keys: 20,
        metrics: 10,
        points: 100,
        project: "scale".into(),
        read: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().expect("a value after each option");
        match a.as_str() {
            "--from" => args.from = value().parse().unwrap(),
            "--runs" => args.runs = value().parse().unwrap(),
            "--config-keys" => args.config_keys = value().parse().unwrap(),
            "--metrics" => args.metrics = value().parse().unwrap(),
            "--points" => args.points = value().parse().unwrap(),
            "--project" => args.project = value(),
            "--read" => args.read = Some(value()),
            dir => args.dir = dir.into(),
        }
    }
    assert!(
        !args.dir.as_os_str().is_empty(),
        "usage: scale_store DIR --runs N"
    );
    args
}

/// Opens the store and reads one run's `acc` five times: what a Rust
/// reader of a long curve waits for. Prints the open and the median read.
fn measure_read(args: &Args, run: &str) {
    let start = Instant::now();
    let store = SqliteStore::open(&args.dir).unwrap();
    let open_ms = start.elapsed().as_secs_f64() * 1e3;
    let mut reads: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let points = store.read_series(run, "acc", StepRange::ALL).unwrap();
            assert!(!points.is_empty());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    reads.sort_by(f64::total_cmp);
    println!(
        "{{\"open_ms\": {open_ms:.3}, \"read_ms\": {:.3}}}",
        reads[2]
    );
}

fn main() {
    let args = args();
    if let Some(run) = &args.read {
        return measure_read(&args, run);
    }
    let store = SqliteStore::open(&args.dir).unwrap();
    let start = Instant::now();
    // A fixed clock: run i starts at the same time in every build.
    let epoch = 1_764_000_000_000i64;
    for i in args.from..args.runs {
        let created_ms = epoch + i as i64 * 60_000;
        let run = store
            .create_run(&NewRun {
                project: args.project.clone(),
                name: Some(format!("run-{i:06}")),
                config: config(i, args.config_keys),
                created_ms,
                host: Some("bench".into()),
                pid: Some(1),
                ..Default::default()
            })
            .unwrap();
        let series: Vec<(String, SeriesColumns)> = (0..args.metrics)
            .map(|m| (metric_name(m), curve(i, m, args.points, created_ms)))
            .collect();
        let plan = SeriesWriter::new().plan(series, true).unwrap();
        let ended = created_ms + args.points as i64 * 30;
        store
            .commit(&WriteSet {
                run_id: run.id,
                series: plan,
                patch: Some(RunPatch {
                    status: Some(RunStatus::Finished),
                    ended_ms: Some(ended),
                    exit_code: Some(0),
                    ..Default::default()
                }),
                heartbeat_ms: Some(ended),
                ..Default::default()
            })
            .unwrap();
    }
    store.checkpoint().unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let written = args.runs.saturating_sub(args.from);
    let points = written * (args.metrics * args.points) as u64;
    println!(
        "{{\"runs\": {written}, \"points\": {points}, \"seconds\": {seconds:.3}, \"runs_per_s\": {:.0}, \"points_per_s\": {:.0}, \"disk_bytes\": {}}}",
        written as f64 / seconds,
        points as f64 / seconds,
        store.disk_bytes()
    );
}
