"""Params, tags and metrics of one run: the rules MLflow enforces."""

from __future__ import annotations

import threading

import mlflow
import pytest
from conftest import Experiment
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException


def test_param_is_immutable(experiment: Experiment, client: mlflow.MlflowClient) -> None:
    run_id = client.create_run(experiment.id).info.run_id
    client.log_param(run_id, "lr", "0.01")
    # The same value again is accepted, alone and in a batch.
    client.log_param(run_id, "lr", "0.01")
    client.log_batch(run_id, params=[Param("lr", "0.01"), Param("other", "x")])

    with pytest.raises(MlflowException) as err:
        client.log_param(run_id, "lr", "0.02")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "lr" in err.value.message

    with pytest.raises(MlflowException) as err:
        client.log_batch(run_id, params=[Param("lr", "0.03")])
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"

    assert client.get_run(run_id).data.params == {"lr": "0.01", "other": "x"}


def test_params_come_back_exactly_as_sent(
    experiment: Experiment, client: mlflow.MlflowClient
) -> None:
    # Python's own spellings of small and large floats: labbook keeps them as
    # numbers for its filters, MLflow's API must still answer the text.
    sent = {"lr": "5e-05", "eps": "1e-08", "big": "1e+20", "k": "1E3", "half": ".5"}
    run_id = client.create_run(experiment.id).info.run_id
    client.log_param(run_id, "lr", "5e-05")
    client.log_batch(run_id, params=[Param(k, v) for k, v in sent.items()])
    assert client.get_run(run_id).data.params == sent
    # The same text again is no change; another spelling of the number is.
    client.log_param(run_id, "lr", "5e-05")
    with pytest.raises(MlflowException) as err:
        client.log_param(run_id, "lr", "0.00005")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    # MLflow compares params as strings in search filters.
    found = client.search_runs([experiment.id], "params.lr = '5e-05'")
    assert [r.info.run_id for r in found] == [run_id]


def test_a_point_identical_to_one_held_is_stored_once(
    experiment: Experiment, client: mlflow.MlflowClient
) -> None:
    run_id = client.create_run(experiment.id).info.run_id
    client.log_metric(run_id, "m", 1.0, timestamp=1000, step=0)
    client.log_metric(run_id, "m", 1.0, timestamp=1000, step=0)
    client.log_batch(run_id, metrics=[Metric("m", 1.0, 1000, 0), Metric("m", 1.0, 1000, 0)])
    # Points that differ in any one of value, timestamp or step are kept.
    client.log_batch(
        run_id,
        metrics=[
            Metric("m", 2.0, 1000, 0),
            Metric("m", 1.0, 1001, 0),
            Metric("m", 1.0, 1000, 1),
            Metric("m", 2.0, 1000, 0),
        ],
    )
    # An old point logged again after later ones (LightGBM's autolog does).
    client.log_metric(run_id, "m", 1.0, timestamp=1000, step=0)
    history = sorted((p.step, p.timestamp, p.value) for p in client.get_metric_history(run_id, "m"))
    assert history == [(0, 1000, 1.0), (0, 1000, 2.0), (0, 1001, 1.0), (1, 1000, 1.0)]


def test_tags_overwrite(experiment: Experiment, client: mlflow.MlflowClient) -> None:
    run_id = client.create_run(experiment.id).info.run_id
    client.set_tag(run_id, "t", "one")
    client.set_tag(run_id, "t", "two")
    client.log_batch(run_id, tags=[RunTag("u", "1"), RunTag("t", "three")])
    tags = client.get_run(run_id).data.tags
    assert tags["t"] == "three"
    assert tags["u"] == "1"
    long_value = "v" * 5000
    client.set_tag(run_id, "long", long_value)
    assert client.get_run(run_id).data.tags["long"] == long_value


def test_latest_metric_is_max_of_step_timestamp_value(
    experiment: Experiment, client: mlflow.MlflowClient
) -> None:
    run_id = client.create_run(experiment.id).info.run_id
    # A higher step wins even when logged earlier and with an older timestamp.
    client.log_metric(run_id, "by_step", 1.0, timestamp=1000, step=5)
    client.log_metric(run_id, "by_step", 2.0, timestamp=2000, step=3)
    # Same step: the later timestamp wins.
    client.log_metric(run_id, "by_time", 1.0, timestamp=2000, step=1)
    client.log_metric(run_id, "by_time", 9.0, timestamp=1000, step=1)
    # Same step and timestamp: the larger value wins.
    client.log_metric(run_id, "by_value", 3.0, timestamp=1000, step=1)
    client.log_metric(run_id, "by_value", 2.0, timestamp=1000, step=1)
    # Logged out of order in one batch.
    client.log_batch(
        run_id,
        metrics=[
            Metric("batch", 10.0, 100, 10),
            Metric("batch", 30.0, 100, 30),
            Metric("batch", 20.0, 100, 20),
        ],
    )
    metrics = client.get_run(run_id).data.metrics
    assert metrics == {"by_step": 1.0, "by_time": 1.0, "by_value": 3.0, "batch": 30.0}

    # The history keeps every point.
    by_step = client.get_metric_history(run_id, "by_step")
    assert sorted((m.timestamp, m.step, m.value) for m in by_step) == [
        (1000, 5, 1.0),
        (2000, 3, 2.0),
    ]
    by_value = client.get_metric_history(run_id, "by_value")
    assert sorted((m.timestamp, m.step, m.value) for m in by_value) == [
        (1000, 1, 2.0),
        (1000, 1, 3.0),
    ]
    batch = client.get_metric_history(run_id, "batch")
    assert [(m.step, m.value) for m in batch] == [(10, 10.0), (20, 20.0), (30, 30.0)]
    assert all(m.key == "batch" for m in batch)
    assert client.get_metric_history(run_id, "never-logged") == []


def test_history_order_is_timestamp_step_value(
    experiment: Experiment, client: mlflow.MlflowClient
) -> None:
    """MLflow returns a history sorted by (timestamp, step, value), not by step."""
    run_id = client.create_run(experiment.id).info.run_id
    client.log_metric(run_id, "m", 1.0, timestamp=1000, step=5)
    client.log_metric(run_id, "m", 2.0, timestamp=2000, step=3)
    client.log_metric(run_id, "m", 4.0, timestamp=1500, step=9)
    client.log_metric(run_id, "m", 3.0, timestamp=1500, step=9)
    history = client.get_metric_history(run_id, "m")
    assert [(m.timestamp, m.step, m.value) for m in history] == [
        (1000, 5, 1.0),
        (1500, 9, 3.0),
        (1500, 9, 4.0),
        (2000, 3, 2.0),
    ]


def test_metric_values_round_trip_exactly(
    experiment: Experiment, client: mlflow.MlflowClient
) -> None:
    values = [0.1, 1 / 3, -2.5e-300, 1e300, 123456789.123456789, -0.0, 2**53 + 1.0, 5e-324]
    run_id = client.create_run(experiment.id).info.run_id
    client.log_batch(
        run_id,
        metrics=[Metric("exact", v, 1_700_000_000_000 + i, i) for i, v in enumerate(values)],
    )
    history = client.get_metric_history(run_id, "exact")
    assert [m.value for m in history] == values
    assert [m.step for m in history] == list(range(len(values)))
    assert [m.timestamp for m in history] == [1_700_000_000_000 + i for i in range(len(values))]
    # Large steps and timestamps are 64-bit.
    client.log_metric(run_id, "big", 1.0, timestamp=4_102_444_800_000, step=2**40)
    (point,) = client.get_metric_history(run_id, "big")
    assert (point.step, point.timestamp) == (2**40, 4_102_444_800_000)


def test_concurrent_log_batch(experiment: Experiment, client: mlflow.MlflowClient) -> None:
    threads_n, points, page = 8, 200, 50
    run_ids = [client.create_run(experiment.id).info.run_id for _ in range(threads_n)]
    errors: list[BaseException] = []

    def work(index: int, run_id: str) -> None:
        try:
            own = mlflow.MlflowClient()
            for start in range(0, points, page):
                own.log_batch(
                    run_id,
                    metrics=[
                        Metric("m", float(index * 1000 + s), 1_700_000_000_000 + s, s)
                        for s in range(start, start + page)
                    ],
                    params=[Param(f"p{start}", str(index))],
                    tags=[RunTag("worker", str(index))],
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, r)) for i, r in enumerate(run_ids)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    for index, run_id in enumerate(run_ids):
        history = client.get_metric_history(run_id, "m")
        assert [(m.step, m.value) for m in history] == [
            (s, float(index * 1000 + s)) for s in range(points)
        ]
        run = client.get_run(run_id)
        assert run.data.metrics["m"] == float(index * 1000 + points - 1)
        assert run.data.params == {f"p{s}": str(index) for s in range(0, points, page)}
        assert run.data.tags["worker"] == str(index)
