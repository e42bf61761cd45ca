//! MLflow's datasets and logged models as artifact versions, so that what
//! an `mlflow` client logs joins the same lineage as labbook's own
//! artifacts: a `log_inputs` dataset becomes a version of type `dataset`
//! that the run used; a logged model, once finalized, a version of type
//! `model` its source run produced (its files are the ones uploaded under
//! the model, no bytes copied); a model a run reads, an input edge.

use serde_json::{Value, json};

use labbook_core::artifact_version::name_from_text;
use labbook_core::model::LoggedModel;
use labbook_core::{DatasetInput, RunRecord};
use labbook_store::Store;
use labbook_store::versions::{ArtifactVersion, EdgeRole, NewArtifactVersion};

use crate::json::now_ms;

/// A JSON text kept as JSON when it parses (MLflow sends schemas and
/// profiles as JSON strings), as the text otherwise.
fn json_or_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn object(value: Value) -> serde_json::Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// Records the dataset as a version the run used.
pub fn dataset_used(
    s: &dyn Store,
    run: &RunRecord,
    d: &DatasetInput,
) -> labbook_store::Result<ArtifactVersion> {
    let name = name_from_text(&d.name).unwrap_or_else(|| "dataset".into());
    // MLflow's digest covers only the data (and, for pandas, its first
    // 10,000 rows): the source is part of the identity here too.
    let digest = blake3::hash(
        format!(
            "mlflow-dataset\n{}\n{}\n{}\n{}",
            d.name, d.digest, d.source_type, d.source
        )
        .as_bytes(),
    )
    .to_hex()
    .to_string();
    let mut mlflow = json!({
        "digest": d.digest,
        "source_type": d.source_type,
        "source": json_or_text(&d.source),
    });
    if let Some(schema) = &d.schema {
        mlflow["schema"] = json_or_text(schema);
    }
    if let Some(profile) = &d.profile {
        mlflow["profile"] = json_or_text(profile);
    }
    s.record_artifact_version(
        &NewArtifactVersion {
            project: run.project.clone(),
            name,
            kind: "dataset".into(),
            metadata: object(json!({ "mlflow": mlflow })),
            run_id: Some(run.id.clone()),
            run_role: EdgeRole::Input,
            now_ms: now_ms(),
            ..Default::default()
        },
        Vec::new(),
        Some(digest),
    )
}

/// Records a finalized logged model as a version: produced by its source
/// run, or, with `reader`, used by that run.
pub fn model_version(
    s: &dyn Store,
    model: &LoggedModel,
    reader: Option<&RunRecord>,
) -> labbook_store::Result<Option<ArtifactVersion>> {
    let Some(base) = super::logged_model_artifact_base(s, &model.id) else {
        return Ok(None);
    };
    let project = match s.project(labbook_store::ProjectRef::Id(model.project_id)) {
        Ok(p) => p.name,
        Err(_) => return Ok(None),
    };
    let files = s.artifact_files_under(&base)?;
    let digest = blake3::hash(format!("mlflow-logged-model\n{}", model.id).as_bytes())
        .to_hex()
        .to_string();
    let (run_id, run_role) = match reader {
        Some(run) => (Some(run.id.clone()), EdgeRole::Input),
        None => (model.source_run_id.clone(), EdgeRole::Output),
    };
    s.record_artifact_version(
        &NewArtifactVersion {
            project,
            name: name_from_text(&model.name).unwrap_or_else(|| "model".into()),
            kind: "model".into(),
            metadata: object(json!({ "mlflow": {
                "model_id": model.id,
                "model_type": model.model_type,
                "params": model.params,
            }})),
            run_id,
            run_role,
            now_ms: now_ms(),
            ..Default::default()
        },
        files,
        Some(digest),
    )
    .map(Some)
}
