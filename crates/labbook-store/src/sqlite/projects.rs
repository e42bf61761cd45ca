//! Projects: the unit runs are grouped in, and MLflow's experiments.

use rusqlite::{OptionalExtension, params};

use labbook_core::run::validate_name;

use super::SqliteStore;
use crate::error::{Result, StoreError};
use crate::types::{NewProject, Project, ProjectInfo, ProjectPatch, ProjectRef};

impl SqliteStore {
    pub(super) fn load_projects(&self) -> Result<Vec<ProjectInfo>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT p.id, p.name, p.created_ms, COALESCE(p.updated_ms, p.created_ms), p.deleted_ms,
                    p.artifact_location, p.tags,
                    COUNT(r.pk), COALESCE(SUM(r.status = 'running'), 0),
                    MAX(COALESCE(r.ended_ms, r.heartbeat_ms))
             FROM projects p LEFT JOIN runs r ON r.project_id = p.id AND r.deleted_ms IS NULL
             GROUP BY p.id ORDER BY MAX(COALESCE(r.ended_ms, r.heartbeat_ms)) DESC, p.name",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(ProjectInfo {
                project: project_from_row(r)?,
                runs: r.get::<_, i64>(7)? as u64,
                running: r.get::<_, i64>(8)? as u64,
                last_activity_ms: r.get(9)?,
            });
        }
        Ok(out)
    }

    pub(super) fn project_impl(&self, reference: ProjectRef<'_>) -> Result<Project> {
        const COLUMNS: &str = "p.id, p.name, p.created_ms, COALESCE(p.updated_ms, p.created_ms), \
             p.deleted_ms, p.artifact_location, p.tags";
        let conn = self.conn.lock();
        let (found, shown) = match reference {
            ProjectRef::Id(id) => (
                conn.prepare_cached(&format!("SELECT {COLUMNS} FROM projects p WHERE p.id = ?1"))?
                    .query_row([id], |r| Ok(project_from_row(r)))
                    .optional()?,
                id.to_string(),
            ),
            ProjectRef::Name(name) => (
                conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM projects p WHERE p.name = ?1"
                ))?
                .query_row([name], |r| Ok(project_from_row(r)))
                .optional()?,
                name.to_string(),
            ),
        };
        found.transpose()?.ok_or(StoreError::NotFound {
            what: "project",
            id: shown,
        })
    }

    pub(super) fn create_project_impl(&self, new: &NewProject) -> Result<Project> {
        validate_name("name", &new.name)?;
        for key in new.tags.keys() {
            labbook_core::config::validate_key("tag", key)?;
        }
        let id = self.write(|tx| {
            let inserted = tx.execute(
                "INSERT INTO projects (name, created_ms, updated_ms, artifact_location, tags)
                 VALUES (?1, ?2, ?2, ?3, ?4) ON CONFLICT (name) DO NOTHING",
                params![
                    new.name,
                    new.created_ms,
                    new.artifact_location,
                    serde_json::to_string(&new.tags)?
                ],
            )?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!(
                    "a project named {:?} already exists",
                    new.name
                )));
            }
            Ok(tx.last_insert_rowid())
        })?;
        self.project_impl(ProjectRef::Id(id))
    }

    pub(super) fn update_project_impl(&self, id: i64, patch: &ProjectPatch) -> Result<()> {
        if let Some(name) = &patch.name {
            validate_name("name", name)?;
        }
        self.write(|tx| {
            let tags: Option<(String, Option<i64>)> = tx
                .query_row(
                    "SELECT tags, deleted_ms FROM projects WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((tags, deleted_ms)) = tags else {
                return Err(StoreError::NotFound {
                    what: "project",
                    id: id.to_string(),
                });
            };
            let tags = crate::run_fields::patched_project_tags(&tags, patch)?;
            if let Some(name) = &patch.name {
                let taken: Option<i64> = tx
                    .query_row(
                        "SELECT id FROM projects WHERE name = ?1 AND id != ?2",
                        params![name, id],
                        |r| r.get(0),
                    )
                    .optional()?;
                if taken.is_some() {
                    return Err(StoreError::Conflict(format!(
                        "a project named {name:?} already exists"
                    )));
                }
                tx.execute(
                    "UPDATE projects SET name = ?2 WHERE id = ?1",
                    params![id, name],
                )?;
                // Runs cache their project's name: stamp them as changed.
                tx.execute(
                    "UPDATE runs SET project_id = project_id WHERE project_id = ?1",
                    [id],
                )?;
            }
            match patch.deleted {
                // Deleting a project deletes its live runs with it; restoring
                // brings back those, not runs deleted on their own before.
                Some(Some(at)) if deleted_ms.is_none() => {
                    tx.execute(
                        "UPDATE projects SET deleted_ms = ?2 WHERE id = ?1",
                        params![id, at],
                    )?;
                    tx.execute(
                        "UPDATE runs SET deleted_ms = ?2 WHERE project_id = ?1 AND deleted_ms IS NULL",
                        params![id, at],
                    )?;
                }
                Some(None) => {
                    if let Some(at) = deleted_ms {
                        tx.execute(
                            "UPDATE runs SET deleted_ms = NULL WHERE project_id = ?1 AND deleted_ms = ?2",
                            params![id, at],
                        )?;
                    }
                    tx.execute("UPDATE projects SET deleted_ms = NULL WHERE id = ?1", [id])?;
                }
                _ => {}
            }
            tx.execute(
                "UPDATE projects SET tags = ?2, updated_ms = MAX(COALESCE(updated_ms, created_ms), ?3) WHERE id = ?1",
                params![id, serde_json::to_string(&tags)?, patch.now_ms],
            )?;
            Ok(())
        })
    }
}

/// The first seven columns of a project query.
fn project_from_row(r: &rusqlite::Row<'_>) -> Result<Project> {
    let tags: String = r.get(6)?;
    Ok(Project {
        id: r.get(0)?,
        name: r.get(1)?,
        created_ms: r.get(2)?,
        updated_ms: r.get(3)?,
        deleted_ms: r.get(4)?,
        artifact_location: r.get(5)?,
        tags: serde_json::from_str(&tags)?,
    })
}
