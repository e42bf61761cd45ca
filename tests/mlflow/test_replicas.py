"""Several `labbook serve` replicas on one team database (PostgreSQL): what
one writes the others serve at once, and an MLflow request retried on
another replica, even while the first still works on it, is stored once.
A database that goes away mid-ingest costs clients retries, not points,
and the server heals by itself.

Runs in the suite's team-database pass (CONFORMANCE_STORE=postgres)."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests
from conftest import (
    ON_POSTGRES,
    REPO,
    LabbookServers,
    PgCluster,
    StoreRef,
    _labbook_binary,
    labbook_only,
    postgres_bin,
    store_env,
    store_serve_args,
)

sys.path.insert(0, str(REPO / "deploy"))
from lb_proxy import ProxyThread

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
        time.sleep(10)
        cluster.pg_ctl("start")
        writer.join(timeout=120)
        assert not writer.is_alive()
        assert not failures, failures
        stored = history(url, run, "loss")
        assert [s for s, _, _ in stored] == list(range(steps))
    finally:
        cluster.remove()


def logging_clients(
    url: str,
    run_ids: list[str],
    ready: Any,
    go: Any,
    stop: Any,
    results: Any,
) -> None:
    """One process of `len(run_ids)` mlflow clients, each logging batches of
    20 points (step i, value i) into its run until `stop`; reports each
    run's acknowledged steps and any error the client gave up on."""
    os.environ.update(
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="10",
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="1",
        MLFLOW_HTTP_REQUEST_BACKOFF_JITTER="0",
        MLFLOW_HTTP_REQUEST_TIMEOUT="60",
    )
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    def one(run_id: str) -> tuple[str, int, list[str]]:
        client = MlflowClient(tracking_uri=url)
        acked, errors = 0, []
        # A first call loads what the client loads lazily, before the clock.
        client.get_run(run_id)
        ready.put(run_id)
        go.wait()
        while not stop.is_set():
            now = int(time.time() * 1000)
            batch = [Metric("m", float(s), now, s) for s in range(acked, acked + 20)]
            try:
                client.log_batch(run_id, metrics=batch)
            except Exception as e:  # reported, and fails the test
                errors.append(repr(e)[:500])
                break
            acked += 20
        return run_id, acked, errors

    with ThreadPoolExecutor(len(run_ids)) as pool:
        results.put(list(pool.map(one, run_ids)))


def test_a_replica_killed_mid_ingest_costs_retries_not_points(
    tmp_path: Path, labbook_servers: LabbookServers, fresh_store: StoreRef
) -> None:
    """32 clients log through a round-robin proxy to two replicas; one is
    SIGKILLed mid-ingest and restarted: every acknowledged point is stored,
    and none twice."""
    env, args = store_env(fresh_store), store_serve_args(fresh_store, tmp_path)
    a = labbook_servers.start(tmp_path, env=env, args=args)
    b = labbook_servers.start(tmp_path, env=env, args=args)
    ports = [int(s.url.rsplit(":", 1)[1]) for s in (a, b)]
    proxy = ProxyThread([("127.0.0.1", p) for p in ports])
    try:
        client = mlflow.MlflowClient(tracking_uri=proxy.url)
        experiment = client.create_experiment("killed-replica")
        run_ids = [client.create_run(experiment).info.run_id for _ in range(32)]
        ctx = multiprocessing.get_context("spawn")
        ready, results = ctx.Queue(), ctx.Queue()
        go, stop = ctx.Event(), ctx.Event()
        # 8 processes of 4 clients each: 32 clients, without 32 imports of mlflow.
        procs = [
            ctx.Process(
                target=logging_clients,
                args=(proxy.url, run_ids[i::8], ready, go, stop, results),
                daemon=True,
            )
            for i in range(8)
        ]
        for p in procs:
            p.start()
        try:
            for _ in run_ids:
                ready.get(timeout=120)
            go.set()
            time.sleep(3)
            assert a.process is not None
            a.process.send_signal(signal.SIGKILL)
            a.process.wait(timeout=10)
            refused_before = proxy.proxy.refused
            time.sleep(2)
            # The clients went on through the other replica meanwhile.
            assert proxy.proxy.refused > refused_before
            labbook_servers.start(tmp_path, port=ports[0], env=env, args=args)
            time.sleep(3)
            stop.set()
            outcomes = [o for _ in procs for o in results.get(timeout=180)]
        finally:
            stop.set()
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.kill()
        assert [e for _, _, errors in outcomes for e in errors] == []
        total = 0
        for run_id, acked, _ in outcomes:
            steps = [m.step for m in client.get_metric_history(run_id, "m")]
            assert len(steps) == len(set(steps)), f"{run_id}: a point stored twice"
            assert set(range(acked)) <= set(steps), f"{run_id}: an acknowledged point lost"
            # Beyond them, at most the one batch the client was sending at the stop.
            assert max(steps, default=-1) < acked + 20
            total += acked
        assert total > 32 * 20
    finally:
        proxy.stop()


def test_make_team_demo_serves_through_its_proxy_and_cleans_up(tmp_path: Path) -> None:
    """The README's team demo as a new user runs it: the printed address and
    account work with the mlflow client, each replica serves what went
    through the proxy, and Ctrl-C leaves nothing behind."""
    demo = subprocess.Popen(
        [sys.executable, str(REPO / "deploy" / "team_demo.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        assert demo.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        text = "".join(lines)
        assert "Ctrl-C stops everything" in text, text
        url = re.search(r"open\s+(\S+)", text)
        account = re.search(r"sign in\s+(\S+) / (\S+)", text)
        root = re.search(r"everything under (\S+)", text)
        replica_urls = re.search(r"replicas\s+(.+)", text)
        assert url and account and root and replica_urls, text
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = (
            account.group(1),
            account.group(2),
        )
        try:
            client = mlflow.MlflowClient(tracking_uri=url.group(1))
            run = client.create_run(client.create_experiment("demo")).info.run_id
            for step in range(30):
                client.log_metric(run, "loss", 1.0 / (step + 1), step=step)
            (tmp_path / "weights.bin").write_bytes(os.urandom(4096))
            client.log_artifact(run, str(tmp_path / "weights.bin"))
            client.set_terminated(run)
            for replica in replica_urls.group(1).split():
                direct = mlflow.MlflowClient(tracking_uri=replica)
                assert [m.step for m in direct.get_metric_history(run, "loss")] == list(range(30))
                assert [f.path for f in direct.list_artifacts(run)] == ["weights.bin"]
            # Without the account, nothing.
            assert (
                requests.get(
                    f"{url.group(1)}{API}/runs/get", params={"run_id": run}, timeout=10
                ).status_code
                == 401
            )
        finally:
            del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
        assert demo.returncode == 0, rest
        assert not Path(root.group(1)).exists()
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait(timeout=10)


def test_wrong_passwords_spread_over_replicas_meet_one_limit(
    tmp_path: Path, labbook_servers: LabbookServers, fresh_store: StoreRef
) -> None:
    """A guesser alternating replicas is counted once, in the database: the
    eleventh try at a name is refused by either replica, even with the right
    password, while a token still signs in."""
    assert isinstance(fresh_store, str)
    env = {**os.environ, "LABBOOK_STORE": fresh_store}
    labbook = str(_labbook_binary())
    subprocess.run(
        [labbook, "user", "add", "ada", "--password-stdin"],
        input="right-horse-battery\n",
        env=env,
        text=True,
        check=True,
        capture_output=True,
    )
    token = subprocess.run(
        [labbook, "token", "create", "ada", "--json"],
        env=env,
        text=True,
        check=True,
        capture_output=True,
    ).stdout
    secret = re.search(r'"token":\s*"([^"]+)"', token)
    assert secret, token
    a, b = (
        labbook_servers.start(
            tmp_path,
            env=store_env(fresh_store),
            args=(*store_serve_args(fresh_store, tmp_path), "--auth"),
        ).url
        for _ in range(2)
    )
    search = f"{API}/experiments/search"
    for attempt in range(10):
        url = (a, b)[attempt % 2]
        answer = requests.post(
            f"{url}{search}", json={"max_results": 1}, auth=("ada", f"guess-{attempt}"), timeout=30
        )
        assert answer.status_code == 401, (attempt, answer.status_code, answer.text)
    for url in (a, b):
        answer = requests.post(
            f"{url}{search}",
            json={"max_results": 1},
            auth=("ada", "right-horse-battery"),
            timeout=30,
        )
        assert answer.status_code == 429, answer.text
        assert int(answer.headers["Retry-After"]) > 0
        with_token = requests.post(
            f"{url}{search}",
            json={"max_results": 1},
            headers={"Authorization": f"Bearer {secret.group(1)}"},
            timeout=30,
        )
        assert with_token.status_code == 200, with_token.text
