//! Versioned artifacts in PostgreSQL: the rows `crate::versioning` asks a
//! database for. A log's landing transaction takes each needed blob's lock
//! (in hash order) before it checks the blob is there, so a concurrent
//! collection cannot remove it before the rows that reference it land;
//! the name's row is locked before a version number is drawn.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres::Row;

use labbook_core::ValidationError;
use labbook_core::artifact::normalize_artifact_path;
use labbook_core::artifact_version::{
    ArtifactRef, LATEST, Manifest, ManifestEntry, VersionSelector, validate_alias,
};

use super::artifacts::{lock_blob, spool_for};
use super::runs::{project_id, run_pk};
use super::{Db, PgStore};
use crate::blobs::Blobs;
use crate::content_hash::FileStamp;
use crate::error::{Result, StoreError};
use crate::private::Modes;
use crate::versioning::{self, Landed, Landing, Staged, VersionIndex, invalid, role_of};
use crate::versions::*;

const VERSION_COLUMNS: &str = "v.id, p.name, n.name, n.kind, v.version, v.digest, v.size, v.files, v.metadata,
     v.description, v.created_ms, v.deleted_ms, v.purged_ms,
     (SELECT string_agg(a.alias, chr(31) ORDER BY a.alias) FROM artifact_aliases a WHERE a.version_id = v.id),
     (SELECT run_id FROM artifact_edges e WHERE e.version_id = v.id AND e.role = 'output'
      ORDER BY e.created_ms LIMIT 1)";

fn decode_version(r: &Row) -> Result<ArtifactVersion> {
    let metadata: String = r.try_get(8)?;
    let aliases: Option<String> = r.try_get(13)?;
    Ok(ArtifactVersion {
        id: r.try_get(0)?,
        project: r.try_get(1)?,
        name: r.try_get(2)?,
        kind: r.try_get(3)?,
        version: r.try_get::<_, i64>(4)? as u64,
        digest: r.try_get(5)?,
        size: r.try_get::<_, i64>(6)? as u64,
        files: r.try_get::<_, i64>(7)? as u64,
        metadata: serde_json::from_str(&metadata).unwrap_or(serde_json::Value::Null),
        description: r.try_get(9)?,
        created_ms: r.try_get(10)?,
        deleted_ms: r.try_get(11)?,
        purged: r.try_get::<_, Option<i64>>(12)?.is_some(),
        aliases: aliases
            .map(|a| a.split('\u{1f}').map(str::to_string).collect())
            .unwrap_or_default(),
        producer: r.try_get(14)?,
    })
}

fn load_versions(
    db: &mut Db<'_>,
    where_sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Vec<ArtifactVersion>> {
    db.rows(
        &format!(
            "SELECT {VERSION_COLUMNS}
             FROM artifact_versions v JOIN artifact_names n ON n.id = v.name_id
             JOIN projects p ON p.id = n.project_id WHERE {where_sql} ORDER BY v.version"
        ),
        params,
    )?
    .iter()
    .map(decode_version)
    .collect()
}

/// The id of a name in a project, made if new, its row locked so that
/// version numbers are drawn one log at a time.
fn name_row(db: &mut Db<'_>, project_id: i64, name: &str, kind: &str, now_ms: i64) -> Result<i64> {
    db.exec(
        "INSERT INTO artifact_names (project_id, name, kind, created_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (project_id, name) DO NOTHING",
        &[&project_id, &name, &kind, &now_ms],
    )?;
    let row = db.one(
        "SELECT id, kind FROM artifact_names WHERE project_id = $1 AND name = $2 FOR UPDATE",
        &[&project_id, &name],
    )?;
    let (id, existing): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
    if existing != kind {
        return Err(invalid(
            name,
            "type",
            format!("is a {existing}, not a {kind}; use another name or type={existing:?}"),
        ));
    }
    Ok(id)
}

fn point_aliases(db: &mut Db<'_>, name_id: i64, version_id: i64, aliases: &[String]) -> Result<()> {
    for alias in aliases {
        db.exec(
            "INSERT INTO artifact_aliases (name_id, alias, version_id) VALUES ($1, $2, $3)
             ON CONFLICT (name_id, alias) DO UPDATE SET version_id = excluded.version_id",
            &[&name_id, alias, &version_id],
        )?;
    }
    Ok(())
}

/// Links a run to a version; false if that link was there already.
fn add_edge(
    db: &mut Db<'_>,
    version_id: i64,
    run_id: &str,
    role: EdgeRole,
    now_ms: i64,
) -> Result<bool> {
    Ok(db.exec(
        "INSERT INTO artifact_edges (version_id, run_id, role, created_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
        &[&version_id, &run_id, &role.as_str(), &now_ms],
    )? > 0)
}

fn save_cache(db: &mut Db<'_>, rows: &[(String, FileStamp, String)]) -> Result<()> {
    for (path, s, hash) in rows {
        db.exec(
            "INSERT INTO hash_cache (path, dev, ino, size, mtime_ns, ctime_ns, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (path) DO UPDATE SET dev = excluded.dev, ino = excluded.ino, size = excluded.size,
                 mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns, hash = excluded.hash",
            &[
                path,
                &(s.dev as i64),
                &(s.ino as i64),
                &(s.size as i64),
                &s.mtime_ns,
                &s.ctime_ns,
                hash,
            ],
        )?;
    }
    Ok(())
}

/// The live version of a name with `digest`, if any.
fn live_with_digest(db: &mut Db<'_>, name_id: i64, digest: &str) -> Result<Option<i64>> {
    db.row(
        "SELECT id FROM artifact_versions
         WHERE name_id = $1 AND digest = $2 AND deleted_ms IS NULL
         ORDER BY version LIMIT 1",
        &[&name_id, &digest],
    )?
    .map(|r| r.try_get(0))
    .transpose()
    .map_err(Into::into)
}

fn no_version(id: i64) -> StoreError {
    StoreError::NotFound {
        what: "artifact version",
        id: id.to_string(),
    }
}

impl VersionIndex for PgStore {
    fn spool_dir(&self) -> PathBuf {
        spool_for(&self.artifact_location())
    }
    fn prepare_spool(&self) -> Result<()> {
        self.spool().map(|_| ())
    }
    fn spool_modes(&self) -> Modes {
        super::artifacts::spool_modes(&self.spool_dir())
    }
    fn version_blobs(&self) -> Arc<dyn Blobs> {
        self.blobs()
    }
    fn cached_hashes(&self, staged: &[Staged]) -> Result<Vec<Option<String>>> {
        self.read(|db| {
            staged
                .iter()
                .map(|s| {
                    let Some(key) = s.path.to_str() else {
                        return Ok(None);
                    };
                    let Some(r) = db.row(
                        "SELECT dev, ino, size, mtime_ns, ctime_ns, hash FROM hash_cache WHERE path = $1",
                        &[&key],
                    )?
                    else {
                        return Ok(None);
                    };
                    let stamp = FileStamp {
                        dev: r.try_get::<_, i64>(0)? as u64,
                        ino: r.try_get::<_, i64>(1)? as u64,
                        size: r.try_get::<_, i64>(2)? as u64,
                        mtime_ns: r.try_get(3)?,
                        ctime_ns: r.try_get(4)?,
                    };
                    Ok((stamp == s.stamp).then(|| r.try_get(5)).transpose()?)
                })
                .collect()
        })
    }
    fn save_cache(&self, rows: &[(String, FileStamp, String)]) -> Result<()> {
        self.write(|db| save_cache(db, rows))
    }
    fn known_tree(&self, stamps: &str) -> Result<Option<String>> {
        self.read(|db| {
            Ok(db
                .row(
                    "SELECT digest FROM tree_stamps WHERE stamps = $1",
                    &[&stamps],
                )?
                .map(|r| r.try_get(0))
                .transpose()?)
        })
    }
    fn land_known(&self, new: &NewArtifactVersion, digest: &str) -> Result<Option<(i64, bool)>> {
        self.write(|db| {
            let project_id = project_id(db, &new.project, new.now_ms)?;
            let Some(name_id) = db
                .row(
                    "SELECT id FROM artifact_names WHERE project_id = $1 AND name = $2 AND kind = $3",
                    &[&project_id, &new.name, &new.kind],
                )?
                .map(|r| r.try_get::<_, i64>(0))
                .transpose()?
            else {
                return Ok(None);
            };
            let Some(id) = live_with_digest(db, name_id, digest)? else {
                return Ok(None);
            };
            point_aliases(db, name_id, id, &new.aliases)?;
            let new_edge = match &new.run_id {
                Some(run) => add_edge(db, id, run, new.run_role, new.now_ms)?,
                None => false,
            };
            Ok(Some((id, new_edge)))
        })
    }
    fn land_version(
        &self,
        new: &NewArtifactVersion,
        metadata: &str,
        landing: &Landing<'_>,
    ) -> Result<Landed> {
        let name = new.name.as_str();
        let Landing {
            manifest,
            digest,
            temps,
            cache_rows,
            tree,
        } = *landing;
        let blobs = self.blobs();
        self.write(|db| {
            let project_id = project_id(db, &new.project, new.now_ms)?;
            let name_id = name_row(db, project_id, name, &new.kind, new.now_ms)?;
            save_cache(db, cache_rows)?;
            if let Some(stamps) = tree {
                db.exec(
                    "INSERT INTO tree_stamps (stamps, digest) VALUES ($1, $2)
                     ON CONFLICT (stamps) DO UPDATE SET digest = excluded.digest",
                    &[&stamps, &digest],
                )?;
            }
            if let Some(id) = live_with_digest(db, name_id, digest)? {
                point_aliases(db, name_id, id, &new.aliases)?;
                let linked = match &new.run_id {
                    Some(run) => add_edge(db, id, run, new.run_role, new.now_ms)?,
                    None => false,
                };
                return Ok(Landed::Done(Box::new((id, false, 0, linked))));
            }
            let needed: BTreeSet<&str> = manifest
                .entries()
                .iter()
                .filter(|e| e.reference.is_none())
                .map(|e| e.hash.as_str())
                .collect();
            let mut to_place = Vec::new();
            let mut missing = Vec::new();
            for hash in needed {
                lock_blob(db, hash)?;
                if blobs.contains(hash)? {
                    continue;
                }
                match temps.get(hash) {
                    Some(t) => to_place.push((hash, t)),
                    None => missing.push(hash.to_string()),
                }
            }
            if !missing.is_empty() {
                return Ok(Landed::Missing(missing));
            }
            let mut bytes_stored = 0u64;
            for (hash, temp) in &to_place {
                bytes_stored += blobs.place(temp, hash)?;
            }
            if !to_place.is_empty() {
                blobs.sync()?;
            }
            let version: i64 = db
                .one(
                    "SELECT COALESCE(MAX(version) + 1, 0) FROM artifact_versions WHERE name_id = $1",
                    &[&name_id],
                )?
                .try_get(0)?;
            let id: i64 = db
                .one(
                    "INSERT INTO artifact_versions
                         (name_id, version, digest, size, files, metadata, description, created_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                    &[
                        &name_id,
                        &version,
                        &digest,
                        &(manifest.total_size() as i64),
                        &(manifest.entries().len() as i64),
                        &metadata,
                        &new.description,
                        &new.now_ms,
                    ],
                )?
                .try_get(0)?;
            for e in manifest.entries() {
                db.exec(
                    "INSERT INTO artifact_files (version_id, path, hash, size, reference)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&id, &e.path, &e.hash, &(e.size as i64), &e.reference],
                )?;
            }
            let mut aliases = new.aliases.clone();
            aliases.push(LATEST.to_string());
            point_aliases(db, name_id, id, &aliases)?;
            let linked = match &new.run_id {
                Some(run) => add_edge(db, id, run, new.run_role, new.now_ms)?,
                None => false,
            };
            Ok(Landed::Done(Box::new((id, true, bytes_stored, linked))))
        })
    }
    fn version_by_id(&self, id: i64) -> Result<ArtifactVersion> {
        self.version_opt(id)?.ok_or_else(|| no_version(id))
    }
    fn version_opt(&self, id: i64) -> Result<Option<ArtifactVersion>> {
        self.read(|db| Ok(load_versions(db, "v.id = $1", &[&id])?.pop()))
    }
    fn manifest(&self, version_id: i64) -> Result<Manifest> {
        self.artifact_manifest(version_id)
    }
    fn check_run(&self, run_id: &str) -> Result<()> {
        self.read(|db| run_pk(db, run_id).map(|_| ()))
    }
    fn version_edges(&self, version_id: i64) -> Result<Vec<(String, String)>> {
        self.read(|db| {
            db.rows(
                "SELECT run_id, role FROM artifact_edges WHERE version_id = $1 ORDER BY created_ms",
                &[&version_id],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
        })
    }
    fn run_edges(&self, run_id: &str, skip_kind: &str) -> Result<Vec<(i64, String)>> {
        self.read(|db| {
            db.rows(
                "SELECT e.version_id, e.role FROM artifact_edges e
                 JOIN artifact_versions v ON v.id = e.version_id
                 JOIN artifact_names n ON n.id = v.name_id
                 WHERE e.run_id = $1 AND n.kind != $2 ORDER BY e.created_ms",
                &[&run_id, &skip_kind],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
        })
    }
    fn run_label(&self, run_id: &str) -> Result<Option<(String, String, String)>> {
        self.read(|db| {
            db.row(
                "SELECT r.name, p.name, r.status FROM runs r JOIN projects p ON p.id = r.project_id
                 WHERE r.id = $1",
                &[&run_id],
            )?
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .transpose()
        })
    }
}

impl PgStore {
    pub fn log_artifact_version(&self, new: &NewArtifactVersion) -> Result<LoggedVersion> {
        versioning::log_artifact_version(self, new)
    }

    pub fn record_artifact_version(
        &self,
        new: &NewArtifactVersion,
        entries: Vec<ManifestEntry>,
        digest: Option<String>,
    ) -> Result<ArtifactVersion> {
        versioning::record_artifact_version(self, new, entries, digest)
    }

    pub fn download_artifact_version(
        &self,
        version: &ArtifactVersion,
        dest: &Path,
        placement: Placement,
    ) -> Result<()> {
        versioning::download_artifact_version(self, version, dest, placement)
    }

    pub fn verify_artifact_references(
        &self,
        version: &ArtifactVersion,
    ) -> Result<Vec<ChangedFile>> {
        versioning::verify_artifact_references(self, version)
    }

    pub fn lineage(&self, start: &LineageStart) -> Result<LineageGraph> {
        versioning::lineage(self, start)
    }

    /// Makes a version's stored files also plain artifact files under
    /// `prefix` (replacing what was there). No bytes are copied.
    pub fn link_version_files(&self, version_id: i64, prefix: &str, now_ms: i64) -> Result<()> {
        let prefix = normalize_artifact_path(prefix)?;
        if prefix.is_empty() {
            return Err(ValidationError::new(
                "path",
                "a version is linked under a folder, not the root",
            )
            .into());
        }
        let manifest = self.artifact_manifest(version_id)?;
        let upper = format!("{prefix}0");
        let under = format!("{prefix}/");
        self.write(|db| {
            db.exec(
                "DELETE FROM artifacts WHERE path >= $1 AND path < $2",
                &[&under, &upper],
            )?;
            for e in manifest.entries().iter().filter(|e| e.reference.is_none()) {
                db.exec(
                    "INSERT INTO artifacts (path, hash, size, created_ms, version_id) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (path) DO UPDATE SET hash = excluded.hash, size = excluded.size,
                         created_ms = excluded.created_ms, version_id = excluded.version_id",
                    &[&format!("{under}{}", e.path), &e.hash, &(e.size as i64), &now_ms, &version_id],
                )?;
            }
            Ok(())
        })
    }

    /// Every plain artifact file under `dir` with its hash, paths relative
    /// to `dir`.
    pub fn artifact_files_under(&self, dir: &str) -> Result<Vec<ManifestEntry>> {
        let dir = normalize_artifact_path(dir)?;
        let under = format!("{dir}/");
        let upper = format!("{dir}0");
        let rows = self.read(|db| {
            db.rows(
                "SELECT path, size, hash FROM artifacts WHERE path >= $1 AND path < $2 ORDER BY path",
                &[&under, &upper],
            )?
            .iter()
            .map(|r| Ok((r.try_get::<_, String>(0)?, r.try_get::<_, i64>(1)?, r.try_get::<_, String>(2)?)))
            .collect::<Result<Vec<_>>>()
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(path, size, hash)| {
                Some(ManifestEntry {
                    path: path.strip_prefix(&under)?.to_string(),
                    size: size as u64,
                    hash,
                    reference: None,
                })
            })
            .collect())
    }

    pub fn artifact_version_by_id(&self, id: i64) -> Result<ArtifactVersion> {
        self.version_by_id(id)
    }

    /// The version `reference` (`name:v3`, `name:alias`, `name`) names.
    pub fn resolve_artifact(
        &self,
        project: Option<&str>,
        reference: &str,
    ) -> Result<ArtifactVersion> {
        let parsed = ArtifactRef::parse(reference)?;
        self.read(|db| {
            let names: Vec<(i64, String)> = db
                .rows(
                    "SELECT n.id, p.name FROM artifact_names n JOIN projects p ON p.id = n.project_id
                     WHERE n.name = $1 AND ($2::TEXT IS NULL OR p.name = $2) ORDER BY p.name",
                    &[&parsed.name, &project],
                )?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_>>()?;
            let name_id = versioning::the_one_name(&parsed.name, project, &names)?;
            let found = match &parsed.version {
                VersionSelector::Number(n) => load_versions(
                    db,
                    "v.name_id = $1 AND v.version = $2",
                    &[&name_id, &(*n as i64)],
                )?,
                VersionSelector::Alias(a) => load_versions(
                    db,
                    "v.id = (SELECT version_id FROM artifact_aliases WHERE name_id = $1 AND alias = $2)",
                    &[&name_id, a],
                )?,
            };
            found.into_iter().next().ok_or(StoreError::NotFound {
                what: "artifact version",
                id: parsed.to_string(),
            })
        })
    }

    /// Named artifacts, by project and name, optionally of one type.
    pub fn artifact_names(
        &self,
        project: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<ArtifactName>> {
        self.read(|db| {
            let rows = db.rows(
                "SELECT n.id, p.name, n.name, n.kind, n.created_ms,
                    (SELECT COUNT(*) FROM artifact_versions v WHERE v.name_id = n.id AND v.deleted_ms IS NULL),
                    (SELECT MAX(v.created_ms) FROM artifact_versions v WHERE v.name_id = n.id)
                 FROM artifact_names n JOIN projects p ON p.id = n.project_id
                 WHERE ($1::TEXT IS NULL OR p.name = $1) AND ($2::TEXT IS NULL OR n.kind = $2)
                 ORDER BY p.name, n.name",
                &[&project, &kind],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let id: i64 = r.try_get(0)?;
                let created: i64 = r.try_get(4)?;
                let mut name = ArtifactName {
                    project: r.try_get(1)?,
                    name: r.try_get(2)?,
                    kind: r.try_get(3)?,
                    versions: r.try_get::<_, i64>(5)? as u64,
                    latest: None,
                    latest_size: 0,
                    aliases: Vec::new(),
                    updated_ms: r.try_get::<_, Option<i64>>(6)?.unwrap_or(created),
                };
                for a in db.rows(
                    "SELECT a.alias, v.version, v.size FROM artifact_aliases a
                     JOIN artifact_versions v ON v.id = a.version_id WHERE a.name_id = $1 ORDER BY a.alias",
                    &[&id],
                )? {
                    let alias: String = a.try_get(0)?;
                    let version = a.try_get::<_, i64>(1)? as u64;
                    if alias == LATEST {
                        name.latest = Some(version);
                        name.latest_size = a.try_get::<_, i64>(2)? as u64;
                    }
                    name.aliases.push((alias, version));
                }
                out.push(name);
            }
            Ok(out)
        })
    }

    /// Every version of a name, newest first, deleted ones included.
    pub fn artifact_versions(&self, project: &str, name: &str) -> Result<Vec<ArtifactVersion>> {
        let mut out = self.read(|db| {
            load_versions(
                db,
                "v.name_id = (SELECT n.id FROM artifact_names n JOIN projects p ON p.id = n.project_id
                              WHERE p.name = $1 AND n.name = $2)",
                &[&project, &name],
            )
        })?;
        out.sort_by_key(|v| std::cmp::Reverse(v.version));
        Ok(out)
    }

    /// A version's files.
    pub fn artifact_manifest(&self, version_id: i64) -> Result<Manifest> {
        let entries = self.read(|db| {
            db.rows(
                "SELECT path, size, hash, reference FROM artifact_files WHERE version_id = $1 ORDER BY path",
                &[&version_id],
            )?
            .iter()
            .map(|r| {
                Ok(ManifestEntry {
                    path: r.try_get(0)?,
                    size: r.try_get::<_, i64>(1)? as u64,
                    hash: r.try_get(2)?,
                    reference: r.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>>>()
        })?;
        Ok(Manifest::new(entries)?)
    }

    /// The runs that produced and used a version, oldest first.
    pub fn artifact_edges(&self, version_id: i64) -> Result<Vec<RunArtifactEdge>> {
        self.read(|db| {
            db.rows(
                "SELECT run_id, role, created_ms FROM artifact_edges WHERE version_id = $1
                 ORDER BY created_ms, run_id",
                &[&version_id],
            )?
            .iter()
            .map(|r| {
                Ok(RunArtifactEdge {
                    run_id: r.try_get(0)?,
                    role: role_of(&r.try_get::<_, String>(1)?),
                    created_ms: r.try_get(2)?,
                })
            })
            .collect()
        })
    }

    /// The versions a run used and produced.
    pub fn run_artifact_versions(&self, run_id: &str) -> Result<Vec<(ArtifactVersion, EdgeRole)>> {
        self.read(|db| {
            let edges: Vec<(i64, String)> = db
                .rows(
                    "SELECT version_id, role FROM artifact_edges WHERE run_id = $1 ORDER BY created_ms",
                    &[&run_id],
                )?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_>>()?;
            let mut out = Vec::with_capacity(edges.len());
            for (id, role) in edges {
                if let Some(v) = load_versions(db, "v.id = $1", &[&id])?.pop() {
                    out.push((v, role_of(&role)));
                }
            }
            Ok(out)
        })
    }

    /// Records that `run_id` used the version.
    pub fn use_artifact_version(&self, run_id: &str, version_id: i64, now_ms: i64) -> Result<()> {
        self.write(|db| {
            run_pk(db, run_id)?;
            add_edge(db, version_id, run_id, EdgeRole::Input, now_ms).map(|_| ())
        })
    }

    /// Points `alias` at the version (moving it from another).
    pub fn set_artifact_alias(&self, version_id: i64, alias: &str) -> Result<()> {
        validate_alias(alias)?;
        self.write(|db| {
            let row = db
                .row(
                    "SELECT name_id, deleted_ms FROM artifact_versions WHERE id = $1",
                    &[&version_id],
                )?
                .ok_or_else(|| no_version(version_id))?;
            let (name_id, deleted): (i64, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
            if deleted.is_some() {
                return Err(StoreError::Conflict(
                    "that version is deleted; an alias cannot point at it".into(),
                ));
            }
            point_aliases(db, name_id, version_id, &[alias.to_string()])
        })
    }

    /// Removes an alias of a name; true if it was set.
    pub fn remove_artifact_alias(&self, version: &ArtifactVersion, alias: &str) -> Result<bool> {
        validate_alias(alias)?;
        self.write(|db| {
            Ok(db.exec(
                "DELETE FROM artifact_aliases WHERE alias = $2
                 AND name_id = (SELECT name_id FROM artifact_versions WHERE id = $1)",
                &[&version.id, &alias],
            )? > 0)
        })
    }

    /// Soft-deletes a version; `gc` frees its contents later.
    pub fn delete_artifact_version(&self, version_id: i64, now_ms: i64) -> Result<()> {
        self.write(|db| {
            let name_id: i64 = db
                .row(
                    "SELECT name_id FROM artifact_versions WHERE id = $1",
                    &[&version_id],
                )?
                .ok_or_else(|| no_version(version_id))?
                .try_get(0)?;
            db.exec(
                "SELECT id FROM artifact_names WHERE id = $1 FOR UPDATE",
                &[&name_id],
            )?;
            db.exec(
                "UPDATE artifact_versions SET deleted_ms = $2 WHERE id = $1 AND deleted_ms IS NULL",
                &[&version_id, &now_ms],
            )?;
            db.exec(
                "DELETE FROM artifact_aliases WHERE version_id = $1",
                &[&version_id],
            )?;
            // Its files shown among a run's go with it.
            db.exec(
                "DELETE FROM artifacts WHERE version_id = $1",
                &[&version_id],
            )?;
            let newest: Option<i64> = db
                .row(
                    "SELECT id FROM artifact_versions WHERE name_id = $1 AND deleted_ms IS NULL
                     ORDER BY version DESC LIMIT 1",
                    &[&name_id],
                )?
                .map(|r| r.try_get(0))
                .transpose()?;
            if let Some(id) = newest {
                point_aliases(db, name_id, id, &[LATEST.to_string()])?;
            }
            Ok(())
        })
    }
}
