"""`labbook sweep agent ID --url` through the real CLI and a real `labbook
serve`: an agent in a folder with no store runs a sweep whose store is the
server's (its trials' programs log through the Python SDK into the server),
an agent killed with SIGKILL loses no grid point, and the sweep's hyperband
stops the same trials whether the runner shares the store or joins over
HTTP."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import LabbookServer, labbook_bin
from test_sweep import (
    TRAIN,
    create,
    env_for,
    kill_runner_mid_trials,
    lb,
    slow_sweep,
    status,
    sweep_file,
    sweep_runs,
    write,
)


@pytest.fixture
def server(store: Path) -> Iterator[LabbookServer]:
    srv = LabbookServer(store)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """The agent's machine: a folder with the training code and no store."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def agent_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = env_for(Path("/nonexistent"), extra)
    del env["LABBOOK_DIR"]
    return env


def agent(
    folder: Path, sweep_id: str, url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [labbook_bin(), "sweep", "agent", sweep_id, "--url", url, *args],
        cwd=folder,
        env=agent_env(env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "database is locked" not in done.stderr, done.stderr
    return done


GRID = {
    "program": "train.py",
    "method": "grid",
    "metric": {"name": "loss", "goal": "minimize"},
    "parameters": {"lr": {"values": [0.001, 0.01, 0.1]}, "bs": {"values": [16, 32]}},
}


def test_an_agent_with_no_store_runs_the_sweep_into_the_servers_store(
    store: Path, server: LabbookServer, elsewhere: Path
) -> None:
    write(elsewhere / "train.py", TRAIN)
    sweep_id = create(store, sweep_file(store, GRID), "--why", "does lr matter more than bs?")

    done = agent(elsewhere, sweep_id, server.url, "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert f"through {server.url}" in done.stderr
    assert not (elsewhere / ".labbook").exists(), "the agent made a store of its own"

    st = status(store, sweep_id)
    assert st["state"] == "finished", st
    trials = st["trial_list"]
    assert Counter(t["state"] for t in trials) == {"complete": 6}, trials
    assert sorted(t["grid_index"] for t in trials) == list(range(6))
    runs = sweep_runs(store, sweep_id)
    assert sorted(runs) == list(range(6))
    for t in trials:
        run = runs[t["number"]]
        assert run["status"] == "finished", run
        assert run["config"] == t["params"], (run, t)
        assert run["group"] == st["name"]
        assert "sweep" in run["tags"]
        assert run["notes"].startswith("does lr matter more than bs? · trial #"), run
        expected = min(
            (t["params"]["lr"] - 0.01) ** 2 + t["params"]["bs"] / 1000 + 0.1 / (s + 1)
            for s in range(3)
        )
        assert t["value"] == pytest.approx(expected), (t, run)
        # The program's points and the wrapper's output reached the server.
        assert run["metrics"]["loss"]["count"] == 3, run
    best = min(trials, key=lambda t: t["value"])
    assert best["params"] == {"lr": 0.01, "bs": 16}


def test_an_agent_killed_with_sigkill_loses_no_grid_point_and_runs_none_twice(
    store: Path, server: LabbookServer, elsewhere: Path
) -> None:
    sweep_id, marks = slow_sweep(store, elsewhere)
    kill_runner_mid_trials(
        store,
        sweep_id,
        marks,
        started=0,
        command=[labbook_bin(), "sweep", "agent", sweep_id, "--url", server.url, "--workers", "2"],
        folder=elsewhere,
        env=agent_env({"MARKS": str(marks)}),
    )

    done = agent(elsewhere, sweep_id, server.url, "--workers", "2", env={"MARKS": str(marks)})
    assert done.returncode == 0, done.stderr
    st = status(store, sweep_id)
    assert st["state"] == "finished", st
    trials = st["trial_list"]
    assert Counter(t["state"] for t in trials) == {"complete": 6, "crashed": 2}, trials
    complete = [t for t in trials if t["state"] == "complete"]
    assert sorted(t["grid_index"] for t in complete) == list(range(6))
    for c in (t for t in trials if t["state"] == "crashed"):
        retries = [t for t in trials if t["retry_of"] == c["number"]]
        assert [r["state"] for r in retries] == ["complete"], (c, trials)
        assert retries[0]["params"] == c["params"]
    runs = sweep_runs(store, sweep_id)
    for t in complete:
        assert runs[t["number"]]["status"] == "finished", runs[t["number"]]


STEPS = """
import argparse, time, labbook
p = argparse.ArgumentParser()
p.add_argument("--q", type=float)
a = p.parse_args()
run = labbook.init()
for step in range(16):
    run.log({"loss": a.q + 1 / (step + 1)})
    time.sleep(0.25)
run.finish()
"""


@pytest.mark.parametrize("where", ["shared store", "over http", "queued"])
def test_hyperband_stops_the_trials_that_fall_behind(
    store: Path, server: LabbookServer, elsewhere: Path, where: str
) -> None:
    config = {
        "program": "steps.py",
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"q": {"values": [0, 1, 2, 3]}},
        "early_terminate": {"type": "hyperband", "min_iter": 3, "eta": 2},
    }
    sweep_id = create(store, sweep_file(store, config))
    if where == "over http":
        write(elsewhere / "steps.py", STEPS)
        done = agent(elsewhere, sweep_id, server.url)
    elif where == "queued":
        # A sweep job of tonight's queue runs its trials as `sweep run` does.
        write(store.parent / "steps.py", STEPS)
        queued = lb(store, "queue", "add", "--sweep", sweep_id)
        assert queued.returncode == 0, queued.stderr
        done = lb(store, "queue", "run", timeout=120)
    else:
        write(store.parent / "steps.py", STEPS)
        done = lb(store, "sweep", "run", sweep_id, timeout=120)
    assert done.returncode == 0, done.stderr
    trials: list[dict[str, Any]] = sorted(
        status(store, sweep_id)["trial_list"], key=lambda t: t["number"]
    )
    # Each later trial is worse at every step: the first two finish (a
    # pool of two puts the cutoff at the worse), the last two are stopped
    # once they have logged three values.
    assert [t["state"] for t in trials] == ["complete", "complete", "pruned", "pruned"], trials
    runs = sweep_runs(store, sweep_id)
    for t in trials[2:]:
        assert "hyperband" in (t["note"] or ""), t
        run = runs[t["number"]]
        assert run["status"] == "pruned", run
        assert 3 <= run["metrics"]["loss"]["count"] < 16, run
    assert f"trial #{trials[2]['number']} pruned: hyperband" in done.stderr
