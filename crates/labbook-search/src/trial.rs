//! What a sampler or pruner sees of a study's trials.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A trial's state, as Optuna names them, plus `crashed`: a trial whose
/// process died without saying how it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialState {
    /// Claimed from the queue but not started (Optuna's WAITING).
    Waiting,
    Running,
    Complete,
    Pruned,
    Failed,
    Crashed,
}

impl TrialState {
    pub const ALL: [TrialState; 6] = [
        TrialState::Waiting,
        TrialState::Running,
        TrialState::Complete,
        TrialState::Pruned,
        TrialState::Failed,
        TrialState::Crashed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Waiting => "waiting",
            TrialState::Running => "running",
            TrialState::Complete => "complete",
            TrialState::Pruned => "pruned",
            TrialState::Failed => "failed",
            TrialState::Crashed => "crashed",
        }
    }

    pub fn parse(s: &str) -> Option<TrialState> {
        TrialState::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, TrialState::Waiting | TrialState::Running)
    }
}

/// Which way the objective is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Minimize,
    Maximize,
}

impl Direction {
    pub fn parse(s: &str) -> Option<Direction> {
        match s.to_ascii_lowercase().as_str() {
            "minimize" | "min" => Some(Direction::Minimize),
            "maximize" | "max" => Some(Direction::Maximize),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Minimize => "minimize",
            Direction::Maximize => "maximize",
        }
    }

    /// The value turned so that smaller is better.
    pub fn loss(self, value: f64) -> f64 {
        match self {
            Direction::Minimize => value,
            Direction::Maximize => -value,
        }
    }

    /// Whether `a` is strictly better than `b`; NaN is never better.
    pub fn better(self, a: f64, b: f64) -> bool {
        self.loss(a) < self.loss(b)
    }
}

/// One trial as the samplers and pruners read it.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Observation {
    /// The trial's number in its study, from 0.
    pub number: u64,
    pub state: Option<TrialState>,
    pub params: BTreeMap<String, Value>,
    /// The objective's value: a complete trial's result, or for a failed
    /// or crashed one the value W&B's `impute` gives it.
    pub value: Option<f64>,
    /// Values reported on the way (`trial.report`), by step, ascending.
    pub intermediate: Vec<(i64, f64)>,
}

impl Observation {
    pub fn state(&self) -> TrialState {
        self.state.unwrap_or(TrialState::Running)
    }

    /// The last reported value and its step.
    pub fn last_intermediate(&self) -> Option<(i64, f64)> {
        self.intermediate.last().copied()
    }

    /// The value reported at `step`, if one was.
    pub fn intermediate_at(&self, step: i64) -> Option<f64> {
        self.intermediate
            .binary_search_by_key(&step, |&(s, _)| s)
            .ok()
            .map(|i| self.intermediate[i].1)
    }
}

/// Anything that holds an [`Observation`]: the samplers take the store's
/// trial records as they are, without copying a study's history.
pub trait AsObservation {
    fn obs(&self) -> &Observation;
}

impl AsObservation for Observation {
    fn obs(&self) -> &Observation {
        self
    }
}

impl<T: AsObservation + ?Sized> AsObservation for &T {
    fn obs(&self) -> &Observation {
        (**self).obs()
    }
}

impl<T: AsObservation + ?Sized> AsObservation for std::sync::Arc<T> {
    fn obs(&self) -> &Observation {
        (**self).obs()
    }
}

/// A seed for one draw that depends only on the study's seed, the trial's
/// number and a salt (a parameter's name), so every worker, and a worker
/// restarted after a crash, draws the same value for the same trial.
pub fn draw_seed(study_seed: u64, number: u64, salt: &str) -> u64 {
    // FNV-1a over the salt, then two rounds of splitmix64's finalizer:
    // stable across versions and platforms, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in salt.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut x = study_seed ^ h.rotate_left(17) ^ number.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2 {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x = z ^ (z >> 31);
    }
    x
}

/// The generator every sampler draws from.
pub type SearchRng = rand_pcg::Pcg64Mcg;

pub fn rng_for(study_seed: u64, number: u64, salt: &str) -> SearchRng {
    use rand::SeedableRng;
    SearchRng::seed_from_u64(draw_seed(study_seed, number, salt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_by_trial_and_salt_and_stay_fixed() {
        let a = draw_seed(7, 1, "lr");
        assert_eq!(a, draw_seed(7, 1, "lr"));
        assert_ne!(a, draw_seed(7, 2, "lr"));
        assert_ne!(a, draw_seed(7, 1, "depth"));
        assert_ne!(a, draw_seed(8, 1, "lr"));
    }

    #[test]
    fn direction_orders_and_nan_is_never_better() {
        assert!(Direction::Maximize.better(2.0, 1.0));
        assert!(Direction::Minimize.better(1.0, 2.0));
        assert!(!Direction::Minimize.better(f64::NAN, 2.0));
    }
}
