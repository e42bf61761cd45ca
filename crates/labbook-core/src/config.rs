//! Run configs: nested input flattened to dotted keys with typed values.

use std::collections::BTreeMap;

use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::redact;

/// Longest config key or metric key accepted, in bytes (MLflow's limit too).
pub const MAX_KEY_LEN: usize = 250;
/// Deepest nesting accepted in a config: anything deeper is almost surely a
/// cycle or a serialized object, not a hyperparameter.
pub const MAX_DEPTH: usize = 32;
/// Longest string value kept in a config (params in MLflow allow 6000; labbook
/// is generous but bounded so one run cannot bloat every listing).
pub const MAX_STRING_LEN: usize = 64 * 1024;

/// One config value. `Object` appears only inside lists: top-level objects
/// are flattened into dotted keys.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<ConfigValue>),
    Object(BTreeMap<String, ConfigValue>),
}

/// A flattened config: dotted key → value, sorted by key.
pub type Config = BTreeMap<String, ConfigValue>;

impl ConfigValue {
    /// The value as a number when it is one (ints widen to f64; bools do not).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ConfigValue::Int(i) => Some(*i as f64),
            ConfigValue::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// A short human form for tables: strings unquoted, floats in their
    /// shortest round-trip form.
    pub fn display(&self) -> String {
        match self {
            ConfigValue::Null => "null".into(),
            ConfigValue::Bool(b) => b.to_string(),
            ConfigValue::Int(i) => i.to_string(),
            ConfigValue::Float(f) => format_float(*f),
            ConfigValue::Str(s) => s.clone(),
            other => serde_json::to_string(other).unwrap_or_default(),
        }
    }

    /// Converts JSON input. JSON cannot carry NaN or infinities; the
    /// `{"$float": "NaN"}` form this type serializes them as is read back.
    pub fn from_json(value: &serde_json::Value) -> ConfigValue {
        match value {
            serde_json::Value::Null => ConfigValue::Null,
            serde_json::Value::Bool(b) => ConfigValue::Bool(*b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    ConfigValue::Int(i)
                } else {
                    ConfigValue::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(s) => ConfigValue::Str(s.clone()),
            serde_json::Value::Array(items) => {
                ConfigValue::List(items.iter().map(ConfigValue::from_json).collect())
            }
            serde_json::Value::Object(map) => {
                if let Some(f) = special_float(map) {
                    return ConfigValue::Float(f);
                }
                ConfigValue::Object(
                    map.iter()
                        .map(|(k, v)| (k.clone(), ConfigValue::from_json(v)))
                        .collect(),
                )
            }
        }
    }
}

fn special_float(map: &serde_json::Map<String, serde_json::Value>) -> Option<f64> {
    if map.len() != 1 {
        return None;
    }
    match map.get("$float")?.as_str()? {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// Shortest form that parses back to the same f64, as Python prints floats.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else if f == f.trunc() && f.abs() < 1e16 {
        format!("{f:.1}")
    } else if f.abs() < 1e-4 {
        // Rust prints 1e-7 as 0.0000001; scientific is easier to read there.
        format!("{f:e}")
    } else {
        format!("{f}")
    }
}

impl Serialize for ConfigValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ConfigValue::Null => serializer.serialize_unit(),
            ConfigValue::Bool(b) => serializer.serialize_bool(*b),
            ConfigValue::Int(i) => serializer.serialize_i64(*i),
            ConfigValue::Float(f) if f.is_finite() => serializer.serialize_f64(*f),
            ConfigValue::Float(f) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("$float", &format_float(*f))?;
                map.end()
            }
            ConfigValue::Str(s) => serializer.serialize_str(s),
            ConfigValue::List(items) => items.serialize(serializer),
            ConfigValue::Object(map) => map.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for ConfigValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer).map_err(de::Error::custom)?;
        Ok(ConfigValue::from_json(&value))
    }
}

/// Checks one key (config or metric) and names it in the error.
pub fn validate_key(kind: &str, key: &str) -> Result<(), ValidationError> {
    let field = || format!("{kind} key {}", truncate_for_message(key));
    if key.is_empty() {
        return Err(ValidationError::new(kind, "key must not be empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(ValidationError::new(
            field(),
            format!("key is {} bytes; the limit is {MAX_KEY_LEN}", key.len()),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field(),
            "key contains a control character",
        ));
    }
    Ok(())
}

/// Quotes a key for an error message without echoing megabytes back.
pub fn truncate_for_message(s: &str) -> String {
    const LIMIT: usize = 60;
    if s.len() <= LIMIT {
        format!("{s:?}")
    } else {
        let mut end = LIMIT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{:?}…", &s[..end])
    }
}

/// At most `width` characters of `s` around the 1-based character `column`,
/// with `…` where some were cut: an error quotes what the user typed, but
/// never megabytes of it.
pub fn clip(s: &str, column: usize, width: usize) -> String {
    let count = s.chars().count();
    if count <= width {
        return s.to_string();
    }
    let start = column.saturating_sub(1 + width / 2).min(count - width);
    let mut out: String = s.chars().skip(start).take(width).collect();
    if start > 0 {
        out.insert(0, '…');
    }
    if start + width < count {
        out.push('…');
    }
    out
}

/// Flattens nested objects into dotted keys (`{"model": {"depth": 4}}` →
/// `model.depth = 4`), validates keys, depth and string sizes, and hides
/// secrets ([`redact_entry`]).
pub fn flatten(nested: &BTreeMap<String, ConfigValue>) -> Result<Config, ValidationError> {
    let mut out = Config::new();
    flatten_into(&mut out, "", nested, 0)?;
    Ok(out)
}

fn flatten_into(
    out: &mut Config,
    prefix: &str,
    map: &BTreeMap<String, ConfigValue>,
    depth: usize,
) -> Result<(), ValidationError> {
    if depth > MAX_DEPTH {
        return Err(ValidationError::new(
            format!("config key {}", truncate_for_message(prefix)),
            format!("nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    for (key, value) in map {
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        validate_key("config", &full)?;
        match value {
            ConfigValue::Object(inner) if !inner.is_empty() => {
                flatten_into(out, &full, inner, depth + 1)?
            }
            other => {
                check_value(&full, other, depth + 1)?;
                let value = redact_entry(&full, other);
                out.insert(full, value);
            }
        }
    }
    Ok(())
}

fn check_value(key: &str, value: &ConfigValue, depth: usize) -> Result<(), ValidationError> {
    if depth > MAX_DEPTH {
        return Err(ValidationError::new(
            format!("config key {}", truncate_for_message(key)),
            format!("nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    match value {
        ConfigValue::Str(s) if s.len() > MAX_STRING_LEN => Err(ValidationError::new(
            format!("config key {}", truncate_for_message(key)),
            format!(
                "string value is {} bytes; the limit is {MAX_STRING_LEN}",
                s.len()
            ),
        )),
        ConfigValue::List(items) => items
            .iter()
            .try_for_each(|item| check_value(key, item, depth + 1)),
        ConfigValue::Object(map) => map
            .values()
            .try_for_each(|v| check_value(key, v, depth + 1)),
        _ => Ok(()),
    }
}

/// An MLflow param as labbook keeps it. Text that reads as a finite number
/// in any spelling (`5e-05`, `1E3`, `.5`, `+3`) becomes that number, so
/// filters and sorts compare numbers whatever the client's formatting; the
/// exact text comes back beside it when the number's own spelling differs,
/// for MLflow's API to answer as sent. Secrets are masked by
/// [`redact_entry`], and a masked value keeps no spelling.
pub fn param_from_text(key: &str, text: &str) -> (ConfigValue, Option<String>) {
    let typed = match text.parse::<i64>() {
        Ok(i) => ConfigValue::Int(i),
        Err(_) => match text.parse::<f64>() {
            Ok(f) if f.is_finite() => ConfigValue::Float(f),
            _ => ConfigValue::Str(text.to_owned()),
        },
    };
    let value = redact_entry(key, &typed);
    let spelling = (value == typed && value.display() != text).then(|| text.to_owned());
    (value, spelling)
}

/// The value stored for config key `key`: secrets never reach the store.
///
/// Under a secret-like key ([`redact::secret_name`]: `api_key`, `hf_token`,
/// `db.password`) strings, lists and objects become `"***"`; numbers do too
/// under a password-like key ([`redact::password_name`]: a PIN), but not
/// under others (tokens and API keys are strings, and `"odd key": 2` is a
/// hyperparameter); null and booleans stay (`use_auth_token: true`).
/// Elsewhere strings lose credentials ([`redact::redact_value`]:
/// `postgres://u:***@h/db`), inside lists and objects too. [`flatten`]
/// applies it, so every way a config arrives (SDK, `--config`, the write
/// API) gets it; exported for paths that build configs without flattening.
pub fn redact_entry(key: &str, value: &ConfigValue) -> ConfigValue {
    if redact::secret_name(key) {
        let keep = match value {
            ConfigValue::Null | ConfigValue::Bool(_) => true,
            ConfigValue::Int(_) | ConfigValue::Float(_) => !redact::password_name(key),
            _ => false,
        };
        return if keep {
            value.clone()
        } else {
            ConfigValue::Str(redact::MASK.to_owned())
        };
    }
    match value {
        ConfigValue::Str(s) => ConfigValue::Str(redact::redact_value(s)),
        ConfigValue::List(items) => {
            ConfigValue::List(items.iter().map(|v| redact_entry("", v)).collect())
        }
        ConfigValue::Object(map) => ConfigValue::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), redact_entry(k, v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Parses a JSON object (the CLI's and HTTP API's config input) and flattens it.
pub fn config_from_json(value: &serde_json::Value) -> Result<Config, ValidationError> {
    match ConfigValue::from_json(value) {
        ConfigValue::Object(map) => flatten(&map),
        ConfigValue::Null => Ok(Config::new()),
        _ => Err(ValidationError::new(
            "config",
            "must be an object of key → value",
        )),
    }
}

/// The seed a run declares in its config, if any: `seed`, `random_seed` or
/// any key ending in `.seed`, integers only.
pub fn find_seed(config: &Config) -> Option<(String, i64)> {
    config.iter().find_map(|(key, value)| {
        let named_seed = key == "seed" || key == "random_seed" || key.ends_with(".seed");
        match value {
            ConfigValue::Int(i) if named_seed => Some((key.clone(), *i)),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_in_any_number_spelling_are_numbers_that_remember_their_text() {
        let cases: [(&str, ConfigValue, Option<&str>); 10] = [
            ("5e-05", ConfigValue::Float(5e-5), Some("5e-05")),
            ("1e-08", ConfigValue::Float(1e-8), Some("1e-08")),
            ("1e+20", ConfigValue::Float(1e20), Some("1e+20")),
            ("1E3", ConfigValue::Float(1000.0), Some("1E3")),
            (".5", ConfigValue::Float(0.5), Some(".5")),
            ("0.001", ConfigValue::Float(0.001), None),
            ("32", ConfigValue::Int(32), None),
            ("inf", ConfigValue::Str("inf".into()), None),
            ("nan", ConfigValue::Str("nan".into()), None),
            ("adam", ConfigValue::Str("adam".into()), None),
        ];
        for (text, value, spelling) in cases {
            assert_eq!(
                param_from_text("lr", text),
                (value, spelling.map(str::to_owned)),
                "{text}"
            );
        }
        // A masked secret keeps no trace of what was sent.
        assert_eq!(
            param_from_text("db_password", "1e-3"),
            (ConfigValue::Str(redact::MASK.to_owned()), None)
        );
    }

    #[test]
    fn clip_keeps_short_text_and_a_window_around_the_column_of_long_text() {
        assert_eq!(clip("a = 1", 3, 80), "a = 1");
        let long = format!("{}X{}", "a".repeat(500), "b".repeat(500));
        let clipped = clip(&long, 501, 20);
        assert_eq!(clipped, format!("…{}X{}…", "a".repeat(10), "b".repeat(9)));
        assert_eq!(clip(&long, 1, 10), format!("{}…", "a".repeat(10)));
        assert_eq!(clip(&long, 1001, 10), format!("…{}", "b".repeat(10)));
        assert_eq!(clip("éééé", 4, 2), "…éé");
    }

    #[test]
    fn nested_objects_become_dotted_keys_with_types_kept() {
        let config = config_from_json(&json!({
            "lr": 0.001, "epochs": 10, "model": {"depth": 4, "act": "relu", "norm": null},
            "flags": [1, "a", true], "use_amp": false
        }))
        .unwrap();
        assert_eq!(config["lr"], ConfigValue::Float(0.001));
        assert_eq!(config["epochs"], ConfigValue::Int(10));
        assert_eq!(config["model.depth"], ConfigValue::Int(4));
        assert_eq!(config["model.act"], ConfigValue::Str("relu".into()));
        assert_eq!(config["model.norm"], ConfigValue::Null);
        assert_eq!(config["use_amp"], ConfigValue::Bool(false));
        assert_eq!(
            config["flags"],
            ConfigValue::List(vec![
                ConfigValue::Int(1),
                ConfigValue::Str("a".into()),
                ConfigValue::Bool(true)
            ])
        );
    }

    #[test]
    fn non_finite_floats_round_trip_through_json() {
        for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.5, -0.0] {
            let v = ConfigValue::Float(f);
            let text = serde_json::to_string(&v).unwrap();
            let back: ConfigValue = serde_json::from_str(&text).unwrap();
            match back {
                ConfigValue::Float(g) => {
                    assert!(g.to_bits() == f.to_bits() || (g.is_nan() && f.is_nan()))
                }
                other => panic!("{text} came back as {other:?}"),
            }
        }
    }

    #[test]
    fn bad_configs_name_the_field() {
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!({ "a": deep });
        }
        let err = config_from_json(&deep).unwrap_err();
        assert!(err.to_string().contains("nested deeper"), "{err}");

        let long_key = "k".repeat(300);
        let err = config_from_json(&json!({ long_key: 1 })).unwrap_err();
        assert!(err.to_string().contains("limit is 250"), "{err}");

        let err = config_from_json(&json!({ "bad\u{0}key": 1 })).unwrap_err();
        assert!(err.to_string().contains("control character"), "{err}");

        let err = config_from_json(&json!([1, 2])).unwrap_err();
        assert_eq!(err.field(), "config");
    }

    #[test]
    fn seeds_are_found_by_name() {
        let config = config_from_json(&json!({"train": {"seed": 7}, "lr": 0.1})).unwrap();
        assert_eq!(find_seed(&config), Some(("train.seed".into(), 7)));
        let config = config_from_json(&json!({"seed": "abc"})).unwrap();
        assert_eq!(find_seed(&config), None);
    }

    #[test]
    fn secrets_in_configs_are_hidden() {
        let config = config_from_json(&json!({
            "api_key": "abc",
            "hf_token": "hf_x",
            "db": {"password": 1234, "url": "postgres://u:pw@h/db"},
            "odd key": 2,
            "use_auth_token": true,
            "token": null,
            "urls": ["https://u:pw@h/x?token=t", {"secret": "s", "lr": 0.1}],
            "lr": 0.001,
            "tokenizer": "gpt2",
            "max_tokens": 512,
            "pad_token": "<pad>",
            "sort_key": "loss",
            "author": "me",
            "data": "/data/train.csv",
            "site": "https://example.com/a?page=2"
        }))
        .unwrap();
        let mask = || ConfigValue::Str("***".into());
        assert_eq!(config["api_key"], mask());
        assert_eq!(config["hf_token"], mask());
        assert_eq!(config["db.password"], mask());
        assert_eq!(
            config["db.url"],
            ConfigValue::Str("postgres://u:***@h/db".into())
        );
        assert_eq!(config["odd key"], ConfigValue::Int(2));
        assert_eq!(config["use_auth_token"], ConfigValue::Bool(true));
        assert_eq!(config["token"], ConfigValue::Null);
        let text = serde_json::to_string(&config["urls"]).unwrap();
        assert_eq!(
            text,
            r#"["https://h/x?token=***",{"lr":0.1,"secret":"***"}]"#
        );
        assert_eq!(config["lr"], ConfigValue::Float(0.001));
        assert_eq!(config["tokenizer"], ConfigValue::Str("gpt2".into()));
        assert_eq!(config["max_tokens"], ConfigValue::Int(512));
        assert_eq!(config["pad_token"], ConfigValue::Str("<pad>".into()));
        assert_eq!(config["sort_key"], ConfigValue::Str("loss".into()));
        assert_eq!(config["author"], ConfigValue::Str("me".into()));
        assert_eq!(config["data"], ConfigValue::Str("/data/train.csv".into()));
        assert_eq!(
            config["site"],
            ConfigValue::Str("https://example.com/a?page=2".into())
        );
    }

    #[test]
    fn floats_display_like_python() {
        assert_eq!(format_float(0.001), "0.001");
        assert_eq!(format_float(3.0), "3.0");
        assert_eq!(format_float(1e-7), "1e-7");
        assert_eq!(format_float(f64::NAN), "NaN");
    }
}
