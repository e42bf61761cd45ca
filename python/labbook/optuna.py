"""``labbook.optuna.Storage``: Optuna's storage interface over labbook's store.

    import optuna
    import labbook.optuna

    study = optuna.create_study(storage=labbook.optuna.Storage(), study_name="lr-sweep")
    study.optimize(objective, n_trials=100)

Optuna keeps its samplers and pruners; the studies and trials live in the
labbook store (``labbook._native.SearchStore``), and each trial is also a
labbook run (grouped by study name) with its parameters as config, its value
as the ``objective`` summary and its reports as the ``objective`` curve.

This module only converts between Optuna's objects (``FrozenTrial``,
distributions, ``TrialState``, ``StudyDirection``, ``FrozenStudy``,
datetimes, exceptions) and the native API; it keeps no state of its own
beyond the store's location, so any number of ``Storage`` objects and
processes can share one study.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    from optuna.distributions import (
        BaseDistribution,
        distribution_to_json,
        json_to_distribution,
    )
    from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
    from optuna.storages import BaseStorage
    from optuna.storages._base import DEFAULT_STUDY_NAME_PREFIX
    from optuna.study import StudyDirection
    from optuna.study._frozen import FrozenStudy
    from optuna.trial import FrozenTrial, TrialState
except ImportError as e:  # pragma: no cover - exercised only without optuna
    raise ImportError(
        "labbook.optuna needs Optuna: `pip install optuna` "
        "(labbook.study() is labbook's own Optuna-style API and needs nothing else)"
    ) from e

from labbook._native import DuplicateStudyError, SearchStore, TrialFinishedError

if TYPE_CHECKING:
    from collections.abc import Container, Iterator, Mapping, Sequence

    from optuna._typing import JSONSerializable

__all__ = ["Storage"]


@contextlib.contextmanager
def _optuna_errors() -> Iterator[None]:
    """Native errors as the exceptions Optuna's callers catch (KeyError and
    ValueError are already Optuna's)."""
    try:
        yield
    except DuplicateStudyError as e:
        raise DuplicatedStudyError(str(e)) from e
    except TrialFinishedError as e:
        raise UpdateFinishedTrialError(str(e)) from e


def _ms(when: datetime.datetime | None) -> int | None:
    return None if when is None else round(when.timestamp() * 1000)


def _datetime(ms: int | None) -> datetime.datetime | None:
    # Naive local time, as Optuna's own storages return (it compares them
    # with `datetime.now()`).
    return None if ms is None else datetime.datetime.fromtimestamp(ms / 1000)


def _frozen_trial(d: Mapping[str, Any]) -> FrozenTrial:
    values = d["values"]
    return FrozenTrial(
        number=d["number"],
        state=TrialState[d["state"]],
        value=None,
        values=None if values is None else list(values),
        datetime_start=_datetime(d["started_ms"]),
        datetime_complete=_datetime(d["ended_ms"]),
        params=dict(d["params"]),
        distributions={k: json_to_distribution(v) for k, v in d["distributions"].items()},
        user_attrs=dict(d["user_attrs"]),
        system_attrs=dict(d["system_attrs"]),
        intermediate_values=dict(d["intermediate_values"]),
        trial_id=d["trial_id"],
    )


def _template(t: FrozenTrial) -> dict[str, Any]:
    return {
        "state": t.state.name,
        "values": None if t.values is None else [float(v) for v in t.values],
        "params": dict(t.params),
        "distributions": {k: distribution_to_json(v) for k, v in t.distributions.items()},
        "intermediate_values": {int(k): float(v) for k, v in t.intermediate_values.items()},
        "user_attrs": dict(t.user_attrs),
        "system_attrs": dict(t.system_attrs),
        "started_ms": _ms(t.datetime_start),
        "ended_ms": _ms(t.datetime_complete),
    }


def _direction(name: str) -> StudyDirection:
    return StudyDirection[name.upper()]


def _state_names(states: Container[TrialState] | None) -> list[str] | None:
    # `states` need only support `in`; Optuna passes tuples.
    return None if states is None else [s.name for s in TrialState if s in states]


class Storage(BaseStorage):
    """Optuna's storage over a labbook store.

    ``dir`` is the ``.labbook`` store folder (or the folder holding one);
    by default the store is found as ``labbook.init`` finds it. Studies go to
    ``project`` (their trials' runs too).
    """

    def __init__(self, dir: str | os.PathLike[str] | None = None, project: str = "optuna") -> None:
        self._native = SearchStore(None if dir is None else os.fspath(dir), project)
        self._dir = Path(self._native.dir)
        self._project = project

    @property
    def dir(self) -> Path:
        """The store folder."""
        return self._dir

    @property
    def project(self) -> str:
        """The labbook project the studies live in."""
        return self._project

    def __repr__(self) -> str:
        return f"labbook.optuna.Storage({str(self._dir)!r}, project={self._project!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"dir": str(self._dir), "project": self._project}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._dir = Path(state["dir"])
        self._project = state["project"]
        self._native = SearchStore(self._dir, self._project)

    # Studies

    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        if study_name is None:
            study_name = DEFAULT_STUDY_NAME_PREFIX + str(uuid.uuid4())
        names = [d.name.lower() for d in directions]
        with _optuna_errors():
            return self._native.create_study(study_name, names)

    def delete_study(self, study_id: int) -> None:
        self._native.delete_study(study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._native.set_study_attr(study_id, False, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: JSONSerializable) -> None:
        self._native.set_study_attr(study_id, True, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._native.study_id(study_name)

    def _study(self, study_id: int) -> dict[str, Any]:
        return self._native.studies(study_id)[0]

    def get_study_name_from_id(self, study_id: int) -> str:
        name: str = self._study(study_id)["name"]
        return name

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return [_direction(d) for d in self._study(study_id)["directions"]]

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return dict(self._study(study_id)["user_attrs"])

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return dict(self._study(study_id)["system_attrs"])

    def get_all_studies(self) -> list[FrozenStudy]:
        return [
            FrozenStudy(
                study_name=s["name"],
                direction=None,
                directions=[_direction(d) for d in s["directions"]],
                user_attrs=dict(s["user_attrs"]),
                system_attrs=dict(s["system_attrs"]),
                study_id=s["study_id"],
            )
            for s in self._native.studies()
        ]

    # Trials

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        template = None if template_trial is None else _template(template_trial)
        with _optuna_errors():
            return self._native.create_trial(study_id, template)

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        value = distribution.to_external_repr(param_value_internal)
        with _optuna_errors():
            self._native.set_trial_param(
                trial_id, param_name, value, distribution_to_json(distribution)
            )

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        trials = self._native.trials(study_id)
        if not 0 <= trial_number < len(trials):
            raise KeyError(
                f"No trial with trial number {trial_number} exists in study with study_id {study_id}."
            )
        trial_id: int = trials[trial_number]["trial_id"]
        return trial_id

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        floats = None if values is None else [float(v) for v in values]
        with _optuna_errors():
            return self._native.set_trial_state_values(trial_id, state.name, floats)

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        with _optuna_errors():
            self._native.set_trial_intermediate_value(
                trial_id, int(step), float(intermediate_value)
            )

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        with _optuna_errors():
            self._native.set_trial_attr(trial_id, False, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: JSONSerializable) -> None:
        with _optuna_errors():
            self._native.set_trial_attr(trial_id, True, key, value)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return _frozen_trial(self._native.trial(trial_id))

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        # Every call builds new objects, so `deepcopy=False` is as safe as True.
        return [_frozen_trial(t) for t in self._native.trials(study_id, _state_names(states))]

    def get_n_trials(
        self, study_id: int, state: tuple[TrialState, ...] | TrialState | None = None
    ) -> int:
        states = (state,) if isinstance(state, TrialState) else state
        return len(self._native.trials(study_id, _state_names(states)))
