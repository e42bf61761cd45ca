//! Logged models (MLflow 3) and the model registry: registered models,
//! their versions, aliases, tags and stages.

use std::collections::{BTreeMap, HashMap};

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{delete, get, patch, post};
use serde_json::{Value, json};

use labbook_core::model::{
    LoggedModel, LoggedModelStatus, ModelVersion, RegisteredModel, STAGES, canonical_stage,
    validate_alias, validate_model_name,
};
use labbook_core::query::{Attr, Expr, Field, Fields, SortKey, Value as FieldValue};
use labbook_store::{Store, StoreError, models};

use super::filter::{self, Entity};
use super::source::VersionRef;
use super::tracking::{artifact_root, experiment_id, experiment_ids, project_by_id, run_root};
use super::{
    MlResult, MlflowError, Req, blocking, decode_page_token, key_value_list, max_results, store,
    wire,
};
use crate::AppState;
use crate::json::{now_ms, num};
use labbook_core::account::ResourceKind;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/logged-models", post(create_logged_model))
        .route("/logged-models/search", post(search_logged_models))
        .route(
            "/logged-models/{model_id}",
            get(get_logged_model)
                .patch(finalize_logged_model)
                .delete(delete_logged_model),
        )
        .route(
            "/logged-models/{model_id}/tags",
            patch(set_logged_model_tags),
        )
        .route(
            "/logged-models/{model_id}/tags/{key}",
            delete(delete_logged_model_tag),
        )
        .route(
            "/logged-models/{model_id}/params",
            post(log_logged_model_params),
        )
        .route(
            "/logged-models/{model_id}/artifacts/directories",
            get(list_logged_model_artifacts),
        )
        .route("/registered-models/create", post(create_registered_model))
        .route("/registered-models/get", get(get_registered_model))
        .route("/registered-models/rename", post(rename_registered_model))
        .route("/registered-models/update", patch(update_registered_model))
        .route("/registered-models/delete", delete(delete_registered_model))
        .route("/registered-models/search", get(search_registered_models))
        .route(
            "/registered-models/get-latest-versions",
            post(get_latest_versions).get(get_latest_versions),
        )
        .route("/registered-models/set-tag", post(set_registered_model_tag))
        .route(
            "/registered-models/delete-tag",
            delete(delete_registered_model_tag),
        )
        .route(
            "/registered-models/alias",
            post(set_alias).delete(delete_alias).get(get_by_alias),
        )
        .route("/model-versions/create", post(create_model_version))
        .route("/model-versions/get", get(get_model_version))
        .route("/model-versions/update", patch(update_model_version))
        .route("/model-versions/delete", delete(delete_model_version))
        .route("/model-versions/search", get(search_model_versions))
        .route("/model-versions/get-download-uri", get(get_download_uri))
        .route("/model-versions/transition-stage", post(transition_stage))
        .route("/model-versions/set-tag", post(set_model_version_tag))
        .route(
            "/model-versions/delete-tag",
            delete(delete_model_version_tag),
        )
}

fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::with_capacity(32);
    for i in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

// ---------------------------------------------------------- logged models

fn logged_model_status(s: LoggedModelStatus) -> &'static str {
    match s {
        LoggedModelStatus::Pending => "LOGGED_MODEL_PENDING",
        LoggedModelStatus::Ready => "LOGGED_MODEL_READY",
        LoggedModelStatus::Failed => "LOGGED_MODEL_UPLOAD_FAILED",
    }
}

fn logged_model_root(s: &dyn Store, m: &LoggedModel) -> String {
    let root = project_by_id(s, m.project_id)
        .map(|p| artifact_root(&p))
        .unwrap_or_else(|_| format!("mlflow-artifacts:/{}", m.project_id));
    format!("{root}/models/{}/artifacts", m.id)
}

fn logged_model_json(s: &dyn Store, m: &LoggedModel) -> Value {
    let metrics: Vec<Value> = m
        .metrics
        .iter()
        .map(|x| {
            let mut metric = json!({ "key": x.key, "value": num(x.value), "timestamp": x.ts_ms,
                                     "step": x.step, "run_id": x.run_id, "model_id": m.id });
            if let Some(name) = &x.dataset_name {
                metric["dataset_name"] = json!(name);
            }
            if let Some(digest) = &x.dataset_digest {
                metric["dataset_digest"] = json!(digest);
            }
            metric
        })
        .collect();
    json!({
        "info": {
            "model_id": m.id,
            "experiment_id": m.project_id.to_string(),
            "name": m.name,
            "creation_timestamp_ms": m.created_ms,
            "last_updated_timestamp_ms": m.updated_ms,
            "artifact_uri": logged_model_root(s, m),
            "status": logged_model_status(m.status),
            "status_message": m.status_message.clone().unwrap_or_default(),
            "model_type": m.model_type.clone().unwrap_or_default(),
            "source_run_id": m.source_run_id.clone().unwrap_or_default(),
            "tags": key_value_list(&m.tags),
        },
        "data": { "params": key_value_list(&m.params), "metrics": metrics },
    })
}

/// Where a logged model's files are in the artifact store.
pub fn logged_model_artifact_base(s: &dyn Store, id: &str) -> Option<String> {
    let model = live_logged_model(s, id).ok()?;
    super::artifacts::store_path_of(&logged_model_root(s, &model))
}

/// A logged model that has not been deleted, if the store holds it.
pub fn logged_model_by_id(s: &dyn Store, id: &str) -> Option<LoggedModel> {
    live_logged_model(s, id).ok()
}

fn live_logged_model(s: &dyn Store, id: &str) -> MlResult<LoggedModel> {
    match models::get::<LoggedModel>(s, models::LOGGED_MODEL, id)? {
        Some(m) if !m.deleted => Ok(m),
        _ => Err(MlflowError::not_found(format!(
            "Logged model with ID '{id}' not found."
        ))),
    }
}

/// `logged-models/{id}/artifacts/directories`: one folder of a logged
/// model's files, paths relative to its artifact root.
async fn list_logged_model_artifacts(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Req,
) -> MlResult {
    let rel = labbook_core::artifact::normalize_artifact_path(
        req.opt_str("artifact_directory_path")?.unwrap_or(""),
    )
    .map_err(|_| MlflowError::invalid("Invalid path"))?;
    blocking(&state, move |state| {
        let s = store(state);
        let model = live_logged_model(s, &id)?;
        let root = logged_model_root(s, &model);
        let base = super::artifacts::store_path_of(&root).ok_or_else(|| {
            MlflowError::invalid("this model's artifacts are not kept by this server")
        })?;
        let files = super::artifacts::file_infos(s, &base, &rel)?;
        Ok(wire(json!({ "root_uri": root, "files": files })))
    })
    .await
}

async fn create_logged_model(State(state): State<AppState>, req: Req) -> MlResult {
    let experiment = experiment_id(&req, "experiment_id")?;
    let name = req
        .opt_str("name")?
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let model_type = req
        .opt_str("model_type")?
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let source_run_id = req
        .opt_str("source_run_id")?
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let params: BTreeMap<String, String> = req.key_values("params")?.into_iter().collect();
    let tags: BTreeMap<String, String> = req.key_values("tags")?.into_iter().collect();
    blocking(&state, move |state| {
        let s = store(state);
        project_by_id(s, experiment)?;
        // Like MLflow, a source run this server does not hold is kept as
        // given: a model may come from a run tracked elsewhere.
        let id = format!("m-{}", random_hex());
        let now = now_ms();
        let model = LoggedModel {
            name: name.unwrap_or_else(|| format!("model-{}", &id[2..10])),
            id: id.clone(),
            project_id: experiment,
            source_run_id,
            status: LoggedModelStatus::Pending,
            status_message: None,
            model_type,
            created_ms: now,
            updated_ms: now,
            tags,
            params,
            metrics: Vec::new(),
            deleted: false,
        };
        let saved = model.clone();
        models::update(
            s,
            models::LOGGED_MODEL,
            &id,
            move |doc: &mut Option<LoggedModel>| {
                *doc = Some(saved);
                Ok(())
            },
        )?;
        Ok(wire(json!({ "model": logged_model_json(s, &model) })))
    })
    .await
}

async fn get_logged_model(State(state): State<AppState>, Path(id): Path<String>) -> MlResult {
    blocking(&state, move |state| {
        let m = live_logged_model(store(state), &id)?;
        Ok(wire(
            json!({ "model": logged_model_json(store(state), &m) }),
        ))
    })
    .await
}

fn change_logged_model(
    s: &dyn Store,
    id: &str,
    change: impl FnOnce(&mut LoggedModel) -> MlResult<()>,
) -> MlResult<LoggedModel> {
    live_logged_model(s, id)?;
    let mut failure = None;
    let model = models::update_logged_model(s, id, |m| {
        if let Err(e) = change(m) {
            failure = Some(e);
            return Err(StoreError::Conflict("rejected".into()));
        }
        m.updated_ms = now_ms();
        Ok(m.clone())
    });
    match (model, failure) {
        (_, Some(e)) => Err(e),
        (Ok(m), None) => Ok(m),
        (Err(e), None) => Err(e.into()),
    }
}

async fn finalize_logged_model(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Req,
) -> MlResult {
    let status = match req.str("status")? {
        "LOGGED_MODEL_READY" | "2" => LoggedModelStatus::Ready,
        "LOGGED_MODEL_UPLOAD_FAILED" | "3" => LoggedModelStatus::Failed,
        "LOGGED_MODEL_PENDING" | "1" => LoggedModelStatus::Pending,
        other => {
            return Err(MlflowError::invalid(format!(
                "Invalid value \"{other}\" for parameter 'status'"
            )));
        }
    };
    blocking(&state, move |state| {
        let m = change_logged_model(store(state), &id, |m| {
            m.status = status;
            Ok(())
        })?;
        if m.status == LoggedModelStatus::Ready {
            super::lineage::model_version(store(state), &m, None)?;
        }
        Ok(wire(
            json!({ "model": logged_model_json(store(state), &m) }),
        ))
    })
    .await
}

async fn delete_logged_model(State(state): State<AppState>, Path(id): Path<String>) -> MlResult {
    blocking(&state, move |state| {
        change_logged_model(store(state), &id, |m| {
            m.deleted = true;
            Ok(())
        })?;
        Ok(wire(json!({})))
    })
    .await
}

async fn set_logged_model_tags(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Req,
) -> MlResult {
    let tags = req.key_values("tags")?;
    blocking(&state, move |state| {
        change_logged_model(store(state), &id, |m| {
            m.tags.extend(tags);
            Ok(())
        })?;
        Ok(wire(json!({})))
    })
    .await
}

async fn delete_logged_model_tag(
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
) -> MlResult {
    blocking(&state, move |state| {
        change_logged_model(store(state), &id, |m| {
            m.tags.remove(&key).map(|_| ()).ok_or_else(|| {
                MlflowError::not_found(format!("No tag with key '{key}' on logged model {}", m.id))
            })
        })?;
        Ok(wire(json!({})))
    })
    .await
}

async fn log_logged_model_params(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Req,
) -> MlResult {
    let params = req.key_values("params")?;
    blocking(&state, move |state| {
        change_logged_model(store(state), &id, |m| {
            m.params.extend(params);
            Ok(())
        })?;
        Ok(wire(json!({})))
    })
    .await
}

/// A logged model as the query evaluator sees it: `name`, `model_id`,
/// `status`, `creation_timestamp` (as `created`), params, tags, metrics
/// (latest by step), and `model_type` / `source_run_id` via summary keys.
struct LoggedModelView<'a>(&'a LoggedModel);

impl Fields for LoggedModelView<'_> {
    fn get(&self, field: &Field) -> FieldValue<'_> {
        let m = self.0;
        let text = |s: &'_ str| FieldValue::Str(s.to_string().into());
        match field {
            Field::Attr(Attr::Name) => text(&m.name),
            Field::Attr(Attr::Id) => text(&m.id),
            Field::Attr(Attr::Status) => text(logged_model_status(m.status)),
            Field::Attr(Attr::Created) => FieldValue::Num(m.created_ms as f64),
            Field::Attr(Attr::Ended) => FieldValue::Num(m.updated_ms as f64),
            Field::Param(k) => m.params.get(k).map_or(FieldValue::Missing, |v| text(v)),
            Field::Tag(k) => m.tags.get(k).map_or(FieldValue::Missing, |v| text(v)),
            Field::Metric(k, _) => m
                .metrics
                .iter()
                .filter(|x| x.key == *k)
                .max_by_key(|x| (x.step, x.ts_ms))
                .map_or(FieldValue::Missing, |x| FieldValue::Num(x.value)),
            Field::Summary(k) if k == "model_type" => {
                m.model_type.as_deref().map_or(FieldValue::Missing, text)
            }
            Field::Summary(k) if k == "source_run_id" => {
                m.source_run_id.as_deref().map_or(FieldValue::Missing, text)
            }
            _ => FieldValue::Missing,
        }
    }
}

fn logged_model_field(entity: &Entity) -> MlResult<Field> {
    Ok(match entity {
        Entity::Metric(k) => Field::Metric(k.clone(), labbook_core::query::Agg::Last),
        Entity::Param(k) => Field::Param(k.clone()),
        Entity::Tag(k) => Field::Tag(k.clone()),
        Entity::Attribute(a) => match a.as_str() {
            "name" => Field::Attr(Attr::Name),
            "model_id" => Field::Attr(Attr::Id),
            "status" => Field::Attr(Attr::Status),
            "creation_timestamp" | "creation_time" => Field::Attr(Attr::Created),
            "last_updated_timestamp" => Field::Attr(Attr::Ended),
            "model_type" | "source_run_id" => Field::Summary(a.clone()),
            other => {
                return Err(MlflowError::invalid(format!(
                    "Invalid attribute key '{other}'"
                )));
            }
        },
        Entity::Dataset(_) => {
            return Err(MlflowError::invalid(
                "filter logged models by dataset with `datasets`",
            ));
        }
    })
}

fn clauses_to_expr(
    src: Option<&str>,
    field_of: impl Fn(&Entity) -> MlResult<Field>,
) -> MlResult<Option<Expr>> {
    let Some(src) = src.filter(|f| !f.trim().is_empty()) else {
        return Ok(None);
    };
    let mut all = Vec::new();
    for clause in filter::parse(src)? {
        let field = field_of(&clause.entity)?;
        let tag_ne = matches!(field, Field::Tag(_))
            && clause.op == filter::Op::Cmp(labbook_core::query::CmpOp::Ne);
        let mut next = filter::build_clause(field.clone(), &clause.op, clause.values);
        // The client hides prompts with `tag.mlflow.prompt.is_prompt != 'true'`:
        // a model without the tag must pass, so `!=` holds where the tag is missing.
        if tag_ne {
            next = Expr::any(vec![
                Expr::IsNull {
                    field,
                    negated: false,
                },
                next,
            ]);
        }
        all.push(next);
    }
    Ok(filter::conjunction(all))
}

async fn search_logged_models(State(state): State<AppState>, req: Req) -> MlResult {
    let experiments = experiment_ids(&req)?;
    let filter = clauses_to_expr(req.opt_str("filter")?, logged_model_field)?;
    let mut order = Vec::new();
    for o in req.objects("order_by")? {
        let name = o.str("field_name")?;
        let entity = match name.split_once('.') {
            Some(_) => filter::parse(&format!("{name} IS NULL"))?
                .pop()
                .map(|c| c.entity)
                .ok_or_else(|| MlflowError::invalid(format!("Invalid order_by field {name:?}")))?,
            None => Entity::Attribute(name.to_string()),
        };
        order.push(SortKey {
            field: logged_model_field(&entity)?,
            descending: !o.opt_bool("ascending")?.unwrap_or(true),
        });
    }
    if order.is_empty() {
        order.push(SortKey {
            field: Field::Attr(Attr::Created),
            descending: true,
        });
    }
    let limit = max_results(&req, 50, 1000)?;
    let offset = decode_page_token(req.opt_str("page_token")?)?;
    let mut datasets = Vec::new();
    for d in req.objects("datasets")? {
        let name = d.opt_str("dataset_name")?.filter(|n| !n.is_empty());
        let Some(name) = name else {
            return Err(MlflowError::invalid(
                "`dataset_name` in the `datasets` clause must be specified.",
            ));
        };
        let digest = d.opt_str("dataset_digest")?.filter(|d| !d.is_empty());
        datasets.push((name.to_string(), digest.map(str::to_string)));
    }
    blocking(&state, move |state| {
        let s = store(state);
        let all: Vec<LoggedModel> = models::list(s, models::LOGGED_MODEL)?;
        let live = all.iter().filter(|m| {
            !m.deleted && (experiments.is_empty() || experiments.contains(&m.project_id))
        });
        // With datasets, a model is searched by its metrics on those
        // datasets only, and one without any is left out (MLflow's rule);
        // the answer still shows every metric it has. As over MLflow's
        // REST API, a dataset named without a digest is one logged without.
        let on_datasets: Vec<LoggedModel> = live
            .filter_map(|m| {
                if datasets.is_empty() {
                    return Some(m.clone());
                }
                let mut seen = m.clone();
                seen.metrics.retain(|x| {
                    datasets.iter().any(|(name, digest)| {
                        x.dataset_name.as_deref() == Some(name.as_str())
                            && x.dataset_digest.as_deref() == digest.as_deref()
                    })
                });
                (!seen.metrics.is_empty()).then_some(seen)
            })
            .collect();
        let hits = super::filter_sorted(
            on_datasets.iter(),
            filter.as_ref(),
            &order,
            LoggedModelView,
            |a, b| a.id.cmp(&b.id),
        );
        let whole: HashMap<&str, &LoggedModel> = all.iter().map(|m| (m.id.as_str(), m)).collect();
        Ok(super::paged("models", &hits, offset, limit, |m| {
            logged_model_json(s, whole.get(m.id.as_str()).copied().unwrap_or(m))
        }))
    })
    .await
}

// ------------------------------------------------------------- registry

fn version_json(m: &RegisteredModel, v: &ModelVersion) -> Value {
    json!({
        "name": m.name,
        "version": v.version.to_string(),
        "creation_timestamp": v.created_ms,
        "last_updated_timestamp": v.updated_ms,
        "user_id": "",
        "current_stage": v.stage,
        "description": v.description.clone().unwrap_or_default(),
        "source": v.source,
        "run_id": v.run_id.clone().unwrap_or_default(),
        "status": "READY",
        "tags": key_value_list(&v.tags),
        "run_link": "",
        "aliases": m.aliases_of(v.version),
        "model_id": v.model_id.clone().unwrap_or_default(),
    })
}

/// The newest version in each stage, as MLflow's `latest_versions` lists.
fn latest_per_stage<'a>(m: &'a RegisteredModel, stages: &[&str]) -> Vec<&'a ModelVersion> {
    let mut out: Vec<&ModelVersion> = Vec::new();
    for stage in stages {
        if let Some(v) = m
            .versions
            .iter()
            .filter(|v| v.stage == *stage)
            .max_by_key(|v| v.version)
        {
            out.push(v);
        }
    }
    out.sort_by_key(|v| v.version);
    out
}

fn registered_model_json(m: &RegisteredModel) -> Value {
    let latest: Vec<Value> = latest_per_stage(m, &STAGES)
        .iter()
        .map(|v| version_json(m, v))
        .collect();
    let aliases: Vec<Value> = m
        .aliases
        .iter()
        .map(|(a, v)| json!({ "alias": a, "version": v.to_string() }))
        .collect();
    json!({
        "name": m.name,
        "creation_timestamp": m.created_ms,
        "last_updated_timestamp": m.updated_ms,
        "user_id": "",
        "description": m.description.clone().unwrap_or_default(),
        "latest_versions": latest,
        "tags": key_value_list(&m.tags),
        "aliases": aliases,
    })
}

fn not_found_model(name: &str) -> MlflowError {
    MlflowError::not_found(format!("Registered Model with name={name} not found"))
}

fn load_model(s: &dyn Store, name: &str) -> MlResult<RegisteredModel> {
    models::get(s, models::REGISTERED_MODEL, name)?.ok_or_else(|| not_found_model(name))
}

/// Changes a registered model atomically; an error from `change` stores
/// nothing and is returned as is.
/// Changes a registered model and marks it updated (MLflow does so for new,
/// moved and deleted versions, renames and descriptions).
fn change_model<R>(
    s: &dyn Store,
    name: &str,
    change: impl FnOnce(&mut RegisteredModel) -> MlResult<R>,
) -> MlResult<R> {
    change_model_marked(s, name, true, change)
}

/// Changes a registered model without marking it updated: MLflow leaves a
/// model's update time alone for tags, aliases and a version's description.
fn change_model_quietly<R>(
    s: &dyn Store,
    name: &str,
    change: impl FnOnce(&mut RegisteredModel) -> MlResult<R>,
) -> MlResult<R> {
    change_model_marked(s, name, false, change)
}

fn change_model_marked<R>(
    s: &dyn Store,
    name: &str,
    mark: bool,
    change: impl FnOnce(&mut RegisteredModel) -> MlResult<R>,
) -> MlResult<R> {
    let mut failure = None;
    let result = models::update(
        s,
        models::REGISTERED_MODEL,
        name,
        |doc: &mut Option<RegisteredModel>| {
            let Some(model) = doc.as_mut() else {
                failure = Some(not_found_model(name));
                return Err(StoreError::Conflict("missing".into()));
            };
            match change(model) {
                Ok(r) => {
                    if mark {
                        model.updated_ms = model.updated_ms.max(now_ms());
                    }
                    Ok(r)
                }
                Err(e) => {
                    failure = Some(e);
                    Err(StoreError::Conflict("rejected".into()))
                }
            }
        },
    );
    match (result, failure) {
        (_, Some(e)) => Err(e),
        (Ok(r), None) => Ok(r),
        (Err(e), None) => Err(e.into()),
    }
}

fn version_number(req: &Req) -> MlResult<i64> {
    let raw = req.str("version")?;
    raw.trim().parse().map_err(|_| {
        MlflowError::invalid(format!(
            "Parameter 'version' must be an integer, got '{raw}'."
        ))
    })
}

fn version_of(m: &RegisteredModel, version: i64) -> MlResult<&ModelVersion> {
    m.version(version).ok_or_else(|| {
        MlflowError::not_found(format!(
            "Model Version (name={}, version={version}) not found",
            m.name
        ))
    })
}

fn version_mut(m: &mut RegisteredModel, version: i64) -> MlResult<&mut ModelVersion> {
    let name = m.name.clone();
    m.version_mut(version).ok_or_else(|| {
        MlflowError::not_found(format!(
            "Model Version (name={name}, version={version}) not found"
        ))
    })
}

async fn create_registered_model(
    State(state): State<AppState>,
    viewer: Option<axum::Extension<crate::Viewer>>,
    req: Req,
) -> MlResult {
    let creator = viewer.map(|v| v.0.user);
    let name = req.str("name")?.to_string();
    validate_model_name(&name)?;
    let description = req.opt_str("description")?.map(str::to_string);
    let tags: BTreeMap<String, String> = req.key_values("tags")?.into_iter().collect();
    blocking(&state, move |state| {
        let mut exists = false;
        let created = models::update(
            store(state),
            models::REGISTERED_MODEL,
            &name,
            |doc: &mut Option<RegisteredModel>| {
                if doc.is_some() {
                    exists = true;
                    return Ok(None);
                }
                let mut model = RegisteredModel::new(name.clone(), description, now_ms());
                model.tags = tags;
                *doc = Some(model.clone());
                Ok(Some(model))
            },
        )?;
        if created.is_some() && !exists {
            crate::access::grant_creator(
                store(state),
                creator.as_ref(),
                ResourceKind::Model,
                &name,
            )?;
        }
        match created {
            Some(m) if !exists => Ok(wire(
                json!({ "registered_model": registered_model_json(&m) }),
            )),
            _ => Err(MlflowError::exists(format!(
                "Registered Model (name={name}) already exists."
            ))),
        }
    })
    .await
}

async fn get_registered_model(State(state): State<AppState>, req: Req) -> MlResult {
    let name = req.str("name")?.to_string();
    blocking(&state, move |state| {
        let m = load_model(store(state), &name)?;
        Ok(wire(
            json!({ "registered_model": registered_model_json(&m) }),
        ))
    })
    .await
}

async fn rename_registered_model(State(state): State<AppState>, req: Req) -> MlResult {
    let name = req.str("name")?.to_string();
    let new_name = req.str("new_name")?.to_string();
    validate_model_name(&new_name)?;
    blocking(&state, move |state| {
        let s = store(state);
        let mut model = load_model(s, &name)?;
        model.name = new_name.clone();
        model.updated_ms = now_ms();
        let renamed = model.clone();
        let placed = models::update(
            s,
            models::REGISTERED_MODEL,
            &new_name,
            |doc: &mut Option<RegisteredModel>| {
                if doc.is_some() {
                    return Ok(false);
                }
                *doc = Some(renamed);
                Ok(true)
            },
        )?;
        if !placed {
            return Err(MlflowError::exists(format!(
                "Registered Model (name={new_name}) already exists."
            )));
        }
        models::update(
            s,
            models::REGISTERED_MODEL,
            &name,
            |doc: &mut Option<RegisteredModel>| {
                *doc = None;
                Ok(())
            },
        )?;
        s.move_permissions(ResourceKind::Model, &name, Some(&new_name))?;
        Ok(wire(
            json!({ "registered_model": registered_model_json(&model) }),
        ))
    })
    .await
}

async fn update_registered_model(State(state): State<AppState>, req: Req) -> MlResult {
    let name = req.str("name")?.to_string();
    let description = req.opt_str("description")?.map(str::to_string);
    blocking(&state, move |state| {
        let m = change_model(store(state), &name, |m| {
            m.description = description;
            Ok(m.clone())
        })?;
        Ok(wire(
            json!({ "registered_model": registered_model_json(&m) }),
        ))
    })
    .await
}

async fn delete_registered_model(State(state): State<AppState>, req: Req) -> MlResult {
    let name = req.str("name")?.to_string();
    blocking(&state, move |state| {
        load_model(store(state), &name)?;
        models::update(
            store(state),
            models::REGISTERED_MODEL,
            &name,
            |doc: &mut Option<RegisteredModel>| {
                *doc = None;
                Ok(())
            },
        )?;
        store(state).move_permissions(ResourceKind::Model, &name, None)?;
        Ok(wire(json!({})))
    })
    .await
}

/// A registered model or a version as the query evaluator sees it.
struct RegistryView<'a> {
    model: &'a RegisteredModel,
    version: Option<&'a ModelVersion>,
}

impl Fields for RegistryView<'_> {
    fn get(&self, field: &Field) -> FieldValue<'_> {
        let text = |s: &str| FieldValue::Str(s.to_string().into());
        match (field, self.version) {
            (Field::Attr(Attr::Name), _) => text(&self.model.name),
            (Field::Attr(Attr::Created), None) => FieldValue::Num(self.model.created_ms as f64),
            (Field::Attr(Attr::Ended), None) => FieldValue::Num(self.model.updated_ms as f64),
            (Field::Tag(k), None) => self
                .model
                .tags
                .get(k)
                .map_or(FieldValue::Missing, |v| text(v)),
            (Field::Attr(Attr::Created), Some(v)) => FieldValue::Num(v.created_ms as f64),
            (Field::Attr(Attr::Ended), Some(v)) => FieldValue::Num(v.updated_ms as f64),
            (Field::Attr(Attr::Id), Some(v)) => {
                v.run_id.as_deref().map_or(FieldValue::Missing, text)
            }
            (Field::Attr(Attr::Group), Some(v)) => FieldValue::Num(v.version as f64),
            (Field::Attr(Attr::Status), Some(v)) => text(&v.stage),
            (Field::Summary(k), Some(v)) if k == "source_path" => text(&v.source),
            (Field::Tag(k), Some(v)) => v.tags.get(k).map_or(FieldValue::Missing, |t| text(t)),
            _ => FieldValue::Missing,
        }
    }
}

/// Registry fields: `name`, `tags.K`, `creation_timestamp`,
/// `last_updated_timestamp`, and for versions `run_id`, `version_number`
/// (as `group`), `current_stage` (as `status`), `source_path`.
fn registry_field(entity: &Entity) -> MlResult<Field> {
    Ok(match entity {
        Entity::Tag(k) => Field::Tag(k.clone()),
        Entity::Attribute(a) => match a.as_str() {
            "name" => Field::Attr(Attr::Name),
            "creation_timestamp" => Field::Attr(Attr::Created),
            "last_updated_timestamp" => Field::Attr(Attr::Ended),
            "run_id" => Field::Attr(Attr::Id),
            "version_number" => Field::Attr(Attr::Group),
            "current_stage" => Field::Attr(Attr::Status),
            "source_path" => Field::Summary("source_path".into()),
            other => {
                return Err(MlflowError::invalid(format!(
                    "Invalid attribute key '{other}' specified."
                )));
            }
        },
        other => {
            return Err(MlflowError::invalid(format!(
                "the registry cannot be filtered by {other:?}"
            )));
        }
    })
}

fn registry_order(req: &Req, default: Field, descending: bool) -> MlResult<Vec<SortKey>> {
    let mut order = filter::order_by(&req.strs("order_by")?, registry_field)?;
    order.push(SortKey {
        field: default,
        descending,
    });
    Ok(order)
}

async fn search_registered_models(State(state): State<AppState>, req: Req) -> MlResult {
    let filter = clauses_to_expr(req.opt_str("filter")?, registry_field)?;
    let order = registry_order(&req, Field::Attr(Attr::Name), false)?;
    let limit = max_results(&req, 100, 1000)?;
    let offset = decode_page_token(req.opt_str("page_token")?)?;
    blocking(&state, move |state| {
        let all: Vec<RegisteredModel> = models::list(store(state), models::REGISTERED_MODEL)?;
        let view = |model| RegistryView {
            model,
            version: None,
        };
        let hits = super::filter_sorted(all.iter(), filter.as_ref(), &order, view, |_, _| {
            std::cmp::Ordering::Equal
        });
        Ok(super::paged(
            "registered_models",
            &hits,
            offset,
            limit,
            |m| registered_model_json(m),
        ))
    })
    .await
}

async fn get_latest_versions(State(state): State<AppState>, req: Req) -> MlResult {
    let name = req.str("name")?.to_string();
    let stages: Vec<String> = req
        .strs("stages")?
        .iter()
        .map(|s| canonical_stage(s).map(str::to_string))
        .collect::<Result<_, _>>()?;
    blocking(&state, move |state| {
        let m = load_model(store(state), &name)?;
        let wanted: Vec<&str> = if stages.is_empty() {
            STAGES.to_vec()
        } else {
            stages.iter().map(String::as_str).collect()
        };
        let versions: Vec<Value> = latest_per_stage(&m, &wanted)
            .iter()
            .map(|v| version_json(&m, v))
            .collect();
        Ok(wire(json!({ "model_versions": versions })))
    })
    .await
}

async fn set_registered_model_tag(State(state): State<AppState>, req: Req) -> MlResult {
    let name = req.str("name")?.to_string();
    let key = req.str("key")?.to_string();
    let value = req.opt_str("value")?.unwrap_or("").to_string();
    blocking(&state, move |state| {
        change_model_quietly(store(state), &name, |m| {
            m.tags.insert(key, value);
            Ok(())
        })?;
        Ok(wire(json!({})))
    })
    .await
}

async fn delete_registered_model_tag(State(state): State<AppState>, req: Req) -> MlResult {
    let name = req.str("name")?.to_string();
    let key = req.str("key")?.to_string();
    blocking(&state, move |state| {
        change_model_quietly(store(state), &name, |m| {
            m.tags.remove(&key);
            Ok(())
        })?;
        Ok(wire(json!({})))
    })
    .await
}

async fn set_alias(State(state): State<AppState>, req: Req) -> MlResult {
    let name = req.str("name")?.to_string();
    let alias = req.str("alias")?.to_string();
    validate_alias(&alias)?;
    let version = version_number(&req)?;
    blocking(&state, move |state| {
        change_model_quietly(store(state), &name, |m| {
            version_of(m, version)?;
            m.aliases.insert(alias, version);
            Ok(())
        })?;
        Ok(wire(json!({})))
    })
    .await
}

async fn delete_alias(State(state): State<AppState>, req: Req) -> MlResult {
    let name = req.str("name")?.to_string();
    let alias = req.str("alias")?.to_string();
    blocking(&state, move |state| {
        change_model_quietly(store(state), &name, |m| {
            m.aliases.remove(&alias);
            Ok(())
        })?;
        Ok(wire(json!({})))
    })
    .await
}

async fn get_by_alias(State(state): State<AppState>, req: Req) -> MlResult {
    let name = req.str("name")?.to_string();
    let alias = req.str("alias")?.to_string();
    blocking(&state, move |state| {
        let m = load_model(store(state), &name)?;
        let version = m.aliases.get(&alias).copied().ok_or_else(|| {
            MlflowError::not_found(format!("Registered model alias {alias} not found."))
        })?;
        Ok(wire(
            json!({ "model_version": version_json(&m, version_of(&m, version)?) }),
        ))
    })
    .await
}

async fn create_model_version(State(state): State<AppState>, req: Req) -> MlResult {
    let name = req.str("name")?.to_string();
    let source = req.str("source")?.to_string();
    let run_id = req
        .opt_str("run_id")?
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let model_id = req
        .opt_str("model_id")?
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let description = req
        .opt_str("description")?
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let tags: BTreeMap<String, String> = req.key_values("tags")?.into_iter().collect();
    blocking(&state, move |state| {
        let s = store(state);
        let now = now_ms();
        match model_id.as_deref() {
            Some(model) => {
                super::source::check_model_source(&source, model, |id| super::source::Owner {
                    artifact_root: live_logged_model(s, id)
                        .ok()
                        .map(|m| logged_model_root(s, &m)),
                })?
            }
            None => {
                super::source::check_run_source(&source, run_id.as_deref().unwrap_or(""), |id| {
                    super::source::Owner {
                        artifact_root: s
                            .get_run(id)
                            .ok()
                            .map(|r| format!("{}/{}/artifacts", run_root(s, &r), r.id)),
                    }
                })?
            }
        }
        // A copy of a registered version (`models:/name/3`) keeps where that
        // version's files are, as MLflow's store does.
        let storage_location = match super::source::registered_version(&source) {
            Some((copied, reference)) => {
                let m = load_model(s, copied)?;
                let v = resolve_version(&m, &reference).ok_or_else(|| {
                    MlflowError::not_found(format!(
                        "Model version {source} not found: registered model {copied} has no such version"
                    ))
                })?;
                Some(download_uri(s, v))
            }
            None => None,
        };
        // A version of a logged model belongs to the run that logged it.
        let run_id = run_id.or_else(|| {
            let logged = live_logged_model(s, model_id.as_deref()?).ok()?;
            logged.source_run_id
        });
        let (m, v) = change_model(s, &name, |m| {
            let v = m
                .add_version(ModelVersion {
                    version: 0,
                    source,
                    storage_location,
                    run_id,
                    model_id,
                    description,
                    created_ms: now,
                    updated_ms: now,
                    tags,
                    stage: "None".into(),
                })
                .clone();
            Ok((m.clone(), v))
        })?;
        // A version may name a model this server does not hold; it is
        // created all the same, as MLflow's store does.
        if let Some(model) = v
            .model_id
            .as_deref()
            .filter(|id| live_logged_model(s, id).is_ok())
        {
            record_version_on_model(s, model, &m.name, v.version)?;
        }
        Ok(wire(json!({ "model_version": version_json(&m, &v) })))
    })
    .await
}

/// MLflow's `mlflow.modelVersions` tag on a logged model: the registered
/// versions made from it, as the JSON list MLflow's own store writes.
fn record_version_on_model(
    s: &dyn Store,
    model_id: &str,
    name: &str,
    version: i64,
) -> MlResult<()> {
    const TAG: &str = "mlflow.modelVersions";
    let entry = json!({ "name": name, "version": version });
    change_logged_model(s, model_id, |m| {
        let mut listed: Vec<Value> = m
            .tags
            .get(TAG)
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        if !listed.contains(&entry) {
            listed.push(entry);
        }
        let items: Vec<String> = listed
            .iter()
            .map(|e| format!("{{\"name\": {}, \"version\": {}}}", e["name"], e["version"]))
            .collect();
        m.tags
            .insert(TAG.to_string(), format!("[{}]", items.join(", ")));
        Ok(())
    })?;
    Ok(())
}

async fn get_model_version(State(state): State<AppState>, req: Req) -> MlResult {
    let name = req.str("name")?.to_string();
    let version = version_number(&req)?;
    blocking(&state, move |state| {
        let m = load_model(store(state), &name)?;
        Ok(wire(
            json!({ "model_version": version_json(&m, version_of(&m, version)?) }),
        ))
    })
    .await
}

async fn update_model_version(State(state): State<AppState>, req: Req) -> MlResult {
    let name = req.str("name")?.to_string();
    let version = version_number(&req)?;
    let description = req.opt_str("description")?.map(str::to_string);
    blocking(&state, move |state| {
        let (m, v) = change_model_quietly(store(state), &name, |m| {
            let v = version_mut(m, version)?;
            v.description = description;
            v.updated_ms = now_ms();
            let v = v.clone();
            Ok((m.clone(), v))
        })?;
        Ok(wire(json!({ "model_version": version_json(&m, &v) })))
    })
    .await
}

async fn delete_model_version(State(state): State<AppState>, req: Req) -> MlResult {
    let name = req.str("name")?.to_string();
    let version = version_number(&req)?;
    blocking(&state, move |state| {
        change_model(store(state), &name, |m| {
            version_of(m, version)?;
            m.remove_version(version);
            Ok(())
        })?;
        Ok(wire(json!({})))
    })
    .await
}

async fn search_model_versions(State(state): State<AppState>, req: Req) -> MlResult {
    let filter = clauses_to_expr(req.opt_str("filter")?, registry_field)?;
    // MLflow's order: the keys asked for (by default the last update,
    // newest first), then name ascending and version descending.
    let mut order = filter::order_by(&req.strs("order_by")?, registry_field)?;
    if order.is_empty() {
        order.push(SortKey {
            field: Field::Attr(Attr::Ended),
            descending: true,
        });
    }
    for (field, descending) in [(Attr::Name, false), (Attr::Group, true)] {
        if !order.iter().any(|k| k.field == Field::Attr(field)) {
            order.push(SortKey {
                field: Field::Attr(field),
                descending,
            });
        }
    }
    let limit = max_results(&req, 10_000, 200_000)?;
    let offset = decode_page_token(req.opt_str("page_token")?)?;
    blocking(&state, move |state| {
        let all: Vec<RegisteredModel> = models::list(store(state), models::REGISTERED_MODEL)?;
        let mut hits: Vec<RegistryView<'_>> = all
            .iter()
            .flat_map(|m| {
                m.versions.iter().map(move |v| RegistryView {
                    model: m,
                    version: Some(v),
                })
            })
            .filter(|view| filter.as_ref().is_none_or(|f| f.matches(view)))
            .collect();
        hits.sort_by(|a, b| labbook_core::query::compare_by(&order, a, b));
        Ok(super::paged(
            "model_versions",
            &hits,
            offset,
            limit,
            |view| {
                view.version
                    .map_or(Value::Null, |v| version_json(view.model, v))
            },
        ))
    })
    .await
}

/// Where a version's files are: a logged model's own files, the location
/// a copied version kept, or the source it was made from.
fn download_uri(s: &dyn Store, v: &ModelVersion) -> String {
    match v.model_id.as_deref().map(|id| live_logged_model(s, id)) {
        Some(Ok(logged)) => logged_model_root(s, &logged),
        _ => v
            .storage_location
            .clone()
            .unwrap_or_else(|| v.source.clone()),
    }
}

/// The version a `models:/` reference names.
fn resolve_version<'m>(
    m: &'m RegisteredModel,
    reference: &VersionRef<'_>,
) -> Option<&'m ModelVersion> {
    let newest = |keep: &dyn Fn(&ModelVersion) -> bool| {
        m.versions
            .iter()
            .filter(|v| keep(v))
            .max_by_key(|v| v.version)
    };
    match reference {
        VersionRef::Number(n) => m.version(*n),
        VersionRef::Alias(alias) => m.aliases.get(*alias).and_then(|n| m.version(*n)),
        VersionRef::Latest => newest(&|_| true),
        VersionRef::Stage(stage) => newest(&|v| v.stage.eq_ignore_ascii_case(stage)),
    }
}

async fn get_download_uri(State(state): State<AppState>, req: Req) -> MlResult {
    let name = req.str("name")?.to_string();
    let version = version_number(&req)?;
    blocking(&state, move |state| {
        let s = store(state);
        let m = load_model(s, &name)?;
        let uri = download_uri(s, version_of(&m, version)?);
        Ok(wire(json!({ "artifact_uri": uri })))
    })
    .await
}

async fn transition_stage(State(state): State<AppState>, req: Req) -> MlResult {
    let name = req.str("name")?.to_string();
    let version = version_number(&req)?;
    let stage = canonical_stage(req.str("stage")?)?;
    let archive_others = req.opt_bool("archive_existing_versions")?.unwrap_or(false);
    blocking(&state, move |state| {
        let (m, v) = change_model(store(state), &name, |m| {
            version_of(m, version)?;
            let now = now_ms();
            for other in &mut m.versions {
                if other.version == version {
                    other.stage = stage.to_string();
                    other.updated_ms = now;
                } else if archive_others
                    && other.stage == stage
                    && matches!(stage, "Staging" | "Production")
                {
                    other.stage = "Archived".into();
                    other.updated_ms = now;
                }
            }
            let v = version_of(m, version)?.clone();
            Ok((m.clone(), v))
        })?;
        Ok(wire(json!({ "model_version": version_json(&m, &v) })))
    })
    .await
}

async fn set_model_version_tag(State(state): State<AppState>, req: Req) -> MlResult {
    let name = req.str("name")?.to_string();
    let version = version_number(&req)?;
    let key = req.str("key")?.to_string();
    let value = req.opt_str("value")?.unwrap_or("").to_string();
    blocking(&state, move |state| {
        change_model_quietly(store(state), &name, |m| {
            version_mut(m, version)?.tags.insert(key, value);
            Ok(())
        })?;
        Ok(wire(json!({})))
    })
    .await
}

async fn delete_model_version_tag(State(state): State<AppState>, req: Req) -> MlResult {
    let name = req.str("name")?.to_string();
    let version = version_number(&req)?;
    let key = req.str("key")?.to_string();
    blocking(&state, move |state| {
        change_model_quietly(store(state), &name, |m| {
            version_mut(m, version)?.tags.remove(&key);
            Ok(())
        })?;
        Ok(wire(json!({})))
    })
    .await
}
