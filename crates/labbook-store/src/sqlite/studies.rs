//! Studies and trials in SQLite. A study's trials are cached in memory and
//! refreshed by a change sequence (only the trials changed since are
//! read), so a sampler that reads a study's whole history before every
//! suggestion does not parse a thousand trials each time.

use std::collections::BTreeMap;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;

use labbook_core::ids;
use labbook_search::trial::Observation;
use labbook_search::{Direction, TrialState};

use super::SqliteStore;
use crate::error::{Result, StoreError};
use crate::random_bits;
use crate::studies::*;

const STUDY_COLUMNS: &str = "s.id, s.sid, p.name, s.name, s.kind, s.directions, s.spec, s.why, s.state, \
     s.state_reason, s.user_attrs, s.system_attrs, s.created_ms";

const TRIAL_COLUMNS: &str = "id, study_id, number, state, params, distributions, vals, intermediate, run_id, \
     grid_index, retry_of, host, pid, started_ms, ended_ms, heartbeat_ms, user_attrs, system_attrs, note, seq";

fn json_map(text: &str) -> Result<BTreeMap<String, Value>> {
    Ok(serde_json::from_str(text)?)
}

fn decode_study(row: &Row<'_>) -> Result<StudyRecord> {
    let kind: String = row.get(4)?;
    let directions: Vec<String> = serde_json::from_str(&row.get::<_, String>(5)?)?;
    let state: String = row.get(8)?;
    Ok(StudyRecord {
        pk: row.get(0)?,
        id: row.get(1)?,
        project: row.get(2)?,
        name: row.get(3)?,
        kind: StudyKind::parse(&kind)
            .ok_or_else(|| StoreError::Internal(format!("unknown study kind {kind:?}")))?,
        directions: directions
            .iter()
            .map(|d| Direction::parse(d).unwrap_or_default())
            .collect(),
        spec: serde_json::from_str(&row.get::<_, String>(6)?)?,
        why: row.get(7)?,
        state: StudyState::parse(&state)
            .ok_or_else(|| StoreError::Internal(format!("unknown study state {state:?}")))?,
        state_reason: row.get(9)?,
        user_attrs: json_map(&row.get::<_, String>(10)?)?,
        system_attrs: json_map(&row.get::<_, String>(11)?)?,
        created_ms: row.get(12)?,
    })
}

fn decode_trial(row: &Row<'_>) -> Result<(i64, TrialRecord)> {
    let state: String = row.get(3)?;
    let values = values_from_json(row.get::<_, Option<String>>(6)?.as_deref())?;
    let intermediate = intermediate_from_json(&row.get::<_, String>(7)?)?;
    let trial = TrialRecord {
        id: row.get(0)?,
        study: row.get(1)?,
        obs: Observation {
            number: row.get::<_, i64>(2)? as u64,
            state: TrialState::parse(&state),
            params: json_map(&row.get::<_, String>(4)?)?,
            value: values.as_ref().and_then(|v| v.first().copied()),
            intermediate,
        },
        distributions: serde_json::from_str(&row.get::<_, String>(5)?)?,
        values,
        run_id: row.get(8)?,
        grid_index: row.get::<_, Option<i64>>(9)?.map(|g| g as u64),
        retry_of: row.get::<_, Option<i64>>(10)?.map(|g| g as u64),
        host: row.get(11)?,
        pid: row.get::<_, Option<i64>>(12)?.map(|p| p as u32),
        started_ms: row.get(13)?,
        ended_ms: row.get(14)?,
        heartbeat_ms: row.get(15)?,
        user_attrs: json_map(&row.get::<_, String>(16)?)?,
        system_attrs: json_map(&row.get::<_, String>(17)?)?,
        note: row.get(18)?,
    };
    Ok((row.get(19)?, trial))
}

fn next_seq(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("UPDATE search_seq SET value = value + 1 WHERE id = 1 RETURNING value")?
        .query_row([], |r| r.get(0))?)
}

impl SqliteStore {
    fn load_study(conn: &Connection, pk: i64) -> Result<StudyRecord> {
        let sql = format!(
            "SELECT {STUDY_COLUMNS} FROM studies s JOIN projects p ON p.id = s.project_id \
             WHERE s.id = ?1 AND s.deleted_ms IS NULL"
        );
        conn.prepare_cached(&sql)?
            .query_row([pk], |r| Ok(decode_study(r)))
            .optional()?
            .transpose()?
            .ok_or(StoreError::NotFound {
                what: "study",
                id: pk.to_string(),
            })
    }

    fn query_studies(
        conn: &Connection,
        where_sql: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<StudyRecord>> {
        let sql = format!(
            "SELECT {STUDY_COLUMNS} FROM studies s JOIN projects p ON p.id = s.project_id \
             WHERE s.deleted_ms IS NULL AND {where_sql} ORDER BY s.id"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(args)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(decode_study(row)?);
        }
        Ok(out)
    }

    pub(super) fn create_study_impl(
        &self,
        new: &NewStudy,
        resume: bool,
    ) -> Result<(StudyRecord, bool)> {
        check_new_study(new)?;
        let (pk, created) = self.write(|tx| {
            let project_id = Self::project_id(tx, &new.project, new.created_ms)?;
            let existing = Self::query_studies(tx, "s.project_id = ?1 AND s.name = ?2", &[&project_id, &new.name])?;
            if let Some(study) = existing.into_iter().next() {
                check_resumable(&study, new, resume)?;
                return Ok((study.pk, false));
            }
            let directions: Vec<&str> = new.directions.iter().map(|d| d.as_str()).collect();
            for attempt in 0..8 {
                let sid = ids::run_id_from_bits(random_bits());
                let inserted = tx.execute(
                    "INSERT INTO studies (sid, project_id, name, kind, directions, spec, why, state, created_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8) ON CONFLICT (sid) DO NOTHING",
                    params![
                        sid,
                        project_id,
                        new.name,
                        new.kind.as_str(),
                        serde_json::to_string(&directions)?,
                        serde_json::to_string(&new.spec)?,
                        new.why,
                        new.created_ms
                    ],
                )?;
                if inserted == 1 {
                    return Ok((tx.last_insert_rowid(), true));
                }
                if attempt == 7 {
                    break;
                }
            }
            Err(StoreError::Internal("no free study id".into()))
        })?;
        Ok((Self::load_study(&self.conn.lock(), pk)?, created))
    }

    pub(super) fn study_impl(&self, reference: &str, project: Option<&str>) -> Result<StudyRecord> {
        let conn = self.conn.lock();
        let mut found = Self::query_studies(&conn, "s.sid = ?1", &[&reference])?;
        if found.is_empty() {
            found = match project {
                Some(p) => {
                    Self::query_studies(&conn, "s.name = ?1 AND p.name = ?2", &[&reference, &p])?
                }
                None => Self::query_studies(&conn, "s.name = ?1", &[&reference])?,
            };
        }
        // An id prefix is at least 3 of an id's characters; anything else
        // (a LIKE wildcard above all) never matches by prefix.
        if found.is_empty() && may_be_study_id_prefix(reference) {
            let prefix = format!("{reference}%");
            found = Self::query_studies(&conn, "s.sid LIKE ?1", &[&prefix])?;
        }
        the_one_study(reference, found)
    }

    pub(super) fn study_by_pk_impl(&self, pk: i64) -> Result<StudyRecord> {
        Self::load_study(&self.conn.lock(), pk)
    }

    pub(super) fn list_studies_impl(&self, project: Option<&str>) -> Result<Vec<StudyRecord>> {
        let conn = self.conn.lock();
        match project {
            Some(p) => Self::query_studies(&conn, "p.name = ?1", &[&p]),
            None => Self::query_studies(&conn, "1", &[]),
        }
    }

    pub(super) fn update_study_impl(&self, pk: i64, patch: &StudyPatch) -> Result<StudyRecord> {
        self.write(|tx| {
            let study = Self::load_study(tx, pk)?;
            if let Some((state, reason)) = &patch.state {
                tx.execute(
                    "UPDATE studies SET state = ?2, state_reason = ?3 WHERE id = ?1",
                    params![pk, state.as_str(), reason],
                )?;
            }
            if !patch.user_attrs.is_empty() || !patch.system_attrs.is_empty() {
                let mut user = study.user_attrs.clone();
                let mut system = study.system_attrs.clone();
                user.extend(patch.user_attrs.iter().cloned());
                system.extend(patch.system_attrs.iter().cloned());
                tx.execute(
                    "UPDATE studies SET user_attrs = ?2, system_attrs = ?3 WHERE id = ?1",
                    params![
                        pk,
                        serde_json::to_string(&user)?,
                        serde_json::to_string(&system)?
                    ],
                )?;
            }
            Ok(())
        })?;
        self.study_by_pk_impl(pk)
    }

    pub(super) fn delete_study_impl(&self, pk: i64, now_ms: i64) -> Result<()> {
        let changed = self.write(|tx| {
            Ok(tx.execute(
                "UPDATE studies SET deleted_ms = ?2 WHERE id = ?1 AND deleted_ms IS NULL",
                params![pk, now_ms],
            )?)
        })?;
        self.trial_cache.lock().remove(&pk);
        if changed == 0 {
            return Err(StoreError::NotFound {
                what: "study",
                id: pk.to_string(),
            });
        }
        Ok(())
    }

    /// Reads the trials changed since the cache's sequence into it.
    fn refresh_trials(conn: &Connection, cache: &mut TrialCache, study: i64) -> Result<()> {
        let sql = format!(
            "SELECT {TRIAL_COLUMNS} FROM trials WHERE study_id = ?1 AND seq > ?2 ORDER BY seq"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![study, cache.seq])?;
        while let Some(row) = rows.next()? {
            let (seq, trial) = decode_trial(row)?;
            cache.seq = cache.seq.max(seq);
            cache.put(trial);
        }
        Ok(())
    }

    fn cached_trials(&self, conn: &Connection, study: i64) -> Result<Vec<Arc<TrialRecord>>> {
        let mut caches = self.trial_cache.lock();
        let cache = caches.entry(study).or_default();
        Self::refresh_trials(conn, cache, study)?;
        Ok(cache.trials.clone())
    }

    pub(super) fn waiting_trials_impl(&self, study: i64) -> Result<Vec<Arc<TrialRecord>>> {
        let conn = self.conn.lock();
        Self::load_study(&conn, study)?;
        let mut caches = self.trial_cache.lock();
        let cache = caches.entry(study).or_default();
        Self::refresh_trials(&conn, cache, study)?;
        Ok(cache
            .waiting
            .iter()
            .map(|&i| Arc::clone(&cache.trials[i]))
            .collect())
    }

    pub(super) fn trials_impl(&self, study: i64) -> Result<Vec<Arc<TrialRecord>>> {
        let conn = self.conn.lock();
        Self::load_study(&conn, study)?;
        self.cached_trials(&conn, study)
    }

    pub(super) fn trial_impl(&self, trial_id: i64) -> Result<TrialRecord> {
        let conn = self.conn.lock();
        let sql = format!("SELECT {TRIAL_COLUMNS} FROM trials WHERE id = ?1");
        conn.prepare_cached(&sql)?
            .query_row([trial_id], |r| Ok(decode_trial(r)))
            .optional()?
            .transpose()?
            .map(|(_, t)| t)
            .ok_or(StoreError::NotFound {
                what: "trial",
                id: trial_id.to_string(),
            })
    }

    pub(super) fn claim_trial_impl(
        &self,
        study_pk: i64,
        worker: &Worker,
        now_ms: i64,
        alive: &dyn Fn(&TrialRecord) -> bool,
        decide: &mut Decide<'_>,
    ) -> Result<Claimed> {
        let answer = self.write(|tx| {
            let study = Self::load_study(tx, study_pk)?;
            // Read under the write lock, before this transaction writes, so
            // the cache only ever holds committed trials; `decide` reads
            // them in place, and a copy is made only when a dead worker's
            // trials change state here.
            let mut caches = self.trial_cache.lock();
            let cache = caches.entry(study_pk).or_default();
            Self::refresh_trials(tx, cache, study_pk)?;
            let dead: Vec<usize> = cache
                .running
                .iter()
                .copied()
                .filter(|&i| !alive(&cache.trials[i]))
                .collect();
            let mut reaped: Option<Vec<Arc<TrialRecord>>> = None;
            let mut seq = None;
            for i in dead {
                let copy = reaped.get_or_insert_with(|| cache.trials.clone());
                let slot = &mut copy[i];
                {
                    let s = match seq {
                        Some(s) => s,
                        None => *seq.insert(next_seq(tx)?),
                    };
                    let note = crashed_note(slot);
                    tx.execute(
                        "UPDATE trials SET state = 'crashed', ended_ms = ?2, note = ?3, seq = ?4 WHERE id = ?1",
                        params![slot.id, now_ms, note, s],
                    )?;
                    let mut t = (**slot).clone();
                    t.obs.state = Some(TrialState::Crashed);
                    t.ended_ms = Some(now_ms);
                    t.note = Some(note);
                    *slot = Arc::new(t);
                }
            }
            if study.state != StudyState::Running {
                return Ok(Claimed::Done(study.state, study.state_reason.clone()));
            }
            let trials: &[Arc<TrialRecord>] = reaped.as_deref().unwrap_or(&cache.trials);
            match decide(&study, trials)? {
                Claim::Trial(mut new) => {
                    let number = trials.last().map_or(0, |t| t.number() + 1);
                    if let Some(run) = &new.run {
                        Self::validate_new_run(run)?;
                        new.run_id = Some(Self::insert_run(tx, run)?);
                    }
                    let s = match seq {
                        Some(s) => s,
                        None => next_seq(tx)?,
                    };
                    let state = new.state.unwrap_or(TrialState::Running);
                    let started = new.started_ms.or((state != TrialState::Waiting).then_some(now_ms));
                    tx
                        .prepare_cached(
                            "INSERT INTO trials (study_id, number, state, params, distributions, vals, intermediate,
                             run_id, grid_index, retry_of, host, pid, started_ms, ended_ms, heartbeat_ms,
                             user_attrs, system_attrs, seq)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
                        )?
                        .execute(params![
                            study_pk,
                            number as i64,
                            state.as_str(),
                            serde_json::to_string(&new.params)?,
                            serde_json::to_string(&new.distributions)?,
                            values_json(&new.values)?,
                            intermediate_json(&new.intermediate)?,
                            new.run_id,
                            new.grid_index.map(|g| g as i64),
                            new.retry_of.map(|g| g as i64),
                            worker.host,
                            worker.pid,
                            started,
                            new.ended_ms,
                            now_ms,
                            serde_json::to_string(&new.user_attrs)?,
                            serde_json::to_string(&new.system_attrs)?,
                            s
                        ],
                    )?;
                    Ok(Claimed::Trial(Arc::new(claimed_trial(
tx.last_insert_rowid(), study_pk, number, state, &new, worker, started, now_ms,
))))
                }
                Claim::Take(trial_id) => {
                    let s = match seq {
                        Some(s) => s,
                        None => next_seq(tx)?,
                    };
                    let taken = tx.execute(
                        "UPDATE trials SET state = 'running', host = ?3, pid = ?4, started_ms = ?5,
                             heartbeat_ms = ?5, seq = ?6
                         WHERE id = ?1 AND study_id = ?2 AND state = 'waiting'",
                        params![trial_id, study_pk, worker.host, worker.pid, now_ms, s],
                    )?;
                    if taken == 0 {
                        return Err(StoreError::Conflict(format!(
                            "trial {trial_id} is not waiting in this study"
                        )));
                    }
                    let sql = format!("SELECT {TRIAL_COLUMNS} FROM trials WHERE id = ?1");
                    let (_, trial) = tx
                        .prepare_cached(&sql)?
                        .query_row([trial_id], |r| Ok(decode_trial(r)))??;
                    Ok(Claimed::Trial(Arc::new(trial)))
                }
                Claim::Wait(why) => Ok(Claimed::Wait(why)),
                Claim::Finish(why) => {
                    tx.execute(
                        "UPDATE studies SET state = 'finished', state_reason = ?2 WHERE id = ?1",
                        params![study_pk, why],
                    )?;
                    Ok(Claimed::Done(StudyState::Finished, Some(why)))
                }
                Claim::Closed(state) => Ok(Claimed::Done(state, study.state_reason.clone())),
            }
        })?;
        Ok(answer)
    }

    pub(super) fn update_trial_impl(&self, trial_id: i64, patch: &TrialPatch) -> Result<bool> {
        self.write(|tx| {
            let sql = format!("SELECT {TRIAL_COLUMNS} FROM trials WHERE id = ?1");
            let (_, mut trial) = tx
                .prepare_cached(&sql)?
                .query_row([trial_id], |r| Ok(decode_trial(r)))
                .optional()?
                .transpose()?
                .ok_or(StoreError::NotFound {
                    what: "trial",
                    id: trial_id.to_string(),
                })?;
            // Only new params are checked against the study's history.
            let history = if patch.params.is_empty() {
                Vec::new()
            } else {
                let mut caches = self.trial_cache.lock();
                let cache = caches.entry(trial.study).or_default();
                Self::refresh_trials(tx, cache, trial.study)?;
                cache.trials.clone()
            };
            let Some(TrialChange { started, ended, values }) = apply_trial_patch(&mut trial, patch, &history)? else {
                return Ok(false);
            };
            if let Some(run_patch) = &patch.run {
                let run_id = patch
                    .run_id
                    .as_ref()
                    .or(trial.run_id.as_ref())
                    .ok_or_else(|| {
                        StoreError::Conflict(format!(
                            "trial #{} has no run to change",
                            trial.number()
                        ))
                    })?;
                let pk = Self::run_pk(tx, run_id)?;
                Self::apply_patch(tx, pk, run_patch)?;
            }
            let seq = next_seq(tx)?;
            tx
                .prepare_cached(
                    "UPDATE trials SET state = ?2, params = ?3, distributions = ?4, vals = ?5, intermediate = ?6,
                     run_id = COALESCE(?7, run_id), user_attrs = ?8, system_attrs = ?9,
                     note = COALESCE(?10, note), started_ms = ?11, ended_ms = ?12,
                     heartbeat_ms = CASE WHEN ?13 THEN ?14 ELSE heartbeat_ms END, seq = ?15
                     WHERE id = ?1",
                )?
                .execute(params![
                    trial_id,
                    patch.state.unwrap_or(trial.state()).as_str(),
                    serde_json::to_string(&trial.obs.params)?,
                    serde_json::to_string(&trial.distributions)?,
                    values_json(&values)?,
                    intermediate_json(&trial.obs.intermediate)?,
                    patch.run_id,
                    serde_json::to_string(&trial.user_attrs)?,
                    serde_json::to_string(&trial.system_attrs)?,
                    patch.note,
                    started,
                    ended,
                    patch.heartbeat || patch.state.is_some(),
                    patch.now_ms,
                    seq
                ],
            )?;
            Ok(true)
        })
    }
}
