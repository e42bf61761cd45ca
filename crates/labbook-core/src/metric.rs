//! Metric keys, points, columnar series and their summaries.

use serde::{Deserialize, Serialize};

use crate::config::validate_key;
use crate::error::ValidationError;

/// A metric key, kept verbatim (`train/loss`, `val/acc@1`).
pub type MetricKey = String;

/// Validates a metric key and names it in the error.
pub fn validate_metric_key(key: &str) -> Result<(), ValidationError> {
    validate_key("metric", key)
}

/// One logged value. NaN and ±Inf are legal values: a diverging loss is a
/// result worth keeping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub step: i64,
    /// Wall time, milliseconds since the Unix epoch.
    pub ts_ms: i64,
    pub value: f64,
}

/// A series in columns: the shape the codec, the exporters and the Python
/// SDK all want, and the one that never allocates per point.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesColumns {
    pub steps: Vec<i64>,
    pub ts_ms: Vec<i64>,
    pub values: Vec<f64>,
}

impl SeriesColumns {
    pub fn with_capacity(n: usize) -> Self {
        SeriesColumns {
            steps: Vec::with_capacity(n),
            ts_ms: Vec::with_capacity(n),
            values: Vec::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn push(&mut self, p: Point) {
        self.steps.push(p.step);
        self.ts_ms.push(p.ts_ms);
        self.values.push(p.value);
    }

    pub fn point(&self, i: usize) -> Point {
        Point {
            step: self.steps[i],
            ts_ms: self.ts_ms[i],
            value: self.values[i],
        }
    }

    pub fn extend_from(&mut self, other: &SeriesColumns) {
        self.steps.extend_from_slice(&other.steps);
        self.ts_ms.extend_from_slice(&other.ts_ms);
        self.values.extend_from_slice(&other.values);
    }

    /// Checks that the three columns have one length, naming the column.
    pub fn validate(&self, key: &str) -> Result<(), ValidationError> {
        if self.ts_ms.len() != self.steps.len() || self.values.len() != self.steps.len() {
            return Err(ValidationError::new(
                format!("series {key:?}"),
                format!(
                    "columns differ in length: {} steps, {} timestamps, {} values",
                    self.steps.len(),
                    self.ts_ms.len(),
                    self.values.len()
                ),
            ));
        }
        Ok(())
    }

    /// Whether steps never decrease (the common case, which lets readers
    /// concatenate chunks without sorting).
    pub fn is_step_sorted(&self) -> bool {
        self.steps.windows(2).all(|w| w[0] <= w[1])
    }

    /// Stable sort by step, keeping the logging order of equal steps.
    pub fn sort_by_step(&mut self) {
        if self.is_step_sorted() {
            return;
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|&i| self.steps[i]);
        let steps = order.iter().map(|&i| self.steps[i]).collect();
        let ts = order.iter().map(|&i| self.ts_ms[i]).collect();
        let values = order.iter().map(|&i| self.values[i]).collect();
        self.steps = steps;
        self.ts_ms = ts;
        self.values = values;
    }
}

/// What a run's table row shows for one metric. `min`/`max` ignore NaN; `last`
/// is the point greatest by (step, timestamp, value), as MLflow defines its
/// latest value; a later point at the same step and time wins a tie.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeriesSummary {
    pub count: u64,
    pub last_step: i64,
    pub last_ts_ms: i64,
    #[serde(with = "json_float")]
    pub last: f64,
    #[serde(with = "json_float::option")]
    pub min: Option<f64>,
    #[serde(with = "json_float::option")]
    pub max: Option<f64>,
}

impl SeriesSummary {
    pub fn of(points: &SeriesColumns) -> Option<SeriesSummary> {
        if points.is_empty() {
            return None;
        }
        let mut summary = SeriesSummary {
            count: 0,
            last_step: i64::MIN,
            last_ts_ms: i64::MIN,
            last: f64::NAN,
            min: None,
            max: None,
        };
        for i in 0..points.len() {
            summary.add(points.point(i));
        }
        Some(summary)
    }

    pub fn add(&mut self, p: Point) {
        self.count += 1;
        if self.count == 1 || is_later(p.step, p.ts_ms, p.value, self) {
            self.last_step = p.step;
            self.last_ts_ms = p.ts_ms;
            self.last = p.value;
        }
        if !p.value.is_nan() {
            self.min = Some(self.min.map_or(p.value, |m| m.min(p.value)));
            self.max = Some(self.max.map_or(p.value, |m| m.max(p.value)));
        }
    }

    pub fn merge(&mut self, other: &SeriesSummary) {
        let was_empty = self.count == 0;
        self.count += other.count;
        if was_empty || is_later(other.last_step, other.last_ts_ms, other.last, self) {
            self.last_step = other.last_step;
            self.last_ts_ms = other.last_ts_ms;
            self.last = other.last;
        }
        for v in [other.min, other.max].into_iter().flatten() {
            self.min = Some(self.min.map_or(v, |m| m.min(v)));
            self.max = Some(self.max.map_or(v, |m| m.max(v)));
        }
    }
}

fn is_later(step: i64, ts_ms: i64, value: f64, than: &SeriesSummary) -> bool {
    (step, ts_ms)
        .cmp(&(than.last_step, than.last_ts_ms))
        .then_with(|| value.total_cmp(&than.last))
        .is_ge()
}

/// JSON has no NaN or infinities; labbook writes them as the strings
/// "NaN", "Infinity" and "-Infinity" (MLflow's convention) and reads both forms.
pub mod json_float {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(f: &f64, s: S) -> Result<S::Ok, S::Error> {
        if f.is_finite() {
            s.serialize_f64(*f)
        } else {
            s.serialize_str(&crate::config::format_float(*f))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Num(f64),
            Text(String),
        }
        match Repr::deserialize(d)? {
            Repr::Num(f) => Ok(f),
            Repr::Text(t) => parse_special(&t)
                .ok_or_else(|| serde::de::Error::custom(format!("not a number: {t:?}"))),
        }
    }

    /// The same convention for optional values (`null` when absent).
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(f: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
            match f {
                Some(f) => super::serialize(f, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
            #[derive(Deserialize)]
            struct Wrap(#[serde(with = "super")] f64);
            Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
        }
    }

    pub fn parse_special(t: &str) -> Option<f64> {
        match t {
            "NaN" | "nan" => Some(f64::NAN),
            "Infinity" | "inf" | "+Infinity" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            other => other.parse().ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(i64, i64, f64)]) -> SeriesColumns {
        let mut s = SeriesColumns::default();
        for &(step, ts_ms, value) in points {
            s.push(Point { step, ts_ms, value });
        }
        s
    }

    #[test]
    fn summary_ignores_nan_for_min_max_but_keeps_it_as_last() {
        let s = series(&[
            (0, 1, 3.0),
            (1, 2, f64::INFINITY),
            (2, 3, -1.0),
            (3, 4, f64::NAN),
        ]);
        let summary = SeriesSummary::of(&s).unwrap();
        assert_eq!(summary.count, 4);
        assert_eq!(summary.min, Some(-1.0));
        assert_eq!(summary.max, Some(f64::INFINITY));
        assert!(summary.last.is_nan());
        assert_eq!(summary.last_step, 3);
    }

    #[test]
    fn last_is_the_highest_step_not_the_latest_call() {
        let s = series(&[(5, 10, 1.0), (2, 20, 2.0)]);
        assert_eq!(SeriesSummary::of(&s).unwrap().last, 1.0);
        let mut a = SeriesSummary::of(&series(&[(0, 1, 1.0)])).unwrap();
        a.merge(&SeriesSummary::of(&series(&[(9, 2, 7.0), (10, 3, f64::NAN)])).unwrap());
        assert_eq!((a.count, a.last_step, a.max), (3, 10, Some(7.0)));
    }

    #[test]
    fn sort_by_step_is_stable() {
        let mut s = series(&[(2, 1, 1.0), (1, 2, 2.0), (2, 3, 3.0), (0, 4, 4.0)]);
        s.sort_by_step();
        assert_eq!(s.steps, vec![0, 1, 2, 2]);
        assert_eq!(s.values, vec![4.0, 2.0, 1.0, 3.0]);
    }

    #[test]
    fn summary_json_carries_non_finite_values() {
        let s = SeriesSummary::of(&series(&[(0, 1, f64::NEG_INFINITY)])).unwrap();
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains("\"-Infinity\""), "{text}");
        let back: SeriesSummary = serde_json::from_str(&text).unwrap();
        assert_eq!(back.last, f64::NEG_INFINITY);
    }
}
