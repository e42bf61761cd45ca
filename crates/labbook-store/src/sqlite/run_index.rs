//! The in-memory run index, loaded lazily.
//!
//! Every run is in the index from the first query, but only with the
//! columns that need no JSON parsing (id, names, status, times). A query
//! that filters or sorts on `config.lr` or `metrics.acc` first loads that
//! one key for every run ([`Source`]), by a projection SQLite does in C
//! (`config -> '$."lr"'`, or an index range on `series(key)`); the page a
//! caller gets back is then read in full. Filtering and sorting run the
//! query language's own evaluator over these partial records, which hold
//! exactly the values the query reads, so a cold answer is the warm one.
//!
//! A change sequence (see the migration that adds `change_seq`) keeps it
//! current: a run stamped after the index's `seq` is loaded again in full.

use std::collections::{HashMap, HashSet};

use labbook_core::config::ConfigValue;
use labbook_core::query::{Attr, Field};
use labbook_core::run::PARENT_TAG;
use labbook_core::{RunRecord, RunStatus};
use rusqlite::Connection;

use crate::error::{Result, StoreError};
use crate::run_select::select;
use crate::types::{Deleted, RunQuery};

use super::SqliteStore;
use super::pushdown::key_path;

/// One part of every run's record that a query may need, loaded for all
/// runs at once the first time one does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Source {
    Config(String),
    Metric(String),
    Summary(String),
    ParamText(String),
    KvTag(String),
    Notes,
    Labels,
    Inputs,
}

impl Source {
    /// What `field` reads, as `RunView::get` reads it.
    fn of(field: &Field, out: &mut Vec<Source>) {
        match field {
            Field::Attr(Attr::Notes) => out.push(Source::Notes),
            Field::Attr(Attr::Tags) => out.push(Source::Labels),
            Field::Attr(Attr::Parent) => out.push(Source::KvTag(PARENT_TAG.to_string())),
            Field::Attr(_) => {}
            Field::Config(k) => out.push(Source::Config(k.clone())),
            Field::Metric(k, _) => out.push(Source::Metric(k.clone())),
            Field::Summary(k) => {
                out.push(Source::Summary(k.clone()));
                out.push(Source::Metric(k.clone()));
            }
            Field::Param(k) => {
                out.push(Source::ParamText(k.clone()));
                out.push(Source::Config(k.clone()));
            }
            Field::Tag(k) => out.push(Source::KvTag(k.clone())),
            Field::Dataset(_) => out.push(Source::Inputs),
        }
    }
}

struct Indexed {
    record: RunRecord,
    /// Every field is loaded (the run was read in full), so no source
    /// needs to touch it.
    full: bool,
}

/// Every run as of change `seq`: in full once `complete`, otherwise each
/// with the sources in `loaded`.
/// How many queries reading the same sources are narrowed in SQL before
/// the index loads those sources instead. Rent or buy: loading a source
/// costs about as much as this many narrowings (a key's every run read,
/// ~8 µs each, against its series looked up, ~0.6 µs each), so a query
/// repeated this often has paid for the load, and one asked only a few
/// times (the second search of a 100,000-run store: 60 ms, not 800) never
/// pays it.
const NARROWED_BEFORE_LOAD: u32 = 12;

pub(super) struct RunIndex {
    seq: i64,
    runs: HashMap<i64, Indexed>,
    by_id: HashMap<String, i64>,
    complete: bool,
    loaded: HashSet<Source>,
    /// How many queries reading each set of sources SQL's narrowing
    /// answered ([`answer_narrowed`]).
    narrowed: HashMap<Vec<Source>, u32>,
}

impl Default for RunIndex {
    fn default() -> Self {
        // Runs from before the change sequence existed carry seq 0.
        RunIndex {
            seq: -1,
            runs: HashMap::new(),
            by_id: HashMap::new(),
            complete: false,
            loaded: HashSet::new(),
            narrowed: HashMap::new(),
        }
    }
}

/// The columns a run's record has without parsing JSON (its project's
/// name comes from a map of the few projects, not a join per run).
const BASE_SQL: &str = "SELECT pk, id, project_id, name, grp, status, created_ms, ended_ms, \
     heartbeat_ms, host, pid, exit_code, deleted_ms FROM runs";

/// Bound parameters per `IN (...)` list, well under SQLite's limit.
const IN_BATCH: usize = 500;

fn base_record(
    row: &rusqlite::Row<'_>,
    projects: &HashMap<i64, String>,
) -> Result<(i64, RunRecord)> {
    let status = row.get_ref(5)?.as_str().map_err(rusqlite::Error::from)?;
    let status: RunStatus = status
        .parse()
        .map_err(|_| StoreError::Internal(format!("stored status {status:?}")))?;
    let project_id: i64 = row.get(2)?;
    Ok((
        row.get(0)?,
        RunRecord {
            id: row.get(1)?,
            project: projects.get(&project_id).cloned().unwrap_or_default(),
            project_id,
            name: row.get(3)?,
            group: row.get(4)?,
            tags: Vec::new(),
            notes: None,
            status,
            created_ms: row.get(6)?,
            ended_ms: row.get(7)?,
            heartbeat_ms: row.get(8)?,
            host: row.get(9)?,
            pid: row.get(10)?,
            exit_code: row.get(11)?,
            error: None,
            config: Default::default(),
            metrics: Default::default(),
            summary: Default::default(),
            deleted_ms: row.get(12)?,
            kv_tags: Default::default(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            param_text: Default::default(),
            model_inputs: Vec::new(),
        },
    ))
}

impl RunIndex {
    /// Brings the index up to the store's current change sequence.
    pub(super) fn refresh(&mut self, conn: &Connection) -> Result<()> {
        let current: i64 =
            conn.query_row("SELECT value FROM change_seq WHERE id = 1", [], |r| {
                r.get(0)
            })?;
        if current == self.seq {
            return Ok(());
        }
        // Read in a later snapshot than `current`: a run changed in
        // between is loaded now and again next time, never missed.
        if self.seq < 0 {
            let projects: HashMap<i64, String> = conn
                .prepare_cached("SELECT id, name FROM projects")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut stmt = conn.prepare_cached(BASE_SQL)?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let (pk, record) = base_record(row, &projects)?;
                self.insert(pk, record, false);
            }
        } else {
            for (pk, record) in SqliteStore::load_runs_keyed(conn, "r.seq > ?1", &[&self.seq])? {
                self.insert(pk, record, true);
            }
            let mut purged = conn.prepare_cached("SELECT id FROM purged_runs WHERE seq > ?1")?;
            for id in purged.query_map([self.seq], |r| r.get::<_, String>(0))? {
                if let Some(pk) = self.by_id.remove(&id?) {
                    self.runs.remove(&pk);
                }
            }
        }
        self.seq = current;
        Ok(())
    }

    fn insert(&mut self, pk: i64, record: RunRecord, full: bool) {
        self.by_id.insert(record.id.clone(), pk);
        self.runs.insert(pk, Indexed { record, full });
    }

    /// Reads every run in full (what a caller that visits every field of
    /// every run needs).
    pub(super) fn complete(&mut self, conn: &Connection) -> Result<()> {
        if self.complete {
            return Ok(());
        }
        let lite: Vec<i64> = self
            .runs
            .iter()
            .filter(|(_, e)| !e.full)
            .map(|(pk, _)| *pk)
            .collect();
        if lite.len() * 2 > self.runs.len() {
            // One pass beats thousands of `IN` lists.
            for (pk, record) in SqliteStore::load_runs_keyed(conn, "r.seq <= ?1", &[&self.seq])? {
                if self.runs.get(&pk).is_some_and(|e| !e.full) {
                    self.insert(pk, record, true);
                }
            }
        }
        self.hydrate(conn, &lite)?;
        self.complete = true;
        self.loaded.clear();
        Ok(())
    }

    /// Reads in full the runs of `pks` not read in full yet.
    pub(super) fn hydrate(&mut self, conn: &Connection, pks: &[i64]) -> Result<()> {
        let lite: Vec<i64> = pks
            .iter()
            .copied()
            .filter(|pk| self.runs.get(pk).is_some_and(|e| !e.full))
            .collect();
        for (pk, record) in load_by_pk(conn, &lite)? {
            if self.runs.contains_key(&pk) {
                self.insert(pk, record, true);
            }
        }
        Ok(())
    }

    /// Loads, for every run, what `query`'s filter and sort read.
    pub(super) fn load_for(&mut self, conn: &Connection, query: &RunQuery) -> Result<()> {
        if self.complete {
            return Ok(());
        }
        for source in needed(query) {
            if !self.loaded.contains(&source) {
                self.load_source(conn, &source)?;
                self.loaded.insert(source);
            }
        }
        Ok(())
    }

    fn load_source(&mut self, conn: &Connection, source: &Source) -> Result<()> {
        match source {
            Source::Config(key) => match key_path(key) {
                Some(path) => self.each_text(
                    conn,
                    "SELECT pk, config -> ?1 FROM runs WHERE config -> ?1 IS NOT NULL",
                    Some(&path),
                    |run, text| {
                        let value: ConfigValue = serde_json::from_str(text)?;
                        run.config.insert(key.clone(), value);
                        Ok(())
                    },
                ),
                None => self.each_text(conn, "SELECT pk, config FROM runs", None, |run, text| {
                    let mut config: labbook_core::Config = serde_json::from_str(text)?;
                    if let Some(v) = config.remove(key) {
                        run.config.insert(key.clone(), v);
                    }
                    Ok(())
                }),
            },
            Source::Summary(key) => self.each_json_key(conn, "summary", key, |run, text| {
                run.summary.insert(key.clone(), serde_json::from_str(text)?);
                Ok(())
            }),
            Source::ParamText(key) => self.each_json_key(conn, "param_text", key, |run, text| {
                run.param_text
                    .insert(key.clone(), serde_json::from_str(text)?);
                Ok(())
            }),
            Source::KvTag(key) => self.each_json_key(conn, "kv_tags", key, |run, text| {
                run.kv_tags.insert(key.clone(), serde_json::from_str(text)?);
                Ok(())
            }),
            Source::Notes => self.each_text(
                conn,
                "SELECT pk, notes FROM runs WHERE notes IS NOT NULL",
                None,
                |run, text| {
                    run.notes = Some(text.to_string());
                    Ok(())
                },
            ),
            Source::Labels => self.each_text(
                conn,
                "SELECT pk, tags FROM runs WHERE tags != '[]'",
                None,
                |run, text| {
                    run.tags = serde_json::from_str(text)?;
                    Ok(())
                },
            ),
            Source::Inputs => self.each_text(
                conn,
                "SELECT pk, inputs FROM runs WHERE inputs != '[]'",
                None,
                |run, text| {
                    run.inputs = serde_json::from_str(text)?;
                    Ok(())
                },
            ),
            Source::Metric(key) => {
                let mut stmt = conn.prepare_cached(
                    "SELECT run_pk, count, last_step, last_ts, last_value, min_value, max_value \
                     FROM series WHERE key = ?1 AND count > 0",
                )?;
                let mut rows = stmt.query([key])?;
                while let Some(row) = rows.next()? {
                    let pk: i64 = row.get(0)?;
                    if let Some(entry) = self.runs.get_mut(&pk).filter(|e| !e.full) {
                        entry
                            .record
                            .metrics
                            .insert(key.clone(), super::summary_from_row(row, 1)?);
                    }
                }
                Ok(())
            }
        }
    }

    /// One key of a JSON object column, for every run that has it.
    fn each_json_key(
        &mut self,
        conn: &Connection,
        column: &str,
        key: &str,
        mut apply: impl FnMut(&mut RunRecord, &str) -> Result<()>,
    ) -> Result<()> {
        match key_path(key) {
            Some(path) => self.each_text(
                conn,
                &format!("SELECT pk, {column} -> ?1 FROM runs WHERE {column} -> ?1 IS NOT NULL"),
                Some(&path),
                apply,
            ),
            None => self.each_text(
                conn,
                &format!("SELECT pk, {column} FROM runs WHERE {column} != '{{}}'"),
                None,
                |run, text| {
                    let mut map: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_str(text)?;
                    match map.remove(key) {
                        Some(v) => apply(run, &v.to_string()),
                        None => Ok(()),
                    }
                },
            ),
        }
    }

    /// Runs `sql` (its one parameter, if any, bound to `arg`) and hands each row's
    /// text to `apply` on the run it names, for runs not read in full.
    fn each_text(
        &mut self,
        conn: &Connection,
        sql: &str,
        arg: Option<&str>,
        mut apply: impl FnMut(&mut RunRecord, &str) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = match arg {
            Some(arg) => stmt.query([arg])?,
            None => stmt.query([])?,
        };
        while let Some(row) = rows.next()? {
            let pk: i64 = row.get(0)?;
            if let Some(entry) = self.runs.get_mut(&pk).filter(|e| !e.full) {
                let text = row.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
                apply(&mut entry.record, text)?;
            }
        }
        Ok(())
    }

    /// The runs that match `query`'s project, deletion and filter, in its
    /// order (newest first when it has no sort), before paging.
    pub(super) fn select(&self, query: &RunQuery, now_ms: i64) -> Vec<i64> {
        select(
            self.runs.iter().map(|(pk, e)| (*pk, &e.record)),
            query,
            now_ms,
        )
    }

    /// Nothing is loaded yet.
    pub(super) fn is_cold(&self) -> bool {
        self.seq < 0
    }

    /// Whether `query` is best answered from SQL's narrowing rather than
    /// the index: the index lacks what it reads, and queries reading the
    /// same have not yet been narrowed [`NARROWED_BEFORE_LOAD`] times (this
    /// one is counted).
    pub(super) fn should_narrow(&mut self, query: &RunQuery) -> bool {
        if self.complete {
            return false;
        }
        let mut needed = needed(query);
        if self.seq >= 0 && needed.iter().all(|s| self.loaded.contains(s)) {
            return false;
        }
        needed.sort();
        needed.dedup();
        let times = self.narrowed.entry(needed).or_default();
        *times += 1;
        *times <= NARROWED_BEFORE_LOAD
    }

    /// The records of `pks`, in that order (each must be in the index).
    pub(super) fn records<'a>(&'a self, pks: &[i64]) -> Vec<&'a RunRecord> {
        pks.iter()
            .filter_map(|pk| self.runs.get(pk).map(|e| &e.record))
            .collect()
    }
}

/// What `query`'s filter and sort read.
fn needed(query: &RunQuery) -> Vec<Source> {
    let mut needed = Vec::new();
    if let Some(filter) = &query.filter {
        for field in filter.fields() {
            Source::of(field, &mut needed);
        }
    }
    for key in &query.sort {
        Source::of(&key.field, &mut needed);
    }
    needed
}

/// Answers `query` from the runs its filter narrows to in SQL
/// ([`pushdown`](super::pushdown)), read in full and judged by the filter
/// itself: `None` when SQL narrows nothing, or leaves more than `most`.
pub(super) fn answer_narrowed(
    conn: &Connection,
    query: &RunQuery,
    most: usize,
    now_ms: i64,
) -> Result<Option<(Vec<RunRecord>, usize)>> {
    let Some(candidates) = super::pushdown::candidates(query) else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT r.pk FROM runs r WHERE {} LIMIT {}",
        candidates.sql,
        most + 1
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let pks: Vec<i64> = stmt
        .query_map(rusqlite::params_from_iter(&candidates.params), |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if pks.len() > most {
        return Ok(None);
    }
    let mut runs = load_by_pk(conn, &pks)?;
    let selected = select(runs.iter().map(|(pk, r)| (*pk, r)), query, now_ms);
    let page = selected.iter().skip(query.offset);
    let page: Vec<RunRecord> = match query.limit {
        Some(limit) => page.take(limit).filter_map(|pk| runs.remove(pk)).collect(),
        None => page.filter_map(|pk| runs.remove(pk)).collect(),
    };
    Ok(Some((page, selected.len())))
}

/// Answers a listing with no filter and no sort (a project's newest runs,
/// as a runs page or `labbook ls` first asks) by SQL's own order and
/// count, reading only the page: `None` for any other query, or a page
/// without a limit.
pub(super) fn answer_newest(
    conn: &Connection,
    query: &RunQuery,
) -> Result<Option<(Vec<RunRecord>, usize)>> {
    let (Some(limit), None, true, Some(project), None) = (
        query.limit,
        &query.filter,
        query.sort.is_empty(),
        &query.project,
        &query.project_ids,
    ) else {
        return Ok(None);
    };
    let deleted = match query.deleted {
        Deleted::Exclude => "r.deleted_ms IS NULL",
        Deleted::Only => "r.deleted_ms IS NOT NULL",
        Deleted::Include => "1",
    };
    let scope = format!("r.project_id = (SELECT id FROM projects WHERE name = ?1) AND {deleted}");
    let total: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM runs r WHERE {scope}"))?
        .query_row([project], |r| r.get(0))?;
    let pks: Vec<i64> = conn
        .prepare_cached(&format!(
            "SELECT r.pk FROM runs r WHERE {scope} \
             ORDER BY r.created_ms DESC, r.id ASC LIMIT ?2 OFFSET ?3"
        ))?
        .query_map(
            rusqlite::params![project, limit as i64, query.offset as i64],
            |r| r.get(0),
        )?
        .collect::<rusqlite::Result<_>>()?;
    let mut runs = load_by_pk(conn, &pks)?;
    let page = pks.iter().filter_map(|pk| runs.remove(pk)).collect();
    Ok(Some((page, total as usize)))
}

/// The runs of `pks`, read in full, by primary key.
fn load_by_pk(conn: &Connection, pks: &[i64]) -> Result<HashMap<i64, RunRecord>> {
    let mut runs = HashMap::with_capacity(pks.len());
    for batch in pks.chunks(IN_BATCH) {
        let list = vec!["?"; batch.len()].join(",");
        let args: Vec<&dyn rusqlite::ToSql> =
            batch.iter().map(|pk| pk as &dyn rusqlite::ToSql).collect();
        runs.extend(SqliteStore::load_runs_keyed(
            conn,
            &format!("r.pk IN ({list})"),
            &args,
        )?);
    }
    Ok(runs)
}
