//! W&B sweep files, read as W&B's own sweep controller reads them, so a
//! W&B user's `sweep.yaml` works unchanged: the same keys (an unknown one
//! is an error naming its path), the same inference of a distribution from
//! `values`, `value` or `min`/`max`, the same draws (`ppf`), the same grid
//! and the same hyperband bands.
//!
//! Where W&B's two readers disagree, the library's reading is taken: bounds
//! `min: 0, max: 0.1` (one int, one float) mean `uniform`, where W&B's CLI
//! refuses the file. YAML is read as YAML 1.2, so `1e-5` is a number (W&B's
//! PyYAML reads a string and refuses it).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::SearchError;
use crate::space::{Domain, ParamSpec, Prior};
use crate::trial::Direction;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Grid,
    Random,
    /// W&B's Bayesian search; labbook answers it with TPE.
    Bayes,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Grid => "grid",
            Method::Random => "random",
            Method::Bayes => "bayes",
        }
    }
}

/// What a failed or crashed trial counts as for the model (W&B's `impute`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Impute {
    /// The worst value any finished trial reached.
    #[default]
    Worst,
    /// The trial's own best value.
    Best,
    /// The trial's own last value.
    Latest,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricSpec {
    pub name: String,
    pub goal: Direction,
    /// Once a trial reaches it, no new trials start.
    pub target: Option<f64>,
    pub impute: Impute,
}

/// `early_terminate: {type: hyperband, …}`: the iteration counts ("bands")
/// at which a running trial is compared with the others.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HyperbandSpec {
    pub bands: Vec<u64>,
    pub eta: f64,
    /// Compare the trial's value at the band (true, W&B's default) or its
    /// best value so far.
    pub strict: bool,
}

/// A parameter of the sweep, with its place in the config tree.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepParam {
    /// The keys from the top (`["optimizer", "lr"]`); the spec's name is
    /// them joined by dots, the config key labbook records.
    pub path: Vec<String>,
    pub spec: ParamSpec,
    /// The W&B distribution it was read as.
    pub distribution: &'static str,
}

/// A sweep file, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepSpec {
    pub method: Method,
    pub metric: Option<MetricSpec>,
    /// Every leaf parameter, sorted by path (W&B's order).
    pub parameters: Vec<SweepParam>,
    pub run_cap: Option<u64>,
    pub early_terminate: Option<HyperbandSpec>,
    pub command: Vec<String>,
    pub program: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub project: Option<String>,
    /// What W&B also warns about (the deprecated exponent forms).
    pub warnings: Vec<String>,
}

/// W&B's default command.
pub const DEFAULT_COMMAND: [&str; 4] = ["${env}", "${interpreter}", "${program}", "${args}"];

const TOP_KEYS: &[&str] = &[
    "method",
    "metric",
    "parameters",
    "run_cap",
    "early_terminate",
    "command",
    "program",
    "name",
    "description",
    "project",
    "entity",
    "controller",
    "apiVersion",
    "kind",
];

/// Parses a sweep file's text (YAML, or JSON, which is YAML).
pub fn parse_yaml(text: &str) -> Result<SweepSpec, SearchError> {
    SweepSpec::from_value(&yaml_to_json(text)?)
}

/// A sweep file's text as JSON, as written.
pub fn yaml_to_json(text: &str) -> Result<Value, SearchError> {
    serde_norway::from_str(text)
        .map_err(|e| SearchError::new("(file)", format!("not valid YAML: {e}")))
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, SearchError> {
    v.as_object()
        .ok_or_else(|| SearchError::new(path, format!("must be a mapping, got {}", type_name(v))))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn unknown_keys(map: &Map<String, Value>, allowed: &[&str], path: &str) -> Result<(), SearchError> {
    for key in map.keys() {
        if !allowed.contains(&key.as_str()) {
            let at = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            return Err(SearchError::new(
                at,
                format!("unknown key; expected one of: {}", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

fn string(v: &Value, path: &str) -> Result<String, SearchError> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| SearchError::new(path, format!("must be a string, got {}", type_name(v))))
}

fn number(map: &Map<String, Value>, key: &str, path: &str) -> Result<Option<f64>, SearchError> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|x| x.is_finite())
            .map(Some)
            .ok_or_else(|| SearchError::new(format!("{path}.{key}"), "must be a finite number")),
        Some(other) => Err(SearchError::new(
            format!("{path}.{key}"),
            format!("must be a number, got {}", type_name(other)),
        )),
    }
}

fn is_int(v: Option<&Value>) -> bool {
    v.is_some_and(|v| v.is_i64() || v.is_u64())
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl SweepSpec {
    pub fn from_value(doc: &Value) -> Result<SweepSpec, SearchError> {
        let top = object(doc, "(file)")?;
        unknown_keys(top, TOP_KEYS, "")?;
        let method = match top.get("method") {
            None => {
                return Err(SearchError::new(
                    "method",
                    "is required: grid, random or bayes",
                ));
            }
            Some(v) => match v.as_str() {
                Some("grid") => Method::Grid,
                Some("random") => Method::Random,
                Some("bayes") => Method::Bayes,
                _ => {
                    return Err(SearchError::new(
                        "method",
                        format!("must be grid, random or bayes, got {v}"),
                    ));
                }
            },
        };
        let metric = top.get("metric").map(parse_metric).transpose()?;
        let mut warnings = Vec::new();
        let mut parameters = Vec::new();
        match top.get("parameters") {
            None => return Err(SearchError::new("parameters", "is required")),
            Some(p) => {
                let map = object(p, "parameters")?;
                if map.is_empty() {
                    return Err(SearchError::new(
                        "parameters",
                        "needs at least one parameter",
                    ));
                }
                collect_params(map, &mut Vec::new(), &mut parameters, &mut warnings, 0)?;
            }
        }
        parameters.sort_by(|a: &SweepParam, b: &SweepParam| a.path.cmp(&b.path));
        let run_cap = match top.get("run_cap") {
            None => None,
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 => Some(n),
                _ => {
                    return Err(SearchError::new(
                        "run_cap",
                        format!("must be a whole number above 0, got {v}"),
                    ));
                }
            },
        };
        let early_terminate = top
            .get("early_terminate")
            .map(parse_early_terminate)
            .transpose()?;
        let command: Vec<String> = match top.get("command") {
            None => DEFAULT_COMMAND.iter().map(|s| s.to_string()).collect(),
            Some(Value::Array(items)) if items.is_empty() => {
                DEFAULT_COMMAND.iter().map(|s| s.to_string()).collect()
            }
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    Value::Bool(b) => Ok(if *b { "True" } else { "False" }.to_string()),
                    other => Err(SearchError::new(
                        format!("command[{i}]"),
                        format!("must be a string, got {}", type_name(other)),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(SearchError::new(
                    "command",
                    format!("must be a list of words, got {}", type_name(other)),
                ));
            }
        };
        for (i, word) in command.iter().enumerate() {
            crate::command::check_word(word)
                .map_err(|m| SearchError::new(format!("command[{i}]"), m))?;
        }
        let opt_string = |key: &str| top.get(key).map(|v| string(v, key)).transpose();
        let program = opt_string("program")?;
        let spec = SweepSpec {
            method,
            metric,
            parameters,
            run_cap,
            early_terminate,
            command,
            program,
            name: opt_string("name")?,
            description: opt_string("description")?,
            project: opt_string("project")?,
            warnings,
        };
        spec.check_method()?;
        Ok(spec)
    }

    fn check_method(&self) -> Result<(), SearchError> {
        if self.method == Method::Grid {
            crate::grid::Grid::new(&self.space())?;
        }
        if self.method == Method::Bayes {
            if self.metric.is_none() {
                return Err(SearchError::new(
                    "metric",
                    "bayes search needs a metric to optimize (name and goal)",
                ));
            }
            if self.parameters.iter().all(|p| p.spec.domain.is_single()) {
                return Err(SearchError::new(
                    "parameters",
                    "bayes search needs at least one parameter that varies",
                ));
            }
            if let Some(p) = self
                .parameters
                .iter()
                .find(|p| p.distribution == "categorical_w_probabilities")
            {
                return Err(SearchError::new(
                    format!("parameters.{}", p.spec.name),
                    "probabilities cannot be used with bayes search (they fix the draw); use values",
                ));
            }
        }
        if self.early_terminate.is_some() && self.metric.is_none() {
            return Err(SearchError::new(
                "early_terminate",
                "needs a metric to compare the trials by",
            ));
        }
        if self.command.iter().any(|w| w == "${program}") && self.program.is_none() {
            return Err(SearchError::new(
                "program",
                "the command uses ${program} (the default command does), so the file needs a program: train.py",
            ));
        }
        Ok(())
    }

    /// The parameters as a search space, in W&B's order.
    pub fn space(&self) -> Vec<ParamSpec> {
        self.parameters.iter().map(|p| p.spec.clone()).collect()
    }

    pub fn direction(&self) -> Direction {
        self.metric.as_ref().map(|m| m.goal).unwrap_or_default()
    }

    /// A trial's parameters as W&B hands them to a program: the top-level
    /// keys, a nested group as one mapping.
    pub fn nested_args(&self, params: &BTreeMap<String, Value>) -> Map<String, Value> {
        let mut out = Map::new();
        for p in &self.parameters {
            let Some(value) = params.get(&p.spec.name) else {
                continue;
            };
            let mut node = &mut out;
            for (i, key) in p.path.iter().enumerate() {
                if i + 1 == p.path.len() {
                    node.insert(key.clone(), value.clone());
                    break;
                }
                let entry = node
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                match entry {
                    Value::Object(m) => node = m,
                    _ => break,
                }
            }
        }
        out
    }
}

fn parse_metric(v: &Value) -> Result<MetricSpec, SearchError> {
    let map = object(v, "metric")?;
    unknown_keys(
        map,
        &["name", "goal", "target", "impute", "impute_while_running"],
        "metric",
    )?;
    let name = match map.get("name") {
        None => return Err(SearchError::new("metric.name", "is required")),
        Some(v) => string(v, "metric.name")?,
    };
    if name.is_empty() {
        return Err(SearchError::new("metric.name", "must not be empty"));
    }
    let goal = match map.get("goal") {
        None => Direction::Minimize,
        Some(v) => v.as_str().and_then(Direction::parse).ok_or_else(|| {
            SearchError::new(
                "metric.goal",
                format!("must be minimize or maximize, got {v}"),
            )
        })?,
    };
    let impute = match map.get("impute") {
        None => Impute::Worst,
        Some(v) => match v.as_str() {
            Some("worst") => Impute::Worst,
            Some("best") => Impute::Best,
            Some("latest") => Impute::Latest,
            _ => {
                return Err(SearchError::new(
                    "metric.impute",
                    format!("must be worst, best or latest, got {v}"),
                ));
            }
        },
    };
    if let Some(v) = map.get("impute_while_running")
        && !matches!(v.as_str(), Some("false" | "worst" | "best" | "latest"))
        && *v != Value::Bool(false)
    {
        return Err(SearchError::new(
            "metric.impute_while_running",
            format!("must be false, worst, best or latest, got {v}"),
        ));
    }
    Ok(MetricSpec {
        name,
        goal,
        target: number(map, "target", "metric")?,
        impute,
    })
}

fn parse_early_terminate(v: &Value) -> Result<HyperbandSpec, SearchError> {
    let path = "early_terminate";
    let map = object(v, path)?;
    unknown_keys(
        map,
        &["type", "min_iter", "max_iter", "s", "eta", "strict"],
        path,
    )?;
    match map.get("type").and_then(Value::as_str) {
        Some("hyperband") => {}
        _ => {
            return Err(SearchError::new(
                "early_terminate.type",
                "must be hyperband (the only kind W&B has)",
            ));
        }
    }
    let eta = number(map, "eta", path)?.unwrap_or(3.0);
    if eta <= 1.0 {
        return Err(SearchError::new(
            "early_terminate.eta",
            format!("must be > 1, got {eta}"),
        ));
    }
    let strict = match map.get("strict") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(SearchError::new(
                "early_terminate.strict",
                format!("must be true or false, got {other}"),
            ));
        }
    };
    let whole = |key: &str| -> Result<Option<u64>, SearchError> {
        match map.get(key) {
            None => Ok(None),
            Some(v) => v.as_u64().filter(|n| *n >= 1).map(Some).ok_or_else(|| {
                SearchError::new(
                    format!("{path}.{key}"),
                    format!("must be a whole number ≥ 1, got {v}"),
                )
            }),
        }
    };
    let bands = match (
        whole("min_iter")?,
        whole("max_iter")?,
        number(map, "s", path)?,
    ) {
        (Some(min_iter), _, _) => {
            let mut bands = Vec::new();
            let mut b = min_iter as f64;
            for _ in 0..100 {
                if b > 1e15 {
                    break;
                }
                bands.push(b as u64);
                b *= eta;
            }
            bands
        }
        (None, Some(max_iter), Some(s)) => {
            let mut bands = Vec::new();
            let mut b = max_iter as f64;
            for _ in 0..(s.max(0.0) as u64).min(64) {
                b /= eta;
                if b < 1.0 {
                    break;
                }
                bands.push(b as u64);
            }
            bands.sort_unstable();
            bands
        }
        (None, Some(_), None) => {
            return Err(SearchError::new(
                "early_terminate.s",
                "is required with max_iter",
            ));
        }
        (None, None, _) => {
            return Err(SearchError::new(
                "early_terminate.min_iter",
                "give min_iter, or max_iter and s",
            ));
        }
    };
    if bands.is_empty() {
        return Err(SearchError::new(
            "early_terminate",
            "max_iter, s and eta leave no band of at least 1 iteration",
        ));
    }
    Ok(HyperbandSpec { bands, eta, strict })
}

fn collect_params(
    map: &Map<String, Value>,
    prefix: &mut Vec<String>,
    out: &mut Vec<SweepParam>,
    warnings: &mut Vec<String>,
    depth: usize,
) -> Result<(), SearchError> {
    // Nesting is bounded so no file can exhaust the stack.
    if depth > 16 {
        return Err(SearchError::new(
            format!("parameters.{}", prefix.join(".")),
            "nested more than 16 levels deep",
        ));
    }
    for (key, value) in map {
        prefix.push(key.clone());
        let path = format!("parameters.{}", prefix.join("."));
        if !valid_name(key) {
            return Err(SearchError::new(
                path,
                "a parameter name starts with a letter or _ and has only letters, digits, _, . and -",
            ));
        }
        let body = object(value, &path)?;
        if body.contains_key("parameters") {
            unknown_keys(body, &["parameters"], &path)?;
            let inner = object(&body["parameters"], &format!("{path}.parameters"))?;
            if inner.is_empty() {
                return Err(SearchError::new(
                    format!("{path}.parameters"),
                    "needs at least one parameter",
                ));
            }
            collect_params(inner, prefix, out, warnings, depth + 1)?;
        } else {
            let name = prefix.join(".");
            let (spec, distribution) = parse_param(&name, body, &path)?;
            if matches!(
                distribution,
                "log_uniform" | "q_log_uniform" | "inv_log_uniform"
            ) {
                warnings.push(format!(
                    "{path}: {distribution}'s min and max are exponents of e (as in W&B, which deprecates it); log_uniform_values takes the values themselves"
                ));
            }
            out.push(SweepParam {
                path: prefix.clone(),
                spec,
                distribution,
            });
        }
        prefix.pop();
    }
    Ok(())
}

/// The keys each distribution takes, `distribution` aside.
fn keys_of(distribution: &str) -> Option<&'static [&'static str]> {
    Some(match distribution {
        "constant" => &["value"],
        "categorical" => &["values"],
        "categorical_w_probabilities" => &["values", "probabilities"],
        "int_uniform"
        | "uniform"
        | "log_uniform"
        | "log_uniform_values"
        | "inv_log_uniform"
        | "inv_log_uniform_values" => &["min", "max"],
        "q_uniform" | "q_log_uniform" | "q_log_uniform_values" => &["min", "max", "q"],
        "normal" | "log_normal" => &["mu", "sigma"],
        "q_normal" | "q_log_normal" => &["mu", "sigma", "q"],
        "beta" => &["a", "b"],
        "q_beta" => &["a", "b", "q"],
        _ => return None,
    })
}

const DISTRIBUTIONS: &str = "constant, categorical, categorical_w_probabilities, int_uniform, uniform, q_uniform, log_uniform, log_uniform_values, q_log_uniform, q_log_uniform_values, inv_log_uniform, inv_log_uniform_values, normal, q_normal, log_normal, q_log_normal, beta, q_beta";

fn parse_param(
    name: &str,
    body: &Map<String, Value>,
    path: &str,
) -> Result<(ParamSpec, &'static str), SearchError> {
    let distribution: &'static str = match body.get("distribution") {
        Some(v) => {
            let d = v.as_str().unwrap_or("");
            DISTRIBUTIONS.split(", ").find(|k| *k == d).ok_or_else(|| {
                SearchError::new(
                    format!("{path}.distribution"),
                    format!("unknown distribution {v}; one of: {DISTRIBUTIONS}"),
                )
            })?
        }
        None => {
            if body.contains_key("values") {
                if body.contains_key("probabilities") {
                    "categorical_w_probabilities"
                } else {
                    "categorical"
                }
            } else if body.contains_key("value") {
                "constant"
            } else if body.contains_key("min") || body.contains_key("max") {
                if is_int(body.get("min")) && is_int(body.get("max")) {
                    "int_uniform"
                } else {
                    "uniform"
                }
            } else {
                return Err(SearchError::new(
                    path,
                    "give values, value, min and max, or a distribution",
                ));
            }
        }
    };
    let allowed = keys_of(distribution).unwrap_or(&[]);
    let mut with_distribution: Vec<&str> = allowed.to_vec();
    with_distribution.push("distribution");
    unknown_keys(body, &with_distribution, path)?;
    let num = |key: &str| number(body, key, path);
    let need = |key: &str| -> Result<f64, SearchError> {
        num(key)?.ok_or_else(|| {
            SearchError::new(
                format!("{path}.{key}"),
                format!("is required for {distribution}"),
            )
        })
    };
    let q = match num("q")? {
        Some(q) if q <= 0.0 => {
            return Err(SearchError::new(
                format!("{path}.q"),
                format!("must be > 0, got {q}"),
            ));
        }
        Some(q) => Some(q),
        None if distribution.starts_with("q_") => Some(1.0),
        None => None,
    };
    // W&B gives an integer when q was written as one.
    let integer = is_int(body.get("q"));
    let bounds = || -> Result<(f64, f64), SearchError> {
        let (min, max) = (need("min")?, need("max")?);
        if min >= max {
            return Err(SearchError::new(
                path,
                format!("min {min} is not less than max {max}"),
            ));
        }
        Ok((min, max))
    };
    let positive_bounds = || -> Result<(f64, f64), SearchError> {
        let (min, max) = bounds()?;
        if min <= 0.0 {
            return Err(SearchError::new(
                format!("{path}.min"),
                format!(
                    "{distribution} needs min > 0 (the values themselves, on a log scale), got {min}"
                ),
            ));
        }
        Ok((min, max))
    };
    let mu_sigma = || -> Result<(f64, f64), SearchError> {
        let mu = num("mu")?.unwrap_or(0.0);
        let sigma = num("sigma")?.unwrap_or(1.0);
        if sigma < 0.0 {
            return Err(SearchError::new(
                format!("{path}.sigma"),
                format!("must be ≥ 0, got {sigma}"),
            ));
        }
        Ok((mu, sigma))
    };
    let float = |low: f64, high: f64, log: bool| Domain::Float {
        low,
        high,
        log,
        step: None,
    };
    let mut spec = match distribution {
        "constant" => ParamSpec::new(
            name,
            Domain::Categorical {
                choices: vec![body.get("value").cloned().unwrap_or(Value::Null)],
            },
        ),
        "categorical" | "categorical_w_probabilities" => {
            let values = match body.get("values") {
                Some(Value::Array(v)) if !v.is_empty() => v.clone(),
                Some(Value::Array(_)) => {
                    return Err(SearchError::new(
                        format!("{path}.values"),
                        "must not be empty",
                    ));
                }
                Some(other) => {
                    return Err(SearchError::new(
                        format!("{path}.values"),
                        format!("must be a list, got {}", type_name(other)),
                    ));
                }
                None => return Err(SearchError::new(format!("{path}.values"), "is required")),
            };
            let mut spec = ParamSpec::new(
                name,
                Domain::Categorical {
                    choices: values.clone(),
                },
            );
            if distribution == "categorical_w_probabilities" {
                let probs: Vec<f64> = match body.get("probabilities") {
                    Some(Value::Array(p)) => p
                        .iter()
                        .map(|x| x.as_f64().filter(|x| *x >= 0.0 && x.is_finite()))
                        .collect::<Option<_>>()
                        .ok_or_else(|| {
                            SearchError::new(format!("{path}.probabilities"), "must be numbers ≥ 0")
                        })?,
                    _ => {
                        return Err(SearchError::new(
                            format!("{path}.probabilities"),
                            "must be a list of numbers",
                        ));
                    }
                };
                if probs.len() != values.len() {
                    return Err(SearchError::new(
                        format!("{path}.probabilities"),
                        format!(
                            "has {} entries for {} values; give one per value",
                            probs.len(),
                            values.len()
                        ),
                    ));
                }
                let sum: f64 = probs.iter().sum();
                if (sum - 1.0).abs() > 1e-8 + 1e-5 {
                    return Err(SearchError::new(
                        format!("{path}.probabilities"),
                        format!("must sum to 1, they sum to {sum}"),
                    ));
                }
                spec.prior = Prior::Weighted {
                    probabilities: probs,
                };
            }
            spec
        }
        "int_uniform" => {
            if !(is_int(body.get("min")) && is_int(body.get("max"))) {
                return Err(SearchError::new(
                    path,
                    "int_uniform needs whole-number min and max (write 1, not 1.0)",
                ));
            }
            let (min, max) = bounds()?;
            ParamSpec::new(
                name,
                Domain::Int {
                    low: min as i64,
                    high: max as i64,
                    log: false,
                    step: 1,
                },
            )
        }
        "uniform" | "q_uniform" => {
            let (min, max) = bounds()?;
            ParamSpec::new(name, float(min, max, false))
        }
        "log_uniform" | "q_log_uniform" => {
            let (min, max) = bounds()?;
            ParamSpec::new(name, float(min.exp(), max.exp(), true))
        }
        "inv_log_uniform" => {
            let (min, max) = bounds()?;
            ParamSpec::new(name, float((-max).exp(), (-min).exp(), true))
        }
        "log_uniform_values" | "q_log_uniform_values" | "inv_log_uniform_values" => {
            let (min, max) = positive_bounds()?;
            ParamSpec::new(name, float(min, max, true))
        }
        "normal" | "q_normal" => {
            let (mu, sigma) = mu_sigma()?;
            let mut spec = ParamSpec::new(name, float(mu - 4.0 * sigma, mu + 4.0 * sigma, false));
            spec.prior = Prior::Normal { mu, sigma };
            spec
        }
        "log_normal" | "q_log_normal" => {
            let (mu, sigma) = mu_sigma()?;
            let mut spec = ParamSpec::new(
                name,
                float((mu - 4.0 * sigma).exp(), (mu + 4.0 * sigma).exp(), true),
            );
            spec.prior = Prior::LogNormal { mu, sigma };
            spec
        }
        _ => {
            // beta, q_beta
            let a = num("a")?.unwrap_or(1.0);
            let b = num("b")?.unwrap_or(1.0);
            for (key, v) in [("a", a), ("b", b)] {
                if v <= 0.0 {
                    return Err(SearchError::new(
                        format!("{path}.{key}"),
                        format!("must be > 0, got {v}"),
                    ));
                }
            }
            let mut spec = ParamSpec::new(name, float(0.0, 1.0, false));
            spec.prior = Prior::Beta { a, b };
            spec
        }
    };
    spec.q = q;
    spec.integer = q.is_some() && integer;
    spec.domain.validate(path)?;
    Ok((spec, distribution))
}

#[cfg(test)]
mod tests;

/// One trial as the sweep's scheduler sees it.
pub struct SweepTrial<'a> {
    pub obs: &'a crate::Observation,
    pub grid_index: Option<u64>,
    pub retry_of: Option<u64>,
}

/// What a sweep does next.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    Trial {
        params: BTreeMap<String, Value>,
        grid_index: Option<u64>,
        retry_of: Option<u64>,
    },
    /// Nothing to start now; trials still running may change that.
    Wait(String),
    Finish(String),
}

/// How many trials in a row may fail or crash before a sweep stops.
pub const MAX_FAILURES_IN_A_ROW: usize = 5;

impl SweepSpec {
    /// The value a failed or crashed trial counts as for the model (W&B's
    /// `impute`): the worst value any finished trial reached by default.
    fn impute(&self, trials: &[SweepTrial<'_>], own: &crate::Observation) -> Option<f64> {
        let goal = self.direction();
        let imputed = self.metric.as_ref().map_or(Impute::Worst, |m| m.impute);
        match imputed {
            Impute::Worst => {
                let worst = trials
                    .iter()
                    .filter(|t| t.obs.state().is_finished())
                    .filter_map(|t| t.obs.value)
                    .filter(|v| v.is_finite())
                    .fold(None, |w: Option<f64>, v| {
                        Some(w.map_or(v, |w| if goal.better(w, v) { v } else { w }))
                    });
                Some(worst.unwrap_or(0.0))
            }
            Impute::Best => own.value.or(Some(0.0)),
            Impute::Latest => own
                .intermediate
                .last()
                .map(|&(_, v)| v)
                .or(own.value)
                .or(Some(0.0)),
        }
    }

    /// Decides the next trial of a sweep from its trials so far (numbered
    /// 0…n−1): stop at the run cap, at the metric's target, or after
    /// [`MAX_FAILURES_IN_A_ROW`] failures in a row; for a grid, first a
    /// crashed point once more, then the next point no trial has taken.
    pub fn next(&self, seed: u64, trials: &[SweepTrial<'_>]) -> Next {
        use crate::TrialState as S;
        let running = trials
            .iter()
            .filter(|t| !t.obs.state().is_finished())
            .count();
        let wait_or = |reason: String| {
            if running > 0 {
                Next::Wait(format!("{reason}; {running} trial(s) still running"))
            } else {
                Next::Finish(reason)
            }
        };
        if let (Some(metric), Some(target)) =
            (&self.metric, self.metric.as_ref().and_then(|m| m.target))
            && let Some(hit) = trials.iter().find(|t| {
                t.obs.state() == S::Complete
                    && t.obs.value.is_some_and(|v| !metric.goal.better(target, v))
            })
        {
            return wait_or(format!(
                "trial #{} reached the target {} = {target}",
                hit.obs.number, metric.name
            ));
        }
        let mut finished: Vec<&SweepTrial<'_>> = trials
            .iter()
            .filter(|t| t.obs.state().is_finished())
            .collect();
        finished.sort_by_key(|t| t.obs.number);
        let streak = finished
            .iter()
            .rev()
            .take_while(|t| matches!(t.obs.state(), S::Failed | S::Crashed))
            .count();
        if streak >= MAX_FAILURES_IN_A_ROW {
            return wait_or(format!(
                "stopped after {streak} trials in a row failed or crashed; fix the program and run the sweep again"
            ));
        }
        if let Some(cap) = self.run_cap {
            // As W&B counts: a trial that crashed without a value is not one
            // of the runs the cap allows.
            let launched = trials
                .iter()
                .filter(|t| !(t.obs.state() == S::Crashed && t.obs.value.is_none()))
                .count() as u64;
            if launched >= cap {
                return wait_or(format!("the run cap of {cap} trials is reached"));
            }
        }
        let number = trials.len() as u64;
        let space = self.space();
        match self.method {
            Method::Grid => {
                let grid = match crate::grid::Grid::new(&space) {
                    Ok(g) => g,
                    Err(e) => return Next::Finish(e.to_string()),
                };
                // A crashed point runs once more; its retry is never retried.
                let retried: std::collections::BTreeSet<u64> =
                    trials.iter().filter_map(|t| t.retry_of).collect();
                if let Some(crashed) = trials.iter().find(|t| {
                    t.obs.state() == S::Crashed
                        && t.retry_of.is_none()
                        && t.grid_index.is_some()
                        && !retried.contains(&t.obs.number)
                }) {
                    return Next::Trial {
                        params: crashed.obs.params.clone(),
                        grid_index: crashed.grid_index,
                        retry_of: Some(crashed.obs.number),
                    };
                }
                let taken: std::collections::BTreeSet<u64> =
                    trials.iter().filter_map(|t| t.grid_index).collect();
                match (0..grid.len()).find(|i| !taken.contains(i)) {
                    Some(i) => Next::Trial {
                        params: grid.point(i).unwrap_or_default(),
                        grid_index: Some(i),
                        retry_of: None,
                    },
                    None => wait_or(format!(
                        "every one of the grid's {} points has run",
                        grid.len()
                    )),
                }
            }
            Method::Random => Next::Trial {
                params: crate::random::sample(&space, seed, number),
                grid_index: None,
                retry_of: None,
            },
            Method::Bayes => {
                let history: Vec<crate::Observation> = trials
                    .iter()
                    .map(|t| {
                        let mut o = t.obs.clone();
                        if matches!(o.state(), S::Failed | S::Crashed) {
                            o.value = self.impute(trials, t.obs);
                        }
                        o
                    })
                    .collect();
                let tpe = crate::tpe::Tpe::default();
                Next::Trial {
                    params: tpe.sample(&space, &history, self.direction(), seed, number),
                    grid_index: None,
                    retry_of: None,
                }
            }
        }
    }
}
