//! A W&B-style sweep's rules that read or write the store: what a claim
//! decides, which running trials the sweep's hyperband stops, and how a
//! trial ends once its process has. `labbook sweep run` on a shared store
//! and `labbook serve`'s agent routes both call these, so an agent that
//! joins over HTTP follows exactly the rules a local runner does.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use labbook_core::{Config, RunStatus};
use labbook_search::TrialState;
use labbook_search::pruner::{BandTrial, wandb_hyperband_stops};
use labbook_search::sweep::{Next, SweepSpec, SweepTrial};

use crate::{
    Claim, NewRun, NewTrial, Result, RunPatch, StepRange, Store, StoreError, StudyRecord,
    TrialPatch, TrialRecord,
};

/// The sweep file a sweep study holds, read back.
pub fn spec_of(study: &StudyRecord) -> Result<SweepSpec> {
    SweepSpec::from_value(&study.spec["config"])
        .map_err(|e| StoreError::Internal(format!("the sweep's stored file no longer reads: {e}")))
}

/// The seed every draw of the sweep derives from.
pub fn seed_of(study: &StudyRecord) -> u64 {
    study.spec["seed"].as_u64().unwrap_or(0)
}

/// What the next claim on a sweep gets, given its trials so far.
pub fn decide(spec: &SweepSpec, seed: u64, trials: &[Arc<TrialRecord>]) -> Claim {
    let view: Vec<SweepTrial<'_>> = trials
        .iter()
        .map(|t| SweepTrial {
            obs: &t.obs,
            grid_index: t.grid_index,
            retry_of: t.retry_of,
        })
        .collect();
    match spec.next(seed, &view) {
        Next::Trial {
            params,
            grid_index,
            retry_of,
        } => {
            // Each parameter's domain, so the analysis (and TPE on a study
            // that reads this one) knows what was searched.
            let distributions = spec
                .parameters
                .iter()
                .filter(|p| params.contains_key(&p.spec.name))
                .map(|p| (p.spec.name.clone(), p.spec.domain.clone()))
                .collect();
            Claim::Trial(Box::new(NewTrial {
                params,
                distributions,
                grid_index,
                retry_of,
                ..NewTrial::default()
            }))
        }
        Next::Wait(why) => Claim::Wait(why),
        Next::Finish(why) => Claim::Finish(why),
    }
}

/// Whether a trial's worker is still there: on this machine its process is
/// alive; elsewhere, it sent a heartbeat within the stale-run timeout.
pub fn worker_alive(
    trial: &TrialRecord,
    this_host: Option<&str>,
    now_ms: i64,
    pid_alive: &dyn Fn(u32) -> bool,
) -> bool {
    match (&trial.host, trial.pid) {
        (Some(host), Some(pid)) if Some(host.as_str()) == this_host => pid_alive(pid),
        _ => trial
            .heartbeat_ms
            .is_some_and(|h| now_ms - h < crate::heartbeat_timeout_ms()),
    }
}

/// The runs a trial's run is labelled with: its sweep and number.
pub fn trial_labels(study: &StudyRecord, number: u64) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("labbook.sweep".to_string(), study.id.clone()),
        ("labbook.trial".to_string(), number.to_string()),
    ])
}

/// What a trial's run says it tests: the sweep's reason and the values.
pub fn trial_why(study: &StudyRecord, number: u64, params: &BTreeMap<String, Value>) -> String {
    let shown: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", labbook_search::command::python_str(v)))
        .collect();
    match &study.why {
        Some(why) => format!("{why} · trial #{number}: {}", shown.join(" ")),
        None => format!("sweep {} trial #{number}: {}", study.name, shown.join(" ")),
    }
}

/// The run a trial claimed through a server gets in the claim's own
/// transaction (a local runner's `labbook run` makes the same run itself):
/// the trial's values as its config, grouped under the sweep.
pub fn trial_run(
    study: &StudyRecord,
    number: u64,
    params: &BTreeMap<String, Value>,
    host: Option<String>,
    pid: Option<u32>,
    now_ms: i64,
) -> Result<NewRun> {
    let object: serde_json::Map<String, Value> =
        params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let config: Config = labbook_core::config::config_from_json(&Value::Object(object))?;
    Ok(NewRun {
        id: None,
        project: study.project.clone(),
        name: None,
        group: Some(study.name.clone()),
        tags: vec!["sweep".into()],
        notes: Some(trial_why(study, number, params)),
        config,
        created_ms: now_ms,
        host,
        pid,
    })
}

/// Finished trials' curves, read once per runner: a finished run's metric
/// no longer changes.
#[derive(Default)]
pub struct FinishedCurves(HashMap<i64, Vec<f64>>);

/// The running trials W&B's hyperband would stop now, with why: each
/// trial's curve is its metric's finite values in step order (an
/// iteration per value, as W&B counts).
pub fn early_terminations(
    store: &dyn Store,
    study: &StudyRecord,
    spec: &SweepSpec,
    finished: &mut FinishedCurves,
) -> Result<Vec<(i64, String)>> {
    let (Some(metric), Some(et)) = (&spec.metric, &spec.early_terminate) else {
        return Ok(Vec::new());
    };
    let trials = store.trials(study.pk)?;
    let mut curves: Vec<(i64, bool, Vec<f64>)> = Vec::new();
    for t in &trials {
        let Some(run_id) = &t.run_id else { continue };
        let running = !t.state().is_finished();
        let values = match finished.0.get(&t.id) {
            Some(v) if !running => v.clone(),
            _ => {
                let v: Vec<f64> = store
                    .read_series(run_id, &metric.name, StepRange::default())
                    .map(|c| c.values.into_iter().filter(|x| x.is_finite()).collect())
                    .unwrap_or_default();
                if !running {
                    finished.0.insert(t.id, v.clone());
                }
                v
            }
        };
        curves.push((t.id, running, values));
    }
    let view: Vec<BandTrial<'_>> = curves
        .iter()
        .map(|(_, running, values)| BandTrial {
            running: *running,
            values,
        })
        .collect();
    Ok(wandb_hyperband_stops(et, metric.goal, &view)
        .into_iter()
        .map(|i| {
            let n = curves[i].2.len();
            let band = et
                .bands
                .iter()
                .rev()
                .find(|&&b| b as usize <= n)
                .copied()
                .unwrap_or(0);
            (
                curves[i].0,
                format!(
                    "hyperband: its {} after {band} iterations is in the worst of the trials that got that far",
                    metric.name
                ),
            )
        })
        .collect())
}

/// How a trial's process came to end.
#[derive(Clone, Debug, PartialEq)]
pub enum Ending {
    /// On its own.
    Natural,
    /// Its runner stopped it (interrupted, or the sweep cancelled).
    Stopped,
    /// The sweep's early termination stopped it, for this reason.
    Pruned(String),
    /// Its process could not be started, for this reason.
    NotStarted(String),
}

/// How a trial ended: its state and the value the sweep counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Ended {
    pub state: TrialState,
    pub value: Option<f64>,
}

/// The trial's value: its run's best value of the sweep's metric (the
/// minimum or maximum over what it logged, as W&B's sweeps take it), or
/// the run's summary value.
pub fn metric_value(spec: &SweepSpec, run: &labbook_core::RunRecord) -> Option<f64> {
    let metric = spec.metric.as_ref()?;
    if let Some(s) = run.metrics.get(&metric.name) {
        let best = match metric.goal {
            labbook_search::Direction::Minimize => s.min,
            labbook_search::Direction::Maximize => s.max,
        };
        return best.or(Some(s.last)).filter(|v| !v.is_nan());
    }
    run.summary.get(&metric.name).and_then(Value::as_f64)
}

/// Ends a trial whose process could not be started as failed, saying why.
pub fn not_started(store: &dyn Store, trial_id: i64, why: &str, now_ms: i64) -> Result<Ended> {
    store.update_trial(
        trial_id,
        &TrialPatch {
            state: Some(TrialState::Failed),
            note: Some(format!("could not start: {why}")),
            now_ms,
            ..TrialPatch::default()
        },
    )?;
    Ok(Ended {
        state: TrialState::Failed,
        value: None,
    })
}

/// Ends a trial from what its run recorded, once its process has ended.
/// `None` when the trial had already ended (a repeated call changes
/// nothing).
pub fn finish_trial(
    store: &dyn Store,
    spec: &SweepSpec,
    trial_id: i64,
    ending: &Ending,
    now_ms: i64,
) -> Result<Option<Ended>> {
    let current = store.trial(trial_id)?;
    if current.state().is_finished() {
        return Ok(None);
    }
    if let Ending::NotStarted(why) = ending {
        return not_started(store, trial_id, why, now_ms).map(Some);
    }
    let run = current
        .run_id
        .as_deref()
        .and_then(|id| store.get_run(id).ok());
    let stopped = *ending == Ending::Stopped;
    let set_run_status = |run: &labbook_core::RunRecord, status: RunStatus| {
        let _ = store.update_run(
            &run.id,
            &RunPatch {
                status: Some(status),
                ended_ms: run.ended_ms.or(Some(now_ms)),
                ..RunPatch::default()
            },
        );
    };
    let (state, note, value) = match (&run, ending) {
        (Some(run), Ending::Pruned(why)) => {
            // However the program took the SIGTERM, the run was pruned.
            set_run_status(run, RunStatus::Pruned);
            (
                TrialState::Pruned,
                Some(why.clone()),
                metric_value(spec, run),
            )
        }
        (None, _) => (
            TrialState::Failed,
            Some("its run was never created (see the runner's output)".to_string()),
            None,
        ),
        (Some(run), _) => {
            let value = metric_value(spec, run);
            match run.status {
                RunStatus::Finished => (TrialState::Complete, None, value),
                RunStatus::Pruned => (TrialState::Pruned, None, value),
                RunStatus::Killed if stopped => (
                    TrialState::Crashed,
                    Some("stopped by its runner (interrupted or cancelled)".into()),
                    value,
                ),
                RunStatus::Killed => (TrialState::Failed, Some("killed".into()), value),
                RunStatus::Failed => (
                    TrialState::Failed,
                    run.error.clone().or(Some(match run.exit_code {
                        Some(c) => format!("exit code {c}"),
                        None => "failed".into(),
                    })),
                    value,
                ),
                RunStatus::Crashed | RunStatus::Running => {
                    if run.status == RunStatus::Running {
                        set_run_status(run, RunStatus::Crashed);
                    }
                    (TrialState::Crashed, Some("its run crashed".into()), value)
                }
            }
        }
    };
    store.update_trial(
        trial_id,
        &TrialPatch {
            state: Some(state),
            values: value.map(|v| vec![v]),
            note,
            now_ms,
            ..TrialPatch::default()
        },
    )?;
    Ok(Some(Ended { state, value }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_workers_trial_lives_by_its_heartbeat_and_a_local_one_by_its_pid() {
        let mut t = TrialRecord {
            id: 1,
            study: 1,
            obs: Default::default(),
            distributions: BTreeMap::new(),
            values: None,
            run_id: None,
            grid_index: None,
            retry_of: None,
            host: Some("far".into()),
            pid: Some(7),
            started_ms: None,
            ended_ms: None,
            heartbeat_ms: Some(1_000),
            user_attrs: BTreeMap::new(),
            system_attrs: BTreeMap::new(),
            note: None,
        };
        let dead = |_: u32| false;
        let timeout = crate::heartbeat_timeout_ms();
        assert!(worker_alive(&t, Some("here"), 1_000 + timeout - 1, &dead));
        assert!(!worker_alive(&t, Some("here"), 1_000 + timeout, &dead));
        t.host = Some("here".into());
        assert!(!worker_alive(&t, Some("here"), 1_000, &dead));
        assert!(worker_alive(&t, Some("here"), 1_000, &|pid| pid == 7));
    }
}
