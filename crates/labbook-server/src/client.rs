//! The SDK's side of labbook's write API: a blocking HTTP client, and
//! [`HttpSink`], which lets a run's background writer log into a server.
//!
//! Retries are safe by construction: a run start carries the client's own
//! id and start time, and every log batch its id, so a request repeated
//! because its answer was lost changes nothing the second time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use labbook_core::metric::json_float;
use labbook_core::{Config, SeriesColumns, SeriesSummary, ValidationError};
use labbook_store::writer::{FlushBatch, Sink};
use labbook_store::{Result, StoreError};

use crate::wire::{LogBatch, StartRun};

/// The most a request carries, in point-sized units of about 60 bytes of
/// JSON (see [`entry_cost`]): under 3 MB, within the server's 4 MiB limit.
const POINTS_PER_REQUEST: usize = 50_000;

/// How long calls other than log batches keep retrying an unreachable
/// server (log batches are retried by the writer, without a limit).
const RETRY_FOR: Duration = Duration::from_secs(60);

/// A labbook server, as the SDK talks to it.
pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// How long calls other than log batches keep retrying.
    retry_for: Duration,
    /// `Authorization` for a server that asks who is calling
    /// (`LABBOOK_TOKEN`).
    authorization: Option<String>,
}

/// What a run start answers.
#[derive(Debug, Clone)]
pub struct StartedRun {
    pub id: String,
    pub name: String,
    pub project: String,
    pub config: Config,
    pub summary: BTreeMap<String, Value>,
    pub next_step: i64,
}

/// Whether a failed call may be sent again.
#[derive(Clone, Copy, PartialEq)]
enum Repeat {
    /// The request is idempotent: repeat after any failure the server
    /// might recover from.
    Safe,
    /// Repeat only when the request never reached the server.
    UnsentOnly,
}

enum Failure {
    /// The request never reached the server.
    Unsent(String),
    /// It may or may not have been applied: the connection dropped, or the
    /// server failed (5xx).
    Unknown(String),
    /// The server refused it; repeating cannot help.
    Refused(StoreError),
}

impl Client {
    /// A client for the server at `url` (`http://host:port`).
    pub fn new(url: &str) -> Result<Client> {
        let base = url.trim_end_matches('/').to_string();
        if !base.starts_with("http://") {
            return Err(ValidationError::new(
                "url",
                format!(
                    "{url:?} is not an http:// address of a labbook server (e.g. http://127.0.0.1:5000)"
                ),
            )
            .into());
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(60)))
            .build();
        Ok(Client {
            base,
            agent: ureq::Agent::new_with_config(config),
            retry_for: RETRY_FOR,
            authorization: std::env::var("LABBOOK_TOKEN")
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .map(|t| format!("Bearer {t}")),
        })
    }

    /// A request with the client's credentials, if it has any.
    fn signed<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(value) => request.header("authorization", value),
            None => request,
        }
    }

    /// How long a call keeps retrying an unreachable or failing server
    /// before it fails (one minute unless set).
    pub fn retrying_for(mut self, window: Duration) -> Client {
        self.retry_for = window;
        self
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// `labbook.init()` against the server. Give the request an `id`,
    /// `created_ms`, `host` and `pid` so that a repeat is recognised.
    pub fn start_run(&self, start: &StartRun) -> Result<StartedRun> {
        let body = serde_json::to_vec(start).map_err(|e| StoreError::Internal(e.to_string()))?;
        let answer = self.call_retrying("/api/v1/runs", &body, Repeat::Safe)?;
        let run = answer.get("run").cloned().unwrap_or(Value::Null);
        let text = |key: &str| {
            run.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let config = match run.get("config") {
            Some(c) => labbook_core::config::config_from_json(c)?,
            None => Config::new(),
        };
        let summary = match run.get("summary") {
            Some(Value::Object(map)) => map.clone().into_iter().collect(),
            _ => BTreeMap::new(),
        };
        Ok(StartedRun {
            id: text("id"),
            name: text("name"),
            project: text("project"),
            config,
            summary,
            next_step: answer.get("next_step").and_then(Value::as_i64).unwrap_or(0),
        })
    }

    /// Sends one log batch once; the caller repeats it on failure.
    pub fn log(&self, run_id: &str, batch: &LogBatch) -> Result<()> {
        let body = serde_json::to_vec(batch).map_err(|e| StoreError::Internal(e.to_string()))?;
        once(self.call(&self.run_path(run_id, "log"), &body))
    }

    /// Merges top-level keys into the run's stored environment.
    pub fn set_environment(&self, run_id: &str, env: &Value) -> Result<()> {
        let body = serde_json::to_vec(env).map_err(|e| StoreError::Internal(e.to_string()))?;
        self.call_retrying(&self.run_path(run_id, "environment"), &body, Repeat::Safe)
            .map(|_| ())
    }

    pub fn add_note(&self, run_id: &str, text: &str) -> Result<()> {
        let body = serde_json::to_vec(&json!({ "text": text }))
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        self.call_retrying(&self.run_path(run_id, "notes"), &body, Repeat::UnsentOnly)
            .map(|_| ())
    }

    /// Every metric's summary (count, last, min, max) as the server has it.
    pub fn metric_summaries(&self, run_id: &str) -> Result<BTreeMap<String, SeriesSummary>> {
        #[derive(Deserialize)]
        struct Summary {
            count: u64,
            last_step: i64,
            #[serde(with = "json_float")]
            last: f64,
            #[serde(default, with = "json_float::option")]
            min: Option<f64>,
            #[serde(default, with = "json_float::option")]
            max: Option<f64>,
        }
        let run = self.get_retrying(&format!("/api/v1/runs/{}", encode(run_id)))?;
        let metrics: BTreeMap<String, Summary> = serde_json::from_value(
            run.get("metrics").cloned().unwrap_or(Value::Null),
        )
        .map_err(|e| StoreError::Remote(format!("unexpected answer from the server: {e}")))?;
        Ok(metrics
            .into_iter()
            .map(|(k, s)| {
                (
                    k,
                    SeriesSummary {
                        count: s.count,
                        last_step: s.last_step,
                        last_ts_ms: 0,
                        last: s.last,
                        min: s.min,
                        max: s.max,
                    },
                )
            })
            .collect())
    }

    /// A sweep as an agent joins it: its file (`config`) and state.
    pub fn sweep(&self, id: &str) -> Result<Value> {
        self.get_retrying(&format!("/api/v1/studies/{}", encode(id)))
    }

    /// Claims the sweep's next trial for this agent (`worker`: its host and
    /// pid). A claim whose answer was lost is not repeated: the trial it
    /// made is found crashed once this agent's heartbeats leave it out.
    pub fn claim_trial(&self, sweep: &str, host: Option<&str>, pid: u32) -> Result<Value> {
        let body = serde_json::to_vec(&json!({ "host": host, "pid": pid }))
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        self.call_retrying(
            &format!("/api/v1/studies/{}/claim", encode(sweep)),
            &body,
            Repeat::UnsentOnly,
        )
    }

    /// Keeps the agent's running trials alive; answers the sweep's state
    /// and, with `prune`, which of them its early termination stops.
    pub fn sweep_heartbeat(&self, sweep: &str, trials: &[i64], prune: bool) -> Result<Value> {
        let body = serde_json::to_vec(&json!({ "trials": trials, "prune": prune }))
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        self.call_retrying(
            &format!("/api/v1/studies/{}/heartbeat", encode(sweep)),
            &body,
            Repeat::Safe,
        )
    }

    /// Ends a trial whose process ended (`ending`: natural, stopped, pruned
    /// or not_started); repeating it changes nothing.
    pub fn finish_trial(&self, trial_id: i64, ending: &str, why: Option<&str>) -> Result<Value> {
        let body = serde_json::to_vec(&json!({ "ending": ending, "why": why }))
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        self.call_retrying(
            &format!("/api/v1/trials/{trial_id}/finish"),
            &body,
            Repeat::Safe,
        )
    }

    /// The run as the server holds it (`GET /api/v1/runs/{id}`: its fields,
    /// series counts, notebook and environment), or `None` when it has none.
    pub fn run_detail(&self, run_id: &str) -> Result<Option<Value>> {
        let url = format!("{}/api/v1/runs/{}", self.base, encode(run_id));
        self.retrying(|| {
            let response = self.signed(self.agent.get(&url)).call();
            if response.as_ref().is_ok_and(|r| r.status().as_u16() == 404) {
                return Ok(None);
            }
            self.answer(&url, response).map(Some)
        })
    }

    /// How many chunks of output the server holds for a run.
    pub fn output_count(&self, run_id: &str) -> Result<usize> {
        let output = self.get_retrying(&self.run_path(run_id, "output"))?;
        Ok(output
            .get("chunks")
            .and_then(Value::as_array)
            .map_or(0, Vec::len))
    }

    /// Where the server keeps a run's files: the path under its artifact
    /// proxy (`<project id>/<run id>/artifacts`).
    pub fn mlflow_artifact_dir(&self, run_id: &str) -> Result<String> {
        let answer = self.get_retrying(&format!(
            "/api/2.0/mlflow/runs/get?run_id={}",
            encode(run_id)
        ))?;
        let uri = answer
            .pointer("/run/info/artifact_uri")
            .and_then(Value::as_str)
            .unwrap_or_default();
        crate::layout::store_path_of(uri).ok_or_else(|| {
            StoreError::Remote(format!(
                "the server keeps run {run_id}'s files at {uri:?}, outside its artifact store; \
                 sync cannot send them there"
            ))
        })
    }

    /// Every file under `dir` in the server's artifact store, by path below
    /// `dir`, with its size.
    pub fn artifact_files(&self, dir: &str) -> Result<BTreeMap<String, u64>> {
        let mut files = BTreeMap::new();
        let mut folders = vec![String::new()];
        while let Some(rel) = folders.pop() {
            let path = if rel.is_empty() {
                dir.to_string()
            } else {
                format!("{dir}/{rel}")
            };
            let listing = self.get_retrying(&format!(
                "/api/2.0/mlflow-artifacts/artifacts?path={}",
                encode(&path)
            ))?;
            for entry in listing
                .get("files")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(name) = entry.get("path").and_then(Value::as_str) else {
                    continue;
                };
                let inside = if rel.is_empty() {
                    name.to_string()
                } else {
                    format!("{rel}/{name}")
                };
                if entry.get("is_dir").and_then(Value::as_bool) == Some(true) {
                    folders.push(inside);
                } else {
                    let size = entry.get("file_size").and_then(Value::as_u64).unwrap_or(0);
                    files.insert(inside, size);
                }
            }
        }
        Ok(files)
    }

    /// Streams `size` bytes from `reader` to `path` in the server's artifact
    /// store. Not repeated: the reader is spent; a failed upload leaves no
    /// file and is sent again by the next sync.
    pub fn upload_artifact(
        &self,
        path: &str,
        reader: impl std::io::Read + Send + 'static,
        size: u64,
    ) -> Result<()> {
        let encoded: Vec<String> = path.split('/').map(encode).collect();
        let url = format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{}",
            self.base,
            encoded.join("/")
        );
        let response = self
            .signed(self.agent.put(&url))
            .header("content-type", "application/octet-stream")
            .header("content-length", size.to_string())
            .send(ureq::SendBody::from_owned_reader(reader));
        once(self.answer(&url, response))
    }

    /// Sends a log batch until the server answers; safe because the batch
    /// carries its id.
    pub fn log_repeating(&self, run_id: &str, batch: &LogBatch) -> Result<()> {
        let body = serde_json::to_vec(batch).map_err(|e| StoreError::Internal(e.to_string()))?;
        self.call_retrying(&self.run_path(run_id, "log"), &body, Repeat::Safe)
            .map(|_| ())
    }

    /// Calls `attempt` until it succeeds, is refused, or has failed for the
    /// client's retry window.
    fn retrying<T>(&self, attempt: impl Fn() -> std::result::Result<T, Failure>) -> Result<T> {
        let started = Instant::now();
        loop {
            match attempt() {
                Ok(v) => return Ok(v),
                Err(Failure::Refused(e)) => return Err(e),
                Err(Failure::Unsent(e) | Failure::Unknown(e)) => {
                    if started.elapsed() >= self.retry_for {
                        return Err(StoreError::Remote(e));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    fn get_retrying(&self, path: &str) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        self.retrying(|| self.get(&url))
    }

    fn run_path(&self, run_id: &str, what: &str) -> String {
        format!("/api/v1/runs/{}/{what}", encode(run_id))
    }

    fn call_retrying(&self, path: &str, body: &[u8], repeat: Repeat) -> Result<Value> {
        let started = Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            let error = match self.call(path, body) {
                Ok(v) => return Ok(v),
                Err(Failure::Refused(e)) => return Err(e),
                Err(Failure::Unknown(e)) if repeat == Repeat::UnsentOnly => {
                    return Err(StoreError::Remote(e));
                }
                Err(Failure::Unsent(e) | Failure::Unknown(e)) => e,
            };
            if started.elapsed() + wait > self.retry_for {
                return Err(StoreError::Remote(format!(
                    "{error} (still failing after {}s)",
                    self.retry_for.as_secs()
                )));
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }

    fn call(&self, path: &str, body: &[u8]) -> std::result::Result<Value, Failure> {
        let url = format!("{}{path}", self.base);
        let response = self
            .signed(self.agent.post(&url))
            .header("content-type", "application/json")
            .send(body);
        self.answer(&url, response)
    }

    fn get(&self, url: &str) -> std::result::Result<Value, Failure> {
        let response = self.signed(self.agent.get(url)).call();
        self.answer(url, response)
    }

    fn answer(
        &self,
        url: &str,
        response: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> std::result::Result<Value, Failure> {
        let mut response = response.map_err(|e| {
            let text = format!("cannot reach the labbook server at {}: {e}", self.base);
            match e {
                ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => Failure::Unsent(text),
                ureq::Error::Io(io)
                    if matches!(
                        io.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                    ) =>
                {
                    Failure::Unsent(text)
                }
                _ => Failure::Unknown(text),
            }
        })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| Failure::Unknown(format!("{url}: the answer was cut off: {e}")))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status < 300 {
            return Ok(value);
        }
        let error = value.get("error");
        let message = error
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "HTTP {status}: {}",
                    labbook_core::config::truncate_for_message(&text)
                )
            });
        if status >= 500 || status == 429 {
            return Err(Failure::Unknown(format!(
                "the labbook server at {} failed: {message}",
                self.base
            )));
        }
        let field = error
            .and_then(|e| e.get("field"))
            .and_then(Value::as_str)
            .map(str::to_string);
        Err(Failure::Refused(match (status, field) {
            (401, _) => StoreError::Remote(format!(
                "the labbook server at {} asks who you are: {message} (set LABBOOK_TOKEN to a \
                 token from `labbook token create`)",
                self.base
            )),
            (404, _) => ValidationError::new("id", message).into(),
            (409, _) => StoreError::Conflict(message),
            (_, Some(field)) => {
                let problem = message
                    .strip_prefix(&format!("{field}: "))
                    .unwrap_or(&message)
                    .to_string();
                ValidationError::new(field, problem).into()
            }
            _ => StoreError::Remote(format!(
                "the labbook server at {} refused: {message}",
                self.base
            )),
        }))
    }
}

/// A call made once: whatever failed is the caller's to repeat or report.
fn once(answer: std::result::Result<Value, Failure>) -> Result<()> {
    match answer {
        Ok(_) => Ok(()),
        Err(Failure::Refused(e)) => Err(e),
        Err(Failure::Unsent(e) | Failure::Unknown(e)) => Err(StoreError::Remote(e)),
    }
}

/// Percent-encodes a run id for a URL path segment.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A run's writer logging into a server. A flush larger than one request
/// goes as several, each with its own id derived from the flush's, so a
/// repeat after a partial failure sends again only what the server will
/// skip or still needs.
pub struct HttpSink {
    client: Arc<Client>,
    run_id: String,
}

impl HttpSink {
    pub fn new(client: Arc<Client>, run_id: &str) -> HttpSink {
        HttpSink {
            client,
            run_id: run_id.to_string(),
        }
    }
}

impl Sink for HttpSink {
    fn write(&mut self, batch: &FlushBatch, batch_id: &str, seal: bool) -> Result<()> {
        let parts = split(batch, POINTS_PER_REQUEST);
        let last = parts.len() - 1;
        for (i, part) in parts.iter().enumerate() {
            let id = if last == 0 {
                batch_id.to_string()
            } else {
                format!("{batch_id}.{i}")
            };
            let request = LogBatch::from_flush(part, &id, seal && i == last);
            self.client.log(&self.run_id, &request)?;
        }
        Ok(())
    }
}

/// What a series entry costs besides its points, in point units: its key
/// (escaped, at most twice its length) and the column names.
fn entry_cost(key: &str) -> usize {
    1 + key.len() / 20
}

/// Cuts a flush into parts of at most `limit` point units, the same way
/// every time; output and run changes ride with the last part.
fn split(batch: &FlushBatch, limit: usize) -> Vec<FlushBatch> {
    let total: usize = batch
        .series
        .iter()
        .map(|(key, s)| s.len() + entry_cost(key))
        .sum();
    if total <= limit {
        return vec![batch.clone()];
    }
    let mut parts = vec![FlushBatch::default()];
    let mut room = limit;
    for (key, series) in &batch.series {
        let cost = entry_cost(key);
        let mut start = 0;
        while start < series.len() {
            if room <= cost {
                parts.push(FlushBatch::default());
                room = limit;
            }
            let end = start + (room - cost).min(series.len() - start);
            let Some(part) = parts.last_mut() else { break };
            part.series.push((
                key.clone(),
                SeriesColumns {
                    steps: series.steps[start..end].to_vec(),
                    ts_ms: series.ts_ms[start..end].to_vec(),
                    values: series.values[start..end].to_vec(),
                },
            ));
            room -= end - start + cost;
            start = end;
        }
    }
    if let Some(last) = parts.last_mut() {
        last.output = batch.output.clone();
        last.patch = batch.patch.clone();
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_flush_splits_into_bounded_parts_that_keep_every_point() {
        let column = |n: usize, base: i64| SeriesColumns {
            steps: (base..base + n as i64).collect(),
            ts_ms: vec![7; n],
            values: (0..n).map(|i| i as f64).collect(),
        };
        let batch = FlushBatch {
            series: vec![("a".into(), column(120, 0)), ("b".into(), column(35, 1000))],
            output: vec![],
            patch: Some(labbook_store::RunPatch {
                add_tags: vec!["t".into()],
                ..Default::default()
            }),
        };
        let parts = split(&batch, 50);
        assert_eq!(parts.len(), 4);
        assert!(parts.iter().all(|p| p.points() <= 50));
        assert_eq!(parts.iter().map(FlushBatch::points).sum::<u64>(), 155);
        assert!(parts[..3].iter().all(|p| p.patch.is_none()));
        assert!(parts[3].patch.is_some());
        let steps_of = |key: &str| -> Vec<i64> {
            parts
                .iter()
                .flat_map(|p| p.series.iter())
                .filter(|(k, _)| k == key)
                .flat_map(|(_, s)| s.steps.clone())
                .collect()
        };
        assert_eq!(steps_of("a"), (0..120).collect::<Vec<_>>());
        assert_eq!(steps_of("b"), (1000..1035).collect::<Vec<_>>());
        assert_eq!(split(&batch, 1000).len(), 1);
    }

    #[test]
    fn a_flush_of_many_long_keys_splits_into_requests_under_the_body_limit() {
        let batch = FlushBatch {
            series: (0..30_000)
                .map(|i| {
                    (
                        format!("{i:05}{}", "\\".repeat(120)),
                        SeriesColumns {
                            steps: vec![i64::MIN],
                            ts_ms: vec![i64::MIN],
                            values: vec![-1.234_567_890_123_456_7e-300],
                        },
                    )
                })
                .collect(),
            ..Default::default()
        };
        let parts = split(&batch, POINTS_PER_REQUEST);
        assert!(parts.len() > 1);
        assert_eq!(parts.iter().map(FlushBatch::points).sum::<u64>(), 30_000);
        for part in &parts {
            let body = serde_json::to_vec(&LogBatch::from_flush(part, "id", false)).unwrap();
            assert!(body.len() < 4 << 20, "{} bytes", body.len());
        }
    }

    #[test]
    fn ids_are_encoded_for_the_path() {
        assert_eq!(encode("abc-1_2.x"), "abc-1_2.x");
        assert_eq!(encode("../etc"), "..%2Fetc");
        assert_eq!(encode("a b"), "a%20b");
    }

    #[test]
    fn only_http_addresses_are_taken() {
        assert!(Client::new("http://127.0.0.1:5000/").is_ok());
        let e = Client::new("ftp://x")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("url"), "{e}");
    }
}
