"""``labbook.optuna.Storage``: Optuna's own storage test suite against it, and
real Optuna studies (samplers, pruners, enqueue, ask/tell, several processes)
kept in a labbook store, each trial a labbook run."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("optuna", reason="optuna is not installed (requirements-dev.txt)")

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.testing.pytest_storages import (
    FLOAT_ATTRS,
    StorageTestCase,
    _setup_studies,
    is_equal_floats,
)
from optuna.trial import FrozenTrial, TrialState

import labbook
from labbook.optuna import Storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

MS_PRECISION = (
    "labbook keeps times as epoch milliseconds (SearchStore.create_trial takes "
    "started_ms/ended_ms as integers), so a template trial's datetimes lose their "
    "microseconds; Optuna's storages keep them exactly"
)


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage(tmp_path / ".labbook")


# ---------------------------------------------------------------------------
# 1. Optuna's generic storage suite (optuna.testing.pytest_storages).


class TestLabbookStorage(StorageTestCase):
    """Optuna's 59 storage cases. Those the native store fails are overridden
    below as strict xfails (each reason names the native bug); each has a
    passing variant next to it covering the rest of what it checks."""

    @pytest.mark.xfail(
        strict=True,
        raises=ValueError,
        reason="native bug: SearchStore.create_study rejects the name '' "
        "('name: must not be empty'); Optuna allows '' as a name distinct from None",
    )
    def test_create_new_study_with_empty_name(self, storage: BaseStorage) -> None:
        super().test_create_new_study_with_empty_name(storage)

    @pytest.mark.parametrize(
        "start_time,complete_time",
        [
            # Fixed sub-millisecond times, so the xfail is deterministic
            # (Optuna's own case uses datetime.now() twice).
            pytest.param(
                datetime(2022, 9, 1, 12, 0, 0, 123456),
                datetime(2022, 9, 1, 12, 0, 1, 654321),
                marks=pytest.mark.xfail(strict=True, reason="native limitation: " + MS_PRECISION),
            ),
            (datetime(2022, 9, 1), datetime(2022, 9, 2)),
            (datetime(2022, 9, 1, 12, 0, 0, 123000), datetime(2022, 9, 1, 12, 0, 1, 654000)),
        ],
    )
    def test_create_new_trial_with_template_trial(
        self, storage: BaseStorage, start_time: datetime, complete_time: datetime
    ) -> None:
        super().test_create_new_trial_with_template_trial(storage, start_time, complete_time)

    @pytest.mark.xfail(strict=True, reason="native limitation: " + MS_PRECISION)
    def test_get_trial(self, storage: BaseStorage) -> None:
        super().test_get_trial(storage)

    @pytest.mark.xfail(strict=True, reason="native limitation: " + MS_PRECISION)
    def test_get_all_trials(self, storage: BaseStorage) -> None:
        super().test_get_all_trials(storage)

    @pytest.mark.parametrize(
        "param_names",
        [
            ["a", "b"],
            pytest.param(
                ["b", "a"],
                marks=pytest.mark.xfail(
                    strict=True,
                    reason="native bug: a trial's params come back sorted by name "
                    "(SearchStore.trial()['params']), not in the order they were set",
                ),
            ),
        ],
    )
    def test_get_all_trials_params_order(
        self, storage: BaseStorage, param_names: list[str]
    ) -> None:
        super().test_get_all_trials_params_order(storage, param_names)

    @pytest.mark.xfail(
        strict=True,
        raises=ValueError,
        reason="native bug: SearchStore.set_trial_param rejects Optuna's JSON for a "
        "categorical choice of inf or nan ({'choices': [Infinity]} is what "
        "distribution_to_json writes; serde_json calls it 'not JSON')",
    )
    def test_set_and_get_trial_param_for_floats(self, storage: BaseStorage) -> None:
        super().test_set_and_get_trial_param_for_floats(storage)


def _same_but_times_to_the_ms(got: FrozenTrial, expected: FrozenTrial) -> None:
    for name in ("datetime_start", "datetime_complete"):
        a, b = getattr(got, name), getattr(expected, name)
        assert (a is None) == (b is None), name
        if a is not None:
            assert abs(a - b) <= timedelta(microseconds=500), name
    for name in (
        "number",
        "state",
        "values",
        "params",
        "distributions",
        "user_attrs",
        "system_attrs",
        "intermediate_values",
        "_trial_id",
    ):
        assert getattr(got, name) == getattr(expected, name), name


def test_get_trial_and_get_all_trials_match_optunas_to_the_millisecond(
    storage: Storage,
) -> None:
    """Optuna's test_get_trial and test_get_all_trials with datetimes
    compared to the millisecond the store keeps."""
    _, study_to_trials = _setup_studies(storage, n_study=2, n_trial=20, seed=47)
    for study_id, expected in study_to_trials.items():
        for trial_id, want in expected.items():
            _same_but_times_to_the_ms(storage.get_trial(trial_id), want)
        trials = storage.get_all_trials(study_id)
        assert [t._trial_id for t in trials] == sorted(expected)
        for t in trials:
            _same_but_times_to_the_ms(t, expected[t._trial_id])


def test_finite_float_and_categorical_params_round_trip(storage: Storage) -> None:
    """Optuna's test_set_and_get_trial_param_for_floats without the inf/nan
    categorical choices the native store rejects."""
    study_id = storage.create_new_study(directions=[StudyDirection.MINIMIZE])
    trial_id = storage.create_new_trial(study_id)
    for key, value in FLOAT_ATTRS.items():
        if not math.isfinite(value):
            continue
        for dist in (FloatDistribution(value, value), CategoricalDistribution((value,))):
            name = type(dist).__name__ + key
            internal = dist.to_internal_repr(value)
            storage.set_trial_param(trial_id, name, internal, dist)
            assert is_equal_floats(storage.get_trial_param(trial_id, name), internal)
            assert storage.get_trial(trial_id).distributions[name] == dist


# ---------------------------------------------------------------------------
# 2. Real Optuna studies through the storage.


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -5.0, 5.0)
    n = trial.suggest_int("n", 1, 4)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    if trial.number == 4:
        raise ArithmeticError("trial 4 fails on purpose")
    value = 0.0
    for step in range(6):
        value = (x - 1.0) ** 2 + n + (0.5 if kind == "b" else 0.0) + 1.0 / (step + 1)
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def _new_study(dir: Path, name: str) -> optuna.Study:
    return optuna.create_study(
        storage=Storage(dir),
        study_name=name,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=7, n_startup_trials=5),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )


def test_optimize_with_tpe_and_a_median_pruner(tmp_path: Path) -> None:
    store = tmp_path / ".labbook"
    study = _new_study(store, "tpe-median")
    study.enqueue_trial({"x": 1.0, "n": 1, "kind": "a"})
    study.optimize(_objective, n_trials=30, catch=(ArithmeticError,))

    trials = study.trials
    assert [t.number for t in trials] == list(range(30))
    by_state = {s: [t for t in trials if t.state == s] for s in TrialState}
    assert by_state[TrialState.PRUNED], "the median pruner pruned nothing"
    assert [t.number for t in by_state[TrialState.FAIL]] == [4]
    assert not by_state[TrialState.RUNNING] and not by_state[TrialState.WAITING]
    complete = by_state[TrialState.COMPLETE]
    best = min(complete, key=lambda t: t.values[0])
    assert study.best_value == best.value and study.best_trial.number == best.number

    # The enqueued trial ran first, with its fixed params.
    first = trials[0]
    assert first.params == {"x": 1.0, "n": 1, "kind": "a"}
    assert first.system_attrs["fixed_params"] == {"x": 1.0, "n": 1, "kind": "a"}
    assert first.state == TrialState.COMPLETE and first.value == pytest.approx(1.0 + 1 / 6)
    assert first.intermediate_values == {s: pytest.approx(1.0 + 1 / (s + 1)) for s in range(6)}
    for t in trials:
        assert t.distributions["x"] == FloatDistribution(-5.0, 5.0)
        assert isinstance(t.params["n"], int) and t.params["kind"] in ("a", "b")
        assert t.datetime_start is not None and t.datetime_complete is not None
        assert t.datetime_start <= t.datetime_complete <= datetime.now()

    # A second storage object (another process would be the same) sees it all.
    again = optuna.load_study(study_name="tpe-median", storage=Storage(store))
    assert [(t.number, t.state, t.values, t.params) for t in again.trials] == [
        (t.number, t.state, t.values, t.params) for t in trials
    ]
    assert again.best_value == study.best_value and again.direction == StudyDirection.MINIMIZE

    # Each trial is a labbook run of the study's group, ended as the trial did.
    runs = labbook.Api(str(store)).runs(project="optuna")
    assert len(runs) == 30 and {r["group"] for r in runs} == {"tpe-median"}
    status = {"COMPLETE": "finished", "PRUNED": "pruned", "FAIL": "failed"}
    want = sorted(status[t.state.name] for t in trials)
    assert sorted(r["status"] for r in runs) == want
    objectives = sorted(r["summary"]["objective"] for r in runs if r["status"] == "finished")
    assert objectives == pytest.approx(sorted(t.values[0] for t in complete))


def test_a_study_created_again_is_loaded_or_refused(tmp_path: Path) -> None:
    store = tmp_path / ".labbook"
    study = _new_study(store, "dup")
    study.set_user_attr("owner", "ann")
    with pytest.raises(optuna.exceptions.DuplicatedStudyError):
        optuna.create_study(storage=Storage(store), study_name="dup")
    loaded = optuna.create_study(storage=Storage(store), study_name="dup", load_if_exists=True)
    assert loaded._study_id == study._study_id and loaded.user_attrs == {"owner": "ann"}
    with pytest.raises(KeyError):
        optuna.load_study(study_name="nope", storage=Storage(store))


def test_multi_objective(tmp_path: Path) -> None:
    study = optuna.create_study(
        storage=Storage(tmp_path / ".labbook"),
        directions=["minimize", "maximize"],
        sampler=optuna.samplers.NSGAIISampler(seed=1, population_size=4),
    )

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", 0.0, 1.0)
        return x**2, x

    study.optimize(objective, n_trials=12)
    assert study.directions == [StudyDirection.MINIMIZE, StudyDirection.MAXIMIZE]
    assert [t.number for t in study.trials] == list(range(12))
    assert all(t.state == TrialState.COMPLETE and len(t.values) == 2 for t in study.trials)
    assert study.best_trials
    with pytest.raises(RuntimeError):  # BaseStorage's rule for several objectives
        study._storage.get_best_trial(study._study_id)


def test_threads_share_one_storage(tmp_path: Path) -> None:
    # NSGA-II is not used here: with n_jobs > 1 it races in Optuna itself
    # (inhomogeneous population values), with Optuna's own RDB and journal
    # storages too.
    study = optuna.create_study(
        storage=Storage(tmp_path / ".labbook"),
        sampler=optuna.samplers.TPESampler(seed=3, n_startup_trials=4),
    )
    study.optimize(lambda t: (t.suggest_float("x", -1.0, 1.0) - 0.5) ** 2, n_trials=24, n_jobs=4)
    trials = study.trials
    assert [t.number for t in trials] == list(range(24))
    assert len({t._trial_id for t in trials}) == 24
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert study.best_value == min(t.values[0] for t in trials)


WORKER = """
import sys
import time
from pathlib import Path
import optuna
import labbook.optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
# Both workers start optimizing together.
Path(sys.argv[1] + ".ready-" + sys.argv[2]).touch()
deadline = time.monotonic() + 60
while len(list(Path(sys.argv[1]).parent.glob("*.ready-*"))) < 2 and time.monotonic() < deadline:
    time.sleep(0.01)
study = optuna.load_study(
    study_name="shared",
    storage=labbook.optuna.Storage(sys.argv[1]),
    sampler=optuna.samplers.TPESampler(seed=int(sys.argv[2]), n_startup_trials=4),
)
def objective(trial):
    x = trial.suggest_float("x", -3.0, 3.0)
    trial.set_user_attr("worker", sys.argv[2])
    time.sleep(0.01)
    return x * x
study.optimize(objective, n_trials=int(sys.argv[3]))
"""


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}


def test_two_processes_optimize_one_study(tmp_path: Path) -> None:
    store = tmp_path / ".labbook"
    optuna.create_study(storage=Storage(store), study_name="shared")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(store), str(seed), "20"],
            cwd=tmp_path,
            env=_clean_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err

    study = optuna.load_study(study_name="shared", storage=Storage(store))
    trials = study.trials
    assert len(trials) == 40
    assert sorted(t.number for t in trials) == list(range(40))
    assert len({t._trial_id for t in trials}) == 40
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert {t.user_attrs["worker"] for t in trials} == {"1", "2"}
    runs = labbook.Api(str(store)).runs(project="optuna")
    assert len(runs) == 40 and {r["status"] for r in runs} == {"finished"}


def test_a_trial_enqueued_by_a_process_that_exited_is_not_a_crashed_run(
    tmp_path: Path,
) -> None:
    store = tmp_path / ".labbook"
    optuna.create_study(storage=Storage(store), study_name="queue")
    enqueue = (
        "import sys, optuna, labbook.optuna\n"
        "s = optuna.load_study(study_name='queue', storage=labbook.optuna.Storage(sys.argv[1]))\n"
        "s.enqueue_trial({'x': 0.5})\n"
    )
    subprocess.run(
        [sys.executable, "-c", enqueue, str(store)], check=True, env=_clean_env(), timeout=60
    )
    study = optuna.load_study(study_name="queue", storage=Storage(store))
    assert [t.state for t in study.trials] == [TrialState.WAITING]
    runs = labbook.Api(str(store)).runs(project="optuna")
    assert [r["status"] for r in runs] != ["crashed"]


# ---------------------------------------------------------------------------
# 3. ask/tell and the study-level functions.


def test_ask_and_tell(tmp_path: Path) -> None:
    store = tmp_path / ".labbook"
    study = optuna.create_study(storage=Storage(store), study_name="asktell", direction="maximize")
    dists: dict[str, Any] = {"lr": FloatDistribution(1e-4, 1e-1, log=True)}
    for i in range(4):
        trial = study.ask(dists)
        units = trial.suggest_int("units", 8, 64, step=8)
        trial.report(0.1 * i, 0)
        if i == 2:
            study.tell(trial, state=TrialState.PRUNED)
        elif i == 3:
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, units / 64 + i)
    frozen = study.trials
    assert [t.state for t in frozen] == [
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.FAIL,
    ]
    assert study.best_trial.number == 1
    assert all(1e-4 <= t.params["lr"] <= 1e-1 for t in frozen)
    assert frozen[2].intermediate_values == {0: pytest.approx(0.2)}
    # A pruned trial told without a value gets its last report, as in Optuna.
    assert frozen[2].value == pytest.approx(0.2)
    with pytest.raises(ValueError, match="Cannot tell a COMPLETE trial"):
        study.tell(frozen[0].number, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError, match="Trial#0 has already"):
        study._storage.set_trial_user_attr(frozen[0]._trial_id, "late", 1)

    # tell() by number, the way a separate worker reports.
    t = study.ask()
    t.suggest_float("x", 0, 1)
    study.tell(t.number, 99.0)
    assert study.best_value == 99.0

    # add_trial: a FrozenTrial template with everything in it.
    study.add_trial(
        optuna.trial.create_trial(
            params={"x": 0.25},
            distributions={"x": FloatDistribution(0, 1)},
            value=100.0,
            intermediate_values={0: 1.0, 3: float("inf")},
            user_attrs={"source": "manual"},
        )
    )
    added = study.trials[-1]
    assert added.number == 5 and added.value == 100.0 and added.params == {"x": 0.25}
    assert added.intermediate_values == {0: 1.0, 3: float("inf")}
    assert added.user_attrs == {"source": "manual"} and study.best_value == 100.0


def test_study_names_summaries_and_delete(tmp_path: Path) -> None:
    store = tmp_path / ".labbook"
    a = optuna.create_study(storage=Storage(store), study_name="a")
    b = optuna.create_study(
        storage=Storage(store), study_name="b", directions=["minimize", "maximize"]
    )
    a.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    b.set_user_attr("k", [1, 2])
    # Another project in the same store is another set of studies.
    optuna.create_study(storage=Storage(store, project="other"), study_name="c")

    assert optuna.get_all_study_names(Storage(store)) == ["a", "b"]
    summaries = optuna.get_all_study_summaries(Storage(store), include_best_trial=True)
    by_name = {s.study_name: s for s in summaries}
    assert set(by_name) == {"a", "b"}
    assert by_name["a"].n_trials == 3 and by_name["a"].best_trial is not None
    assert by_name["a"].direction == StudyDirection.MINIMIZE
    assert by_name["b"].directions == [StudyDirection.MINIMIZE, StudyDirection.MAXIMIZE]
    assert by_name["b"].user_attrs == {"k": [1, 2]} and by_name["b"].best_trial is None
    assert by_name["a"].datetime_start is not None

    optuna.delete_study(study_name="a", storage=Storage(store))
    assert optuna.get_all_study_names(Storage(store)) == ["b"]
    assert optuna.get_all_study_names(Storage(store, project="other")) == ["c"]
    with pytest.raises(KeyError):
        optuna.load_study(study_name="a", storage=Storage(store))
    with pytest.raises(KeyError):
        optuna.delete_study(study_name="a", storage=Storage(store))
    # The name is free again, under a new id.
    again = optuna.create_study(storage=Storage(store), study_name="a")
    assert again._study_id != a._study_id and again.trials == []


# ---------------------------------------------------------------------------
# The storage object itself.


def test_the_store_is_found_like_labbook_init_finds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LABBOOK_DIR", raising=False)
    project = tmp_path / "proj"
    deep = project / "src" / "deep"
    deep.mkdir(parents=True)
    (project / ".git").mkdir()
    monkeypatch.chdir(deep)
    # No store anywhere: the enclosing git repository's root.
    assert Storage().dir == project / ".labbook"
    assert (project / ".labbook").is_dir()
    # Then found from below it.
    (deep / "x").mkdir()
    monkeypatch.chdir(deep / "x")
    assert Storage().dir == project / ".labbook"
    # LABBOOK_DIR wins.
    monkeypatch.setenv("LABBOOK_DIR", str(tmp_path / "elsewhere"))
    assert Storage().dir == tmp_path / "elsewhere"
    # An explicit folder that is not a store holds one.
    assert Storage(tmp_path / "other").dir == tmp_path / "other" / ".labbook"
    assert Storage("rel/.labbook").dir == deep / "x" / "rel" / ".labbook"


def test_a_pickled_storage_reopens_the_same_store(tmp_path: Path) -> None:
    import pickle

    store = tmp_path / ".labbook"
    study = optuna.create_study(storage=Storage(store, project="p"), study_name="pk")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    clone = pickle.loads(pickle.dumps(Storage(store, project="p")))
    assert clone.dir == store and clone.project == "p"
    assert clone.get_n_trials(clone.get_study_id_from_name("pk")) == 2
    assert "labbook.optuna.Storage(" in repr(clone)


def test_import_labbook_does_not_import_optuna_and_a_missing_optuna_is_explained(
    tmp_path: Path,
) -> None:
    code = textwrap.dedent(
        """
        import sys
        import labbook
        assert "optuna" not in sys.modules, "import labbook imported optuna"
        sys.modules["optuna"] = None  # as if it were not installed
        try:
            import labbook.optuna
        except ImportError as e:
            print(e)
        else:
            raise SystemExit("no ImportError")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "pip install optuna" in out.stdout
