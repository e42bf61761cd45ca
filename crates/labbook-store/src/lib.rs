//! labbook's storage. The [`Store`] trait is what every other crate sees;
//! [`SqliteStore`] is the embedded default. The metric series engine
//! ([`series`], [`codec`]) is independent of the backend, so PostgreSQL can
//! store the same chunks later.

pub mod appender;
mod blobs;
mod chunk_read;
pub mod codec;
pub mod content_hash;
mod error;
pub mod locate;
pub mod models;
#[cfg(feature = "postgres")]
mod postgres;
pub mod private;
pub mod report;
mod run_fields;
mod run_select;
pub mod series;
pub mod session;
pub mod sketch;
mod sqlite;
mod studies;
pub mod sweeps;
mod types;
mod versioning;
pub mod versions;
pub mod writer;

pub use blobs::ArtifactLocation;
pub use error::{Result, StoreError};
#[cfg(feature = "postgres")]
pub use postgres::{PgStore, is_postgres_url};
pub use sqlite::{BackupReport, DB_FILE, SqliteStore};
pub use studies::*;
pub use types::*;

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use labbook_core::account::{Permission, ResourceKind, Role, TokenInfo, User};
use labbook_core::{RunRecord, SeriesColumns};

use crate::versions::*;

/// Everything labbook persists. Implementations are safe to share between
/// threads; the SQLite one is also safe across processes.
pub trait Store: Send + Sync {
    /// Creates a run (and its project on first use).
    fn create_run(&self, new: &NewRun) -> Result<RunRecord>;
    /// A run by exact id.
    fn get_run(&self, id: &str) -> Result<RunRecord>;
    /// A run by id, unique id prefix (4+ characters) or unique name.
    fn resolve_run(&self, reference: &str, project: Option<&str>) -> Result<RunRecord>;
    fn update_run(&self, id: &str, patch: &RunPatch) -> Result<()>;
    /// Calls `visit` with every run that matches the query's project,
    /// deletion and filter, sorted, before `offset`/`limit` are applied, so
    /// callers can page, count and aggregate without copying runs.
    fn visit_runs(&self, query: &RunQuery, visit: &mut dyn FnMut(&[&RunRecord])) -> Result<()>;
    /// The query's page of runs and how many matched in all.
    fn list_runs_counted(&self, query: &RunQuery) -> Result<(Vec<RunRecord>, usize)> {
        let mut out = (Vec::new(), 0);
        self.visit_runs(query, &mut |runs| {
            let page = runs.iter().skip(query.offset);
            out.0 = match query.limit {
                Some(limit) => page.take(limit).map(|r| (*r).clone()).collect(),
                None => page.map(|r| (*r).clone()).collect(),
            };
            out.1 = runs.len();
        })?;
        Ok(out)
    }
    /// An error if this store can be read but not written, so that work
    /// that will write fails before it starts, not at its first write.
    fn check_writable(&self) -> Result<()> {
        Ok(())
    }
    /// The config, metric and summary keys of a project's live runs.
    fn key_catalog(&self, project: &str) -> Result<KeyCatalog> {
        let query = RunQuery {
            project: Some(project.to_string()),
            ..Default::default()
        };
        let mut catalog = KeyCatalog::default();
        self.visit_runs(&query, &mut |runs| {
            catalog = KeyCatalog::of_runs(runs.iter().copied());
        })?;
        Ok(catalog)
    }
    fn list_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>> {
        Ok(self.list_runs_counted(query)?.0)
    }
    /// The current change sequence and the runs changed after `seq` (a
    /// live view polls this; a negative `seq` returns every run).
    fn changes_since(&self, seq: i64) -> Result<(i64, Vec<RunRecord>)>;
    /// Every project, deleted ones included (`ProjectInfo::is_listed` says
    /// which a person's listing shows), most recently active first.
    fn list_projects(&self) -> Result<Vec<ProjectInfo>>;
    /// Creates an empty project; a name in use is a conflict.
    fn create_project(&self, new: &NewProject) -> Result<Project>;
    fn project(&self, reference: ProjectRef<'_>) -> Result<Project>;
    fn update_project(&self, id: i64, patch: &ProjectPatch) -> Result<()>;
    /// Soft delete: hidden from listings until restored.
    fn delete_run(&self, id: &str, now_ms: i64) -> Result<()>;
    fn restore_run(&self, id: &str) -> Result<()>;
    /// Deletes a run for good: its record, metrics, output and notes. Its
    /// files are the caller's to delete first (where they are depends on
    /// the artifact layout); the artifact versions it produced or used
    /// stay, their lineage naming a run that is gone.
    fn purge_run(&self, id: &str) -> Result<()>;

    /// Applies one writer's flush atomically: chunk inserts and deletes,
    /// summaries, output, run changes and heartbeat. Returns the ids of
    /// the inserted chunks in order. A write set whose `batch_id` was applied
    /// before is skipped and returns `None`.
    fn commit(&self, write: &WriteSet) -> Result<Option<Vec<i64>>>;

    /// Points of one series, sorted by step, optionally within a step range.
    fn read_series(&self, run_id: &str, key: &str, range: StepRange) -> Result<SeriesColumns>;
    /// At most ~4 × `buckets` points that keep every bucket's extremes (all
    /// points when the range holds no more than `buckets`), and how many
    /// points the range holds.
    /// Without `timestamps` the wall times are not decoded and come back 0.
    fn downsample(
        &self,
        run_id: &str,
        key: &str,
        range: StepRange,
        buckets: usize,
        timestamps: bool,
    ) -> Result<(SeriesColumns, usize)>;
    /// The metric keys of a run with their point counts.
    fn series_keys(&self, run_id: &str) -> Result<Vec<(String, u64)>>;
    /// Rewrites tails left by writers that are gone into sealed chunks.
    /// Only for runs whose writers have all stopped.
    fn compact_run(&self, run_id: &str) -> Result<()>;

    /// Merges the top-level keys of `env` into the run's stored environment
    /// (the `labbook run` wrapper and the SDK inside it each add what they see).
    fn set_environment(&self, run_id: &str, env: &serde_json::Value) -> Result<()>;
    fn environment(&self, run_id: &str) -> Result<Option<serde_json::Value>>;
    fn read_output(&self, run_id: &str) -> Result<Vec<OutputChunk>>;
    fn add_note(&self, run_id: &str, text: &str, now_ms: i64) -> Result<()>;
    fn notes(&self, run_id: &str) -> Result<Vec<NoteEntry>>;
    /// A project's notebook: notes written for the project and for its
    /// runs, newest first.
    fn project_notes(&self, project: &str) -> Result<Vec<NotebookNote>>;
    fn add_project_note(
        &self,
        project: &str,
        text: &str,
        run_id: Option<&str>,
        now_ms: i64,
    ) -> Result<NotebookNote>;

    /// Stores a file at `path` (relative, see
    /// `labbook_core::artifact::normalize_artifact_path`), replacing one
    /// already there. Contents are kept once per distinct content hash.
    fn put_artifact(
        &self,
        path: &str,
        data: &mut dyn std::io::Read,
        now_ms: i64,
    ) -> Result<ArtifactEntry>;
    /// A file's contents and size.
    fn open_artifact(&self, path: &str) -> Result<(Box<dyn std::io::Read + Send>, u64)>;
    /// The files and folders directly inside `dir` ("" is the root), by path.
    fn list_artifacts(&self, dir: &str) -> Result<Vec<ArtifactEntry>>;
    /// Deletes a file, or a folder with everything in it; returns how many
    /// files went. The root ("", or any path that normalizes to it) is
    /// refused: no one request empties the whole store.
    fn delete_artifacts(&self, path: &str) -> Result<u64>;
    /// Bytes free for artifacts on the filesystem that holds them (`None`
    /// where that cannot be told), so uploads can keep a reserve.
    fn artifact_space_available(&self) -> Option<u64>;
    /// Where the store keeps its artifacts' contents.
    fn artifact_location(&self) -> ArtifactLocation;
    /// Keeps artifact contents at `location` from now on, recorded so every
    /// later opening finds them; refused when contents already live
    /// elsewhere.
    fn use_artifact_location(&self, location: &ArtifactLocation) -> Result<()>;

    /// A JSON document (a registered model, a logged model, …) by kind and key.
    fn document(&self, kind: &str, key: &str) -> Result<Option<serde_json::Value>>;
    /// Every document of a kind, by key.
    fn documents(&self, kind: &str) -> Result<Vec<(String, serde_json::Value)>>;
    /// Reads, changes and writes one document in one transaction: `update`
    /// gets the current document and returns the new one (`None` deletes).
    /// An error from `update` changes nothing.
    fn update_document(
        &self,
        kind: &str,
        key: &str,
        update: &mut dyn FnMut(Option<serde_json::Value>) -> Result<Option<serde_json::Value>>,
    ) -> Result<Option<serde_json::Value>>;

    // Versioned artifacts (issue 11).
    /// Records a version from files the store holds already, or from none
    /// (`digest` then names it): how MLflow's datasets and logged models
    /// join the lineage.
    fn record_artifact_version(
        &self,
        new: &NewArtifactVersion,
        entries: Vec<labbook_core::artifact_version::ManifestEntry>,
        digest: Option<String>,
    ) -> Result<ArtifactVersion>;
    /// The plain artifact files under `dir`, with their hashes.
    fn artifact_files_under(
        &self,
        dir: &str,
    ) -> Result<Vec<labbook_core::artifact_version::ManifestEntry>>;
    /// Shows a version's stored files as plain artifact files under `prefix`.
    fn link_version_files(&self, version_id: i64, prefix: &str, now_ms: i64) -> Result<()>;
    /// Logs a version of an artifact: hashes and stores its files (see `sqlite/versions.rs`); the same contents again under a name give back the live version that has them.
    fn log_artifact_version(&self, new: &NewArtifactVersion) -> Result<LoggedVersion>;
    /// The version `name:v3`, `name:alias` or `name` names (without a project, the name must be in one project).
    fn resolve_artifact(&self, project: Option<&str>, reference: &str) -> Result<ArtifactVersion>;
    fn artifact_version_by_id(&self, id: i64) -> Result<ArtifactVersion>;
    /// Named artifacts, optionally of one project and type.
    fn artifact_names(
        &self,
        project: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<ArtifactName>>;
    /// Every version of a name, newest first, deleted ones included.
    fn artifact_versions(&self, project: &str, name: &str) -> Result<Vec<ArtifactVersion>>;
    fn artifact_manifest(
        &self,
        version_id: i64,
    ) -> Result<labbook_core::artifact_version::Manifest>;
    /// The runs that produced and used a version.
    fn artifact_edges(&self, version_id: i64) -> Result<Vec<RunArtifactEdge>>;
    /// The versions a run used and produced.
    fn run_artifact_versions(&self, run_id: &str) -> Result<Vec<(ArtifactVersion, EdgeRole)>>;
    fn use_artifact_version(&self, run_id: &str, version_id: i64, now_ms: i64) -> Result<()>;
    fn set_artifact_alias(&self, version_id: i64, alias: &str) -> Result<()>;
    fn remove_artifact_alias(&self, version: &ArtifactVersion, alias: &str) -> Result<bool>;
    /// Soft delete; `gc` frees the contents later.
    fn delete_artifact_version(&self, version_id: i64, now_ms: i64) -> Result<()>;
    fn download_artifact_version(
        &self,
        version: &ArtifactVersion,
        dest: &std::path::Path,
        placement: crate::versions::Placement,
    ) -> Result<()>;
    fn verify_artifact_references(&self, version: &ArtifactVersion) -> Result<Vec<ChangedFile>>;
    fn lineage(&self, start: &LineageStart) -> Result<LineageGraph>;
    /// Frees contents nothing live references (see `sqlite/versions.rs`).
    fn gc(&self, dry_run: bool, now_ms: i64) -> Result<GcReport>;

    /// Marks running runs whose process is gone as crashed and compacts
    /// them; returns their ids.
    // Hyperparameter searches (issue 13).
    /// Creates a study, or with `resume` gives back the one of that name
    /// (refused when its kind or directions differ). The flag says whether
    /// it was created.
    fn create_study(&self, new: &NewStudy, resume: bool) -> Result<(StudyRecord, bool)>;
    /// A study by id, unique id prefix, or name (in `project` if given).
    fn study(&self, reference: &str, project: Option<&str>) -> Result<StudyRecord>;
    fn study_by_pk(&self, pk: i64) -> Result<StudyRecord>;
    fn list_studies(&self, project: Option<&str>) -> Result<Vec<StudyRecord>>;
    fn update_study(&self, pk: i64, patch: &StudyPatch) -> Result<StudyRecord>;
    fn delete_study(&self, pk: i64, now_ms: i64) -> Result<()>;
    /// A study's trials by number.
    fn trials(&self, study: i64) -> Result<Vec<std::sync::Arc<TrialRecord>>>;
    fn trial(&self, trial_id: i64) -> Result<TrialRecord>;
    /// A study's waiting trials (enqueued, not yet claimed) by number.
    fn waiting_trials(&self, study: i64) -> Result<Vec<std::sync::Arc<TrialRecord>>> {
        let mut trials = self.trials(study)?;
        trials.retain(|t| t.state() == labbook_search::TrialState::Waiting);
        Ok(trials)
    }
    /// In one write transaction: marks crashed the running trials `alive`
    /// says are dead, then asks `decide` (given the study and its trials)
    /// what to do and records the trial it asks for. Two workers never see
    /// the same trials and both claim.
    fn claim_trial(
        &self,
        study: i64,
        worker: &Worker,
        now_ms: i64,
        alive: &dyn Fn(&TrialRecord) -> bool,
        decide: &mut Decide<'_>,
    ) -> Result<Claimed>;
    /// Changes a trial; `Ok(false)` when `only_if` did not hold (or a
    /// heartbeat reached a finished trial). A finished trial refuses any
    /// other change.
    fn update_trial(&self, trial_id: i64, patch: &TrialPatch) -> Result<bool>;

    fn reap_stale_runs(
        &self,
        now_ms: i64,
        this_host: Option<&str>,
        pid_alive: &dyn Fn(u32) -> bool,
    ) -> Result<Vec<String>>;

    // Accounts (a team server's users and API tokens). The store holds
    // what verifies a secret, never the secret: `password_hash` is an
    // Argon2 PHC string, a token's `digest` its BLAKE3 hex.
    fn create_user(&self, name: &str, password_hash: &str, now_ms: i64) -> Result<User>;
    fn set_password(&self, name: &str, password_hash: &str) -> Result<()>;
    fn users(&self) -> Result<Vec<User>>;
    /// Removes the user and every token of theirs.
    fn delete_user(&self, name: &str) -> Result<()>;
    /// The user and their password's hash, for signing in.
    fn password_hash(&self, name: &str) -> Result<Option<(User, String)>>;
    /// A token that stops working at `expires_ms` (a dashboard session) or
    /// when revoked. Expired ones are deleted as new ones are made.
    fn create_token(
        &self,
        user: &str,
        name: &str,
        digest: &str,
        now_ms: i64,
        expires_ms: Option<i64>,
    ) -> Result<TokenInfo>;
    fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>>;
    /// Revokes a token (again is no change) and answers it as it now is.
    fn revoke_token(&self, id: i64, now_ms: i64) -> Result<TokenInfo>;
    /// Revokes the token with this digest (a dashboard session signing
    /// out); whether there was a live one.
    fn revoke_token_digest(&self, digest: &str, now_ms: i64) -> Result<bool>;
    /// The owner of the live (unrevoked, unexpired) token with this digest.
    fn user_of_token(&self, digest: &str, now_ms: i64) -> Result<Option<User>>;
    fn set_admin(&self, name: &str, admin: bool) -> Result<()>;
    /// Wrong passwords kept in the store, for a store several servers share
    /// (a team database): each `guesser` (a user name or a client address,
    /// as the server names them) with its count and the start of its
    /// window, for windows begun after `since_ms`. `None` where one process
    /// serves the store and counts in its own memory.
    fn signin_failures(
        &self,
        _guessers: &[String],
        _since_ms: i64,
    ) -> Result<Option<Vec<SigninFailures>>> {
        Ok(None)
    }
    /// Counts a wrong password against each guesser, in a window begun after
    /// `now_ms - window_ms` or a new one from `now_ms`.
    fn record_signin_failure(
        &self,
        _guessers: &[String],
        _now_ms: i64,
        _window_ms: i64,
    ) -> Result<()> {
        Ok(())
    }
    /// Forgets a guesser's wrong passwords (its right one came).
    fn forget_signin_failures(&self, _guesser: &str) -> Result<()> {
        Ok(())
    }
    /// Gives a user a role on a project or registered model, replacing the
    /// one they had there.
    fn set_permission(
        &self,
        user: &str,
        kind: ResourceKind,
        resource: &str,
        role: Role,
    ) -> Result<Permission>;
    /// Takes a user's own role there away (the server's default applies).
    fn remove_permission(&self, user: &str, kind: ResourceKind, resource: &str) -> Result<()>;
    /// Every permission given, or one user's.
    fn permissions(&self, user: Option<&str>) -> Result<Vec<Permission>>;
    /// Moves every role on a resource to a new name (a renamed model), or
    /// drops them (`to: None`, a deleted one), so a later one of the old
    /// name starts with none.
    fn move_permissions(&self, kind: ResourceKind, from: &str, to: Option<&str>) -> Result<()>;
}

/// 64 bits that differ between calls, processes and machines (ids, temp
/// names); not for secrets.
pub fn random_bits() -> u64 {
    // RandomState is seeded from the OS once per process and differs per
    // instance; the counter and clock separate calls within a process.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// The shortest id prefix that names a run: shorter ones would match run
/// names (and each other) too often.
pub const MIN_ID_PREFIX: usize = 4;

thread_local! {
    static LOCK_RETRIES: Cell<u64> = const { Cell::new(0) };
}

/// How many times this thread found the store's write lock held (another
/// process or connection writing: SQLITE_BUSY) and waited to try again, since
/// the thread started. Writers take the difference around a write to report
/// the contention their run met; a waited-out lock is not an error.
pub fn lock_retries_on_this_thread() -> u64 {
    LOCK_RETRIES.with(Cell::get)
}

pub(crate) fn count_lock_retry() {
    LOCK_RETRIES.with(|n| n.set(n.get().saturating_add(1)));
}

/// The environment variable that shortens the heartbeat timeout, in seconds.
/// Meant for tests that watch a suspended process get reaped without waiting
/// a minute; set below the writers' idle heartbeat (10 s) it would call idle
/// runs crashed.
pub const HEARTBEAT_TIMEOUT_ENV: &str = "LABBOOK_HEARTBEAT_TIMEOUT";

/// How long a running run may go without a heartbeat before readers reap it
/// as crashed: [`labbook_core::run::HEARTBEAT_TIMEOUT_MS`] (60 s) unless
/// [`HEARTBEAT_TIMEOUT_ENV`] holds a positive number of seconds. Read on
/// every call, so a process sees the value its environment has now.
pub fn heartbeat_timeout_ms() -> i64 {
    std::env::var(HEARTBEAT_TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(labbook_core::run::HEARTBEAT_TIMEOUT_MS, |s| {
            (s * 1000.0).min(i64::MAX as f64) as i64
        })
}
