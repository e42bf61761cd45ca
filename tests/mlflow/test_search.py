"""search_runs: filters, ordering, paging, view types, the pandas frame."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import mlflow
import pandas as pd
import pytest
from conftest import Experiment, Server, unique_name
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

T0 = 1_700_000_000_000


@dataclass
class Runs:
    experiment_id: str
    experiment_name: str
    ids: dict[str, str]  # run name -> run id

    def names(self, runs: list[mlflow.entities.Run]) -> list[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return [by_id[r.info.run_id] for r in runs]


# name: (start offset s, params, metrics, tags, end status or None while running)
SPEC: dict[str, tuple[int, dict[str, str], dict[str, float], dict[str, str], str | None]] = {
    "alpha-1": (
        10,
        {"lr": "0.01", "opt": "adam", "my.param": "dotted"},
        {"acc": 0.9, "loss": 0.1, "eval acc": 0.8},
        {"team": "x", "with space": "yes"},
        "FINISHED",
    ),
    "alpha-2": (
        20,
        {"lr": "0.1", "opt": "sgd"},
        {"acc": 0.4, "loss": 0.6, "eval acc": 0.3},
        {"team": "y"},
        "FINISHED",
    ),
    "beta": (30, {"lr": "0.01", "opt": "Adam"}, {"acc": 0.7, "loss": 0.3}, {}, "FAILED"),
    "Gamma": (40, {"lr": "0.001"}, {"loss": 0.9}, {"team": "x"}, None),
    "delta": (50, {"lr": "0.5"}, {"acc": math.nan}, {"team": "z"}, "FINISHED"),
}


@pytest.fixture(scope="module")
def runs(server: Server) -> Iterator[Runs]:
    client = mlflow.MlflowClient(tracking_uri=server.url)
    name = unique_name("conf-search")
    exp_id = client.create_experiment(name)
    ids: dict[str, str] = {}
    for run_name, (offset, params, metrics, tags, status) in SPEC.items():
        run = client.create_run(exp_id, start_time=T0 + offset * 1000, run_name=run_name)
        run_id = run.info.run_id
        ids[run_name] = run_id
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, T0, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        if status is not None:
            client.set_terminated(run_id, status=status, end_time=T0 + offset * 1000 + 5000)
    dataset = mlflow.data.from_pandas(
        pd.DataFrame({"a": [1, 2]}), source="/data/a.csv", name="ds-a"
    )._to_mlflow_entity()
    client.log_inputs(
        ids["alpha-1"],
        datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])],
    )
    yield Runs(exp_id, name, ids)


def _search(runs: Runs, filter_string: str = "", **kwargs: object) -> list[str]:
    client = mlflow.MlflowClient()
    found = client.search_runs([runs.experiment_id], filter_string=filter_string, **kwargs)  # type: ignore[arg-type]
    return runs.names(list(found))


# Newest first: MLflow's default order is start_time DESC, then run id.
ALL_NEWEST_FIRST = ["delta", "Gamma", "beta", "alpha-2", "alpha-1"]


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("", ALL_NEWEST_FIRST),
        ("metrics.acc > 0.5", ["beta", "alpha-1"]),
        ("metrics.acc >= 0.7", ["beta", "alpha-1"]),
        ("metrics.acc = 0.4", ["alpha-2"]),
        ("metrics.loss <= 0.3 and metrics.acc > 0.8", ["alpha-1"]),
        ("metrics.acc != 0.4 and metrics.loss < 1", ["beta", "alpha-1"]),
        ("params.lr = '0.01'", ["beta", "alpha-1"]),
        ("params.lr != '0.01'", ["delta", "Gamma", "alpha-2"]),
        ('params.opt = "adam"', ["alpha-1"]),
        ("params.opt LIKE 'a%'", ["alpha-1"]),
        ("params.opt ILIKE 'a%'", ["beta", "alpha-1"]),
        ("params.opt IS NULL", ["delta", "Gamma"]),
        ("params.opt IS NOT NULL", ["beta", "alpha-2", "alpha-1"]),
        ("tags.team = 'x'", ["Gamma", "alpha-1"]),
        ("tags.team IS NULL", ["beta"]),
        ("tags.team LIKE '%'", ["delta", "Gamma", "alpha-2", "alpha-1"]),
        ("tags.`with space` = 'yes'", ["alpha-1"]),
        ("tags.\"with space\" = 'yes'", ["alpha-1"]),
        ("params.`my.param` = 'dotted'", ["alpha-1"]),
        ("metrics.`eval acc` > 0.5", ["alpha-1"]),
        ("attributes.status = 'FINISHED'", ["delta", "alpha-2", "alpha-1"]),
        ("attributes.status != 'FINISHED'", ["Gamma", "beta"]),
        ("attributes.run_name LIKE 'a%'", ["alpha-2", "alpha-1"]),
        ("attributes.run_name ILIKE 'ALPHA%'", ["alpha-2", "alpha-1"]),
        ("attributes.run_name ILIKE 'g%'", ["Gamma"]),
        ("attributes.run_name = 'beta'", ["beta"]),
        ("tags.mlflow.runName = 'beta'", ["beta"]),
        (f"attributes.start_time > {T0 + 25_000}", ["delta", "Gamma", "beta"]),
        (f"attributes.start_time <= {T0 + 20_000}", ["alpha-2", "alpha-1"]),
        (f"attributes.end_time < {T0 + 30_000}", ["alpha-2", "alpha-1"]),
        ("datasets.name = 'ds-a'", ["alpha-1"]),
        # IN / NOT IN: MLflow takes them only for run_id and datasets.*.
        ("datasets.name IN ('ds-a', 'nope')", ["alpha-1"]),
        ("datasets.name NOT IN ('nope')", ["alpha-1"]),
        ("datasets.context = 'training'", ["alpha-1"]),
        ("params.lr = '0.01' AND tags.team = 'x'", ["alpha-1"]),
        ("params.lr = 'nope'", []),
    ],
)
def test_search_filters(runs: Runs, filter_string: str, expected: list[str]) -> None:
    assert _search(runs, filter_string) == expected


def test_search_by_run_id_and_dataset_digest(runs: Runs, client: mlflow.MlflowClient) -> None:
    a1, beta = runs.ids["alpha-1"], runs.ids["beta"]
    assert _search(runs, f"attributes.run_id IN ('{a1}', '{beta}')") == ["beta", "alpha-1"]
    assert _search(runs, f"attributes.run_id = '{beta}'") == ["beta"]
    assert _search(runs, f"attributes.run_id NOT IN ('{a1}', '{beta}')") == [
        "delta",
        "Gamma",
        "alpha-2",
    ]
    digest = client.get_run(a1).inputs.dataset_inputs[0].dataset.digest
    assert _search(runs, f"datasets.digest = '{digest}'") == ["alpha-1"]


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        # Runs without the key come last in both directions; a NaN metric sorts after
        # every number and before the runs without it.
        (["metrics.acc DESC"], ["alpha-1", "beta", "alpha-2", "delta", "Gamma"]),
        (["metrics.acc ASC"], ["alpha-2", "beta", "alpha-1", "delta", "Gamma"]),
        (["metrics.acc"], ["alpha-2", "beta", "alpha-1", "delta", "Gamma"]),
        # Strings sort as strings; ties fall back to start_time DESC.
        (["params.lr ASC"], ["Gamma", "beta", "alpha-1", "alpha-2", "delta"]),
        (["params.lr DESC"], ["delta", "alpha-2", "beta", "alpha-1", "Gamma"]),
        (["params.opt ASC"], ["beta", "alpha-1", "alpha-2", "delta", "Gamma"]),
        (["tags.team DESC"], ["delta", "alpha-2", "Gamma", "alpha-1", "beta"]),
        (["attributes.start_time"], ["alpha-1", "alpha-2", "beta", "Gamma", "delta"]),
        (["attributes.start_time DESC"], ALL_NEWEST_FIRST),
        (["start_time ASC"], ["alpha-1", "alpha-2", "beta", "Gamma", "delta"]),
        (["attributes.run_name"], ["Gamma", "alpha-1", "alpha-2", "beta", "delta"]),
        (["params.lr ASC", "metrics.loss DESC"], ["Gamma", "beta", "alpha-1", "alpha-2", "delta"]),
        (["metrics.`eval acc` DESC"], ["alpha-1", "alpha-2", "delta", "Gamma", "beta"]),
    ],
)
def test_search_order_by(runs: Runs, order_by: list[str], expected: list[str]) -> None:
    assert _search(runs, order_by=order_by) == expected


def test_search_returns_full_runs(runs: Runs) -> None:
    client = mlflow.MlflowClient()
    (run,) = client.search_runs([runs.experiment_id], "attributes.run_name = 'alpha-1'")
    assert run.data.params == {"lr": "0.01", "opt": "adam", "my.param": "dotted"}
    assert run.data.metrics == {"acc": 0.9, "loss": 0.1, "eval acc": 0.8}
    assert run.data.tags["team"] == "x"
    assert run.data.tags["mlflow.runName"] == "alpha-1"
    assert run.info.start_time == T0 + 10_000
    assert run.info.end_time == T0 + 15_000
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == runs.experiment_id
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["ds-a"]


def test_search_pagination(experiment: Experiment, client: mlflow.MlflowClient) -> None:
    ids = [
        client.create_run(experiment.id, start_time=T0 + i, run_name=f"p{i}").info.run_id
        for i in range(7)
    ]
    seen: list[str] = []
    tokens: list[str | None] = []
    token: str | None = None
    while True:
        page = client.search_runs([experiment.id], max_results=3, page_token=token)
        seen.extend(r.info.run_id for r in page)
        tokens.append(page.token)
        token = page.token
        if not token:
            break
    assert seen == list(reversed(ids))  # every run once, newest first
    assert [len(t or "") > 0 for t in tokens] == [True, True, False]

    # A page that ends exactly at the last run carries no token.
    page = client.search_runs([experiment.id], max_results=7)
    assert len(page) == 7 and not page.token
    page = client.search_runs([experiment.id], max_results=6)
    assert len(page) == 6 and page.token
    rest = client.search_runs([experiment.id], max_results=6, page_token=page.token)
    assert [r.info.run_id for r in rest] == [ids[0]] and not rest.token

    # Paging with a filter and an order.
    seen_sorted: list[str] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment.id],
            filter_string="attributes.run_name != 'p3'",
            order_by=["attributes.start_time ASC"],
            max_results=2,
            page_token=token,
        )
        seen_sorted.extend(r.info.run_id for r in page)
        token = page.token
        if not token:
            break
    assert seen_sorted == [ids[i] for i in range(7) if i != 3]


def test_fluent_search_runs_dataframe(runs: Runs) -> None:
    frame = mlflow.search_runs(
        experiment_names=[runs.experiment_name], order_by=["attributes.start_time ASC"]
    )
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["run_id"]) == [runs.ids[n] for n in reversed(ALL_NEWEST_FIRST)]
    assert list(frame["tags.mlflow.runName"]) == list(reversed(ALL_NEWEST_FIRST))
    assert list(frame["params.lr"]) == ["0.01", "0.1", "0.01", "0.001", "0.5"]
    acc = list(frame["metrics.acc"])
    assert acc[:3] == [0.9, 0.4, 0.7]
    assert math.isnan(acc[3]) and math.isnan(acc[4])  # Gamma has none, delta logged NaN
    assert list(frame["status"]) == ["FINISHED", "FINISHED", "FAILED", "RUNNING", "FINISHED"]
    assert {"experiment_id", "artifact_uri", "start_time", "end_time"} <= set(frame.columns)
    assert set(frame["experiment_id"]) == {runs.experiment_id}
    assert frame["params.my.param"][0] == "dotted"
    assert frame["metrics.eval acc"][1] == 0.3

    filtered = mlflow.search_runs(
        experiment_ids=[runs.experiment_id], filter_string="metrics.acc > 0.5"
    )
    assert sorted(filtered["tags.mlflow.runName"]) == ["alpha-1", "beta"]
    as_list = mlflow.search_runs(
        experiment_ids=[runs.experiment_id], output_format="list", max_results=2
    )
    assert [r.info.run_name for r in as_list] == ALL_NEWEST_FIRST[:2]


def test_view_types_after_delete_and_restore(
    experiment: Experiment, client: mlflow.MlflowClient
) -> None:
    keep = client.create_run(experiment.id, start_time=T0 + 1, run_name="keep").info.run_id
    gone = client.create_run(experiment.id, start_time=T0 + 2, run_name="gone").info.run_id
    client.delete_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "deleted"

    def ids(view: int) -> list[str]:
        return [r.info.run_id for r in client.search_runs([experiment.id], run_view_type=view)]

    assert ids(ViewType.ACTIVE_ONLY) == [keep]
    assert ids(ViewType.DELETED_ONLY) == [gone]
    assert ids(ViewType.ALL) == [gone, keep]
    assert [r.info.run_id for r in client.search_runs([experiment.id])] == [keep]  # default

    client.restore_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "active"
    assert ids(ViewType.ACTIVE_ONLY) == [gone, keep]
    assert ids(ViewType.DELETED_ONLY) == []
    frame = mlflow.search_runs([experiment.id], run_view_type=ViewType.DELETED_ONLY)
    assert len(frame) == 0


def test_search_across_experiments(
    experiment: Experiment, client: mlflow.MlflowClient, runs: Runs
) -> None:
    other = client.create_experiment(unique_name("conf-search-other"))
    mine = client.create_run(experiment.id, start_time=T0 + 100_000, run_name="mine")
    theirs = client.create_run(other, start_time=T0 + 200_000, run_name="theirs")
    client.log_metric(mine.info.run_id, "acc", 0.99)
    client.log_metric(theirs.info.run_id, "acc", 0.98)
    found = client.search_runs(
        [experiment.id, other, runs.experiment_id], filter_string="metrics.acc > 0.85"
    )
    assert [r.info.run_name for r in found] == ["theirs", "mine", "alpha-1"]
    assert [r.info.experiment_id for r in found] == [other, experiment.id, runs.experiment_id]
    frame = mlflow.search_runs(experiment_ids=[experiment.id, other])
    assert sorted(frame["tags.mlflow.runName"]) == ["mine", "theirs"]


@pytest.mark.parametrize(
    "bad_filter",
    [
        "metrics.acc > 'high'",
        "params.lr > 0.1",
        "nonsense",
        "metrics.acc >",
        "foo.bar = 'x'",
        "attributes.nope = 'x'",
    ],
)
def test_search_bad_filter(runs: Runs, bad_filter: str) -> None:
    with pytest.raises(MlflowException) as err:
        mlflow.MlflowClient().search_runs([runs.experiment_id], filter_string=bad_filter)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
