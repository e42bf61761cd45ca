//! What a finished search says: its optimization history (each trial's
//! value and the best so far) and how much each parameter mattered.
//!
//! Importance is PED-ANOVA's (Watanabe et al., IJCAI 2023, the evaluator
//! Optuna offers beside fANOVA): for each parameter, the Pearson divergence
//! between the density of its values among the best 10% of trials and
//! among all of them, each a Parzen estimator as TPE builds it. It is
//! closed-form, deterministic and fast at any number of trials, where
//! fANOVA needs a random forest (randomness, seconds at thousands of
//! trials) to say much the same about which parameters move the result.

use serde::Serialize;

use crate::study::TrialView;
use crate::tpe::density_on_grid;
use crate::trial::{Direction, TrialState};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPoint {
    pub number: u64,
    pub value: f64,
    /// The best value of the complete trials up to this one.
    pub best: f64,
}

/// Each complete trial's value in trial order, with the best so far.
pub fn history(trials: &[impl TrialView], direction: Direction) -> Vec<HistoryPoint> {
    let mut done: Vec<(u64, f64)> = trials
        .iter()
        .map(|t| t.obs())
        .filter(|o| o.state() == TrialState::Complete)
        .filter_map(|o| o.value.filter(|v| v.is_finite()).map(|v| (o.number, v)))
        .collect();
    done.sort_by_key(|&(n, _)| n);
    let mut best = f64::NAN;
    done.into_iter()
        .map(|(number, value)| {
            if best.is_nan() || direction.better(value, best) {
                best = value;
            }
            HistoryPoint {
                number,
                value,
                best,
            }
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Importance {
    pub name: String,
    /// Its share of the total; the parameters' shares sum to 1.
    pub importance: f64,
}

/// The share of the best trials each parameter explains (PED-ANOVA with a
/// target quantile of 10%), most important first; empty with fewer than
/// four complete trials.
pub fn importance(trials: &[impl TrialView], direction: Direction) -> Vec<Importance> {
    let mut done: Vec<&dyn TrialView> = trials
        .iter()
        .filter(|t| {
            t.obs().state() == TrialState::Complete && t.obs().value.is_some_and(f64::is_finite)
        })
        .map(|t| t as &dyn TrialView)
        .collect();
    if done.len() < 4 {
        return Vec::new();
    }
    done.sort_by(|a, b| {
        direction
            .loss(a.obs().value.unwrap_or(f64::NAN))
            .total_cmp(&direction.loss(b.obs().value.unwrap_or(f64::NAN)))
    });
    let top = done.len().div_ceil(10).max(2);
    let mut names: Vec<&String> = done.iter().flat_map(|t| t.distributions().keys()).collect();
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        // The domain the latest trial asked for it with.
        let Some(domain) = done.iter().rev().find_map(|t| t.distributions().get(name)) else {
            continue;
        };
        if domain.is_single() {
            continue;
        }
        let values = |ts: &[&dyn TrialView]| -> Vec<serde_json::Value> {
            ts.iter()
                .filter_map(|t| t.obs().params.get(name).cloned())
                .collect()
        };
        let all = values(&done);
        let best = values(&done[..top]);
        if best.len() < 2 {
            continue;
        }
        let all_refs: Vec<&serde_json::Value> = all.iter().collect();
        let best_refs: Vec<&serde_json::Value> = best.iter().collect();
        let p_all = density_on_grid(domain, &all_refs, 100);
        let p_top = density_on_grid(domain, &best_refs, 100);
        let divergence: f64 = p_all
            .iter()
            .zip(&p_top)
            .filter(|(a, _)| **a > 0.0)
            .map(|(a, t)| (t / a - 1.0).powi(2) * a)
            .sum();
        out.push(Importance {
            name: name.clone(),
            importance: divergence.max(0.0),
        });
    }
    let total: f64 = out.iter().map(|i| i.importance).sum();
    if total > 0.0 {
        for i in &mut out {
            i.importance /= total;
        }
    }
    out.sort_by(|a, b| {
        b.importance
            .total_cmp(&a.importance)
            .then(a.name.cmp(&b.name))
    });
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::space::Domain;
    use crate::trial::{AsObservation, Observation};

    struct T(Observation, BTreeMap<String, Domain>);
    impl AsObservation for T {
        fn obs(&self) -> &Observation {
            &self.0
        }
    }
    impl TrialView for T {
        fn distributions(&self) -> &BTreeMap<String, Domain> {
            &self.1
        }
    }

    fn trials() -> Vec<T> {
        // The value depends on x only; y is noise.
        let unit = Domain::Float {
            low: 0.0,
            high: 1.0,
            log: false,
            step: None,
        };
        (0..200u64)
            .map(|n| {
                let x = (n as f64 * 0.618_033_988_7) % 1.0;
                let y = (n as f64 * 0.414_213_562_4) % 1.0;
                let mut params = BTreeMap::new();
                params.insert("x".to_string(), json!(x));
                params.insert("y".to_string(), json!(y));
                let dists = [
                    ("x".to_string(), unit.clone()),
                    ("y".to_string(), unit.clone()),
                ]
                .into();
                T(
                    Observation {
                        number: n,
                        state: Some(TrialState::Complete),
                        params,
                        value: Some((x - 0.3).powi(2)),
                        intermediate: vec![],
                    },
                    dists,
                )
            })
            .collect()
    }

    #[test]
    fn the_parameter_that_moves_the_value_is_the_important_one() {
        let imp = importance(&trials(), Direction::Minimize);
        assert_eq!(imp[0].name, "x");
        assert!(imp[0].importance > 0.8, "{imp:?}");
        let sum: f64 = imp.iter().map(|i| i.importance).sum();
        assert!((sum - 1.0).abs() < 1e-9);
    }

    #[test]
    fn history_keeps_the_best_so_far() {
        let h = history(&trials()[..5], Direction::Minimize);
        assert_eq!(h.len(), 5);
        assert!(h.windows(2).all(|w| w[1].best <= w[0].best));
        assert_eq!(h[0].best, h[0].value);
    }
}
