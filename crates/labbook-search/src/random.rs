//! The random sampler: each parameter drawn from its prior, independently.

use std::collections::BTreeMap;

use rand::RngExt;
use serde_json::Value;

use crate::space::{Domain, ParamSpec, Prior};
use crate::trial::rng_for;

/// Draws a number on the domain's scale (before `ParamSpec::finish`) from
/// the prior: W&B's inverse CDF of one uniform draw.
pub fn draw(spec: &ParamSpec, rng: &mut impl rand::Rng) -> f64 {
    ppf(spec, rng.random_range(0.0..1.0))
}

/// The prior's inverse CDF at `u` ∈ [0, 1], as W&B's sweep controller
/// computes it (so its documented draws are reproduced exactly): `min +
/// ceil(u·n) − 1` for an int or a choice, `exp` of a uniform in log space
/// for a log domain, `mu + sigma·Φ⁻¹(u)` for a normal.
pub fn ppf(spec: &ParamSpec, u: f64) -> f64 {
    let u = u.clamp(0.0, 1.0);
    // ceil(u·n) − 1, W&B's (scipy's randint) index, clamped at u = 0.
    let index = |n: u64| {
        ((u * n as f64).ceil() as u64)
            .saturating_sub(1)
            .min(n.saturating_sub(1))
    };
    match (&spec.prior, &spec.domain) {
        (Prior::Normal { mu, sigma }, _) => mu + sigma * standard_normal_ppf(u),
        (Prior::LogNormal { mu, sigma }, _) => (mu + sigma * standard_normal_ppf(u)).exp(),
        (Prior::Beta { a, b }, _) => {
            use statrs::distribution::ContinuousCDF;
            statrs::distribution::Beta::new(*a, *b)
                .map(|d| d.inverse_cdf(u))
                .unwrap_or(0.5)
        }
        (Prior::Weighted { probabilities }, Domain::Categorical { choices }) => {
            let mut acc = 0.0;
            for (i, p) in probabilities.iter().take(choices.len()).enumerate() {
                acc += p;
                if u < acc {
                    return i as f64;
                }
            }
            choices.len().saturating_sub(1) as f64
        }
        (
            _,
            &Domain::Float {
                low,
                high,
                log,
                step,
            },
        ) => {
            if log {
                return (low.ln() + u * (high.ln() - low.ln()))
                    .exp()
                    .clamp(low, high);
            }
            match step {
                Some(step) => {
                    let n = ((high - low) / step + 1e-9).floor() as u64 + 1;
                    (low + index(n) as f64 * step).min(high)
                }
                None => low + u * (high - low),
            }
        }
        (
            _,
            &Domain::Int {
                low,
                high,
                log,
                step,
            },
        ) => {
            if log {
                let (a, b) = ((low as f64 - 0.5).ln(), (high as f64 + 0.5).ln());
                return (a + u * (b - a))
                    .exp()
                    .round()
                    .clamp(low as f64, high as f64);
            }
            let n = ((high - low) / step) as u64 + 1;
            (low + index(n) as i64 * step) as f64
        }
        (_, Domain::Categorical { choices }) => index(choices.len() as u64) as f64,
    }
}

/// Φ⁻¹, the standard normal's inverse CDF.
pub fn standard_normal_ppf(u: f64) -> f64 {
    -std::f64::consts::SQRT_2 * statrs::function::erf::erfc_inv(2.0 * u)
}

/// One parameter's value for trial `number` of a study seeded `seed`.
pub fn sample_param(spec: &ParamSpec, seed: u64, number: u64) -> Value {
    let mut rng = rng_for(seed, number, &spec.name);
    spec.finish(draw(spec, &mut rng))
}

/// Every parameter of `space` for trial `number`.
pub fn sample(space: &[ParamSpec], seed: u64, number: u64) -> BTreeMap<String, Value> {
    space
        .iter()
        .map(|p| (p.name.clone(), sample_param(p, seed, number)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(domain: Domain) -> ParamSpec {
        ParamSpec::new("x", domain)
    }

    #[test]
    fn draws_stay_in_their_domain_and_repeat_for_a_seed() {
        let domains = [
            Domain::Float {
                low: 1e-5,
                high: 1e-1,
                log: true,
                step: None,
            },
            Domain::Float {
                low: 0.0,
                high: 1.0,
                log: false,
                step: Some(0.25),
            },
            Domain::Int {
                low: 1,
                high: 8,
                log: false,
                step: 1,
            },
            Domain::Int {
                low: 1,
                high: 1024,
                log: true,
                step: 1,
            },
            Domain::Categorical {
                choices: vec![json!("a"), json!("b")],
            },
        ];
        for d in domains {
            let s = spec(d.clone());
            for n in 0..200 {
                let v = sample_param(&s, 3, n);
                assert!(d.contains(&v), "{v} outside {d:?}");
                assert_eq!(v, sample_param(&s, 3, n));
            }
        }
    }

    #[test]
    fn a_log_domain_is_uniform_in_log_space() {
        let s = spec(Domain::Float {
            low: 1e-4,
            high: 1.0,
            log: true,
            step: None,
        });
        let below_1e2 = (0..4000)
            .filter(|&n| sample_param(&s, 1, n).as_f64().unwrap_or(1.0) < 1e-2)
            .count();
        // Half the decades lie below 1e-2.
        assert!((1800..2200).contains(&below_1e2), "{below_1e2}");
    }

    #[test]
    fn weighted_choices_follow_their_probabilities() {
        let mut s = spec(Domain::Categorical {
            choices: vec![json!("rare"), json!("common")],
        });
        s.prior = Prior::Weighted {
            probabilities: vec![0.1, 0.9],
        };
        let rare = (0..5000)
            .filter(|&n| sample_param(&s, 9, n) == json!("rare"))
            .count();
        assert!((400..600).contains(&rare), "{rare}");
    }
}
