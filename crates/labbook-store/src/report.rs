//! The morning report: what happened in a project between two times,
//! assembled from the store. Runs are grouped by what they were for (their
//! sweep or study, their queue plan, else their "why"); each group gets its
//! best run by a headline metric, beside the project's baseline run, with a
//! small curve. The CLI renders it as text, Markdown, HTML or JSON and the
//! dashboard draws the same JSON.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use labbook_core::{RunRecord, RunStatus};

use crate::studies::StudyKind;
use crate::{Deleted, OutputStream, Result, RunQuery, StepRange, Store};
use labbook_search::{Direction, TrialState};

/// The project tag that names the baseline run (`labbook baseline set`).
pub const BASELINE_TAG: &str = "labbook.baseline";
/// Points in a group's curve.
pub const CURVE_POINTS: usize = 32;

#[derive(Debug, Clone, Default)]
pub struct ReportQuery {
    pub project: Option<String>,
    pub since_ms: i64,
    pub until_ms: i64,
    /// The headline metric when a group has none of its own, `name` or
    /// `name:max`.
    pub metric: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunBrief {
    pub id: String,
    pub name: String,
    pub project: String,
    pub status: RunStatus,
    pub created_ms: i64,
    pub ended_ms: Option<i64>,
    /// The headline metric's value.
    pub value: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Headline {
    pub name: String,
    pub goal: Direction,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportGroup {
    /// sweep, study, why, or none (runs that gave no reason).
    pub kind: String,
    pub title: String,
    /// The sweep's or study's id.
    pub id: Option<String>,
    pub why: Option<String>,
    /// The queue plan its runs came from, if they did.
    pub plan: Option<String>,
    pub counts: BTreeMap<String, u64>,
    pub metric: Option<Headline>,
    pub best: Option<RunBrief>,
    pub baseline_value: Option<f64>,
    /// best − baseline.
    pub delta: Option<f64>,
    pub better_than_baseline: Option<bool>,
    /// The best run's headline curve, at most [`CURVE_POINTS`] values.
    pub curve: Vec<f64>,
    pub runs: Vec<RunBrief>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedRun {
    pub run: RunBrief,
    pub group: String,
    /// The run's error, else the last lines it wrote.
    pub last_lines: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueuedJob {
    pub number: u64,
    pub what: String,
    pub why: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub project: Option<String>,
    pub since_ms: i64,
    pub until_ms: i64,
    /// Runs started in the window, and how those that ended, ended.
    pub counts: BTreeMap<String, u64>,
    pub groups: Vec<ReportGroup>,
    pub failures: Vec<FailedRun>,
    pub running: Vec<RunBrief>,
    pub queue_left: Vec<QueuedJob>,
    pub gpu_hours: f64,
    pub baseline: Option<RunBrief>,
}

/// A metric's goal guessed from its name, as a reader would.
pub fn goal_of(name: &str) -> Direction {
    let n = name.to_ascii_lowercase();
    const UP: [&str; 11] = [
        "acc",
        "auc",
        "f1",
        "precision",
        "recall",
        "score",
        "reward",
        "map",
        "iou",
        "bleu",
        "return",
    ];
    if UP.iter().any(|w| n.contains(w)) {
        Direction::Maximize
    } else {
        Direction::Minimize
    }
}

fn parse_metric(spec: &str) -> Headline {
    match spec.rsplit_once(':') {
        Some((name, goal)) if Direction::parse(goal).is_some() => Headline {
            name: name.to_string(),
            goal: Direction::parse(goal).unwrap_or_default(),
        },
        _ => Headline {
            name: spec.to_string(),
            goal: goal_of(spec),
        },
    }
}

/// The metric a reader looks at first among some runs': a validation
/// metric before a training one, a loss or accuracy before the rest.
fn guess_headline<'a>(runs: impl Iterator<Item = &'a RunRecord>) -> Option<Headline> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for r in runs {
        for k in r.metrics.keys() {
            *seen.entry(k.as_str()).or_default() += 1;
        }
    }
    let rank = |k: &str| {
        let l = k.to_ascii_lowercase();
        let val = l.contains("val") || l.contains("test") || l.contains("eval");
        let kind = ["loss", "acc", "error", "f1", "auc", "objective"]
            .iter()
            .position(|w| l.contains(w))
            .unwrap_or(9);
        (usize::from(!val), kind)
    };
    seen.iter()
        .filter(|(k, _)| !k.starts_with("sys/") && !k.starts_with("system/"))
        .min_by_key(|(k, n)| (rank(k), std::cmp::Reverse(**n), k.to_string()))
        .map(|(k, _)| Headline {
            name: k.to_string(),
            goal: goal_of(k),
        })
}

fn value_of(run: &RunRecord, metric: &str) -> Option<f64> {
    run.metrics
        .get(metric)
        .map(|s| s.last)
        .filter(|v| !v.is_nan())
        .or_else(|| run.summary.get(metric).and_then(Value::as_f64))
}

fn brief(run: &RunRecord, metric: Option<&Headline>) -> RunBrief {
    RunBrief {
        id: run.id.clone(),
        name: run.name.clone(),
        project: run.project.clone(),
        status: run.status,
        created_ms: run.created_ms,
        ended_ms: run.ended_ms,
        value: metric.and_then(|m| value_of(run, &m.name)),
    }
}

/// What a run was for: its sweep or study, its plan, else its reason.
fn group_key(run: &RunRecord) -> (String, String) {
    if let Some(s) = run.kv_tags.get("labbook.sweep") {
        return ("sweep".into(), s.clone());
    }
    if let Some(s) = run.kv_tags.get("labbook.study") {
        return ("study".into(), s.clone());
    }
    if run.tags.iter().any(|t| t == "trial")
        && let Some(g) = &run.group
    {
        return ("study".into(), g.clone());
    }
    match run
        .notes
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        Some(why) => ("why".into(), why.lines().next().unwrap_or(why).to_string()),
        None => ("none".into(), String::new()),
    }
}

fn last_lines(store: &dyn Store, run: &RunRecord, n: usize) -> Vec<String> {
    if let Some(e) = run.error.as_deref().filter(|e| !e.trim().is_empty()) {
        let lines: Vec<String> = e.lines().map(str::to_string).collect();
        return lines[lines.len().saturating_sub(n)..].to_vec();
    }
    let Ok(chunks) = store.read_output(&run.id) else {
        return Vec::new();
    };
    let pick = |stream: Option<OutputStream>| -> Vec<String> {
        let mut text = Vec::new();
        for c in &chunks {
            if stream.is_none_or(|s| c.stream == s) {
                text.extend_from_slice(&c.data);
            }
        }
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.chars().take(300).collect())
            .collect();
        lines[lines.len().saturating_sub(n)..].to_vec()
    };
    let err = pick(Some(OutputStream::Stderr));
    if err.is_empty() { pick(None) } else { err }
}

fn curve(store: &dyn Store, run_id: &str, metric: &str) -> Vec<f64> {
    let Ok((cols, _)) = store.downsample(
        run_id,
        metric,
        StepRange::default(),
        CURVE_POINTS / 4,
        false,
    ) else {
        return Vec::new();
    };
    let mut values: Vec<f64> = cols.values.into_iter().filter(|v| v.is_finite()).collect();
    if values.len() > CURVE_POINTS {
        let step = values.len() as f64 / CURVE_POINTS as f64;
        values = (0..CURVE_POINTS)
            .map(|i| values[((i as f64 * step) as usize).min(values.len() - 1)])
            .collect();
    }
    values
}

fn gpus_of(store: &dyn Store, run: &RunRecord) -> f64 {
    let Ok(Some(env)) = store.environment(&run.id) else {
        return 0.0;
    };
    let visible = env["env_vars"]["CUDA_VISIBLE_DEVICES"].as_str();
    match visible {
        Some(v) => v.split(',').filter(|d| !d.trim().is_empty()).count() as f64,
        None => env["gpus"].as_array().map_or(0, Vec::len) as f64,
    }
}

pub fn build_report(store: &dyn Store, q: &ReportQuery) -> Result<Report> {
    let runs = store.list_runs(&RunQuery {
        project: q.project.clone(),
        deleted: Deleted::Exclude,
        ..RunQuery::default()
    })?;
    let in_window: Vec<&RunRecord> = runs
        .iter()
        .filter(|r| {
            let created = r.created_ms >= q.since_ms && r.created_ms < q.until_ms;
            let ended = r
                .ended_ms
                .is_some_and(|e| e >= q.since_ms && e < q.until_ms);
            created || ended
        })
        .collect();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for r in &in_window {
        if r.created_ms >= q.since_ms {
            *counts.entry("started".into()).or_default() += 1;
        }
        *counts.entry(r.status.as_str().into()).or_default() += 1;
    }
    let baseline_run = q
        .project
        .as_deref()
        .and_then(|p| store.project(crate::ProjectRef::Name(p)).ok())
        .and_then(|p| p.tags.get(BASELINE_TAG).cloned())
        .and_then(|id| store.get_run(&id).ok());
    let studies = store.list_studies(q.project.as_deref()).unwrap_or_default();
    let fallback = q.metric.as_deref().map(parse_metric);

    let mut grouped: Vec<((String, String), Vec<&RunRecord>)> = Vec::new();
    for r in &in_window {
        let key = group_key(r);
        match grouped.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(r),
            None => grouped.push((key, vec![r])),
        }
    }
    let mut groups = Vec::new();
    let mut failures = Vec::new();
    for ((kind, key), members) in grouped {
        let study = studies.iter().find(|s| {
            (kind == "sweep" && s.id == key) || (kind == "study" && (s.id == key || s.name == key))
        });
        let (title, id, why) = match (kind.as_str(), study) {
            ("sweep" | "study", Some(s)) => (s.name.clone(), Some(s.id.clone()), s.why.clone()),
            ("why", _) => (key.clone(), None, Some(key.clone())),
            ("none", _) => ("runs that gave no reason".to_string(), None, None),
            _ => (key.clone(), None, None),
        };
        let own_metric = study.and_then(|s| match s.kind {
            StudyKind::Sweep => s.spec["config"]["metric"]["name"]
                .as_str()
                .map(|n| Headline {
                    name: n.to_string(),
                    goal: s.direction(),
                }),
            StudyKind::Study => Some(Headline {
                name: s.spec["metric"].as_str().unwrap_or("objective").to_string(),
                goal: s.direction(),
            }),
            StudyKind::Queue => None,
        });
        let metric = own_metric
            .or_else(|| fallback.clone())
            .or_else(|| guess_headline(members.iter().copied()));
        let mut group_counts: BTreeMap<String, u64> = BTreeMap::new();
        for r in &members {
            *group_counts.entry(r.status.as_str().into()).or_default() += 1;
        }
        let best = metric.as_ref().and_then(|m| {
            members
                .iter()
                .filter(|r| {
                    matches!(
                        r.status,
                        RunStatus::Finished | RunStatus::Running | RunStatus::Pruned
                    )
                })
                .filter_map(|r| value_of(r, &m.name).map(|v| (v, *r)))
                .fold(None, |b: Option<(f64, &RunRecord)>, (v, r)| match b {
                    Some((bv, _)) if !m.goal.better(v, bv) => b,
                    _ => Some((v, r)),
                })
                .map(|(_, r)| r)
        });
        let baseline_value = match (&metric, &baseline_run) {
            (Some(m), Some(b)) => value_of(b, &m.name),
            _ => None,
        };
        let best_value = match (&metric, best) {
            (Some(m), Some(b)) => value_of(b, &m.name),
            _ => None,
        };
        // The baseline's own group has nothing to be better than.
        let is_baseline = matches!((best, &baseline_run), (Some(b), Some(base)) if b.id == base.id);
        let (delta, better) = match (best_value, baseline_value, &metric) {
            (Some(b), Some(base), Some(m)) if !is_baseline => {
                (Some(b - base), Some(m.goal.better(b, base)))
            }
            _ => (None, None),
        };
        let curve = match (best, &metric) {
            (Some(b), Some(m)) => curve(store, &b.id, &m.name),
            _ => Vec::new(),
        };
        for r in members
            .iter()
            .filter(|r| matches!(r.status, RunStatus::Failed | RunStatus::Crashed))
        {
            failures.push(FailedRun {
                run: brief(r, metric.as_ref()),
                group: title.clone(),
                last_lines: last_lines(store, r, 3),
            });
        }
        let plan = members
            .iter()
            .find_map(|r| r.kv_tags.get("labbook.plan").cloned());
        groups.push(ReportGroup {
            kind,
            title,
            id,
            why,
            plan,
            counts: group_counts,
            best: best.map(|b| brief(b, metric.as_ref())),
            baseline_value,
            delta,
            better_than_baseline: better,
            curve,
            runs: members.iter().map(|r| brief(r, metric.as_ref())).collect(),
            metric,
        });
    }
    let running: Vec<RunBrief> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Running)
        .map(|r| brief(r, None))
        .collect();
    let mut queue_left = Vec::new();
    for s in studies.iter().filter(|s| s.kind == StudyKind::Queue) {
        for t in store
            .trials(s.pk)?
            .iter()
            .filter(|t| t.state() == TrialState::Waiting)
        {
            let what = if let Some(sw) = t.system_attrs.get("sweep").and_then(Value::as_str) {
                format!("sweep {sw}")
            } else {
                t.system_attrs
                    .get("command")
                    .and_then(Value::as_array)
                    .map(|w| {
                        w.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default()
            };
            queue_left.push(QueuedJob {
                number: t.number(),
                what,
                why: t
                    .system_attrs
                    .get("why")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            });
        }
    }
    let mut gpu_hours = 0.0;
    for r in &in_window {
        let start = r.created_ms.max(q.since_ms);
        let end = r.ended_ms.unwrap_or(q.until_ms).min(q.until_ms);
        if end > start {
            gpu_hours += gpus_of(store, r) * (end - start) as f64 / 3_600_000.0;
        }
    }
    Ok(Report {
        project: q.project.clone(),
        since_ms: q.since_ms,
        until_ms: q.until_ms,
        counts,
        groups,
        failures,
        running,
        queue_left,
        gpu_hours,
        baseline: baseline_run.as_ref().map(|b| brief(b, None)),
    })
}
