//! Experiments, runs, params, tags, metrics and dataset inputs.

use std::collections::BTreeMap;
use std::collections::HashMap;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde_json::{Value, json};

use labbook_core::config::validate_key;
use labbook_core::metric::validate_metric_key;
use labbook_core::query::{Attr, Field, Fields, SortKey, Value as FieldValue};
use labbook_core::{Config, DatasetInput, ModelOutput, RunRecord, RunStatus, SeriesColumns};
use labbook_store::models;
use labbook_store::{
    Deleted, NewProject, NewRun, Project, ProjectPatch, ProjectRef, RunPatch, RunQuery, StepRange,
    StoreError,
};

use super::filter;
use super::{
    MlResult, MlflowError, Req, blocking, decode_page_token, key_value_list, max_results,
    page_token, store, wire,
};
use crate::AppState;
use crate::json::{now_ms, num};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/experiments/create", post(create_experiment))
        .route("/experiments/get", get(get_experiment))
        .route("/experiments/get-by-name", get(get_experiment_by_name))
        .route(
            "/experiments/search",
            post(search_experiments).get(search_experiments),
        )
        .route("/experiments/update", post(update_experiment))
        .route("/experiments/delete", post(delete_experiment))
        .route("/experiments/restore", post(restore_experiment))
        .route("/experiments/set-experiment-tag", post(set_experiment_tag))
        .route(
            "/experiments/delete-experiment-tag",
            post(delete_experiment_tag),
        )
        .route("/runs/create", post(create_run))
        .route("/runs/get", get(get_run))
        .route("/runs/update", post(update_run))
        .route("/runs/delete", post(delete_run))
        .route("/runs/restore", post(restore_run))
        .route("/runs/log-metric", post(log_metric))
        .route("/runs/log-parameter", post(log_param))
        .route("/runs/log-batch", post(log_batch))
        .route("/runs/set-tag", post(set_tag))
        .route("/runs/delete-tag", post(delete_tag))
        .route("/runs/search", post(search_runs).get(search_runs))
        .route("/runs/log-inputs", post(log_inputs))
        .route("/runs/outputs", post(log_outputs))
        .route("/runs/log-model", post(log_model_history))
        .route("/metrics/get-history", get(get_history))
        .route(
            "/metrics/get-history-bulk-interval",
            get(get_history_bulk_interval),
        )
        .route("/artifacts/list", get(list_run_artifacts))
}

/// Where a run's artifacts are in the artifact store.
pub fn run_artifact_base(s: &dyn labbook_store::Store, run: &RunRecord) -> MlResult<String> {
    let root = run_root(s, run);
    super::artifacts::store_path_of(&format!("{root}/{}/artifacts", run.id))
        .ok_or_else(|| MlflowError::invalid("this run's artifacts are not kept by this server"))
}

/// `/get-artifact?run_uuid=…&path=…`: one file of a run, as MLflow's web UI
/// fetches it.
pub async fn get_artifact(
    State(state): State<AppState>,
    req: Req,
) -> MlResult<axum::response::Response> {
    let id = run_id(&req)?;
    let rel = labbook_core::artifact::normalize_artifact_path(req.str("path")?)
        .map_err(|_| MlflowError::invalid("Invalid path"))?;
    let base = blocking(&state, move |state| {
        let s = store(state);
        run_artifact_base(s, &load_run(s, &id)?)
    })
    .await?;
    super::artifacts::send_file(&state, format!("{base}/{rel}")).await
}

// Limits MLflow enforces, so that a client that works here works there.
const MAX_BATCH_METRICS: usize = 1000;
const MAX_BATCH_PARAMS: usize = 100;
const MAX_BATCH_TAGS: usize = 100;
const MAX_BATCH_TOTAL: usize = 1000;
const MAX_PARAM_VALUE: usize = 6000;
const MAX_TAG_VALUE: usize = 8000;
const MAX_ENTITY_KEY: usize = 250;

const RUN_NAME_TAG: &str = "mlflow.runName";
const NOTE_TAG: &str = "mlflow.note.content";
const USER_TAG: &str = "mlflow.user";

// ------------------------------------------------------------ experiments

/// Where a project's artifacts live, as an MLflow URI.
pub fn artifact_root(p: &Project) -> String {
    crate::layout::project_artifact_root(p)
}

pub fn experiment_json(p: &Project) -> Value {
    json!({
        "experiment_id": p.id.to_string(),
        "name": p.name,
        "artifact_location": artifact_root(p),
        "lifecycle_stage": if p.deleted_ms.is_some() { "deleted" } else { "active" },
        "last_update_time": p.updated_ms,
        "creation_time": p.created_ms,
        "tags": key_value_list(&p.tags),
    })
}

pub fn experiment_id(req: &Req, name: &str) -> MlResult<i64> {
    let raw = req.str(name)?;
    raw.trim().parse().map_err(|_| {
        MlflowError::invalid(format!(
            "Invalid value '{raw}' for parameter 'experiment_id': experiment ids are integers"
        ))
    })
}

pub fn project_by_id(s: &dyn labbook_store::Store, id: i64) -> MlResult<Project> {
    s.project(ProjectRef::Id(id)).map_err(|e| match e {
        StoreError::NotFound { .. } => {
            MlflowError::not_found(format!("No Experiment with id={id} exists"))
        }
        // A database that did not answer is not an answer: a 503 to retry.
        other => other.into(),
    })
}

/// A relative local artifact location made absolute from the server's
/// working directory, as MLflow's store does: a client elsewhere would
/// otherwise read it against its own.
fn absolute_if_local(location: &str) -> String {
    let uri = super::source::split(location);
    let path = match uri.scheme.as_str() {
        "" => location,
        "file" if uri.netloc.is_empty() => uri.path,
        _ => return location.to_string(),
    };
    if path.starts_with('/') {
        return location.to_string();
    }
    let Ok(cwd) = std::env::current_dir() else {
        return location.to_string();
    };
    let absolute = cwd.join(path).to_string_lossy().into_owned();
    if uri.scheme.is_empty() {
        absolute
    } else {
        format!("file://{absolute}")
    }
}

async fn create_experiment(
    State(state): State<AppState>,
    viewer: Option<axum::Extension<crate::Viewer>>,
    req: Req,
) -> MlResult {
    let creator = viewer.map(|v| v.0.user);
    let name = req.str("name")?.to_string();
    let artifact_location = req
        .opt_str("artifact_location")?
        .filter(|s| !s.is_empty())
        .map(absolute_if_local);
    let tags: BTreeMap<String, String> = req.key_values("tags")?.into_iter().collect();
    blocking(&state, move |state| {
        let created = store(state)
            .create_project(&NewProject {
                name: name.clone(),
                artifact_location,
                tags,
                created_ms: now_ms(),
            })
            .map_err(|e| match e {
                labbook_store::StoreError::Conflict(_) => {
                    MlflowError::exists(format!("Experiment '{name}' already exists."))
                }
                other => other.into(),
            })?;
        crate::access::grant_creator(
            store(state),
            creator.as_ref(),
            labbook_core::account::ResourceKind::Project,
            &created.id.to_string(),
        )?;
        Ok(wire(json!({ "experiment_id": created.id.to_string() })))
    })
    .await
}

async fn get_experiment(State(state): State<AppState>, req: Req) -> MlResult {
    let id = experiment_id(&req, "experiment_id")?;
    blocking(&state, move |state| {
        let p = project_by_id(store(state), id)?;
        Ok(wire(json!({ "experiment": experiment_json(&p) })))
    })
    .await
}

async fn get_experiment_by_name(State(state): State<AppState>, req: Req) -> MlResult {
    let name = req.str("experiment_name")?.to_string();
    blocking(&state, move |state| {
        let p = store(state)
            .project(ProjectRef::Name(&name))
            .map_err(|e| match e {
                StoreError::NotFound { .. } => {
                    MlflowError::not_found(format!("Could not find experiment with name '{name}'"))
                }
                other => other.into(),
            })?;
        Ok(wire(json!({ "experiment": experiment_json(&p) })))
    })
    .await
}

/// An experiment as the query evaluator sees it (see
/// `filter::experiment_filter` for the field mapping).
struct ExperimentView<'a>(&'a Project);

impl Fields for ExperimentView<'_> {
    fn get(&self, field: &Field) -> FieldValue<'_> {
        let p = self.0;
        match field {
            Field::Attr(Attr::Name) => FieldValue::Str(p.name.as_str().into()),
            Field::Attr(Attr::Id) => FieldValue::Str(p.id.to_string().into()),
            Field::Attr(Attr::Created) => FieldValue::Num(p.created_ms as f64),
            Field::Attr(Attr::Ended) => FieldValue::Num(p.updated_ms as f64),
            Field::Tag(k) => p
                .tags
                .get(k)
                .map_or(FieldValue::Missing, |v| FieldValue::Str(v.as_str().into())),
            _ => FieldValue::Missing,
        }
    }
}

fn view_type(req: &Req, name: &str) -> MlResult<Deleted> {
    match req.opt_str(name)?.unwrap_or("ACTIVE_ONLY") {
        "ACTIVE_ONLY" | "1" => Ok(Deleted::Exclude),
        "DELETED_ONLY" | "2" => Ok(Deleted::Only),
        "ALL" | "3" => Ok(Deleted::Include),
        other => Err(MlflowError::invalid(format!(
            "Invalid view type {other:?}; use ACTIVE_ONLY, DELETED_ONLY or ALL"
        ))),
    }
}

async fn search_experiments(State(state): State<AppState>, req: Req) -> MlResult {
    let deleted = view_type(&req, "view_type")?;
    let limit = max_results(&req, 1000, 50_000)?;
    let offset = decode_page_token(req.opt_str("page_token")?)?;
    let filter = match req.opt_str("filter")?.filter(|f| !f.trim().is_empty()) {
        Some(f) => filter::experiment_filter(f)?,
        None => None,
    };
    let mut order = filter::order_by(&req.strs("order_by")?, filter::experiment_order_field)?;
    if order.is_empty() {
        order.push(SortKey {
            field: Field::Attr(Attr::Created),
            descending: true,
        });
    }
    blocking(&state, move |state| {
        let projects = store(state).list_projects()?;
        let live = projects
            .iter()
            .map(|p| &p.project)
            .filter(|p| match deleted {
                Deleted::Exclude => p.deleted_ms.is_none(),
                Deleted::Only => p.deleted_ms.is_some(),
                Deleted::Include => true,
            });
        let hits = super::filter_sorted(live, filter.as_ref(), &order, ExperimentView, |a, b| {
            a.id.cmp(&b.id)
        });
        Ok(super::paged("experiments", &hits, offset, limit, |p| {
            experiment_json(p)
        }))
    })
    .await
}

async fn update_experiment(State(state): State<AppState>, req: Req) -> MlResult {
    let id = experiment_id(&req, "experiment_id")?;
    let new_name = req.opt_str("new_name")?.map(str::to_string);
    change_experiment(&state, id, move |p| p.name = new_name).await
}

async fn delete_experiment(State(state): State<AppState>, req: Req) -> MlResult {
    let id = experiment_id(&req, "experiment_id")?;
    change_experiment(&state, id, |p| p.deleted = Some(Some(now_ms()))).await
}

async fn restore_experiment(State(state): State<AppState>, req: Req) -> MlResult {
    let id = experiment_id(&req, "experiment_id")?;
    change_experiment(&state, id, |p| p.deleted = Some(None)).await
}

async fn set_experiment_tag(State(state): State<AppState>, req: Req) -> MlResult {
    let id = experiment_id(&req, "experiment_id")?;
    let key = req.str("key")?.to_string();
    let value = req.opt_str("value")?.unwrap_or("").to_string();
    check_tag(&key, &value)?;
    let value = tag_value(&key, value);
    change_experiment(&state, id, move |p| {
        p.set_tags.insert(key, value);
    })
    .await
}

async fn delete_experiment_tag(State(state): State<AppState>, req: Req) -> MlResult {
    let id = experiment_id(&req, "experiment_id")?;
    let key = req.str("key")?.to_string();
    change_experiment(&state, id, move |p| p.remove_tags.push(key)).await
}

async fn change_experiment(
    state: &AppState,
    id: i64,
    change: impl FnOnce(&mut ProjectPatch) + Send + 'static,
) -> MlResult {
    blocking(state, move |state| {
        project_by_id(store(state), id)?;
        let mut patch = ProjectPatch {
            now_ms: now_ms(),
            ..ProjectPatch::default()
        };
        change(&mut patch);
        store(state)
            .update_project(id, &patch)
            .map_err(|e| match e {
                labbook_store::StoreError::Conflict(m) => MlflowError::exists(m),
                other => other.into(),
            })?;
        Ok(wire(json!({})))
    })
    .await
}

// ------------------------------------------------------------------- runs

fn mlflow_status(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Running => "RUNNING",
        RunStatus::Finished => "FINISHED",
        RunStatus::Failed | RunStatus::Crashed => "FAILED",
        // MLflow has no "pruned"; a trial stopped early is killed there.
        RunStatus::Killed | RunStatus::Pruned => "KILLED",
    }
}

fn labbook_status(s: &str) -> MlResult<RunStatus> {
    match s {
        "RUNNING" | "SCHEDULED" | "1" | "2" => Ok(RunStatus::Running),
        "FINISHED" | "3" => Ok(RunStatus::Finished),
        "FAILED" | "4" => Ok(RunStatus::Failed),
        "KILLED" | "5" => Ok(RunStatus::Killed),
        other => Err(MlflowError::invalid(format!(
            "Invalid value \"{other}\" for parameter 'status': use RUNNING, SCHEDULED, FINISHED, FAILED or KILLED"
        ))),
    }
}

fn run_info_json(r: &RunRecord, root: &str) -> Value {
    let mut info = json!({
        "run_id": r.id,
        "run_uuid": r.id,
        "run_name": r.name,
        "experiment_id": r.project_id.to_string(),
        "user_id": r.kv_tags.get(USER_TAG).map_or("", String::as_str),
        "status": mlflow_status(r.status),
        "start_time": r.created_ms,
        "artifact_uri": format!("{root}/{}/artifacts", r.id),
        "lifecycle_stage": if r.deleted_ms.is_some() { "deleted" } else { "active" },
    });
    if let Some(end) = r.ended_ms {
        info["end_time"] = json!(end);
    }
    info
}

/// A config value as the string MLflow shows for a param.
pub fn run_json(r: &RunRecord, root: &str) -> Value {
    let metrics: Vec<Value> = r
        .metrics
        .iter()
        .map(|(k, s)| json!({ "key": k, "value": num(s.last), "timestamp": s.last_ts_ms, "step": s.last_step }))
        .collect();
    let params: Vec<Value> = r
        .config
        .iter()
        .map(|(k, v)| {
            let text = r.param_text.get(k).cloned().unwrap_or_else(|| v.display());
            json!({ "key": k, "value": text })
        })
        .collect();
    let mut tags = r.kv_tags.clone();
    tags.insert(RUN_NAME_TAG.into(), r.name.clone());
    if let Some(notes) = &r.notes {
        tags.insert(NOTE_TAG.into(), notes.clone());
    }
    let datasets: Vec<Value> = r
        .inputs
        .iter()
        .map(|d| {
            let mut dataset = json!({
                "name": d.name, "digest": d.digest, "source_type": d.source_type, "source": d.source,
            });
            if let Some(schema) = &d.schema {
                dataset["schema"] = json!(schema);
            }
            if let Some(profile) = &d.profile {
                dataset["profile"] = json!(profile);
            }
            json!({ "tags": key_value_list(&d.tags), "dataset": dataset })
        })
        .collect();
    let outputs: Vec<Value> = r
        .outputs
        .iter()
        .map(|o| json!({ "model_id": o.model_id, "step": o.step }))
        .collect();
    json!({
        "info": run_info_json(r, root),
        "data": { "metrics": metrics, "params": params, "tags": key_value_list(&tags) },
        "inputs": {
            "dataset_inputs": datasets,
            "model_inputs": r.model_inputs.iter().map(|id| json!({ "model_id": id })).collect::<Vec<_>>(),
        },
        "outputs": { "model_outputs": outputs },
    })
}

/// The artifact roots of the projects some runs belong to.
fn roots_for<'a>(
    s: &dyn labbook_store::Store,
    runs: impl IntoIterator<Item = &'a RunRecord>,
) -> HashMap<i64, String> {
    let mut roots = HashMap::new();
    for r in runs {
        roots.entry(r.project_id).or_insert_with(|| {
            s.project(ProjectRef::Id(r.project_id))
                .map(|p| artifact_root(&p))
                .unwrap_or_else(|_| format!("mlflow-artifacts:/{}", r.project_id))
        });
    }
    roots
}

pub fn run_root(s: &dyn labbook_store::Store, r: &RunRecord) -> String {
    roots_for(s, [r]).remove(&r.project_id).unwrap_or_default()
}

fn run_id(req: &Req) -> MlResult<String> {
    match req.opt_str("run_id")?.filter(|s| !s.is_empty()) {
        Some(id) => Ok(id.to_string()),
        None => Ok(req.str("run_uuid").map_err(|_| MlflowError::invalid(
            "Missing value for required parameter 'run_id'. See the API docs for more information about request parameters.",
        ))?.to_string()),
    }
}

pub fn load_run(s: &dyn labbook_store::Store, id: &str) -> MlResult<RunRecord> {
    s.get_run(id).map_err(|e| match e {
        StoreError::NotFound { .. } => {
            MlflowError::not_found(format!("Run with id={id} not found"))
        }
        other => other.into(),
    })
}

/// A run that may be written to: it exists and is not deleted.
fn active_run(s: &dyn labbook_store::Store, id: &str) -> MlResult<RunRecord> {
    let run = load_run(s, id)?;
    if run.deleted_ms.is_some() {
        return Err(MlflowError::invalid(format!(
            "The run {id} must be in the 'active' state. Current state is deleted."
        )));
    }
    Ok(run)
}

fn check_tag(key: &str, value: &str) -> MlResult<()> {
    validate_key("tag", key)?;
    super::validate_entity_key("tag", key)?;
    if key.len() > MAX_ENTITY_KEY {
        return Err(MlflowError::invalid(format!(
            "Tag key '{}' had length {}, which exceeded length limit of {MAX_ENTITY_KEY}",
            key.chars().take(40).collect::<String>(),
            key.len()
        )));
    }
    if value.len() > MAX_TAG_VALUE {
        return Err(MlflowError::invalid(format!(
            "Tag value for key '{key}' had length {}, which exceeded length limit of {MAX_TAG_VALUE}",
            value.len()
        )));
    }
    Ok(())
}

fn check_param(key: &str, value: &str) -> MlResult<()> {
    validate_key("param", key)?;
    super::validate_entity_key("param", key)?;
    if key.len() > MAX_ENTITY_KEY {
        return Err(MlflowError::invalid(format!(
            "Param key had length {}, which exceeded length limit of {MAX_ENTITY_KEY}",
            key.len()
        )));
    }
    if value.len() > MAX_PARAM_VALUE {
        return Err(MlflowError::invalid(format!(
            "Param value for key '{key}' had length {}, which exceeded length limit of {MAX_PARAM_VALUE}",
            value.len()
        )));
    }
    Ok(())
}

/// Folds MLflow tags into a patch: the run name and note tags are the run's
/// own name and notes; the rest are key/value tags.
fn tags_into_patch(tags: Vec<(String, String)>, patch: &mut RunPatch) -> MlResult<()> {
    for (key, value) in tags {
        check_tag(&key, &value)?;
        match key.as_str() {
            RUN_NAME_TAG if !value.is_empty() => patch.name = Some(value),
            RUN_NAME_TAG => {}
            NOTE_TAG => patch.notes = Some(value),
            _ => {
                let value = tag_value(&key, value);
                patch.set_kv_tags.insert(key, value);
            }
        }
    }
    Ok(())
}

async fn create_run(State(state): State<AppState>, req: Req) -> MlResult {
    let experiment = match req.opt_str("experiment_id")?.filter(|s| !s.is_empty()) {
        Some(_) => experiment_id(&req, "experiment_id")?,
        None => labbook_store::DEFAULT_PROJECT_ID,
    };
    let start = req.opt_i64("start_time")?.unwrap_or_else(now_ms);
    let run_name = req
        .opt_str("run_name")?
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let user = req
        .opt_str("user_id")?
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let mut patch = RunPatch::default();
    tags_into_patch(req.key_values("tags")?, &mut patch)?;
    if let Some(user) = user {
        patch.set_kv_tags.entry(USER_TAG.into()).or_insert(user);
    }
    blocking(&state, move |state| {
        let s = store(state);
        let project = project_by_id(s, experiment)?;
        if project.deleted_ms.is_some() {
            return Err(MlflowError::invalid_state(format!(
                "The experiment {experiment} must be in the 'active' state. Current state is deleted."
            )));
        }
        let run = s.create_run(&NewRun {
            project: project.name.clone(),
            name: run_name.or_else(|| patch.name.take()),
            notes: patch.notes.take(),
            created_ms: start,
            ..NewRun::default()
        })?;
        if !patch.is_empty() {
            s.update_run(&run.id, &patch)?;
        }
        let run = load_run(s, &run.id)?;
        Ok(wire(json!({ "run": run_json(&run, &artifact_root(&project)) })))
    })
    .await
}

async fn get_run(State(state): State<AppState>, req: Req) -> MlResult {
    let id = run_id(&req)?;
    blocking(&state, move |state| {
        let s = store(state);
        let run = load_run(s, &id)?;
        Ok(wire(json!({ "run": run_json(&run, &run_root(s, &run)) })))
    })
    .await
}

async fn update_run(State(state): State<AppState>, req: Req) -> MlResult {
    let id = run_id(&req)?;
    let status = req.opt_str("status")?.map(labbook_status).transpose()?;
    let end_time = req.opt_i64("end_time")?;
    let name = req
        .opt_str("run_name")?
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    blocking(&state, move |state| {
        let s = store(state);
        active_run(s, &id)?;
        let terminal = status.is_some_and(RunStatus::is_terminal);
        let patch = RunPatch {
            status,
            ended_ms: if terminal {
                Some(end_time.unwrap_or_else(now_ms))
            } else {
                end_time
            },
            name,
            ..RunPatch::default()
        };
        // Ending a run seals its series into full chunks.
        state
            .appender
            .commit(&id, Vec::new(), Some(patch), terminal)?;
        let run = load_run(s, &id)?;
        Ok(wire(
            json!({ "run_info": run_info_json(&run, &run_root(s, &run)) }),
        ))
    })
    .await
}

async fn delete_run(State(state): State<AppState>, req: Req) -> MlResult {
    let id = run_id(&req)?;
    blocking(&state, move |state| {
        load_run(store(state), &id)?;
        store(state).delete_run(&id, now_ms())?;
        Ok(wire(json!({})))
    })
    .await
}

async fn restore_run(State(state): State<AppState>, req: Req) -> MlResult {
    let id = run_id(&req)?;
    blocking(&state, move |state| {
        load_run(store(state), &id)?;
        store(state).restore_run(&id)?;
        Ok(wire(json!({})))
    })
    .await
}

/// Applies a change to a run that may be written to.
async fn patch_active_run(state: &AppState, id: String, patch: RunPatch) -> MlResult {
    blocking(state, move |state| {
        active_run(store(state), &id)?;
        store(state).update_run(&id, &patch)?;
        Ok(wire(json!({})))
    })
    .await
}

/// One metric of a request, checked.
struct MetricIn {
    key: String,
    step: i64,
    ts_ms: i64,
    value: f64,
    model_id: Option<String>,
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

fn metric_in(m: &Req) -> MlResult<MetricIn> {
    let key = m.str("key")?.to_string();
    validate_metric_key(&key)?;
    super::validate_entity_key("metric", &key)?;
    if key.len() > MAX_ENTITY_KEY {
        return Err(MlflowError::invalid(format!(
            "Metric key had length {}, which exceeded length limit of {MAX_ENTITY_KEY}",
            key.len()
        )));
    }
    Ok(MetricIn {
        value: m.f64("value")?,
        ts_ms: m.i64("timestamp")?,
        step: m.opt_i64("step")?.unwrap_or(0),
        model_id: non_empty(m.opt_str("model_id")?),
        dataset_name: non_empty(m.opt_str("dataset_name")?),
        dataset_digest: non_empty(m.opt_str("dataset_digest")?),
        key,
    })
}

fn non_empty(text: Option<&str>) -> Option<String> {
    text.filter(|s| !s.is_empty()).map(str::to_string)
}

fn series_of(metrics: &[MetricIn]) -> Vec<(String, SeriesColumns)> {
    let mut by_key: Vec<(String, SeriesColumns)> = Vec::new();
    for m in metrics {
        let i = match by_key.iter().position(|(k, _)| *k == m.key) {
            Some(i) => i,
            None => {
                by_key.push((m.key.clone(), SeriesColumns::default()));
                by_key.len() - 1
            }
        };
        by_key[i].1.push(labbook_core::Point {
            step: m.step,
            ts_ms: m.ts_ms,
            value: m.value,
        });
    }
    by_key
}

/// MLflow params are strings; one that reads as a number is kept as that
/// number (the dashboard plots it, filters compare it), remembering the
/// text sent (`labbook_core::config::param_from_text`). A secret never
/// reaches the store: the value of a param named like one is `***`, and
/// credentials in URLs are removed, by the same rule as every config (so a
/// retried param still matches).
fn param_into_patch(key: String, text: &str, patch: &mut RunPatch) -> MlResult<()> {
    let (value, spelling) = labbook_core::config::param_from_text(&key, text);
    let sent = spelling.clone().unwrap_or_else(|| value.display());
    let params = patch.params.get_or_insert_with(Config::new);
    if let Some(prior) = params.get(&key) {
        let prior = patch
            .param_text
            .get(&key)
            .cloned()
            .unwrap_or_else(|| prior.display());
        if prior != sent {
            return Err(MlflowError::invalid(format!(
                "Duplicate parameter keys have been submitted: '{key}' appears with two values"
            )));
        }
    }
    if let Some(text) = spelling {
        patch.param_text.insert(key.clone(), text);
    }
    params.insert(key, value);
    Ok(())
}

/// A tag's value as stored: `***` under a name like a secret's, and URLs
/// without their credentials (a repository URL with a token in it). Other
/// text is kept as sent: tags carry JSON documents (a model's history with
/// its signature) that the rule for config strings would mangle.
fn tag_value(key: &str, value: String) -> String {
    if labbook_core::redact::secret_name(key) {
        labbook_core::redact::MASK.to_string()
    } else {
        labbook_core::redact::strip_url_credentials(&value)
    }
}

/// Commits a request's metrics under MLflow's rule that a point identical
/// to one held is not stored again (LightGBM's autolog re-logs its step-0
/// points when it logs the model; Lightning sends epoch-0 validation twice).
///
/// MLflow's requests carry no batch id, yet a client retries one whose
/// answer it lost, maybe on another replica while the first still commits.
/// Its content is its id: the store applies an id once, atomically with
/// the write, on whichever replica. A request identical to an earlier one
/// (its points to the millisecond, its params and tags) is only ever a
/// repeat, whose points the rule above would drop anyway.
fn append_metrics(
    state: &AppState,
    run_id: &str,
    metrics: &[MetricIn],
    patch: Option<RunPatch>,
) -> MlResult<()> {
    let batch_id = (!metrics.is_empty()).then(|| content_batch_id(run_id, metrics, &patch));
    state.appender.append(
        run_id,
        labbook_store::appender::Append {
            series: series_of(metrics),
            patch,
            drop_identical: true,
            batch_id,
            ..Default::default()
        },
    )?;
    Ok(())
}

/// A request's id from what it carries: run, every point (key, step,
/// timestamp, value's bits) in order, and the run change. Replicas run the
/// same binary, so the change's debug form is the same text on each.
fn content_batch_id(run_id: &str, metrics: &[MetricIn], patch: &Option<RunPatch>) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"mlflow-request\0");
    h.update(run_id.as_bytes());
    for m in metrics {
        h.update(&(m.key.len() as u64).to_le_bytes());
        h.update(m.key.as_bytes());
        h.update(&m.step.to_le_bytes());
        h.update(&m.ts_ms.to_le_bytes());
        h.update(&m.value.to_bits().to_le_bytes());
    }
    h.update(format!("{patch:?}").as_bytes());
    format!("mlflow-{}", &h.finalize().to_hex()[..32])
}

/// Links metrics logged with a `model_id` to that logged model.
fn record_model_metrics(
    s: &dyn labbook_store::Store,
    run_id: &str,
    metrics: &[MetricIn],
) -> MlResult<()> {
    for m in metrics {
        if let Some(model_id) = &m.model_id {
            models::update_logged_model(s, model_id, |model| {
                model.metrics.push(labbook_core::model::ModelMetric {
                    key: m.key.clone(),
                    value: m.value,
                    ts_ms: m.ts_ms,
                    step: m.step,
                    run_id: Some(run_id.to_string()),
                    dataset_name: m.dataset_name.clone(),
                    dataset_digest: m.dataset_digest.clone(),
                });
                Ok(())
            })?;
        }
    }
    Ok(())
}

async fn log_metric(State(state): State<AppState>, req: Req) -> MlResult {
    let id = run_id(&req)?;
    let metric = metric_in(&req)?;
    blocking(&state, move |state| {
        active_run(store(state), &id)?;
        let metrics = [metric];
        append_metrics(state, &id, &metrics, None)?;
        record_model_metrics(store(state), &id, &metrics)?;
        Ok(wire(json!({})))
    })
    .await
}

async fn log_param(State(state): State<AppState>, req: Req) -> MlResult {
    let id = run_id(&req)?;
    let key = req.str("key")?.to_string();
    let value = req.opt_str("value")?.unwrap_or("").to_string();
    check_param(&key, &value)?;
    let mut patch = RunPatch::default();
    param_into_patch(key, &value, &mut patch)?;
    patch_active_run(&state, id, patch).await
}

async fn log_batch(State(state): State<AppState>, req: Req) -> MlResult {
    let id = run_id(&req)?;
    let metrics = req.objects("metrics")?;
    let params = req.key_values("params")?;
    let tags = req.key_values("tags")?;
    if metrics.len() > MAX_BATCH_METRICS {
        return Err(MlflowError::invalid(format!(
            "A batch logging request can contain at most {MAX_BATCH_METRICS} metrics. Got {} metrics. Please split up metrics across multiple requests and try again.",
            metrics.len()
        )));
    }
    if params.len() > MAX_BATCH_PARAMS {
        return Err(MlflowError::invalid(format!(
            "A batch logging request can contain at most {MAX_BATCH_PARAMS} params. Got {} params. Please split up params across multiple requests and try again.",
            params.len()
        )));
    }
    if tags.len() > MAX_BATCH_TAGS {
        return Err(MlflowError::invalid(format!(
            "A batch logging request can contain at most {MAX_BATCH_TAGS} tags. Got {} tags. Please split up tags across multiple requests and try again.",
            tags.len()
        )));
    }
    let total = metrics.len() + params.len() + tags.len();
    if total > MAX_BATCH_TOTAL {
        return Err(MlflowError::invalid(format!(
            "A batch logging request can contain at most {MAX_BATCH_TOTAL} metrics, params, and tags in total. Got {total}. Please split up across multiple requests and try again."
        )));
    }
    let metrics: Vec<MetricIn> = metrics
        .iter()
        .enumerate()
        .map(|(i, m)| metric_in(m).map_err(|e| e.within(&format!("metrics[{i}]"))))
        .collect::<MlResult<_>>()?;
    let mut patch = RunPatch::default();
    for (key, value) in params {
        check_param(&key, &value)?;
        param_into_patch(key, &value, &mut patch)?;
    }
    tags_into_patch(tags, &mut patch)?;
    let hold = crate::test_hook::holds(
        state.hold_after_commit.as_deref(),
        metrics.iter().map(|m| m.key.as_str()),
    );
    let run = id.clone();
    let answer = blocking(&state, move |state| {
        active_run(store(state), &id)?;
        let patch = (!patch.is_empty()).then_some(patch);
        if !metrics.is_empty() || patch.is_some() {
            append_metrics(state, &id, &metrics, patch)?;
        }
        record_model_metrics(store(state), &id, &metrics)?;
        Ok(wire(json!({})))
    })
    .await?;
    if hold {
        match crate::test_hook::hold("a log-batch", &run).await {}
    }
    Ok(answer)
}

async fn set_tag(State(state): State<AppState>, req: Req) -> MlResult {
    let id = run_id(&req)?;
    let key = req.str("key")?.to_string();
    let value = req.opt_str("value")?.unwrap_or("").to_string();
    let mut patch = RunPatch::default();
    tags_into_patch(vec![(key, value)], &mut patch)?;
    patch_active_run(&state, id, patch).await
}

async fn delete_tag(State(state): State<AppState>, req: Req) -> MlResult {
    let id = run_id(&req)?;
    let key = req.str("key")?.to_string();
    blocking(&state, move |state| {
        active_run(store(state), &id)?;
        let patch = RunPatch {
            remove_kv_tags: vec![key.clone()],
            ..RunPatch::default()
        };
        store(state).update_run(&id, &patch).map_err(|e| match e {
            labbook_store::StoreError::NotFound { .. } => {
                MlflowError::not_found(format!("No tag with name: {key} in run with id {id}"))
            }
            other => other.into(),
        })?;
        Ok(wire(json!({})))
    })
    .await
}

/// The `experiment_ids` a search names.
pub fn experiment_ids(req: &Req) -> MlResult<Vec<i64>> {
    req.strs("experiment_ids")?
        .iter()
        .map(|e| {
            e.trim()
                .parse()
                .map_err(|_| MlflowError::invalid(format!("Invalid experiment id {e:?}")))
        })
        .collect()
}

async fn search_runs(State(state): State<AppState>, req: Req) -> MlResult {
    // An id asked for twice asks for nothing more: each is looked up once,
    // and every run is checked against at most the projects that exist.
    let mut experiments = experiment_ids(&req)?;
    experiments.sort_unstable();
    experiments.dedup();
    let filter = match req.opt_str("filter")?.filter(|f| !f.trim().is_empty()) {
        Some(f) => filter::run_filter(f)?,
        None => None,
    };
    // After these keys the store orders runs as MLflow does: start time,
    // newest first, then run id ascending.
    let sort = filter::order_by(&req.strs("order_by")?, filter::run_order_field)?;
    let deleted = view_type(&req, "run_view_type")?;
    let limit = max_results(&req, 1000, 50_000)?;
    let offset = decode_page_token(req.opt_str("page_token")?)?;
    blocking(&state, move |state| {
        let s = store(state);
        let mut ids = Vec::new();
        let mut roots = HashMap::new();
        // An unknown experiment holds no runs (MLflow answers the same).
        for id in &experiments {
            if let Ok(p) = s.project(ProjectRef::Id(*id)) {
                roots.insert(p.id, artifact_root(&p));
                ids.push(p.id);
            }
        }
        let query = RunQuery {
            project_ids: Some(ids),
            filter,
            sort,
            deleted,
            ..RunQuery::default()
        };
        let mut page = Vec::new();
        let mut total = 0;
        s.visit_runs(&query, &mut |runs| {
            total = runs.len();
            page = runs
                .iter()
                .skip(offset)
                .take(limit)
                .map(|r| {
                    let root = roots.get(&r.project_id).map_or("", String::as_str);
                    run_json(r, root)
                })
                .collect();
        })?;
        let mut out = json!({ "runs": page });
        if let Some(token) = page_token(offset, limit, total) {
            out["next_page_token"] = json!(token);
        }
        Ok(wire(out))
    })
    .await
}

fn dataset_input(d: &Req) -> MlResult<DatasetInput> {
    let dataset = d
        .object("dataset")?
        .ok_or_else(|| MlflowError::invalid("Missing value for required parameter 'dataset'"))?;
    let input = DatasetInput {
        name: dataset.str("name")?.to_string(),
        digest: dataset.str("digest")?.to_string(),
        source_type: dataset.str("source_type")?.to_string(),
        source: dataset.str("source")?.to_string(),
        schema: dataset.opt_str("schema")?.map(str::to_string),
        profile: dataset.opt_str("profile")?.map(str::to_string),
        tags: d.key_values("tags")?.into_iter().collect(),
    };
    input.validate()?;
    Ok(input)
}

async fn log_inputs(State(state): State<AppState>, req: Req) -> MlResult {
    let id = run_id(&req)?;
    let inputs: Vec<DatasetInput> = req
        .objects("datasets")?
        .iter()
        .map(dataset_input)
        .collect::<MlResult<_>>()?;
    let models: Vec<String> = req
        .objects("models")?
        .iter()
        .map(|m| Ok(m.str("model_id")?.to_string()))
        .collect::<MlResult<_>>()?;
    blocking(&state, move |state| {
        let s = store(state);
        let run = active_run(s, &id)?;
        s.update_run(
            &id,
            &RunPatch {
                add_inputs: inputs.clone(),
                add_model_inputs: models.clone(),
                ..RunPatch::default()
            },
        )?;
        // The same inputs as artifact versions, in labbook's lineage.
        for d in &inputs {
            super::lineage::dataset_used(s, &run, d)?;
        }
        for model in models
            .iter()
            .filter_map(|m| super::logged_model_by_id(s, m))
        {
            super::lineage::model_version(s, &model, Some(&run))?;
        }
        Ok(wire(json!({})))
    })
    .await
}

async fn log_outputs(State(state): State<AppState>, req: Req) -> MlResult {
    let id = run_id(&req)?;
    let outputs: Vec<ModelOutput> = req
        .objects("models")?
        .iter()
        .map(|m| {
            Ok(ModelOutput {
                model_id: m.str("model_id")?.to_string(),
                step: m.opt_i64("step")?.unwrap_or(0),
            })
        })
        .collect::<MlResult<_>>()?;
    let patch = RunPatch {
        add_outputs: outputs,
        ..RunPatch::default()
    };
    patch_active_run(&state, id, patch).await
}

/// The MLflow 2 way of recording a model on a run: its MLmodel JSON is
/// appended to the `mlflow.log-model.history` tag.
async fn log_model_history(State(state): State<AppState>, req: Req) -> MlResult {
    let id = run_id(&req)?;
    let model_json = req.str("model_json")?.to_string();
    let model: Value = serde_json::from_str(&model_json)
        .map_err(|e| MlflowError::invalid(format!("model_json is not JSON: {e}")))?;
    blocking(&state, move |state| {
        let run = active_run(store(state), &id)?;
        const HISTORY: &str = "mlflow.log-model.history";
        let mut history: Vec<Value> = run
            .kv_tags
            .get(HISTORY)
            .and_then(|h| serde_json::from_str(h).ok())
            .unwrap_or_default();
        history.push(model);
        let patch = RunPatch {
            set_kv_tags: [(HISTORY.to_string(), Value::Array(history).to_string())].into(),
            ..RunPatch::default()
        };
        store(state).update_run(&id, &patch)?;
        Ok(wire(json!({})))
    })
    .await
}

// ---------------------------------------------------------------- metrics

/// One metric point on the wire, serialized straight from the decoded
/// columns: a history of many thousands of points never becomes a tree of
/// JSON values.
#[derive(serde::Serialize)]
struct PointJson<'a> {
    key: &'a str,
    #[serde(serialize_with = "labbook_core::metric::json_float::serialize")]
    value: f64,
    timestamp: i64,
    step: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_id: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct HistoryJson<'a> {
    // proto2 JSON leaves an empty repeated field out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    metrics: Vec<PointJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

fn points_json<'a>(
    key: &'a str,
    cols: &SeriesColumns,
    range: std::ops::Range<usize>,
    run_id: Option<&'a str>,
) -> impl Iterator<Item = PointJson<'a>> {
    let (steps, ts, values) = (
        cols.steps[range.clone()].to_vec(),
        cols.ts_ms[range.clone()].to_vec(),
        cols.values[range].to_vec(),
    );
    (0..steps.len()).map(move |i| PointJson {
        key,
        value: values[i],
        timestamp: ts[i],
        step: steps[i],
        run_id,
    })
}

/// MLflow lists a history by (timestamp, step, value); labbook keeps series
/// by step. They agree unless steps were logged out of time order.
fn sort_by_time(cols: &mut SeriesColumns) {
    let key = |i: usize| (cols.ts_ms[i], cols.steps[i]);
    if (1..cols.len()).all(|i| key(i - 1) <= key(i)) {
        return;
    }
    let mut order: Vec<usize> = (0..cols.len()).collect();
    order.sort_by(|&a, &b| {
        key(a)
            .cmp(&key(b))
            .then_with(|| cols.values[a].total_cmp(&cols.values[b]))
    });
    *cols = SeriesColumns {
        steps: order.iter().map(|&i| cols.steps[i]).collect(),
        ts_ms: order.iter().map(|&i| cols.ts_ms[i]).collect(),
        values: order.iter().map(|&i| cols.values[i]).collect(),
    };
}

async fn get_history(
    State(state): State<AppState>,
    req: Req,
) -> MlResult<axum::response::Response> {
    let id = run_id(&req)?;
    let key = req.str("metric_key")?.to_string();
    let limit = match req.opt_i64("max_results")? {
        Some(_) => Some(max_results(&req, 25_000, 25_000_000)?),
        None => None,
    };
    let offset = decode_page_token(req.opt_str("page_token")?)?;
    blocking(&state, move |state| {
        let s = store(state);
        load_run(s, &id)?;
        // A key the run never logged has an empty history, as in MLflow.
        let mut cols = match s.read_series(&id, &key, StepRange::ALL) {
            Err(labbook_store::StoreError::NotFound { .. }) => SeriesColumns::default(),
            other => other?,
        };
        sort_by_time(&mut cols);
        let total = cols.len();
        let start = offset.min(total);
        let end = limit.map_or(total, |l| (start + l).min(total));
        let answer = HistoryJson {
            metrics: points_json(&key, &cols, start..end, None).collect(),
            next_page_token: limit.and_then(|l| page_token(start, l, total)),
        };
        Ok(axum::response::IntoResponse::into_response(axum::Json(
            answer,
        )))
    })
    .await
}

/// MLflow's sampling of a history: the points ordered by (step, timestamp,
/// value) cut into `k` buckets as SQL's NTILE cuts them, the first point of
/// each kept, and the last point always (in place of the last sample when
/// there are already `k`). Indices into `cols`, in that order.
fn sample_like_mlflow(cols: &SeriesColumns, k: usize) -> Vec<usize> {
    let n = cols.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        (cols.steps[a], cols.ts_ms[a])
            .cmp(&(cols.steps[b], cols.ts_ms[b]))
            .then_with(|| cols.values[a].total_cmp(&cols.values[b]))
    });
    if n <= k || k == 0 {
        return order;
    }
    let (size, larger) = (n / k, n % k);
    let mut picked: Vec<usize> = (0..k).map(|b| order[b * size + b.min(larger)]).collect();
    if let Some(tail) = picked.last_mut() {
        *tail = order[n - 1];
    }
    picked
}

async fn get_history_bulk_interval(State(state): State<AppState>, req: Req) -> MlResult {
    let ids = req.strs("run_ids")?;
    if ids.is_empty() {
        return Err(MlflowError::invalid(
            "Missing value for required parameter 'run_ids'.",
        ));
    }
    if ids.len() > 100 {
        return Err(MlflowError::invalid(format!(
            "GetMetricHistoryBulkInterval request must specify at most 100 run_ids. Received {} run_ids.",
            ids.len()
        )));
    }
    let key = req.str("metric_key")?.to_string();
    let range = StepRange {
        lo: req.opt_i64("start_step")?,
        hi: req.opt_i64("end_step")?,
    };
    if range.lo.is_some() != range.hi.is_some() {
        return Err(MlflowError::invalid(
            "If either start step or end step are specified, both must be specified.",
        ));
    }
    if let (Some(lo), Some(hi)) = (range.lo, range.hi)
        && lo > hi
    {
        return Err(MlflowError::invalid(format!(
            "end_step must be greater than start_step. Found start_step={lo} and end_step={hi}."
        )));
    }
    // MLflow's own wording for this endpoint's limit.
    if req
        .opt_i64("max_results")?
        .is_some_and(|n| !(1..=2500).contains(&n))
    {
        return Err(MlflowError::invalid(
            "max_results must be between 1 and 2500.",
        ));
    }
    let per_run = max_results(&req, 320, 2500)?;
    blocking(&state, move |state| {
        let s = store(state);
        let mut metrics = Vec::new();
        for id in &ids {
            load_run(s, id)?;
            let cols = match s.read_series(id, &key, range) {
                Err(labbook_store::StoreError::NotFound { .. }) => SeriesColumns::default(),
                other => other?,
            };
            let sampled = sample_like_mlflow(&cols, per_run);
            metrics.extend(sampled.into_iter().map(|i| {
                let one = points_json(&key, &cols, i..i + 1, Some(id)).next();
                one.map_or(Value::Null, |p| {
                    serde_json::to_value(p).unwrap_or(Value::Null)
                })
            }));
        }
        Ok(wire(json!({ "metrics": metrics })))
    })
    .await
}

/// `artifacts/list` on the tracking service: a run's artifacts, with paths
/// relative to its artifact root.
async fn list_run_artifacts(State(state): State<AppState>, req: Req) -> MlResult {
    let id = run_id(&req)?;
    let path = req.opt_str("path")?.unwrap_or("").to_string();
    blocking(&state, move |state| {
        let s = store(state);
        let run = load_run(s, &id)?;
        let root = run_root(s, &run);
        let base = run_artifact_base(s, &run)?;
        let rel = labbook_core::artifact::normalize_artifact_path(&path)
            .map_err(|_| MlflowError::invalid("Invalid path"))?;
        let files = super::artifacts::file_infos(s, &base, &rel)?;
        Ok(wire(
            json!({ "root_uri": format!("{root}/{id}/artifacts"), "files": files }),
        ))
    })
    .await
}
