//! `labbook sync`: pushes runs from a local store to a labbook server, so a
//! run logged offline (a cluster node, a laptop on a train) reaches the
//! team's server whole: its config, summaries, tags and status, every
//! point of every series, its output, notes, environment and files.
//!
//! Each pass asks the server what it holds of a run and sends only the
//! rest, so a second sync sends nothing, a sync killed midway goes on
//! where it stopped, and a run still logging is sent as it grows. A
//! series on the server is a prefix of the local one (only sync writes a
//! synced run), so its point count says where to go on; each batch's id is
//! drawn from what it carries, so a batch repeated because its answer was
//! lost is skipped by the server rather than stored twice.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use labbook_core::config::config_from_json;
use labbook_core::{RunRecord, RunStatus};
use labbook_store::{Result, StepRange, Store, StoreError};

use crate::client::Client;
use crate::wire::{Floats, LogBatch, OutputBody, PatchBody, SeriesBody, StartRun};

/// Points (or output chunks) sent in one request: well under the server's
/// body limit at ~60 bytes of JSON a point.
const POINTS_PER_BATCH: usize = 40_000;

/// What one pass over a run sent.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncedRun {
    pub id: String,
    pub name: String,
    pub project: String,
    pub status: String,
    /// The run did not exist on the server before this pass.
    pub created: bool,
    pub points: u64,
    pub output_chunks: u64,
    pub notes: u64,
    pub files: u64,
    pub file_bytes: u64,
    /// The run's fields (status, config, summary, tags…) were updated.
    pub updated: bool,
    pub environment: bool,
}

impl SyncedRun {
    /// Whether this pass sent anything at all.
    pub fn sent_anything(&self) -> bool {
        self.created
            || self.points > 0
            || self.output_chunks > 0
            || self.notes > 0
            || self.files > 0
            || self.updated
            || self.environment
    }
}

/// Told what a run needs sent, then as it goes, in units of points and
/// file bytes.
pub trait Progress {
    fn planned(&self, run: &RunRecord, points: u64, file_bytes: u64);
    fn sent(&self, points: u64, file_bytes: u64);
}

/// Sends what the server lacks of `run` (one pass).
pub fn sync_run(
    store: &dyn Store,
    client: &Client,
    run: &RunRecord,
    progress: &dyn Progress,
) -> Result<SyncedRun> {
    let mut report = SyncedRun {
        id: run.id.clone(),
        name: run.name.clone(),
        project: run.project.clone(),
        status: run.status.as_str().to_string(),
        ..Default::default()
    };
    let remote = match client.run_detail(&run.id)? {
        Some(remote) => {
            check_same_run(run, &remote)?;
            remote
        }
        None => {
            client.start_run(&start_of(run)?)?;
            report.created = true;
            client.run_detail(&run.id)?.ok_or_else(|| {
                StoreError::Remote(format!("the server lost run {} once made", run.id))
            })?
        }
    };

    let remote_counts: BTreeMap<String, u64> = remote
        .get("metric_keys")
        .and_then(Value::as_array)
        .map(|keys| {
            keys.iter()
                .filter_map(|k| {
                    Some((
                        k.get("key")?.as_str()?.to_string(),
                        k.get("count")?.as_u64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut behind: Vec<(String, u64, u64)> = Vec::new();
    for (key, count) in store.series_keys(&run.id)? {
        let held = remote_counts.get(&key).copied().unwrap_or(0);
        if held > count {
            return Err(StoreError::Conflict(format!(
                "run {}: the server holds {held} points of {key:?} and this store {count}; \
                 it was logged to elsewhere too, so sync cannot tell which points are new",
                run.id
            )));
        }
        if held < count {
            behind.push((key, held, count));
        }
    }
    let output = store.read_output(&run.id)?;
    let output_held = client.output_count(&run.id)?;
    let notes = store.notes(&run.id)?;
    let notes_held = remote
        .get("notebook")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let files = crate::layout::run_artifact_dir(store, run)
        .map(|dir| artifact_files(store, &dir))
        .transpose()?
        .unwrap_or_default();
    let remote_dir = client.mlflow_artifact_dir(&run.id)?;
    let held_files = if files.is_empty() {
        BTreeMap::new()
    } else {
        client.artifact_files(&remote_dir)?
    };
    let uploads: Vec<(String, String, u64)> = files
        .into_iter()
        .filter(|(_, rel, size)| held_files.get(rel) != Some(size))
        .collect();
    let points: u64 = behind.iter().map(|(_, held, count)| count - held).sum();
    let bytes: u64 = uploads.iter().map(|(_, _, size)| size).sum();
    progress.planned(run, points, bytes);

    // The run's fields first: an ended run never shows as running on the
    // server while its points arrive.
    let patch = patch_for(run, &remote)?;
    let mut batches = BatchPacker::new(&run.id);
    if let Some(patch) = patch {
        batches.patch = Some(patch);
        report.updated = true;
    }
    for (key, held, _) in &behind {
        let columns = store.read_series(&run.id, key, StepRange::ALL)?;
        let mut from = *held as usize;
        while from < columns.steps.len() {
            let room = POINTS_PER_BATCH - batches.points;
            let to = columns.steps.len().min(from + room);
            batches.add_series(
                key,
                from,
                &columns.steps[from..to],
                &columns.ts_ms[from..to],
                &columns.values[from..to],
            );
            report.points += (to - from) as u64;
            if batches.points >= POINTS_PER_BATCH {
                let sent = batches.series_points as u64;
                client.log_repeating(&run.id, &batches.take())?;
                progress.sent(sent, 0);
            }
            from = to;
        }
    }
    for (i, chunk) in output.iter().enumerate().skip(output_held) {
        batches.add_output(i, chunk);
        report.output_chunks += 1;
        if batches.points >= POINTS_PER_BATCH {
            let sent = batches.series_points as u64;
            client.log_repeating(&run.id, &batches.take())?;
            progress.sent(sent, 0);
        }
    }
    if batches.has_content() {
        let sent = batches.series_points as u64;
        let mut last = batches.take();
        // An ended run's writer is done: the server seals its series.
        last.seal = run.status != RunStatus::Running;
        client.log_repeating(&run.id, &last)?;
        progress.sent(sent, 0);
    }

    for note in notes.iter().skip(notes_held) {
        client.add_note(&run.id, &note.text)?;
        report.notes += 1;
    }
    if let Some(env) = store.environment(&run.id)?
        && remote.get("environment") != Some(&env)
    {
        client.set_environment(&run.id, &env)?;
        report.environment = true;
    }
    for (local_path, rel, size) in uploads {
        let (reader, _) = store.open_artifact(&local_path)?;
        client.upload_artifact(&format!("{remote_dir}/{rel}"), reader, size)?;
        report.files += 1;
        report.file_bytes += size;
        progress.sent(0, size);
    }
    Ok(report)
}

/// The run start that makes the run on the server as it is here. No pid:
/// the server must never judge a synced run by a process on another
/// machine; its status arrives with the run's fields.
fn start_of(run: &RunRecord) -> Result<StartRun> {
    Ok(StartRun {
        id: Some(run.id.clone()),
        attach: false,
        resume: Some("allow".to_string()),
        project: run.project.clone(),
        name: Some(run.name.clone()),
        group: run.group.clone(),
        notes: run.notes.clone(),
        tags: run.tags.clone(),
        config: Some(serde_json::to_value(&run.config)?),
        created_ms: Some(run.created_ms),
        host: run.host.clone(),
        pid: None,
    })
}

/// A run of the same id on the server must be this run: one made by an
/// earlier sync has its start time.
fn check_same_run(run: &RunRecord, remote: &Value) -> Result<()> {
    let created = remote.get("created_ms").and_then(Value::as_i64);
    if created != Some(run.created_ms) {
        return Err(StoreError::Conflict(format!(
            "the server already has a different run with id {} (started at another time); \
             it was not made by syncing this one",
            run.id
        )));
    }
    Ok(())
}

/// The fields to set on the server's copy, or `None` when it has them all.
fn patch_for(run: &RunRecord, remote: &Value) -> Result<Option<PatchBody>> {
    let text = |field: &str| {
        remote
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let remote_tags: Vec<String> = remote
        .get("tags")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let remote_config = match remote.get("config") {
        Some(c) => config_from_json(c)?,
        None => Default::default(),
    };
    let remote_kv = remote.get("kv_tags").cloned().unwrap_or(Value::Null);
    let remote_summary = remote.get("summary").cloned().unwrap_or(Value::Null);
    let ended = run.status != RunStatus::Running;
    let same = text("status").as_deref() == Some(run.status.as_str())
        && remote.get("ended_ms").and_then(Value::as_i64) == run.ended_ms
        && remote.get("exit_code").and_then(Value::as_i64) == run.exit_code.map(i64::from)
        && text("error") == run.error
        && text("name").as_deref() == Some(run.name.as_str())
        && text("group") == run.group
        && text("notes") == run.notes
        && run.tags.iter().all(|t| remote_tags.contains(t))
        && remote_tags.iter().all(|t| run.tags.contains(t))
        && remote_config == run.config
        && run
            .kv_tags
            .iter()
            .all(|(k, v)| remote_kv.get(k).and_then(Value::as_str) == Some(v))
        && run
            .summary
            .iter()
            .all(|(k, v)| remote_summary.get(k) == Some(v));
    if same {
        return Ok(None);
    }
    Ok(Some(PatchBody {
        status: ended.then(|| run.status.as_str().to_string()),
        ended_ms: run.ended_ms,
        exit_code: run.exit_code,
        error: run.error.clone(),
        name: Some(run.name.clone()),
        group: run.group.clone(),
        notes: run.notes.clone(),
        add_tags: run
            .tags
            .iter()
            .filter(|t| !remote_tags.contains(t))
            .cloned()
            .collect(),
        // The local run is what sync copies: a tag taken off it here comes
        // off the server's copy too.
        remove_tags: remote_tags
            .iter()
            .filter(|t| !run.tags.contains(t))
            .cloned()
            .collect(),
        config: Some(serde_json::to_value(&run.config)?),
        summary: run.summary.clone(),
        set_kv_tags: run.kv_tags.clone(),
    }))
}

/// Every file under `dir` in the store's artifact tree: its store path, its
/// path below `dir` and its size. Walked with a stack, not recursion.
fn artifact_files(store: &dyn Store, dir: &str) -> Result<Vec<(String, String, u64)>> {
    let prefix = format!("{dir}/");
    let mut files = Vec::new();
    let mut folders = vec![dir.to_string()];
    while let Some(folder) = folders.pop() {
        for entry in store.list_artifacts(&folder)? {
            if entry.is_dir {
                folders.push(entry.path);
            } else if let Some(rel) = entry.path.strip_prefix(&prefix) {
                files.push((entry.path.clone(), rel.to_string(), entry.size));
            }
        }
    }
    files.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(files)
}

/// Gathers points and output into log requests, each with an id drawn from
/// what it carries.
struct BatchPacker<'a> {
    run_id: &'a str,
    batch: LogBatch,
    patch: Option<PatchBody>,
    /// Points and output chunks in the batch.
    points: usize,
    /// Of which points of series.
    series_points: usize,
    /// What the batch carries, for its id: (key, first index, count), and
    /// the output's first index and count.
    identity: blake3::Hasher,
}

impl<'a> BatchPacker<'a> {
    fn new(run_id: &'a str) -> BatchPacker<'a> {
        BatchPacker {
            run_id,
            batch: LogBatch::default(),
            patch: None,
            points: 0,
            series_points: 0,
            identity: Self::hasher(run_id),
        }
    }

    fn hasher(run_id: &str) -> blake3::Hasher {
        let mut h = blake3::Hasher::new();
        h.update(b"labbook sync\0");
        h.update(run_id.as_bytes());
        h
    }

    fn add_series(
        &mut self,
        key: &str,
        first: usize,
        steps: &[i64],
        ts_ms: &[i64],
        values: &[f64],
    ) {
        self.identity.update(b"\0series\0");
        self.identity.update(key.as_bytes());
        self.identity.update(&(first as u64).to_le_bytes());
        self.identity.update(&(steps.len() as u64).to_le_bytes());
        let body = self
            .batch
            .series
            .entry(key.to_string())
            .or_insert_with(|| SeriesBody {
                steps: Vec::new(),
                ts_ms: Vec::new(),
                values: Floats(Vec::new()),
            });
        body.steps.extend_from_slice(steps);
        body.ts_ms.extend_from_slice(ts_ms);
        body.values.0.extend_from_slice(values);
        self.points += steps.len();
        self.series_points += steps.len();
    }

    fn add_output(&mut self, index: usize, chunk: &labbook_store::OutputChunk) {
        self.identity.update(b"\0output\0");
        self.identity.update(&(index as u64).to_le_bytes());
        self.batch.output.push(OutputBody {
            stream: chunk.stream,
            ts_ms: chunk.ts_ms,
            text: String::from_utf8_lossy(&chunk.data).into_owned(),
        });
        self.points += 1;
    }

    fn has_content(&self) -> bool {
        self.points > 0 || self.patch.is_some()
    }

    /// The batch gathered so far, with its id; the packer starts afresh.
    fn take(&mut self) -> LogBatch {
        let mut batch = std::mem::take(&mut self.batch);
        batch.patch = self.patch.take();
        if let Some(patch) = &batch.patch {
            // A patch's content is part of what the batch is: a run's
            // fields changed since an earlier pass are a new batch.
            if let Ok(text) = serde_json::to_vec(patch) {
                self.identity.update(b"\0patch\0");
                self.identity.update(&text);
            }
        }
        let identity = std::mem::replace(&mut self.identity, Self::hasher(self.run_id));
        batch.batch_id = Some(format!("sync-{}", &identity.finalize().to_hex()[..32]));
        self.points = 0;
        self.series_points = 0;
        batch
    }
}
