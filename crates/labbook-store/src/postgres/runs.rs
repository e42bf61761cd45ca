//! Runs, projects, the series engine's chunks and summaries, output,
//! notes, environments and documents, in PostgreSQL.

use std::collections::{BTreeMap, HashMap};

use postgres::Row;

use labbook_core::run::validate_name;
use labbook_core::{RunRecord, RunStatus, SeriesColumns, SeriesSummary, ids};

use super::{Db, PgStore};
use crate::chunk_read::{self, ChunkInfo, ChunkRead, ChunkSource};
use crate::error::{Result, StoreError};
use crate::run_fields::{RUN_FIELD_COLUMNS, RunFields};
use crate::series::{EncodedChunk, SEALED_LEVEL};
use crate::types::*;
use crate::{SqliteStore, random_bits};

pub(super) const RUN_COLUMNS: &str = "r.pk, r.id, p.name, r.name, r.grp, r.tags, r.notes, r.status, r.created_ms, r.ended_ms, \
     r.heartbeat_ms, r.host, r.pid, r.exit_code, r.error, r.config, r.summary, r.deleted_ms, \
     p.id, r.kv_tags, r.inputs, r.outputs, r.param_text, r.model_inputs";

/// PostgreSQL's text may not hold NUL characters, which SQLite's may:
/// a text that would be refused is stored with each NUL as U+FFFD.
fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}").into()
    } else {
        text.into()
    }
}

fn storable_opt(text: &Option<String>) -> Option<String> {
    text.as_deref().map(|t| storable(t).into_owned())
}

fn decode_run(row: &Row) -> Result<(i64, RunRecord)> {
    let status: String = row.try_get(7)?;
    let status: RunStatus = status
        .parse()
        .map_err(|_| StoreError::Internal(format!("stored status {status:?}")))?;
    let json = |i: usize| -> Result<String> { Ok(row.try_get(i)?) };
    Ok((
        row.try_get(0)?,
        RunRecord {
            id: row.try_get(1)?,
            project: row.try_get(2)?,
            name: row.try_get(3)?,
            group: row.try_get(4)?,
            tags: serde_json::from_str(&json(5)?)?,
            notes: row.try_get(6)?,
            status,
            created_ms: row.try_get(8)?,
            ended_ms: row.try_get(9)?,
            heartbeat_ms: row.try_get(10)?,
            host: row.try_get(11)?,
            pid: row
                .try_get::<_, Option<i64>>(12)?
                .and_then(|p| u32::try_from(p).ok()),
            exit_code: row
                .try_get::<_, Option<i64>>(13)?
                .and_then(|c| i32::try_from(c).ok()),
            error: row.try_get(14)?,
            config: serde_json::from_str(&json(15)?)?,
            metrics: BTreeMap::new(),
            summary: serde_json::from_str(&json(16)?)?,
            deleted_ms: row.try_get(17)?,
            project_id: row.try_get(18)?,
            kv_tags: serde_json::from_str(&json(19)?)?,
            inputs: serde_json::from_str(&json(20)?)?,
            outputs: serde_json::from_str(&json(21)?)?,
            param_text: serde_json::from_str(&json(22)?)?,
            model_inputs: serde_json::from_str(&json(23)?)?,
        },
    ))
}

fn summary_from_row(row: &Row, first: usize) -> Result<SeriesSummary> {
    Ok(SeriesSummary {
        count: row.try_get::<_, i64>(first)? as u64,
        last_step: row.try_get::<_, Option<i64>>(first + 1)?.unwrap_or(0),
        last_ts_ms: row.try_get::<_, Option<i64>>(first + 2)?.unwrap_or(0),
        last: row
            .try_get::<_, Option<f64>>(first + 3)?
            .unwrap_or(f64::NAN),
        min: row.try_get(first + 4)?,
        max: row.try_get(first + 5)?,
    })
}

/// The runs `where_sql` selects (over `runs r` joined to `projects p`), in
/// full, each with its primary key.
pub(super) fn load_runs_keyed(
    db: &mut Db<'_>,
    where_sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Vec<(i64, RunRecord)>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs r JOIN projects p ON p.id = r.project_id WHERE {where_sql}"
    );
    let mut runs = Vec::new();
    let mut by_pk = HashMap::new();
    for row in db.rows(&sql, params)? {
        let (pk, record) = decode_run(&row)?;
        by_pk.insert(pk, runs.len());
        runs.push((pk, record));
    }
    if runs.is_empty() {
        return Ok(runs);
    }
    let sql = format!(
        "SELECT s.run_pk, s.key, s.count, s.last_step, s.last_ts, s.last_value, s.min_value, s.max_value \
         FROM series s JOIN runs r ON r.pk = s.run_pk JOIN projects p ON p.id = r.project_id \
         WHERE s.count > 0 AND {where_sql}"
    );
    for row in db.rows(&sql, params)? {
        let pk: i64 = row.try_get(0)?;
        if let Some(&i) = by_pk.get(&pk) {
            runs[i]
                .1
                .metrics
                .insert(row.try_get(1)?, summary_from_row(&row, 2)?);
        }
    }
    Ok(runs)
}

fn load_runs(
    db: &mut Db<'_>,
    where_sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Vec<RunRecord>> {
    Ok(load_runs_keyed(db, where_sql, params)?
        .into_iter()
        .map(|(_, run)| run)
        .collect())
}

fn no_run(id: &str) -> StoreError {
    StoreError::NotFound {
        what: "run",
        id: id.to_string(),
    }
}

pub(super) fn run_pk(db: &mut Db<'_>, id: &str) -> Result<i64> {
    db.row("SELECT pk FROM runs WHERE id = $1", &[&id])?
        .map(|r| r.try_get(0))
        .transpose()?
        .ok_or_else(|| no_run(id))
}

/// A run's key, its row locked for this transaction: every write to a run
/// takes it first, so a run's writers queue in one order and never
/// deadlock each other (the stamp on its row comes last, by trigger).
pub(super) fn lock_run(db: &mut Db<'_>, id: &str) -> Result<i64> {
    db.row(
        "SELECT pk FROM runs WHERE id = $1 FOR NO KEY UPDATE",
        &[&id],
    )?
    .map(|r| r.try_get(0))
    .transpose()?
    .ok_or_else(|| no_run(id))
}

pub(super) fn project_id(db: &mut Db<'_>, name: &str, now_ms: i64) -> Result<i64> {
    validate_name("project", name)?;
    db.exec(
        "INSERT INTO projects (name, created_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        &[&name, &now_ms],
    )?;
    Ok(db
        .one("SELECT id FROM projects WHERE name = $1", &[&name])?
        .try_get(0)?)
}

pub(super) fn insert_run(db: &mut Db<'_>, new: &NewRun) -> Result<String> {
    let project_id = project_id(db, &new.project, new.created_ms)?;
    let mut tags = Vec::new();
    for t in &new.tags {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    let tags = serde_json::to_string(&tags)?;
    let config = serde_json::to_string(&new.config)?;
    let notes = storable_opt(&new.notes);
    let host = storable_opt(&new.host);
    let pid = new.pid.map(i64::from);
    for attempt in 0..8 {
        let id = new
            .id
            .clone()
            .unwrap_or_else(|| ids::run_id_from_bits(random_bits()));
        let name = new
            .name
            .clone()
            .unwrap_or_else(|| ids::run_name_from_bits(random_bits()));
        let inserted = db.exec(
            "INSERT INTO runs (id, project_id, name, grp, tags, notes, status, created_ms, heartbeat_ms, host, pid, config)
             VALUES ($1, $2, $3, $4, $5, $6, 'running', $7, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
            &[&id, &project_id, &name, &new.group, &tags, &notes, &new.created_ms, &host, &pid, &config],
        )?;
        if inserted == 1 {
            return Ok(id);
        }
        if new.id.is_some() || attempt == 7 {
            return Err(StoreError::Conflict(format!(
                "a run with id {id:?} already exists"
            )));
        }
    }
    Err(StoreError::Internal("no free run id".into()))
}

pub(super) fn apply_patch(db: &mut Db<'_>, pk: i64, patch: &RunPatch) -> Result<()> {
    if patch.is_empty() {
        return Ok(());
    }
    let row = db.one(
        &format!("SELECT {RUN_FIELD_COLUMNS} FROM runs WHERE pk = $1"),
        &[&pk],
    )?;
    let texts: [String; 8] = [
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
        row.try_get(5)?,
        row.try_get(6)?,
        row.try_get(7)?,
    ];
    let mut fields = RunFields::decode(&texts)?;
    fields.apply(patch)?;
    let [
        tags,
        config,
        summary,
        kv_tags,
        inputs,
        outputs,
        param_text,
        model_inputs,
    ] = fields.encode()?;
    let exit_code = patch.exit_code.map(i64::from);
    db.exec(
        "UPDATE runs SET tags = $2, config = $3, summary = $4,
             status = COALESCE($5, status), ended_ms = COALESCE($6, ended_ms),
             exit_code = COALESCE($7, exit_code), error = COALESCE($8, error),
             name = COALESCE($9, name), grp = COALESCE($10, grp), notes = COALESCE($11, notes),
             kv_tags = $12, inputs = $13, outputs = $14, param_text = $15,
             model_inputs = $16
         WHERE pk = $1",
        &[
            &pk,
            &tags,
            &config,
            &summary,
            &patch.status.map(RunStatus::as_str),
            &patch.ended_ms,
            &exit_code,
            &storable_opt(&patch.error),
            &patch.name,
            &patch.group,
            &storable_opt(&patch.notes),
            &kv_tags,
            &inputs,
            &outputs,
            &param_text,
            &model_inputs,
        ],
    )?;
    if let Some((host, pid)) = &patch.reopen {
        db.exec(
            "UPDATE runs SET status = 'running', ended_ms = NULL, exit_code = NULL, error = NULL,
                 host = $2, pid = $3 WHERE pk = $1",
            &[&pk, &storable_opt(host), &pid.map(i64::from)],
        )?;
    }
    Ok(())
}

/// The series ids of `keys` in the run, made for keys it has not logged
/// before. The caller holds the run's row lock, so no one else adds a series
/// to it meanwhile.
fn series_ids(db: &mut Db<'_>, run_pk: i64, keys: &[&str]) -> Result<HashMap<String, i64>> {
    let mut ids = HashMap::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok(ids);
    }
    let mut wanted: Vec<&str> = keys.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    for row in db.rows(
        "SELECT key, id FROM series WHERE run_pk = $1 AND key = ANY($2)",
        &[&run_pk, &wanted],
    )? {
        ids.insert(row.try_get(0)?, row.try_get(1)?);
    }
    let missing: Vec<&str> = wanted
        .into_iter()
        .filter(|k| !ids.contains_key(*k))
        .collect();
    for key in &missing {
        labbook_core::metric::validate_metric_key(key)?;
    }
    if !missing.is_empty() {
        for row in db.rows(
            "INSERT INTO series (run_pk, key) SELECT $1::bigint, k FROM unnest($2::text[]) AS k RETURNING key, id",
            &[&run_pk, &missing],
        )? {
            ids.insert(row.try_get(0)?, row.try_get(1)?);
        }
    }
    Ok(ids)
}

fn series_of(ids: &HashMap<String, i64>, key: &str) -> Result<i64> {
    ids.get(key).copied().ok_or_else(|| StoreError::NotFound {
        what: "metric",
        id: key.to_string(),
    })
}

/// Deletes the run's unsealed chunks `ids` (tails about to be rewritten);
/// an id already gone (compacted by another writer) fails the write, since
/// rewriting it would store its points twice.
fn delete_tails(db: &mut Db<'_>, run_pk: i64, run_id: &str, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let deleted: std::collections::HashSet<i64> = db
        .rows(
            "DELETE FROM chunks WHERE id = ANY($1) AND level < $2
             AND series_id IN (SELECT id FROM series WHERE run_pk = $3) RETURNING id",
            &[&ids, &i32::from(SEALED_LEVEL), &run_pk],
        )?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    match ids.iter().find(|id| !deleted.contains(id)) {
        Some(id) => Err(StoreError::StaleTails(format!(
            "chunk {id} of run {run_id} is gone"
        ))),
        None => Ok(()),
    }
}

/// Inserts `chunks` in one statement; their ids, in order (drawn from the
/// table's sequence first, so each id is known to belong to its chunk).
fn insert_chunks(
    db: &mut Db<'_>,
    series_ids: &HashMap<String, i64>,
    chunks: &[EncodedChunk],
) -> Result<Vec<i64>> {
    if let [chunk] = chunks {
        return Ok(vec![insert_chunk(
            db,
            series_of(series_ids, &chunk.key)?,
            chunk,
        )?]);
    }
    if chunks.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = db
        .rows(
            "SELECT nextval(pg_get_serial_sequence('chunks', 'id')) FROM generate_series(1, $1::bigint)",
            &[&(chunks.len() as i64)],
        )?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    let series: Vec<i64> = chunks
        .iter()
        .map(|c| series_of(series_ids, &c.key))
        .collect::<Result<_>>()?;
    let column = |f: fn(&EncodedChunk) -> i64| chunks.iter().map(f).collect::<Vec<i64>>();
    let levels: Vec<i32> = chunks.iter().map(|c| i32::from(c.level)).collect();
    let v_min: Vec<Option<f64>> = chunks.iter().map(|c| c.meta.v_min).collect();
    let v_max: Vec<Option<f64>> = chunks.iter().map(|c| c.meta.v_max).collect();
    let data: Vec<&[u8]> = chunks.iter().map(|c| c.data.as_slice()).collect();
    let sketches: Vec<Option<&[u8]>> = chunks.iter().map(|c| c.sketch.as_deref()).collect();
    db.exec(
        "INSERT INTO chunks (id, series_id, level, n, step_min, step_max, ts_min, ts_max, v_min, v_max, data, sketch)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::bigint[], $5::bigint[], $6::bigint[],
                              $7::bigint[], $8::bigint[], $9::float8[], $10::float8[], $11::bytea[], $12::bytea[])",
        &[
            &ids,
            &series,
            &levels,
            &column(|c| c.meta.n as i64),
            &column(|c| c.meta.step_min),
            &column(|c| c.meta.step_max),
            &column(|c| c.meta.ts_min),
            &column(|c| c.meta.ts_max),
            &v_min,
            &v_max,
            &data,
            &sketches,
        ],
    )?;
    Ok(ids)
}

/// Folds each series' new points' summary into the stored one: one read and
/// one update for all of them.
fn merge_summaries(
    db: &mut Db<'_>,
    series_ids: &HashMap<String, i64>,
    deltas: &[(String, SeriesSummary)],
) -> Result<()> {
    if deltas.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = deltas
        .iter()
        .map(|(k, _)| series_of(series_ids, k))
        .collect::<Result<_>>()?;
    let mut merged: HashMap<i64, SeriesSummary> = HashMap::with_capacity(ids.len());
    for row in db.rows(
        "SELECT id, count, last_step, last_ts, last_value, min_value, max_value FROM series
         WHERE id = ANY($1) AND count > 0",
        &[&ids],
    )? {
        merged.insert(row.try_get(0)?, summary_from_row(&row, 1)?);
    }
    for (id, (_, delta)) in ids.iter().zip(deltas) {
        merged
            .entry(*id)
            .and_modify(|s| s.merge(delta))
            .or_insert(*delta);
    }
    let (ids, sums): (Vec<i64>, Vec<SeriesSummary>) = merged.into_iter().unzip();
    let column = |f: fn(&SeriesSummary) -> i64| sums.iter().map(f).collect::<Vec<i64>>();
    let floats = |f: fn(&SeriesSummary) -> Option<f64>| sums.iter().map(f).collect::<Vec<_>>();
    db.exec(
        "UPDATE series SET count = u.count, last_step = u.last_step, last_ts = u.last_ts,
             last_value = u.last_value, min_value = u.min_value, max_value = u.max_value
         FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::float8[], $6::float8[], $7::float8[])
              AS u(id, count, last_step, last_ts, last_value, min_value, max_value)
         WHERE series.id = u.id",
        &[
            &ids,
            &column(|s| s.count as i64),
            &column(|s| s.last_step),
            &column(|s| s.last_ts_ms),
            &floats(|s| Some(s.last)),
            &floats(|s| s.min),
            &floats(|s| s.max),
        ],
    )?;
    Ok(())
}

fn insert_output(db: &mut Db<'_>, run_pk: i64, output: &[OutputChunk]) -> Result<()> {
    if output.is_empty() {
        return Ok(());
    }
    let streams: Vec<i64> = output.iter().map(|o| o.stream.code()).collect();
    let times: Vec<i64> = output.iter().map(|o| o.ts_ms).collect();
    let data: Vec<&[u8]> = output.iter().map(|o| o.data.as_slice()).collect();
    db.exec(
        "INSERT INTO output (run_pk, stream, ts_ms, data)
         SELECT $1::bigint, * FROM unnest($2::bigint[], $3::bigint[], $4::bytea[])",
        &[&run_pk, &streams, &times, &data],
    )?;
    Ok(())
}

fn insert_chunk(db: &mut Db<'_>, series_id: i64, chunk: &EncodedChunk) -> Result<i64> {
    let m = &chunk.meta;
    let row = db.one(
        "INSERT INTO chunks (series_id, level, n, step_min, step_max, ts_min, ts_max, v_min, v_max, data, sketch)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        &[
            &series_id,
            &i32::from(chunk.level),
            &(m.n as i64),
            &m.step_min,
            &m.step_max,
            &m.ts_min,
            &m.ts_max,
            &m.v_min,
            &m.v_max,
            &chunk.data,
            &chunk.sketch,
        ],
    )?;
    Ok(row.try_get(0)?)
}

/// One series' chunks in PostgreSQL.
struct PgChunks<'a> {
    store: &'a PgStore,
    series_id: i64,
}

impl ChunkSource for PgChunks<'_> {
    fn extent(&self, range: StepRange) -> Result<(Option<i64>, Option<i64>, Option<i64>)> {
        let (from, to) = range.bounds();
        self.store.read(|db| {
            let row = db.one(
                "SELECT MIN(step_min), MAX(step_max), SUM(n)::BIGINT FROM chunks
                 WHERE series_id = $1 AND step_max >= $2 AND step_min <= $3",
                &[&self.series_id, &from, &to],
            )?;
            Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
        })
    }

    fn blobs(&self, range: StepRange) -> Result<Vec<Vec<u8>>> {
        let (from, to) = range.bounds();
        self.store.read(|db| {
            db.rows(
                "SELECT data FROM chunks WHERE series_id = $1 AND step_max >= $2 AND step_min <= $3
                 ORDER BY step_min, id",
                &[&self.series_id, &from, &to],
            )?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
        })
    }

    fn chunks(
        &self,
        range: StepRange,
        use_sketch: &dyn Fn(&ChunkInfo) -> bool,
    ) -> Result<Vec<ChunkRead>> {
        let (from, to) = range.bounds();
        self.store.read(|db| {
            let infos = db.rows(
                "SELECT id, n, step_min, step_max, sketch IS NOT NULL FROM chunks
                 WHERE series_id = $1 AND step_max >= $2 AND step_min <= $3
                 ORDER BY step_min, id",
                &[&self.series_id, &from, &to],
            )?;
            let mut out = Vec::with_capacity(infos.len());
            for row in infos {
                let id: i64 = row.try_get(0)?;
                let info = ChunkInfo {
                    n: row.try_get::<_, i64>(1)? as usize,
                    step_min: row.try_get(2)?,
                    step_max: row.try_get(3)?,
                    has_sketch: row.try_get(4)?,
                };
                out.push(if use_sketch(&info) {
                    ChunkRead::Sketch {
                        id,
                        n: info.n,
                        bytes: db
                            .one("SELECT sketch FROM chunks WHERE id = $1", &[&id])?
                            .try_get(0)?,
                    }
                } else {
                    ChunkRead::Data(
                        db.one("SELECT data FROM chunks WHERE id = $1", &[&id])?
                            .try_get(0)?,
                    )
                });
            }
            Ok(out)
        })
    }

    fn chunk_data(&self, id: i64) -> Result<Vec<u8>> {
        self.store.read(|db| {
            Ok(db
                .one("SELECT data FROM chunks WHERE id = $1", &[&id])?
                .try_get(0)?)
        })
    }
}

fn project_from_row(r: &Row) -> Result<Project> {
    let tags: String = r.try_get(6)?;
    Ok(Project {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        created_ms: r.try_get(2)?,
        updated_ms: r.try_get(3)?,
        deleted_ms: r.try_get(4)?,
        artifact_location: r.try_get(5)?,
        tags: serde_json::from_str(&tags)?,
    })
}

const PROJECT_COLUMNS: &str = "p.id, p.name, p.created_ms, COALESCE(p.updated_ms, p.created_ms), \
     p.deleted_ms, p.artifact_location, p.tags";

impl PgStore {
    pub fn create_run(&self, new: &NewRun) -> Result<RunRecord> {
        SqliteStore::validate_new_run(new)?;
        let id = self.write(|db| insert_run(db, new))?;
        self.get_run(&id)
    }

    /// One run with its series' summaries, in one statement.
    pub fn get_run(&self, id: &str) -> Result<RunRecord> {
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "SELECT {RUN_COLUMNS}, m.keys, m.counts, m.last_steps, m.last_ts, m.last_values, m.mins, m.maxs
                 FROM runs r JOIN projects p ON p.id = r.project_id
                 LEFT JOIN LATERAL (
                     SELECT array_agg(s.key) AS keys, array_agg(s.count) AS counts,
                            array_agg(s.last_step) AS last_steps, array_agg(s.last_ts) AS last_ts,
                            array_agg(s.last_value) AS last_values, array_agg(s.min_value) AS mins,
                            array_agg(s.max_value) AS maxs
                     FROM series s WHERE s.run_pk = r.pk AND s.count > 0
                 ) m ON true
                 WHERE r.id = $1"
            )
        });
        let row = self
            .read_rows(&SQL, &[&id])?
            .pop()
            .ok_or_else(|| no_run(id))?;
        let (_, mut run) = decode_run(&row)?;
        let first = RUN_COLUMNS.split(',').count();
        let Some(keys) = row.try_get::<_, Option<Vec<String>>>(first)? else {
            return Ok(run);
        };
        let counts: Vec<i64> = row.try_get(first + 1)?;
        let steps: Vec<Option<i64>> = row.try_get(first + 2)?;
        let times: Vec<Option<i64>> = row.try_get(first + 3)?;
        let lasts: Vec<Option<f64>> = row.try_get(first + 4)?;
        let mins: Vec<Option<f64>> = row.try_get(first + 5)?;
        let maxs: Vec<Option<f64>> = row.try_get(first + 6)?;
        if [
            counts.len(),
            steps.len(),
            times.len(),
            lasts.len(),
            mins.len(),
            maxs.len(),
        ]
        .iter()
        .any(|n| *n != keys.len())
        {
            return Err(StoreError::Internal(format!(
                "run {id}: uneven series summaries"
            )));
        }
        for (i, key) in keys.into_iter().enumerate() {
            run.metrics.insert(
                key,
                SeriesSummary {
                    count: counts[i] as u64,
                    last_step: steps[i].unwrap_or(0),
                    last_ts_ms: times[i].unwrap_or(0),
                    last: lasts[i].unwrap_or(f64::NAN),
                    min: mins[i],
                    max: maxs[i],
                },
            );
        }
        Ok(run)
    }

    pub fn resolve_run(&self, reference: &str, project: Option<&str>) -> Result<RunRecord> {
        self.read(|db| {
            if let Some(run) = load_runs(db, "r.id = $1", &[&reference])?.pop() {
                return Ok(run);
            }
            let project = project.unwrap_or("");
            let by_prefix = if crate::run_select::may_be_id_prefix(reference) {
                let like = format!("{reference}%");
                load_runs(
                    db,
                    "r.id LIKE $1 AND ($2 = '' OR p.name = $2)",
                    &[&like, &project],
                )?
            } else {
                Vec::new()
            };
            let candidates = if by_prefix.is_empty() {
                load_runs(
                    db,
                    "r.name = $1 AND ($2 = '' OR p.name = $2)",
                    &[&reference, &project],
                )?
            } else {
                by_prefix
            };
            crate::run_select::the_one(reference, candidates)
        })
    }

    pub fn update_run(&self, id: &str, patch: &RunPatch) -> Result<()> {
        self.write(|db| {
            let pk = lock_run(db, id)?;
            apply_patch(db, pk, patch)
        })
    }

    pub fn visit_runs(&self, query: &RunQuery, visit: &mut dyn FnMut(&[&RunRecord])) -> Result<()> {
        let mut index = self.index.lock();
        self.read(|db| index.refresh(db))?;
        let selected = crate::run_select::select(index.iter(), query, crate::writer::now_ms());
        visit(&index.records(&selected));
        Ok(())
    }

    pub fn changes_since(&self, seq: i64) -> Result<(i64, Vec<RunRecord>)> {
        self.read(|db| {
            let settled = run_index::settled(db)?;
            if seq == i64::MAX {
                return Ok((settled, Vec::new()));
            }
            Ok((settled, load_runs(db, "r.seq >= $1", &[&seq])?))
        })
    }

    pub fn list_projects(&self) -> Result<Vec<ProjectInfo>> {
        self.read(|db| {
            db.rows(
                &format!(
                    "SELECT {PROJECT_COLUMNS}, COUNT(r.pk), COUNT(r.pk) FILTER (WHERE r.status = 'running'),
                            MAX(COALESCE(r.ended_ms, r.heartbeat_ms))
                     FROM projects p LEFT JOIN runs r ON r.project_id = p.id AND r.deleted_ms IS NULL
                     GROUP BY p.id ORDER BY MAX(COALESCE(r.ended_ms, r.heartbeat_ms)) DESC NULLS LAST, p.name"
                ),
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(ProjectInfo {
                    project: project_from_row(r)?,
                    runs: r.try_get::<_, i64>(7)? as u64,
                    running: r.try_get::<_, i64>(8)? as u64,
                    last_activity_ms: r.try_get(9)?,
                })
            })
            .collect()
        })
    }

    pub fn project(&self, reference: ProjectRef<'_>) -> Result<Project> {
        let (found, shown) = self.read(|db| {
            Ok(match reference {
                ProjectRef::Id(id) => (
                    db.row(
                        &format!("SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.id = $1"),
                        &[&id],
                    )?,
                    id.to_string(),
                ),
                ProjectRef::Name(name) => (
                    db.row(
                        &format!("SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.name = $1"),
                        &[&name],
                    )?,
                    name.to_string(),
                ),
            })
        })?;
        found
            .map(|r| project_from_row(&r))
            .transpose()?
            .ok_or(StoreError::NotFound {
                what: "project",
                id: shown,
            })
    }

    pub fn create_project(&self, new: &NewProject) -> Result<Project> {
        validate_name("name", &new.name)?;
        for key in new.tags.keys() {
            labbook_core::config::validate_key("tag", key)?;
        }
        let tags = serde_json::to_string(&new.tags)?;
        let id: i64 = self.write(|db| {
            let row = db.row(
                "INSERT INTO projects (name, created_ms, updated_ms, artifact_location, tags)
                 VALUES ($1, $2, $2, $3, $4) ON CONFLICT (name) DO NOTHING RETURNING id",
                &[&new.name, &new.created_ms, &new.artifact_location, &tags],
            )?;
            match row {
                Some(row) => Ok(row.try_get(0)?),
                None => Err(StoreError::Conflict(format!(
                    "a project named {:?} already exists",
                    new.name
                ))),
            }
        })?;
        self.project(ProjectRef::Id(id))
    }

    pub fn update_project(&self, id: i64, patch: &ProjectPatch) -> Result<()> {
        if let Some(name) = &patch.name {
            validate_name("name", name)?;
        }
        self.write(|db| {
            let Some(row) = db.row(
                "SELECT tags, deleted_ms FROM projects WHERE id = $1 FOR UPDATE",
                &[&id],
            )?
            else {
                return Err(StoreError::NotFound {
                    what: "project",
                    id: id.to_string(),
                });
            };
            let (tags, deleted_ms): (String, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
            let tags = crate::run_fields::patched_project_tags(&tags, patch)?;
            if let Some(name) = &patch.name {
                let taken = db.row(
                    "SELECT id FROM projects WHERE name = $1 AND id != $2",
                    &[name, &id],
                )?;
                if taken.is_some() {
                    return Err(StoreError::Conflict(format!(
                        "a project named {name:?} already exists"
                    )));
                }
                db.exec("UPDATE projects SET name = $2 WHERE id = $1", &[&id, name])?;
                // Runs show their project's name: stamp them as changed.
                db.exec(
                    "UPDATE runs SET project_id = project_id WHERE project_id = $1",
                    &[&id],
                )?;
            }
            match patch.deleted {
                // Deleting a project deletes its live runs with it; restoring
                // brings back those, not runs deleted on their own before.
                Some(Some(at)) if deleted_ms.is_none() => {
                    db.exec(
                        "UPDATE projects SET deleted_ms = $2 WHERE id = $1",
                        &[&id, &at],
                    )?;
                    db.exec(
                        "UPDATE runs SET deleted_ms = $2 WHERE project_id = $1 AND deleted_ms IS NULL",
                        &[&id, &at],
                    )?;
                }
                Some(None) => {
                    if let Some(at) = deleted_ms {
                        db.exec(
                            "UPDATE runs SET deleted_ms = NULL WHERE project_id = $1 AND deleted_ms = $2",
                            &[&id, &at],
                        )?;
                    }
                    db.exec(
                        "UPDATE projects SET deleted_ms = NULL WHERE id = $1",
                        &[&id],
                    )?;
                }
                _ => {}
            }
            db.exec(
                "UPDATE projects SET tags = $2, updated_ms = GREATEST(COALESCE(updated_ms, created_ms), $3) WHERE id = $1",
                &[&id, &serde_json::to_string(&tags)?, &patch.now_ms],
            )?;
            Ok(())
        })
    }

    pub fn delete_run(&self, id: &str, now_ms: i64) -> Result<()> {
        self.write(|db| {
            let pk = lock_run(db, id)?;
            db.exec(
                "UPDATE runs SET deleted_ms = $2 WHERE pk = $1 AND deleted_ms IS NULL",
                &[&pk, &now_ms],
            )?;
            Ok(())
        })
    }

    pub fn restore_run(&self, id: &str) -> Result<()> {
        self.write(|db| {
            let pk = lock_run(db, id)?;
            db.exec("UPDATE runs SET deleted_ms = NULL WHERE pk = $1", &[&pk])?;
            Ok(())
        })
    }

    pub fn purge_run(&self, id: &str) -> Result<()> {
        self.write(|db| {
            let pk = lock_run(db, id)?;
            // Metrics, output, environment and notes go by cascade.
            db.exec("DELETE FROM applied_batches WHERE run_pk = $1", &[&pk])?;
            db.exec("DELETE FROM runs WHERE pk = $1", &[&pk])?;
            // Other replicas' run indexes learn of it by its stamp.
            db.exec(
                "INSERT INTO purged_runs (id, seq) VALUES ($1, pg_current_xact_id()::text::bigint)
                 ON CONFLICT (id) DO UPDATE SET seq = excluded.seq",
                &[&id],
            )?;
            Ok(())
        })
    }

    pub fn commit(&self, write: &WriteSet) -> Result<Option<Vec<i64>>> {
        self.write(|db| {
            let run_pk = lock_run(db, &write.run_id)?;
            if let Some(batch) = &write.batch_id {
                let fresh = db.exec(
                    "INSERT INTO applied_batches (run_pk, batch_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&run_pk, batch],
                )?;
                if fresh == 0 {
                    return Ok(None);
                }
            }
            delete_tails(db, run_pk, &write.run_id, &write.series.deletes)?;
            // A batch spans many series: each step below is one statement
            // for all of them (arrays through UNNEST), not one per series.
            let keys: Vec<&str> = write
                .series
                .inserts
                .iter()
                .map(|c| c.key.as_str())
                .chain(write.series.summaries.iter().map(|(k, _)| k.as_str()))
                .collect();
            let series_ids = series_ids(db, run_pk, &keys)?;
            let inserted = insert_chunks(db, &series_ids, &write.series.inserts)?;
            merge_summaries(db, &series_ids, &write.series.summaries)?;
            insert_output(db, run_pk, &write.output)?;
            if let Some(beat) = write.heartbeat_ms {
                // A writer that beats is alive: a run reaped as crashed while
                // it was unreachable runs again (before the patch, which may
                // end the run itself).
                db.exec(
                    "UPDATE runs SET heartbeat_ms = GREATEST(heartbeat_ms, $2),
                        ended_ms = CASE WHEN status = 'crashed' THEN NULL ELSE ended_ms END,
                        status = CASE WHEN status = 'crashed' THEN 'running' ELSE status END
                     WHERE pk = $1",
                    &[&run_pk, &beat],
                )?;
            }
            if let Some(patch) = &write.patch {
                apply_patch(db, run_pk, patch)?;
            }
            Ok(Some(inserted))
        })
    }

    fn chunk_source(&self, run_id: &str, key: &str) -> Result<PgChunks<'_>> {
        let series_id = self.read(|db| {
            let pk = run_pk(db, run_id)?;
            db.row(
                "SELECT id FROM series WHERE run_pk = $1 AND key = $2",
                &[&pk, &key],
            )?
            .map(|r| r.try_get(0))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound {
                what: "metric",
                id: key.to_string(),
            })
        })?;
        Ok(PgChunks {
            store: self,
            series_id,
        })
    }

    pub fn read_series(&self, run_id: &str, key: &str, range: StepRange) -> Result<SeriesColumns> {
        chunk_read::read_series(&self.chunk_source(run_id, key)?, range)
    }

    pub fn downsample(
        &self,
        run_id: &str,
        key: &str,
        range: StepRange,
        buckets: usize,
        timestamps: bool,
    ) -> Result<(SeriesColumns, usize)> {
        chunk_read::downsample(&self.chunk_source(run_id, key)?, range, buckets, timestamps)
    }

    pub fn series_keys(&self, run_id: &str) -> Result<Vec<(String, u64)>> {
        self.read(|db| {
            let pk = run_pk(db, run_id)?;
            db.rows(
                "SELECT key, count FROM series WHERE run_pk = $1 AND count > 0 ORDER BY key",
                &[&pk],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get::<_, i64>(1)? as u64)))
            .collect()
        })
    }

    pub fn compact_run(&self, run_id: &str) -> Result<()> {
        self.write(|db| {
            let run_pk = lock_run(db, run_id)?;
            let series: Vec<i64> = db
                .rows(
                    "SELECT DISTINCT c.series_id FROM chunks c JOIN series s ON s.id = c.series_id
                     WHERE s.run_pk = $1 AND c.level < $2",
                    &[&run_pk, &i32::from(SEALED_LEVEL)],
                )?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<std::result::Result<_, _>>()?;
            for series_id in series {
                let tails: Vec<Vec<u8>> = db
                    .rows(
                        "DELETE FROM chunks WHERE series_id = $1 AND level < $2 RETURNING data",
                        &[&series_id, &i32::from(SEALED_LEVEL)],
                    )?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<std::result::Result<_, _>>()?;
                for chunk in crate::series::seal_tails(&tails)? {
                    insert_chunk(db, series_id, &chunk)?;
                }
            }
            Ok(())
        })
    }

    pub fn set_environment(&self, run_id: &str, env: &serde_json::Value) -> Result<()> {
        self.write(|db| {
            let pk = lock_run(db, run_id)?;
            let existing: Option<String> = db
                .row("SELECT env FROM run_env WHERE run_pk = $1", &[&pk])?
                .map(|r| r.try_get(0))
                .transpose()?;
            let merged = crate::run_fields::merged_environment(existing.as_deref(), env)?;
            db.exec(
                "INSERT INTO run_env (run_pk, env) VALUES ($1, $2)
                 ON CONFLICT (run_pk) DO UPDATE SET env = excluded.env",
                &[&pk, &serde_json::to_string(&merged)?],
            )?;
            Ok(())
        })
    }

    pub fn environment(&self, run_id: &str) -> Result<Option<serde_json::Value>> {
        let text: Option<String> = self.read(|db| {
            let pk = run_pk(db, run_id)?;
            Ok(db
                .row("SELECT env FROM run_env WHERE run_pk = $1", &[&pk])?
                .map(|r| r.try_get(0))
                .transpose()?)
        })?;
        Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
    }

    pub fn read_output(&self, run_id: &str) -> Result<Vec<OutputChunk>> {
        self.read(|db| {
            let pk = run_pk(db, run_id)?;
            db.rows(
                "SELECT stream, ts_ms, data FROM output WHERE run_pk = $1 ORDER BY id",
                &[&pk],
            )?
            .iter()
            .map(|r| {
                Ok(OutputChunk {
                    stream: OutputStream::from_code(r.try_get(0)?),
                    ts_ms: r.try_get(1)?,
                    data: r.try_get(2)?,
                })
            })
            .collect()
        })
    }

    pub fn add_note(&self, run_id: &str, text: &str, now_ms: i64) -> Result<()> {
        crate::run_fields::check_run_note(text)?;
        let text = storable(text);
        self.write(|db| {
            let row = db
                .row(
                    "SELECT pk, project_id FROM runs WHERE id = $1",
                    &[&run_id],
                )?
                .ok_or_else(|| no_run(run_id))?;
            let (pk, project_id): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
            db.exec(
                "INSERT INTO notebook (project_id, run_pk, created_ms, text) VALUES ($1, $2, $3, $4)",
                &[&project_id, &pk, &now_ms, &text.as_ref()],
            )?;
            Ok(())
        })
    }

    pub fn notes(&self, run_id: &str) -> Result<Vec<NoteEntry>> {
        self.read(|db| {
            let pk = run_pk(db, run_id)?;
            db.rows(
                "SELECT created_ms, text FROM notebook WHERE run_pk = $1 ORDER BY id",
                &[&pk],
            )?
            .iter()
            .map(|r| {
                Ok(NoteEntry {
                    created_ms: r.try_get(0)?,
                    text: r.try_get(1)?,
                })
            })
            .collect()
        })
    }

    pub fn project_notes(&self, project: &str) -> Result<Vec<NotebookNote>> {
        self.read(|db| {
            db.rows(
                "SELECT n.id, n.created_ms, n.text, r.id FROM notebook n JOIN projects p ON p.id = n.project_id
                 LEFT JOIN runs r ON r.pk = n.run_pk WHERE p.name = $1 ORDER BY n.created_ms DESC, n.id DESC",
                &[&project],
            )?
            .iter()
            .map(|r| {
                Ok(NotebookNote {
                    id: r.try_get(0)?,
                    created_ms: r.try_get(1)?,
                    text: r.try_get(2)?,
                    run_id: r.try_get(3)?,
                })
            })
            .collect()
        })
    }

    pub fn add_project_note(
        &self,
        project: &str,
        text: &str,
        run_id: Option<&str>,
        now_ms: i64,
    ) -> Result<NotebookNote> {
        crate::run_fields::check_project_note(text)?;
        let stored = storable(text);
        let id: i64 = self.write(|db| {
            let project_id: i64 = db
                .row("SELECT id FROM projects WHERE name = $1", &[&project])?
                .ok_or_else(|| StoreError::NotFound {
                    what: "project",
                    id: project.to_string(),
                })?
                .try_get(0)?;
            let run_pk = match run_id {
                Some(id) => Some(run_pk(db, id)?),
                None => None,
            };
            Ok(db
                .one(
                    "INSERT INTO notebook (project_id, run_pk, created_ms, text) VALUES ($1, $2, $3, $4) RETURNING id",
                    &[&project_id, &run_pk, &now_ms, &stored.as_ref()],
                )?
                .try_get(0)?)
        })?;
        Ok(NotebookNote {
            id,
            created_ms: now_ms,
            text: stored.into_owned(),
            run_id: run_id.map(str::to_string),
        })
    }

    pub fn document(&self, kind: &str, key: &str) -> Result<Option<serde_json::Value>> {
        let body: Option<String> = self.read(|db| {
            Ok(db
                .row(
                    "SELECT body FROM documents WHERE kind = $1 AND key = $2",
                    &[&kind, &key],
                )?
                .map(|r| r.try_get(0))
                .transpose()?)
        })?;
        Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
    }

    pub fn documents(&self, kind: &str) -> Result<Vec<(String, serde_json::Value)>> {
        self.read(|db| {
            db.rows(
                "SELECT key, body FROM documents WHERE kind = $1 ORDER BY key",
                &[&kind],
            )?
            .iter()
            .map(|r| {
                let body: String = r.try_get(1)?;
                Ok((r.try_get(0)?, serde_json::from_str(&body)?))
            })
            .collect()
        })
    }

    pub fn update_document(
        &self,
        kind: &str,
        key: &str,
        update: &mut dyn FnMut(Option<serde_json::Value>) -> Result<Option<serde_json::Value>>,
    ) -> Result<Option<serde_json::Value>> {
        let key = storable(key);
        self.write(|db| {
            // The key's row may not exist yet: an advisory lock on it makes
            // concurrent updates of one document queue (read, change, write).
            db.exec(
                "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))",
                &[&kind, &key.as_ref()],
            )?;
            let body: Option<String> = db
                .row(
                    "SELECT body FROM documents WHERE kind = $1 AND key = $2",
                    &[&kind, &key.as_ref()],
                )?
                .map(|r| r.try_get(0))
                .transpose()?;
            let current = body.map(|b| serde_json::from_str(&b)).transpose()?;
            let next = update(current)?;
            match &next {
                Some(doc) => {
                    db.exec(
                        "INSERT INTO documents (kind, key, body) VALUES ($1, $2, $3)
                         ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body",
                        &[&kind, &key.as_ref(), &serde_json::to_string(doc)?],
                    )?;
                }
                None => {
                    db.exec(
                        "DELETE FROM documents WHERE kind = $1 AND key = $2",
                        &[&kind, &key.as_ref()],
                    )?;
                }
            }
            Ok(next)
        })
    }

    pub fn reap_stale_runs(
        &self,
        now_ms: i64,
        this_host: Option<&str>,
        pid_alive: &dyn Fn(u32) -> bool,
    ) -> Result<Vec<String>> {
        let running = self.read(|db| load_runs(db, "r.status = 'running'", &[]))?;
        let timeout_ms = crate::heartbeat_timeout_ms();
        let mut reaped = Vec::new();
        for run in running
            .iter()
            .filter(|r| r.is_stale(now_ms, timeout_ms, this_host, pid_alive))
        {
            let changed = self.write(|db| {
                db.exec(
                    "UPDATE runs SET status = 'crashed', ended_ms = heartbeat_ms
                     WHERE id = $1 AND status = 'running' AND heartbeat_ms = $2",
                    &[&run.id, &run.heartbeat_ms],
                )
            })?;
            if changed == 1 {
                self.compact_run(&run.id)?;
                reaped.push(run.id.clone());
            }
        }
        Ok(reaped)
    }
}

use super::run_index;
