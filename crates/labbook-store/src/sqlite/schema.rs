//! The schema, as the list of migrations that built it. Shared with the
//! build script, which runs them once to make the empty store every new
//! `.labbook` starts from (`template`).

pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL
);
CREATE TABLE runs (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    name TEXT NOT NULL,
    grp TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    notes TEXT,
    status TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    ended_ms INTEGER,
    heartbeat_ms INTEGER NOT NULL,
    host TEXT,
    pid INTEGER,
    exit_code INTEGER,
    error TEXT,
    config TEXT NOT NULL DEFAULT '{}',
    summary TEXT NOT NULL DEFAULT '{}',
    deleted_ms INTEGER
);
CREATE INDEX runs_by_project ON runs(project_id, created_ms);
CREATE INDEX runs_by_status ON runs(status) WHERE status = 'running';
CREATE TABLE run_env (
    run_pk INTEGER PRIMARY KEY REFERENCES runs(pk) ON DELETE CASCADE,
    env TEXT NOT NULL
);
CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    run_pk INTEGER NOT NULL REFERENCES runs(pk) ON DELETE CASCADE,
    key TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 0,
    last_step INTEGER,
    last_ts INTEGER,
    last_value REAL,
    min_value REAL,
    max_value REAL,
    UNIQUE (run_pk, key)
);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL REFERENCES series(id) ON DELETE CASCADE,
    level INTEGER NOT NULL,
    n INTEGER NOT NULL,
    step_min INTEGER NOT NULL,
    step_max INTEGER NOT NULL,
    ts_min INTEGER NOT NULL,
    ts_max INTEGER NOT NULL,
    v_min REAL,
    v_max REAL,
    data BLOB NOT NULL
);
CREATE INDEX chunks_by_series ON chunks(series_id, step_min);
CREATE TABLE output (
    id INTEGER PRIMARY KEY,
    run_pk INTEGER NOT NULL REFERENCES runs(pk) ON DELETE CASCADE,
    stream INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX output_by_run ON output(run_pk, id);
CREATE TABLE notebook (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    run_pk INTEGER REFERENCES runs(pk) ON DELETE CASCADE,
    created_ms INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX notebook_by_run ON notebook(run_pk, id);
CREATE TABLE applied_batches (
    run_pk INTEGER NOT NULL,
    batch_id TEXT NOT NULL,
    PRIMARY KEY (run_pk, batch_id)
) WITHOUT ROWID;
"#,
    r#"
-- A change sequence: every insert or change of a run (or of its metric
-- summaries) stamps the run with the next number, so a long-lived reader
-- refreshes its in-memory index by loading only the runs stamped since.
-- Triggers, so that no write path can forget it.
CREATE TABLE change_seq (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
INSERT INTO change_seq VALUES (1, 0);
ALTER TABLE runs ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_by_seq ON runs(seq);
CREATE TRIGGER runs_inserted AFTER INSERT ON runs BEGIN
    UPDATE change_seq SET value = value + 1 WHERE id = 1;
    UPDATE runs SET seq = (SELECT value FROM change_seq WHERE id = 1) WHERE pk = NEW.pk;
END;
CREATE TRIGGER runs_updated AFTER UPDATE OF project_id, name, grp, tags, notes, status, ended_ms,
    heartbeat_ms, host, pid, exit_code, error, config, summary, deleted_ms ON runs BEGIN
    UPDATE change_seq SET value = value + 1 WHERE id = 1;
    UPDATE runs SET seq = (SELECT value FROM change_seq WHERE id = 1) WHERE pk = NEW.pk;
END;
CREATE TRIGGER series_changed AFTER UPDATE OF count ON series BEGIN
    UPDATE change_seq SET value = value + 1 WHERE id = 1;
    UPDATE runs SET seq = (SELECT value FROM change_seq WHERE id = 1) WHERE pk = NEW.run_pk;
END;
"#,
    r#"
-- MLflow's model: experiments carry tags, a lifecycle and an artifact
-- location; runs carry key/value tags, dataset inputs and model outputs;
-- artifacts are files by path whose contents live once per hash on disk;
-- registered and logged models are JSON documents.
ALTER TABLE projects ADD COLUMN updated_ms INTEGER;
ALTER TABLE projects ADD COLUMN deleted_ms INTEGER;
ALTER TABLE projects ADD COLUMN artifact_location TEXT;
ALTER TABLE projects ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';
INSERT INTO projects (id, name, created_ms) VALUES (0, 'Default', 0) ON CONFLICT DO NOTHING;
ALTER TABLE runs ADD COLUMN kv_tags TEXT NOT NULL DEFAULT '{}';
ALTER TABLE runs ADD COLUMN inputs TEXT NOT NULL DEFAULT '[]';
ALTER TABLE runs ADD COLUMN outputs TEXT NOT NULL DEFAULT '[]';
DROP TRIGGER runs_updated;
CREATE TRIGGER runs_updated AFTER UPDATE OF project_id, name, grp, tags, notes, status, ended_ms,
    heartbeat_ms, host, pid, exit_code, error, config, summary, deleted_ms, kv_tags, inputs, outputs
    ON runs BEGIN
    UPDATE change_seq SET value = value + 1 WHERE id = 1;
    UPDATE runs SET seq = (SELECT value FROM change_seq WHERE id = 1) WHERE pk = NEW.pk;
END;
CREATE TABLE artifacts (
    path TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX artifacts_by_hash ON artifacts(hash);
CREATE TABLE documents (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
"#,
    r#"
-- The text an MLflow client sent for a param kept as a number spelled
-- otherwise (`5e-05`), by key; the logged models a run read, by id.
ALTER TABLE runs ADD COLUMN param_text TEXT NOT NULL DEFAULT '{}';
ALTER TABLE runs ADD COLUMN model_inputs TEXT NOT NULL DEFAULT '[]';
DROP TRIGGER runs_updated;
CREATE TRIGGER runs_updated AFTER UPDATE OF project_id, name, grp, tags, notes, status, ended_ms,
    heartbeat_ms, host, pid, exit_code, error, config, summary, deleted_ms, kv_tags, inputs, outputs,
    model_inputs
    ON runs BEGIN
    UPDATE change_seq SET value = value + 1 WHERE id = 1;
    UPDATE runs SET seq = (SELECT value FROM change_seq WHERE id = 1) WHERE pk = NEW.pk;
END;
"#,
    r#"
-- A sealed chunk's sketch (crate::sketch): what a chart of a long run
-- reads instead of the chunk. Chunks sealed before have none and are
-- decoded as they always were.
ALTER TABLE chunks ADD COLUMN sketch BLOB;
"#,
    r#"
-- Versioned artifacts (sqlite/versions.rs): names per project, immutable
-- versions identified by a manifest digest, their files (contents in the
-- blobs the `artifacts` table also points at, or a reference to where a
-- file stays), moving aliases, the runs that produced and used each
-- version, and the hash cache that spares re-reading unchanged files.
CREATE TABLE artifact_names (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    UNIQUE (project_id, name)
);
CREATE TABLE artifact_versions (
    id INTEGER PRIMARY KEY,
    name_id INTEGER NOT NULL REFERENCES artifact_names(id),
    version INTEGER NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    files INTEGER NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    description TEXT,
    created_ms INTEGER NOT NULL,
    deleted_ms INTEGER,
    purged_ms INTEGER,
    UNIQUE (name_id, version)
);
CREATE INDEX artifact_versions_by_digest ON artifact_versions(name_id, digest);
CREATE TABLE artifact_files (
    version_id INTEGER NOT NULL REFERENCES artifact_versions(id),
    path TEXT NOT NULL,
    hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    reference TEXT,
    PRIMARY KEY (version_id, path)
) WITHOUT ROWID;
CREATE INDEX artifact_files_by_hash ON artifact_files(hash) WHERE reference IS NULL;
CREATE TABLE artifact_aliases (
    name_id INTEGER NOT NULL REFERENCES artifact_names(id),
    alias TEXT NOT NULL,
    version_id INTEGER NOT NULL REFERENCES artifact_versions(id),
    PRIMARY KEY (name_id, alias)
) WITHOUT ROWID;
CREATE INDEX artifact_aliases_by_version ON artifact_aliases(version_id);
CREATE TABLE artifact_edges (
    version_id INTEGER NOT NULL REFERENCES artifact_versions(id),
    run_id TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('input', 'output')),
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (version_id, run_id, role)
) WITHOUT ROWID;
CREATE INDEX artifact_edges_by_run ON artifact_edges(run_id);
-- A run's file that shows a version's file (`link_version_files`): goes
-- when the version is deleted.
ALTER TABLE artifacts ADD COLUMN version_id INTEGER;
CREATE INDEX artifacts_by_version ON artifacts(version_id) WHERE version_id IS NOT NULL;
-- Runs deleted for good (`labbook rm --purge`), by change sequence, so
-- that long-lived readers drop them from their run index.
CREATE TABLE purged_runs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
-- A whole tree's stamps (hashed) → the digest its files had, so an
-- unchanged folder logged again needs no per-file lookup.
CREATE TABLE tree_stamps (stamps TEXT PRIMARY KEY, digest TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE hash_cache (
    path TEXT PRIMARY KEY,
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    hash TEXT NOT NULL
) WITHOUT ROWID;
"#,
    r#"
-- Hyperparameter searches (issue 13): studies (sweeps and Optuna-style
-- studies) and their numbered trials. Ids are never reused, even after a
-- delete (Optuna's storages promise it). Every change to a trial stamps
-- it with the next value of `search_seq`, so a reader refreshes only the
-- trials changed since it last looked.
CREATE TABLE studies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sid TEXT NOT NULL UNIQUE,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('sweep', 'study', 'queue')),
    directions TEXT NOT NULL,
    spec TEXT NOT NULL,
    why TEXT,
    state TEXT NOT NULL,
    state_reason TEXT,
    user_attrs TEXT NOT NULL DEFAULT '{}',
    system_attrs TEXT NOT NULL DEFAULT '{}',
    created_ms INTEGER NOT NULL,
    deleted_ms INTEGER
);
CREATE UNIQUE INDEX studies_by_name ON studies(project_id, name) WHERE deleted_ms IS NULL;
CREATE TABLE trials (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    number INTEGER NOT NULL,
    state TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    distributions TEXT NOT NULL DEFAULT '{}',
    vals TEXT,
    intermediate TEXT NOT NULL DEFAULT '[]',
    run_id TEXT,
    grid_index INTEGER,
    retry_of INTEGER,
    host TEXT,
    pid INTEGER,
    started_ms INTEGER,
    ended_ms INTEGER,
    heartbeat_ms INTEGER,
    user_attrs TEXT NOT NULL DEFAULT '{}',
    system_attrs TEXT NOT NULL DEFAULT '{}',
    note TEXT,
    seq INTEGER NOT NULL,
    UNIQUE (study_id, number)
);
CREATE INDEX trials_by_seq ON trials(study_id, seq);
CREATE TABLE search_seq (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
INSERT INTO search_seq VALUES (1, 0);
"#,
    r#"
-- The run index loads one metric of every run at a time (a query on
-- `metrics.acc`): a range of this index instead of the whole table.
CREATE INDEX series_by_key ON series(key);
-- A project's newest runs, and how many it has, without reading a run
-- row: the first page of a listing before any index is loaded.
CREATE INDEX runs_listed ON runs(project_id, created_ms DESC, id) WHERE deleted_ms IS NULL;
"#,
    r#"
-- The key catalog: which config, metric and summary keys a project's
-- live runs have, how many runs have each, and how many of those hold a
-- number. The dashboard's column picker reads it instead of every run
-- (2.5 s and 800 MB at 100,000 runs). Triggers keep it, so that no write
-- path can forget it; `sqlite/key_catalog.rs` explains the bookkeeping and
-- a property test holds it equal to the keys computed from the runs.
CREATE TABLE key_catalog (
    project_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    runs INTEGER NOT NULL,
    numeric_runs INTEGER NOT NULL,
    PRIMARY KEY (project_id, kind, key)
) WITHOUT ROWID;

-- Config values that read back as numbers (ConfigValue::Int/Float,
-- non-finite floats included in their `$float` form).
CREATE VIEW config_entries AS
SELECT r.pk AS run_pk, j.key AS key,
       (j.type IN ('integer', 'real')
        OR (j.type = 'object' AND j.value IN ('{"$float":"NaN"}', '{"$float":"Infinity"}', '{"$float":"-Infinity"}'))) AS numeric
FROM runs r, json_each(r.config) j;

INSERT INTO key_catalog
SELECT r.project_id, 'config', c.key, count(*), sum(c.numeric)
FROM runs r JOIN config_entries c ON c.run_pk = r.pk
WHERE r.deleted_ms IS NULL GROUP BY 1, 2, 3;
INSERT INTO key_catalog
SELECT r.project_id, 'summary', j.key, count(*), 0
FROM runs r, json_each(r.summary) j
WHERE r.deleted_ms IS NULL GROUP BY 1, 2, 3;
INSERT INTO key_catalog
SELECT r.project_id, 'metric', s.key, count(*), count(*)
FROM series s JOIN runs r ON r.pk = s.run_pk
WHERE s.count > 0 AND r.deleted_ms IS NULL GROUP BY 1, 2, 3;

-- A run counts while it is not deleted, under its project. A new run
-- brings its config and summary (its series come later, one by one).
CREATE TRIGGER key_catalog_run_inserted AFTER INSERT ON runs WHEN NEW.deleted_ms IS NULL BEGIN
    INSERT INTO key_catalog
    SELECT NEW.project_id, 'config', key, 1, numeric FROM config_entries WHERE run_pk = NEW.pk
    ON CONFLICT DO UPDATE SET runs = runs + 1, numeric_runs = numeric_runs + excluded.numeric_runs;
    INSERT INTO key_catalog
    SELECT NEW.project_id, 'summary', key, 1, 0 FROM json_each(NEW.summary) WHERE true
    ON CONFLICT DO UPDATE SET runs = runs + 1;
END;

-- A run leaving the count (deleted, moved away) takes all its keys with
-- it; one entering it (restored, moved in) brings them.
CREATE TRIGGER key_catalog_run_moved AFTER UPDATE OF project_id, deleted_ms ON runs
WHEN OLD.project_id IS NOT NEW.project_id OR (OLD.deleted_ms IS NULL) != (NEW.deleted_ms IS NULL) BEGIN
    UPDATE key_catalog SET runs = runs - 1,
        numeric_runs = numeric_runs - (SELECT count(*) FROM json_each(OLD.config) j
            WHERE j.key = key_catalog.key AND (j.type IN ('integer', 'real')
            OR (j.type = 'object' AND j.value IN ('{"$float":"NaN"}', '{"$float":"Infinity"}', '{"$float":"-Infinity"}'))))
    WHERE OLD.deleted_ms IS NULL AND project_id = OLD.project_id AND kind = 'config'
        AND key IN (SELECT key FROM json_each(OLD.config));
    UPDATE key_catalog SET runs = runs - 1
    WHERE OLD.deleted_ms IS NULL AND project_id = OLD.project_id AND kind = 'summary'
        AND key IN (SELECT key FROM json_each(OLD.summary));
    UPDATE key_catalog SET runs = runs - 1, numeric_runs = numeric_runs - 1
    WHERE OLD.deleted_ms IS NULL AND project_id = OLD.project_id AND kind = 'metric'
        AND key IN (SELECT key FROM series WHERE run_pk = OLD.pk AND count > 0);
    DELETE FROM key_catalog WHERE project_id = OLD.project_id AND runs = 0;
    INSERT INTO key_catalog
    SELECT NEW.project_id, 'config', key, 1, numeric FROM config_entries
    WHERE run_pk = NEW.pk AND NEW.deleted_ms IS NULL
    ON CONFLICT DO UPDATE SET runs = runs + 1, numeric_runs = numeric_runs + excluded.numeric_runs;
    INSERT INTO key_catalog
    SELECT NEW.project_id, 'summary', key, 1, 0 FROM json_each(NEW.summary) WHERE NEW.deleted_ms IS NULL
    ON CONFLICT DO UPDATE SET runs = runs + 1;
    INSERT INTO key_catalog
    SELECT NEW.project_id, 'metric', key, 1, 1 FROM series
    WHERE run_pk = NEW.pk AND count > 0 AND NEW.deleted_ms IS NULL
    ON CONFLICT DO UPDATE SET runs = runs + 1, numeric_runs = numeric_runs + 1;
END;

-- A counted run whose config or summary changed in place: the old keys
-- out, the new ones in. `update_run` writes both columns on every patch,
-- so an unchanged text costs nothing.
CREATE TRIGGER key_catalog_config_changed AFTER UPDATE OF config ON runs
WHEN OLD.config IS NOT NEW.config AND OLD.deleted_ms IS NULL AND NEW.deleted_ms IS NULL
    AND OLD.project_id IS NEW.project_id BEGIN
    UPDATE key_catalog SET runs = runs - 1,
        numeric_runs = numeric_runs - (SELECT count(*) FROM json_each(OLD.config) j
            WHERE j.key = key_catalog.key AND (j.type IN ('integer', 'real')
            OR (j.type = 'object' AND j.value IN ('{"$float":"NaN"}', '{"$float":"Infinity"}', '{"$float":"-Infinity"}'))))
    WHERE project_id = OLD.project_id AND kind = 'config'
        AND key IN (SELECT key FROM json_each(OLD.config));
    DELETE FROM key_catalog WHERE project_id = OLD.project_id AND runs = 0;
    INSERT INTO key_catalog
    SELECT NEW.project_id, 'config', key, 1, numeric FROM config_entries
    WHERE run_pk = NEW.pk
    ON CONFLICT DO UPDATE SET runs = runs + 1, numeric_runs = numeric_runs + excluded.numeric_runs;
END;
CREATE TRIGGER key_catalog_summary_changed AFTER UPDATE OF summary ON runs
WHEN OLD.summary IS NOT NEW.summary AND OLD.deleted_ms IS NULL AND NEW.deleted_ms IS NULL
    AND OLD.project_id IS NEW.project_id BEGIN
    UPDATE key_catalog SET runs = runs - 1
    WHERE project_id = OLD.project_id AND kind = 'summary'
        AND key IN (SELECT key FROM json_each(OLD.summary));
    DELETE FROM key_catalog WHERE project_id = OLD.project_id AND runs = 0;
    INSERT INTO key_catalog
    SELECT NEW.project_id, 'summary', key, 1, 0 FROM json_each(NEW.summary) WHERE true
    ON CONFLICT DO UPDATE SET runs = runs + 1;
END;

-- A purged run's keys leave while its series rows still exist; the
-- cascade that deletes those then finds no live run to count against.
CREATE TRIGGER key_catalog_run_purged BEFORE DELETE ON runs WHEN OLD.deleted_ms IS NULL BEGIN
    UPDATE key_catalog SET runs = runs - 1,
        numeric_runs = numeric_runs - (SELECT count(*) FROM json_each(OLD.config) j
            WHERE j.key = key_catalog.key AND (j.type IN ('integer', 'real')
            OR (j.type = 'object' AND j.value IN ('{"$float":"NaN"}', '{"$float":"Infinity"}', '{"$float":"-Infinity"}'))))
    WHERE project_id = OLD.project_id AND kind = 'config'
        AND key IN (SELECT key FROM json_each(OLD.config));
    UPDATE key_catalog SET runs = runs - 1
    WHERE project_id = OLD.project_id AND kind = 'summary'
        AND key IN (SELECT key FROM json_each(OLD.summary));
    UPDATE key_catalog SET runs = runs - 1, numeric_runs = numeric_runs - 1
    WHERE project_id = OLD.project_id AND kind = 'metric'
        AND key IN (SELECT key FROM series WHERE run_pk = OLD.pk AND count > 0);
    DELETE FROM key_catalog WHERE project_id = OLD.project_id AND runs = 0;
END;

-- A metric key counts for a run once its series holds a point.
CREATE TRIGGER key_catalog_series_inserted AFTER INSERT ON series WHEN NEW.count > 0 BEGIN
    INSERT INTO key_catalog
    SELECT project_id, 'metric', NEW.key, 1, 1 FROM runs WHERE pk = NEW.run_pk AND deleted_ms IS NULL
    ON CONFLICT DO UPDATE SET runs = runs + 1, numeric_runs = numeric_runs + 1;
END;
CREATE TRIGGER key_catalog_series_filled AFTER UPDATE OF count ON series
WHEN OLD.count <= 0 AND NEW.count > 0 BEGIN
    INSERT INTO key_catalog
    SELECT project_id, 'metric', NEW.key, 1, 1 FROM runs WHERE pk = NEW.run_pk AND deleted_ms IS NULL
    ON CONFLICT DO UPDATE SET runs = runs + 1, numeric_runs = numeric_runs + 1;
END;
CREATE TRIGGER key_catalog_series_emptied AFTER UPDATE OF count ON series
WHEN OLD.count > 0 AND NEW.count <= 0 BEGIN
    UPDATE key_catalog SET runs = runs - 1, numeric_runs = numeric_runs - 1
    WHERE kind = 'metric' AND key = OLD.key
        AND project_id = (SELECT project_id FROM runs WHERE pk = OLD.run_pk AND deleted_ms IS NULL);
    DELETE FROM key_catalog WHERE kind = 'metric' AND key = OLD.key AND runs = 0;
END;
CREATE TRIGGER key_catalog_series_deleted AFTER DELETE ON series WHEN OLD.count > 0 BEGIN
    UPDATE key_catalog SET runs = runs - 1, numeric_runs = numeric_runs - 1
    WHERE kind = 'metric' AND key = OLD.key
        AND project_id = (SELECT project_id FROM runs WHERE pk = OLD.run_pk AND deleted_ms IS NULL);
    DELETE FROM key_catalog WHERE kind = 'metric' AND key = OLD.key AND runs = 0;
END;
"#,
    r#"
-- A sealed chunk's sketch in a table of its own. Kept in the chunk's row
-- after its points, reading it walked the points' overflow pages first: a
-- 100-run chart of 1M-point curves read 500 MB to find 5 MB of sketches.
-- Chunks sealed before keep theirs in the row, read from there.
CREATE TABLE chunk_sketches (
    chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
    sketch BLOB NOT NULL
);
"#,
    r#"
-- A team server's accounts. Only what verifies a secret is kept: a
-- password's Argon2 hash (PHC string), a token's BLAKE3 digest (hex).
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
CREATE INDEX tokens_user ON tokens(user_id);
"#,
    r#"
-- Who may do what on a team server (`serve --auth`): admins may do
-- everything; others have a role per project (by id) or registered model
-- (by name), or the server's default. A token may expire: a dashboard
-- session is one.
ALTER TABLE users ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
-- Remade with AUTOINCREMENT: expired sessions are deleted, and a token's id
-- (what `labbook token revoke` takes) must never name another one later.
CREATE TABLE tokens_remade (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER,
    expires_ms INTEGER
);
INSERT INTO tokens_remade (id, user_id, name, digest, created_ms, revoked_ms)
    SELECT id, user_id, name, digest, created_ms, revoked_ms FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_remade RENAME TO tokens;
CREATE INDEX tokens_user ON tokens(user_id);
CREATE TABLE permissions (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    resource TEXT NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (user_id, kind, resource)
);
CREATE INDEX permissions_by_resource ON permissions(kind, resource);
"#,
];
