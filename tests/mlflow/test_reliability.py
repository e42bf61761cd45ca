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
import pytest
import requests
from conftest import REPO, _free_port, _start_labbook, _stop, labbook_only

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


# One labbook SDK process logging into the server (`init(url=…)`): two
# metrics per step and a bulk series, with small pauses so that the kill
# lands mid-stream. The SDK repeats a batch whose answer it lost under the
# same batch id; the server applies each id once.
SDK_CLIENT = textwrap.dedent("""
    import os, sys, time, labbook
    url, marker = sys.argv[1], sys.argv[2]
    run = labbook.init(url=url, project="killed-server-sdk", system_metrics=False)
    print(run.id, flush=True)
    s = 0
    # Log until the test says the server is back, so that every client is
    # mid-stream when it dies, however slowly the machine runs.
    while s < 1000 or not os.path.exists(marker):
        run.log({"loss": 1.0 / (s + 1), "acc": s / 1000}, step=s)
        if s == 500:
            run.log_series("grad", list(range(10_000)), [i * 0.5 for i in range(10_000)], None)
            run.summary["halfway"] = s
        s += 1
        time.sleep(0.003)
    run.finish()
    print("done", s, flush=True)
""")


def labbook_python() -> str:
    """An interpreter with the labbook SDK: $LABBOOK_PYTHON or the repo's .venv."""
    for candidate in (os.environ.get("LABBOOK_PYTHON"), str(REPO / ".venv/bin/python")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("no Python with the labbook SDK: run `make build` or set LABBOOK_PYTHON")
    raise AssertionError


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


def test_sigkill_serve_while_sixteen_mlflow_and_sixteen_sdk_clients_log_then_restart(
    tmp_path: Path,
) -> None:
    port = _free_port()
    server = _start_labbook(tmp_path, port)
    url = server.url
    experiment_id = requests.post(
        f"{url}/api/2.0/mlflow/experiments/create", json={"name": "killed-server"}, timeout=10
    ).json()["experiment_id"]
    batches, per_batch = 60, 50
    marker = tmp_path / "server-is-back"
    mlflow_clients = [
        subprocess.Popen(
            [sys.executable, "-c", CLIENT, experiment_id, str(batches), str(per_batch)],
            env=client_env(url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(16)
    ]
    sdk_clients = [
        subprocess.Popen(
            [labbook_python(), "-c", SDK_CLIENT, url, str(marker)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(16)
    ]
    clients = mlflow_clients + sdk_clients
    try:
        # Kill it once every client is logging, mid-stream.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = requests.post(
                f"{url}/api/2.0/mlflow/runs/search",
                json={"experiment_ids": [experiment_id], "max_results": 100},
                timeout=10,
            ).json()
            sdk_runs = requests.get(
                f"{url}/api/v1/projects/killed-server-sdk/runs", timeout=10
            ).json()
            if len(runs.get("runs", [])) == 16 and len(sdk_runs.get("runs", [])) == 16:
                break
            time.sleep(0.1)
        time.sleep(0.5)
        assert server.process is not None
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        time.sleep(1.0)
        server = _start_labbook(tmp_path, port)
        time.sleep(1.0)
        marker.touch()
        outputs = [c.communicate(timeout=240) for c in clients]
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
    for c, (out, err) in zip(clients, outputs):
        assert c.returncode == 0, err[-2000:]
        assert "done" in out.split()

    mlflow.set_tracking_uri(server.url)
    client = mlflow.MlflowClient()
    expected = list(range(batches * per_batch))
    for out, _ in outputs[:16]:
        run_id = out.split()[0]
        history = client.get_metric_history(run_id, "loss")
        steps = sorted(m.step for m in history)
        assert steps == expected, f"run {run_id}: {len(steps)} points, {len(set(steps))} distinct"
        assert client.get_run(run_id).info.status == "FINISHED"
    # The SDK's runs, read through the MLflow API too: every point once.
    for out, _ in outputs[16:]:
        run_id, sdk_steps = out.split()[0], int(out.split()[-1])
        for key, count in (("loss", sdk_steps), ("acc", sdk_steps), ("grad", 10_000)):
            history = client.get_metric_history(run_id, key)
            steps = sorted(m.step for m in history)
            assert steps == list(range(count)), (
                f"SDK run {run_id} {key}: {len(steps)} points, {len(set(steps))} distinct"
            )
        loss = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "loss"))
        assert [v for _, v in loss] == [1.0 / (s + 1) for s in range(sdk_steps)]
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
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
