"""Several `labbook serve` replicas on one team database (PostgreSQL): what
one writes the others serve at once, and an MLflow request retried on
another replica, even while the first still works on it, is stored once.
A database that goes away mid-ingest costs clients retries, not points,
and the server heals by itself.

Runs in the suite's team-database pass (CONFORMANCE_STORE=postgres)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import mlflow
import pytest
import requests
from conftest import (
    ON_POSTGRES,
    LabbookServers,
    PgCluster,
    StoreRef,
    labbook_only,
    postgres_bin,
    store_env,
    store_serve_args,
)

pytestmark = [
    labbook_only,
    pytest.mark.skipif(not ON_POSTGRES, reason="needs a team database: CONFORMANCE_STORE=postgres"),
]

API = "/api/2.0/mlflow"


def replicas(servers: LabbookServers, tmp: Path, store: StoreRef, count: int = 2) -> list[str]:
    """`count` servers on `store`, their artifact contents in one folder."""
    return [
        servers.start(tmp, env=store_env(store), args=store_serve_args(store, tmp)).url
        for _ in range(count)
    ]


def history(url: str, run_id: str, key: str) -> list[tuple[int, int, float]]:
    answer = requests.get(
        f"{url}{API}/metrics/get-history", params={"run_id": run_id, "metric_key": key}, timeout=30
    )
    answer.raise_for_status()
    return sorted((m["step"], m["timestamp"], m["value"]) for m in answer.json().get("metrics", []))


def test_what_one_replica_writes_the_others_serve(
    tmp_path: Path, labbook_servers: LabbookServers, fresh_store: StoreRef
) -> None:
    a, b = replicas(labbook_servers, tmp_path, fresh_store)
    client_a = mlflow.MlflowClient(tracking_uri=a)
    client_b = mlflow.MlflowClient(tracking_uri=b)
    experiment = client_a.create_experiment("shared")
    run = client_a.create_run(experiment).info.run_id
    # Alternate replicas point by point, as a load balancer without sticky
    # sessions would send them.
    for step in range(40):
        (client_a if step % 2 else client_b).log_metric(run, "loss", 1.0 / (step + 1), step=step)
    client_b.log_param(run, "lr", "0.01")
    client_a.set_terminated(run)
    for client in (client_a, client_b):
        got = client.get_run(run)
        assert got.info.status == "FINISHED"
        assert got.data.params == {"lr": "0.01"}
        assert [m.step for m in client.get_metric_history(run, "loss")] == list(range(40))
        found = client.search_runs([experiment], "metrics.loss < 0.05")
        assert [r.info.run_id for r in found] == [run]


def test_a_retried_request_is_stored_once_whichever_replica_takes_it(
    tmp_path: Path, labbook_servers: LabbookServers, fresh_store: StoreRef
) -> None:
    a, b = replicas(labbook_servers, tmp_path, fresh_store)
    client = mlflow.MlflowClient(tracking_uri=a)
    run = client.create_run(client.create_experiment("retries")).info.run_id
    now = int(time.time() * 1000)
    batch = {
        "run_id": run,
        "metrics": [
            {"key": "acc", "value": 0.5 + i / 100, "timestamp": now + i, "step": i}
            for i in range(50)
        ],
        "params": [{"key": "seed", "value": "7"}],
        "tags": [{"key": "phase", "value": "warmup"}],
    }
    # The answer to the first was lost; the client sends it again, to the
    # other replica.
    for url in (a, b, a):
        answer = requests.post(f"{url}{API}/runs/log-batch", json=batch, timeout=30)
        assert answer.status_code == 200, answer.text
    expected = sorted((i, now + i, 0.5 + i / 100) for i in range(50))
    assert history(a, run, "acc") == expected
    assert history(b, run, "acc") == expected

    # The same request to both replicas at once (a retry while the first
    # still commits): one of them stores it.
    again = {
        **batch,
        "metrics": [
            {"key": "acc", "value": 0.9, "timestamp": now + 1000 + i, "step": 100 + i}
            for i in range(200)
        ],
    }
    start = threading.Barrier(8)
    statuses: list[int] = []

    def send(url: str) -> None:
        start.wait()
        statuses.append(
            requests.post(f"{url}{API}/runs/log-batch", json=again, timeout=60).status_code
        )

    threads = [threading.Thread(target=send, args=(url,)) for url in (a, b) * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 8
    stored = history(b, run, "acc")
    assert len(stored) == 250
    assert len(set(stored)) == 250


@pytest.mark.outage
def test_a_database_outage_mid_ingest_loses_nothing_and_heals_by_itself(
    tmp_path: Path, labbook_servers: LabbookServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cluster of its own: the session's keeps serving the other tests.
    binary_dir = postgres_bin()
    assert binary_dir is not None
    cluster = PgCluster(binary_dir)
    cluster.start()
    try:
        store = cluster.create_database("outage")
        url = replicas(labbook_servers, tmp_path, store, count=1)[0]
        # The client's own retries, as in use: 503s are retried with backoff.
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "8")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
        client = mlflow.MlflowClient(tracking_uri=url)
        run = client.create_run(client.create_experiment("outage")).info.run_id
        steps = 300
        failures: list[BaseException] = []

        def log() -> None:
            try:
                for step in range(steps):
                    client.log_metric(run, "loss", 1.0 / (step + 1), step=step)
                    time.sleep(0.02)
            except BaseException as e:  # the main thread reports it
                failures.append(e)

        writer = threading.Thread(target=log)
        writer.start()
        time.sleep(1.5)
        cluster.pg_ctl("stop")
        # While the database is away the server answers, with a 503.
        answer = requests.get(f"{url}{API}/runs/get", params={"run_id": run}, timeout=30)
        assert answer.status_code == 503, answer.text
        assert answer.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert requests.get(f"{url}/health", timeout=10).status_code == 200
        time.sleep(5)
        cluster.pg_ctl("start")
        writer.join(timeout=120)
        assert not writer.is_alive()
        assert not failures, failures
        stored = history(url, run, "loss")
        assert [s for s, _, _ in stored] == list(range(steps))
    finally:
        cluster.remove()
