//! The rules of a replay: whether a replay reproduced the run it replays
//! (curves compared at matching steps, a verdict per metric and overall),
//! the tolerance it is judged by, and how a `--set KEY=VALUE` reaches the
//! replayed command line. No I/O: the CLI reads the curves and runs the
//! program.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::metric::SeriesColumns;

/// The kv tag that links a replay to the run it replays.
pub const REPLAY_OF_TAG: &str = "labbook.replay_of";
/// The kv tag holding a replay's overall verdict.
pub const VERDICT_TAG: &str = "labbook.replay_verdict";
/// The label every replay carries.
pub const REPLAY_LABEL: &str = "replay";
/// The document kind that holds a replay's full check, keyed by its run id.
pub const CHECK_DOCUMENT: &str = "replay_check";

/// How far a replayed value may be from the original's and still count as
/// reproduced: `|a - b| <= max(rel * max(|a|, |b|), abs)`, as
/// `math.isclose` has it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    pub rel: f64,
    pub abs: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            rel: 1e-6,
            abs: 0.0,
        }
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: f64| {
            if v == 0.0 {
                "0".to_owned()
            } else {
                format!("{v:e}")
            }
        };
        write!(f, "rel={}, abs={}", show(self.rel), show(self.abs))
    }
}

impl std::str::FromStr for Tolerance {
    type Err = ValidationError;

    /// `rel=1e-6,abs=1e-9`; either part may be left out (it keeps its
    /// default).
    fn from_str(text: &str) -> Result<Tolerance, ValidationError> {
        let bad = |why: String| ValidationError::new("tolerance", why);
        let mut tolerance = Tolerance::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(bad(format!(
                    "expected rel=R or abs=A, got {part:?} (for example rel=1e-6,abs=1e-9)"
                )));
            };
            let value: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| bad(format!("{key} must be a number ≥ 0, got {value:?}")))?;
            match key.trim() {
                "rel" => tolerance.rel = value,
                "abs" => tolerance.abs = value,
                other => {
                    return Err(bad(format!("unknown part {other:?}; use rel=R and abs=A")));
                }
            }
        }
        Ok(tolerance)
    }
}

/// What became of one metric in the replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Verdict {
    /// Every point bit for bit, at the same steps.
    Reproduced,
    /// The same steps, every value within the tolerance.
    WithinTolerance,
    /// The first step where the curves part beyond the tolerance, or where
    /// one has a point and the other none.
    Diverged { step: i64 },
    /// Logged by only one of the two runs.
    Missing { in_replay: bool },
}

impl Verdict {
    /// Whether this verdict lets a check pass.
    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Reproduced | Verdict::WithinTolerance)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Reproduced => f.write_str("reproduced"),
            Verdict::WithinTolerance => f.write_str("reproduced within tolerance"),
            Verdict::Diverged { step } => write!(f, "diverged at step {step}"),
            Verdict::Missing { in_replay: true } => {
                f.write_str("missing metric (not in the replay)")
            }
            Verdict::Missing { in_replay: false } => {
                f.write_str("missing metric (not in the original)")
            }
        }
    }
}

/// One metric compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricCheck {
    pub key: String,
    pub verdict: Verdict,
    /// Steps both runs logged.
    pub compared: u64,
    pub max_abs_dev: f64,
    pub max_rel_dev: f64,
    /// The values at the divergence step (`None` where one run has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_divergence: Option<(Option<f64>, Option<f64>)>,
    pub final_original: Option<f64>,
    pub final_replay: Option<f64>,
    pub last_step_original: Option<i64>,
    pub last_step_replay: Option<i64>,
}

/// A replay judged against its original.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayCheck {
    pub original: String,
    pub replay: String,
    pub tolerance: Tolerance,
    pub metrics: Vec<MetricCheck>,
    pub verdict: Verdict,
    pub checked_ms: i64,
}

impl ReplayCheck {
    /// Judges every metric of `original` and `replay` (each key → its
    /// curve). Keys that hold only system metrics (`sys/…`) are left to
    /// the caller to drop: a machine's load never reproduces.
    pub fn judge(
        original: &str,
        replay: &str,
        tolerance: Tolerance,
        originals: &BTreeMap<String, SeriesColumns>,
        replays: &BTreeMap<String, SeriesColumns>,
        checked_ms: i64,
    ) -> ReplayCheck {
        let empty = SeriesColumns::default();
        let mut keys: Vec<&String> = originals.keys().chain(replays.keys()).collect();
        keys.sort();
        keys.dedup();
        let metrics: Vec<MetricCheck> = keys
            .into_iter()
            .map(|key| {
                let a = originals.get(key);
                let b = replays.get(key);
                let mut check =
                    compare_curves(key, a.unwrap_or(&empty), b.unwrap_or(&empty), tolerance);
                if a.is_none() || b.is_none() {
                    check.verdict = Verdict::Missing {
                        in_replay: b.is_none(),
                    };
                }
                check
            })
            .collect();
        let verdict = overall(&metrics);
        ReplayCheck {
            original: original.to_owned(),
            replay: replay.to_owned(),
            tolerance,
            metrics,
            verdict,
            checked_ms,
        }
    }

    pub fn passed(&self) -> bool {
        self.verdict.passed()
    }
}

/// The overall verdict: the earliest divergence, else a missing metric,
/// else the weakest pass. No metric at all is a missing metric.
fn overall(metrics: &[MetricCheck]) -> Verdict {
    let first_divergence = metrics
        .iter()
        .filter_map(|m| match m.verdict {
            Verdict::Diverged { step } => Some(step),
            _ => None,
        })
        .min();
    if let Some(step) = first_divergence {
        return Verdict::Diverged { step };
    }
    if let Some(m) = metrics
        .iter()
        .find(|m| matches!(m.verdict, Verdict::Missing { .. }))
    {
        return m.verdict.clone();
    }
    if metrics.is_empty() {
        return Verdict::Missing { in_replay: true };
    }
    if metrics.iter().all(|m| m.verdict == Verdict::Reproduced) {
        Verdict::Reproduced
    } else {
        Verdict::WithinTolerance
    }
}

/// The value each step ends with (a step logged twice keeps its last
/// point), in step order. `columns` is sorted by step, as the store reads it.
fn last_per_step(columns: &SeriesColumns) -> Vec<(i64, f64)> {
    let mut out: Vec<(i64, f64)> = Vec::with_capacity(columns.steps.len());
    for (&step, &value) in columns.steps.iter().zip(&columns.values) {
        match out.last_mut() {
            Some(last) if last.0 == step => last.1 = value,
            _ => out.push((step, value)),
        }
    }
    out
}

fn same_bits(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Absolute and relative deviation; `None` when one side is NaN or an
/// infinity the other does not share (no finite deviation describes it).
fn deviation(a: f64, b: f64) -> Option<(f64, f64)> {
    if same_bits(a, b) || a == b {
        return Some((0.0, 0.0));
    }
    if !a.is_finite() || !b.is_finite() {
        return None;
    }
    let abs = (a - b).abs();
    let scale = a.abs().max(b.abs());
    Some((abs, if scale > 0.0 { abs / scale } else { 0.0 }))
}

/// Compares two curves at the steps they share; a step only one of them
/// has is where they part.
pub fn compare_curves(
    key: &str,
    original: &SeriesColumns,
    replay: &SeriesColumns,
    tolerance: Tolerance,
) -> MetricCheck {
    let a = last_per_step(original);
    let b = last_per_step(replay);
    let mut check = MetricCheck {
        key: key.to_owned(),
        verdict: Verdict::Reproduced,
        compared: 0,
        max_abs_dev: 0.0,
        max_rel_dev: 0.0,
        at_divergence: None,
        final_original: a.last().map(|p| p.1),
        final_replay: b.last().map(|p| p.1),
        last_step_original: a.last().map(|p| p.0),
        last_step_replay: b.last().map(|p| p.0),
    };
    let mut identical = true;
    let mut diverged: Option<(i64, Option<f64>, Option<f64>)> = None;
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let (step, va, vb) = match (a.get(i), b.get(j)) {
            (Some(&(sa, va)), Some(&(sb, vb))) if sa == sb => {
                i += 1;
                j += 1;
                (sa, Some(va), Some(vb))
            }
            (Some(&(sa, va)), Some(&(sb, _))) if sa < sb => {
                i += 1;
                (sa, Some(va), None)
            }
            (Some(_), Some(&(sb, vb))) => {
                j += 1;
                (sb, None, Some(vb))
            }
            (Some(&(sa, va)), None) => {
                i += 1;
                (sa, Some(va), None)
            }
            (None, Some(&(sb, vb))) => {
                j += 1;
                (sb, None, Some(vb))
            }
            (None, None) => break,
        };
        let within = match (va, vb) {
            (Some(x), Some(y)) => {
                check.compared += 1;
                identical &= same_bits(x, y);
                match deviation(x, y) {
                    Some((abs, rel)) => {
                        check.max_abs_dev = check.max_abs_dev.max(abs);
                        check.max_rel_dev = check.max_rel_dev.max(rel);
                        abs <= tolerance.abs.max(tolerance.rel * x.abs().max(y.abs()))
                    }
                    None => {
                        check.max_abs_dev = f64::INFINITY;
                        check.max_rel_dev = f64::INFINITY;
                        false
                    }
                }
            }
            _ => {
                identical = false;
                false
            }
        };
        if !within && diverged.is_none() {
            diverged = Some((step, va, vb));
        }
    }
    check.verdict = match diverged {
        Some((step, va, vb)) => {
            check.at_divergence = Some((va, vb));
            Verdict::Diverged { step }
        }
        None if identical => Verdict::Reproduced,
        None => Verdict::WithinTolerance,
    };
    check
}

/// The flags a config key may be given as on a command line: `--lr` for
/// `lr`, and for `model.hidden_size` also `--model.hidden_size`,
/// `--hidden_size` and `--hidden-size`.
pub fn flag_names(key: &str) -> Vec<String> {
    let mut names = vec![format!("--{key}")];
    let last = key.rsplit('.').next().unwrap_or(key);
    for base in [key, last] {
        for variant in [
            base.to_owned(),
            base.replace('_', "-"),
            base.replace('-', "_"),
        ] {
            let flag = format!("--{variant}");
            if !names.contains(&flag) {
                names.push(flag);
            }
        }
    }
    names
}

/// Gives `key` the value `value` on the command line `argv` where it
/// appears as `--key VALUE` or `--key=VALUE` (or a flag named after its
/// last part). Returns whether it was found.
pub fn set_argument(argv: &mut [String], key: &str, value: &str) -> bool {
    let flags = flag_names(key);
    let mut found = false;
    let mut i = 1;
    while i < argv.len() {
        let arg = argv[i].clone();
        if arg == "--" {
            break;
        }
        if let Some((flag, _)) = arg.split_once('=')
            && flags.iter().any(|f| f == flag)
        {
            argv[i] = format!("{flag}={value}");
            found = true;
        } else if flags.contains(&arg) && i + 1 < argv.len() {
            argv[i + 1] = value.to_owned();
            found = true;
            i += 1;
        }
        i += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(points: &[(i64, f64)]) -> SeriesColumns {
        SeriesColumns {
            steps: points.iter().map(|p| p.0).collect(),
            ts_ms: vec![0; points.len()],
            values: points.iter().map(|p| p.1).collect(),
        }
    }

    #[test]
    fn identical_curves_reproduce() {
        let a = curve(&[(0, 1.0), (1, 0.5), (2, f64::NAN)]);
        let check = compare_curves("loss", &a, &a.clone(), Tolerance::default());
        assert_eq!(check.verdict, Verdict::Reproduced);
        assert_eq!(check.compared, 3);
        assert_eq!(check.final_original.map(f64::is_nan), Some(true));
    }

    #[test]
    fn a_small_difference_is_within_tolerance_and_a_larger_one_diverges() {
        let a = curve(&[(0, 1.0), (1, 0.5), (2, 0.25), (3, 0.125)]);
        let b = curve(&[(0, 1.0), (1, 0.5 + 1e-9), (2, 0.26), (3, 0.125)]);
        let check = compare_curves("loss", &a, &b, Tolerance::default());
        assert_eq!(check.verdict, Verdict::Diverged { step: 2 });
        assert_eq!(check.at_divergence, Some((Some(0.25), Some(0.26))));
        assert!((check.max_abs_dev - 0.01).abs() < 1e-12);
        let loose = Tolerance { rel: 0.1, abs: 0.0 };
        assert_eq!(
            compare_curves("loss", &a, &b, loose).verdict,
            Verdict::WithinTolerance
        );
    }

    #[test]
    fn a_missing_step_is_where_curves_part() {
        let a = curve(&[(0, 1.0), (1, 0.5), (2, 0.25)]);
        let b = curve(&[(0, 1.0), (1, 0.5)]);
        let check = compare_curves("loss", &a, &b, Tolerance::default());
        assert_eq!(check.verdict, Verdict::Diverged { step: 2 });
        assert_eq!(check.at_divergence, Some((Some(0.25), None)));
        // A repeated step counts by its last value.
        let c = curve(&[(0, 9.0), (0, 1.0), (1, 0.5), (2, 0.25)]);
        assert_eq!(
            compare_curves("loss", &a, &c, Tolerance::default()).verdict,
            Verdict::Reproduced
        );
    }

    #[test]
    fn nan_against_a_number_diverges() {
        let a = curve(&[(0, 1.0), (1, f64::NAN)]);
        let b = curve(&[(0, 1.0), (1, 0.5)]);
        let check = compare_curves("loss", &a, &b, Tolerance { rel: 1.0, abs: 1.0 });
        assert_eq!(check.verdict, Verdict::Diverged { step: 1 });
    }

    #[test]
    fn overall_verdicts() {
        let a = curve(&[(0, 1.0), (1, 2.0), (2, 3.0)]);
        let b = curve(&[(0, 1.0), (1, 2.5), (2, 3.0)]);
        let originals = BTreeMap::from([("x".to_owned(), a.clone()), ("y".to_owned(), a.clone())]);
        let same = ReplayCheck::judge("o", "r", Tolerance::default(), &originals, &originals, 0);
        assert_eq!(same.verdict, Verdict::Reproduced);
        assert!(same.passed());

        let replays = BTreeMap::from([("x".to_owned(), a.clone()), ("y".to_owned(), b)]);
        let check = ReplayCheck::judge("o", "r", Tolerance::default(), &originals, &replays, 0);
        assert_eq!(check.verdict, Verdict::Diverged { step: 1 });
        assert!(!check.passed());

        let only_x = BTreeMap::from([("x".to_owned(), a)]);
        let check = ReplayCheck::judge("o", "r", Tolerance::default(), &originals, &only_x, 0);
        assert_eq!(check.verdict, Verdict::Missing { in_replay: true });
        assert_eq!(
            check.verdict.to_string(),
            "missing metric (not in the replay)"
        );
    }

    #[test]
    fn tolerance_parses_and_refuses_nonsense() {
        let t: Tolerance = "rel=1e-3, abs=1e-9".parse().unwrap();
        assert_eq!(
            t,
            Tolerance {
                rel: 1e-3,
                abs: 1e-9
            }
        );
        let t: Tolerance = "abs=0.5".parse().unwrap();
        assert_eq!(t.rel, 1e-6);
        for bad in ["rel", "rel=-1", "rel=nan", "tol=1", "rel=x"] {
            let e = bad.parse::<Tolerance>().unwrap_err();
            assert_eq!(e.field(), "tolerance", "{bad}");
        }
    }

    #[test]
    fn set_argument_rewrites_flags() {
        let mut argv: Vec<String> = ["python", "train.py", "--lr", "0.3", "--hidden=32"]
            .map(String::from)
            .to_vec();
        assert!(set_argument(&mut argv, "lr", "0.1"));
        assert!(set_argument(&mut argv, "model.hidden", "64"));
        assert!(!set_argument(&mut argv, "epochs", "5"));
        assert_eq!(
            argv,
            ["python", "train.py", "--lr", "0.1", "--hidden=64"].map(String::from)
        );
        let mut argv: Vec<String> = ["t", "--batch-size", "8"].map(String::from).to_vec();
        assert!(set_argument(&mut argv, "batch_size", "16"));
        assert_eq!(argv[2], "16");
    }
}
