//! Typed access to the document kinds the store keeps: logged models and
//! registered models (with their versions). The registry's rules live in
//! `labbook_core::model`; this module only loads and saves atomically.

use labbook_core::model::{LoggedModel, RegisteredModel};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Result, Store, StoreError};

pub const LOGGED_MODEL: &str = "logged_model";
pub const REGISTERED_MODEL: &str = "registered_model";

fn decode<T: DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    serde_json::from_value(value).map_err(StoreError::from)
}

pub fn get<T: DeserializeOwned>(store: &dyn Store, kind: &str, key: &str) -> Result<Option<T>> {
    store.document(kind, key)?.map(decode).transpose()
}

pub fn list<T: DeserializeOwned>(store: &dyn Store, kind: &str) -> Result<Vec<T>> {
    store
        .documents(kind)?
        .into_iter()
        .map(|(_, v)| decode(v))
        .collect()
}

/// Runs `change` on the document in one transaction; the document it leaves
/// in the `Option` is saved (`None` deletes it). Returns what `change` returns.
pub fn update<T, R>(
    store: &dyn Store,
    kind: &str,
    key: &str,
    change: impl FnOnce(&mut Option<T>) -> Result<R>,
) -> Result<R>
where
    T: Serialize + DeserializeOwned,
{
    let mut change = Some(change);
    let mut out = None;
    store.update_document(kind, key, &mut |current| {
        let mut doc: Option<T> = current.map(decode).transpose()?;
        let f = change
            .take()
            .ok_or_else(|| StoreError::Internal("document update ran twice".into()))?;
        out = Some(f(&mut doc)?);
        doc.map(|d| serde_json::to_value(d).map_err(StoreError::from))
            .transpose()
    })?;
    out.ok_or_else(|| StoreError::Internal("document update did not run".into()))
}

pub fn logged_model(store: &dyn Store, id: &str) -> Result<LoggedModel> {
    get(store, LOGGED_MODEL, id)?.ok_or_else(|| StoreError::NotFound {
        what: "logged model",
        id: id.to_string(),
    })
}

pub fn registered_model(store: &dyn Store, name: &str) -> Result<RegisteredModel> {
    get(store, REGISTERED_MODEL, name)?.ok_or_else(|| StoreError::NotFound {
        what: "registered model",
        id: name.to_string(),
    })
}

/// Changes an existing registered model; a missing one is not found.
pub fn update_registered_model<R>(
    store: &dyn Store,
    name: &str,
    change: impl FnOnce(&mut RegisteredModel) -> Result<R>,
) -> Result<R> {
    update(
        store,
        REGISTERED_MODEL,
        name,
        |doc: &mut Option<RegisteredModel>| {
            let model = doc.as_mut().ok_or_else(|| StoreError::NotFound {
                what: "registered model",
                id: name.to_string(),
            })?;
            change(model)
        },
    )
}

/// Changes an existing logged model; a missing one is not found.
pub fn update_logged_model<R>(
    store: &dyn Store,
    id: &str,
    change: impl FnOnce(&mut LoggedModel) -> Result<R>,
) -> Result<R> {
    update(store, LOGGED_MODEL, id, |doc: &mut Option<LoggedModel>| {
        let model = doc.as_mut().ok_or_else(|| StoreError::NotFound {
            what: "logged model",
            id: id.to_string(),
        })?;
        change(model)
    })
}
