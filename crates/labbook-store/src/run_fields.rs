//! A run's JSON-held fields and how a [`RunPatch`] changes them: the same
//! rules whichever database keeps the text.

use std::collections::BTreeMap;

use labbook_core::run::{validate_name, validate_tag};
use labbook_core::{Config, DatasetInput, ModelOutput};

use crate::error::{Result, StoreError};
use crate::types::RunPatch;

/// The fields of a run stored as JSON text, decoded.
pub(crate) struct RunFields {
    pub tags: Vec<String>,
    pub config: Config,
    pub summary: BTreeMap<String, serde_json::Value>,
    pub kv_tags: BTreeMap<String, String>,
    pub inputs: Vec<DatasetInput>,
    pub outputs: Vec<ModelOutput>,
    pub param_text: BTreeMap<String, String>,
    pub model_inputs: Vec<String>,
}

/// The stored texts, in the order [`RunFields::decode`] reads them.
pub(crate) const RUN_FIELD_COLUMNS: &str =
    "tags, config, summary, kv_tags, inputs, outputs, param_text, model_inputs";

impl RunFields {
    pub(crate) fn decode(texts: &[String; 8]) -> Result<RunFields> {
        let [t, c, s, kv, i, o, pt, mi] = texts;
        Ok(RunFields {
            tags: serde_json::from_str(t)?,
            config: serde_json::from_str(c)?,
            summary: serde_json::from_str(s)?,
            kv_tags: serde_json::from_str(kv)?,
            inputs: serde_json::from_str(i)?,
            outputs: serde_json::from_str(o)?,
            param_text: serde_json::from_str(pt)?,
            model_inputs: serde_json::from_str(mi)?,
        })
    }

    /// The texts to store, in [`RUN_FIELD_COLUMNS`] order.
    pub(crate) fn encode(&self) -> Result<[String; 8]> {
        Ok([
            serde_json::to_string(&self.tags)?,
            serde_json::to_string(&self.config)?,
            serde_json::to_string(&self.summary)?,
            serde_json::to_string(&self.kv_tags)?,
            serde_json::to_string(&self.inputs)?,
            serde_json::to_string(&self.outputs)?,
            serde_json::to_string(&self.param_text)?,
            serde_json::to_string(&self.model_inputs)?,
        ])
    }

    /// Applies `patch`'s changes to these fields, or refuses the whole patch
    /// (a param changed, a tag that is not there removed, a bad key).
    pub(crate) fn apply(&mut self, patch: &RunPatch) -> Result<()> {
        for tag in &patch.add_tags {
            validate_tag(tag)?;
            if !self.tags.contains(tag) {
                self.tags.push(tag.clone());
            }
        }
        self.tags.retain(|t| !patch.remove_tags.contains(t));
        if let Some(update) = &patch.config {
            for (key, value) in update {
                self.param_text.remove(key);
                self.config.insert(key.clone(), value.clone());
            }
        }
        if let Some(params) = &patch.params {
            for (key, value) in params {
                labbook_core::config::validate_key("param", key)?;
                // Params are text to MLflow: `5e-05` then `0.00005` is a change.
                let sent = patch
                    .param_text
                    .get(key)
                    .cloned()
                    .unwrap_or_else(|| value.display());
                if let Some(old) = self.config.get(key) {
                    let held = self
                        .param_text
                        .get(key)
                        .cloned()
                        .unwrap_or_else(|| old.display());
                    if held != sent {
                        return Err(labbook_core::ValidationError::new(
                            format!("param {}", labbook_core::config::truncate_for_message(key)),
                            format!(
                                "was logged as {held:?}; params cannot change (tried {sent:?})"
                            ),
                        )
                        .into());
                    }
                }
                self.config.insert(key.clone(), value.clone());
                match patch.param_text.get(key) {
                    Some(text) => self.param_text.insert(key.clone(), text.clone()),
                    None => self.param_text.remove(key),
                };
            }
        }
        for (key, value) in &patch.summary {
            labbook_core::config::validate_key("summary", key)?;
            if value.is_null() {
                self.summary.remove(key);
            } else {
                self.summary.insert(key.clone(), value.clone());
            }
        }
        for (key, value) in &patch.set_kv_tags {
            labbook_core::config::validate_key("tag", key)?;
            self.kv_tags.insert(key.clone(), value.clone());
        }
        for key in &patch.remove_kv_tags {
            if self.kv_tags.remove(key).is_none() {
                return Err(StoreError::NotFound {
                    what: "tag",
                    id: key.clone(),
                });
            }
        }
        for input in &patch.add_inputs {
            input.validate()?;
            if !self.inputs.iter().any(|i| i.same_use(input)) {
                self.inputs.push(input.clone());
            }
        }
        for model_id in &patch.add_model_inputs {
            if !self.model_inputs.contains(model_id) {
                self.model_inputs.push(model_id.clone());
            }
        }
        for output in &patch.add_outputs {
            if !self.outputs.contains(output) {
                self.outputs.push(output.clone());
            }
        }
        if let Some(name) = &patch.name {
            validate_name("name", name)?;
        }
        if let Some(group) = &patch.group {
            validate_name("group", group)?;
        }
        Ok(())
    }
}

/// A run's stored environment (`existing`, JSON text) with `update`'s
/// top-level keys written over it.
pub(crate) fn merged_environment(
    existing: Option<&str>,
    update: &serde_json::Value,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut merged = match existing
        .map(serde_json::from_str::<serde_json::Value>)
        .transpose()?
    {
        Some(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    match update {
        serde_json::Value::Object(update) => merged.extend(update.clone()),
        other => {
            return Err(labbook_core::ValidationError::new(
                "environment",
                format!("must be an object, not {other}"),
            )
            .into());
        }
    }
    Ok(merged)
}

/// The checks a note on a run passes.
pub(crate) fn check_run_note(text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(labbook_core::ValidationError::new("note", "must not be empty").into());
    }
    Ok(())
}

/// The checks a note in a project's notebook passes.
pub(crate) fn check_project_note(text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(labbook_core::ValidationError::new("text", "a note must not be empty").into());
    }
    if text.len() > 1 << 20 {
        return Err(
            labbook_core::ValidationError::new("text", "a note is limited to 1 MiB").into(),
        );
    }
    Ok(())
}

/// A project's tags (`stored`, JSON text) as `patch` leaves them.
pub(crate) fn patched_project_tags(
    stored: &str,
    patch: &crate::types::ProjectPatch,
) -> Result<BTreeMap<String, String>> {
    let mut tags: BTreeMap<String, String> = serde_json::from_str(stored)?;
    for (k, v) in &patch.set_tags {
        labbook_core::config::validate_key("tag", k)?;
        tags.insert(k.clone(), v.clone());
    }
    for k in &patch.remove_tags {
        if tags.remove(k).is_none() {
            return Err(StoreError::NotFound {
                what: "tag",
                id: k.clone(),
            });
        }
    }
    Ok(tags)
}
