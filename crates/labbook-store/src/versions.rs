//! The values of versioned artifacts (issue 11) that cross the store's
//! API: what to log, what a version is, its lineage and what a garbage
//! collection did.

use std::path::PathBuf;

use serde::Serialize;

/// Where a version's files come from.
#[derive(Debug, Clone)]
pub enum VersionSource {
    /// One file, stored at `name` inside the artifact.
    File { path: PathBuf, name: String },
    /// Every file under a folder, stored under `prefix` ("" for the
    /// artifact's root, as W&B's `add_dir` does).
    Dir { path: PathBuf, prefix: String },
    /// A file or folder that stays where it is (`file://` only for now):
    /// hashed and recorded, not copied. `name` is where it sits inside the
    /// artifact ("" puts a folder's files at the root).
    Reference { uri: String, name: String },
}

/// The local path a reference names: a `file://` URI's (percent escapes
/// decoded, `localhost` allowed) or a plain path; `None` for a relative
/// `file://` URI or another scheme.
pub fn reference_path(uri: &str) -> Option<PathBuf> {
    match uri.split_once("://") {
        Some(("file", rest)) => {
            let path = rest.strip_prefix("localhost").unwrap_or(rest);
            path.starts_with('/')
                .then(|| PathBuf::from(percent_decode(path)))
        }
        Some(_) => None,
        None => Some(PathBuf::from(uri)),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How a download places a version's stored files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    /// Read-only hard links to the blobs where the filesystem allows
    /// (no bytes copied), else copies.
    #[default]
    Link,
    /// Copies the owner may edit.
    Copy,
}

/// A version to log.
#[derive(Debug, Clone, Default)]
pub struct NewArtifactVersion {
    pub project: String,
    pub name: String,
    pub kind: String,
    pub description: Option<String>,
    /// A JSON object, kept beside the version (not in its digest).
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub sources: Vec<VersionSource>,
    /// Aliases to point at the version (`latest` always is).
    pub aliases: Vec<String>,
    /// The run that produced (or, with `run_role` input, used) it: an
    /// edge in the lineage.
    pub run_id: Option<String>,
    pub run_role: EdgeRole,
    /// Record the files where they are instead of copying them.
    pub in_place: bool,
    pub now_ms: i64,
}

impl NewArtifactVersion {
    /// A run's code snapshot: `files` as (where it is, its path in the
    /// snapshot), a version of the project's `code` artifact that the run
    /// used, so two runs with the same files share one version and a
    /// changed file adds only its own bytes.
    pub fn code_snapshot(
        project: &str,
        run_id: &str,
        files: impl IntoIterator<Item = (PathBuf, String)>,
        now_ms: i64,
    ) -> NewArtifactVersion {
        use labbook_core::artifact_version::CODE_ARTIFACT;
        NewArtifactVersion {
            project: project.to_owned(),
            name: CODE_ARTIFACT.to_owned(),
            kind: CODE_ARTIFACT.to_owned(),
            sources: files
                .into_iter()
                .map(|(path, name)| VersionSource::File { path, name })
                .collect(),
            run_id: Some(run_id.to_owned()),
            run_role: EdgeRole::Input,
            now_ms,
            ..NewArtifactVersion::default()
        }
    }
}

/// Logs a run's code snapshot (`files` as in
/// [`NewArtifactVersion::code_snapshot`]); `None` when there are no files.
pub fn log_code_snapshot(
    store: &dyn crate::Store,
    project: &str,
    run_id: &str,
    files: Vec<(PathBuf, String)>,
    now_ms: i64,
) -> crate::Result<Option<ArtifactVersion>> {
    if files.is_empty() {
        return Ok(None);
    }
    let new = NewArtifactVersion::code_snapshot(project, run_id, files, now_ms);
    Ok(Some(store.log_artifact_version(&new)?.version))
}

/// One version of a named artifact.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArtifactVersion {
    #[serde(skip)]
    pub id: i64,
    pub project: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
    pub digest: String,
    pub size: u64,
    pub files: u64,
    pub metadata: serde_json::Value,
    pub description: Option<String>,
    pub aliases: Vec<String>,
    pub created_ms: i64,
    pub deleted_ms: Option<i64>,
    /// Soft-deleted and its contents freed by `gc`: only its record stays.
    pub purged: bool,
    /// The first run that logged it, if a run did.
    pub producer: Option<String>,
}

impl ArtifactVersion {
    /// `name:v3`.
    pub fn reference(&self) -> String {
        format!("{}:v{}", self.name, self.version)
    }
}

/// What logging a version did.
#[derive(Debug, Clone)]
pub struct LoggedVersion {
    pub version: ArtifactVersion,
    /// False when a live version with the same contents already existed:
    /// that one is returned and nothing new was stored.
    pub created: bool,
    /// Bytes of contents the store did not hold before.
    pub bytes_stored: u64,
    /// Files whose hash came from the hash cache, unread.
    pub cached_files: u64,
    /// Whether the run's link to the version is new (the first time this
    /// run logged or used these contents).
    pub new_edge: bool,
}

/// A named artifact and its versions, for listings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArtifactName {
    pub project: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Live (not deleted) versions.
    pub versions: u64,
    pub latest: Option<u64>,
    pub latest_size: u64,
    pub aliases: Vec<(String, u64)>,
    pub updated_ms: i64,
}

/// How a run touched a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeRole {
    /// The run used (read) the version.
    Input,
    /// The run logged (produced) the version.
    #[default]
    Output,
}

impl EdgeRole {
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeRole::Input => "input",
            EdgeRole::Output => "output",
        }
    }
}

/// A run's link to a version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunArtifactEdge {
    pub run_id: String,
    pub role: EdgeRole,
    pub created_ms: i64,
}

/// A file of a reference version that no longer matches what was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangedFile {
    pub path: String,
    pub location: String,
    /// `changed` or `missing`.
    pub state: &'static str,
}

/// Where a lineage walk starts.
#[derive(Debug, Clone)]
pub enum LineageStart {
    Version(i64),
    Run(String),
}

/// A node of the lineage graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LineageNode {
    Artifact {
        id: String,
        project: String,
        name: String,
        version: u64,
        #[serde(rename = "type")]
        artifact_type: String,
        digest: String,
        deleted: bool,
    },
    Run {
        id: String,
        name: String,
        project: String,
        status: String,
    },
}

impl LineageNode {
    pub fn id(&self) -> &str {
        match self {
            LineageNode::Artifact { id, .. } | LineageNode::Run { id, .. } => id,
        }
    }
}

/// An edge of the lineage graph: `from` feeds `to` (an artifact a run
/// used, or a run that produced an artifact).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineageEdge {
    pub from: String,
    pub to: String,
}

/// The graph around a start, up to a depth each way.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LineageGraph {
    pub root: String,
    pub nodes: Vec<LineageNode>,
    pub edges: Vec<LineageEdge>,
    /// True when the depth limit cut the walk short.
    pub truncated: bool,
}

/// What a garbage collection freed (or, dry, would free).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    /// Soft-deleted versions whose contents were released.
    pub versions_purged: Vec<String>,
    /// Blobs no live version, run file or MLflow artifact references.
    pub blobs: Vec<FreedBlob>,
    pub bytes: u64,
    /// Temporary files left by writers that died, older than a day.
    pub stale_temp_files: u64,
    /// Blobs on disk, before.
    pub blobs_scanned: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FreedBlob {
    pub hash: String,
    pub size: u64,
}
