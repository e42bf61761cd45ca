//! Versioned artifacts (issue 11) in SQLite: named, immutable versions
//! whose files live in the same content-addressed blobs as MLflow's
//! artifacts, with aliases, lineage edges to runs, a hash cache and
//! garbage collection. How a version is logged, and the rule that keeps
//! it safe from a concurrent collection, is `crate::versioning`; SQLite's
//! one write lock is the lock that rule needs.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, Transaction, params};

use labbook_core::ValidationError;
use labbook_core::artifact::normalize_artifact_path;
use labbook_core::artifact_version::{
    ArtifactRef, LATEST, Manifest, ManifestEntry, VersionSelector, validate_alias,
};

use super::SqliteStore;
use crate::content_hash::FileStamp;
use crate::error::{Result, StoreError};
use crate::private::Modes;
use crate::versioning::{self, Landed, Landing, Staged, VersionIndex, invalid, role_of};
use crate::versions::*;

/// Blobs removed per hold of the write lock by `gc`.
const GC_BLOBS_PER_LOCK: usize = 1024;

impl SqliteStore {
    /// Logs a version (`versioning::log_artifact_version`).
    pub fn log_artifact_version(&self, new: &NewArtifactVersion) -> Result<LoggedVersion> {
        versioning::log_artifact_version(self, new)
    }

    /// Records a version whose contents the store holds
    /// (`versioning::record_artifact_version`).
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

    fn tmp_dir(&self) -> PathBuf {
        self.dir.join("artifacts").join("tmp")
    }

    /// Hashes of files whose stamp is the one the cache holds.
    fn cached_hashes_impl(&self, staged: &[Staged]) -> Result<Vec<Option<String>>> {
        let conn = self.conn.lock();
        // One read transaction: the lookups share one shared lock instead
        // of taking and dropping it per file.
        let tx = conn.unchecked_transaction()?;
        let mut stmt = tx.prepare_cached(
            "SELECT dev, ino, size, mtime_ns, ctime_ns, hash FROM hash_cache WHERE path = ?1",
        )?;
        let found = staged
            .iter()
            .map(|s| {
                let Some(key) = s.path.to_str() else {
                    return Ok(None);
                };
                let row = stmt
                    .query_row([key], |r| {
                        Ok((
                            FileStamp {
                                dev: r.get::<_, i64>(0)? as u64,
                                ino: r.get::<_, i64>(1)? as u64,
                                size: r.get::<_, i64>(2)? as u64,
                                mtime_ns: r.get(3)?,
                                ctime_ns: r.get(4)?,
                            },
                            r.get::<_, String>(5)?,
                        ))
                    })
                    .optional()?;
                Ok(row.and_then(|(stamp, hash)| (stamp == s.stamp).then_some(hash)))
            })
            .collect();
        drop(stmt);
        found
    }

    /// The one write transaction of a log: see `versioning`'s comment.
    fn land_version_impl(
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
        self.write(|tx| {
            let project_id = Self::project_id(tx, &new.project, new.now_ms)?;
            let name_id = name_row(tx, project_id, name, &new.kind, new.now_ms)?;
            save_cache(tx, cache_rows)?;
            if let Some(stamps) = tree {
                tx.prepare_cached(
                    "INSERT INTO tree_stamps (stamps, digest) VALUES (?1, ?2)
                     ON CONFLICT (stamps) DO UPDATE SET digest = excluded.digest",
                )?
                .execute(params![stamps, digest])?;
            }
            let existing: Option<i64> = tx
                .prepare_cached(
                    "SELECT id FROM artifact_versions
                     WHERE name_id = ?1 AND digest = ?2 AND deleted_ms IS NULL
                     ORDER BY version LIMIT 1",
                )?
                .query_row(params![name_id, digest], |r| r.get(0))
                .optional()?;
            if let Some(id) = existing {
                point_aliases(tx, name_id, id, &new.aliases)?;
                let linked = match &new.run_id {
                    Some(run) => add_edge(tx, id, run, new.run_role, new.now_ms)?,
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
            let blobs = self.blobs();
            for hash in needed {
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
            let version: i64 = tx
                .prepare_cached(
                    "SELECT COALESCE(MAX(version) + 1, 0) FROM artifact_versions WHERE name_id = ?1",
                )?
                .query_row([name_id], |r| r.get(0))?;
            tx.prepare_cached(
                "INSERT INTO artifact_versions
                     (name_id, version, digest, size, files, metadata, description, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                name_id,
                version,
                digest,
                manifest.total_size() as i64,
                manifest.entries().len() as i64,
                metadata,
                new.description,
                new.now_ms
            ])?;
            let id = tx.last_insert_rowid();
            let mut insert = tx.prepare_cached(
                "INSERT INTO artifact_files (version_id, path, hash, size, reference)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for e in manifest.entries() {
                insert.execute(params![id, e.path, e.hash, e.size as i64, e.reference])?;
            }
            let mut aliases = new.aliases.clone();
            aliases.push(LATEST.to_string());
            point_aliases(tx, name_id, id, &aliases)?;
            let linked = match &new.run_id {
                Some(run) => add_edge(tx, id, run, new.run_role, new.now_ms)?,
                None => false,
            };
            Ok(Landed::Done(Box::new((id, true, bytes_stored, linked))))
        })
    }

    /// Makes a version's stored files also plain artifact files under
    /// `prefix` (replacing what was there), so a listing of that folder
    /// (a run's MLflow artifacts) shows them. No bytes are copied.
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
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM artifacts WHERE path >= ?1 AND path < ?2")?
                .execute(params![under, upper])?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO artifacts (path, hash, size, created_ms, version_id) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (path) DO UPDATE SET hash = excluded.hash, size = excluded.size,
                     created_ms = excluded.created_ms, version_id = excluded.version_id",
            )?;
            for e in manifest.entries().iter().filter(|e| e.reference.is_none()) {
                insert.execute(params![
                    format!("{under}{}", e.path),
                    e.hash,
                    e.size as i64,
                    now_ms,
                    version_id
                ])?;
            }
            Ok(())
        })
    }

    /// Every plain artifact file under `dir` with its hash, paths relative
    /// to `dir`: what a logged model's folder holds, as a manifest.
    pub fn artifact_files_under(&self, dir: &str) -> Result<Vec<ManifestEntry>> {
        let dir = normalize_artifact_path(dir)?;
        let under = format!("{dir}/");
        let upper = format!("{dir}0");
        let conn = self.conn.lock();
        let rows = conn
            .prepare_cached(
                "SELECT path, size, hash FROM artifacts WHERE path >= ?1 AND path < ?2 ORDER BY path",
            )?
            .query_map(params![under, upper], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
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

    /// A version by its row id.
    pub fn artifact_version_by_id(&self, id: i64) -> Result<ArtifactVersion> {
        let conn = self.conn.lock();
        load_versions(&conn, "v.id = ?1", &[&id])?
            .pop()
            .ok_or_else(|| StoreError::NotFound {
                what: "artifact version",
                id: id.to_string(),
            })
    }

    /// The version `reference` (`name:v3`, `name:alias`, `name`) names,
    /// deleted ones included when named by number. Without a project, the
    /// name must be in one project only.
    pub fn resolve_artifact(
        &self,
        project: Option<&str>,
        reference: &str,
    ) -> Result<ArtifactVersion> {
        let parsed = ArtifactRef::parse(reference)?;
        let conn = self.conn.lock();
        let names: Vec<(i64, String)> = conn
            .prepare_cached(
                "SELECT n.id, p.name FROM artifact_names n JOIN projects p ON p.id = n.project_id
                 WHERE n.name = ?1 AND (?2 IS NULL OR p.name = ?2) ORDER BY p.name",
            )?
            .query_map(params![parsed.name, project], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let name_id = versioning::the_one_name(&parsed.name, project, &names)?;
        let found = match &parsed.version {
            VersionSelector::Number(n) => load_versions(
                &conn,
                "v.name_id = ?1 AND v.version = ?2",
                &[&name_id, &(*n as i64)],
            )?,
            VersionSelector::Alias(a) => load_versions(
                &conn,
                "v.id = (SELECT version_id FROM artifact_aliases WHERE name_id = ?1 AND alias = ?2)",
                &[&name_id, a],
            )?,
        };
        found.into_iter().next().ok_or(StoreError::NotFound {
            what: "artifact version",
            id: parsed.to_string(),
        })
    }

    /// Named artifacts, by project and name, optionally of one type.
    pub fn artifact_names(
        &self,
        project: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<ArtifactName>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT n.id, p.name, n.name, n.kind, n.created_ms,
                (SELECT COUNT(*) FROM artifact_versions v WHERE v.name_id = n.id AND v.deleted_ms IS NULL),
                (SELECT MAX(v.created_ms) FROM artifact_versions v WHERE v.name_id = n.id)
             FROM artifact_names n JOIN projects p ON p.id = n.project_id
             WHERE (?1 IS NULL OR p.name = ?1) AND (?2 IS NULL OR n.kind = ?2)
             ORDER BY p.name, n.name",
        )?;
        let mut out: Vec<(i64, ArtifactName)> = stmt
            .query_map(params![project, kind], |r| {
                let created: i64 = r.get(4)?;
                Ok((
                    r.get(0)?,
                    ArtifactName {
                        project: r.get(1)?,
                        name: r.get(2)?,
                        kind: r.get(3)?,
                        versions: r.get::<_, i64>(5)? as u64,
                        latest: None,
                        latest_size: 0,
                        aliases: Vec::new(),
                        updated_ms: r.get::<_, Option<i64>>(6)?.unwrap_or(created),
                    },
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut aliases_of = conn.prepare_cached(
            "SELECT a.alias, v.version, v.size FROM artifact_aliases a
             JOIN artifact_versions v ON v.id = a.version_id WHERE a.name_id = ?1 ORDER BY a.alias",
        )?;
        for (id, name) in &mut out {
            for row in aliases_of.query_map([*id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                ))
            })? {
                let (alias, version, size) = row?;
                if alias == LATEST {
                    name.latest = Some(version);
                    name.latest_size = size;
                }
                name.aliases.push((alias, version));
            }
        }
        Ok(out.into_iter().map(|(_, name)| name).collect())
    }

    /// Every version of a name, newest first, deleted ones included.
    pub fn artifact_versions(&self, project: &str, name: &str) -> Result<Vec<ArtifactVersion>> {
        let conn = self.conn.lock();
        let mut out = load_versions(
            &conn,
            "v.name_id = (SELECT n.id FROM artifact_names n JOIN projects p ON p.id = n.project_id
                          WHERE p.name = ?1 AND n.name = ?2)",
            &[&project, &name],
        )?;
        out.sort_by_key(|v| std::cmp::Reverse(v.version));
        Ok(out)
    }

    /// A version's files.
    pub fn artifact_manifest(&self, version_id: i64) -> Result<Manifest> {
        let conn = self.conn.lock();
        let entries = conn
            .prepare_cached(
                "SELECT path, size, hash, reference FROM artifact_files WHERE version_id = ?1 ORDER BY path",
            )?
            .query_map([version_id], |r| {
                Ok(ManifestEntry {
                    path: r.get(0)?,
                    size: r.get::<_, i64>(1)? as u64,
                    hash: r.get(2)?,
                    reference: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Manifest::new(entries)?)
    }

    /// The runs that produced and used a version, oldest first.
    pub fn artifact_edges(&self, version_id: i64) -> Result<Vec<RunArtifactEdge>> {
        let conn = self.conn.lock();
        let rows = conn
            .prepare_cached(
                "SELECT run_id, role, created_ms FROM artifact_edges WHERE version_id = ?1
                 ORDER BY created_ms, run_id",
            )?
            .query_map([version_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows
            .into_iter()
            .map(|(run_id, role, created_ms)| RunArtifactEdge {
                run_id,
                role: role_of(&role),
                created_ms,
            })
            .collect())
    }

    /// The versions a run used and produced.
    pub fn run_artifact_versions(&self, run_id: &str) -> Result<Vec<(ArtifactVersion, EdgeRole)>> {
        let conn = self.conn.lock();
        let edges: Vec<(i64, String)> = conn
            .prepare_cached(
                "SELECT version_id, role FROM artifact_edges WHERE run_id = ?1 ORDER BY created_ms",
            )?
            .query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::with_capacity(edges.len());
        for (id, role) in edges {
            if let Some(v) = load_versions(&conn, "v.id = ?1", &[&id])?.pop() {
                out.push((v, role_of(&role)));
            }
        }
        Ok(out)
    }

    /// Records that `run_id` used the version.
    pub fn use_artifact_version(&self, run_id: &str, version_id: i64, now_ms: i64) -> Result<()> {
        self.write(|tx| {
            Self::run_pk(tx, run_id)?;
            add_edge(tx, version_id, run_id, EdgeRole::Input, now_ms).map(|_| ())
        })
    }

    /// Points `alias` at the version (moving it from another).
    pub fn set_artifact_alias(&self, version_id: i64, alias: &str) -> Result<()> {
        validate_alias(alias)?;
        self.write(|tx| {
            let (name_id, deleted): (i64, Option<i64>) = tx
                .prepare_cached("SELECT name_id, deleted_ms FROM artifact_versions WHERE id = ?1")?
                .query_row([version_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .ok_or(StoreError::NotFound {
                    what: "artifact version",
                    id: version_id.to_string(),
                })?;
            if deleted.is_some() {
                return Err(StoreError::Conflict(
                    "that version is deleted; an alias cannot point at it".into(),
                ));
            }
            point_aliases(tx, name_id, version_id, &[alias.to_string()])
        })
    }

    /// Removes an alias of a name; true if it was set.
    pub fn remove_artifact_alias(&self, version: &ArtifactVersion, alias: &str) -> Result<bool> {
        validate_alias(alias)?;
        self.write(|tx| {
            Ok(tx
                .prepare_cached(
                    "DELETE FROM artifact_aliases WHERE alias = ?2
                     AND name_id = (SELECT name_id FROM artifact_versions WHERE id = ?1)",
                )?
                .execute(params![version.id, alias])?
                > 0)
        })
    }

    /// Soft-deletes a version: hidden from listings and resolution by
    /// alias, its aliases dropped (`latest` moves to the newest live
    /// version); `gc` frees its contents later.
    pub fn delete_artifact_version(&self, version_id: i64, now_ms: i64) -> Result<()> {
        self.write(|tx| {
            let name_id: i64 = tx
                .prepare_cached("SELECT name_id FROM artifact_versions WHERE id = ?1")?
                .query_row([version_id], |r| r.get(0))
                .optional()?
                .ok_or(StoreError::NotFound {
                    what: "artifact version",
                    id: version_id.to_string(),
                })?;
            tx.prepare_cached(
                "UPDATE artifact_versions SET deleted_ms = ?2 WHERE id = ?1 AND deleted_ms IS NULL",
            )?
            .execute(params![version_id, now_ms])?;
            tx.prepare_cached("DELETE FROM artifact_aliases WHERE version_id = ?1")?
                .execute([version_id])?;
            // Its files shown among a run's go with it.
            tx.prepare_cached("DELETE FROM artifacts WHERE version_id = ?1")?
                .execute([version_id])?;
            let newest: Option<i64> = tx
                .prepare_cached(
                    "SELECT id FROM artifact_versions WHERE name_id = ?1 AND deleted_ms IS NULL
                     ORDER BY version DESC LIMIT 1",
                )?
                .query_row([name_id], |r| r.get(0))
                .optional()?;
            if let Some(id) = newest {
                point_aliases(tx, name_id, id, &[LATEST.to_string()])?;
            }
            Ok(())
        })
    }

    /// Frees what nothing live references: first the rows of soft-deleted
    /// versions, then every blob no row points at (each re-checked and
    /// removed under the write lock, see the module's comment), then temp
    /// files left by writers that died. `dry_run` only reports.
    pub fn gc(&self, dry_run: bool, now_ms: i64) -> Result<GcReport> {
        let mut report = GcReport {
            dry_run,
            ..GcReport::default()
        };
        {
            let conn = self.conn.lock();
            report.versions_purged = conn
                .prepare_cached(
                    "SELECT n.name, v.version FROM artifact_versions v JOIN artifact_names n ON n.id = v.name_id
                     WHERE v.deleted_ms IS NOT NULL AND v.purged_ms IS NULL ORDER BY n.name, v.version",
                )?
                .query_map([], |r| Ok(format!("{}:v{}", r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
        }
        if !dry_run && !report.versions_purged.is_empty() {
            self.write(|tx| {
                tx.execute(
                    "DELETE FROM artifact_files WHERE version_id IN
                         (SELECT id FROM artifact_versions WHERE deleted_ms IS NOT NULL AND purged_ms IS NULL)",
                    [],
                )?;
                tx.execute(
                    "UPDATE artifact_versions SET purged_ms = ?1 WHERE deleted_ms IS NOT NULL AND purged_ms IS NULL",
                    [now_ms],
                )?;
                Ok(())
            })?;
        }
        let referenced: HashSet<String> = {
            let conn = self.conn.lock();
            let mut set = HashSet::new();
            let mut stmt = conn.prepare(
                "SELECT hash FROM artifacts
                 UNION SELECT f.hash FROM artifact_files f JOIN artifact_versions v ON v.id = f.version_id
                 WHERE f.reference IS NULL AND v.deleted_ms IS NULL",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                set.insert(row.get::<_, String>(0)?);
            }
            set
        };
        let blobs = self.blobs();
        let mut candidates = Vec::new();
        for (hash, size) in blobs.list()? {
            report.blobs_scanned += 1;
            if !referenced.contains(&hash) {
                candidates.push(FreedBlob { hash, size });
            }
        }
        candidates.sort_by(|a, b| a.hash.cmp(&b.hash));
        if dry_run {
            report.bytes = candidates.iter().map(|b| b.size).sum();
            report.blobs = candidates;
        } else {
            let pause = gc_pause();
            for (i, batch) in candidates.chunks(GC_BLOBS_PER_LOCK).enumerate() {
                if i > 0 && !pause.is_zero() {
                    std::thread::sleep(pause);
                }
                let freed = self.write(|tx| {
                    let mut in_use = tx.prepare_cached(
                        "SELECT 1 FROM artifacts WHERE hash = ?1
                         UNION ALL SELECT 1 FROM artifact_files WHERE hash = ?1 AND reference IS NULL
                         LIMIT 1",
                    )?;
                    let mut unreferenced = Vec::new();
                    for blob in batch {
                        if in_use.query_row([&blob.hash], |_| Ok(())).optional()?.is_none() {
                            unreferenced.push(blob);
                        }
                    }
                    let removed = blobs.remove(
                        &unreferenced
                            .iter()
                            .map(|b| b.hash.as_str())
                            .collect::<Vec<_>>(),
                    );
                    Ok(unreferenced
                        .into_iter()
                        .zip(removed)
                        .filter(|(_, ok)| *ok)
                        .map(|(b, _)| b.clone())
                        .collect::<Vec<_>>())
                })?;
                report.bytes += freed.iter().map(|b| b.size).sum::<u64>();
                report.blobs.extend(freed);
            }
        }
        report.stale_temp_files = crate::blobs::sweep_stale_temps(&self.tmp_dir(), dry_run);
        Ok(report)
    }
}

impl VersionIndex for SqliteStore {
    fn spool_dir(&self) -> PathBuf {
        self.tmp_dir()
    }
    fn prepare_spool(&self) -> Result<()> {
        self.real_dir(&self.tmp_dir())
    }
    fn spool_modes(&self) -> Modes {
        Modes::of(&self.dir)
    }
    fn version_blobs(&self) -> std::sync::Arc<dyn crate::blobs::Blobs> {
        self.blobs()
    }
    fn cached_hashes(&self, staged: &[Staged]) -> Result<Vec<Option<String>>> {
        self.cached_hashes_impl(staged)
    }
    fn save_cache(&self, rows: &[(String, FileStamp, String)]) -> Result<()> {
        self.write(|tx| save_cache(tx, rows))
    }
    fn known_tree(&self, stamps: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .lock()
            .prepare_cached("SELECT digest FROM tree_stamps WHERE stamps = ?1")?
            .query_row([stamps], |r| r.get(0))
            .optional()?)
    }
    fn land_known(&self, new: &NewArtifactVersion, digest: &str) -> Result<Option<(i64, bool)>> {
        self.write(|tx| {
            let project_id = Self::project_id(tx, &new.project, new.now_ms)?;
            let Some(name_id) = tx
                .prepare_cached(
                    "SELECT id FROM artifact_names WHERE project_id = ?1 AND name = ?2 AND kind = ?3",
                )?
                .query_row(params![project_id, new.name, new.kind], |r| r.get::<_, i64>(0))
                .optional()?
            else {
                return Ok(None);
            };
            let Some(id) = tx
                .prepare_cached(
                    "SELECT id FROM artifact_versions
                     WHERE name_id = ?1 AND digest = ?2 AND deleted_ms IS NULL
                     ORDER BY version LIMIT 1",
                )?
                .query_row(params![name_id, digest], |r| r.get::<_, i64>(0))
                .optional()?
            else {
                return Ok(None);
            };
            point_aliases(tx, name_id, id, &new.aliases)?;
            let new_edge = match &new.run_id {
                Some(run) => add_edge(tx, id, run, new.run_role, new.now_ms)?,
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
        self.land_version_impl(new, metadata, landing)
    }
    fn version_by_id(&self, id: i64) -> Result<ArtifactVersion> {
        self.artifact_version_by_id(id)
    }
    fn version_opt(&self, id: i64) -> Result<Option<ArtifactVersion>> {
        Ok(load_versions(&self.conn.lock(), "v.id = ?1", &[&id])?.pop())
    }
    fn manifest(&self, version_id: i64) -> Result<Manifest> {
        self.artifact_manifest(version_id)
    }
    fn check_run(&self, run_id: &str) -> Result<()> {
        Self::run_pk(&self.conn.lock(), run_id).map(|_| ())
    }
    fn version_edges(&self, version_id: i64) -> Result<Vec<(String, String)>> {
        Ok(self
            .conn
            .lock()
            .prepare_cached(
                "SELECT run_id, role FROM artifact_edges WHERE version_id = ?1 ORDER BY created_ms",
            )?
            .query_map([version_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?)
    }
    fn run_edges(&self, run_id: &str, skip_kind: &str) -> Result<Vec<(i64, String)>> {
        Ok(self
            .conn
            .lock()
            .prepare_cached(
                "SELECT e.version_id, e.role FROM artifact_edges e
                 JOIN artifact_versions v ON v.id = e.version_id
                 JOIN artifact_names n ON n.id = v.name_id
                 WHERE e.run_id = ?1 AND n.kind != ?2 ORDER BY e.created_ms",
            )?
            .query_map(params![run_id, skip_kind], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?)
    }
    fn run_label(&self, run_id: &str) -> Result<Option<(String, String, String)>> {
        Ok(self
            .conn
            .lock()
            .prepare_cached(
                "SELECT r.name, p.name, r.status FROM runs r JOIN projects p ON p.id = r.project_id
                 WHERE r.id = ?1",
            )?
            .query_row([run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?)
    }
}

fn name_row(
    tx: &Transaction<'_>,
    project_id: i64,
    name: &str,
    kind: &str,
    now_ms: i64,
) -> Result<i64> {
    let found: Option<(i64, String)> = tx
        .prepare_cached("SELECT id, kind FROM artifact_names WHERE project_id = ?1 AND name = ?2")?
        .query_row(params![project_id, name], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match found {
        Some((id, k)) if k == kind => Ok(id),
        Some((_, k)) => Err(invalid(
            name,
            "type",
            format!("is a {k}, not a {kind}; use another name or type={k:?}"),
        )),
        None => {
            tx.prepare_cached(
                "INSERT INTO artifact_names (project_id, name, kind, created_ms) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![project_id, name, kind, now_ms])?;
            Ok(tx.last_insert_rowid())
        }
    }
}

fn point_aliases(
    tx: &Transaction<'_>,
    name_id: i64,
    version_id: i64,
    aliases: &[String],
) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO artifact_aliases (name_id, alias, version_id) VALUES (?1, ?2, ?3)
         ON CONFLICT (name_id, alias) DO UPDATE SET version_id = excluded.version_id",
    )?;
    for alias in aliases {
        stmt.execute(params![name_id, alias, version_id])?;
    }
    Ok(())
}

/// Links a run to a version; false if that link was there already.
fn add_edge(
    tx: &Transaction<'_>,
    version_id: i64,
    run_id: &str,
    role: EdgeRole,
    now_ms: i64,
) -> Result<bool> {
    Ok(tx
        .prepare_cached(
            "INSERT INTO artifact_edges (version_id, run_id, role, created_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![version_id, run_id, role.as_str(), now_ms])?
        > 0)
}

fn save_cache(tx: &Transaction<'_>, rows: &[(String, FileStamp, String)]) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO hash_cache (path, dev, ino, size, mtime_ns, ctime_ns, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (path) DO UPDATE SET dev = excluded.dev, ino = excluded.ino, size = excluded.size,
             mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns, hash = excluded.hash",
    )?;
    for (path, s, hash) in rows {
        stmt.execute(params![
            path,
            s.dev as i64,
            s.ino as i64,
            s.size as i64,
            s.mtime_ns,
            s.ctime_ns,
            hash
        ])?;
    }
    Ok(())
}

fn load_versions(
    conn: &rusqlite::Connection,
    where_sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<ArtifactVersion>> {
    let sql = format!(
        "SELECT v.id, p.name, n.name, n.kind, v.version, v.digest, v.size, v.files, v.metadata,
                v.description, v.created_ms, v.deleted_ms, v.purged_ms,
                (SELECT GROUP_CONCAT(alias, char(31)) FROM
                    (SELECT alias FROM artifact_aliases a WHERE a.version_id = v.id ORDER BY alias)),
                (SELECT run_id FROM artifact_edges e WHERE e.version_id = v.id AND e.role = 'output'
                 ORDER BY e.created_ms LIMIT 1)
         FROM artifact_versions v JOIN artifact_names n ON n.id = v.name_id
         JOIN projects p ON p.id = n.project_id WHERE {where_sql} ORDER BY v.version"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(args, |r| {
        let metadata: String = r.get(8)?;
        let aliases: Option<String> = r.get(13)?;
        Ok(ArtifactVersion {
            id: r.get(0)?,
            project: r.get(1)?,
            name: r.get(2)?,
            kind: r.get(3)?,
            version: r.get::<_, i64>(4)? as u64,
            digest: r.get(5)?,
            size: r.get::<_, i64>(6)? as u64,
            files: r.get::<_, i64>(7)? as u64,
            metadata: serde_json::from_str(&metadata).unwrap_or(serde_json::Value::Null),
            description: r.get(9)?,
            created_ms: r.get(10)?,
            deleted_ms: r.get(11)?,
            purged: r.get::<_, Option<i64>>(12)?.is_some(),
            aliases: aliases
                .map(|a| a.split('\u{1f}').map(str::to_string).collect())
                .unwrap_or_default(),
            producer: r.get(14)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The environment variable that makes `gc` wait this many milliseconds
/// between its batches: for tests that kill a collection half-way, at a
/// point that does not depend on the disk's speed. Unset, no wait.
const GC_PAUSE_ENV: &str = "LABBOOK_GC_PAUSE_MS";

fn gc_pause() -> std::time::Duration {
    std::env::var(GC_PAUSE_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(std::time::Duration::ZERO, std::time::Duration::from_millis)
}
