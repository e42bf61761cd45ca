//! The tree-structured Parzen estimator (TPE), as Optuna builds it.
//!
//! The finished trials are split into the best `gamma(n)` ("below") and the
//! rest ("above"); each set becomes a mixture of truncated normal kernels
//! (one per trial, plus a wide prior kernel) on every numeric axis and of
//! smoothed categorical distributions on every categorical one. Candidates
//! are drawn from the "below" mixture and the one with the greatest
//! `log l(x) − log g(x)` is suggested. With `multivariate` the kernels of a
//! group of parameters share their component, so the model sees how the
//! parameters interact; a conditional parameter is modelled from the trials
//! that have it. The defaults are Optuna's: 10 start-up trials drawn at
//! random, 24 candidates, `gamma(n) = min(ceil(0.1 n), 25)`, prior weight
//! 1, the "magic clip" of the bandwidths, Optuna's ramp of weights that
//! lets the oldest of more than 25 trials count less, and (Optuna 5's
//! defaults) `multivariate` and the constant liar on, each kernel as wide
//! as the larger gap to its neighbours.

use std::collections::{BTreeMap, BTreeSet};

use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use statrs::function::erf::{erfc, erfc_inv};

use crate::random;
use crate::space::{Domain, ParamSpec};
use crate::trial::{AsObservation, Direction, Observation, SearchRng, TrialState, rng_for};

/// TPE's settings; `Default` is Optuna's defaults with `multivariate` on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TpeSettings {
    /// Trials drawn at random before the model is used.
    pub n_startup_trials: usize,
    /// Candidates drawn from the good trials' model per suggestion.
    pub n_ei_candidates: usize,
    pub prior_weight: f64,
    pub consider_magic_clip: bool,
    pub consider_endpoints: bool,
    /// Model the parameters of a group jointly.
    pub multivariate: bool,
    /// Count a running trial as a bad one, so parallel workers spread out
    /// instead of all suggesting the same point.
    pub constant_liar: bool,
    /// Model each set of parameters that always appear together jointly
    /// (Optuna's `group=True`); off, the parameters every trial has are one
    /// joint space and conditional ones are sampled alone (its default).
    pub group: bool,
}

impl Default for TpeSettings {
    fn default() -> Self {
        TpeSettings {
            n_startup_trials: 10,
            n_ei_candidates: 24,
            prior_weight: 1.0,
            consider_magic_clip: true,
            consider_endpoints: false,
            multivariate: true,
            constant_liar: true,
            group: false,
        }
    }
}

/// Optuna's default `gamma`: how many trials count as good.
pub fn default_gamma(n: usize) -> usize {
    n.div_ceil(10).min(25)
}

/// Optuna's default weights for `n` trials in trial order: all 1 up to 25,
/// beyond that a ramp from `1/n` for the oldest up to 1 for the newest 25.
pub fn default_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp_len = n - 25;
    let mut w = Vec::with_capacity(n);
    let start = 1.0 / n as f64;
    for i in 0..ramp_len {
        let t = if ramp_len == 1 {
            0.0
        } else {
            i as f64 / (ramp_len - 1) as f64
        };
        w.push(start + t * (1.0 - start));
    }
    w.extend(std::iter::repeat_n(1.0, 25));
    w
}

/// A trial counts for the model when it finished with a value (a failed or
/// crashed trial counts when the caller imputed one), was pruned, or, with
/// the constant liar, is still running.
fn counts(o: &Observation, constant_liar: bool) -> bool {
    match o.state() {
        TrialState::Complete | TrialState::Failed | TrialState::Crashed => o.value.is_some(),
        TrialState::Pruned => true,
        TrialState::Running | TrialState::Waiting => constant_liar,
    }
}

/// How many trials have finished in a way the start-up count counts.
fn finished_count(history: &[impl AsObservation]) -> usize {
    history
        .iter()
        .map(AsObservation::obs)
        .filter(|o| {
            matches!(o.state(), TrialState::Complete | TrialState::Pruned)
                || (o.state().is_finished() && o.value.is_some())
        })
        .count()
}

/// An f64 ordered by `total_cmp`, to sort by a cached key.
#[derive(Clone, Copy, PartialEq)]
struct OrdF64(f64);

impl Eq for OrdF64 {}

impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Splits the trials into the good (`below`) and the rest, both in trial
/// order: complete trials by value, then pruned ones by how far they got
/// and their last value there, then running ones (always "above").
fn split(
    history: &[impl AsObservation],
    direction: Direction,
    constant_liar: bool,
) -> (Vec<&Observation>, Vec<&Observation>) {
    let considered: Vec<&Observation> = history
        .iter()
        .map(AsObservation::obs)
        .filter(|o| counts(o, constant_liar))
        .collect();
    let finished = considered
        .iter()
        .filter(|o| o.state().is_finished())
        .count();
    split_n(considered, direction, default_gamma(finished))
}

/// [`split`] with the number of good trials given.
fn split_n(
    considered: Vec<&Observation>,
    direction: Direction,
    n_below_total: usize,
) -> (Vec<&Observation>, Vec<&Observation>) {
    // Both sides keep trial order; the history comes in it already.
    let mut in_order = considered.clone();
    if !in_order.is_sorted_by_key(|o| o.number) {
        in_order.sort_by_key(|o| o.number);
    }
    let mut complete = Vec::new();
    let mut pruned = Vec::new();
    for o in considered {
        match o.state() {
            TrialState::Pruned => pruned.push(o),
            TrialState::Running | TrialState::Waiting => {}
            _ => complete.push(o),
        }
    }
    let loss = |v: f64| {
        let l = direction.loss(v);
        if l.is_nan() { f64::INFINITY } else { l }
    };
    // Only which trials are the best `n_below_total` matters, so a
    // selection does what a sort did; the key orders every trial, so the
    // set is the same.
    let key = |o: &&Observation| (OrdF64(loss(o.value.unwrap_or(f64::NAN))), o.number);
    let mut below_numbers: Vec<u64> = Vec::with_capacity(n_below_total);
    if n_below_total > 0 && n_below_total < complete.len() {
        complete.select_nth_unstable_by_key(n_below_total - 1, key);
        below_numbers.extend(complete[..n_below_total].iter().map(|o| o.number));
    } else if n_below_total > 0 {
        below_numbers.extend(complete.iter().map(|o| o.number));
        // A pruned trial that got further ranks first; among equals, the
        // better last value; one that reported nothing ranks last.
        let left = n_below_total.saturating_sub(complete.len());
        if left > 0 {
            let pruned_key = |o: &Observation| match o.last_intermediate() {
                Some((step, v)) => (0u8, -step, loss(v)),
                None => (1u8, 0, f64::INFINITY),
            };
            pruned.sort_by(|a, b| {
                let (ka, kb) = (pruned_key(a), pruned_key(b));
                ka.0.cmp(&kb.0)
                    .then(ka.1.cmp(&kb.1))
                    .then(ka.2.total_cmp(&kb.2))
                    .then(a.number.cmp(&b.number))
            });
            below_numbers.extend(pruned.iter().take(left).map(|o| o.number));
        }
    }
    below_numbers.sort_unstable();
    let (below, above): (Vec<&Observation>, Vec<&Observation>) = in_order
        .into_iter()
        .partition(|o| below_numbers.binary_search(&o.number).is_ok());
    (below, above)
}

/// One parameter's axis: the domain's values on the scale the kernels use
/// (logarithmic for a log domain; a stepped domain widened by half a step
/// each side so its end values get whole bins).
#[derive(Clone, Copy, Debug)]
enum Axis {
    Numeric {
        low: f64,
        high: f64,
        /// The bin width of a stepped domain.
        step: Option<f64>,
        /// A log-scaled int: each integer v is the bin [ln(v−½), ln(v+½)].
        log_int: bool,
    },
    Categorical {
        n: usize,
    },
}

fn axis(domain: &Domain) -> Axis {
    match *domain {
        Domain::Float {
            low,
            high,
            log: true,
            ..
        } => Axis::Numeric {
            low: low.ln(),
            high: high.ln(),
            step: None,
            log_int: false,
        },
        Domain::Float {
            low,
            high,
            step: Some(step),
            ..
        } => Axis::Numeric {
            low: low - 0.5 * step,
            high: high + 0.5 * step,
            step: Some(step),
            log_int: false,
        },
        Domain::Float { low, high, .. } => Axis::Numeric {
            low,
            high,
            step: None,
            log_int: false,
        },
        Domain::Int {
            low,
            high,
            log: true,
            ..
        } => Axis::Numeric {
            low: (low as f64 - 0.5).ln(),
            high: (high as f64 + 0.5).ln(),
            step: None,
            log_int: true,
        },
        Domain::Int {
            low, high, step, ..
        } => Axis::Numeric {
            low: low as f64 - 0.5 * step as f64,
            high: high as f64 + 0.5 * step as f64,
            step: Some(step as f64),
            log_int: false,
        },
        Domain::Categorical { ref choices } => Axis::Categorical { n: choices.len() },
    }
}

/// A value on its axis, or `None` when it is not one of the domain's (a
/// choice no longer offered, a string for a number).
fn to_axis(domain: &Domain, value: &Value) -> Option<f64> {
    let x = domain.to_internal(value)?;
    if !x.is_finite() {
        return None;
    }
    Some(match *domain {
        Domain::Float {
            low,
            high,
            log: true,
            ..
        } => x.clamp(low, high).ln(),
        Domain::Int {
            low,
            high,
            log: true,
            ..
        } => x.clamp(low as f64, high as f64).ln(),
        Domain::Float { low, high, .. } => x.clamp(low, high),
        Domain::Int { low, high, .. } => x.clamp(low as f64, high as f64),
        Domain::Categorical { .. } => x,
    })
}

/// An axis value back on the domain's scale (before `ParamSpec::finish`).
fn from_axis(domain: &Domain, x: f64) -> f64 {
    match *domain {
        Domain::Float {
            low,
            high,
            log: true,
            ..
        } => x.exp().clamp(low, high),
        Domain::Float {
            low,
            high,
            step: Some(step),
            ..
        } => (low + ((x - low) / step).round_ties_even() * step).clamp(low, high),
        Domain::Float { low, high, .. } => x.clamp(low, high),
        Domain::Int {
            low,
            high,
            log: true,
            ..
        } => x.exp().round().clamp(low as f64, high as f64),
        Domain::Int {
            low, high, step, ..
        } => {
            let k = ((x - low as f64) / step as f64).round_ties_even();
            (low as f64 + k * step as f64).clamp(low as f64, high as f64)
        }
        Domain::Categorical { .. } => x,
    }
}

/// One axis's kernels, one per component of the mixture.
#[derive(Clone, Debug)]
enum Kernels {
    Numeric {
        mus: Vec<f64>,
        sigmas: Vec<f64>,
        low: f64,
        high: f64,
        step: Option<f64>,
        log_int: bool,
        /// `ln(Φ(b) − Φ(a))`: each kernel's mass inside the bounds.
        log_mass: Vec<f64>,
        /// `1/σ` and `−ln σ − ln √(2π) − log_mass`, per kernel: a
        /// continuous density is then one multiply-add per kernel, which
        /// is most of a suggestion's time at a thousand trials.
        inv_sigmas: Vec<f64>,
        log_norms: Vec<f64>,
    },
    Categorical {
        n: usize,
        /// Row-major: `probs[k * n + c]` is component k's probability of
        /// choice c.
        probs: Vec<f64>,
    },
}

/// A mixture over a group of axes whose kernels share their component.
#[derive(Clone, Debug)]
struct Mixture {
    weights: Vec<f64>,
    /// Each component's log weight plus its log normalisers on the
    /// continuous axes, which do not depend on the point: a density then
    /// adds only −z²/2 per continuous axis.
    base: Vec<f64>,
    axes: Vec<Kernels>,
}

/// Whether a numeric axis is continuous (its density is the kernel's
/// normal density, not a bin's mass).
fn continuous(step: Option<f64>, log_int: bool) -> bool {
    step.is_none() && !log_int
}

impl Mixture {
    /// Builds the mixture from the observations' axis values (`obs[d][i]`
    /// is observation i on axis d), in trial order.
    fn new(axes: &[Axis], obs: &[Vec<f64>], settings: &TpeSettings) -> Mixture {
        let n = obs.first().map_or(0, Vec::len);
        let with_prior = settings.prior_weight > 0.0 || n == 0;
        let mut weights = default_weights(n);
        if with_prior {
            weights.push(if n == 0 { 1.0 } else { settings.prior_weight });
        }
        let total: f64 = weights.iter().sum();
        for w in &mut weights {
            *w /= total;
        }
        let mut base: Vec<f64> = weights.iter().map(|w| w.ln()).collect();
        let kernels: Vec<Kernels> = axes
            .iter()
            .zip(obs)
            .map(|(axis, xs)| match *axis {
                Axis::Numeric {
                    low,
                    high,
                    step,
                    log_int,
                } => numeric_kernels(xs, low, high, step, log_int, settings, with_prior),
                Axis::Categorical { n: choices } => {
                    categorical_kernels(xs, choices, settings.prior_weight, with_prior)
                }
            })
            .collect();
        for k in &kernels {
            if let Kernels::Numeric {
                step,
                log_int,
                log_norms,
                ..
            } = k
                && continuous(*step, *log_int)
            {
                for (b, norm) in base.iter_mut().zip(log_norms) {
                    *b += norm;
                }
            }
        }
        Mixture {
            weights,
            base,
            axes: kernels,
        }
    }

    fn components(&self) -> usize {
        self.weights.len()
    }

    /// Draws `count` points (one value per axis each).
    fn sample(&self, rng: &mut SearchRng, count: usize) -> Vec<Vec<f64>> {
        let cumulative: Vec<f64> = self
            .weights
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w;
                Some(*acc)
            })
            .collect();
        let total = cumulative.last().copied().unwrap_or(1.0);
        (0..count)
            .map(|_| {
                let u = rng.random_range(0.0..total);
                let k = cumulative
                    .partition_point(|&c| c <= u)
                    .min(self.components() - 1);
                self.axes
                    .iter()
                    .map(|kernels| match kernels {
                        Kernels::Numeric {
                            mus,
                            sigmas,
                            low,
                            high,
                            step,
                            log_int,
                            ..
                        } => {
                            let x = truncated_normal(rng, mus[k], sigmas[k], *low, *high);
                            if *log_int {
                                let (lo, hi) = (low.exp() + 0.5, high.exp() - 0.5);
                                return x.exp().round_ties_even().clamp(lo, hi).ln();
                            }
                            match step {
                                // Onto the bin centre the value rounds to.
                                Some(step) => {
                                    let lo = *low + 0.5 * step;
                                    let hi = *high - 0.5 * step;
                                    (lo + ((x - lo) / step).round_ties_even() * step).clamp(lo, hi)
                                }
                                None => x,
                            }
                        }
                        Kernels::Categorical { n, probs } => {
                            let row = &probs[k * n..(k + 1) * n];
                            let mut u = rng.random_range(0.0..1.0) * row.iter().sum::<f64>();
                            let mut pick = n - 1;
                            for (c, p) in row.iter().enumerate() {
                                if u < *p {
                                    pick = c;
                                    break;
                                }
                                u -= p;
                            }
                            pick as f64
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// `ln p(x)` of the mixture at a point.
    fn log_pdf(&self, x: &[f64], scratch: &mut Vec<f64>) -> f64 {
        scratch.clear();
        scratch.extend_from_slice(&self.base);
        for (kernels, &xd) in self.axes.iter().zip(x) {
            match kernels {
                Kernels::Numeric {
                    mus,
                    sigmas,
                    low,
                    high,
                    step,
                    log_int,
                    log_mass,
                    inv_sigmas,
                    log_norms: _,
                } => match step {
                    None if *log_int => {
                        let v = xd.exp().round();
                        let lo = (v - 0.5).ln().max(*low);
                        let hi = (v + 0.5).ln().min(*high);
                        add_bin_mass(scratch, lo, hi, mus, sigmas, log_mass);
                    }
                    None => {
                        // The normaliser is in `base`.
                        for ((acc, mu), inv) in scratch.iter_mut().zip(mus).zip(inv_sigmas) {
                            let z = (xd - mu) * inv;
                            *acc -= 0.5 * z * z;
                        }
                    }
                    Some(step) => {
                        let lo = (xd - 0.5 * step).max(*low);
                        let hi = (xd + 0.5 * step).min(*high);
                        add_bin_mass(scratch, lo, hi, mus, sigmas, log_mass);
                    }
                },
                Kernels::Categorical { n, probs } => {
                    let c = (xd as usize).min(n - 1);
                    for (k, acc) in scratch.iter_mut().enumerate() {
                        *acc += probs[k * n + c].ln();
                    }
                }
            }
        }
        log_sum_exp(scratch)
    }
}

const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// Adds each kernel's log probability of the bin [lo, hi] (a discrete
/// value's), relative to its mass inside the bounds.
fn add_bin_mass(
    scratch: &mut [f64],
    lo: f64,
    hi: f64,
    mus: &[f64],
    sigmas: &[f64],
    log_mass: &[f64],
) {
    for (k, acc) in scratch.iter_mut().enumerate() {
        let a = (lo - mus[k]) / sigmas[k];
        let b = (hi - mus[k]) / sigmas[k];
        *acc += log_normal_mass(a, b) - log_mass[k];
    }
}

fn numeric_kernels(
    xs: &[f64],
    low: f64,
    high: f64,
    step: Option<f64>,
    log_int: bool,
    settings: &TpeSettings,
    with_prior: bool,
) -> Kernels {
    let n = xs.len();
    let range = high - low;
    let mut mus = xs.to_vec();
    let mut sigmas = neighbour_sigmas(xs, low, high, settings.consider_endpoints);
    let max_sigma = range;
    let min_sigma = if settings.consider_magic_clip {
        let kernels = n + usize::from(with_prior);
        range / (100.0f64).min(1.0 + kernels as f64)
    } else {
        f64::EPSILON
    };
    for s in &mut sigmas {
        *s = s.clamp(min_sigma, max_sigma.max(min_sigma));
    }
    if with_prior {
        mus.push(0.5 * (low + high));
        sigmas.push(range.max(f64::MIN_POSITIVE));
    }
    // A domain of one value has range 0; give its kernels a width so the
    // densities stay finite (every candidate is the same point anyway).
    for s in &mut sigmas {
        if s.is_nan() || *s <= 0.0 {
            *s = 1.0;
        }
    }
    let log_mass: Vec<f64> = mus
        .iter()
        .zip(&sigmas)
        .map(|(&mu, &s)| log_normal_mass((low - mu) / s, (high - mu) / s))
        .collect();
    let inv_sigmas = sigmas.iter().map(|s| 1.0 / s).collect();
    let log_norms = sigmas
        .iter()
        .zip(&log_mass)
        .map(|(s, m)| -s.ln() - LN_SQRT_2PI - m)
        .collect();
    Kernels::Numeric {
        mus,
        sigmas,
        low,
        high,
        step,
        log_int,
        log_mass,
        inv_sigmas,
        log_norms,
    }
}

/// The univariate bandwidths: each kernel as wide as the larger gap to its
/// neighbours (the bounds count as neighbours only with
/// `consider_endpoints`).
fn neighbour_sigmas(xs: &[f64], low: f64, high: f64, consider_endpoints: bool) -> Vec<f64> {
    let n = xs.len();
    if n == 0 {
        return Vec::new();
    }
    // The order of f64::total_cmp as integers, each with its index in the
    // low bits when they fit: one 8-byte integer sort of a thousand values
    // takes half the time of sorting (value, index) pairs. Only values
    // equal in all but their last 16 bits can trade places, and the gaps
    // below are taken between the values themselves.
    let order_key = |x: f64| {
        let bits = x.to_bits();
        if bits >> 63 == 1 {
            !bits
        } else {
            bits | (1 << 63)
        }
    };
    let order: Vec<usize> = if n <= 1 << 16 {
        let mut keys: Vec<u64> = xs
            .iter()
            .enumerate()
            .map(|(i, &x)| (order_key(x) & !0xFFFF) | i as u64)
            .collect();
        keys.sort_unstable();
        keys.into_iter().map(|k| (k & 0xFFFF) as usize).collect()
    } else {
        let mut pairs: Vec<(u64, usize)> = xs.iter().map(|&x| order_key(x)).zip(0..n).collect();
        pairs.sort_unstable();
        pairs.into_iter().map(|(_, i)| i).collect()
    };
    let mut sorted = Vec::with_capacity(n + 2);
    sorted.push(low);
    sorted.extend(order.iter().map(|&i| xs[i]));
    sorted.push(high);
    let mut sorted_sigmas: Vec<f64> = (1..=n)
        .map(|i| (sorted[i] - sorted[i - 1]).max(sorted[i + 1] - sorted[i]))
        .collect();
    if !consider_endpoints && n >= 2 {
        sorted_sigmas[0] = sorted[2] - sorted[1];
        sorted_sigmas[n - 1] = sorted[n] - sorted[n - 1];
    }
    let mut sigmas = vec![0.0; n];
    for (rank, &i) in order.iter().enumerate() {
        sigmas[i] = sorted_sigmas[rank];
    }
    sigmas
}

fn categorical_kernels(xs: &[f64], choices: usize, prior_weight: f64, with_prior: bool) -> Kernels {
    let n_obs = xs.len();
    let kernels = n_obs + usize::from(with_prior);
    let fill = if n_obs == 0 {
        1.0
    } else {
        prior_weight / kernels as f64
    };
    let mut probs = vec![fill; kernels * choices];
    for (k, &x) in xs.iter().enumerate() {
        let c = (x as usize).min(choices - 1);
        probs[k * choices + c] += 1.0;
    }
    for row in probs.chunks_mut(choices) {
        let s: f64 = row.iter().sum();
        if s > 0.0 {
            for p in row {
                *p /= s;
            }
        } else {
            row.fill(1.0 / choices as f64);
        }
    }
    Kernels::Categorical { n: choices, probs }
}

fn log_sum_exp(xs: &[f64]) -> f64 {
    let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    // Terms below e^-40 of the largest change no bit of the sum, and at a
    // thousand trials nearly every kernel is that far from a candidate.
    m + xs
        .iter()
        .map(|x| x - m)
        .filter(|d| *d > -40.0)
        .map(f64::exp)
        .sum::<f64>()
        .ln()
}

/// Φ, the standard normal CDF.
fn ndtr(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// `ln(1 − Φ(z))` for z ≥ 0, accurate far into the tail.
fn log_upper_tail(z: f64) -> f64 {
    if z < 25.0 {
        (0.5 * erfc(z / std::f64::consts::SQRT_2)).ln()
    } else {
        let z2 = z * z;
        -0.5 * z2 - z.ln() - LN_SQRT_2PI + (1.0 - 1.0 / z2 + 3.0 / (z2 * z2)).ln()
    }
}

/// `ln(Φ(b) − Φ(a))` for a ≤ b, without cancellation in either tail.
fn log_normal_mass(a: f64, b: f64) -> f64 {
    if b <= a {
        return f64::NEG_INFINITY;
    }
    // Both tails beyond 9 σ hold less than 1e-18: the mass is 1 to the bit.
    if a < -9.0 && b > 9.0 {
        return 0.0;
    }
    if a >= 0.0 {
        let la = log_upper_tail(a);
        let lb = log_upper_tail(b);
        return la + (-(lb - la).exp()).ln_1p();
    }
    if b <= 0.0 {
        return log_normal_mass(-b, -a);
    }
    (ndtr(b) - ndtr(a)).ln()
}

/// A draw from N(mu, sigma) truncated to [low, high], by inverting the CDF
/// on the side of the mean where it keeps its precision.
fn truncated_normal(rng: &mut SearchRng, mu: f64, sigma: f64, low: f64, high: f64) -> f64 {
    if high.is_nan() || high <= low {
        return low;
    }
    let a = (low - mu) / sigma;
    let b = (high - mu) / sigma;
    let (lo, hi, flip) = if a > 0.0 {
        (-b, -a, true)
    } else {
        (a, b, false)
    };
    let (pa, pb) = (ndtr(lo), ndtr(hi));
    let z = if pb > pa {
        let u = rng.random_range(pa..pb);
        -std::f64::consts::SQRT_2 * erfc_inv(2.0 * u)
    } else {
        // Both bounds so far out that their CDFs are equal: the nearer one.
        if lo.abs() < hi.abs() { lo } else { hi }
    };
    let z = if flip { -z } else { z };
    (mu + sigma * z).clamp(low, high)
}

/// The parameters of `group` that a trial suggested, on their axes, into
/// `row`; false when it lacks one of them or has a value not in the domain.
fn observe_into(o: &Observation, group: &[&ParamSpec], row: &mut Vec<f64>) -> bool {
    row.clear();
    // A group in name order is read in one walk along the trial's
    // parameters (also in name order) instead of a search per name.
    if group.is_sorted_by(|a, b| a.name < b.name) {
        let mut params = o.params.iter();
        for p in group {
            let value = loop {
                match params.next() {
                    Some((name, v)) if *name == p.name => break Some(v),
                    Some((name, _)) if *name < p.name => continue,
                    _ => break None,
                }
            };
            match value.and_then(|v| to_axis(&p.domain, v)) {
                Some(x) => row.push(x),
                None => return false,
            }
        }
        return true;
    }
    for p in group {
        match o.params.get(&p.name).and_then(|v| to_axis(&p.domain, v)) {
            Some(x) => row.push(x),
            None => return false,
        }
    }
    true
}

/// The sampler.
#[derive(Clone, Debug, Default)]
pub struct Tpe {
    pub settings: TpeSettings,
}

impl Tpe {
    pub fn new(settings: TpeSettings) -> Self {
        Tpe { settings }
    }

    /// Whether the model is used yet, or trials are still drawn at random.
    pub fn warmed_up(&self, history: &[impl AsObservation]) -> bool {
        finished_count(history) >= self.settings.n_startup_trials
    }

    /// Values for the parameters of `group` jointly (each one's value on
    /// its domain's scale, before `ParamSpec::finish`), or `None` while the
    /// start-up trials are drawn at random.
    pub fn sample_group(
        &self,
        group: &[&ParamSpec],
        history: &[impl AsObservation],
        direction: Direction,
        seed: u64,
        number: u64,
    ) -> Option<Vec<f64>> {
        if group.is_empty() || !self.warmed_up(history) {
            return None;
        }
        let (below, above) = split(history, direction, self.settings.constant_liar);
        let axes: Vec<Axis> = group.iter().map(|p| axis(&p.domain)).collect();
        let columns = |trials: &[&Observation]| {
            let mut cols = vec![Vec::with_capacity(trials.len()); group.len()];
            let mut row = Vec::with_capacity(group.len());
            for o in trials {
                if observe_into(o, group, &mut row) {
                    for (col, x) in cols.iter_mut().zip(&row) {
                        col.push(*x);
                    }
                }
            }
            cols
        };
        let below_mix = Mixture::new(&axes, &columns(&below), &self.settings);
        let above_mix = Mixture::new(&axes, &columns(&above), &self.settings);
        let salt: String = group
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join("\u{1f}");
        let mut rng = rng_for(seed, number, &format!("tpe\u{1f}{salt}"));
        let candidates = below_mix.sample(&mut rng, self.settings.n_ei_candidates.max(1));
        let mut scratch = Vec::with_capacity(below_mix.components().max(above_mix.components()));
        let mut best: Option<(f64, &Vec<f64>)> = None;
        for c in &candidates {
            let score = below_mix.log_pdf(c, &mut scratch) - above_mix.log_pdf(c, &mut scratch);
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, c));
            }
        }
        let (_, chosen) = best?;
        Some(
            group
                .iter()
                .zip(chosen)
                .map(|(p, &x)| from_axis(&p.domain, x))
                .collect(),
        )
    }

    /// Every parameter of a fixed search space for trial `number`: TPE over
    /// the whole space once warmed up (jointly with `multivariate`), the
    /// priors before that. A parameter of one value is that value.
    pub fn sample(
        &self,
        space: &[ParamSpec],
        history: &[impl AsObservation],
        direction: Direction,
        seed: u64,
        number: u64,
    ) -> BTreeMap<String, Value> {
        let searched: Vec<&ParamSpec> = space.iter().filter(|p| !p.domain.is_single()).collect();
        let mut out = random::sample(space, seed, number);
        if !self.warmed_up(history) {
            return out;
        }
        if self.settings.multivariate {
            if let Some(xs) = self.sample_group(&searched, history, direction, seed, number) {
                for (p, x) in searched.iter().zip(xs) {
                    out.insert(p.name.clone(), p.finish(x));
                }
            }
        } else {
            for p in searched {
                if let Some(xs) = self.sample_group(&[p], history, direction, seed, number) {
                    out.insert(p.name.clone(), p.finish(xs[0]));
                }
            }
        }
        out
    }
}

/// Groups of parameters that always appear together in the finished
/// trials, as Optuna's group decomposition finds them: a define-by-run
/// objective with `if optimizer == "sgd": momentum = …` gets one group for
/// the parameters every trial has and one for `momentum`, and each group is
/// modelled from the trials that have it.
pub fn groups(history: &[impl AsObservation], constant_liar: bool) -> Vec<BTreeSet<String>> {
    let counted = |o: &&Observation| counts(o, constant_liar) || o.state() == TrialState::Complete;
    // Most studies ask for the same parameters every time: one group.
    let mut observed = history.iter().map(AsObservation::obs).filter(counted);
    if let Some(first) = observed.next()
        && observed.all(|o| {
            o.params.len() == first.params.len() && o.params.keys().eq(first.params.keys())
        })
    {
        return if first.params.is_empty() {
            Vec::new()
        } else {
            vec![first.params.keys().cloned().collect()]
        };
    }
    let mut groups: Vec<BTreeSet<String>> = Vec::new();
    for o in history
        .iter()
        .map(AsObservation::obs)
        .filter(|o| counts(o, constant_liar) || o.state() == TrialState::Complete)
    {
        let mut rest: BTreeSet<String> = o.params.keys().cloned().collect();
        if rest.is_empty() {
            continue;
        }
        let mut next = Vec::with_capacity(groups.len() + 1);
        for g in groups {
            let inter: BTreeSet<String> = g.intersection(&rest).cloned().collect();
            let diff: BTreeSet<String> = g.difference(&rest).cloned().collect();
            for name in &g {
                rest.remove(name);
            }
            if !inter.is_empty() {
                next.push(inter);
            }
            if !diff.is_empty() {
                next.push(diff);
            }
        }
        if !rest.is_empty() {
            next.push(rest);
        }
        groups = next;
    }
    groups
}

/// Points spread over a domain on its axis (every value of a small
/// discrete domain), and the density there of the univariate Parzen
/// estimator TPE would build from `values` (prior included), as weights
/// that sum to 1 over the points. The parameter-importance analysis
/// compares two such densities.
pub(crate) fn density_on_grid(domain: &Domain, values: &[&Value], points: usize) -> Vec<f64> {
    let ax = axis(domain);
    let xs: Vec<f64> = values.iter().filter_map(|v| to_axis(domain, v)).collect();
    let grid = axis_grid(&ax, domain, points);
    let m = Mixture::new(std::slice::from_ref(&ax), &[xs], &TpeSettings::default());
    let mut scratch = Vec::new();
    let mut d: Vec<f64> = grid
        .iter()
        .map(|&x| m.log_pdf(&[x], &mut scratch).exp())
        .collect();
    let total: f64 = d.iter().sum();
    if total > 0.0 {
        for v in &mut d {
            *v /= total;
        }
    }
    d
}

fn axis_grid(ax: &Axis, domain: &Domain, points: usize) -> Vec<f64> {
    match (*ax, domain) {
        (Axis::Categorical { n }, _) => (0..n).map(|i| i as f64).collect(),
        (Axis::Numeric { log_int: true, .. }, Domain::Int { low, high, .. })
            if high - low < points as i64 =>
        {
            (*low..=*high).map(|v| (v as f64).ln()).collect()
        }
        (
            Axis::Numeric {
                low,
                high,
                step: Some(step),
                ..
            },
            _,
        ) if ((high - low) / step) < points as f64 => {
            let first = low + 0.5 * step;
            let n = ((high - low) / step).round() as usize;
            (0..n).map(|i| first + i as f64 * step).collect()
        }
        (Axis::Numeric { low, high, .. }, _) => {
            let n = points.max(2);
            (0..n)
                .map(|i| low + (high - low) * (i as f64 + 0.5) / n as f64)
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obs(number: u64, x: f64, value: f64) -> Observation {
        Observation {
            number,
            state: Some(TrialState::Complete),
            params: [("x".to_string(), json!(x))].into(),
            value: Some(value),
            intermediate: vec![],
        }
    }

    fn mixture(domain: &Domain, obs: &[Value]) -> (Axis, Mixture) {
        let ax = axis(domain);
        let xs: Vec<f64> = obs.iter().map(|v| to_axis(domain, v).unwrap()).collect();
        let m = Mixture::new(std::slice::from_ref(&ax), &[xs], &TpeSettings::default());
        (ax, m)
    }

    /// Optuna 5.1's Parzen estimator gives these log densities.
    #[test]
    fn parzen_log_densities_are_optunas() {
        let unit = Domain::Float {
            low: 0.0,
            high: 1.0,
            log: false,
            step: None,
        };
        let ints = Domain::Int {
            low: 0,
            high: 10,
            log: false,
            step: 1,
        };
        let logf = Domain::Float {
            low: 1e-3,
            high: 1.0,
            log: true,
            step: None,
        };
        let logi = Domain::Int {
            low: 1,
            high: 100,
            log: true,
            step: 1,
        };
        let cat = Domain::Categorical {
            choices: vec![json!("a"), json!("b"), json!("c")],
        };
        type Case<'a> = (&'a Domain, Vec<Value>, Vec<(Value, f64)>);
        let cases: Vec<Case<'_>> = vec![
            (
                &unit,
                vec![json!(0.2), json!(0.5), json!(0.9)],
                vec![
                    (json!(0.0), -0.266082497),
                    (json!(0.3), 0.09093258),
                    (json!(0.5), 0.100389051),
                    (json!(1.0), -0.223862933),
                ],
            ),
            (&unit, vec![json!(0.5)], vec![(json!(0.5), 0.100101461)]),
            (
                &unit,
                vec![],
                vec![(json!(0.5), 0.0409778), (json!(0.0), -0.0840222)],
            ),
            (
                &unit,
                vec![json!(0.5), json!(0.5), json!(0.5)],
                vec![(json!(0.5), 0.573971778)],
            ),
            (
                &logf,
                vec![json!(0.01), json!(0.1)],
                vec![(json!(0.01), -1.814480008), (json!(0.5), -2.134223947)],
            ),
            (
                &ints,
                vec![json!(2), json!(3), json!(7)],
                vec![
                    (json!(0), -2.444319623),
                    (json!(2), -2.120413311),
                    (json!(3), -2.110332371),
                    (json!(10), -2.946463441),
                ],
            ),
            (
                &logi,
                vec![json!(4), json!(50)],
                vec![
                    (json!(1), -1.810925556),
                    (json!(4), -3.009079023),
                    (json!(100), -6.321528055),
                ],
            ),
            (
                &cat,
                vec![json!("a"), json!("a"), json!("c")],
                vec![
                    (json!("a"), -0.741937345),
                    (json!("b"), -1.658228077),
                    (json!("c"), -1.098612289),
                ],
            ),
        ];
        let mut scratch = Vec::new();
        for (domain, obs, points) in cases {
            let (_, m) = mixture(domain, &obs);
            for (x, want) in points {
                let ax = to_axis(domain, &x).unwrap();
                let got = m.log_pdf(&[ax], &mut scratch);
                assert!(
                    (got - want).abs() < 1e-6,
                    "{domain:?} {obs:?} at {x}: {got} vs {want}"
                );
            }
        }
        // Jointly, one component per trial across both axes.
        let bools = Domain::Categorical {
            choices: vec![json!(true), json!(false)],
        };
        let axes = [axis(&unit), axis(&bools)];
        let m = Mixture::new(
            &axes,
            &[vec![0.2, 0.8], vec![0.0, 1.0]],
            &TpeSettings::default(),
        );
        assert!((m.log_pdf(&[0.2, 0.0], &mut scratch) - -0.60772036).abs() < 1e-6);
        assert!((m.log_pdf(&[0.2, 1.0], &mut scratch) - -0.803905195).abs() < 1e-6);
    }

    #[test]
    fn the_acquisition_picks_as_optuna() {
        let d = Domain::Float {
            low: -10.0,
            high: 10.0,
            log: false,
            step: None,
        };
        let (_, below) = mixture(&d, &[json!(0.5), json!(1.0)]);
        let (_, above) = mixture(&d, &[json!(-8.0), json!(-3.0), json!(4.0), json!(9.0)]);
        let mut scratch = Vec::new();
        let scores: Vec<f64> = [-5.0, 0.0, 0.75, 3.0]
            .iter()
            .map(|&x| below.log_pdf(&[x], &mut scratch) - above.log_pdf(&[x], &mut scratch))
            .collect();
        let want = [-0.107678698, 0.415862728, 0.4209444, 0.300703113];
        for (g, w) in scores.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{scores:?}");
        }
    }

    #[test]
    fn the_split_example_is_optunas() {
        let c = |number, v: f64| Observation {
            number,
            state: Some(TrialState::Complete),
            value: Some(v),
            ..Default::default()
        };
        let p = |number, iv: Vec<(i64, f64)>| Observation {
            number,
            state: Some(TrialState::Pruned),
            intermediate: iv,
            ..Default::default()
        };
        let h = [
            c(0, 3.0),
            p(1, vec![(0, 1.0), (1, 0.5)]),
            c(2, 1.0),
            p(3, vec![(0, 0.2)]),
            Observation {
                number: 4,
                state: Some(TrialState::Running),
                ..Default::default()
            },
            p(5, vec![]),
            p(6, vec![(0, 5.0), (1, f64::NAN)]),
            c(7, 2.0),
        ];
        let numbers = |v: &[&Observation]| v.iter().map(|o| o.number).collect::<Vec<_>>();
        let cases: [(usize, &[u64], &[u64]); 6] = [
            (0, &[], &[0, 1, 2, 3, 4, 5, 6, 7]),
            (2, &[2, 7], &[0, 1, 3, 4, 5, 6]),
            (3, &[0, 2, 7], &[1, 3, 4, 5, 6]),
            (4, &[0, 1, 2, 7], &[3, 4, 5, 6]),
            (6, &[0, 1, 2, 3, 6, 7], &[4, 5]),
            (8, &[0, 1, 2, 3, 5, 6, 7], &[4]),
        ];
        for (n, below, above) in cases {
            let (b, a) = split_n(h.iter().collect(), Direction::Minimize, n);
            assert_eq!(
                (numbers(&b).as_slice(), numbers(&a).as_slice()),
                (below, above),
                "n_below {n}"
            );
        }
    }

    #[test]
    fn gamma_and_weights_are_optunas() {
        assert_eq!(default_gamma(1), 1);
        assert_eq!(default_gamma(10), 1);
        assert_eq!(default_gamma(11), 2);
        assert_eq!(default_gamma(1000), 25);
        assert_eq!(default_weights(3), vec![1.0; 3]);
        let w = default_weights(100);
        assert_eq!(w.len(), 100);
        assert!((w[0] - 0.01).abs() < 1e-12);
        assert_eq!(w[75], 1.0);
        assert!(w.windows(2).all(|p| p[0] <= p[1]));
    }

    #[test]
    fn split_puts_the_best_below_and_running_above() {
        let mut h: Vec<Observation> = (0..20).map(|i| obs(i, i as f64, i as f64)).collect();
        h.push(Observation {
            number: 20,
            state: Some(TrialState::Running),
            ..Default::default()
        });
        let (below, above) = split(&h, Direction::Minimize, true);
        // 20 finished → gamma 2; the running trial is always above.
        assert_eq!(
            below.iter().map(|o| o.number).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(above.len(), 19);
        assert_eq!(above.last().map(|o| o.number), Some(20));
        let (below, _) = split(&h, Direction::Maximize, false);
        assert_eq!(
            below.iter().map(|o| o.number).collect::<Vec<_>>(),
            vec![18, 19]
        );
    }

    #[test]
    fn pruned_trials_rank_by_progress_then_value() {
        let p = |number, inter: Vec<(i64, f64)>| Observation {
            number,
            state: Some(TrialState::Pruned),
            params: [("x".to_string(), json!(0.0))].into(),
            value: None,
            intermediate: inter,
        };
        let h = vec![
            p(0, vec![(1, 0.1)]),
            p(1, vec![(1, 0.5), (5, 0.9)]),
            p(2, vec![]),
            p(3, vec![(5, 0.2)]),
        ];
        let (below, above) = split(&h, Direction::Minimize, false);
        assert_eq!(below.iter().map(|o| o.number).collect::<Vec<_>>(), vec![3]);
        assert_eq!(above.len(), 3);
    }

    #[test]
    fn the_normal_mass_is_accurate_in_both_tails() {
        assert!((log_normal_mass(-1.0, 1.0) - 0.682_689_492_137_085_9f64.ln()).abs() < 1e-10);
        let far = log_normal_mass(40.0, 41.0);
        assert!(far.is_finite() && far < -800.0, "{far}");
        assert!((log_normal_mass(-41.0, -40.0) - far).abs() < 1e-9);
    }

    #[test]
    fn truncated_draws_stay_inside() {
        let mut rng = rng_for(1, 2, "t");
        for _ in 0..1000 {
            let x = truncated_normal(&mut rng, 0.0, 1.0, 3.0, 3.5);
            assert!((3.0..=3.5).contains(&x));
        }
    }

    #[test]
    fn tpe_moves_toward_the_minimum() {
        let space = [ParamSpec::new(
            "x",
            Domain::Float {
                low: -10.0,
                high: 10.0,
                log: false,
                step: None,
            },
        )];
        let tpe = Tpe::default();
        let mut history = Vec::new();
        for n in 0..80u64 {
            let p = tpe.sample(&space, &history, Direction::Minimize, 42, n);
            let x = p["x"].as_f64().unwrap();
            history.push(obs(n, x, (x - 3.0).powi(2)));
        }
        let late: Vec<f64> = history[60..].iter().map(|o| o.value.unwrap()).collect();
        let mut sorted = late.clone();
        sorted.sort_by(f64::total_cmp);
        // Random search's median loss here is about 30.
        assert!(
            sorted[sorted.len() / 2] < 2.0,
            "median late loss {:?}",
            sorted
        );
        // Deterministic for a seed.
        let again = tpe.sample(&space, &history[..40], Direction::Minimize, 42, 40);
        assert_eq!(again["x"], history[40].params["x"]);
    }

    #[test]
    fn discrete_and_categorical_suggestions_are_valid() {
        let space = [
            ParamSpec::new(
                "n",
                Domain::Int {
                    low: 1,
                    high: 9,
                    log: false,
                    step: 2,
                },
            ),
            ParamSpec::new(
                "opt",
                Domain::Categorical {
                    choices: vec![json!("sgd"), json!("adam")],
                },
            ),
            ParamSpec::new(
                "m",
                Domain::Int {
                    low: 1,
                    high: 1000,
                    log: true,
                    step: 1,
                },
            ),
        ];
        let tpe = Tpe::default();
        let mut history = Vec::new();
        for number in 0..40u64 {
            let p = tpe.sample(&space, &history, Direction::Minimize, 5, number);
            let n = p["n"].as_i64().unwrap();
            assert!([1, 3, 5, 7, 9].contains(&n), "{n}");
            assert!(space[1].domain.contains(&p["opt"]));
            assert!(space[2].domain.contains(&p["m"]), "{}", p["m"]);
            let loss = n as f64 + if p["opt"] == json!("adam") { 0.0 } else { 5.0 };
            history.push(Observation {
                number,
                state: Some(TrialState::Complete),
                params: p,
                value: Some(loss),
                intermediate: vec![],
            });
        }
        let adam = history[20..]
            .iter()
            .filter(|o| o.params["opt"] == json!("adam"))
            .count();
        assert!(adam >= 12, "{adam} of 20 late trials chose adam");
    }

    #[test]
    fn groups_split_conditional_parameters() {
        let t = |number, keys: &[&str]| Observation {
            number,
            state: Some(TrialState::Complete),
            params: keys.iter().map(|k| (k.to_string(), json!(1))).collect(),
            value: Some(1.0),
            intermediate: vec![],
        };
        let h = vec![
            t(0, &["opt", "lr", "momentum"]),
            t(1, &["opt", "lr", "beta"]),
        ];
        let g = groups(&h, false);
        let as_vec: Vec<Vec<&str>> = g
            .iter()
            .map(|s| s.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(
            as_vec,
            vec![vec!["lr", "opt"], vec!["momentum"], vec!["beta"]]
        );
    }
}
