//! The dashboard's read side of versioned artifacts (issue 11): a
//! project's named artifacts, a name's versions, one version with its
//! files and the runs that made and used it, the lineage graphs, and a
//! run's inputs and outputs. The SDK and the CLI write them; nothing here
//! changes the store. Routes are registered in `api::routes()`, where the
//! OpenAPI check reads them.
//!
//! Every answer is bounded: lists page with `offset`/`limit` and say how
//! many they left out, and the lineage walk is bounded by the store.

use std::collections::{HashMap, HashSet};

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Map, Value, json};

use labbook_core::ValidationError;
use labbook_core::artifact_version::{
    ArtifactRef, validate_artifact_name, validate_artifact_type,
};
use labbook_core::query::{Attr, Expr, Field, Literal};
use labbook_store::versions::{ArtifactVersion, EdgeRole, LineageStart};
use labbook_store::{Deleted, ProjectRef, RunQuery, Store, StoreError};

use crate::AppState;
use crate::api::{blocking, param_usize};
use crate::error::ApiError;

type ApiResult = Result<Json<Value>, ApiError>;
type Pairs = Query<Vec<(String, String)>>;

/// Names, versions and runs per answer unless asked otherwise, and at most.
const PAGE: usize = 1_000;
const MAX_PAGE: usize = 10_000;
/// The runs one version's answer lists; a dataset a sweep of thousands of
/// runs used still answers in one small response.
const RUNS_SHOWN: usize = 500;

/// The query parameters an endpoint reads, each given at most once: a
/// repeated one is refused, not silently resolved to one of its copies.
/// Parameters the endpoint does not read are ignored, as elsewhere.
fn params_once(pairs: Vec<(String, String)>, read: &[&str]) -> Result<HashMap<String, String>, ApiError> {
    let mut out = HashMap::new();
    for (key, value) in pairs {
        if !read.contains(&key.as_str()) {
            continue;
        }
        if out.contains_key(&key) {
            return Err(ApiError::invalid(
                &key,
                format!("{key} is given more than once; give it once"),
            ));
        }
        out.insert(key, value);
    }
    Ok(out)
}

/// `offset` and `limit` of a paged list.
fn page(params: &HashMap<String, String>) -> Result<(usize, usize), ApiError> {
    Ok((
        param_usize(params, "offset", 0, usize::MAX)?,
        param_usize(params, "limit", PAGE, MAX_PAGE)?,
    ))
}

fn slice<T>(items: &[T], offset: usize, limit: usize) -> &[T] {
    let start = offset.min(items.len());
    &items[start..start.saturating_add(limit).min(items.len())]
}

/// A validation error of a path segment, said of that segment.
fn invalid_segment(segment: &str, e: ValidationError) -> ApiError {
    ApiError::invalid(segment, e.to_string())
}

/// The project, or a 404 that names it (rather than an empty list, which
/// would read as "no artifacts yet").
fn existing_project(store: &dyn Store, project: &str) -> Result<(), ApiError> {
    store.project(ProjectRef::Name(project))?;
    Ok(())
}

/// What the version answers show of a run: enough to link to it and say
/// what became of it. A run no longer in the store keeps its id.
#[derive(Clone)]
struct RunBrief {
    name: String,
    project: String,
    status: &'static str,
    deleted: bool,
}

/// The runs of `ids`, found in one pass over the store's run index.
fn run_briefs<'a>(
    store: &dyn Store,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<HashMap<String, RunBrief>, ApiError> {
    let wanted: HashSet<&str> = ids.into_iter().collect();
    let mut out = HashMap::with_capacity(wanted.len());
    if wanted.is_empty() {
        return Ok(out);
    }
    let query = RunQuery {
        filter: Some(Expr::In {
            field: Field::Attr(Attr::Id),
            values: wanted.iter().map(|id| Literal::Str((*id).to_string())).collect(),
            negated: false,
        }),
        deleted: Deleted::Include,
        ..Default::default()
    };
    store.visit_runs(&query, &mut |runs| {
        for run in runs {
            out.insert(
                run.id.clone(),
                RunBrief {
                    name: run.name.clone(),
                    project: run.project.clone(),
                    status: run.status.as_str(),
                    deleted: run.deleted_ms.is_some(),
                },
            );
        }
    })?;
    Ok(out)
}

/// `{id, name, project, status, deleted}`; the fields but `id` are null for
/// a run the store no longer holds.
fn run_ref(id: &str, runs: &HashMap<String, RunBrief>) -> Map<String, Value> {
    let brief = runs.get(id);
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("name".into(), json!(brief.map(|b| &b.name)));
    m.insert("project".into(), json!(brief.map(|b| &b.project)));
    m.insert("status".into(), json!(brief.map(|b| b.status)));
    m.insert("deleted".into(), json!(brief.is_some_and(|b| b.deleted)));
    m
}

/// A version as every answer shows it (its metadata, up to 1 MiB, only in
/// the version's own answer).
fn version_fields(v: &ArtifactVersion) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("project".into(), json!(v.project));
    m.insert("name".into(), json!(v.name));
    m.insert("type".into(), json!(v.kind));
    m.insert("version".into(), json!(v.version));
    m.insert("ref".into(), json!(v.reference()));
    m.insert("digest".into(), json!(v.digest));
    m.insert("size".into(), json!(v.size));
    m.insert("file_count".into(), json!(v.files));
    m.insert("aliases".into(), json!(v.aliases));
    m.insert("description".into(), json!(v.description));
    m.insert("created_ms".into(), json!(v.created_ms));
    m.insert("deleted_ms".into(), json!(v.deleted_ms));
    m.insert("purged".into(), json!(v.purged));
    m
}

/// The version a path names: `{name}` checked against the name rules and
/// `{version}` read as `v3` or an alias, both refused with 400 naming the
/// segment before the store is asked.
fn resolve(
    store: &dyn Store,
    project: &str,
    name: &str,
    version: &str,
) -> Result<ArtifactVersion, ApiError> {
    validate_artifact_name(name).map_err(|e| invalid_segment("name", e))?;
    let reference = ArtifactRef::parse(&format!("{name}:{version}"))
        .map_err(|e| invalid_segment("version", e))?;
    existing_project(store, project)?;
    Ok(store.resolve_artifact(Some(project), &reference.to_string())?)
}

/// `GET /projects/{project}/artifacts?type=T`: the project's named
/// artifacts, by name, with the types present for a filter.
pub async fn artifact_names(
    State(state): State<AppState>,
    Path(project): Path<String>,
    Query(pairs): Pairs,
) -> ApiResult {
    let params = params_once(pairs, &["type", "offset", "limit"])?;
    let kind = params.get("type").filter(|t| !t.is_empty()).cloned();
    if let Some(kind) = &kind {
        validate_artifact_type(kind).map_err(|e| invalid_segment("type", e))?;
    }
    let (offset, limit) = page(&params)?;
    blocking(&state, move |store| {
        existing_project(store, &project)?;
        let all = store.artifact_names(Some(&project), None)?;
        let mut types: Vec<&str> = all.iter().map(|n| n.kind.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        let matching: Vec<_> = all
            .iter()
            .filter(|n| kind.as_deref().is_none_or(|k| n.kind == k))
            .collect();
        let shown: Vec<Value> = slice(&matching, offset, limit)
            .iter()
            .map(|n| {
                let aliases: Map<String, Value> =
                    n.aliases.iter().map(|(a, v)| (a.clone(), json!(v))).collect();
                json!({
                    "name": n.name,
                    "type": n.kind,
                    "versions": n.versions,
                    "latest": n.latest,
                    "latest_size": n.latest_size,
                    "aliases": aliases,
                    "updated_ms": n.updated_ms,
                })
            })
            .collect();
        Ok(Json(json!({
            "project": project,
            "types": types,
            "total": matching.len(),
            "offset": offset,
            "artifacts": shown,
        })))
    })
    .await
}

/// `GET /projects/{project}/artifacts/{name}`: every version of a name,
/// newest first, deleted ones marked.
pub async fn artifact_versions(
    State(state): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    Query(pairs): Pairs,
) -> ApiResult {
    let params = params_once(pairs, &["offset", "limit"])?;
    validate_artifact_name(&name).map_err(|e| invalid_segment("name", e))?;
    let (offset, limit) = page(&params)?;
    blocking(&state, move |store| {
        existing_project(store, &project)?;
        let versions = store.artifact_versions(&project, &name)?;
        let Some(newest) = versions.first() else {
            return Err(StoreError::NotFound {
                what: "artifact",
                id: format!("{name} (in project {project})"),
            }
            .into());
        };
        let kind = newest.kind.clone();
        let shown = slice(&versions, offset, limit);
        let runs = run_briefs(store, shown.iter().filter_map(|v| v.producer.as_deref()))?;
        let list: Vec<Value> = shown
            .iter()
            .map(|v| {
                let mut m = version_fields(v);
                m.insert(
                    "producer".into(),
                    v.producer.as_deref().map_or(Value::Null, |id| Value::Object(run_ref(id, &runs))),
                );
                Value::Object(m)
            })
            .collect();
        Ok(Json(json!({
            "project": project,
            "name": name,
            "type": kind,
            "total": versions.len(),
            "offset": offset,
            "versions": list,
        })))
    })
    .await
}

/// `GET /projects/{project}/artifacts/{name}/versions/{version}`: one
/// version, its metadata, a page of its files and the runs that produced
/// and used it.
pub async fn artifact_version(
    State(state): State<AppState>,
    Path((project, name, version)): Path<(String, String, String)>,
    Query(pairs): Pairs,
) -> ApiResult {
    let params = params_once(pairs, &["offset", "limit"])?;
    let (offset, limit) = page(&params)?;
    blocking(&state, move |store| {
        let v = resolve(store, &project, &name, &version)?;
        let manifest = store.artifact_manifest(v.id)?;
        let entries = manifest.entries();
        let files: Vec<Value> = slice(entries, offset, limit)
            .iter()
            .map(|e| json!({ "path": e.path, "size": e.size, "hash": e.hash, "reference": e.reference }))
            .collect();
        let edges = store.artifact_edges(v.id)?;
        let shown = slice(&edges, 0, RUNS_SHOWN);
        let runs = run_briefs(
            store,
            shown.iter().map(|e| e.run_id.as_str()).chain(v.producer.as_deref()),
        )?;
        let run_list: Vec<Value> = shown
            .iter()
            .map(|e| {
                let mut m = run_ref(&e.run_id, &runs);
                m.insert("role".into(), json!(e.role.as_str()));
                m.insert("created_ms".into(), json!(e.created_ms));
                Value::Object(m)
            })
            .collect();
        let mut m = version_fields(&v);
        m.insert("metadata".into(), v.metadata.clone());
        m.insert(
            "producer".into(),
            v.producer.as_deref().map_or(Value::Null, |id| Value::Object(run_ref(id, &runs))),
        );
        m.insert("files_total".into(), json!(entries.len()));
        m.insert("files_offset".into(), json!(offset));
        m.insert("files_left_out".into(), json!(entries.len() - files.len()));
        m.insert("files".into(), Value::Array(files));
        m.insert("runs_total".into(), json!(edges.len()));
        m.insert("runs_left_out".into(), json!(edges.len() - run_list.len()));
        m.insert("runs".into(), Value::Array(run_list));
        Ok(Json(Value::Object(m)))
    })
    .await
}

/// `GET /projects/{project}/artifacts/{name}/versions/{version}/lineage`.
pub async fn version_lineage(
    State(state): State<AppState>,
    Path((project, name, version)): Path<(String, String, String)>,
) -> ApiResult {
    blocking(&state, move |store| {
        let v = resolve(store, &project, &name, &version)?;
        lineage_json(store, &LineageStart::Version(v.id))
    })
    .await
}

/// `GET /runs/{id}/lineage`.
pub async fn run_lineage(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    blocking(&state, move |store| {
        store.get_run(&id)?;
        lineage_json(store, &LineageStart::Run(id))
    })
    .await
}

fn lineage_json(store: &dyn Store, start: &LineageStart) -> ApiResult {
    let graph = store.lineage(start)?;
    serde_json::to_value(&graph)
        .map(Json)
        .map_err(|e| ApiError::internal(format!("cannot write the lineage graph: {e}")))
}

/// `GET /runs/{id}/artifact-versions`: the versions a run used (inputs)
/// and logged (outputs).
pub async fn run_versions(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(pairs): Pairs,
) -> ApiResult {
    let params = params_once(pairs, &["limit"])?;
    let limit = param_usize(&params, "limit", PAGE, MAX_PAGE)?;
    blocking(&state, move |store| {
        store.get_run(&id)?;
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        for (v, role) in store.run_artifact_versions(&id)? {
            match role {
                EdgeRole::Input => inputs.push(v),
                EdgeRole::Output => outputs.push(v),
            }
        }
        let list = |vs: &[ArtifactVersion]| -> Value {
            slice(vs, 0, limit)
                .iter()
                .map(|v| Value::Object(version_fields(v)))
                .collect()
        };
        Ok(Json(json!({
            "run": id,
            "inputs": list(&inputs),
            "inputs_total": inputs.len(),
            "outputs": list(&outputs),
            "outputs_total": outputs.len(),
        })))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_parameter_read_twice_is_refused_and_one_not_read_is_ignored() {
        let err = params_once(pairs(&[("limit", "1"), ("limit", "2")]), &["limit"])
            .err()
            .map(|e| (e.status.as_u16(), e.field));
        assert_eq!(err, Some((400, Some("limit".to_string()))));
        let ok = params_once(pairs(&[("x", "1"), ("x", "2"), ("limit", "3")]), &["limit"]);
        assert_eq!(
            ok.ok().and_then(|p| p.get("limit").cloned()),
            Some("3".to_string())
        );
    }

    #[test]
    fn a_page_past_the_end_is_empty_and_a_huge_limit_is_bounded_by_the_list() {
        let xs = [1, 2, 3];
        assert_eq!(slice(&xs, 1, 1), &[2]);
        assert_eq!(slice(&xs, 2, usize::MAX), &[3]);
        assert!(slice(&xs, usize::MAX, 10).is_empty());
    }
}
