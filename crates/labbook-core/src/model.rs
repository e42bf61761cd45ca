//! Models: the ones runs log (with their artifacts, params and metrics) and
//! the registry that names versions of them for deployment.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoggedModelStatus {
    /// Created; its artifacts are being uploaded.
    Pending,
    Ready,
    Failed,
}

/// A model logged by a run (or on its own), with its own artifact folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedModel {
    pub id: String,
    pub project_id: i64,
    pub name: String,
    pub source_run_id: Option<String>,
    pub status: LoggedModelStatus,
    #[serde(default)]
    pub status_message: Option<String>,
    pub model_type: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[serde(default)]
    pub metrics: Vec<ModelMetric>,
    #[serde(default)]
    pub deleted: bool,
}

/// A metric value recorded against a model (MLflow links a run's metrics to
/// the model logged at that step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetric {
    pub key: String,
    #[serde(with = "crate::metric::json_float")]
    pub value: f64,
    pub ts_ms: i64,
    pub step: i64,
    pub run_id: Option<String>,
    pub dataset_name: Option<String>,
    pub dataset_digest: Option<String>,
}

/// A registered model: a name whose versions point at logged models.
/// Versions live inside it, so that numbering a new version, moving an
/// alias or deleting the model is one atomic write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModel {
    pub name: String,
    pub description: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Alias → version number.
    #[serde(default)]
    pub aliases: BTreeMap<String, i64>,
    #[serde(default)]
    pub versions: Vec<ModelVersion>,
    /// The number the next version gets; deleted versions keep theirs.
    pub next_version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub version: i64,
    /// Where the model's files are (`models:/m-…` or an artifact URI).
    pub source: String,
    /// Where the files are when `source` names another registered
    /// version (`models:/name/3`): that version's location when this one
    /// was made, so a copy still downloads if the original is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_location: Option<String>,
    pub run_id: Option<String>,
    pub model_id: Option<String>,
    pub description: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The legacy deployment stage: None, Staging, Production or Archived.
    pub stage: String,
}

/// The stages MLflow's (deprecated) stage transitions accept.
pub const STAGES: [&str; 4] = ["None", "Staging", "Production", "Archived"];

/// The canonical spelling of a stage, case-insensitively.
pub fn canonical_stage(stage: &str) -> Result<&'static str, ValidationError> {
    STAGES
        .iter()
        .find(|s| s.eq_ignore_ascii_case(stage))
        .copied()
        .ok_or_else(|| {
            ValidationError::new(
                "stage",
                format!("{stage:?} is not a stage; use one of None, Staging, Production, Archived"),
            )
        })
}

impl RegisteredModel {
    pub fn new(name: String, description: Option<String>, now_ms: i64) -> RegisteredModel {
        RegisteredModel {
            name,
            description,
            created_ms: now_ms,
            updated_ms: now_ms,
            tags: BTreeMap::new(),
            aliases: BTreeMap::new(),
            versions: Vec::new(),
            next_version: 1,
        }
    }

    pub fn version(&self, version: i64) -> Option<&ModelVersion> {
        self.versions.iter().find(|v| v.version == version)
    }

    pub fn version_mut(&mut self, version: i64) -> Option<&mut ModelVersion> {
        self.versions.iter_mut().find(|v| v.version == version)
    }

    pub fn latest_version(&self) -> Option<&ModelVersion> {
        self.versions.iter().max_by_key(|v| v.version)
    }

    /// The aliases that point at a version.
    pub fn aliases_of(&self, version: i64) -> Vec<String> {
        self.aliases
            .iter()
            .filter(|(_, v)| **v == version)
            .map(|(a, _)| a.clone())
            .collect()
    }

    /// Appends a version with the next number and returns it.
    pub fn add_version(&mut self, mut version: ModelVersion) -> &ModelVersion {
        version.version = self.next_version;
        self.next_version += 1;
        self.updated_ms = self.updated_ms.max(version.created_ms);
        self.versions.push(version);
        &self.versions[self.versions.len() - 1]
    }

    /// Removes a version and the aliases that pointed at it.
    pub fn remove_version(&mut self, version: i64) -> bool {
        let before = self.versions.len();
        self.versions.retain(|v| v.version != version);
        self.aliases.retain(|_, v| *v != version);
        self.versions.len() != before
    }
}

/// Registered model names: non-empty, one line, at most 256 bytes, and no
/// `/` or `:` (they would make `models:/NAME/1` ambiguous).
pub fn validate_model_name(name: &str) -> Result<(), ValidationError> {
    crate::run::validate_name("name", name)?;
    if name.contains(['/', ':']) {
        return Err(ValidationError::new(
            "name",
            format!("{name:?} contains '/' or ':'"),
        ));
    }
    Ok(())
}

/// Aliases: letters, digits, '_' and '-', not starting with a 'v' followed by
/// digits only (that spelling means a version number).
pub fn validate_alias(alias: &str) -> Result<(), ValidationError> {
    if alias.is_empty() || alias.len() > 255 {
        return Err(ValidationError::new("alias", "must be 1–255 characters"));
    }
    if !alias
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ValidationError::new(
            "alias",
            format!("{alias:?} may hold only letters, digits, '_' and '-'"),
        ));
    }
    let lower = alias.to_ascii_lowercase();
    if lower == "latest"
        || (lower.starts_with('v')
            && lower.len() > 1
            && lower[1..].bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ValidationError::new(
            "alias",
            format!("{alias:?} is reserved (it reads as a version)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(n: i64) -> ModelVersion {
        ModelVersion {
            version: n,
            source: "models:/m-1".into(),
            storage_location: None,
            run_id: None,
            model_id: None,
            description: None,
            created_ms: 5,
            updated_ms: 5,
            tags: BTreeMap::new(),
            stage: "None".into(),
        }
    }

    #[test]
    fn versions_are_numbered_and_never_reused() {
        let mut m = RegisteredModel::new("clf".into(), None, 1);
        assert_eq!(m.add_version(version(0)).version, 1);
        assert_eq!(m.add_version(version(0)).version, 2);
        m.aliases.insert("champion".into(), 2);
        assert!(m.remove_version(2));
        assert!(m.aliases.is_empty());
        assert_eq!(m.add_version(version(0)).version, 3);
        assert_eq!(m.latest_version().map(|v| v.version), Some(3));
    }

    #[test]
    fn aliases_and_stages_are_checked() {
        assert!(validate_alias("champion").is_ok());
        assert!(validate_alias("v3").is_err());
        assert!(validate_alias("latest").is_err());
        assert!(validate_alias("a b").is_err());
        assert_eq!(canonical_stage("production").ok(), Some("Production"));
        assert!(canonical_stage("prod").is_err());
        assert!(validate_model_name("a/b").is_err());
    }
}
