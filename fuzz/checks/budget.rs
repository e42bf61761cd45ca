// The stable stand-in for a fuzzer's time budget, shared by `include!` with
// the `fuzz_budget_*` tests that `make test-fuzz` runs (they are #[ignore]d
// in a plain `cargo test`): a target's structure-aware proptest generator,
// with fresh random seeds, until LABBOOK_FUZZ_SECONDS (default 10) have
// passed. A failure is shrunk to its smallest input, which is written to
// fuzz/artifacts/TARGET/, where `make fuzz` leaves its crashes: the libFuzzer
// target takes it as it is (`cargo +nightly fuzz run TARGET FILE`).

use std::path::Path;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

pub fn seconds() -> f64 {
    std::env::var("LABBOOK_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(10.0)
}

/// Runs `test` on values of `strategy` for `seconds()`; `input` turns a
/// value into the bytes the fuzz target `target` takes.
pub fn fuzz_for<S: Strategy>(
    target: &str,
    strategy: S,
    input: impl Fn(&S::Value) -> Vec<u8>,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    const BATCH: u32 = 32;
    let budget = Duration::from_secs_f64(seconds());
    let start = Instant::now();
    let config = Config {
        cases: BATCH,
        failure_persistence: None,
        ..Config::default()
    };
    let mut cases = 0u64;
    while start.elapsed() < budget {
        // A runner counts its successes across calls and stops at `cases`:
        // each batch needs a fresh one (and gets a fresh random seed).
        let mut runner = TestRunner::new(config.clone());
        match runner.run(&strategy, &test) {
            Ok(()) => cases += u64::from(BATCH),
            Err(TestError::Fail(reason, value)) => {
                let bytes = input(&value);
                let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../fuzz/artifacts")
                    .join(target);
                let hash = bytes
                    .iter()
                    .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
                    });
                let file = dir.join(format!("stable-{hash:016x}"));
                let saved = std::fs::create_dir_all(&dir)
                    .and_then(|()| std::fs::write(&file, &bytes))
                    .map_or_else(|e| format!("not saved: {e}"), |()| file.display().to_string());
                panic!(
                    "fuzz {target}: failed after {cases} cases: {reason}\n\
                     input ({saved}): {:?}\n{value:#?}",
                    String::from_utf8_lossy(&bytes)
                );
            }
            Err(TestError::Abort(reason)) => panic!("fuzz {target}: aborted: {reason}"),
        }
    }
    eprintln!(
        "fuzz {target}: {cases} generated cases in {:.1} s, none failed",
        start.elapsed().as_secs_f64()
    );
}
