//! What a run read and what it produced: dataset inputs (the data version
//! of a result) and the models it logged. MLflow's `log-inputs` and
//! `log-outputs` land here, and so will labbook's own lineage.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// A dataset a run used, identified by name and content digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInput {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Tags of the use, not of the dataset: `mlflow.data.context` says
    /// whether it was the training or the evaluation set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl DatasetInput {
    /// The context tag (training, validation, …) when there is one.
    pub fn context(&self) -> Option<&str> {
        self.tags.get("mlflow.data.context").map(String::as_str)
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        for (field, value, limit) in [
            ("dataset.name", &self.name, 500),
            ("dataset.digest", &self.digest, 36),
            ("dataset.source_type", &self.source_type, 36),
            ("dataset.source", &self.source, 65_535),
        ] {
            if value.is_empty() {
                return Err(ValidationError::new(field, "must not be empty"));
            }
            if value.len() > limit {
                return Err(ValidationError::new(
                    field,
                    format!("is {} bytes; the limit is {limit}", value.len()),
                ));
            }
        }
        Ok(())
    }

    /// The same dataset used the same way: logging it again adds nothing.
    pub fn same_use(&self, other: &DatasetInput) -> bool {
        self.name == other.name && self.digest == other.digest && self.tags == other.tags
    }
}

/// A model a run produced, at the step it was logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelOutput {
    pub model_id: String,
    pub step: i64,
}
