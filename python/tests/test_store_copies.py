"""Stores copied while runs write them, read-only stores, and `labbook backup`.

A `.labbook` directory copied file by file while a run logs (rsync from a
cluster node, `cp -r` of a live store) holds a write-ahead log cut at any
byte; one copied onto a read-only disk, or owned by someone else, cannot be
written. labbook opens both: the first at its last whole commit, the second
read-only, and `labbook backup` makes a consistent copy of a store in use.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import labbook_bin, run_python

import labbook

# Four runs that log `x` = 2·step and a 64-value `wide` vector per step as
# fast as they can, so that flushes, chunk seals and checkpoints all happen
# while the test copies the store.
WRITER = textwrap.dedent("""
    import labbook
    runs = [labbook.init(project="copies", config={"worker": w}, system_metrics=False) for w in range(4)]
    print("ready", flush=True)
    step = 0
    while True:
        for run in runs:
            run.log({"x": 2.0 * step, **{f"wide/{i}": step + i / 64 for i in range(64)}})
        step += 1
""")

NOBODY = 65534


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory another user can enter (pytest's own tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="labbook-copies-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for p in [path, *path.rglob("*")]:
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o755)
        shutil.rmtree(path, ignore_errors=True)


def start_writer(store: Path) -> subprocess.Popen[str]:
    store.parent.mkdir(parents=True, exist_ok=True)
    p = run_python(WRITER, store.parent, {"LABBOOK_DIR": str(store)})
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "ready", p.stderr.read() if p.stderr else ""
    return p


def stop(p: subprocess.Popen[str]) -> None:
    if p.poll() is None:
        p.kill()
    p.wait()


def wait_for_points(store: Path, points: int) -> None:
    api = labbook.Api(dir=str(store))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = api.runs(project="copies")
        counts = [r["metrics"].get("x", {}).get("count", 0) for r in runs]
        if len(runs) == 4 and min(counts) >= points:
            return
        time.sleep(0.05)
    pytest.fail(f"the writer did not store {points} points of every run in 60 s")


def copy_while_logging(shared_tmp: Path, dest: Path) -> None:
    """Copies a store four runs are logging into, frozen at whatever instant
    this is (SIGSTOP): a write may be half done, and no checkpoint moves
    pages while its files are copied."""
    store = shared_tmp / "live" / ".labbook"
    writer = start_writer(store)
    try:
        wait_for_points(store, 50)
        writer.send_signal(signal.SIGSTOP)
        shutil.copytree(store, dest)
    finally:
        writer.send_signal(signal.SIGCONT)
        stop(writer)


def assert_consistent(store: Path, all_runs: bool = True) -> dict[str, int]:
    """Every run's curve is an unbroken prefix of what the writer logged,
    and agrees with the run's own count of it: the store is at a commit.
    Returns each run's number of points."""
    api = labbook.Api(dir=str(store))
    runs = api.runs(project="copies")
    assert len(runs) == 4 if all_runs else len(runs) <= 4, [r["id"] for r in runs]
    counts = {}
    for r in runs:
        try:
            h = api.history(r["id"], "x")
        except KeyError:
            h = {"step": [], "value": []}
        steps, values = list(h["step"]), list(h["value"])
        assert steps == list(range(len(steps))), r["id"]
        assert values == [2.0 * s for s in steps], r["id"]
        assert r["metrics"].get("x", {}).get("count", 0) == len(steps), r
        if steps:
            assert r["metrics"]["x"]["last"] == values[-1]
            wide = api.history(r["id"], "wide/63")
            assert list(wide["step"]) == steps, "one flush stored one key and not another"
        counts[r["id"]] = len(steps)
    with sqlite3.connect(f"file:{store / 'labbook.db'}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    return counts


def digest(tree: Path) -> dict[str, str]:
    return {
        str(p.relative_to(tree)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(tree.rglob("*"))
        if p.is_file()
    }


@contextmanager
def read_only_mount(tree: Path) -> Iterator[Path]:
    """`tree` on a read-only filesystem: a read-only bind mount where this
    process may mount (root, as in CI); elsewhere its files made read-only."""
    if os.geteuid() != 0:
        for p in [tree, *tree.rglob("*")]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        yield tree
        return
    # A name SQLite would misread in a URI unless it is escaped.
    view = tree.parent / f"{tree.name} read-only?#%"
    view.mkdir()
    mounted = subprocess.run(
        ["mount", "--bind", "-o", "ro", str(tree), str(view)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only view here: {mounted.stderr.strip()}")
    try:
        # Older mounts take the read-only flag only on a remount.
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        with pytest.raises(OSError):
            (view / "probe").write_bytes(b"")
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


def cli(*args: str, exe: str | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    return subprocess.run(
        [exe or labbook_bin(), *args], capture_output=True, text=True, timeout=60, env=env, **kw
    )


@pytest.mark.timeout(180)
def test_backup_of_a_store_in_use_is_consistent(shared_tmp: Path) -> None:
    store = shared_tmp / "live" / ".labbook"
    writer = start_writer(store)
    try:
        wait_for_points(store, 50)
        copies = []
        for i in range(5):
            dest = shared_tmp / f"backup-{i}"
            done = cli("--dir", str(store), "backup", str(dest), "--json")
            assert done.returncode == 0, done.stderr
            report = json.loads(done.stdout)
            assert report["dest"] == str(dest)
            assert report["database_bytes"] == (dest / "labbook.db").stat().st_size
            copies.append(dest)
            time.sleep(0.3)
        assert writer.poll() is None, "the writer stopped while the store was copied"
    finally:
        stop(writer)
    assert not list(shared_tmp.glob(".*partial*")), "a partial copy was left behind"
    previous: dict[str, int] = {}
    for dest in copies:
        assert sorted(p.name for p in dest.iterdir()) == [".gitignore", "labbook.db"]
        counts = assert_consistent(dest)
        assert all(counts[run] >= n for run, n in previous.items()), "a later copy went back"
        assert min(counts.values()) >= 50
        previous = counts
    # A later backup holds more than an earlier one: the writer really ran
    # while the copies were taken.
    assert sum(previous.values()) > sum(assert_consistent(copies[0]).values())


@pytest.mark.timeout(180)
def test_a_copy_with_its_log_cut_anywhere_opens_at_a_commit(shared_tmp: Path) -> None:
    frozen = shared_tmp / "frozen"
    copy_while_logging(shared_tmp, frozen)
    wal = (frozen / "labbook.db-wal").read_bytes()
    assert len(wal) > 100_000, "the log was checkpointed away: nothing to cut"
    # Where a copy made while the log grew could have stopped reading it:
    # anywhere, frame boundaries or not, from nothing to everything.
    rng = random.Random(14)
    cuts = sorted({0, 31, len(wal), *(rng.randrange(len(wal)) for _ in range(10))})
    counts_before: dict[str, int] = {}
    opened_with_points = 0
    for cut in cuts:
        copy = shared_tmp / f"cut-{cut}"
        copy.mkdir()
        shutil.copy(frozen / "labbook.db", copy / "labbook.db")
        (copy / "labbook.db-wal").write_bytes(wal[:cut])
        counts = assert_consistent(copy, all_runs=False)
        assert all(counts.get(run, -1) >= n for run, n in counts_before.items()), (
            f"a copy holding more of the log shows fewer points (cut at {cut})"
        )
        counts_before = counts
        opened_with_points += sum(counts.values()) > 0
    assert opened_with_points >= 2


@pytest.mark.timeout(180)
@pytest.mark.required_in_ci
def test_a_read_only_copy_is_read_and_never_written(shared_tmp: Path) -> None:
    copy = shared_tmp / "copy" / ".labbook"
    copy_while_logging(shared_tmp, copy)
    assert (copy / "labbook.db-wal").stat().st_size > 0
    without_shm = shared_tmp / "no-shm" / ".labbook"
    shutil.copytree(copy, without_shm)
    (without_shm / "labbook.db-shm").unlink(missing_ok=True)
    # The copy opened writable, which reads its whole log, is the reference.
    reference = shared_tmp / "reference" / ".labbook"
    shutil.copytree(without_shm, reference)
    expected = assert_consistent(reference)
    for tree in (copy, without_shm):
        before = digest(tree)
        with read_only_mount(tree) as view:
            listed = cli("--dir", str(view), "ls", "--project", "copies", "--json")
            assert listed.returncode == 0, listed.stderr
            runs = {r["id"]: r for r in json.loads(listed.stdout)}
            # Runs that were logging when copied are shown as they were, not
            # marked crashed: this reader may not write, and they may be alive.
            assert {r["status"] for r in runs.values()} <= {"running"}
            if tree == copy:
                assert listed.stderr == ""
                assert {run: r["metrics"]["x"]["count"] for run, r in runs.items()} == expected
            else:
                # No index for the log and no way to make one: shown as of
                # the last checkpoint, never beyond it, and the reader is told.
                assert "is read-only" in listed.stderr and "last checkpoint" in listed.stderr
                assert set(runs) <= set(expected)
                for run, r in runs.items():
                    assert r["metrics"].get("x", {}).get("count", 0) <= expected[run]
            # Tagging needs a run it can see: a copy whose every run is
            # still in its unread log shows none, and starting one writes.
            write = ["tag", next(iter(runs)), "copied"] if runs else ["run", "--", "true"]
            tagged = cli("--dir", str(view), *write)
            assert tagged.returncode == 1
            assert "the store is read-only" in tagged.stderr, tagged.stderr
            assert "labbook backup" in tagged.stderr
            # The SDK reads it as well, and refuses to start a run in it.
            api = labbook.Api(dir=str(view))
            assert {r["id"] for r in api.runs(project="copies")} == set(runs)
            with pytest.raises(labbook.LabbookError, match="the store is read-only"):
                labbook.init(dir=str(view), project="copies", system_metrics=False)
        # Without the right to write its files (not a read-only filesystem):
        # the same answers, as a user who does not own them.
        if os.geteuid() == 0:
            # Where another user can run it (the checkout may be root's alone).
            exe = shared_tmp / "labbook"
            if not exe.exists():
                shutil.copy(labbook_bin(), exe)
            for p in [tree.parent, *tree.parent.rglob("*")]:
                p.chmod(0o555 if p.is_dir() else 0o444)
            as_nobody = cli(
                "--dir", str(tree), "ls", "--project", "copies", "--json", exe=str(exe), user=NOBODY
            )
            assert as_nobody.returncode == 0, as_nobody.stderr
            # (A running run's duration grows with the clock.)
            seen = {r["id"]: r["metrics"] for r in json.loads(as_nobody.stdout)}
            assert seen == {run: r["metrics"] for run, r in runs.items()}
            tagged = cli("--dir", str(tree), *write, exe=str(exe), user=NOBODY)
            assert tagged.returncode == 1 and "the store is read-only" in tagged.stderr
        assert digest(tree) == before, "a read-only store was changed"


def test_a_damaged_store_is_one_clear_error(shared_tmp: Path) -> None:
    store = shared_tmp / ".labbook"
    run = labbook.init(dir=str(store), project="p", system_metrics=False)
    run.log({"x": 1.0})
    run.finish()
    db = store / "labbook.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    # Every page but the first (the schema) overwritten: the tables' pages.
    garbage = bytes(range(256)) * ((len(data) - 32768) // 256)
    data[32768 : 32768 + len(garbage)] = garbage
    db.write_bytes(bytes(data))
    listed = cli("--dir", str(store), "ls", "--all-projects")
    assert listed.returncode == 1
    assert "the store's database is damaged" in listed.stderr, listed.stderr
    assert "labbook backup" in listed.stderr
    assert "panicked" not in listed.stderr
    assert len(listed.stderr.strip().splitlines()) <= 2, listed.stderr
