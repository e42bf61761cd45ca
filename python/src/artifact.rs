//! `labbook.Artifact` (a version being assembled) and
//! `labbook.ArtifactVersion` (a logged version), the Python face of the
//! store's versioned artifacts. Hashing, storing, dedup and lineage are all
//! in `labbook_store`; this file only converts arguments and results.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use labbook_core::ConfigValue;
use labbook_core::artifact::normalize_artifact_path;
use labbook_core::artifact_version::{validate_artifact_name, validate_artifact_type};
use labbook_store::SqliteStore;
use labbook_store::versions::{ArtifactVersion, EdgeRole, Placement, VersionSource};

use crate::convert::{json_to_py, to_config_tree};
use crate::to_py_err;

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// The `name=` of an added file or folder: a path inside the artifact.
fn inside_name(name: Option<&str>) -> PyResult<String> {
    normalize_artifact_path(name.unwrap_or("")).map_err(value_error)
}

/// Python metadata (a dict of JSON-like values, numpy scalars included) as
/// a JSON object.
pub fn metadata_object(
    metadata: Option<&Bound<'_, PyAny>>,
) -> PyResult<serde_json::Map<String, serde_json::Value>> {
    let Some(obj) = metadata else {
        return Ok(serde_json::Map::new());
    };
    let tree = to_config_tree(obj)?;
    match serde_json::to_value(ConfigValue::Object(tree)) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Ok(serde_json::Map::new()),
        Err(e) => Err(value_error(format!("metadata: {e}"))),
    }
}

/// A version being assembled: files, folders and references, with a name,
/// a type and metadata. Nothing is read until it is logged.
#[pyclass(module = "labbook._native")]
pub struct Artifact {
    #[pyo3(get)]
    name: String,
    #[pyo3(get, name = "type")]
    kind: String,
    #[pyo3(get, set)]
    description: Option<String>,
    pub(crate) metadata: serde_json::Map<String, serde_json::Value>,
    pub(crate) sources: Vec<VersionSource>,
}

impl Artifact {
    pub(crate) fn new_version(
        &self,
        project: &str,
        aliases: Vec<String>,
        run_id: Option<String>,
    ) -> labbook_store::versions::NewArtifactVersion {
        labbook_store::versions::NewArtifactVersion {
            project: project.to_string(),
            name: self.name.clone(),
            kind: self.kind.clone(),
            description: self.description.clone(),
            metadata: self.metadata.clone(),
            sources: self.sources.clone(),
            aliases,
            run_id,
            run_role: labbook_store::versions::EdgeRole::Output,
            in_place: false,
            now_ms: crate::now_ms(),
        }
    }
}

impl Artifact {
    pub(crate) fn py_new(name: String, kind: &str) -> PyResult<Self> {
        validate_artifact_name(&name).map_err(value_error)?;
        validate_artifact_type(kind).map_err(value_error)?;
        Ok(Artifact {
            name,
            kind: kind.to_string(),
            description: None,
            metadata: serde_json::Map::new(),
            sources: Vec::new(),
        })
    }
}

#[pymethods]
impl Artifact {
    #[new]
    #[pyo3(signature = (name, r#type="dataset", description=None, metadata=None))]
    fn new(
        name: String,
        r#type: &str,
        description: Option<String>,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut artifact = Artifact::py_new(name, r#type)?;
        artifact.description = description;
        artifact.metadata = metadata_object(metadata)?;
        Ok(artifact)
    }

    /// The metadata, as a dict (a copy: set it with `artifact.metadata = …`).
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &serde_json::Value::Object(self.metadata.clone()))
    }

    #[setter(metadata)]
    fn set_metadata(&mut self, metadata: &Bound<'_, PyAny>) -> PyResult<()> {
        self.metadata = metadata_object(Some(metadata))?;
        Ok(())
    }

    /// Adds one file, at `name` inside the artifact (its own file name by
    /// default).
    #[pyo3(signature = (local_path, name=None))]
    fn add_file(&mut self, local_path: PathBuf, name: Option<&str>) -> PyResult<()> {
        if !local_path.is_file() {
            return Err(value_error(format!(
                "path: artifact {}: {} is not a file",
                self.name,
                local_path.display()
            )));
        }
        let name = inside_name(name)?;
        self.sources.push(VersionSource::File {
            path: local_path,
            name,
        });
        Ok(())
    }

    /// Adds every file under a folder, at the artifact's root, or under
    /// `name` when given.
    #[pyo3(signature = (local_path, name=None))]
    fn add_dir(&mut self, local_path: PathBuf, name: Option<&str>) -> PyResult<()> {
        if !local_path.is_dir() {
            return Err(value_error(format!(
                "path: artifact {}: {} is not a folder",
                self.name,
                local_path.display()
            )));
        }
        let prefix = inside_name(name)?;
        self.sources.push(VersionSource::Dir {
            path: local_path,
            prefix,
        });
        Ok(())
    }

    /// Records a file or folder that stays where it is (`file://` URIs or
    /// plain paths): its files' hashes and sizes, not their bytes.
    #[pyo3(signature = (uri, name=None))]
    fn add_reference(&mut self, uri: String, name: Option<&str>) -> PyResult<()> {
        let name = inside_name(name)?;
        let uri = if uri.contains("://") {
            uri
        } else {
            let abs = std::path::absolute(&uri).map_err(value_error)?;
            format!("file://{}", abs.display())
        };
        self.sources.push(VersionSource::Reference { uri, name });
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!(
            "<Artifact {} type={} sources={}>",
            self.name,
            self.kind,
            self.sources.len()
        )
    }
}

/// A logged version: immutable contents, moving aliases.
#[pyclass(frozen, module = "labbook._native")]
pub struct ArtifactVersionView {
    pub(crate) version: ArtifactVersion,
    pub(crate) store: Arc<SqliteStore>,
}

#[pymethods]
impl ArtifactVersionView {
    #[getter]
    fn name(&self) -> &str {
        &self.version.name
    }
    #[getter]
    fn project(&self) -> &str {
        &self.version.project
    }
    #[getter(r#type)]
    fn kind(&self) -> &str {
        &self.version.kind
    }
    /// `v3`.
    #[getter]
    fn version(&self) -> String {
        format!("v{}", self.version.version)
    }
    /// `name:v3`.
    #[getter]
    fn qualified_name(&self) -> String {
        self.version.reference()
    }
    #[getter]
    fn digest(&self) -> &str {
        &self.version.digest
    }
    #[getter]
    fn size(&self) -> u64 {
        self.version.size
    }
    /// The aliases pointing at it now (they move; the rest never changes).
    #[getter]
    fn aliases(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let now = py
            .detach(|| self.store.artifact_version_by_id(self.version.id))
            .map_err(to_py_err)?;
        Ok(now.aliases)
    }
    #[getter]
    fn description(&self) -> Option<String> {
        self.version.description.clone()
    }
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.version.metadata)
    }
    #[getter]
    fn created_ms(&self) -> i64 {
        self.version.created_ms
    }
    /// The run that first logged it.
    #[getter]
    fn producer(&self) -> Option<String> {
        self.version.producer.clone()
    }

    /// The files: dicts of path, size, hash and (for references) where
    /// the file is.
    fn files<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let manifest = py
            .detach(|| self.store.artifact_manifest(self.version.id))
            .map_err(to_py_err)?;
        let out = PyList::empty(py);
        for e in manifest.entries() {
            let d = PyDict::new(py);
            d.set_item("path", &e.path)?;
            d.set_item("size", e.size)?;
            d.set_item("hash", &e.hash)?;
            d.set_item("reference", &e.reference)?;
            out.append(d)?;
        }
        Ok(out)
    }

    /// The runs that produced (`output`) and used (`input`) it.
    fn runs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let edges = py
            .detach(|| self.store.artifact_edges(self.version.id))
            .map_err(to_py_err)?;
        let out = PyList::empty(py);
        for e in edges {
            let d = PyDict::new(py);
            d.set_item("run_id", &e.run_id)?;
            d.set_item(
                "role",
                match e.role {
                    EdgeRole::Input => "input",
                    EdgeRole::Output => "output",
                },
            )?;
            out.append(d)?;
        }
        Ok(out)
    }

    /// Lays the files out in a folder (`./artifacts/name:vN` by default):
    /// stored files hard-linked read-only from the store where possible.
    /// Returns the folder.
    #[pyo3(signature = (root=None))]
    fn download(&self, py: Python<'_>, root: Option<PathBuf>) -> PyResult<String> {
        let root = root.unwrap_or_else(|| {
            PathBuf::from("artifacts")
                .join(format!("{}:v{}", self.version.name, self.version.version))
        });
        py.detach(|| {
            self.store
                .download_artifact_version(&self.version, &root, Placement::Link)
        })
        .map_err(to_py_err)?;
        Ok(root.display().to_string())
    }

    /// Referenced files that no longer hash as they did when logged:
    /// dicts of path, location and state (`changed` or `missing`).
    fn verify<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let changed = py
            .detach(|| self.store.verify_artifact_references(&self.version))
            .map_err(to_py_err)?;
        let out = PyList::empty(py);
        for c in changed {
            let d = PyDict::new(py);
            d.set_item("path", &c.path)?;
            d.set_item("location", &c.location)?;
            d.set_item("state", c.state)?;
            out.append(d)?;
        }
        Ok(out)
    }

    fn __repr__(&self) -> String {
        format!(
            "<ArtifactVersion {} type={} digest={}…>",
            self.version.reference(),
            self.version.kind,
            self.version.digest.get(..12).unwrap_or_default()
        )
    }
}
