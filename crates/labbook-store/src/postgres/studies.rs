//! Studies and trials in PostgreSQL (`sqlite/studies.rs` explains them).
//! Claims of one study queue on its row, whichever replica serves them;
//! each process caches a study's trials and reads only the trials stamped
//! since its last read, as the run index does.

use std::sync::Arc;

use postgres::Row;

use labbook_core::ids;
use labbook_search::trial::Observation;
use labbook_search::{Direction, TrialState};

use super::runs::{apply_patch, insert_run, lock_run, project_id};
use super::{Db, PgStore};
use crate::error::{Result, StoreError};
use crate::random_bits;
use crate::studies::*;

const STUDY_COLUMNS: &str = "s.id, s.sid, p.name, s.name, s.kind, s.directions, s.spec, s.why, s.state, \
     s.state_reason, s.user_attrs, s.system_attrs, s.created_ms";

const TRIAL_COLUMNS: &str = "id, study_id, number, state, params, distributions, vals, intermediate, run_id, \
     grid_index, retry_of, host, pid, started_ms, ended_ms, heartbeat_ms, user_attrs, system_attrs, note";

fn json_map(text: &str) -> Result<std::collections::BTreeMap<String, serde_json::Value>> {
    Ok(serde_json::from_str(text)?)
}

fn decode_study(row: &Row) -> Result<StudyRecord> {
    let kind: String = row.try_get(4)?;
    let directions: Vec<String> = serde_json::from_str(&row.try_get::<_, String>(5)?)?;
    let state: String = row.try_get(8)?;
    Ok(StudyRecord {
        pk: row.try_get(0)?,
        id: row.try_get(1)?,
        project: row.try_get(2)?,
        name: row.try_get(3)?,
        kind: StudyKind::parse(&kind)
            .ok_or_else(|| StoreError::Internal(format!("unknown study kind {kind:?}")))?,
        directions: directions
            .iter()
            .map(|d| Direction::parse(d).unwrap_or_default())
            .collect(),
        spec: serde_json::from_str(&row.try_get::<_, String>(6)?)?,
        why: row.try_get(7)?,
        state: StudyState::parse(&state)
            .ok_or_else(|| StoreError::Internal(format!("unknown study state {state:?}")))?,
        state_reason: row.try_get(9)?,
        user_attrs: json_map(&row.try_get::<_, String>(10)?)?,
        system_attrs: json_map(&row.try_get::<_, String>(11)?)?,
        created_ms: row.try_get(12)?,
    })
}

fn decode_trial(row: &Row) -> Result<TrialRecord> {
    let state: String = row.try_get(3)?;
    let values = values_from_json(row.try_get::<_, Option<String>>(6)?.as_deref())?;
    Ok(TrialRecord {
        id: row.try_get(0)?,
        study: row.try_get(1)?,
        obs: Observation {
            number: row.try_get::<_, i64>(2)? as u64,
            state: TrialState::parse(&state),
            params: json_map(&row.try_get::<_, String>(4)?)?,
            value: values.as_ref().and_then(|v| v.first().copied()),
            intermediate: intermediate_from_json(&row.try_get::<_, String>(7)?)?,
        },
        distributions: serde_json::from_str(&row.try_get::<_, String>(5)?)?,
        values,
        run_id: row.try_get(8)?,
        grid_index: row.try_get::<_, Option<i64>>(9)?.map(|g| g as u64),
        retry_of: row.try_get::<_, Option<i64>>(10)?.map(|g| g as u64),
        host: row.try_get(11)?,
        pid: row
            .try_get::<_, Option<i64>>(12)?
            .and_then(|p| u32::try_from(p).ok()),
        started_ms: row.try_get(13)?,
        ended_ms: row.try_get(14)?,
        heartbeat_ms: row.try_get(15)?,
        user_attrs: json_map(&row.try_get::<_, String>(16)?)?,
        system_attrs: json_map(&row.try_get::<_, String>(17)?)?,
        note: row.try_get(18)?,
    })
}

fn query_studies(
    db: &mut Db<'_>,
    where_sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Vec<StudyRecord>> {
    db.rows(
        &format!(
            "SELECT {STUDY_COLUMNS} FROM studies s JOIN projects p ON p.id = s.project_id \
             WHERE s.deleted_ms IS NULL AND {where_sql} ORDER BY s.id"
        ),
        params,
    )?
    .iter()
    .map(decode_study)
    .collect()
}

/// A live study, its row locked when `lock` (a claim's turn in its queue).
fn load_study(db: &mut Db<'_>, pk: i64, lock: bool) -> Result<StudyRecord> {
    let sql = format!(
        "SELECT {STUDY_COLUMNS} FROM studies s JOIN projects p ON p.id = s.project_id \
         WHERE s.id = $1 AND s.deleted_ms IS NULL{}",
        if lock { " FOR UPDATE OF s" } else { "" }
    );
    db.row(&sql, &[&pk])?
        .map(|r| decode_study(&r))
        .transpose()?
        .ok_or(StoreError::NotFound {
            what: "study",
            id: pk.to_string(),
        })
}

fn load_trial(db: &mut Db<'_>, trial_id: i64, lock: bool) -> Result<TrialRecord> {
    let sql = format!(
        "SELECT {TRIAL_COLUMNS} FROM trials WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    db.row(&sql, &[&trial_id])?
        .map(|r| decode_trial(&r))
        .transpose()?
        .ok_or(StoreError::NotFound {
            what: "trial",
            id: trial_id.to_string(),
        })
}

/// Reads the trials stamped since the cache last read into it.
fn refresh_trials(db: &mut Db<'_>, cache: &mut TrialCache, study: i64) -> Result<()> {
    let settled = super::run_index::settled(db)?;
    for row in db.rows(
        &format!(
            "SELECT {TRIAL_COLUMNS} FROM trials WHERE study_id = $1 AND seq >= $2 ORDER BY number"
        ),
        &[&study, &cache.seq],
    )? {
        cache.put(decode_trial(&row)?);
    }
    cache.seq = settled;
    Ok(())
}

impl PgStore {
    pub fn create_study(&self, new: &NewStudy, resume: bool) -> Result<(StudyRecord, bool)> {
        check_new_study(new)?;
        let directions: Vec<&str> = new.directions.iter().map(|d| d.as_str()).collect();
        let directions = serde_json::to_string(&directions)?;
        let spec = serde_json::to_string(&new.spec)?;
        let (pk, created) = self.write(|db| {
            let project_id = project_id(db, &new.project, new.created_ms)?;
            // One creation of a name at a time, so two replicas never both
            // find it free.
            db.exec(
                "SELECT pg_advisory_xact_lock(hashtextextended('study/' || $1 || '/' || $2, 0))",
                &[&project_id.to_string(), &new.name],
            )?;
            let existing = query_studies(
                db,
                "s.project_id = $1 AND s.name = $2",
                &[&project_id, &new.name],
            )?;
            if let Some(study) = existing.into_iter().next() {
                check_resumable(&study, new, resume)?;
                return Ok((study.pk, false));
            }
            for _ in 0..8 {
                let sid = ids::run_id_from_bits(random_bits());
                let row = db.row(
                    "INSERT INTO studies (sid, project_id, name, kind, directions, spec, why, state, created_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', $8) ON CONFLICT (sid) DO NOTHING RETURNING id",
                    &[&sid, &project_id, &new.name, &new.kind.as_str(), &directions, &spec, &new.why, &new.created_ms],
                )?;
                if let Some(row) = row {
                    return Ok((row.try_get(0)?, true));
                }
            }
            Err(StoreError::Internal("no free study id".into()))
        })?;
        Ok((self.study_by_pk(pk)?, created))
    }

    pub fn study(&self, reference: &str, project: Option<&str>) -> Result<StudyRecord> {
        let found = self.read(|db| {
            let mut found = query_studies(db, "s.sid = $1", &[&reference])?;
            if found.is_empty() {
                found = match project {
                    Some(p) => query_studies(db, "s.name = $1 AND p.name = $2", &[&reference, &p])?,
                    None => query_studies(db, "s.name = $1", &[&reference])?,
                };
            }
            if found.is_empty() && may_be_study_id_prefix(reference) {
                let prefix = format!("{reference}%");
                found = query_studies(db, "s.sid LIKE $1", &[&prefix])?;
            }
            Ok(found)
        })?;
        the_one_study(reference, found)
    }

    pub fn study_by_pk(&self, pk: i64) -> Result<StudyRecord> {
        self.read(|db| load_study(db, pk, false))
    }

    pub fn list_studies(&self, project: Option<&str>) -> Result<Vec<StudyRecord>> {
        self.read(|db| match project {
            Some(p) => query_studies(db, "p.name = $1", &[&p]),
            None => query_studies(db, "TRUE", &[]),
        })
    }

    pub fn update_study(&self, pk: i64, patch: &StudyPatch) -> Result<StudyRecord> {
        self.write(|db| {
            let study = load_study(db, pk, true)?;
            if let Some((state, reason)) = &patch.state {
                db.exec(
                    "UPDATE studies SET state = $2, state_reason = $3 WHERE id = $1",
                    &[&pk, &state.as_str(), reason],
                )?;
            }
            if !patch.user_attrs.is_empty() || !patch.system_attrs.is_empty() {
                let mut user = study.user_attrs.clone();
                let mut system = study.system_attrs.clone();
                user.extend(patch.user_attrs.iter().cloned());
                system.extend(patch.system_attrs.iter().cloned());
                db.exec(
                    "UPDATE studies SET user_attrs = $2, system_attrs = $3 WHERE id = $1",
                    &[
                        &pk,
                        &serde_json::to_string(&user)?,
                        &serde_json::to_string(&system)?,
                    ],
                )?;
            }
            Ok(())
        })?;
        self.study_by_pk(pk)
    }

    pub fn delete_study(&self, pk: i64, now_ms: i64) -> Result<()> {
        let changed = self.write(|db| {
            db.exec(
                "UPDATE studies SET deleted_ms = $2 WHERE id = $1 AND deleted_ms IS NULL",
                &[&pk, &now_ms],
            )
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

    pub fn trials(&self, study: i64) -> Result<Vec<Arc<TrialRecord>>> {
        self.read(|db| {
            load_study(db, study, false)?;
            let mut caches = self.trial_cache.lock();
            let cache = caches.entry(study).or_default();
            refresh_trials(db, cache, study)?;
            Ok(cache.trials.clone())
        })
    }

    pub fn waiting_trials(&self, study: i64) -> Result<Vec<Arc<TrialRecord>>> {
        self.read(|db| {
            load_study(db, study, false)?;
            let mut caches = self.trial_cache.lock();
            let cache = caches.entry(study).or_default();
            refresh_trials(db, cache, study)?;
            Ok(cache
                .waiting
                .iter()
                .map(|&i| Arc::clone(&cache.trials[i]))
                .collect())
        })
    }

    pub fn trial(&self, trial_id: i64) -> Result<TrialRecord> {
        self.read(|db| load_trial(db, trial_id, false))
    }

    pub fn claim_trial(
        &self,
        study_pk: i64,
        worker: &Worker,
        now_ms: i64,
        alive: &dyn Fn(&TrialRecord) -> bool,
        decide: &mut Decide<'_>,
    ) -> Result<Claimed> {
        let pid = worker.pid.map(i64::from);
        self.write(|db| {
            // The study's row is this claim's turn: claims queue on it.
            let study = load_study(db, study_pk, true)?;
            let mut caches = self.trial_cache.lock();
            let cache = caches.entry(study_pk).or_default();
            refresh_trials(db, cache, study_pk)?;
            let dead: Vec<usize> = cache
                .running
                .iter()
                .copied()
                .filter(|&i| !alive(&cache.trials[i]))
                .collect();
            let mut reaped: Option<Vec<Arc<TrialRecord>>> = None;
            for i in dead {
                let copy = reaped.get_or_insert_with(|| cache.trials.clone());
                let slot = &mut copy[i];
                let note = crashed_note(slot);
                db.exec(
                    "UPDATE trials SET state = 'crashed', ended_ms = $2, note = $3 WHERE id = $1",
                    &[&slot.id, &now_ms, &note],
                )?;
                let mut t = (**slot).clone();
                t.obs.state = Some(TrialState::Crashed);
                t.ended_ms = Some(now_ms);
                t.note = Some(note);
                *slot = Arc::new(t);
            }
            if study.state != StudyState::Running {
                return Ok(Claimed::Done(study.state, study.state_reason.clone()));
            }
            let trials: &[Arc<TrialRecord>] = reaped.as_deref().unwrap_or(&cache.trials);
            match decide(&study, trials)? {
                Claim::Trial(mut new) => {
                    let number = trials.last().map_or(0, |t| t.number() + 1);
                    if let Some(run) = &new.run {
                        crate::SqliteStore::validate_new_run(run)?;
                        new.run_id = Some(insert_run(db, run)?);
                    }
                    let state = new.state.unwrap_or(TrialState::Running);
                    let started = new
                        .started_ms
                        .or((state != TrialState::Waiting).then_some(now_ms));
                    let id: i64 = db
                        .one(
                            "INSERT INTO trials (study_id, number, state, params, distributions, vals, intermediate,
                             run_id, grid_index, retry_of, host, pid, started_ms, ended_ms, heartbeat_ms,
                             user_attrs, system_attrs)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
                             RETURNING id",
                            &[
                                &study_pk,
                                &(number as i64),
                                &state.as_str(),
                                &serde_json::to_string(&new.params)?,
                                &serde_json::to_string(&new.distributions)?,
                                &values_json(&new.values)?,
                                &intermediate_json(&new.intermediate)?,
                                &new.run_id,
                                &new.grid_index.map(|g| g as i64),
                                &new.retry_of.map(|g| g as i64),
                                &worker.host,
                                &pid,
                                &started,
                                &new.ended_ms,
                                &now_ms,
                                &serde_json::to_string(&new.user_attrs)?,
                                &serde_json::to_string(&new.system_attrs)?,
                            ],
                        )?
                        .try_get(0)?;
                    Ok(Claimed::Trial(Arc::new(claimed_trial(
id, study_pk, number, state, &new, worker, started, now_ms,
))))
                }
                Claim::Take(trial_id) => {
                    let taken = db.exec(
                        "UPDATE trials SET state = 'running', host = $3, pid = $4, started_ms = $5,
                             heartbeat_ms = $5
                         WHERE id = $1 AND study_id = $2 AND state = 'waiting'",
                        &[&trial_id, &study_pk, &worker.host, &pid, &now_ms],
                    )?;
                    if taken == 0 {
                        return Err(StoreError::Conflict(format!(
                            "trial {trial_id} is not waiting in this study"
                        )));
                    }
                    Ok(Claimed::Trial(Arc::new(load_trial(db, trial_id, false)?)))
                }
                Claim::Wait(why) => Ok(Claimed::Wait(why)),
                Claim::Finish(why) => {
                    db.exec(
                        "UPDATE studies SET state = 'finished', state_reason = $2 WHERE id = $1",
                        &[&study_pk, &why],
                    )?;
                    Ok(Claimed::Done(StudyState::Finished, Some(why)))
                }
                Claim::Closed(state) => Ok(Claimed::Done(state, study.state_reason.clone())),
            }
        })
    }

    pub fn update_trial(&self, trial_id: i64, patch: &TrialPatch) -> Result<bool> {
        self.write(|db| {
            let mut trial = load_trial(db, trial_id, true)?;
            // Only new params are checked against the study's history.
            let history = if patch.params.is_empty() {
                Vec::new()
            } else {
                let mut caches = self.trial_cache.lock();
                let cache = caches.entry(trial.study).or_default();
                refresh_trials(db, cache, trial.study)?;
                cache.trials.clone()
            };
            let Some(TrialChange {
                started,
                ended,
                values,
            }) = apply_trial_patch(&mut trial, patch, &history)?
            else {
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
                let pk = lock_run(db, run_id)?;
                apply_patch(db, pk, run_patch)?;
            }
            db.exec(
                "UPDATE trials SET state = $2, params = $3, distributions = $4, vals = $5, intermediate = $6,
                 run_id = COALESCE($7, run_id), user_attrs = $8, system_attrs = $9,
                 note = COALESCE($10, note), started_ms = $11, ended_ms = $12,
                 heartbeat_ms = CASE WHEN $13 THEN $14 ELSE heartbeat_ms END
                 WHERE id = $1",
                &[
                    &trial_id,
                    &patch.state.unwrap_or(trial.state()).as_str(),
                    &serde_json::to_string(&trial.obs.params)?,
                    &serde_json::to_string(&trial.distributions)?,
                    &values_json(&values)?,
                    &intermediate_json(&trial.obs.intermediate)?,
                    &patch.run_id,
                    &serde_json::to_string(&trial.user_attrs)?,
                    &serde_json::to_string(&trial.system_attrs)?,
                    &patch.note,
                    &started,
                    &ended,
                    &(patch.heartbeat || patch.state.is_some()),
                    &patch.now_ms,
                ],
            )?;
            Ok(true)
        })
    }
}
