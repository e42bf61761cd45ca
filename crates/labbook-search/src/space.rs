//! A search space: named parameters, each with the domain the samplers
//! search and the prior the random sampler draws from.
//!
//! The domains are Optuna's three (float, int, categorical, with `log` and
//! `step`), so a study driven through Optuna's storage interface and one
//! defined by a W&B sweep file share one representation. W&B's richer
//! distributions are a domain plus a [`Prior`] and an optional quantization
//! `q`: `normal` draws from N(mu, sigma) while TPE searches mu ± 4 sigma,
//! `inv_log_uniform_values` is a log-uniform domain over the reciprocal
//! range, and so on (see `sweep.rs`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SearchError;

/// Where a parameter's values lie, as Optuna's distributions define it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Domain {
    Float {
        low: f64,
        high: f64,
        #[serde(default)]
        log: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<f64>,
    },
    Int {
        low: i64,
        high: i64,
        #[serde(default)]
        log: bool,
        #[serde(default = "one")]
        step: i64,
    },
    Categorical {
        choices: Vec<Value>,
    },
}

fn one() -> i64 {
    1
}

impl Domain {
    /// Checks the rules Optuna's distributions enforce, naming `path`.
    pub fn validate(&self, path: &str) -> Result<(), SearchError> {
        match *self {
            Domain::Float {
                low,
                high,
                log,
                step,
            } => {
                if !low.is_finite() || !high.is_finite() {
                    return Err(SearchError::new(
                        path,
                        "low and high must be finite numbers",
                    ));
                }
                if low > high {
                    return Err(SearchError::new(
                        path,
                        format!("low ({low}) must not be greater than high ({high})"),
                    ));
                }
                if log && low <= 0.0 {
                    return Err(SearchError::new(
                        path,
                        format!("a log domain needs low > 0, got {low}"),
                    ));
                }
                if let Some(step) = step {
                    if log {
                        return Err(SearchError::new(
                            path,
                            "step and log cannot be used together",
                        ));
                    }
                    if !(step.is_finite() && step > 0.0) {
                        return Err(SearchError::new(
                            path,
                            format!("step must be > 0, got {step}"),
                        ));
                    }
                }
                Ok(())
            }
            Domain::Int {
                low,
                high,
                log,
                step,
            } => {
                if low > high {
                    return Err(SearchError::new(
                        path,
                        format!("low ({low}) must not be greater than high ({high})"),
                    ));
                }
                if log && low < 1 {
                    return Err(SearchError::new(
                        path,
                        format!("a log domain needs low >= 1, got {low}"),
                    ));
                }
                if step < 1 {
                    return Err(SearchError::new(
                        path,
                        format!("step must be >= 1, got {step}"),
                    ));
                }
                if log && step != 1 {
                    return Err(SearchError::new(
                        path,
                        "step and log cannot be used together",
                    ));
                }
                Ok(())
            }
            Domain::Categorical { ref choices } => {
                if choices.is_empty() {
                    return Err(SearchError::new(path, "needs at least one choice"));
                }
                Ok(())
            }
        }
    }

    /// The value as a number the samplers work with: the value itself for
    /// float and int, the choice's index for categorical. `None` when the
    /// value is not in the domain's kind (a string for a float).
    pub fn to_internal(&self, value: &Value) -> Option<f64> {
        match self {
            Domain::Float { .. } => value.as_f64(),
            Domain::Int { .. } => value
                .as_i64()
                .map(|v| v as f64)
                .or_else(|| value.as_f64().filter(|v| v.fract() == 0.0)),
            Domain::Categorical { choices } => choices
                .iter()
                .position(|c| same_choice(c, value))
                .map(|i| i as f64),
        }
    }

    /// The inverse of [`Domain::to_internal`].
    pub fn to_external(&self, x: f64) -> Value {
        match self {
            Domain::Float { .. } => float_value(x),
            Domain::Int { .. } => Value::from(x.round() as i64),
            Domain::Categorical { choices } => {
                let i = (x.round().max(0.0) as usize).min(choices.len().saturating_sub(1));
                choices.get(i).cloned().unwrap_or(Value::Null)
            }
        }
    }

    /// Whether the domain holds exactly one value (Optuna samples nothing
    /// for it).
    pub fn is_single(&self) -> bool {
        match *self {
            Domain::Float {
                low, high, step, ..
            } => low == high || step.is_some_and(|s| high - low < s),
            Domain::Int {
                low, high, step, ..
            } => low == high || high - low < step,
            Domain::Categorical { ref choices } => choices.len() == 1,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Domain::Float { .. } => "float",
            Domain::Int { .. } => "int",
            Domain::Categorical { .. } => "categorical",
        }
    }

    /// Whether a value suggested under `self` may stand beside values
    /// suggested under `other` in one study: the same kind, the same
    /// scale and step, the same choices. Ranges may differ (Optuna allows a
    /// range to narrow as a search goes on); a change of kind, scale or
    /// choices would make earlier trials mean something else.
    pub fn compatible_with(&self, other: &Domain) -> Result<(), String> {
        match (self, other) {
            (
                Domain::Float { log, step, .. },
                Domain::Float {
                    log: log2,
                    step: step2,
                    ..
                },
            ) => {
                if log != log2 {
                    return Err(format!("log was {log2}, now {log}"));
                }
                if step != step2 {
                    return Err(format!("step was {step2:?}, now {step:?}"));
                }
                Ok(())
            }
            (
                Domain::Int { log, step, .. },
                Domain::Int {
                    log: log2,
                    step: step2,
                    ..
                },
            ) => {
                if log != log2 {
                    return Err(format!("log was {log2}, now {log}"));
                }
                if step != step2 {
                    return Err(format!("step was {step2}, now {step}"));
                }
                Ok(())
            }
            (Domain::Categorical { choices }, Domain::Categorical { choices: before }) => {
                if choices.len() != before.len()
                    || choices.iter().zip(before).any(|(a, b)| !same_choice(a, b))
                {
                    return Err(format!(
                        "choices were {}, now {}",
                        Value::from(before.clone()),
                        Value::from(choices.clone())
                    ));
                }
                Ok(())
            }
            (now, before) => Err(format!("was {}, now {}", before.kind(), now.kind())),
        }
    }

    /// Whether `value` lies in the domain (bounds and kind; steps are not
    /// checked, since W&B's quantization may round just past a bound).
    pub fn contains(&self, value: &Value) -> bool {
        match *self {
            Domain::Float { low, high, .. } => {
                value.as_f64().is_some_and(|v| v >= low && v <= high)
            }
            Domain::Int { low, high, .. } => value.as_i64().is_some_and(|v| v >= low && v <= high),
            Domain::Categorical { .. } => self.to_internal(value).is_some(),
        }
    }
}

/// Two choices are the same when their JSON is: 1 and 1.0 are one number.
pub fn same_choice(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// A float as JSON; a non-finite one (which no domain yields) as null.
pub fn float_value(x: f64) -> Value {
    serde_json::Number::from_f64(x)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// How the random sampler draws a parameter. TPE uses it for its start-up
/// trials only; after them it models the domain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Prior {
    /// Uniform over the domain (log-uniform for a log domain).
    #[default]
    Uniform,
    Normal {
        mu: f64,
        sigma: f64,
    },
    /// `exp(N(mu, sigma))`.
    LogNormal {
        mu: f64,
        sigma: f64,
    },
    Beta {
        a: f64,
        b: f64,
    },
    /// A categorical domain's choices with these probabilities.
    Weighted {
        probabilities: Vec<f64>,
    },
}

/// One parameter of a search space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// The config key it sets; nested W&B parameters are dotted (`opt.lr`).
    pub name: String,
    pub domain: Domain,
    #[serde(default, skip_serializing_if = "is_uniform")]
    pub prior: Prior,
    /// W&B's quantization: the value drawn becomes `round(x / q) * q`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<f64>,
    /// Whether a quantized value is written as an integer (W&B's `q_*`
    /// distributions with an integer `q`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub integer: bool,
}

fn is_uniform(p: &Prior) -> bool {
    *p == Prior::Uniform
}

impl ParamSpec {
    pub fn new(name: impl Into<String>, domain: Domain) -> Self {
        ParamSpec {
            name: name.into(),
            domain,
            prior: Prior::Uniform,
            q: None,
            integer: false,
        }
    }

    /// A number drawn on the domain's scale becomes the parameter's value:
    /// quantized when the parameter has a `q`, an integer when it is one.
    pub fn finish(&self, x: f64) -> Value {
        match self.q {
            Some(q) => {
                let v = (x / q).round_ties_even() * q;
                if self.integer {
                    Value::from(v.round() as i64)
                } else {
                    float_value(v)
                }
            }
            None => self.domain.to_external(x),
        }
    }
}

/// Finds a parameter by name.
pub fn find<'a>(space: &'a [ParamSpec], name: &str) -> Option<&'a ParamSpec> {
    space.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn internal_form_round_trips() {
        let cat = Domain::Categorical {
            choices: vec![json!("adam"), json!(1), json!(null)],
        };
        assert_eq!(cat.to_internal(&json!(1.0)), Some(1.0));
        assert_eq!(cat.to_external(2.0), json!(null));
        assert_eq!(cat.to_internal(&json!("sgd")), None);
        let int = Domain::Int {
            low: 1,
            high: 8,
            log: false,
            step: 1,
        };
        assert_eq!(int.to_internal(&json!(3)), Some(3.0));
        assert_eq!(int.to_external(2.6), json!(3));
    }

    #[test]
    fn validation_names_the_field() {
        let bad = Domain::Float {
            low: 0.0,
            high: 1.0,
            log: true,
            step: None,
        };
        let err = bad.validate("parameters.lr").unwrap_err();
        assert_eq!(err.path, "parameters.lr");
        assert!(err.message.contains("low > 0"), "{err}");
        let reversed = Domain::Int {
            low: 5,
            high: 1,
            log: false,
            step: 1,
        };
        assert!(
            reversed
                .validate("x")
                .unwrap_err()
                .message
                .contains("greater")
        );
    }

    #[test]
    fn compatibility_is_kind_scale_and_choices() {
        let a = Domain::Float {
            low: 0.0,
            high: 1.0,
            log: false,
            step: None,
        };
        let narrower = Domain::Float {
            low: 0.2,
            high: 0.5,
            log: false,
            step: None,
        };
        assert!(narrower.compatible_with(&a).is_ok());
        let log = Domain::Float {
            low: 0.1,
            high: 1.0,
            log: true,
            step: None,
        };
        assert!(log.compatible_with(&a).unwrap_err().contains("log"));
        let int = Domain::Int {
            low: 0,
            high: 1,
            log: false,
            step: 1,
        };
        assert_eq!(int.compatible_with(&a).unwrap_err(), "was float, now int");
    }
}
