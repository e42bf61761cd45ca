"""``labbook.study()``: Optuna-style studies kept in the labbook store.

The sampling, pruning and the store are Rust's (``labbook._native.StudyCore``);
this module is the Python shape Optuna users know: ``optimize`` running an
objective, ``TrialPruned``, ``best_value`` and friends.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labbook._native import StudyCore, TrialCore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from pathlib import Path


class TrialPruned(Exception):
    """Raised by an objective to stop its trial early (the pruner said so)."""


@dataclass(frozen=True)
class FrozenTrial:
    """A finished or running trial, as ``study.trials`` lists it."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    intermediate_values: dict[int, float]
    user_attrs: dict[str, Any]
    run_id: str | None
    datetime_start: datetime.datetime | None
    datetime_complete: datetime.datetime | None
    trial_id: int = 0
    system_attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> datetime.timedelta | None:
        if self.datetime_start is None or self.datetime_complete is None:
            return None
        return self.datetime_complete - self.datetime_start


def _when(ms: int | None) -> datetime.datetime | None:
    return None if ms is None else datetime.datetime.fromtimestamp(ms / 1000)


def _frozen(d: Mapping[str, Any]) -> FrozenTrial:
    return FrozenTrial(
        number=d["number"],
        state=d["state"],
        value=d["value"],
        params=dict(d["params"]),
        intermediate_values=dict(d["intermediate_values"]),
        user_attrs=dict(d["user_attrs"]),
        run_id=d["run_id"],
        datetime_start=_when(d["started_ms"]),
        datetime_complete=_when(d["ended_ms"]),
        trial_id=d["trial_id"],
        system_attrs=dict(d["system_attrs"]),
    )


class Trial:
    """One trial: ask for parameters, report values on the way, and ask the
    pruner whether to stop. It is a labbook run (``trial.run_id``)."""

    def __init__(self, core: TrialCore) -> None:
        self._core = core

    @property
    def number(self) -> int:
        return self._core.number

    @property
    def run_id(self) -> str | None:
        return self._core.run_id

    @property
    def params(self) -> dict[str, Any]:
        return self._core.params

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return self._core.suggest_float(name, float(low), float(high), step=step, log=log)

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        return self._core.suggest_int(name, int(low), int(high), step=int(step), log=log)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._core.suggest_categorical(name, list(choices))

    def report(self, value: float, step: int) -> None:
        self._core.report(float(value), int(step))

    def should_prune(self) -> bool:
        return self._core.should_prune()

    def set_user_attr(self, key: str, value: Any) -> None:
        self._core.set_user_attr(key, value)


class Study:
    """A search kept in the store: create or resume it with
    :func:`labbook.study`; any number of processes may share it."""

    def __init__(self, core: StudyCore) -> None:
        self._core = core

    @property
    def id(self) -> str:
        return self._core.id

    @property
    def study_name(self) -> str:
        return self._core.name

    @property
    def direction(self) -> str:
        return self._core.direction

    def ask(self, fixed_params: Mapping[str, Any] | None = None) -> Trial:
        """A new trial; ``fixed_params`` pins some parameters' values."""
        return Trial(self._core.ask(dict(fixed_params) if fixed_params else None))

    def tell(self, trial: Trial, value: float | None = None, state: str | None = None) -> None:
        """Ends a trial: ``value`` completes it; ``state="pruned"`` or
        ``"failed"`` ends it so."""
        if state is None:
            state = "complete" if value is not None else "failed"
        if state == "complete" and value is None:
            raise ValueError("value: a complete trial needs its objective's value")
        trial._core.finish(state, None if value is None else float(value))

    def enqueue_trial(self, params: Mapping[str, Any]) -> None:
        """Runs a trial with these parameters next."""
        self._core.enqueue(dict(params))

    def optimize(
        self,
        func: Callable[[Trial], float],
        n_trials: int | None = None,
        timeout: float | None = None,
        catch: Iterable[type[Exception]] | type[Exception] = (),
        callbacks: Sequence[Callable[[Study, FrozenTrial], None]] | None = None,
    ) -> None:
        """Runs ``func`` on new trials until ``n_trials`` or ``timeout``
        seconds. ``TrialPruned`` ends a trial as pruned; another exception
        fails it and is raised again unless it is one of ``catch``."""
        caught = (catch,) if isinstance(catch, type) else tuple(catch)
        deadline = None if timeout is None else time.monotonic() + timeout
        done = 0
        while n_trials is None or done < n_trials:
            if deadline is not None and time.monotonic() >= deadline:
                break
            trial = self.ask()
            done += 1
            try:
                value = func(trial)
            except TrialPruned:
                trial._core.finish("pruned", None, None)
            except Exception as e:
                trial._core.finish("failed", None, f"{type(e).__name__}: {e}")
                if not isinstance(e, caught):
                    raise
            else:
                self.tell(trial, float(value))
            for cb in callbacks or ():
                cb(self, self._frozen_trial(trial.number))

    def _frozen_trial(self, number: int) -> FrozenTrial:
        return _frozen(self._core.trials()[number])

    @property
    def trials(self) -> list[FrozenTrial]:
        return [_frozen(d) for d in self._core.trials()]

    @property
    def best_trial(self) -> FrozenTrial:
        best = self._core.best()
        if best is None:
            raise ValueError("no trial is complete yet")
        return _frozen(best)

    @property
    def best_value(self) -> float:
        value = self.best_trial.value
        assert value is not None
        return value

    @property
    def best_params(self) -> dict[str, Any]:
        return self.best_trial.params

    @property
    def user_attrs(self) -> dict[str, Any]:
        return self._core.user_attrs()

    def set_user_attr(self, key: str, value: Any) -> None:
        self._core.set_user_attr(key, value)


def study(
    name: str,
    *,
    direction: str = "minimize",
    sampler: str = "tpe",
    pruner: str | Mapping[str, Any] | None = None,
    seed: int | None = None,
    project: str | None = None,
    store: str | Path | None = None,
    why: str | None = None,
    metric: str | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
) -> Study:
    """Creates the study ``name`` in the store, or resumes it.

    ``sampler`` is ``"tpe"`` (multivariate, Optuna 5's defaults),
    ``"random"`` or ``"grid"`` (with ``grid={"name": [values]}``);
    ``pruner`` is ``"median"``, ``"asha"``, ``"hyperband"`` or None. Each
    trial is a run in the study's project, grouped under its name; ``metric``
    names the curve ``trial.report`` draws (default ``"objective"``).
    """
    core = StudyCore(
        name,
        direction=direction,
        sampler=sampler,
        pruner=pruner,
        seed=seed,
        project=project,
        store=None if store is None else str(store),
        why=why,
        metric=metric,
        grid=None if grid is None else {k: list(v) for k, v in grid.items()},
    )
    return Study(core)
