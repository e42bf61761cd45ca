//! The JSON bodies of labbook's write API (`POST /api/v1/runs`, `POST
//! /api/v1/runs/{id}/log`), shared by the handlers and the SDK's client so
//! the two sides cannot drift apart. JSON has no NaN or infinities: they
//! travel as "NaN", "Infinity" and "-Infinity".

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use labbook_core::config::{clip, config_from_json, format_float};
use labbook_core::metric::validate_metric_key;
use labbook_core::run::validate_tag;
use labbook_core::{Config, RunStatus, SeriesColumns, ValidationError};
use labbook_store::appender::Append;
use labbook_store::session::{OpenRun, Resume};
use labbook_store::writer::FlushBatch;
use labbook_store::{NewRun, OutputChunk, OutputStream, RunPatch};

/// The longest batch id a client may send.
pub const MAX_BATCH_ID: usize = 128;

/// `POST /api/v1/runs`: start, resume or attach to a run (the rules of
/// `labbook.init()`). A client that sends its own `id`, `created_ms`, `host`
/// and `pid` may repeat the request safely: the same start answers with the
/// run it made.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default)]
    pub attach: bool,
    /// "never" (the default), "allow" or "must".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
    pub project: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Nested or dotted; stored flattened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

impl StartRun {
    pub fn into_open(self, now_ms: i64) -> Result<OpenRun, ValidationError> {
        let resume = match self.resume.as_deref() {
            None => Resume::Never,
            Some(r) => r.parse()?,
        };
        let config = match &self.config {
            Some(c) => config_from_json(c)?,
            None => Config::new(),
        };
        Ok(OpenRun {
            run: NewRun {
                id: self.id,
                project: self.project,
                name: self.name,
                group: self.group,
                tags: self.tags,
                notes: self.notes,
                config,
                created_ms: self.created_ms.unwrap_or(now_ms),
                host: self.host,
                pid: self.pid,
            },
            attach: self.attach,
            resume,
            // The client's answer is the run it can log into at once.
            defer_create: false,
        })
    }
}

/// One series of a log batch, in columns.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesBody {
    pub steps: Vec<i64>,
    pub ts_ms: Vec<i64>,
    pub values: Floats,
}

/// Captured output; bytes that are not UTF-8 arrive replaced.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputBody {
    pub stream: OutputStream,
    pub ts_ms: i64,
    pub text: String,
}

/// The run changes an SDK makes while it logs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_tags: Vec<String>,
    /// Merged into the config; nested or dotted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    /// Merged into the user summary; null removes a key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub summary: BTreeMap<String, Value>,
    /// Key/value tags to set (the run it is nested under, among them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set_kv_tags: BTreeMap<String, String>,
}

/// `POST /api/v1/runs/{id}/log`: points, output and run changes, applied in
/// one transaction. A `batch_id` the run has seen is skipped, so a client
/// repeats a request whose answer it never got without doubling points.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogBatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    #[serde(default, deserialize_with = "object_values")]
    pub series: BTreeMap<String, SeriesBody>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "objects"
    )]
    pub output: Vec<OutputBody>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_object"
    )]
    pub patch: Option<PatchBody>,
    /// The client's writer is done: seal the run's tails.
    #[serde(default)]
    pub seal: bool,
}

impl LogBatch {
    /// The request for one flush (or one part of it).
    pub fn from_flush(batch: &FlushBatch, batch_id: &str, seal: bool) -> LogBatch {
        LogBatch {
            batch_id: Some(batch_id.to_string()),
            series: batch
                .series
                .iter()
                .map(|(key, s)| {
                    (
                        key.clone(),
                        SeriesBody {
                            steps: s.steps.clone(),
                            ts_ms: s.ts_ms.clone(),
                            values: Floats(s.values.clone()),
                        },
                    )
                })
                .collect(),
            output: batch
                .output
                .iter()
                .map(|o| OutputBody {
                    stream: o.stream,
                    ts_ms: o.ts_ms,
                    text: String::from_utf8_lossy(&o.data).into_owned(),
                })
                .collect(),
            patch: batch.patch.as_ref().map(PatchBody::from_patch),
            seal,
        }
    }

    /// Checks every field and converts; the error names the field.
    pub fn into_append(self, now_ms: i64) -> Result<Append, ValidationError> {
        if let Some(id) = &self.batch_id
            && (id.is_empty() || id.len() > MAX_BATCH_ID)
        {
            return Err(ValidationError::new(
                "batch_id",
                format!("must be 1 to {MAX_BATCH_ID} bytes, not {}", id.len()),
            ));
        }
        let mut series = Vec::with_capacity(self.series.len());
        for (key, body) in self.series {
            validate_metric_key(&key)?;
            let columns = SeriesColumns {
                steps: body.steps,
                ts_ms: body.ts_ms,
                values: body.values.0,
            };
            columns.validate(&key)?;
            if !columns.is_empty() {
                series.push((key, columns));
            }
        }
        let output = self
            .output
            .into_iter()
            .map(|o| OutputChunk {
                stream: o.stream,
                ts_ms: o.ts_ms,
                data: o.text.into_bytes(),
            })
            .collect();
        let patch = match self.patch {
            Some(p) => Some(p.into_patch()?),
            None => None,
        };
        Ok(Append {
            series,
            patch,
            output,
            seal: self.seal,
            batch_id: self.batch_id,
            heartbeat_ms: Some(now_ms),
            drop_identical: false,
        })
    }
}

impl PatchBody {
    fn from_patch(p: &RunPatch) -> PatchBody {
        PatchBody {
            status: p.status.map(|s| s.as_str().to_string()),
            ended_ms: p.ended_ms,
            exit_code: p.exit_code,
            error: p.error.clone(),
            name: p.name.clone(),
            group: p.group.clone(),
            notes: p.notes.clone(),
            add_tags: p.add_tags.clone(),
            remove_tags: p.remove_tags.clone(),
            config: p.config.as_ref().and_then(|c| serde_json::to_value(c).ok()),
            summary: p.summary.clone(),
            set_kv_tags: p.set_kv_tags.clone(),
        }
    }

    fn into_patch(self) -> Result<RunPatch, ValidationError> {
        let status = match self.status.as_deref() {
            Some(s) => Some(s.parse::<RunStatus>()?),
            None => None,
        };
        for tag in self.add_tags.iter().chain(&self.remove_tags) {
            validate_tag(tag)?;
        }
        let config = match &self.config {
            Some(c) => Some(config_from_json(c)?),
            None => None,
        };
        Ok(RunPatch {
            status,
            ended_ms: self.ended_ms,
            exit_code: self.exit_code,
            error: self.error,
            name: self.name,
            group: self.group,
            notes: self.notes,
            add_tags: self.add_tags,
            remove_tags: self.remove_tags,
            config,
            summary: self.summary,
            set_kv_tags: self.set_kv_tags,
            ..Default::default()
        })
    }
}

/// A column of floats in which NaN and ±infinity are strings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Floats(pub Vec<f64>);

impl Serialize for Floats {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for &f in &self.0 {
            if f.is_finite() {
                seq.serialize_element(&f)?;
            } else {
                seq.serialize_element(&format_float(f))?;
            }
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Floats {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Floats, D::Error> {
        deserializer.deserialize_seq(FloatsVisitor).map(Floats)
    }
}

struct FloatsVisitor;

impl<'de> Visitor<'de> for FloatsVisitor {
    type Value = Vec<f64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of numbers (\"NaN\", \"Infinity\" and \"-Infinity\" as strings)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<f64>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(Float(f)) = seq.next_element()? {
            out.push(f);
        }
        Ok(out)
    }
}

struct Float(f64);

impl<'de> Deserialize<'de> for Float {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Float, D::Error> {
        deserializer.deserialize_any(FloatVisitor).map(Float)
    }
}

struct FloatVisitor;

impl Visitor<'_> for FloatVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

/// A struct read only from a JSON object. serde's derived structs also
/// take an array of their fields in declaration order, so `{"patch":
/// ["killed"]}` would set a status: the API's bodies are objects, and
/// anything else is refused naming the field.
struct ObjectOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = ObjectOnly<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(ObjectOnly)
            }
        }
        deserializer.deserialize_map(ObjectVisitor(std::marker::PhantomData))
    }
}

fn object_values<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, T>, D::Error> {
    let map = BTreeMap::<String, ObjectOnly<T>>::deserialize(deserializer)?;
    Ok(map.into_iter().map(|(k, v)| (k, v.0)).collect())
}

fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    let items = Vec::<ObjectOnly<T>>::deserialize(deserializer)?;
    Ok(items.into_iter().map(|v| v.0).collect())
}

fn optional_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Ok(Option::<ObjectOnly<T>>::deserialize(deserializer)?.map(|v| v.0))
}

/// Parses a request body (a JSON object), naming the field at fault
/// (`series.loss.values[3]`).
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ValidationError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize::<_, ObjectOnly<T>>(de)
        .map(|o| o.0)
        .map_err(|e| {
            // Both may quote the input (a key in the path, a value in the
            // message): clipped, never megabytes.
            let path = clip(&e.path().to_string(), 1, 200);
            let field = if path == "." {
                "body".to_string()
            } else {
                path
            };
            ValidationError::new(field, clip(&e.into_inner().to_string(), 1, 300))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_round_trips_with_nan_and_infinities() {
        let flush = FlushBatch {
            series: vec![(
                "loss".into(),
                SeriesColumns {
                    steps: vec![0, 1, 2, 3],
                    ts_ms: vec![10, 11, 12, 13],
                    values: vec![0.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY],
                },
            )],
            output: vec![],
            patch: Some(RunPatch {
                status: Some(RunStatus::Finished),
                add_tags: vec!["best".into()],
                ..Default::default()
            }),
        };
        let body = serde_json::to_vec(&LogBatch::from_flush(&flush, "b-1", true)).unwrap();
        let back: LogBatch = parse(&body).unwrap();
        let append = back.into_append(99).unwrap();
        assert_eq!(append.batch_id.as_deref(), Some("b-1"));
        assert!(append.seal);
        let values = &append.series[0].1.values;
        assert_eq!(values[0], 0.5);
        assert!(values[1].is_nan());
        assert_eq!(values[2], f64::INFINITY);
        assert_eq!(values[3], f64::NEG_INFINITY);
        let patch = append.patch.unwrap();
        assert_eq!(patch.status, Some(RunStatus::Finished));
        assert_eq!(patch.add_tags, vec!["best".to_string()]);
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse::<LogBatch>(
            br#"{"series": {"loss": {"steps": [0], "ts_ms": [0], "values": [true]}}}"#,
        )
        .unwrap_err();
        assert_eq!(e.field(), "series.loss.values[0]");
        let e = parse::<LogBatch>(
            br#"{"series": {"loss": {"steps": [0, 1], "ts_ms": [0], "values": [1]}}}"#,
        )
        .unwrap()
        .into_append(0)
        .unwrap_err();
        assert!(e.to_string().contains("differ in length"), "{e}");
        let e =
            parse::<LogBatch>(br#"{"series": {"": {"steps": [0], "ts_ms": [0], "values": [1]}}}"#)
                .unwrap()
                .into_append(0)
                .unwrap_err();
        assert!(e.to_string().contains("must not be empty"), "{e}");
        let e = parse::<LogBatch>(br#"{"surprise": 1}"#).unwrap_err();
        assert!(e.to_string().contains("surprise"), "{e}");
        let e = parse::<StartRun>(br#"{"project": "p", "resume": "sometimes"}"#)
            .unwrap()
            .into_open(0)
            .unwrap_err();
        assert_eq!(e.field(), "resume");
    }
}
