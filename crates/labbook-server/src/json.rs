//! The API's JSON forms. JSON has no NaN or infinities; they travel as the
//! strings "NaN", "Infinity" and "-Infinity" (MLflow's convention).

use serde::ser::{SerializeSeq, Serializer};
use serde_json::{Map, Value, json};

use labbook_core::config::format_float;
use labbook_core::{ConfigValue, RunRecord, SeriesSummary};

pub fn num(f: f64) -> Value {
    if f.is_finite() {
        json!(f)
    } else {
        Value::String(format_float(f))
    }
}

pub fn config_value(v: &ConfigValue) -> Value {
    match v {
        ConfigValue::Null => Value::Null,
        ConfigValue::Bool(b) => json!(b),
        ConfigValue::Int(i) => json!(i),
        ConfigValue::Float(f) => num(*f),
        ConfigValue::Str(s) => json!(s),
        ConfigValue::List(items) => Value::Array(items.iter().map(config_value).collect()),
        ConfigValue::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), config_value(v)))
                .collect(),
        ),
    }
}

pub fn summary(s: &SeriesSummary) -> Value {
    json!({
        "count": s.count,
        "last": num(s.last),
        "last_step": s.last_step,
        "min": s.min.map(num),
        "max": s.max.map(num),
    })
}

/// A run as the API's `Run` type.
/// The fields of a run's JSON (`run`), in its order.
pub const RUN_FIELDS: &[&str] = &[
    "id",
    "name",
    "project",
    "group",
    "tags",
    "notes",
    "status",
    "created_ms",
    "ended_ms",
    "heartbeat_ms",
    "duration_ms",
    "exit_code",
    "error",
    "host",
    "pid",
    "config",
    "metrics",
    "summary",
    "deleted",
    "kv_tags",
    "inputs",
    "parent",
];

/// Only `fields` (each one of RUN_FIELDS) of a run's JSON; the cheap ones
/// without building the rest.
pub fn run_fields(r: &RunRecord, fields: &[String], now_ms: i64) -> Map<String, Value> {
    let mut full: Option<Map<String, Value>> = None;
    let mut m = Map::new();
    for field in fields {
        let value = match field.as_str() {
            "id" => json!(r.id),
            "name" => json!(r.name),
            "parent" => json!(r.parent_id()),
            "status" => json!(r.status.as_str()),
            "created_ms" => json!(r.created_ms),
            other => full
                .get_or_insert_with(|| run(r, now_ms))
                .get(other)
                .cloned()
                .unwrap_or(Value::Null),
        };
        m.insert(field.clone(), value);
    }
    m
}

pub fn run(r: &RunRecord, now_ms: i64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(r.id));
    m.insert("name".into(), json!(r.name));
    m.insert("project".into(), json!(r.project));
    m.insert("group".into(), json!(r.group));
    m.insert("tags".into(), json!(r.tags));
    m.insert("notes".into(), json!(r.notes));
    m.insert("status".into(), json!(r.status.as_str()));
    m.insert("created_ms".into(), json!(r.created_ms));
    m.insert("ended_ms".into(), json!(r.ended_ms));
    m.insert("heartbeat_ms".into(), json!(r.heartbeat_ms));
    m.insert("duration_ms".into(), json!(r.duration_ms(now_ms)));
    m.insert("exit_code".into(), json!(r.exit_code));
    m.insert("error".into(), json!(r.error));
    m.insert("host".into(), json!(r.host));
    m.insert("pid".into(), json!(r.pid));
    m.insert(
        "config".into(),
        Value::Object(
            r.config
                .iter()
                .map(|(k, v)| (k.clone(), config_value(v)))
                .collect(),
        ),
    );
    m.insert(
        "metrics".into(),
        Value::Object(
            r.metrics
                .iter()
                .map(|(k, s)| (k.clone(), summary(s)))
                .collect(),
        ),
    );
    m.insert(
        "summary".into(),
        Value::Object(
            r.summary
                .iter()
                .map(|(k, v)| (k.clone(), config_value(&ConfigValue::from_json(v))))
                .collect(),
        ),
    );
    m.insert("deleted".into(), json!(r.deleted_ms.is_some()));
    m.insert("kv_tags".into(), json!(r.kv_tags));
    m.insert("inputs".into(), json!(r.inputs));
    m.insert("parent".into(), json!(r.parent_id()));
    m
}

/// A float column serialized without building a `Value` per point.
pub struct Floats<'a>(pub &'a [f64]);

impl serde::Serialize for Floats<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for &f in self.0 {
            if f.is_finite() {
                seq.serialize_element(&f)?;
            } else {
                seq.serialize_element(&format_float(f))?;
            }
        }
        seq.end()
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
