"""`labbook.study()`: Optuna-style studies kept in the store. The issue's
example (maximize, TPE, ASHA) end to end with each trial a run, resuming,
16 processes sharing one study, a worker killed inside a trial, the grid
sampler running out, the bad inputs, seeded determinism, enqueued trials
and a NaN told."""

from __future__ import annotations

import json
import math
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import read_line, run_python

import labbook


@pytest.fixture(autouse=True)
def _no_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    # Trials need no code snapshot; skipping it keeps each run cheap.
    monkeypatch.setenv("LABBOOK_SNAPSHOT", "0")


def runs_of(store: Path, study_name: str) -> dict[int, dict[str, Any]]:
    """The study's runs by trial number, each checked to be unique."""
    found: dict[int, dict[str, Any]] = {}
    for r in labbook.Api(str(store)).runs(limit=100_000):
        if r["group"] != study_name:
            continue
        number = int(r["kv_tags"]["labbook.trial"])
        assert number not in found, f"two runs for trial #{number}"
        found[number] = r
    return found


def accuracy(x: float, lr: float, opt: str, epoch: int) -> float:
    """A learning curve that rises with the epoch and peaks at x=1, lr=1e-2,
    opt=adam: deterministic, so the search and the pruning are too."""
    quality = 1.0 - (x - 1.0) ** 2 / 10.0 - (math.log10(lr) + 2.0) ** 2 / 20.0
    quality += 0.05 if opt == "adam" else 0.0
    return quality * (1.0 - math.exp(-(epoch + 1) / 3.0))


def example_objective(trial: labbook.Trial) -> float:
    x = trial.suggest_float("x", -3.0, 3.0)
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    opt = trial.suggest_categorical("opt", ["sgd", "adam"])
    acc = 0.0
    for epoch in range(10):
        acc = accuracy(x, lr, opt, epoch)
        trial.report(acc, epoch)
        if trial.should_prune():
            raise labbook.TrialPruned()
    return acc


def test_the_issue_example_prunes_and_records_every_trial_as_a_run(store: Path) -> None:
    study = labbook.study(
        "example", direction="maximize", sampler="tpe", pruner="asha", seed=0, store=store.parent
    )
    assert study.direction == "maximize" and study.study_name == "example"
    study.optimize(example_objective, n_trials=40)

    trials = study.trials
    assert [t.number for t in trials] == list(range(40))
    states = Counter(t.state for t in trials)
    assert set(states) == {"complete", "pruned"}, states
    assert states["pruned"] >= 1 and states["complete"] >= 1, states

    complete = [t for t in trials if t.state == "complete"]
    best = max(complete, key=lambda t: t.value or -math.inf)
    assert study.best_trial.number == best.number
    assert study.best_value == best.value
    assert study.best_params == best.params
    # The objective's value is the last report of a complete trial.
    for t in complete:
        assert t.value == t.intermediate_values[9]
        p = t.params
        assert t.value == pytest.approx(accuracy(p["x"], p["lr"], p["opt"], 9))
    for t in trials:
        assert set(t.params) == {"x", "lr", "opt"}
        assert -3.0 <= t.params["x"] <= 3.0 and 1e-4 <= t.params["lr"] <= 1e-1
        assert t.params["opt"] in ("sgd", "adam")
        assert t.datetime_start is not None and t.datetime_complete is not None
        assert t.datetime_start <= t.datetime_complete
        steps = sorted(t.intermediate_values)
        assert steps == list(range(len(steps))) and steps
        if t.state == "pruned":
            # (Optuna gives a pruned trial its last report as its value.)
            assert len(steps) < 10
            assert t.value is None or t.value == t.intermediate_values[steps[-1]]

    api = labbook.Api(str(store))
    runs = runs_of(store, "example")
    assert sorted(runs) == list(range(40))
    for t in trials:
        r = runs[t.number]
        assert r["id"] == t.run_id
        assert r["status"] == {"complete": "finished", "pruned": "pruned"}[t.state], (t, r)
        assert "trial" in r["tags"]
        assert r["config"] == t.params
        assert r["kv_tags"]["labbook.study"] == study.id
        curve = api.history(r["id"], "objective")
        assert list(curve["step"]) == sorted(t.intermediate_values)
        assert list(curve["value"]) == [t.intermediate_values[s] for s in sorted(curve["step"])]


def test_a_study_resumes_with_its_trials_and_numbering(store: Path) -> None:
    first = labbook.study(
        "resume", direction="minimize", sampler="random", seed=1, store=store.parent
    )
    first.optimize(lambda t: (t.suggest_float("x", -1.0, 1.0) - 0.5) ** 2, n_trials=5)
    before = first.trials

    again = labbook.study("resume", direction="minimize", sampler="random", store=store.parent)
    assert again.id == first.id
    assert [(t.number, t.params, t.value) for t in again.trials] == [
        (t.number, t.params, t.value) for t in before
    ]
    assert again.best_trial.number == first.best_trial.number
    again.optimize(lambda t: (t.suggest_float("x", -1.0, 1.0) - 0.5) ** 2, n_trials=3)
    assert [t.number for t in again.trials] == list(range(8))
    assert all(t.state == "complete" for t in again.trials)
    assert sorted(runs_of(store, "resume")) == list(range(8))


WORKER = """
import os, labbook
study = labbook.study("shared", sampler="random", store=os.environ["STUDY_DIR"])
def objective(trial):
    x = trial.suggest_float("x", -5.0, 5.0)
    n = trial.suggest_int("n", 1, 4)
    trial.report(x * x, 0)
    return x * x + n
study.optimize(objective, n_trials=10)
print("done", flush=True)
"""


def test_sixteen_processes_share_one_study_without_losing_a_trial(store: Path) -> None:
    env = {"STUDY_DIR": str(store.parent), "LABBOOK_SNAPSHOT": "0"}
    procs = [run_python(WORKER, store.parent, env) for _ in range(16)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == "done", out + err
        assert "locked" not in err.lower() and "error" not in err.lower(), err

    study = labbook.study("shared", sampler="random", store=store.parent)
    trials = study.trials
    assert len(trials) == 160
    assert sorted(t.number for t in trials) == list(range(160))
    assert all(t.state == "complete" for t in trials), Counter(t.state for t in trials)
    for t in trials:
        assert t.value == pytest.approx(t.params["x"] ** 2 + t.params["n"])
    runs = runs_of(store, "shared")
    assert sorted(runs) == list(range(160))
    assert {r["status"] for r in runs.values()} == {"finished"}
    assert len({t.run_id for t in trials}) == 160


HANGS_IN_A_TRIAL = """
import os, time, labbook
study = labbook.study("killed", store=os.environ["STUDY_DIR"])
trial = study.ask()
trial.suggest_float("x", 0.0, 1.0)
trial.report(0.5, 0)
print(trial.number, trial.run_id, flush=True)
time.sleep(120)
"""

ASKS_NEXT = """
import os, json, labbook
study = labbook.study("killed", store=os.environ["STUDY_DIR"])
trial = study.ask()
x = trial.suggest_float("x", 0.0, 1.0)
study.tell(trial, x)
print(json.dumps([[t.number, t.state] for t in study.trials]), flush=True)
"""


def test_a_worker_killed_inside_a_trial_is_marked_crashed_by_the_next_ask(store: Path) -> None:
    env = {"STUDY_DIR": str(store.parent), "LABBOOK_SNAPSHOT": "0"}
    victim = run_python(HANGS_IN_A_TRIAL, store.parent, env)
    try:
        assert victim.stdout is not None
        number, run_id = read_line(victim.stdout, what="the trial's number").split()
        assert number == "0"
        study = labbook.study("killed", store=store.parent)
        assert [(t.number, t.state) for t in study.trials] == [(0, "running")]
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL

    other = run_python(ASKS_NEXT, store.parent, env)
    out, err = other.communicate(timeout=60)
    assert other.returncode == 0, err
    assert json.loads(out) == [[0, "crashed"], [1, "complete"]]
    crashed = study.trials[0]
    assert crashed.state == "crashed" and crashed.value is None
    assert crashed.intermediate_values == {0: 0.5}
    run = labbook.Api(str(store)).run(run_id)
    assert run["status"] == "crashed", run["status"]


def test_the_grid_sampler_visits_every_point_once_then_says_it_is_done(store: Path) -> None:
    grid = {"x": [1, 2, 3], "opt": ["sgd", "adam"]}
    study = labbook.study("grid", sampler="grid", grid=grid, store=store.parent)
    seen = []
    for _ in range(6):
        trial = study.ask()
        x = trial.suggest_int("x", 1, 3)
        opt = trial.suggest_categorical("opt", ["sgd", "adam"])
        seen.append((x, opt))
        study.tell(trial, x + (0.5 if opt == "adam" else 0.0))
    assert sorted(seen) == sorted((x, o) for x in (1, 2, 3) for o in ("sgd", "adam"))
    with pytest.raises(Exception, match="grid") as caught:
        study.ask()
    assert "every point" in str(caught.value)
    assert len(study.trials) == 6
    assert study.best_params == {"x": 1, "opt": "sgd"} and study.best_value == 1.0


def test_a_parameter_whose_distribution_changes_is_refused_by_name(store: Path) -> None:
    study = labbook.study("dists", store=store.parent)
    trial = study.ask()
    trial.suggest_float("x", 0.1, 1.0)
    trial.suggest_categorical("c", ["a", "b"])
    study.tell(trial, 1.0)

    trial = study.ask()
    with pytest.raises(ValueError, match=r"\bx\b.*float.*int"):
        trial.suggest_int("x", 0, 1)
    with pytest.raises(ValueError, match=r"^x: "):
        trial.suggest_float("x", 0.1, 1.0, log=True)
    with pytest.raises(ValueError, match=r"^c: .*choices"):
        trial.suggest_categorical("c", ["a", "c"])
    # The same distribution is still fine.
    assert 0.1 <= trial.suggest_float("x", 0.1, 1.0) <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sampler": "cmaes"}, "sampler"),
        ({"pruner": "nope"}, "pruner"),
        ({"direction": "up"}, "direction"),
        ({"sampler": "grid"}, "grid"),
    ],
)
def test_unknown_names_are_refused(store: Path, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        labbook.study("bad", store=store.parent, **kwargs)


def test_resuming_in_the_other_direction_is_refused(store: Path) -> None:
    labbook.study("dir", direction="minimize", store=store.parent)
    with pytest.raises(ValueError, match=r"direction.*minimize"):
        labbook.study("dir", direction="maximize", store=store.parent)


def branin(trial: labbook.Trial) -> float:
    x = trial.suggest_float("x", -5.0, 10.0)
    y = trial.suggest_float("y", 0.0, 15.0)
    k = trial.suggest_categorical("k", [0, 1, 2])
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (y - b * x**2 + c * x - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x) + 10 + k


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_the_same_seed_gives_the_same_params(tmp_path: Path, sampler: str) -> None:
    sequences = []
    for side in ("a", "b"):
        folder = tmp_path / side
        folder.mkdir()
        study = labbook.study("seeded", sampler=sampler, seed=42, store=folder)
        study.optimize(branin, n_trials=20)
        sequences.append([t.params for t in study.trials])
    assert sequences[0] == sequences[1]
    assert len({(p["x"], p["y"]) for p in sequences[0]}) == 20
    other = tmp_path / "other"
    other.mkdir()
    study = labbook.study("seeded", sampler=sampler, seed=43, store=other)
    study.optimize(branin, n_trials=3)
    assert [t.params for t in study.trials] != sequences[0][:3]


def test_enqueued_trials_run_first_with_their_params(store: Path) -> None:
    study = labbook.study("queued", sampler="random", seed=3, store=store.parent)
    study.enqueue_trial({"x": 0.25, "opt": "adam"})
    study.enqueue_trial({"x": -0.75})
    seen: list[tuple[float, str]] = []

    def objective(trial: labbook.Trial) -> float:
        x = trial.suggest_float("x", -1.0, 1.0)
        opt = trial.suggest_categorical("opt", ["sgd", "adam"])
        seen.append((x, opt))
        return x

    study.optimize(objective, n_trials=4)
    assert seen[0] == (0.25, "adam")
    assert seen[1][0] == -0.75 and seen[1][1] in ("sgd", "adam")
    assert [t.params["x"] for t in study.trials[:2]] == [0.25, -0.75]
    assert all(t.state == "complete" for t in study.trials) and len(study.trials) == 4
    assert study.best_params["x"] == min(x for x, _ in seen)


def test_telling_nan_fails_the_trial(store: Path) -> None:
    study = labbook.study("nan", store=store.parent)
    good = study.ask()
    good.suggest_float("x", 0.0, 1.0)
    study.tell(good, 2.0)
    bad = study.ask()
    bad.suggest_float("x", 0.0, 1.0)
    study.tell(bad, float("nan"))

    t = study.trials[1]
    assert t.state == "failed"
    assert t.value is None or math.isnan(t.value)
    assert study.best_trial.number == 0 and study.best_value == 2.0
    assert labbook.Api(str(store)).run(bad.run_id or "")["status"] == "failed"


def test_an_objective_that_raises_fails_its_trial_and_is_raised(store: Path) -> None:
    study = labbook.study("raises", store=store.parent)

    def objective(trial: labbook.Trial) -> float:
        if trial.suggest_int("n", 0, 10) >= 0:
            raise RuntimeError("boom")
        return 0.0

    with pytest.raises(RuntimeError, match="boom"):
        study.optimize(objective, n_trials=3)
    study.optimize(objective, n_trials=2, catch=RuntimeError)
    assert [t.state for t in study.trials] == ["failed"] * 3
    with pytest.raises(ValueError, match="no trial is complete"):
        _ = study.best_trial


def test_project_why_metric_user_attrs_callbacks_and_fixed_params(store: Path) -> None:
    study = labbook.study(
        "misc",
        direction="maximize",
        sampler="random",
        seed=0,
        project="proj",
        why="does x matter?",
        metric="val/acc",
        store=store.parent,
    )
    study.set_user_attr("owner", "me")
    seen: list[tuple[int, str, float | None]] = []

    def objective(trial: labbook.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        trial.set_user_attr("double", 2 * x)
        trial.report(x / 2, 0)
        trial.report(x, 1)
        return x

    study.optimize(
        objective, n_trials=3, callbacks=[lambda _s, t: seen.append((t.number, t.state, t.value))]
    )
    assert seen == [(t.number, "complete", t.value) for t in study.trials]
    trial = study.ask(fixed_params={"x": 0.125})
    assert trial.suggest_float("x", 0.0, 1.0) == 0.125
    study.tell(trial, 0.125)

    trials = study.trials
    assert trials[3].params == {"x": 0.125}
    assert study.user_attrs == {"owner": "me"}
    for t in trials[:3]:
        assert t.user_attrs == {"double": 2 * t.params["x"]}
    again = labbook.study("misc", direction="maximize", project="proj", store=store.parent)
    assert again.user_attrs == {"owner": "me"} and len(again.trials) == 4

    api = labbook.Api(str(store))
    for t in trials[:3]:
        r = api.run(t.run_id or "")
        assert r["project"] == "proj"
        assert "does x matter?" in r["notes"]
        assert list(r["metrics"]) == ["val/acc"]
        assert list(api.history(r["id"], "val/acc")["value"]) == [t.params["x"] / 2, t.params["x"]]
