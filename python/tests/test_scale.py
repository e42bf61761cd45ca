"""What issue 14's speed-ups must not cost: init() leaves its run's insert to
the writer thread, history columns are handed over without a copy, and a
store from a newer labbook is refused rather than misread."""

from __future__ import annotations

import gc
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import labbook_bin

import labbook

# Starts a run and is killed at once: before, during or just after its
# writer thread inserts the run. With "flush", it first logs a point and
# waits for it to be written.
KILLED_AT_INIT = textwrap.dedent("""
    import os, signal, sys, labbook
    run = labbook.init(project="p", name="n", config={"lr": 0.5}, dir=sys.argv[1],
                       system_metrics=False)
    if sys.argv[2] == "flush":
        run.log({"x": 1.0})
        run.flush()
        print(run.id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def orphans(store: Path) -> int:
    """Rows that name a run the store does not hold."""
    with sqlite3.connect(store / "labbook.db") as db:
        return sum(
            db.execute(
                f"SELECT count(*) FROM {table} WHERE run_pk NOT IN (SELECT pk FROM runs)"
            ).fetchone()[0]
            for table in ("series", "run_env", "output", "notebook")
        )


@pytest.mark.timeout(180)
def test_sigkill_right_after_init_leaves_a_whole_run_or_none(tmp_path: Path) -> None:
    store = tmp_path / ".labbook"
    flushed = []
    for i in range(24):
        mode = "flush" if i % 3 == 0 else "bare"
        # Every fourth child also creates the store it starts in.
        target = store if i % 4 else tmp_path / f"fresh-{i}" / ".labbook"
        out = subprocess.run(
            [sys.executable, "-c", KILLED_AT_INIT, str(target), mode],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == -9, out.stderr
        if mode == "flush":
            flushed.append((target, out.stdout.strip()))
        if target.exists():
            assert orphans(target) == 0
    for target, run_id in flushed:
        # What a flush confirmed is there, run and point.
        api = labbook.Api(dir=str(target))
        run = api.run(run_id)
        assert (run["name"], run["config"]) == ("n", {"lr": 0.5})
        assert list(api.history(run_id, "x")["value"]) == [1.0]
    for run in labbook.Api(dir=str(store)).runs(project="p"):
        # A run the kill left behind is whole, and known dead.
        assert (run["name"], run["config"]) == ("n", {"lr": 0.5})
        assert run["status"] == "crashed"


def test_a_run_read_back_at_once_is_there(tmp_path: Path) -> None:
    run = labbook.init(project="p", dir=str(tmp_path), system_metrics=False)
    # No flush: reading the store in the same process waits for the insert.
    assert [r["id"] for r in labbook.Api(dir=str(tmp_path)).runs(project="p")] == [run.id]
    child = labbook.init(project="p", dir=str(tmp_path), parent=run.id, system_metrics=False)
    child.finish()
    run.finish()


def test_history_columns_outlive_the_run_and_the_store(tmp_path: Path) -> None:
    run = labbook.init(project="p", dir=str(tmp_path), system_metrics=False)
    values = np.linspace(0.0, 1.0, 200_000)
    run.log_series("loss", np.arange(values.size), values)
    run.finish()
    api = labbook.Api(dir=str(tmp_path))
    history = api.history(run.id, "loss")
    del api, run
    gc.collect()
    steps, value = history["step"], history["value"]
    assert (steps.format, value.format) == ("q", "d")
    as_array = np.asarray(value)
    assert np.array_equal(as_array, values)
    assert np.array_equal(np.asarray(steps), np.arange(values.size))
    # The array is the decoded buffer itself, not a copy of it.
    value[0] = 42.0
    assert as_array[0] == 42.0
    del history, value
    gc.collect()
    assert as_array[1] == values[1]
    assert len(as_array) == values.size


def test_a_store_from_a_newer_labbook_is_refused(tmp_path: Path) -> None:
    labbook.init(project="p", dir=str(tmp_path), system_metrics=False).finish()
    store = tmp_path / ".labbook"
    with sqlite3.connect(store / "labbook.db") as db:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        db.execute(f"PRAGMA user_version = {version + 1}")
    with pytest.raises(labbook.LabbookError, match="newer labbook") as e:
        labbook.Api(dir=str(store))
    assert "upgrade labbook" in str(e.value)
    cli = subprocess.run(
        [labbook_bin(), "--dir", str(store), "ls"],
        capture_output=True,
        text=True,
    )
    assert cli.returncode != 0
    assert "newer labbook" in cli.stderr
