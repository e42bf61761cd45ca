//! Where MLflow's layout puts artifacts in the store's artifact tree:
//! `<project root>/<run id>/artifacts/…`, the project root being its
//! `artifact_location` or `mlflow-artifacts:/<project id>`. Outside the
//! `serve` feature too, so the SDK can place a run's files where MLflow
//! clients and the dashboard list them.

use labbook_core::RunRecord;
use labbook_store::{Project, ProjectRef, Store};

/// Where a project's artifacts live, as an MLflow URI.
pub fn project_artifact_root(p: &Project) -> String {
    p.artifact_location
        .clone()
        .unwrap_or_else(|| format!("mlflow-artifacts:/{}", p.id))
}

/// The store path an `mlflow-artifacts:` URI names (`None` for a URI this
/// server does not hold, such as a local path an experiment chose).
pub fn store_path_of(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("mlflow-artifacts:")?;
    // `mlflow-artifacts://host:port/path` names a server; the path is ours.
    let path = match rest.strip_prefix("//") {
        Some(with_host) => with_host.split_once('/').map_or("", |(_, p)| p),
        None => rest.trim_start_matches('/'),
    };
    Some(path.trim_end_matches('/').to_string())
}

/// The artifact root (an MLflow URI) of the project a run belongs to.
pub fn run_root(s: &dyn Store, run: &RunRecord) -> String {
    s.project(ProjectRef::Id(run.project_id))
        .map(|p| project_artifact_root(&p))
        .unwrap_or_else(|_| format!("mlflow-artifacts:/{}", run.project_id))
}

/// Where a run's artifacts are in the store's artifact tree, or `None` for
/// a run whose project keeps its files elsewhere.
pub fn run_artifact_dir(s: &dyn Store, run: &RunRecord) -> Option<String> {
    store_path_of(&format!("{}/{}/artifacts", run_root(s, run), run.id))
}
