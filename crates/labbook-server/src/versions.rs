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
use labbook_core::artifact_version::{ArtifactRef, validate_artifact_name, validate_artifact_type};
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
fn params_once(
    pairs: Vec<(String, String)>,
    read: &[&str],
) -> Result<HashMap<String, String>, ApiError> {
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
            values: wanted
                .iter()
                .map(|id| Literal::Str((*id).to_string()))
                .collect(),
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
                let aliases: Map<String, Value> = n
                    .aliases
                    .iter()
                    .map(|(a, v)| (a.clone(), json!(v)))
                    .collect();
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
                    v.producer
                        .as_deref()
                        .map_or(Value::Null, |id| Value::Object(run_ref(id, &runs))),
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

    use std::path::PathBuf;
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use labbook_store::versions::{NewArtifactVersion, VersionSource};
    use labbook_store::{NewRun, SqliteStore};

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

    /// A store with the fixture of the dashboard's test: run A logs the
    /// dataset `spirals` twice (v0 @best, v1 @latest; versions count from 0,
    /// as W&B's do), run B uses v0 and
    /// logs the model `mlp`, run C uses the model.
    struct Fixture {
        _tmp: tempfile::TempDir,
        app: axum::Router,
    }

    fn write(dir: &std::path::Path, files: &[(&str, &str)]) -> PathBuf {
        for (name, text) in files {
            let path = dir.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("a folder");
            }
            std::fs::write(path, text).expect("a file");
        }
        dir.to_path_buf()
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let store = Arc::new(SqliteStore::open(&tmp.path().join(".labbook")).expect("a store"));
        for (id, name) in [
            ("runaaaa1", "maker"),
            ("runbbbb1", "trainer"),
            ("runcccc1", "judge"),
        ] {
            store
                .create_run(&NewRun {
                    id: Some(id.into()),
                    project: "p".into(),
                    name: Some(name.into()),
                    created_ms: 1_700_000_000_000,
                    ..Default::default()
                })
                .expect("a run");
        }
        let log = |name: &str, kind: &str, dir: PathBuf, run: &str, aliases: &[&str]| {
            store
                .log_artifact_version(&NewArtifactVersion {
                    project: "p".into(),
                    name: name.into(),
                    kind: kind.into(),
                    description: Some(format!("the {name}")),
                    metadata: json!({"rows": 100, "nested": {"k": [1, 2]}})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                    sources: vec![VersionSource::Dir {
                        path: dir,
                        prefix: String::new(),
                    }],
                    aliases: aliases.iter().map(|a| a.to_string()).collect(),
                    run_id: Some(run.into()),
                    run_role: EdgeRole::Output,
                    now_ms: 1_700_000_001_000,
                    ..Default::default()
                })
                .expect("a version")
                .version
        };
        let d1 = write(
            &tmp.path().join("d1"),
            &[("train.csv", "x,y\n1,2\n"), ("sub/test.csv", "x,y\n")],
        );
        let v0 = log("spirals", "dataset", d1, "runaaaa1", &["best"]);
        let d2 = write(&tmp.path().join("d2"), &[("train.csv", "x,y\n3,4\n")]);
        log("spirals", "dataset", d2, "runaaaa1", &[]);
        store
            .use_artifact_version("runbbbb1", v0.id, 1_700_000_002_000)
            .expect("used");
        let m = write(&tmp.path().join("m"), &[("model.pt", "weights")]);
        let model = log("mlp", "model", m, "runbbbb1", &[]);
        store
            .use_artifact_version("runcccc1", model.id, 1_700_000_003_000)
            .expect("used");
        let app = crate::router(store, &crate::ServerOptions::default());
        Fixture { _tmp: tmp, app }
    }

    async fn get(app: &axum::Router, path: &str) -> (StatusCode, Value) {
        let request = Request::builder()
            .uri(path)
            .header("host", "127.0.0.1:5000")
            .body(Body::empty())
            .expect("a request");
        let mut app = app.clone();
        let response = tower_service::Service::call(&mut app, request)
            .await
            .expect("an answer");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .expect("a body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body)
    }

    fn error_field(body: &Value) -> (&str, &str) {
        (
            body["error"]["code"].as_str().unwrap_or(""),
            body["error"]["field"].as_str().unwrap_or(""),
        )
    }

    #[tokio::test]
    async fn a_projects_artifacts_are_listed_with_their_types_and_filtered_by_one() {
        let f = fixture();
        let (status, body) = get(&f.app, "/api/v1/projects/p/artifacts").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["types"], json!(["dataset", "model"]));
        assert_eq!(body["total"], 2);
        let spirals = &body["artifacts"][1];
        assert_eq!(spirals["name"], "spirals");
        assert_eq!(spirals["versions"], 2);
        assert_eq!(spirals["latest"], 1);
        assert_eq!(spirals["aliases"], json!({"best": 0, "latest": 1}));
        assert_eq!(spirals["latest_size"], 8);
        let (_, models) = get(&f.app, "/api/v1/projects/p/artifacts?type=model").await;
        assert_eq!(models["artifacts"].as_array().map(Vec::len), Some(1));
        assert_eq!(models["types"], json!(["dataset", "model"]));
        let (_, paged) = get(&f.app, "/api/v1/projects/p/artifacts?limit=1&offset=1").await;
        assert_eq!(paged["artifacts"][0]["name"], "spirals");
    }

    #[tokio::test]
    async fn a_version_answers_its_files_metadata_and_runs_and_pages_its_files() {
        let f = fixture();
        let (status, v) = get(&f.app, "/api/v1/projects/p/artifacts/spirals/versions/best").await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(
            (v["ref"].as_str(), v["type"].as_str()),
            (Some("spirals:v0"), Some("dataset"))
        );
        assert_eq!(v["metadata"], json!({"rows": 100, "nested": {"k": [1, 2]}}));
        assert_eq!(v["description"], "the spirals");
        let paths: Vec<&str> = v["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["path"].as_str())
            .collect();
        assert_eq!(paths, ["sub/test.csv", "train.csv"]);
        assert_eq!(
            (v["files_total"].as_u64(), v["files_left_out"].as_u64()),
            (Some(2), Some(0))
        );
        assert_eq!(v["producer"]["name"], "maker");
        let runs: Vec<(&str, &str, &str)> = v["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["id"].as_str().unwrap_or(""),
                    r["name"].as_str().unwrap_or(""),
                    r["role"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            runs,
            [
                ("runaaaa1", "maker", "output"),
                ("runbbbb1", "trainer", "input")
            ]
        );
        let (_, page) = get(
            &f.app,
            "/api/v1/projects/p/artifacts/spirals/versions/v0?offset=1&limit=1",
        )
        .await;
        assert_eq!(page["files"].as_array().map(Vec::len), Some(1));
        assert_eq!(page["files"][0]["path"], "train.csv");
        assert_eq!(
            (
                page["files_offset"].as_u64(),
                page["files_left_out"].as_u64()
            ),
            (Some(1), Some(1))
        );
        let (_, latest) = get(
            &f.app,
            "/api/v1/projects/p/artifacts/spirals/versions/latest",
        )
        .await;
        assert_eq!(latest["version"], 1);
        let (_, versions) = get(&f.app, "/api/v1/projects/p/artifacts/spirals").await;
        let numbers: Vec<u64> = versions["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["version"].as_u64())
            .collect();
        assert_eq!(numbers, [1, 0]);
        assert_eq!(versions["versions"][1]["producer"]["id"], "runaaaa1");
    }

    #[tokio::test]
    async fn lineage_runs_from_the_dataset_through_the_model_to_its_user() {
        let f = fixture();
        let (status, g) = get(
            &f.app,
            "/api/v1/projects/p/artifacts/spirals/versions/v0/lineage",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{g}");
        assert_eq!(g["root"], "p/spirals:v0");
        let edges: HashSet<(String, String)> = g["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["from"].as_str().unwrap_or("").to_string(),
                    e["to"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let want: HashSet<(String, String)> = [
            ("runaaaa1", "p/spirals:v0"),
            ("p/spirals:v0", "runbbbb1"),
            ("runbbbb1", "p/mlp:v0"),
            ("p/mlp:v0", "runcccc1"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(edges, want);
        let kinds: HashSet<(String, String)> = g["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                (
                    n["id"].as_str().unwrap_or("").to_string(),
                    n["kind"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        assert!(
            kinds.contains(&("runbbbb1".into(), "run".into()))
                && kinds.contains(&("p/mlp:v0".into(), "artifact".into())),
            "{kinds:?}"
        );
        let (_, of_run) = get(&f.app, "/api/v1/runs/runbbbb1/lineage").await;
        assert_eq!(of_run["root"], "runbbbb1");
        let (_, io) = get(&f.app, "/api/v1/runs/runbbbb1/artifact-versions").await;
        assert_eq!(
            (
                io["inputs"][0]["ref"].as_str(),
                io["outputs"][0]["ref"].as_str()
            ),
            (Some("spirals:v0"), Some("mlp:v0"))
        );
        assert_eq!(
            (io["inputs_total"].as_u64(), io["outputs_total"].as_u64()),
            (Some(1), Some(1))
        );
    }

    #[tokio::test]
    async fn bad_names_and_parameters_are_400s_and_unknown_things_404s_naming_them() {
        let f = fixture();
        let rows: &[(&str, u16, (&str, &str))] = &[
            ("/api/v1/projects/nope/artifacts", 404, ("NOT_FOUND", "")),
            (
                "/api/v1/projects/p/artifacts?type=..%2Fx",
                400,
                ("INVALID_ARGUMENT", "type"),
            ),
            (
                "/api/v1/projects/p/artifacts?type=model&type=dataset",
                400,
                ("INVALID_ARGUMENT", "type"),
            ),
            (
                "/api/v1/projects/p/artifacts?limit=10001",
                400,
                ("INVALID_ARGUMENT", "limit"),
            ),
            (
                "/api/v1/projects/p/artifacts?offset=-1",
                400,
                ("INVALID_ARGUMENT", "offset"),
            ),
            ("/api/v1/projects/p/artifacts/nope", 404, ("NOT_FOUND", "")),
            (
                "/api/v1/projects/p/artifacts/..",
                400,
                ("INVALID_ARGUMENT", "name"),
            ),
            (
                "/api/v1/projects/p/artifacts/a%20b",
                400,
                ("INVALID_ARGUMENT", "name"),
            ),
            (
                "/api/v1/projects/nope/artifacts/spirals/versions/v1",
                404,
                ("NOT_FOUND", ""),
            ),
            (
                "/api/v1/projects/p/artifacts/spirals/versions/v9",
                404,
                ("NOT_FOUND", ""),
            ),
            (
                "/api/v1/projects/p/artifacts/spirals/versions/nobody",
                404,
                ("NOT_FOUND", ""),
            ),
            (
                "/api/v1/projects/p/artifacts/spirals/versions/..%2F..%2Fetc",
                400,
                ("INVALID_ARGUMENT", "version"),
            ),
            (
                "/api/v1/projects/p/artifacts/spirals/versions/v99999999999999999999999",
                400,
                ("INVALID_ARGUMENT", "version"),
            ),
            (
                "/api/v1/projects/p/artifacts/%2E%2E%2Fx/versions/v1/lineage",
                400,
                ("INVALID_ARGUMENT", "name"),
            ),
            (
                "/api/v1/projects/p/artifacts/spirals/versions/v1?limit=1&limit=2",
                400,
                ("INVALID_ARGUMENT", "limit"),
            ),
            ("/api/v1/runs/nope/lineage", 404, ("NOT_FOUND", "")),
            (
                "/api/v1/runs/nope/artifact-versions",
                404,
                ("NOT_FOUND", ""),
            ),
            (
                "/api/v1/runs/runbbbb1/artifact-versions?limit=x",
                400,
                ("INVALID_ARGUMENT", "limit"),
            ),
        ];
        for (path, status, (code, field)) in rows {
            let (got, body) = get(&f.app, path).await;
            assert_eq!(got.as_u16(), *status, "{path}: {body}");
            assert_eq!(error_field(&body), (*code, *field), "{path}: {body}");
            assert!(
                !body["error"]["message"].as_str().unwrap_or("").is_empty(),
                "{path}"
            );
        }
        let huge = format!("/api/v1/projects/p/artifacts/{}", "a".repeat(10_000));
        let (got, body) = get(&f.app, &huge).await;
        assert_eq!(
            (got.as_u16(), error_field(&body)),
            (400, ("INVALID_ARGUMENT", "name"))
        );
        assert!(
            body.to_string().len() < 2_000,
            "the refusal quotes the name whole"
        );
    }
}
