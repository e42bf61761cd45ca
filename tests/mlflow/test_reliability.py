"""`labbook serve` under load and killed without warning, with real MLflow clients.

Each test starts its own server (it kills it), separate from the suite's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import mlflow
import requests
from conftest import _free_port, _start_labbook, _stop, labbook_only

pytestmark = labbook_only

# One MLflow client process: its own run, BATCHES log_batch calls of PER_BATCH
# points each, then it prints the run id. The client's own retries (urllib3,
# on connection errors too) carry it across the server's death.
CLIENT = textwrap.dedent("""
    import sys, time
    from mlflow import MlflowClient
    from mlflow.entities import Metric
    experiment_id, batches, per_batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    client = MlflowClient()
    run_id = client.create_run(experiment_id).info.run_id
    print(run_id, flush=True)
    for b in range(batches):
        now = int(time.time() * 1000)
        metrics = [Metric("loss", 1.0 / (s + 1), now, s) for s in range(b * per_batch, (b + 1) * per_batch)]
        client.log_batch(run_id, metrics=metrics)
        time.sleep(0.01)
    client.set_terminated(run_id)
    print("done", flush=True)
""")


def client_env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        MLFLOW_TRACKING_URI=url,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="10",
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="1",
        MLFLOW_HTTP_REQUEST_BACKOFF_JITTER="0.5",
        MLFLOW_HTTP_REQUEST_TIMEOUT="30",
    )
    return env


def test_sigkill_serve_while_sixteen_clients_log_then_restart(tmp_path: Path) -> None:
    port = _free_port()
    server = _start_labbook(tmp_path, port)
    url = server.url
    experiment_id = requests.post(
        f"{url}/api/2.0/mlflow/experiments/create", json={"name": "killed-server"}, timeout=10
    ).json()["experiment_id"]
    batches, per_batch = 60, 50
    clients = [
        subprocess.Popen(
            [sys.executable, "-c", CLIENT, experiment_id, str(batches), str(per_batch)],
            env=client_env(url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(16)
    ]
    try:
        # Kill it once every client is logging, mid-stream.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = requests.post(
                f"{url}/api/2.0/mlflow/runs/search",
                json={"experiment_ids": [experiment_id], "max_results": 100},
                timeout=10,
            ).json()
            if len(runs.get("runs", [])) == 16:
                break
            time.sleep(0.1)
        time.sleep(0.5)
        assert server.process is not None
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        time.sleep(1.0)
        server = _start_labbook(tmp_path, port)
        outputs = [c.communicate(timeout=240) for c in clients]
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
    for c, (out, err) in zip(clients, outputs):
        assert c.returncode == 0, err[-2000:]
        assert out.split()[-1] == "done"

    mlflow.set_tracking_uri(server.url)
    client = mlflow.MlflowClient()
    expected = list(range(batches * per_batch))
    for out, _ in outputs:
        run_id = out.split()[0]
        history = client.get_metric_history(run_id, "loss")
        steps = sorted(m.step for m in history)
        assert steps == expected, f"run {run_id}: {len(steps)} points, {len(set(steps))} distinct"
        assert client.get_run(run_id).info.status == "FINISHED"
    _stop(server.process)


def test_sixty_four_http_clients_at_once_lose_nothing(tmp_path: Path) -> None:
    server = _start_labbook(tmp_path)
    url = server.url
    experiment_id = requests.post(
        f"{url}/api/2.0/mlflow/experiments/create", json={"name": "many-clients"}, timeout=10
    ).json()["experiment_id"]
    writers, readers, seconds = 48, 16, 8.0
    sent: dict[str, int] = {}
    errors: list[str] = []
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def write() -> None:
        with requests.Session() as http:
            run_id = http.post(
                f"{url}/api/2.0/mlflow/runs/create",
                json={"experiment_id": experiment_id},
                timeout=30,
            ).json()["run"]["info"]["run_id"]
            step = 0
            while time.monotonic() < stop:
                metrics = [
                    {"key": "loss", "value": 1.0 / (s + 1), "timestamp": 1, "step": s}
                    for s in range(step, step + 20)
                ]
                r = http.post(
                    f"{url}/api/2.0/mlflow/runs/log-batch",
                    json={"run_id": run_id, "metrics": metrics},
                    timeout=30,
                )
                if r.status_code != 200:
                    with lock:
                        errors.append(f"log-batch {r.status_code}: {r.text[:200]}")
                    return
                step += 20
            with lock:
                sent[run_id] = step

    def read() -> None:
        with requests.Session() as http:
            while time.monotonic() < stop:
                for path in ("/api/v1/projects", "/api/v1/projects/many-clients/runs?limit=50"):
                    r = http.get(f"{url}{path}", timeout=30)
                    if r.status_code != 200:
                        with lock:
                            errors.append(f"GET {path} {r.status_code}: {r.text[:200]}")
                        return

    threads = [threading.Thread(target=write) for _ in range(writers)]
    threads += [threading.Thread(target=read) for _ in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:5]
    assert len(sent) == writers

    with requests.Session() as http:
        for run_id, count in sent.items():
            r = http.get(
                f"{url}/api/2.0/mlflow/metrics/get-history",
                params={"run_id": run_id, "metric_key": "loss", "max_results": 100_000},
                timeout=30,
            ).json()
            steps = sorted(m["step"] for m in r.get("metrics", []))
            assert steps == list(range(count)), f"run {run_id}: {len(steps)} of {count}"
    _stop(server.process)
