//! The dashboard's view of searches and nights: a project's sweeps and
//! studies, one study with its trials, optimization history and parameter
//! importance, the overnight queue, and the morning report; and the routes
//! a sweep agent on another machine (`labbook sweep agent ID --url`)
//! claims, keeps alive and ends trials through, which run the same rules
//! (`labbook_store::sweeps`) a runner on the store's own disk does.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};

use labbook_search::TrialState;
use labbook_search::analysis::{history, importance};
use labbook_search::study::best;
use labbook_store::report::{ReportQuery, build_report};
use labbook_store::sweeps::{self, Ending, FinishedCurves};
use labbook_store::{
    Claim, Claimed, Store, StudyKind, StudyRecord, TrialPatch, TrialRecord, Worker,
};

use crate::AppState;
use crate::api::{JsonBody, blocking};
use crate::error::ApiError;
use crate::json::now_ms;

type ApiResult = Result<Json<Value>, ApiError>;

/// Trials one study's answer lists at most (newest kept).
const MAX_TRIALS: usize = 10_000;
/// Reported values per trial in an answer; longer curves are thinned.
const MAX_INTERMEDIATE: usize = 200;

fn metric_of(s: &StudyRecord) -> Option<String> {
    match s.kind {
        StudyKind::Sweep => s.spec["config"]["metric"]["name"]
            .as_str()
            .map(str::to_string),
        StudyKind::Study => Some(s.spec["metric"].as_str().unwrap_or("objective").to_string()),
        StudyKind::Queue => None,
    }
}

fn method_of(s: &StudyRecord) -> Option<String> {
    match s.kind {
        StudyKind::Sweep => s.spec["config"]["method"].as_str().map(str::to_string),
        StudyKind::Study => s.spec["settings"]["sampler"]["kind"]
            .as_str()
            .or(s.spec["driver"].as_str())
            .map(str::to_string),
        StudyKind::Queue => None,
    }
}

fn counts(trials: &[Arc<TrialRecord>]) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::new();
    for t in trials {
        *out.entry(t.state().as_str()).or_insert(0) += 1;
    }
    out
}

fn finite(v: Option<f64>) -> Value {
    v.filter(|x| x.is_finite())
        .map_or(Value::Null, |x| json!(x))
}

fn brief(s: &StudyRecord, trials: &[Arc<TrialRecord>]) -> Value {
    let b = best(trials, s.direction());
    json!({
        "id": s.id,
        "name": s.name,
        "project": s.project,
        "kind": s.kind.as_str(),
        "state": s.state.as_str(),
        "state_reason": s.state_reason,
        "why": s.why,
        "direction": s.direction().as_str(),
        "metric": metric_of(s),
        "method": method_of(s),
        "created_ms": s.created_ms,
        "trials": trials.len(),
        "counts": counts(trials),
        "best": b.map(|t| json!({
            "number": t.number(),
            "value": finite(t.obs.value),
            "run_id": t.run_id,
            "params": t.obs.params,
        })),
    })
}

pub async fn project_studies(
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> ApiResult {
    blocking(&state, move |store| {
        let studies = store.list_studies(Some(&project))?;
        let mut out = Vec::new();
        for s in studies.iter().filter(|s| s.kind != StudyKind::Queue) {
            out.push(brief(s, &store.trials(s.pk)?));
        }
        out.reverse();
        Ok(Json(json!({ "project": project, "studies": out })))
    })
    .await
}

fn thin(iv: &[(i64, f64)]) -> Vec<Value> {
    let step = iv.len().div_ceil(MAX_INTERMEDIATE).max(1);
    let mut out: Vec<Value> = iv
        .iter()
        .step_by(step)
        .map(|&(s, v)| json!([s, finite(Some(v))]))
        .collect();
    if let Some(&(s, v)) = iv.last()
        && !(iv.len() - 1).is_multiple_of(step)
    {
        out.push(json!([s, finite(Some(v))]));
    }
    out
}

fn check_study_id(id: &str) -> Result<(), ApiError> {
    if id.len() > 256 {
        return Err(ApiError::invalid(
            "id",
            "a study's id or name is at most 256 bytes",
        ));
    }
    Ok(())
}

pub async fn study(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    check_study_id(&id)?;
    blocking(&state, move |store| {
        let s = store.study(&id, None)?;
        if s.kind == StudyKind::Queue {
            return Err(ApiError::invalid(
                "id",
                "that is a queue, not a sweep or study",
            ));
        }
        let trials = store.trials(s.pk)?;
        let shown = &trials[trials.len().saturating_sub(MAX_TRIALS)..];
        let mut params: BTreeMap<String, Value> = BTreeMap::new();
        for t in shown.iter() {
            for (name, domain) in &t.distributions {
                params.insert(
                    name.clone(),
                    serde_json::to_value(domain).unwrap_or(Value::Null),
                );
            }
            for name in t.obs.params.keys() {
                params.entry(name.clone()).or_insert(Value::Null);
            }
        }
        let rows: Vec<Value> = shown
            .iter()
            .map(|t| {
                json!({
                    "number": t.number(),
                    "state": t.state().as_str(),
                    "params": t.obs.params,
                    "value": finite(t.obs.value),
                    "run_id": t.run_id,
                    "grid_index": t.grid_index,
                    "retry_of": t.retry_of,
                    "started_ms": t.started_ms,
                    "ended_ms": t.ended_ms,
                    "note": t.note,
                    "intermediate": thin(&t.obs.intermediate),
                })
            })
            .collect();
        Ok(Json(json!({
            "study": brief(&s, &trials),
            // A sweep's file, which an agent on another machine runs.
            "config": (s.kind == StudyKind::Sweep).then(|| s.spec["config"].clone()),
            "params": params,
            "trials": rows,
            "trials_total": trials.len(),
            "history": history(&trials, s.direction()),
            "importance": importance(&trials, s.direction()),
            "importance_method": "PED-ANOVA (target quantile 10%)",
        })))
    })
    .await
}

pub async fn project_queue(
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> ApiResult {
    blocking(&state, move |store| {
        let studies = store.list_studies(Some(&project))?;
        let mut jobs = Vec::new();
        for s in studies.iter().filter(|s| s.kind == StudyKind::Queue) {
            for t in store.trials(s.pk)?.iter() {
                jobs.push(json!({
                    "number": t.number(),
                    "state": t.state().as_str(),
                    "command": t.system_attrs.get("command"),
                    "sweep": t.system_attrs.get("sweep"),
                    "why": t.system_attrs.get("why"),
                    "plan": t.system_attrs.get("plan"),
                    "gpus": t.system_attrs.get("gpus"),
                    "queued_ms": t.system_attrs.get("queued_ms"),
                    "run_id": t.run_id,
                    "started_ms": t.started_ms,
                    "ended_ms": t.ended_ms,
                    "note": t.note,
                }));
            }
        }
        Ok(Json(json!({ "project": project, "jobs": jobs })))
    })
    .await
}

/// A time in epoch milliseconds, within years 1970–9999; given empty, an
/// error (a client that sent the parameter meant a time).
fn param_ms(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    const MAX_MS: i64 = 253_402_300_799_999;
    match params.get(name) {
        None => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(ms) if (0..=MAX_MS).contains(&ms) => Ok(Some(ms)),
            _ => Err(ApiError::invalid(
                name,
                format!(
                    "{name} must be a time in epoch milliseconds (0 to {MAX_MS}), not {:?}",
                    v.chars().take(40).collect::<String>()
                ),
            )),
        },
    }
}

pub async fn project_report(
    State(state): State<AppState>,
    Path(project): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult {
    let now = now_ms();
    let until = param_ms(&params, "until")?.unwrap_or(now);
    // The last 24 hours unless told; a window is at most a year, so one
    // request's work stays bounded.
    let since = param_ms(&params, "since")?.unwrap_or(until.saturating_sub(86_400_000));
    if since >= until {
        return Err(ApiError::invalid("since", "since must be before until"));
    }
    if until.saturating_sub(since) > 366 * 86_400_000 {
        return Err(ApiError::invalid("since", "a report covers at most a year"));
    }
    let metric = params.get("metric").filter(|m| !m.is_empty()).cloned();
    if metric.as_ref().is_some_and(|m| m.len() > 256) {
        return Err(ApiError::invalid("metric", "metric is at most 256 bytes"));
    }
    blocking(&state, move |store: &dyn Store| {
        let report = build_report(
            store,
            &ReportQuery {
                project: Some(project),
                since_ms: since,
                until_ms: until,
                metric,
            },
        )?;
        Ok(Json(
            serde_json::to_value(report).map_err(|e| ApiError::internal(e.to_string()))?,
        ))
    })
    .await
}

/// Sweeps' finished trials' curves by study, so an agent's heartbeat
/// reads each finished run's metric once. Bounded: past this many sweeps
/// the cache starts over.
#[derive(Clone, Default)]
pub struct SweepCurves(Arc<Mutex<HashMap<i64, FinishedCurves>>>);

const MAX_CACHED_SWEEPS: usize = 64;
/// How old a trial's heartbeat must be before a heartbeat writes it again:
/// 5 s, or a quarter of a shortened stale-trial timeout.
fn heartbeat_write_every_ms() -> i64 {
    (labbook_store::heartbeat_timeout_ms() / 4).min(5_000)
}
/// Running trials one heartbeat may name (an agent runs one per slot).
const MAX_HEARTBEAT_TRIALS: usize = 1024;

/// The sweep an agent names, with its file read back.
fn sweep_of(
    store: &dyn Store,
    id: &str,
) -> Result<(StudyRecord, labbook_search::sweep::SweepSpec), ApiError> {
    let study = store.study(id, None)?;
    if study.kind != StudyKind::Sweep {
        return Err(ApiError::invalid(
            "id",
            format!(
                "{} is a {}, not a sweep: agents run sweeps",
                study.name,
                study.kind.as_str()
            ),
        ));
    }
    let spec = sweeps::spec_of(&study)?;
    Ok((study, spec))
}

/// The claiming agent, as its body says: `host` (at most 256 bytes) and
/// `pid`.
fn worker_of(body: &serde_json::Map<String, Value>) -> Result<Worker, ApiError> {
    let host = match body.get("host") {
        None | Some(Value::Null) => None,
        Some(Value::String(h)) if !h.is_empty() && h.len() <= 256 => Some(h.clone()),
        Some(_) => {
            return Err(ApiError::invalid(
                "host",
                "host must be the agent's host name (1 to 256 bytes)",
            ));
        }
    };
    let pid = match body.get("pid") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .filter(|&p| p > 0)
                .ok_or_else(|| {
                    ApiError::invalid("pid", "pid must be a process id (1 to 2^32-1)")
                })?,
        ),
    };
    Ok(Worker { host, pid })
}

/// `POST /studies/{id}/claim`: the sweep's next trial for the agent, with
/// its run made in the same transaction, or why there is none now.
pub async fn claim(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    check_study_id(&id)?;
    let worker = worker_of(&body)?;
    blocking(&state, move |store| {
        let (study, spec) = sweep_of(store, &id)?;
        let seed = sweeps::seed_of(&study);
        let now = now_ms();
        let this_host = labbook_capture::hostname();
        let alive = |t: &TrialRecord| {
            sweeps::worker_alive(t, this_host.as_deref(), now, &labbook_capture::pid_alive)
        };
        let claimed = store.claim_trial(study.pk, &worker, now, &alive, &mut |study, trials| {
            let mut claim = sweeps::decide(&spec, seed, trials);
            if let Claim::Trial(new) = &mut claim {
                // The number the claim gives the trial it adds.
                let number = trials.last().map_or(0, |t| t.number() + 1);
                new.run = Some(sweeps::trial_run(
                    study,
                    number,
                    &new.params,
                    worker.host.clone(),
                    worker.pid,
                    now,
                )?);
            }
            Ok(claim)
        })?;
        Ok(Json(match claimed {
            Claimed::Trial(trial) => {
                if let Some(run_id) = &trial.run_id {
                    store.update_run(
                        run_id,
                        &labbook_store::RunPatch {
                            set_kv_tags: sweeps::trial_labels(&study, trial.number()),
                            ..Default::default()
                        },
                    )?;
                }
                json!({
                    "claimed": "trial",
                    "trial": {
                        "id": trial.id,
                        "number": trial.number(),
                        "params": trial.obs.params,
                        "run_id": trial.run_id,
                        "grid_index": trial.grid_index,
                        "retry_of": trial.retry_of,
                    },
                })
            }
            Claimed::Wait(why) => json!({ "claimed": "wait", "reason": why }),
            Claimed::Done(state, reason) => {
                json!({ "claimed": "done", "state": state.as_str(), "reason": reason })
            }
        }))
    })
    .await
}

/// `POST /studies/{id}/heartbeat`: the agent's running trials are alive;
/// the answer is the sweep's state and, with `prune`, which of them the
/// sweep's early termination stops, and why.
pub async fn heartbeat(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    check_study_id(&id)?;
    let running: Vec<i64> = match body.get("trials") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= MAX_HEARTBEAT_TRIALS => items
            .iter()
            .map(|v| {
                v.as_i64().ok_or_else(|| {
                    ApiError::invalid("trials", "trials must be a list of trial ids (integers)")
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::invalid(
                "trials",
                format!("trials must be a list of at most {MAX_HEARTBEAT_TRIALS} trial ids"),
            ));
        }
    };
    let prune = match body.get("prune") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::invalid("prune", "prune must be true or false")),
    };
    let curves = state.sweep_curves.clone();
    blocking(&state, move |store| {
        let (study, spec) = sweep_of(store, &id)?;
        let now = now_ms();
        let write_every = heartbeat_write_every_ms();
        for trial_id in &running {
            let trial = match store.trial(*trial_id) {
                Ok(t) => t,
                Err(labbook_store::StoreError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            // A heartbeat written in the last few seconds is kept as it
            // is: agents poll every second, and a write per trial per poll
            // would be most of the server's work.
            let fresh = trial
                .heartbeat_ms
                .is_some_and(|h| now.saturating_sub(h) < write_every);
            if trial.study == study.pk && trial.state() == TrialState::Running && !fresh {
                store.update_trial(
                    trial.id,
                    &TrialPatch {
                        heartbeat: true,
                        now_ms: now,
                        ..TrialPatch::default()
                    },
                )?;
            }
        }
        let stops = if prune && !running.is_empty() {
            let mut cache = curves
                .0
                .lock()
                .map_err(|_| ApiError::internal("the sweep curve cache was poisoned"))?;
            if cache.len() >= MAX_CACHED_SWEEPS && !cache.contains_key(&study.pk) {
                cache.clear();
            }
            let finished = cache.entry(study.pk).or_default();
            sweeps::early_terminations(store, &study, &spec, finished)?
                .into_iter()
                .filter(|(t, _)| running.contains(t))
                .map(|(t, why)| json!({ "trial": t, "why": why }))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Json(json!({
            "state": study.state.as_str(),
            "state_reason": study.state_reason,
            "stop": stops,
        })))
    })
    .await
}

/// `POST /trials/{id}/finish`: the trial's process ended (`ending`:
/// natural, stopped, pruned or not_started, with `why` for the last two);
/// the trial ends from what its run recorded.
pub async fn finish(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let trial_id: i64 = id
        .parse()
        .map_err(|_| ApiError::invalid("id", "a trial id is an integer"))?;
    let why = match body.get("why") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(w)) => w.chars().take(2000).collect(),
        Some(_) => return Err(ApiError::invalid("why", "why must be text")),
    };
    let ending = match body.get("ending").and_then(Value::as_str) {
        Some("natural") => Ending::Natural,
        Some("stopped") => Ending::Stopped,
        Some("pruned") => Ending::Pruned(why),
        Some("not_started") => Ending::NotStarted(why),
        _ => {
            return Err(ApiError::invalid(
                "ending",
                "ending must be one of natural, stopped, pruned, not_started",
            ));
        }
    };
    blocking(&state, move |store| {
        let trial = store.trial(trial_id)?;
        let study = store.study_by_pk(trial.study)?;
        let (_, spec) = sweep_of(store, &study.id)?;
        let ended = sweeps::finish_trial(store, &spec, trial_id, &ending, now_ms())?;
        let current = match &ended {
            Some(e) => (e.state, e.value),
            None => {
                let t = store.trial(trial_id)?;
                (t.state(), t.obs.value)
            }
        };
        Ok(Json(json!({
            "state": current.0.as_str(),
            "value": finite(current.1),
            "already_ended": ended.is_none(),
        })))
    })
    .await
}
