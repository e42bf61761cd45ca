"""What a labbook store holds, whole: every row of every table of
``labbook.db`` and every file beside it (artifacts and all), so that a test can
say "nothing stored changed" about the store, not about a sample of it.

Shared by the Python, MLflow and security suites (stdlib only: each runs in
its own virtualenv) and usable from a shell::

    python tests/store_snapshot.py STORE_DIR      # prints the snapshot as JSON

The database is read, not hashed: a server's housekeeping may checkpoint its
write-ahead log at any time, and a reader is welcome while it serves.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

DB_FILES = {"labbook.db", "labbook.db-wal", "labbook.db-shm", "labbook.db-journal"}

# Columns a live run changes by itself while nothing is sent to it: its
# writer's heartbeat, and the change sequence every run change bumps.
LIVE_COLUMNS: dict[str, set[str]] = {
    "runs": {"heartbeat_ms", "seq"},
    "change_seq": {"value"},
}


def _cell(value: object) -> object:
    """A value that compares and prints exactly: blobs by hash, floats by
    repr (so NaN equals NaN)."""
    if isinstance(value, bytes):
        return {"blob": hashlib.blake2b(value, digest_size=20).hexdigest(), "len": len(value)}
    if isinstance(value, float):
        return {"float": repr(value)}
    return value


def _tables(db_path: Path, ignore: dict[str, set[str]]) -> dict[str, Any]:
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        con.execute("PRAGMA query_only = 1")
        out: dict[str, Any] = {}
        # One read transaction: every table as of the same moment.
        con.execute("BEGIN")
        schema = con.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
        out["sqlite_master"] = [list(row) for row in schema]
        for kind, name, _, sql in schema:
            if kind != "table" or name.startswith("sqlite_"):
                continue
            quoted = '"' + name.replace('"', '""') + '"'
            columns = [r[1] for r in con.execute(f"PRAGMA table_info({quoted})")]
            skip = ignore.get(name, set())
            kept = [c for c in columns if c not in skip]
            select = ", ".join('"' + c.replace('"', '""') + '"' for c in kept)
            if "WITHOUT ROWID" in (sql or "").upper():
                rows = con.execute(f"SELECT {select} FROM {quoted} ORDER BY {select}")
            else:
                rows = con.execute(f"SELECT rowid, {select} FROM {quoted} ORDER BY rowid")
            out[name] = [[_cell(v) for v in row] for row in rows]
        con.execute("COMMIT")
        out["user_version"] = con.execute("PRAGMA user_version").fetchone()[0]
        return out
    finally:
        con.close()


def _files(store: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(store):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = str(path.relative_to(store))
            if rel in DB_FILES:
                continue
            if path.is_symlink():
                out[rel] = {"link": os.readlink(path)}
                continue
            data = path.read_bytes()
            out[rel] = {
                "blake2b": hashlib.blake2b(data, digest_size=20).hexdigest(),
                "size": len(data),
            }
    return out


def _pg_tables(url: str, ignore: dict[str, set[str]]) -> dict[str, Any]:
    """Every row of every table of a team server's PostgreSQL database, read
    with ``psql`` in one repeatable-read transaction, rows in a fixed order."""
    listing = subprocess.run(
        [
            "psql",
            url,
            "-AtX",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            # A bytea column is compared by its digest, taken by the server:
            # the chunks of a long suite are too many bytes to ship as text.
            "SELECT table_name, string_agg(CASE WHEN data_type = 'bytea' "
            "THEN 'md5(\"' || column_name || '\") AS \"' || column_name || '\"' "
            "ELSE '\"' || column_name || '\"' END, ',' ORDER BY ordinal_position) "
            "FROM information_schema.columns WHERE table_schema = 'public' "
            "GROUP BY table_name ORDER BY table_name",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    script = ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"]
    names = []
    for line in listing.splitlines():
        name, columns = line.split("|", 1)
        skip = ignore.get(name, set())
        kept = [c for c in columns.split(",") if c.rsplit('"', 2)[-2] not in skip]
        listed = ", ".join(kept)
        names.append(name)
        script.append(f"\\echo '@@{name}'")
        script.append(
            f'SELECT row_to_json(t)::text AS r FROM (SELECT {listed} FROM "{name}") t ORDER BY r;'
        )
    script.append("COMMIT;")
    dumped = subprocess.run(
        ["psql", url, "-AtX", "-q", "-v", "ON_ERROR_STOP=1"],
        input="\n".join(script),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    out: dict[str, Any] = {name: [] for name in names}
    current = None
    for line in dumped.splitlines():
        if line.startswith("@@"):
            current = line[2:]
        elif current is not None and line:
            out[current].append(line)
    return out


def snapshot(
    store: str | os.PathLike[str], ignore: dict[str, set[str]] | None = None
) -> dict[str, Any]:
    """The store at ``store``: a ``.labbook`` directory, or a team server's
    database by its ``postgresql://`` URL. ``ignore`` names columns to leave
    out, by table (``LIVE_COLUMNS`` while a run is open)."""
    if isinstance(store, str) and store.startswith(("postgresql://", "postgres://")):
        return {"tables": _pg_tables(store, ignore or {}), "files": {}}
    store = Path(store)
    return {"tables": _tables(store / "labbook.db", ignore or {}), "files": _files(store)}


def differences(before: dict[str, Any], after: dict[str, Any], limit: int = 3) -> list[str]:
    """What changed, table by table and file by file, with a few rows each:
    a readable failure instead of a million-line diff."""
    found = []
    tables_b, tables_a = before["tables"], after["tables"]
    for name in sorted(set(tables_b) | set(tables_a)):
        b, a = tables_b.get(name), tables_a.get(name)
        if b == a:
            continue
        if not isinstance(b, list) or not isinstance(a, list):
            found.append(f"{name}: {b!r} -> {a!r}")
            continue
        b_rows = {json.dumps(r, sort_keys=True) for r in b}
        a_rows = {json.dumps(r, sort_keys=True) for r in a}
        added, removed = sorted(a_rows - b_rows), sorted(b_rows - a_rows)
        found.append(
            f"table {name}: {len(added)} rows added {[r[:200] for r in added[:limit]]}, "
            f"{len(removed)} removed {[r[:200] for r in removed[:limit]]}"
        )
    for path in sorted(set(before["files"]) | set(after["files"])):
        if before["files"].get(path) != after["files"].get(path):
            found.append(f"file {path}: {before['files'].get(path)} -> {after['files'].get(path)}")
    return found


def assert_unchanged(before: dict[str, Any], after: dict[str, Any], what: str) -> None:
    changed = differences(before, after)
    assert not changed, f"{what} changed the store:\n" + "\n".join(changed)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: store_snapshot.py STORE_DIR")
    json.dump(snapshot(sys.argv[1]), sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
