//! Who may do what, on a server started with `--auth`: the request guard's
//! second half. The guard says who is calling; this layer, run once a
//! route has matched, says whether they may, from one table of every
//! route: what the request touches (a project, a run, an experiment, a
//! logged model, a registered model, an artifact path) and the role it
//! takes there, in MLflow's terms (READ, EDIT, MANAGE).
//!
//! A user's role on a project or registered model is theirs if one was
//! given (`labbook perm set`), else the server's default
//! (`--default-permission`, READ as in MLflow); admins may do everything.
//! Whoever creates a project or registered model gets MANAGE on it.
//! Listings (projects, experiments, registered models, model versions)
//! keep only what the caller may read. A route missing from the table is
//! refused, so a new route is closed until someone says who may use it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;

use labbook_core::account::{ResourceKind, Role, User};
use labbook_store::{NewProject, ProjectRef, Store, StoreError};

use crate::guard::{Refusal, Surface};

/// What the access layer shares.
pub(crate) struct Access {
    store: Arc<dyn Store>,
    default_role: Role,
}

impl Access {
    pub(crate) fn new(store: Arc<dyn Store>, default_role: Role) -> Access {
        Access {
            store,
            default_role,
        }
    }
}

/// The signed-in user with every role they were given: what a handler or
/// a listing's filter asks.
#[derive(Clone)]
pub struct Viewer {
    pub user: User,
    default_role: Role,
    given: Arc<HashMap<(ResourceKind, String), Role>>,
}

impl Viewer {
    fn load(store: &dyn Store, user: User, default_role: Role) -> Result<Viewer, StoreError> {
        let given = if user.admin {
            HashMap::new()
        } else {
            store
                .permissions(Some(&user.name))?
                .into_iter()
                .map(|p| ((p.kind, p.resource), p.role))
                .collect()
        };
        Ok(Viewer {
            user,
            default_role,
            given: Arc::new(given),
        })
    }

    pub fn role(&self, kind: ResourceKind, resource: &str) -> Role {
        if self.user.admin {
            return Role::Manage;
        }
        self.given
            .get(&(kind, resource.to_string()))
            .copied()
            .unwrap_or(self.default_role)
    }

    pub fn may_read_project(&self, project_id: i64) -> bool {
        self.role(ResourceKind::Project, &project_id.to_string()) >= Role::Read
    }

    pub fn may_read_model(&self, name: &str) -> bool {
        self.role(ResourceKind::Model, name) >= Role::Read
    }

    /// Whether the user may read a project now, as the store says: for a
    /// request that outlives the check it passed (a live event stream),
    /// after a role taken away or the user removed.
    pub(crate) fn may_still_read_project(
        &self,
        store: &dyn Store,
        project: &str,
    ) -> Result<bool, StoreError> {
        let Some((user, _)) = store.password_hash(&self.user.name)? else {
            return Ok(false);
        };
        let now = Viewer::load(store, user, self.default_role)?;
        match store.project(ProjectRef::Name(project)) {
            Ok(p) => Ok(now.may_read_project(p.id)),
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// What a request touches, and where its id is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The project named by path parameter `project` or query `project`.
    ProjectName,
    /// The project named by the body's `project`, created (and its creator
    /// made its manager) when it does not exist yet; and the run the body's
    /// `id` names, when it does.
    StartRun,
    /// The run of path parameter `id`.
    RunPath,
    /// The run of `run_id` (or its old name `run_uuid`), query or body.
    RunField,
    /// Every run of the body's `ids`.
    RunsBody,
    /// Every run of the query's comma-separated `runs`.
    RunsCsv,
    /// Every run of the query's repeated `run_ids`.
    RunsRepeated,
    /// The experiment (project) of `experiment_id`, query or body.
    Experiment,
    /// The experiment named by the query's `experiment_name`.
    ExperimentName,
    /// Every experiment of `experiment_ids`, query (repeated) or body.
    Experiments,
    /// The logged model of path parameter `model_id` (or `id`).
    LoggedModel,
    /// The sweep of path parameter `id`.
    Study,
    /// The sweep of the trial of path parameter `id`.
    Trial,
    /// The project whose artifact root holds the artifact proxy's path
    /// (path parameter `path`, or the query's `path` for a listing).
    ArtifactPath,
    /// The registered model of `name`, query or body.
    RegisteredModel,
    /// The registered model of path parameter `name`.
    RegisteredModelPath,
}

/// How a route is let through.
enum Rule {
    /// Anyone, signed in or not: the dashboard's sign-in (the guard asks
    /// for credentials on everything else).
    Public,
    /// Any signed-in user: it names nothing of a project or model.
    Anyone,
    /// Any signed-in user; the answer's entries are filtered to what they
    /// may read.
    Listing(Listing),
    /// A role on everything `Target` names.
    Needs(Target, Role),
}

/// Where a listing's entries are, and how each names what it belongs to.
#[derive(Debug, Clone, Copy)]
enum Listing {
    /// `projects[]`, each by `id`.
    Projects,
    /// `experiments[]`, each by `experiment_id`.
    Experiments,
    /// `registered_models[]`, each by `name`.
    RegisteredModels,
    /// `model_versions[]`, each by `name`.
    ModelVersions,
    /// `models[]`, each by `name` (labbook's registry page).
    Models,
}

impl Listing {
    fn field(self) -> &'static str {
        match self {
            Listing::Projects => "projects",
            Listing::Experiments => "experiments",
            Listing::RegisteredModels => "registered_models",
            Listing::ModelVersions => "model_versions",
            Listing::Models => "models",
        }
    }

    /// Whether the viewer may read what one entry is about.
    fn shows(self, viewer: &Viewer, entry: &Value) -> bool {
        match self {
            Listing::Projects => entry
                .get("id")
                .and_then(Value::as_i64)
                .is_some_and(|id| viewer.may_read_project(id)),
            Listing::Experiments => entry
                .get("experiment_id")
                .and_then(Value::as_str)
                .and_then(|id| id.parse::<i64>().ok())
                .is_some_and(|id| viewer.may_read_project(id)),
            Listing::RegisteredModels | Listing::ModelVersions | Listing::Models => entry
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|name| viewer.may_read_model(name)),
        }
    }
}

/// The rule of a matched route. Prefixes are taken off: `labbook:` is
/// `/api/v1`, `mlflow:` is `/api/2.0/mlflow` and `/ajax-api/2.0/mlflow`,
/// `artifacts:` MLflow's artifact proxy.
fn rule(method: &Method, route: &str) -> Option<Rule> {
    use Role::{Edit, Manage, Read};
    use Target::*;
    let write = !matches!(*method, Method::GET | Method::HEAD);
    let needs = |target, role| Some(Rule::Needs(target, role));
    match route {
        // labbook's API (docs/API.md).
        "labbook:/projects" => Some(Rule::Listing(Listing::Projects)),
        "labbook:/models" => Some(Rule::Listing(Listing::Models)),
        "labbook:/models/{name}" => needs(RegisteredModelPath, Read),
        "labbook:/query/validate" => Some(Rule::Anyone),
        "labbook:/session" => Some(Rule::Public),
        "labbook:/session/sign-out" => Some(Rule::Anyone),
        "labbook:/projects/{project}/notebook" if write => needs(ProjectName, Edit),
        "labbook:/projects/{project}/runs"
        | "labbook:/projects/{project}/keys"
        | "labbook:/projects/{project}/groups"
        | "labbook:/projects/{project}/notebook"
        | "labbook:/projects/{project}/artifacts"
        | "labbook:/projects/{project}/studies"
        | "labbook:/projects/{project}/queue"
        | "labbook:/projects/{project}/report"
        | "labbook:/projects/{project}/artifacts/{name}"
        | "labbook:/projects/{project}/artifacts/{name}/versions/{version}"
        | "labbook:/projects/{project}/artifacts/{name}/versions/{version}/lineage"
        | "labbook:/events" => needs(ProjectName, Read),
        "labbook:/studies/{id}" => needs(Study, Read),
        "labbook:/studies/{id}/claim" | "labbook:/studies/{id}/heartbeat" => needs(Study, Edit),
        "labbook:/trials/{id}/finish" => needs(Trial, Edit),
        "labbook:/runs" => needs(StartRun, Edit),
        "labbook:/runs/tags" => needs(RunsBody, Edit),
        "labbook:/runs/delete" | "labbook:/runs/restore" => needs(RunsBody, Manage),
        "labbook:/runs/{id}/log"
        | "labbook:/runs/{id}/environment"
        | "labbook:/runs/{id}/notes" => needs(RunPath, Edit),
        "labbook:/runs/{id}"
        | "labbook:/runs/{id}/output"
        | "labbook:/runs/{id}/artifacts"
        | "labbook:/runs/{id}/artifacts/preview"
        | "labbook:/runs/{id}/artifacts/raw"
        | "labbook:/runs/{id}/artifact-versions"
        | "labbook:/runs/{id}/lineage"
        | "labbook:/runs/{id}/replays" => needs(RunPath, Read),
        "labbook:/logged-models/{id}/artifacts"
        | "labbook:/logged-models/{id}/artifacts/preview"
        | "labbook:/logged-models/{id}/artifacts/raw" => needs(LoggedModel, Read),
        "labbook:/series" => needs(RunsCsv, Read),

        // MLflow's tracking API.
        "mlflow:/experiments/create" | "mlflow:/registered-models/create" => Some(Rule::Anyone),
        "mlflow:/experiments/search" => Some(Rule::Listing(Listing::Experiments)),
        "mlflow:/experiments/get" => needs(Experiment, Read),
        "mlflow:/experiments/get-by-name" => needs(ExperimentName, Read),
        "mlflow:/experiments/update"
        | "mlflow:/experiments/set-experiment-tag"
        | "mlflow:/experiments/delete-experiment-tag"
        | "mlflow:/runs/create"
        | "mlflow:/logged-models" => needs(Experiment, Edit),
        "mlflow:/experiments/delete" | "mlflow:/experiments/restore" => needs(Experiment, Manage),
        "mlflow:/runs/get"
        | "mlflow:/metrics/get-history"
        | "mlflow:/artifacts/list"
        | "/get-artifact"
        | "mlflow:/get-artifact" => needs(RunField, Read),
        "mlflow:/metrics/get-history-bulk-interval" => needs(RunsRepeated, Read),
        "mlflow:/runs/update"
        | "mlflow:/runs/log-metric"
        | "mlflow:/runs/log-parameter"
        | "mlflow:/runs/log-batch"
        | "mlflow:/runs/set-tag"
        | "mlflow:/runs/delete-tag"
        | "mlflow:/runs/log-inputs"
        | "mlflow:/runs/outputs"
        | "mlflow:/runs/log-model" => needs(RunField, Edit),
        "mlflow:/runs/delete" | "mlflow:/runs/restore" => needs(RunField, Manage),
        "mlflow:/runs/search" | "mlflow:/logged-models/search" => needs(Experiments, Read),
        "mlflow:/logged-models/{model_id}" if *method == Method::DELETE => {
            needs(LoggedModel, Manage)
        }
        "mlflow:/logged-models/{model_id}"
        | "mlflow:/logged-models/{model_id}/artifacts/directories"
            if !write =>
        {
            needs(LoggedModel, Read)
        }
        "mlflow:/logged-models/{model_id}"
        | "mlflow:/logged-models/{model_id}/tags"
        | "mlflow:/logged-models/{model_id}/tags/{key}"
        | "mlflow:/logged-models/{model_id}/params" => needs(LoggedModel, Edit),

        // MLflow's model registry: roles on registered models.
        "mlflow:/registered-models/search" => Some(Rule::Listing(Listing::RegisteredModels)),
        "mlflow:/model-versions/search" => Some(Rule::Listing(Listing::ModelVersions)),
        "mlflow:/registered-models/alias" if !write => needs(RegisteredModel, Read),
        "mlflow:/registered-models/get"
        | "mlflow:/registered-models/get-latest-versions"
        | "mlflow:/model-versions/get"
        | "mlflow:/model-versions/get-download-uri" => needs(RegisteredModel, Read),
        "mlflow:/registered-models/update"
        | "mlflow:/registered-models/set-tag"
        | "mlflow:/registered-models/delete-tag"
        | "mlflow:/registered-models/alias"
        | "mlflow:/model-versions/create"
        | "mlflow:/model-versions/update"
        | "mlflow:/model-versions/transition-stage"
        | "mlflow:/model-versions/set-tag"
        | "mlflow:/model-versions/delete-tag" => needs(RegisteredModel, Edit),
        "mlflow:/registered-models/rename"
        | "mlflow:/registered-models/delete"
        | "mlflow:/model-versions/delete" => needs(RegisteredModel, Manage),

        // MLflow's artifact proxy: the project whose files the path is in.
        "artifacts:/artifacts" | "artifacts:/artifacts/" => needs(ArtifactPath, Read),
        "artifacts:/artifacts/{*path}" if *method == Method::DELETE => needs(ArtifactPath, Manage),
        "artifacts:/artifacts/{*path}" if write => needs(ArtifactPath, Edit),
        "artifacts:/artifacts/{*path}" => needs(ArtifactPath, Read),

        "/version" | "mlflow:/server-info" => Some(Rule::Anyone),
        _ => None,
    }
}

/// A matched route's path without its API's prefix, marked with the API.
fn route_key(matched: &str) -> String {
    for (prefix, mark) in [
        ("/api/2.0/mlflow-artifacts", "artifacts:"),
        ("/ajax-api/2.0/mlflow-artifacts", "artifacts:"),
        ("/api/2.0/mlflow", "mlflow:"),
        ("/ajax-api/2.0/mlflow", "mlflow:"),
        ("/api/3.0/mlflow", "mlflow:"),
        ("/api/v1", "labbook:"),
    ] {
        if let Some(rest) = matched.strip_prefix(prefix) {
            return format!("{mark}{rest}");
        }
    }
    matched.to_string()
}

/// The layer: runs after routing, on routes of labbook's and MLflow's APIs.
pub(crate) async fn check(State(access): State<Arc<Access>>, req: Request, next: Next) -> Response {
    let surface = Surface::of(req.uri().path());
    match decide(access, req).await {
        Ok((req, listing, viewer)) => {
            let response = next.run(req).await;
            match (listing, viewer) {
                (Some(listing), Some(viewer)) => filter_listing(response, listing, &viewer).await,
                _ => response,
            }
        }
        Err(refusal) => refusal.into_response(surface),
    }
}

type Decision = (Request, Option<Listing>, Option<Viewer>);

async fn decide(access: Arc<Access>, req: Request) -> Result<Decision, Refusal> {
    let Some(user) = req.extensions().get::<User>().cloned() else {
        if let Some(matched) = req.extensions().get::<MatchedPath>()
            && matches!(
                rule(req.method(), &route_key(matched.as_str())),
                Some(Rule::Public)
            )
        {
            return Ok((req, None, None));
        }
        return Err(refusal(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "this server asks who you are",
        ));
    };
    let (mut parts, body) = req.into_parts();
    let matched = parts
        .extensions
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let route = route_key(&matched);
    let Some(rule) = rule(&parts.method, &route) else {
        return Err(refusal(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            format!(
                "{} {matched} has no access rule on this server",
                parts.method
            ),
        ));
    };
    let path_params: Vec<(String, String)> =
        match RawPathParams::from_request_parts(&mut parts, &()).await {
            Ok(params) => params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            Err(_) => Vec::new(),
        };
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let (body, json) = match &rule {
        Rule::Needs(target, _) if target.reads_body() && parts.method != Method::GET => {
            let bytes = axum::body::to_bytes(body, crate::error::BODY_LIMIT)
                .await
                .map_err(|_| {
                    refusal(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "TOO_LARGE",
                        format!(
                            "the request body is over {} MiB",
                            crate::error::BODY_LIMIT >> 20
                        ),
                    )
                })?;
            let json = serde_json::from_slice::<Value>(&bytes).ok();
            (Body::from(bytes), json)
        }
        _ => (body, None),
    };
    let request = Fields {
        path: path_params,
        query,
        body: json,
        from_query: parts.method == Method::GET,
    };
    let store = access.store.clone();
    let default_role = access.default_role;
    let (viewer, listing) = tokio::task::spawn_blocking(move || {
        let viewer = Viewer::load(&*store, user, default_role).map_err(internal)?;
        match rule {
            Rule::Anyone | Rule::Public => Ok((viewer, None)),
            Rule::Listing(listing) => Ok((viewer, Some(listing))),
            Rule::Needs(target, role) => {
                let resources = resolve(&*store, &viewer, target, &request)?;
                for (kind, resource) in resources {
                    let has = viewer.role(kind, &resource);
                    if has < role {
                        return Err(denied(&viewer, kind, has, role));
                    }
                }
                Ok((viewer, None))
            }
        }
    })
    .await
    .map_err(|e| internal(format!("an access check failed: {e}")))??;
    parts.extensions.insert(viewer.clone());
    Ok((Request::from_parts(parts, body), listing, Some(viewer)))
}

/// The ids a request carries, read from where its handler reads them: a
/// GET's from its query, anything else's from its JSON body (as MLflow's
/// server does). Reading both would let a request be checked on one id
/// and act on another.
struct Fields {
    path: Vec<(String, String)>,
    query: Vec<(String, String)>,
    body: Option<Value>,
    from_query: bool,
}

impl Fields {
    fn path(&self, name: &str) -> Option<&str> {
        self.path
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// One field (a string, or a number: MLflow's int64 fields may be
    /// either). Given twice in a query, it is refused: handlers differ in
    /// which of the two they would take.
    fn one(&self, name: &str) -> Result<Option<String>, Refusal> {
        if self.from_query {
            let mut given = self.query.iter().filter(|(k, _)| k == name);
            let first = given.next().map(|(_, v)| v.clone());
            if given.next().is_some() {
                return Err(refusal(
                    StatusCode::BAD_REQUEST,
                    "INVALID",
                    format!("{name} is given more than once"),
                ));
            }
            return Ok(first);
        }
        Ok(match self.body.as_ref().and_then(|b| b.get(name)) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    }

    /// A list: the query's repeats, or the JSON body's array.
    fn many(&self, name: &str) -> Result<Vec<String>, Refusal> {
        let mut out: Vec<String> = Vec::new();
        if self.from_query {
            out.extend(
                self.query
                    .iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v.clone()),
            );
        } else if let Some(value) = self.body.as_ref().and_then(|b| b.get(name)) {
            let Value::Array(items) = value else {
                return Err(missing(name));
            };
            for item in items {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    Value::Number(n) => out.push(n.to_string()),
                    _ => return Err(missing(name)),
                }
            }
        }
        if out.len() > MAX_IDS {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "INVALID",
                format!("{name} names over {MAX_IDS} items"),
            ));
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// The most ids one request may name for the access check to look up;
/// every handler's own bound is lower.
const MAX_IDS: usize = 1000;

impl Target {
    fn reads_body(self) -> bool {
        matches!(
            self,
            Target::StartRun
                | Target::RunField
                | Target::RunsBody
                | Target::Experiment
                | Target::Experiments
                | Target::RegisteredModel
        )
    }
}

/// What a request touches, as (kind, resource) pairs. Something that does
/// not exist touches nothing: its handler answers that it is not found.
fn resolve(
    store: &dyn Store,
    viewer: &Viewer,
    target: Target,
    fields: &Fields,
) -> Result<Vec<(ResourceKind, String)>, Refusal> {
    let project = |id: i64| (ResourceKind::Project, id.to_string());
    let run_project = |id: &str| -> Result<Option<(ResourceKind, String)>, Refusal> {
        match store.get_run(id) {
            Ok(run) => Ok(Some(project(run.project_id))),
            Err(StoreError::NotFound { .. }) | Err(StoreError::Ambiguous { .. }) => Ok(None),
            Err(StoreError::Invalid(_)) => Ok(None),
            Err(e) => Err(internal(e)),
        }
    };
    let named_project = |name: &str| -> Result<Option<(ResourceKind, String)>, Refusal> {
        match store.project(ProjectRef::Name(name)) {
            Ok(p) => Ok(Some(project(p.id))),
            Err(StoreError::NotFound { .. }) | Err(StoreError::Invalid(_)) => Ok(None),
            Err(e) => Err(internal(e)),
        }
    };
    let mut out = Vec::new();
    match target {
        Target::ProjectName => {
            let name = fields
                .path("project")
                .map(str::to_string)
                .map_or_else(|| fields.one("project"), |p| Ok(Some(p)))?
                .ok_or_else(|| missing("project"))?;
            out.extend(named_project(&name)?);
        }
        Target::StartRun => {
            let body = fields.body.as_ref();
            let name = body
                .and_then(|b| b.get("project"))
                .and_then(Value::as_str)
                .ok_or_else(|| missing("project"))?;
            match named_project(name)? {
                Some(found) => out.push(found),
                None => out.extend(create_owned_project(store, viewer, name)?),
            }
            if let Some(id) = body.and_then(|b| b.get("id")).and_then(Value::as_str) {
                out.extend(run_project(id)?);
            }
        }
        Target::RunPath => {
            let id = fields.path("id").ok_or_else(|| missing("id"))?;
            out.extend(run_project(id)?);
        }
        Target::RunField => {
            let id = match fields.one("run_id")? {
                Some(id) => id,
                None => fields.one("run_uuid")?.ok_or_else(|| missing("run_id"))?,
            };
            out.extend(run_project(&id)?);
        }
        Target::RunsBody | Target::RunsCsv | Target::RunsRepeated => {
            let ids = match target {
                Target::RunsBody => fields.many("ids")?,
                Target::RunsRepeated => fields.many("run_ids")?,
                _ => {
                    let csv = fields.one("runs")?.ok_or_else(|| missing("runs"))?;
                    let ids: Vec<String> = csv
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                    if ids.len() > MAX_IDS {
                        return Err(missing("runs"));
                    }
                    ids
                }
            };
            for id in ids {
                out.extend(run_project(&id)?);
            }
        }
        Target::Experiment => {
            let id = fields
                .one("experiment_id")?
                .ok_or_else(|| missing("experiment_id"))?;
            out.extend(experiment(store, &id)?);
        }
        Target::ExperimentName => {
            let name = fields
                .one("experiment_name")?
                .ok_or_else(|| missing("experiment_name"))?;
            out.extend(named_project(&name)?);
        }
        Target::Experiments => {
            for id in fields.many("experiment_ids")? {
                out.extend(experiment(store, &id)?);
            }
        }
        Target::LoggedModel => {
            let id = fields
                .path("model_id")
                .or_else(|| fields.path("id"))
                .ok_or_else(|| missing("model_id"))?;
            if let Some(model) = crate::mlflow::logged_model_by_id(store, id) {
                out.push(project(model.project_id));
            }
        }
        Target::Study => {
            let id = fields.path("id").ok_or_else(|| missing("id"))?;
            match store.study(id, None) {
                Ok(study) => out.extend(named_project(&study.project)?),
                Err(StoreError::NotFound { .. })
                | Err(StoreError::Ambiguous { .. })
                | Err(StoreError::Invalid(_)) => {}
                Err(e) => return Err(internal(e)),
            }
        }
        Target::Trial => {
            let id = fields.path("id").ok_or_else(|| missing("id"))?;
            if let Ok(trial_id) = id.parse::<i64>() {
                match store
                    .trial(trial_id)
                    .and_then(|t| store.study_by_pk(t.study))
                {
                    Ok(study) => out.extend(named_project(&study.project)?),
                    Err(StoreError::NotFound { .. }) => {}
                    Err(e) => return Err(internal(e)),
                }
            }
        }
        Target::ArtifactPath => {
            let path = fields
                .path("path")
                .map_or_else(|| fields.one("path"), |p| Ok(Some(p.to_string())))?
                .unwrap_or_default();
            match artifact_owner(store, &path)? {
                Some(owner) => out.push(owner),
                None if viewer.user.admin => {}
                None => {
                    return Err(denied(
                        viewer,
                        ResourceKind::Project,
                        Role::NoPermissions,
                        Role::Read,
                    ));
                }
            }
        }
        Target::RegisteredModel => {
            let name = fields.one("name")?.ok_or_else(|| missing("name"))?;
            out.push((ResourceKind::Model, name));
        }
        Target::RegisteredModelPath => {
            let name = fields.path("name").ok_or_else(|| missing("name"))?;
            out.push((ResourceKind::Model, name.to_string()));
        }
    }
    Ok(out)
}

fn experiment(store: &dyn Store, id: &str) -> Result<Option<(ResourceKind, String)>, Refusal> {
    let Ok(id) = id.trim().parse::<i64>() else {
        return Ok(None);
    };
    match store.project(ProjectRef::Id(id)) {
        Ok(p) => Ok(Some((ResourceKind::Project, p.id.to_string()))),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(internal(e)),
    }
}

/// The project whose artifact root holds `path` (the deepest, when roots
/// nest). A path under no project's root (the root itself, say, which
/// lists every project's folder) is only an admin's.
fn artifact_owner(
    store: &dyn Store,
    path: &str,
) -> Result<Option<(ResourceKind, String)>, Refusal> {
    let path = path.trim_matches('/');
    // A path that climbs could name one project's root and reach another's
    // files: it belongs to no one (the handler refuses it too).
    if path
        .split(['/', '\\'])
        .any(|part| part == ".." || part == ".")
    {
        return Ok(None);
    }
    let mut owner: Option<(usize, i64)> = None;
    for info in store.list_projects().map_err(internal)? {
        let root = crate::layout::project_artifact_root(&info.project);
        let Some(root) = crate::layout::store_path_of(&root) else {
            continue;
        };
        let inside = !root.is_empty()
            && (path == root
                || path
                    .strip_prefix(root.as_str())
                    .is_some_and(|rest| rest.starts_with('/')));
        if inside && owner.is_none_or(|(len, _)| root.len() > len) {
            owner = Some((root.len(), info.project.id));
        }
    }
    Ok(owner.map(|(_, id)| (ResourceKind::Project, id.to_string())))
}

/// A project the start of a run names and no one has made yet: the caller
/// makes it, and manages it. Two callers at once: one makes it, the other
/// finds it made and needs a role on it like anyone else.
fn create_owned_project(
    store: &dyn Store,
    viewer: &Viewer,
    name: &str,
) -> Result<Option<(ResourceKind, String)>, Refusal> {
    let new = NewProject {
        name: name.to_string(),
        created_ms: crate::json::now_ms(),
        ..NewProject::default()
    };
    match store.create_project(&new) {
        Ok(project) => {
            store
                .set_permission(
                    &viewer.user.name,
                    ResourceKind::Project,
                    &project.id.to_string(),
                    Role::Manage,
                )
                .map_err(internal)?;
            // The check that follows reads the viewer's roles as loaded.
            Ok(None)
        }
        Err(StoreError::Conflict(_)) => match store.project(ProjectRef::Name(name)) {
            Ok(p) => Ok(Some((ResourceKind::Project, p.id.to_string()))),
            Err(e) => Err(internal(e)),
        },
        // A name the store refuses: the handler says why.
        Err(StoreError::Invalid(_)) => Ok(None),
        Err(e) => Err(internal(e)),
    }
}

/// Gives the creator of a project or registered model MANAGE on it (MLflow
/// does the same). A no-op without `--auth`.
pub(crate) fn grant_creator(
    store: &dyn Store,
    user: Option<&User>,
    kind: ResourceKind,
    resource: &str,
) -> Result<(), StoreError> {
    match user {
        Some(user) if !user.admin => store
            .set_permission(&user.name, kind, resource, Role::Manage)
            .map(|_| ()),
        _ => Ok(()),
    }
}

/// Keeps a listing's entries the viewer may read.
async fn filter_listing(response: Response, listing: Listing, viewer: &Viewer) -> Response {
    if !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "a listing could not be read",
        )
        .into_response(Surface::Labbook);
    };
    let Ok(mut json) = serde_json::from_slice::<Value>(&bytes) else {
        // Not JSON: nothing of a listing to keep or drop.
        return Response::from_parts(parts, Body::from(bytes));
    };
    if let Some(Value::Array(entries)) = json.get_mut(listing.field()) {
        entries.retain(|e| listing.shows(viewer, e));
    }
    let bytes = Bytes::from(serde_json::to_vec(&json).unwrap_or_default());
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}

fn refusal(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
    }
}

fn missing(name: &str) -> Refusal {
    refusal(
        StatusCode::BAD_REQUEST,
        "INVALID",
        format!("{name} is missing or malformed; it says what this request is about"),
    )
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    refusal(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL",
        format!("the access check failed: {e}"),
    )
}

/// Names the user and the roles, never the project or model: a user who
/// may not read one must not learn its name from a run id.
fn denied(viewer: &Viewer, kind: ResourceKind, has: Role, needs: Role) -> Refusal {
    refusal(
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
        format!(
            "{} has {has} on this {}; this request needs {needs} (an admin gives roles with `labbook perm set`)",
            viewer.user.name,
            kind.as_str()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_lose_their_api_prefix() {
        assert_eq!(route_key("/api/v1/runs/{id}"), "labbook:/runs/{id}");
        assert_eq!(
            route_key("/ajax-api/2.0/mlflow/runs/get"),
            "mlflow:/runs/get"
        );
        assert_eq!(
            route_key("/api/2.0/mlflow-artifacts/artifacts/{*path}"),
            "artifacts:/artifacts/{*path}"
        );
        assert_eq!(route_key("/version"), "/version");
    }

    /// Every `.route(...)` of the API routers, as (method, route key): read
    /// from the source, so a route added later is checked too.
    fn declared_routes() -> Vec<(Method, String)> {
        let sources = [
            (include_str!("api.rs"), "labbook:"),
            (include_str!("mlflow/tracking.rs"), "mlflow:"),
            (include_str!("mlflow/registry.rs"), "mlflow:"),
            (include_str!("mlflow/artifacts.rs"), "artifacts:"),
            (include_str!("mlflow/mod.rs"), ""),
        ];
        let mut out = Vec::new();
        for (source, mark) in sources {
            for piece in source.split(".route(").skip(1) {
                let Some(path) = piece.split('"').nth(1) else {
                    continue;
                };
                // The handlers: up to the parenthesis closing `.route(`.
                let mut depth = 1;
                let end = piece
                    .char_indices()
                    .find(|&(_, c)| {
                        depth += match c {
                            '(' => 1,
                            ')' => -1,
                            _ => 0,
                        };
                        depth == 0
                    })
                    .map_or(piece.len(), |(i, _)| i);
                let handlers = &piece[..end];
                let key = if mark.is_empty() {
                    route_key(path)
                } else {
                    format!("{mark}{path}")
                };
                for (name, method) in [
                    ("get(", Method::GET),
                    ("post(", Method::POST),
                    ("put(", Method::PUT),
                    ("patch(", Method::PATCH),
                    ("delete(", Method::DELETE),
                ] {
                    let called = handlers.match_indices(name).any(|(i, _)| {
                        i == 0
                            || !handlers[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                    });
                    if called {
                        out.push((method, key.clone()));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_route_has_an_access_rule() {
        let routes = declared_routes();
        assert!(routes.len() > 90, "found only {} routes", routes.len());
        let missing: Vec<String> = routes
            .iter()
            .filter(|(method, key)| rule(method, key).is_none())
            .map(|(method, key)| format!("{method} {key}"))
            .collect();
        assert!(
            missing.is_empty(),
            "routes with no access rule: {missing:?}"
        );
    }

    #[test]
    fn writes_need_more_than_reads() {
        let needs = |method: Method, route: &str| match rule(&method, route) {
            Some(Rule::Needs(_, role)) => Some(role),
            _ => None,
        };
        assert_eq!(needs(Method::GET, "labbook:/runs/{id}"), Some(Role::Read));
        assert_eq!(
            needs(Method::POST, "labbook:/runs/{id}/log"),
            Some(Role::Edit)
        );
        assert_eq!(
            needs(Method::POST, "labbook:/runs/delete"),
            Some(Role::Manage)
        );
        assert_eq!(
            needs(Method::POST, "mlflow:/runs/log-batch"),
            Some(Role::Edit)
        );
        assert_eq!(
            needs(Method::POST, "mlflow:/runs/delete"),
            Some(Role::Manage)
        );
        assert_eq!(
            needs(Method::GET, "artifacts:/artifacts/{*path}"),
            Some(Role::Read)
        );
        assert_eq!(
            needs(Method::PUT, "artifacts:/artifacts/{*path}"),
            Some(Role::Edit)
        );
        assert_eq!(
            needs(Method::DELETE, "artifacts:/artifacts/{*path}"),
            Some(Role::Manage)
        );
        assert_eq!(
            needs(Method::POST, "labbook:/projects/{project}/notebook"),
            Some(Role::Edit)
        );
        assert!(rule(&Method::GET, "labbook:/no-such-route").is_none());
    }
}
