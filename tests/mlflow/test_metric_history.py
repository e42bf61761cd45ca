"""Long metric histories: all points back, in order, exactly; paging and sampling."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import mlflow
import pytest
import requests
from conftest import Server, unique_name
from mlflow.entities import Metric

N = 30_000
T0 = 1_700_000_000_000


def value_at(i: int) -> float:
    return math.sin(i * 0.001) * 1000.0 + i / 7.0


@dataclass
class History:
    run_id: str
    other_run_id: str


@pytest.fixture(scope="module")
def history(server: Server) -> Iterator[History]:
    client = mlflow.MlflowClient(tracking_uri=server.url)
    exp_id = client.create_experiment(unique_name("conf-history"))
    run_id = client.create_run(exp_id).info.run_id
    other = client.create_run(exp_id).info.run_id
    for start in range(0, N, 1000):
        client.log_batch(
            run_id,
            metrics=[Metric("m", value_at(i), T0 + i, i) for i in range(start, start + 1000)],
        )
    client.log_batch(other, metrics=[Metric("m", float(i), T0 + i, i * 2) for i in range(50)])
    yield History(run_id, other)


def test_full_history_in_order(history: History, client: mlflow.MlflowClient) -> None:
    points = client.get_metric_history(history.run_id, "m")
    assert len(points) == N
    assert [p.step for p in points] == list(range(N))
    assert [p.timestamp for p in points] == [T0 + i for i in range(N)]
    assert [p.value for p in points] == [value_at(i) for i in range(N)]
    assert {p.key for p in points} == {"m"}
    assert client.get_run(history.run_id).data.metrics == {"m": value_at(N - 1)}


def test_history_paging_over_rest(history: History, base_url: str, http: requests.Session) -> None:
    """The client asks for pages of 25,000; other page sizes work the same way."""
    seen: list[int] = []
    token: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {
            "run_id": history.run_id,
            "metric_key": "m",
            "max_results": 12_000,
        }
        if token:
            params["page_token"] = token
        resp = http.get(f"{base_url}/api/2.0/mlflow/metrics/get-history", params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        seen.extend(int(m["step"]) for m in body["metrics"])
        pages += 1
        token = body.get("next_page_token")
        if not token:
            break
    assert pages == 3
    assert seen == list(range(N))

    # Without max_results the whole history comes in one response.
    resp = http.get(
        f"{base_url}/api/2.0/mlflow/metrics/get-history",
        params={"run_id": history.other_run_id, "metric_key": "m"},
    )
    assert resp.status_code == 200
    body = resp.json()
    assert [(int(m["step"]), m["value"]) for m in body["metrics"]] == [
        (i * 2, float(i)) for i in range(50)
    ]
    assert not body.get("next_page_token")


def test_bulk_interval_sampling(history: History, base_url: str, http: requests.Session) -> None:
    url = f"{base_url}/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"
    resp = http.get(
        url,
        params={
            "run_ids": [history.run_id, history.other_run_id],
            "metric_key": "m",
            "max_results": 100,
        },
    )
    assert resp.status_code == 200, resp.text
    metrics = resp.json()["metrics"]
    by_run: dict[str, list[dict[str, object]]] = {}
    for m in metrics:
        by_run.setdefault(str(m["run_id"]), []).append(m)
    assert set(by_run) == {history.run_id, history.other_run_id}

    sampled = by_run[history.run_id]
    steps = [int(str(m["step"])) for m in sampled]
    assert 2 <= len(steps) <= 100
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert steps[0] == 0 and steps[-1] == N - 1  # the ends are always kept
    for m in sampled:
        step = int(str(m["step"]))
        assert m["key"] == "m"
        assert m["value"] == value_at(step)
        assert int(str(m["timestamp"])) == T0 + step
    # The short history fits whole.
    assert [int(str(m["step"])) for m in by_run[history.other_run_id]] == [i * 2 for i in range(50)]

    # A step window: only points inside it, ends included.
    resp = http.get(
        url,
        params={
            "run_ids": history.run_id,
            "metric_key": "m",
            "max_results": 50,
            "start_step": 1000,
            "end_step": 1999,
        },
    )
    assert resp.status_code == 200, resp.text
    window = [int(m["step"]) for m in resp.json()["metrics"]]
    assert 2 <= len(window) <= 50
    assert window[0] == 1000 and window[-1] == 1999
    assert window == sorted(window)

    # A window that holds fewer points than max_results returns them all.
    resp = http.get(
        url,
        params={
            "run_ids": history.run_id,
            "metric_key": "m",
            "max_results": 50,
            "start_step": 10,
            "end_step": 19,
        },
    )
    assert [int(m["step"]) for m in resp.json()["metrics"]] == list(range(10, 20))

    # Only one end of the window is an error.
    resp = http.get(url, params={"run_ids": history.run_id, "metric_key": "m", "start_step": 5})
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_bulk_interval_samples_exactly_as_mlflow(
    server: Server, base_url: str, http: requests.Session
) -> None:
    client = mlflow.MlflowClient(tracking_uri=server.url)
    exp_id = client.create_experiment(unique_name("conf-sampling"))
    ten = client.create_run(exp_id).info.run_id
    twenty = client.create_run(exp_id).info.run_id
    client.log_batch(ten, metrics=[Metric("m", float(i), T0 + i, i) for i in range(10)])
    client.log_batch(twenty, metrics=[Metric("m", float(i), T0 + i, i) for i in range(20)])
    url = f"{base_url}/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"

    def steps(run_id: str, **params: object) -> list[int]:
        resp = http.get(url, params={"run_ids": run_id, "metric_key": "m", **params})
        assert resp.status_code == 200, resp.text
        return [int(m["step"]) for m in resp.json()["metrics"]]

    # Evenly sized buckets of points, the first of each, and the last point always.
    assert steps(ten, max_results=5) == [0, 2, 4, 6, 9]
    assert steps(ten, max_results=1) == [9]
    assert steps(ten, max_results=5, start_step=0, end_step=4) == [0, 1, 2, 3, 4]
    assert steps(twenty, max_results=5) == [0, 4, 8, 12, 19]
    assert steps(twenty, max_results=3) == [0, 7, 19]
