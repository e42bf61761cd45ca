//! The dashboard's view of searches and nights: a project's sweeps and
//! studies, one study with its trials, optimization history and parameter
//! importance, the overnight queue, and the morning report.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};

use labbook_search::analysis::{history, importance};
use labbook_search::study::best;
use labbook_store::report::{ReportQuery, build_report};
use labbook_store::{Store, StudyKind, StudyRecord, TrialRecord};

use crate::AppState;
use crate::api::blocking;
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

pub async fn study(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    if id.len() > 256 {
        return Err(ApiError::invalid(
            "id",
            "a study's id or name is at most 256 bytes",
        ));
    }
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
