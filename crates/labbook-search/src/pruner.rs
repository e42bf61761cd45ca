//! Pruners: whether a running trial should stop early, judged from the
//! values it and the other trials reported on the way.
//!
//! The median (percentile), successive-halving (ASHA) and hyperband pruners
//! decide as Optuna's do, for a trial that asks after each report. Optuna
//! keeps the value a trial had when it reached each rung in the trial's
//! attributes; here it is read back from the reports (the value at the
//! first reported step at or past the rung), so a pruner needs no state of
//! its own and a worker restarted after a crash decides as before. W&B's
//! `early_terminate` hyperband decides as W&B's sweep controller does,
//! counting iterations as the number of finite values logged.

use serde::{Deserialize, Serialize};

use crate::sweep::HyperbandSpec;
use crate::trial::{AsObservation, Direction, Observation, TrialState};

/// A pruner and its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Pruner {
    #[default]
    None,
    /// Stop a trial whose best value so far is worse than the percentile of
    /// the complete trials' values at the same step (50: the median).
    Percentile(PercentileSettings),
    /// Asynchronous successive halving.
    Asha(AshaSettings),
    Hyperband(HyperbandSettings),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PercentileSettings {
    pub percentile: f64,
    pub n_startup_trials: usize,
    pub n_warmup_steps: i64,
    pub interval_steps: i64,
    pub n_min_trials: usize,
}

impl Default for PercentileSettings {
    fn default() -> Self {
        PercentileSettings {
            percentile: 50.0,
            n_startup_trials: 5,
            n_warmup_steps: 0,
            interval_steps: 1,
            n_min_trials: 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AshaSettings {
    /// The first rung's step; `None` is Optuna's "auto": the longest
    /// complete trial's last step / 100, at least 1.
    pub min_resource: Option<i64>,
    pub reduction_factor: u32,
    pub min_early_stopping_rate: u32,
    pub bootstrap_count: usize,
}

impl Default for AshaSettings {
    fn default() -> Self {
        AshaSettings {
            min_resource: None,
            reduction_factor: 4,
            min_early_stopping_rate: 0,
            bootstrap_count: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HyperbandSettings {
    pub min_resource: i64,
    /// `None`: the longest complete trial's last step + 1.
    pub max_resource: Option<i64>,
    pub reduction_factor: u32,
    pub bootstrap_count: usize,
}

impl Default for HyperbandSettings {
    fn default() -> Self {
        HyperbandSettings {
            min_resource: 1,
            max_resource: None,
            reduction_factor: 3,
            bootstrap_count: 0,
        }
    }
}

impl Pruner {
    /// Parses a pruner's name as `labbook.study(pruner=…)` takes it.
    pub fn by_name(name: &str) -> Option<Pruner> {
        Some(match name.to_ascii_lowercase().as_str() {
            "none" | "nop" | "" => Pruner::None,
            "median" => Pruner::Percentile(PercentileSettings::default()),
            "asha" | "sha" | "successive_halving" => Pruner::Asha(AshaSettings::default()),
            "hyperband" => Pruner::Hyperband(HyperbandSettings::default()),
            _ => return None,
        })
    }

    /// Whether `trial` (running, its last report just made) should stop.
    /// `study` names the study (hyperband's brackets hash it); `history`
    /// holds every trial of the study, `trial` among them or not.
    pub fn should_prune(
        &self,
        study: &str,
        trial: &Observation,
        history: &[impl AsObservation],
        direction: Direction,
    ) -> bool {
        match self {
            Pruner::None => false,
            Pruner::Percentile(s) => percentile_prune(s, trial, history, direction),
            Pruner::Asha(s) => {
                let min_resource = match s.min_resource {
                    Some(m) => m,
                    None => match auto_min_resource(history) {
                        Some(m) => m,
                        None => return false,
                    },
                };
                sha_prune(
                    trial,
                    history.iter().map(AsObservation::obs),
                    direction,
                    min_resource,
                    s.reduction_factor,
                    s.min_early_stopping_rate,
                    s.bootstrap_count,
                )
            }
            Pruner::Hyperband(s) => hyperband_prune(s, study, trial, history, direction),
        }
    }
}

/// numpy's `nanpercentile` with linear interpolation.
fn percentile_of(values: &mut [f64], q: f64) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let finite: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if finite.is_empty() {
        return None;
    }
    let pos = (finite.len() - 1) as f64 * q / 100.0;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    Some(finite[lo] + (finite[hi] - finite[lo]) * frac)
}

fn percentile_prune(
    s: &PercentileSettings,
    trial: &Observation,
    history: &[impl AsObservation],
    direction: Direction,
) -> bool {
    let complete: Vec<&Observation> = history
        .iter()
        .map(AsObservation::obs)
        .filter(|o| o.state() == TrialState::Complete && o.number != trial.number)
        .collect();
    if complete.is_empty() || complete.len() < s.n_startup_trials {
        return false;
    }
    let Some((step, _)) = trial.last_intermediate() else {
        return false;
    };
    if step < s.n_warmup_steps {
        return false;
    }
    let interval = s.interval_steps.max(1);
    let nearest = (step - s.n_warmup_steps).div_euclid(interval) * interval + s.n_warmup_steps;
    let second_last = trial
        .intermediate
        .iter()
        .map(|&(st, _)| st)
        .filter(|&st| st != step)
        .max()
        .unwrap_or(-1);
    if second_last >= nearest {
        return false;
    }
    let finite = trial
        .intermediate
        .iter()
        .map(|&(_, v)| v)
        .filter(|v| !v.is_nan());
    let best = match direction {
        Direction::Minimize => {
            finite.fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))))
        }
        Direction::Maximize => {
            finite.fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        }
    };
    let Some(best) = best else {
        return true;
    };
    let mut values: Vec<f64> = complete
        .iter()
        .filter_map(|o| o.intermediate_at(step))
        .collect();
    if values.len() < s.n_min_trials.max(1) {
        return false;
    }
    let q = match direction {
        Direction::Minimize => s.percentile,
        Direction::Maximize => 100.0 - s.percentile,
    };
    let Some(p) = percentile_of(&mut values, q) else {
        return false;
    };
    match direction {
        Direction::Minimize => best > p,
        Direction::Maximize => best < p,
    }
}

fn auto_min_resource(history: &[impl AsObservation]) -> Option<i64> {
    history
        .iter()
        .map(AsObservation::obs)
        .filter(|o| o.state() == TrialState::Complete)
        .filter_map(|o| o.last_intermediate().map(|(s, _)| s))
        .max()
        .map(|m| (m / 100).max(1))
}

/// The value a trial had when it reached a rung: its report at the first
/// step at or past the rung's step.
fn rung_value(o: &Observation, promotion_step: i64) -> Option<f64> {
    let i = o.intermediate.partition_point(|&(s, _)| s < promotion_step);
    o.intermediate.get(i).map(|&(_, v)| v)
}

fn sha_prune<'a>(
    trial: &Observation,
    others: impl Iterator<Item = &'a Observation> + Clone,
    direction: Direction,
    min_resource: i64,
    reduction_factor: u32,
    min_early_stopping_rate: u32,
    bootstrap_count: usize,
) -> bool {
    let Some((step, value)) = trial.last_intermediate() else {
        return false;
    };
    // Rungs reached before this report were judged then.
    let previous = trial
        .intermediate
        .len()
        .checked_sub(2)
        .map(|i| trial.intermediate[i].0);
    let rf = f64::from(reduction_factor.max(2));
    for rung in 0u32.. {
        let promotion_step =
            (min_resource as f64 * rf.powi((min_early_stopping_rate + rung) as i32)) as i64;
        if step < promotion_step {
            return false;
        }
        if previous.is_some_and(|p| p >= promotion_step) {
            continue;
        }
        if value.is_nan() {
            return true;
        }
        let mut competing: Vec<f64> = others
            .clone()
            .filter(|o| o.number != trial.number)
            .filter_map(|o| rung_value(o, promotion_step))
            .collect();
        competing.push(value);
        if competing.len() <= bootstrap_count {
            return true;
        }
        let idx = (competing.len() / reduction_factor.max(2) as usize).saturating_sub(1);
        competing.sort_by(f64::total_cmp);
        let promotable = match direction {
            Direction::Minimize => value <= competing[idx],
            Direction::Maximize => value >= competing[competing.len() - 1 - idx],
        };
        if !promotable {
            return true;
        }
        if rung > 62 {
            return false;
        }
    }
    false
}

/// Optuna's hyperband: brackets of successive halving with different
/// first rungs; a trial's bracket is a hash of the study's name and its
/// number, and it competes only within its bracket.
fn hyperband_prune(
    s: &HyperbandSettings,
    study: &str,
    trial: &Observation,
    history: &[impl AsObservation],
    direction: Direction,
) -> bool {
    let max_resource = match s.max_resource {
        Some(m) => m,
        None => match history
            .iter()
            .map(AsObservation::obs)
            .filter(|o| o.state() == TrialState::Complete)
            .filter_map(|o| o.last_intermediate().map(|(st, _)| st))
            .max()
        {
            Some(m) => m + 1,
            None => return false,
        },
    };
    let budgets = hyperband_budgets(s.min_resource, max_resource, s.reduction_factor);
    let bracket_of = |number: u64| bracket(&budgets, study, number);
    let mine = bracket_of(trial.number);
    let same: Vec<&Observation> = history
        .iter()
        .map(AsObservation::obs)
        .filter(|o| bracket_of(o.number) == mine)
        .collect();
    sha_prune(
        trial,
        same.iter().copied(),
        direction,
        s.min_resource,
        s.reduction_factor,
        mine as u32,
        s.bootstrap_count,
    )
}

/// Each bracket's budget: `ceil(n · rf^s / (s + 1))` for `s = n−1−b`.
pub fn hyperband_budgets(min_resource: i64, max_resource: i64, reduction_factor: u32) -> Vec<u64> {
    let rf = f64::from(reduction_factor.max(2));
    let ratio = (max_resource as f64 / min_resource.max(1) as f64).max(1.0);
    let n = (ratio.ln() / rf.ln()).floor() as i64 + 1;
    let n = n.clamp(1, 32);
    (0..n)
        .map(|b| {
            let s = n - 1 - b;
            ((n as f64) * rf.powi(s as i32) / (s + 1) as f64).ceil() as u64
        })
        .collect()
}

fn bracket(budgets: &[u64], study: &str, number: u64) -> usize {
    let total: u64 = budgets.iter().sum::<u64>().max(1);
    let mut k = i64::try_from(u64::from(crc32(format!("{study}_{number}").as_bytes())) % total)
        .unwrap_or(0);
    for (b, budget) in budgets.iter().enumerate() {
        k -= *budget as i64;
        if k < 0 {
            return b;
        }
    }
    budgets.len().saturating_sub(1)
}

/// CRC-32 (IEEE), as zlib computes it: what Optuna hashes a trial with.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// One trial as W&B's hyperband sees it: whether it is still running and
/// its metric's finite values, one per logged row.
pub struct BandTrial<'a> {
    pub running: bool,
    pub values: &'a [f64],
}

/// W&B's `early_terminate: hyperband` decision over a sweep's trials: the
/// indexes of the running trials to stop. At each band B the cutoff is the
/// value at `int(len/eta)` of the sorted B-th values of every trial (in
/// any state) that reached B; a running trial past a band is stopped when
/// its value there (strict) or its best so far is worse than the cutoff of
/// the last band it reached.
pub fn wandb_hyperband_stops(
    spec: &HyperbandSpec,
    goal: Direction,
    trials: &[BandTrial<'_>],
) -> Vec<usize> {
    let losses: Vec<Vec<f64>> = trials
        .iter()
        .map(|t| {
            t.values
                .iter()
                .filter(|v| v.is_finite())
                .map(|v| goal.loss(*v))
                .collect()
        })
        .collect();
    let cutoffs: Vec<f64> = spec
        .bands
        .iter()
        .map(|&band| {
            let mut pool: Vec<f64> = losses
                .iter()
                .filter(|h| h.len() as u64 >= band && band >= 1)
                .map(|h| h[band as usize - 1])
                .collect();
            if pool.is_empty() {
                return f64::INFINITY;
            }
            pool.sort_by(f64::total_cmp);
            let i = ((pool.len() as f64) / spec.eta) as usize;
            pool[i.min(pool.len() - 1)]
        })
        .collect();
    let mut stop = Vec::new();
    for (i, (t, h)) in trials.iter().zip(&losses).enumerate() {
        if !t.running {
            continue;
        }
        let Some(b) = spec
            .bands
            .iter()
            .rposition(|&band| band >= 1 && band <= h.len() as u64)
        else {
            continue;
        };
        let cond = if spec.strict {
            h[spec.bands[b] as usize - 1]
        } else {
            h.iter().copied().fold(f64::INFINITY, f64::min)
        };
        if cond > cutoffs[b] {
            stop.push(i);
        }
    }
    stop
}

#[cfg(test)]
mod tests;
