"""`labbook sweep` through the real CLI: W&B sweep files run offline. A grid
run by two workers, grid exactness across a runner killed with SIGKILL (its
trials stopped, crashed points run once more, a crashed retry not again),
16 agents sharing one store, the bad sweep files, a program that always
fails, a metric never logged, the command macros, stop, and GPU slots."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import labbook_bin

PY = sys.executable
PY_DIR = str(Path(sys.executable).parent)


def env_for(store: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    env["LABBOOK_DIR"] = str(store)
    env["LABBOOK_SNAPSHOT"] = "0"
    # ${interpreter} is the literal `python`, as in W&B: the venv's comes first.
    env["PATH"] = f"{PY_DIR}{os.pathsep}{env.get('PATH', '')}"
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.update(extra or {})
    return env


def lb(
    store: Path, *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [labbook_bin(), *args],
        cwd=store.parent,
        env=env_for(store, env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def lb_json(store: Path, *args: str) -> Any:
    done = lb(store, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def sweep_file(store: Path, config: dict[str, Any], name: str = "sweep.json") -> Path:
    """A sweep file (JSON, which is YAML too) in the project folder."""
    return write(store.parent / name, json.dumps(config))


def create(store: Path, file: Path, *args: str) -> str:
    created = lb_json(store, "sweep", "create", str(file), *args)
    assert created["state"] == "running" and created["kind"] == "sweep", created
    return str(created["id"])


def status(store: Path, sweep_id: str) -> dict[str, Any]:
    got: dict[str, Any] = lb_json(store, "sweep", "status", sweep_id)
    return got


def show(store: Path, run_id: str) -> dict[str, Any]:
    got: dict[str, Any] = lb_json(store, "show", run_id)
    return got


def sweep_runs(store: Path, sweep_id: str) -> dict[int, dict[str, Any]]:
    """The sweep's runs by trial number, each checked to be unique."""
    found: dict[int, dict[str, Any]] = {}
    for r in lb_json(store, "ls", "-A", "--limit", "0"):
        if r["kv_tags"].get("labbook.sweep") != sweep_id:
            continue
        number = int(r["kv_tags"]["labbook.trial"])
        assert number not in found, f"two runs for trial #{number}"
        found[number] = r
    return found


def run_sweep(
    store: Path, sweep_id: str, *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = lb(store, "sweep", "run", sweep_id, *args, timeout=timeout, env=env)
    assert "database is locked" not in done.stderr, done.stderr
    return done


TRAIN = """
import argparse, labbook
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
p.add_argument("--bs", type=int)
a = p.parse_args()
run = labbook.init()
for step in range(3):
    run.log({"loss": (a.lr - 0.01) ** 2 + a.bs / 1000 + 0.1 / (step + 1)})
run.finish()
"""

GRID_YAML = """\
program: train.py
method: grid
metric:
  name: loss
  goal: minimize
parameters:
  lr:
    values: [0.001, 0.01, 0.1]
  bs:
    values: [16, 32]
"""


def test_a_grid_runs_every_point_once_and_finds_the_best(store: Path) -> None:
    write(store.parent / "train.py", TRAIN)
    sweep_id = create(store, write(store.parent / "sweep.yaml", GRID_YAML), "--why", "grid")
    # No `command`: W&B's default, ${env} ${interpreter} ${program} ${args}.
    done = run_sweep(store, sweep_id, "--workers", "2")
    assert done.returncode == 0, done.stderr

    st = status(store, sweep_id)
    assert st["state"] == "finished", st
    assert "6 points" in st["state_reason"]
    assert st["trials"] == {"complete": 6}
    assert not st.get("warnings"), st["warnings"]
    trials = st["trial_list"]
    assert sorted(t["grid_index"] for t in trials) == list(range(6))
    points = [(t["params"]["lr"], t["params"]["bs"]) for t in trials]
    assert sorted(points) == sorted((lr, bs) for lr in (0.001, 0.01, 0.1) for bs in (16, 32))
    assert all(t["retry_of"] is None and t["state"] == "complete" for t in trials)

    runs = sweep_runs(store, sweep_id)
    assert sorted(runs) == sorted(t["number"] for t in trials)
    for t in trials:
        r = runs[t["number"]]
        assert r["id"] == t["run_id"] and r["status"] == "finished"
        assert r["config"] == t["params"]
        assert r["group"] == st["name"] and "sweep" in r["tags"]
        # The trial's value is the run's best (minimum) loss.
        assert t["value"] == r["metrics"]["loss"]["min"]
        lr, bs = t["params"]["lr"], t["params"]["bs"]
        assert t["value"] == pytest.approx((lr - 0.01) ** 2 + bs / 1000 + 0.1 / 3)

    best = st["best"]
    assert best["params"] == {"lr": 0.01, "bs": 16}
    assert best["value"] == pytest.approx(0.016 + 0.1 / 3)
    assert best["value"] == min(t["value"] for t in trials)

    listed = lb_json(store, "sweep", "ls")
    assert [s["id"] for s in listed] == [sweep_id]
    assert listed[0]["state"] == "finished" and listed[0]["trials"] == {"complete": 6}
    assert listed[0]["why"] == "grid"


SLOW = """
import argparse, os, time, labbook
p = argparse.ArgumentParser()
p.add_argument("--a", type=int)
p.add_argument("--b", type=int)
a = p.parse_args()
with open(os.path.join(os.environ["MARKS"], str(os.getpid())), "w") as f:
    f.write(f"{a.a} {a.b}")
run = labbook.init()
for step in range(5):
    time.sleep(0.4)
    run.log({"loss": a.a * 10 + a.b + 1.0 / (step + 1)})
run.finish()
"""


def slow_sweep(store: Path, folder: Path | None = None) -> tuple[str, Path]:
    """A 6-point grid of SLOW, whose program (and its marks) live in
    ``folder`` (the project folder unless given); its id and the marks."""
    folder = folder or store.parent
    marks = folder / "marks"
    marks.mkdir()
    write(folder / "slow_train.py", SLOW)
    config = {
        "program": "slow_train.py",
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"a": {"values": [0, 1, 2]}, "b": {"values": [0, 1]}},
        "command": [PY, "${program}", "${args}"],
    }
    return create(store, sweep_file(store, config)), marks


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def strays(folder: Path) -> list[int]:
    """Live processes, other than this one, whose working folder is ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == str(folder) and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def kill_runner_mid_trials(
    store: Path,
    sweep_id: str,
    marks: Path,
    started: int,
    command: list[str] | None = None,
    folder: Path | None = None,
    env: dict[str, str] | None = None,
) -> list[int]:
    """Starts `sweep run --workers 2` (or ``command``, in ``folder`` with
    ``env``), SIGKILLs it (it alone) once two more trials are running, and
    returns the pids of the trials' programs, which must then stop (they
    get SIGTERM when their runner dies)."""
    folder = folder or store.parent
    runner = subprocess.Popen(
        command or [labbook_bin(), "sweep", "run", sweep_id, "--workers", "2"],
        cwd=folder,
        env=env or env_for(store, {"MARKS": str(marks)}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(list(marks.iterdir())) < started + 2:
            assert runner.poll() is None, runner.communicate()[1]
            assert time.monotonic() < deadline, "the trials never started"
            time.sleep(0.05)
        time.sleep(0.4)  # well inside the trials' 2 s of steps
        # The runner, its two `labbook run` children and their programs.
        assert len(strays(folder)) >= 5, strays(folder)
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.communicate(timeout=30)
    assert runner.returncode == -signal.SIGKILL
    # The programs (by their marker files) and every other process working
    # in the folder: the runner's `labbook run` children included.
    pids = [int(p.name) for p in marks.iterdir()]
    deadline = time.monotonic() + 10
    while (strays(folder) or any(alive(p) for p in pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = sorted({p for p in pids if alive(p)} | set(strays(folder)))
    for p in survivors:  # no strays left behind, whatever the verdict
        os.kill(p, signal.SIGKILL)
    assert survivors == [], "trial programs outlived their SIGKILLed runner"
    return pids


def test_grid_points_run_exactly_once_across_a_runner_killed_with_sigkill(store: Path) -> None:
    sweep_id, marks = slow_sweep(store)
    kill_runner_mid_trials(store, sweep_id, marks, started=0)
    st = status(store, sweep_id)
    assert st["state"] == "running" and st["trials"] == {"running": 2}, st

    done = run_sweep(store, sweep_id, "--workers", "2", env={"MARKS": str(marks)})
    assert done.returncode == 0, done.stderr
    st = status(store, sweep_id)
    assert st["state"] == "finished", st
    trials = st["trial_list"]
    states = Counter(t["state"] for t in trials)
    assert states == {"complete": 6, "crashed": 2}, states
    complete = [t for t in trials if t["state"] == "complete"]
    assert sorted(t["grid_index"] for t in complete) == list(range(6))
    by_number = {t["number"]: t for t in trials}
    crashed = [t for t in trials if t["state"] == "crashed"]
    for c in crashed:
        assert "crashed" in (c["note"] or ""), c
        retries = [t for t in trials if t["retry_of"] == c["number"]]
        assert len(retries) == 1, (c, trials)
        assert retries[0]["state"] == "complete"
        assert retries[0]["grid_index"] == c["grid_index"]
        assert retries[0]["params"] == c["params"]
    assert all(
        t["retry_of"] is None or by_number[t["retry_of"]]["state"] == "crashed" for t in trials
    )
    runs = sweep_runs(store, sweep_id)
    for c in crashed:
        assert runs[c["number"]]["status"] not in ("running", "finished"), runs[c["number"]]
    for t in complete:
        assert runs[t["number"]]["status"] == "finished"
        assert runs[t["number"]]["config"] == t["params"]


def test_a_retry_that_crashes_is_not_retried(store: Path) -> None:
    sweep_id, marks = slow_sweep(store)
    kill_runner_mid_trials(store, sweep_id, marks, started=0)
    kill_runner_mid_trials(store, sweep_id, marks, started=2)

    done = run_sweep(store, sweep_id, "--workers", "2", env={"MARKS": str(marks)})
    assert done.returncode == 0, done.stderr
    st = status(store, sweep_id)
    assert st["state"] == "finished", st
    trials = st["trial_list"]
    first = [t for t in trials if t["number"] in (0, 1)]
    retries = [t for t in trials if t["retry_of"] is not None]
    assert all(t["state"] == "crashed" for t in first), first
    assert sorted(t["retry_of"] for t in retries) == [0, 1]
    assert all(t["state"] == "crashed" for t in retries), retries
    # Those two points are given up; the other four ran once each.
    twice_crashed = {t["grid_index"] for t in first}
    complete = [t for t in trials if t["state"] == "complete"]
    assert sorted(t["grid_index"] for t in complete) == sorted(set(range(6)) - twice_crashed)
    assert len(trials) == 8


FAST = """
import argparse, labbook
p = argparse.ArgumentParser()
p.add_argument("--x", type=float)
p.add_argument("--opt")
a = p.parse_args()
run = labbook.init()
run.log({"loss": (a.x - 0.3) ** 2 + (0.1 if a.opt == "sgd" else 0.0)})
run.finish()
"""


def test_sixteen_agents_share_a_store_and_stop_at_the_run_cap(store: Path) -> None:
    write(store.parent / "fast.py", FAST)
    config = {
        "program": "fast.py",
        "method": "random",
        "run_cap": 48,
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}, "opt": {"values": ["sgd", "adam"]}},
        "command": [PY, "${program}", "${args}"],
    }
    sweep_id = create(store, sweep_file(store, config))
    agents = [
        subprocess.Popen(
            [labbook_bin(), "sweep", "agent", sweep_id],
            cwd=store.parent,
            env=env_for(store),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(16)
    ]
    for agent in agents:
        _, err = agent.communicate(timeout=120)
        assert agent.returncode == 0, err
        assert "database is locked" not in err and "error" not in err.lower(), err

    st = status(store, sweep_id)
    assert st["state"] == "finished" and "run cap" in st["state_reason"], st
    assert st["trials"] == {"complete": 48}
    trials = st["trial_list"]
    assert sorted(t["number"] for t in trials) == list(range(48))
    assert all(t["value"] is not None for t in trials)
    runs = sweep_runs(store, sweep_id)
    assert sorted(runs) == list(range(48))
    assert {r["status"] for r in runs.values()} == {"finished"}
    assert len({r["id"] for r in runs.values()}) == 48


BASE: dict[str, Any] = {
    "program": "train.py",
    "method": "grid",
    "parameters": {"a": {"values": [1, 2]}},
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"foo": 1}, "foo: unknown key"),
        (
            {"method": "random", "parameters": {"a": {"min": 2.0, "max": 1.0}}},
            "parameters.a: min 2 is not less than max 1",
        ),
        (
            {
                "method": "random",
                "parameters": {
                    "lr": {"distribution": "log_uniform_values", "min": 0.0, "max": 1.0}
                },
            },
            "parameters.lr.min: log_uniform_values needs min > 0",
        ),
        (
            {
                "method": "random",
                "parameters": {
                    "lr": {"distribution": "log_uniform_values", "min": -1.0, "max": 1.0}
                },
            },
            "parameters.lr.min: log_uniform_values needs min > 0",
        ),
        ({"parameters": {"a": {"values": []}}}, "parameters.a.values"),
        ({"command": ["python", "${argz}"]}, "command[1]: unknown macro ${argz}"),
        ({"metric": {"name": "loss", "goal": "up"}}, "metric.goal"),
        ({"run_cap": 0}, "run_cap"),
        ({"method": None}, "method"),
    ],
    ids=[
        "unknown-key",
        "min-over-max",
        "log-min-zero",
        "log-min-negative",
        "empty-grid",
        "unknown-macro",
        "bad-goal",
        "zero-run-cap",
        "no-method",
    ],
)
def test_bad_sweep_files_name_the_field_and_create_nothing(
    store: Path, change: dict[str, Any], field: str
) -> None:
    assert lb(store, "init").returncode == 0
    config = {**BASE, **change}
    config = {k: v for k, v in config.items() if v is not None}
    done = lb(store, "sweep", "create", str(sweep_file(store, config)), "--json")
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and field in errors[0], done.stderr
    assert done.stdout == ""
    assert lb_json(store, "sweep", "ls") == []


FAILS = """
import sys
sys.exit(3)
"""


def test_a_program_that_always_fails_stops_the_sweep_after_five_in_a_row(store: Path) -> None:
    write(store.parent / "fails.py", FAILS)
    config = {
        "program": "fails.py",
        "method": "random",
        "metric": {"name": "loss"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}},
        "command": [PY, "${program}", "${args}"],
    }
    sweep_id = create(store, sweep_file(store, config))
    done = run_sweep(store, sweep_id, timeout=60)
    assert done.returncode == 0, done.stderr
    st = status(store, sweep_id)
    assert st["state"] == "finished", st
    assert "5 trials in a row failed" in st["state_reason"]
    assert st["trials"] == {"failed": 5}
    assert all(t["note"] == "exit code 3" for t in st["trial_list"])
    assert st["best"] is None
    assert {r["status"] for r in sweep_runs(store, sweep_id).values()} == {"failed"}

    # Two workers: it stops too, with no more than one trial beyond the five
    # in flight when the fifth failed.
    sweep_id = create(store, sweep_file(store, config))
    done = run_sweep(store, sweep_id, "--workers", "2", timeout=60)
    assert done.returncode == 0, done.stderr
    st = status(store, sweep_id)
    assert st["state"] == "finished" and "in a row failed" in st["state_reason"], st
    assert st["trials"]["failed"] in (5, 6) and set(st["trials"]) == {"failed"}


NO_METRIC = """
import labbook
run = labbook.init()
run.log({"acc": 0.5})
run.finish()
"""


@pytest.mark.parametrize("method", ["random", "bayes"])
def test_a_metric_never_logged_is_warned_about_and_does_not_hang(store: Path, method: str) -> None:
    write(store.parent / "no_metric.py", NO_METRIC)
    config = {
        "program": "no_metric.py",
        "method": method,
        "run_cap": 3,
        "metric": {"name": "val_loss", "goal": "minimize"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}},
        "command": [PY, "${program}", "${args}"],
    }
    sweep_id = create(store, sweep_file(store, config))
    done = run_sweep(store, sweep_id, "--workers", "2", timeout=60)
    assert done.returncode == 0, done.stderr
    st = status(store, sweep_id)
    assert st["state"] == "finished", st
    assert st["trials"] == {"complete": 3}
    assert all(t["value"] is None for t in st["trial_list"])
    assert st["best"] is None
    warnings = st.get("warnings") or []
    assert len(warnings) == 1 and '"val_loss"' in warnings[0] and "never logged" in warnings[0]


MACROS = """
import json, os, sys, labbook
argv = sys.argv[1:]
files = [a for a in argv if a.endswith(".json")]
run = labbook.init()
run.summary["argv"] = json.dumps(argv)
with open(files[0]) as f:
    run.summary["json_file"] = f.read()
run.summary["config_set"] = os.environ["LABBOOK_CONFIG_SET"]
run.summary["trial"] = os.environ["LABBOOK_TRIAL"]
run.summary["sweep"] = os.environ["LABBOOK_SWEEP_ID"]
run.log({"score": 1.0})
run.finish()
"""


def test_macros_reach_the_program(store: Path) -> None:
    write(store.parent / "macros.py", MACROS)
    config = {
        "program": "macros.py",
        "method": "grid",
        "metric": {"name": "score", "goal": "maximize"},
        "parameters": {"flag": {"values": [True, False]}, "lr": {"value": 0.5}},
        "command": [
            "${env}",
            "${interpreter}",
            "${program}",
            "${args_no_boolean_flags}",
            "--token=${envvar:MY_TOKEN}",
            "${args_json_file}",
        ],
    }
    sweep_id = create(store, sweep_file(store, config))
    done = run_sweep(store, sweep_id, env={"MY_TOKEN": "s3cret-tok"})
    assert done.returncode == 0, done.stderr
    st = status(store, sweep_id)
    assert st["trials"] == {"complete": 2}, st
    for t in st["trial_list"]:
        summary = show(store, t["run_id"])["summary"]
        argv = json.loads(summary["argv"])
        flags = ["--flag"] if t["params"]["flag"] else []
        assert argv[:-1] == [*flags, "--lr=0.5", "--token=s3cret-tok"], argv
        assert json.loads(summary["json_file"]) == t["params"]
        assert json.loads(summary["config_set"]) == t["params"]
        # LABBOOK_TRIAL links the run to its trial: the store's STUDY:TRIAL keys.
        assert re.fullmatch(r"\d+:\d+", summary["trial"]), summary["trial"]
        assert summary["sweep"] == sweep_id


def test_stop_then_run_starts_nothing_new(store: Path) -> None:
    write(store.parent / "fast.py", FAST)
    config = {
        "program": "fast.py",
        "method": "random",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}, "opt": {"values": ["sgd", "adam"]}},
        "command": [PY, "${program}", "${args}"],
    }
    sweep_id = create(store, sweep_file(store, config))
    done = run_sweep(store, sweep_id, "--count", "2")
    assert done.returncode == 0, done.stderr
    assert status(store, sweep_id)["trials"] == {"complete": 2}

    assert lb(store, "sweep", "stop", sweep_id).returncode == 0
    done = run_sweep(store, sweep_id, "--workers", "2", timeout=30)
    assert done.returncode == 0, done.stderr
    st = status(store, sweep_id)
    assert st["state"] == "stopped", st
    assert st["trials"] == {"complete": 2}
    assert len(sweep_runs(store, sweep_id)) == 2
    assert lb_json(store, "sweep", "ls")[0]["state"] == "stopped"


GPU = """
import os, time, labbook
run = labbook.init()
run.summary["cuda"] = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
time.sleep(0.3)
run.log({"loss": float(run.config["i"])})
run.finish()
"""


def test_gpus_give_each_trial_its_own_device(store: Path) -> None:
    write(store.parent / "gpu.py", GPU)
    config = {
        "program": "gpu.py",
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"i": {"values": [0, 1, 2, 3]}},
        "command": [PY, "${program}", "${args}"],
    }
    sweep_id = create(store, sweep_file(store, config))
    done = run_sweep(store, sweep_id, "--gpus", "0,1")
    assert done.returncode == 0, done.stderr
    st = status(store, sweep_id)
    assert st["trials"] == {"complete": 4}, st
    runs = [show(store, t["run_id"]) for t in st["trial_list"]]
    devices = [r["summary"]["cuda"] for r in runs]
    assert set(devices) == {"0", "1"}, devices
    for r in runs:
        assert r["environment"]["env_vars"].get("CUDA_VISIBLE_DEVICES") == r["summary"]["cuda"]
    # Trials that ran at the same time had different devices.
    for i, a in enumerate(runs):
        for b in runs[i + 1 :]:
            if a["created_ms"] < b["ended_ms"] and b["created_ms"] < a["ended_ms"]:
                assert a["summary"]["cuda"] != b["summary"]["cuda"], (a["id"], b["id"])


def test_reaching_the_metric_target_finishes_the_sweep(store: Path) -> None:
    write(store.parent / "fast.py", FAST)
    config = {
        "program": "fast.py",
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize", "target": 0.05},
        "parameters": {"x": {"values": [0.9, 0.8, 0.3, 0.1, 0.0]}, "opt": {"value": "adam"}},
        "command": [PY, "${program}", "${args}"],
    }
    sweep_id = create(store, sweep_file(store, config))
    done = run_sweep(store, sweep_id)
    assert done.returncode == 0, done.stderr
    st = status(store, sweep_id)
    assert st["state"] == "finished" and "target" in st["state_reason"], st
    assert [t["params"]["x"] for t in st["trial_list"]] == [0.9, 0.8, 0.3]
    assert st["best"]["params"]["x"] == 0.3 and st["best"]["value"] == 0.0


LONG = """
import time, labbook
run = labbook.init()
for step in range(300):
    run.log({"loss": 1.0})
    time.sleep(0.1)
run.finish()
"""


def test_cancel_stops_the_running_trials(store: Path) -> None:
    write(store.parent / "long_train.py", LONG)
    config = {
        "program": "long_train.py",
        "method": "random",
        "metric": {"name": "loss"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}},
        "command": [PY, "${program}"],
    }
    sweep_id = create(store, sweep_file(store, config))
    runner = subprocess.Popen(
        [labbook_bin(), "sweep", "run", sweep_id, "--workers", "2"],
        cwd=store.parent,
        env=env_for(store),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while status(store, sweep_id)["trials"] != {"running": 2}:
            assert runner.poll() is None and time.monotonic() < deadline, "no trials started"
            time.sleep(0.1)
        assert lb(store, "sweep", "cancel", sweep_id).returncode == 0
        _, err = runner.communicate(timeout=20)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 0, err
    st = status(store, sweep_id)
    assert st["state"] == "cancelled", st
    assert st["trials"] == {"crashed": 2}, st
    for r in sweep_runs(store, sweep_id).values():
        assert r["status"] not in ("running", "finished"), r
    deadline = time.monotonic() + 10
    while strays(store.parent) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert strays(store.parent) == [], "trial programs outlived the cancel"
