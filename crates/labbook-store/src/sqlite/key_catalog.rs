//! The key catalog: a project's config, metric and summary keys with how
//! many live runs have each, kept by the triggers of the migration that
//! created it (`schema.rs`), so that listing a project's keys reads a few
//! rows instead of every run.
//!
//! The bookkeeping: a run is counted while it is not deleted, under its
//! project. Its config and summary keys enter when it is inserted, restored
//! or moved in, and leave when it is deleted, purged or moved out; a change
//! of either column in place takes the old keys out and puts the new ones
//! in. A metric key enters when its series gets its first point and leaves
//! with the series or the run. Rows whose count falls to zero are removed.

use rusqlite::{Connection, OptionalExtension};

use crate::error::Result;
use crate::types::{KeyCatalog, KeyUse};

pub(super) fn read(conn: &Connection, project: &str) -> Result<KeyCatalog> {
    let mut catalog = KeyCatalog::default();
    let project_id: Option<i64> = conn
        .prepare_cached("SELECT id FROM projects WHERE name = ?1")?
        .query_row([project], |r| r.get(0))
        .optional()?;
    let Some(project_id) = project_id else {
        return Ok(catalog);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT kind, key, runs, numeric_runs FROM key_catalog
         WHERE project_id = ?1 AND runs > 0 ORDER BY kind, key",
    )?;
    let mut rows = stmt.query([project_id])?;
    while let Some(row) = rows.next()? {
        let kind: String = row.get(0)?;
        let list = match kind.as_str() {
            "config" => &mut catalog.config,
            "metric" => &mut catalog.metrics,
            _ => &mut catalog.summary,
        };
        list.push(KeyUse {
            key: row.get(1)?,
            runs: row.get::<_, i64>(2)?.max(0) as usize,
            numeric_runs: row.get::<_, i64>(3)?.max(0) as usize,
        });
    }
    Ok(catalog)
}
