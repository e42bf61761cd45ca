//! Grid search: every combination of the parameters' values, each a point
//! with a fixed index, so the store can hand out each index exactly once
//! and a restarted sweep knows which points are left.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::SearchError;
use crate::space::{Domain, ParamSpec, float_value};

/// The most points a grid may have; a larger one is almost surely a
/// mistake (a continuous range given a tiny `q`).
pub const MAX_POINTS: u64 = 10_000_000;

/// A grid: each parameter's values, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    axes: Vec<(String, Vec<Value>)>,
    points: u64,
}

impl Grid {
    pub fn new(space: &[ParamSpec]) -> Result<Grid, SearchError> {
        let mut axes = Vec::with_capacity(space.len());
        let mut points: u64 = 1;
        for spec in space {
            let values = axis_values(spec)?;
            points = points
                .checked_mul(values.len() as u64)
                .filter(|&p| p <= MAX_POINTS)
                .ok_or_else(|| {
                    SearchError::new(
                        format!("parameters.{}", spec.name),
                        format!("the grid would have more than {MAX_POINTS} points"),
                    )
                })?;
            axes.push((spec.name.clone(), values));
        }
        Ok(Grid { axes, points })
    }

    /// How many points the grid has.
    pub fn len(&self) -> u64 {
        self.points
    }

    pub fn is_empty(&self) -> bool {
        self.points == 0
    }

    /// The parameters of point `index`: the last parameter varies fastest,
    /// as in a nested loop over the parameters in the file's order.
    pub fn point(&self, index: u64) -> Option<BTreeMap<String, Value>> {
        if index >= self.points {
            return None;
        }
        let mut rest = index;
        let mut out = BTreeMap::new();
        for (name, values) in self.axes.iter().rev() {
            let n = values.len() as u64;
            out.insert(name.clone(), values[(rest % n) as usize].clone());
            rest /= n;
        }
        Some(out)
    }

    /// The index of the point with these parameters, if it is one.
    pub fn index_of(&self, params: &BTreeMap<String, Value>) -> Option<u64> {
        let mut index: u64 = 0;
        for (name, values) in &self.axes {
            let v = params.get(name)?;
            let i = values
                .iter()
                .position(|c| crate::space::same_choice(c, v))?;
            index = index * values.len() as u64 + i as u64;
        }
        Some(index)
    }
}

/// The values a parameter takes in a grid: its choices, or every step of a
/// stepped or quantized range.
fn axis_values(spec: &ParamSpec) -> Result<Vec<Value>, SearchError> {
    let path = format!("parameters.{}", spec.name);
    let too_many = || {
        SearchError::new(
            &path,
            format!("a grid axis may have at most {MAX_POINTS} values"),
        )
    };
    match (&spec.domain, spec.q) {
        (Domain::Categorical { choices }, _) => {
            if choices.is_empty() {
                return Err(SearchError::new(
                    &path,
                    "an empty list of values makes an empty grid",
                ));
            }
            Ok(choices.clone())
        }
        (
            Domain::Int {
                low, high, step, ..
            },
            None,
        ) => {
            let n = ((high - low) / step) as u64 + 1;
            if n > MAX_POINTS {
                return Err(too_many());
            }
            Ok((0..n as i64).map(|k| Value::from(low + k * step)).collect())
        }
        (
            Domain::Float {
                low,
                high,
                log: false,
                step: Some(step),
            },
            None,
        ) => stepped(*low, *high, *step)
            .ok_or_else(too_many)
            .map(|v| v.into_iter().map(float_value).collect()),
        // W&B's grid takes numpy's `arange(min, max, q)`: min + k·q, max
        // left out.
        (
            Domain::Float {
                low,
                high,
                log: false,
                ..
            },
            Some(q),
        ) => {
            let n = ((high - low) / q).ceil();
            if n.is_nan() || n < 1.0 || n > MAX_POINTS as f64 {
                return Err(too_many());
            }
            Ok((0..n as i64)
                .map(|k| {
                    let x = low + k as f64 * q;
                    if spec.integer {
                        Value::from(x.round() as i64)
                    } else {
                        float_value(x)
                    }
                })
                .collect())
        }
        _ => Err(SearchError::new(
            &path,
            "grid search needs a finite set of values: give `values`, or an `int_uniform` or `q_uniform` range",
        )),
    }
}

fn stepped(low: f64, high: f64, step: f64) -> Option<Vec<f64>> {
    let n = ((high - low) / step + 1e-9).floor() + 1.0;
    if n.is_nan() || n < 1.0 || n > MAX_POINTS as f64 {
        return None;
    }
    Some((0..n as i64).map(|k| low + k as f64 * step).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cat(name: &str, v: Vec<Value>) -> ParamSpec {
        ParamSpec::new(name, Domain::Categorical { choices: v })
    }

    #[test]
    fn every_point_once_last_axis_fastest() {
        let grid = Grid::new(&[
            cat("a", vec![json!(1), json!(2)]),
            cat("b", vec![json!("x"), json!("y"), json!("z")]),
        ])
        .unwrap();
        assert_eq!(grid.len(), 6);
        let pts: Vec<_> = (0..6).map(|i| grid.point(i).unwrap()).collect();
        assert_eq!(pts[0]["a"], json!(1));
        assert_eq!(pts[0]["b"], json!("x"));
        assert_eq!(pts[1]["b"], json!("y"));
        assert_eq!(pts[3]["a"], json!(2));
        for (i, p) in pts.iter().enumerate() {
            assert_eq!(grid.index_of(p), Some(i as u64));
        }
        assert!(grid.point(6).is_none());
    }

    #[test]
    fn int_and_quantized_ranges_enumerate() {
        let ints = ParamSpec::new(
            "n",
            Domain::Int {
                low: 2,
                high: 10,
                log: false,
                step: 4,
            },
        );
        let grid = Grid::new(&[ints]).unwrap();
        assert_eq!(grid.len(), 3);
        assert_eq!(grid.point(2).unwrap()["n"], json!(10));
        let mut q = ParamSpec::new(
            "x",
            Domain::Float {
                low: 0.0,
                high: 1.0,
                log: false,
                step: None,
            },
        );
        q.q = Some(0.25);
        let grid = Grid::new(&[q]).unwrap();
        assert_eq!(grid.len(), 4);
        assert_eq!(grid.point(3).unwrap()["x"], json!(0.75));
    }

    #[test]
    fn continuous_and_empty_axes_are_errors() {
        let cont = ParamSpec::new(
            "lr",
            Domain::Float {
                low: 0.0,
                high: 1.0,
                log: false,
                step: None,
            },
        );
        let err = Grid::new(&[cont]).unwrap_err();
        assert_eq!(err.path, "parameters.lr");
        let err = Grid::new(&[cat("e", vec![])]).unwrap_err();
        assert!(err.message.contains("empty"), "{err}");
    }
}
