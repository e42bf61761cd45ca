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
];
