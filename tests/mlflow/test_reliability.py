"""`labbook serve` under load and killed without warning, with real MLflow clients.

Each test starts its own servers (it kills them), separate from the suite's; the
`labbook_servers` fixture stops whatever is left at teardown.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests
from conftest import REPO, LabbookServers, _free_port, labbook_only

pytestmark = labbook_only

# The server's test hook (labbook_server::TEST_HOLD_ENV): a log request carrying a
# metric of this key is committed, reported on stderr, and never answered.
HOLD_ENV = "LABBOOK_TEST_HOLD_AFTER_COMMIT"
HOLD_KEY = "held_marker"
HELD_LINE = re.compile(r"labbook test hook: committed (a log-batch|a batch) for run (\S+);")

# One MLflow client process: its own run, log_batch calls of PER_BATCH points
# until the test says the server was killed, then 20 more, then it ends the run
# and prints how many batches it sent. The "hold" client adds a HOLD_KEY point
# to one batch once the test asks for it. The client's own retries (urllib3, on
# connection errors too) carry it across the server's death.
CLIENT = textwrap.dedent("""
    import os, sys, time
    from mlflow import MlflowClient
    from mlflow.entities import Metric
    experiment_id, per_batch = sys.argv[1], int(sys.argv[2])
    hold_now, killed, role, hold_key = sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
    client = MlflowClient()
    run_id = client.create_run(experiment_id).info.run_id
    print(run_id, flush=True)
    b, after_kill, held = 0, None, False
    while after_kill is None or b < after_kill + 20:
        if after_kill is None and os.path.exists(killed):
            after_kill = b
        now = int(time.time() * 1000)
        metrics = [Metric("loss", 1.0 / (s + 1), now, s) for s in range(b * per_batch, (b + 1) * per_batch)]
        if role == "hold" and not held and os.path.exists(hold_now):
            metrics.append(Metric(hold_key, float(b), now, b))
            held = True
        client.log_batch(run_id, metrics=metrics)
        b += 1
        time.sleep(0.01)
    client.set_terminated(run_id)
    print("done", b, flush=True)
""")


# One labbook SDK process logging into the server (`init(url=…)`): two metrics
# per step and a bulk series, until the test says the server was killed, then
# 300 steps more. The SDK repeats a batch whose answer it lost under the same
# batch id; the server applies each id once.
SDK_CLIENT = textwrap.dedent("""
    import os, sys, time, labbook
    url, hold_now, killed, role, hold_key = sys.argv[1:6]
    run = labbook.init(url=url, project="killed-server-sdk", system_metrics=False)
    print(run.id, flush=True)
    s, after_kill, held = 0, None, False
    while after_kill is None or s < after_kill + 300:
        if after_kill is None and os.path.exists(killed):
            after_kill = s
        run.log({"loss": 1.0 / (s + 1), "acc": s / 1000}, step=s)
        if s == 50:
            run.log_series("grad", list(range(10_000)), [i * 0.5 for i in range(10_000)], None)
            run.summary["halfway"] = s
        if role == "hold" and not held and os.path.exists(hold_now):
            run.log({hold_key: float(s)}, step=s)
            held = True
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
    env.pop(HOLD_ENV, None)
    env.update(
        MLFLOW_TRACKING_URI=url,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="10",
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="1",
        MLFLOW_HTTP_REQUEST_BACKOFF_JITTER="0.5",
        MLFLOW_HTTP_REQUEST_TIMEOUT="30",
    )
    return env


def wait_for(what: str, check: Callable[[], bool], timeout: float, every: float = 0.1) -> None:
    """Polls `check` until it holds; fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def exited(clients: list[subprocess.Popen[str]]) -> str:
    """What the clients that ended early said, for a failure message."""
    ended = [c for c in clients if c.poll() is not None]
    return "; ".join(f"exit {c.returncode}: {c.communicate()[1][-1500:]}" for c in ended)


@pytest.mark.timeout(300)
def test_sigkill_serve_while_sixteen_mlflow_and_sixteen_sdk_clients_log_then_restart(
    tmp_path: Path, labbook_servers: LabbookServers
) -> None:
    port = _free_port()
    server = labbook_servers.start(tmp_path, port, env={HOLD_ENV: HOLD_KEY})
    url = server.url
    experiment_id = requests.post(
        f"{url}/api/2.0/mlflow/experiments/create", json={"name": "killed-server"}, timeout=10
    ).json()["experiment_id"]
    per_batch = 50
    hold_now, killed = tmp_path / "hold-now", tmp_path / "server-killed"
    # Client 0 of each kind sends the request the server holds.
    roles = ["hold", *["log"] * 15]
    signals = [str(hold_now), str(killed)]
    mlflow_clients = [
        subprocess.Popen(
            [sys.executable, "-c", CLIENT, experiment_id, str(per_batch), *signals, role, HOLD_KEY],
            env=client_env(url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for role in roles
    ]
    sdk_clients = [
        subprocess.Popen(
            [labbook_python(), "-c", SDK_CLIENT, url, *signals, role, HOLD_KEY],
            env=client_env(url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for role in roles
    ]
    clients = mlflow_clients + sdk_clients
    started = time.monotonic()
    try:

        def every_client_logging() -> bool:
            if any(c.poll() is not None for c in clients):
                pytest.fail(f"a client ended before the kill: {exited(clients)}")
            runs = requests.post(
                f"{url}/api/2.0/mlflow/runs/search",
                json={"experiment_ids": [experiment_id], "max_results": 100},
                timeout=10,
            ).json()
            sdk_runs = requests.get(
                f"{url}/api/v1/projects/killed-server-sdk/runs", timeout=10
            ).json()
            mlflow_logging = [r for r in runs.get("runs", []) if r["data"].get("metrics")]
            sdk_logging = [r for r in sdk_runs.get("runs", []) if r["metrics"]]
            return len(mlflow_logging) == 16 and len(sdk_logging) == 16

        wait_for("all 32 clients to be logging", every_client_logging, timeout=120)
        # One MLflow log-batch and one SDK batch are committed and never answered.
        hold_now.touch()

        def held() -> list[tuple[str, str]]:
            return HELD_LINE.findall(server.log_path.read_text(errors="replace"))

        wait_for("the server to hold two committed requests", lambda: len(held()) == 2, 60)
        # No client can have finished: each logs until it sees `killed`.
        assert all(c.poll() is None for c in clients), exited(clients)
        assert server.process is not None
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        killed_after = time.monotonic() - started
        killed.touch()
        server = labbook_servers.start(tmp_path, port)
        outputs = [c.communicate(timeout=240) for c in clients]
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
                c.wait()
    print(f"killed {killed_after:.1f} s after the clients started")
    for c, (out, err) in zip(clients, outputs):
        assert c.returncode == 0, err[-2000:]
        assert "done" in out.split()
    held_runs = dict(held())
    mlflow_held, sdk_held = held_runs["a log-batch"], held_runs["a batch"]
    assert mlflow_held == outputs[0][0].split()[0], "the hold client's request was held"
    assert sdk_held == outputs[16][0].split()[0]

    mlflow.set_tracking_uri(server.url)
    client = mlflow.MlflowClient()
    for out, _ in outputs[:16]:
        run_id, batches = out.split()[0], int(out.split()[-1])
        history = client.get_metric_history(run_id, "loss")
        steps = sorted(m.step for m in history)
        expected = list(range(batches * per_batch))
        assert steps == expected, f"run {run_id}: {len(steps)} points, {len(set(steps))} distinct"
        assert client.get_run(run_id).info.status == "FINISHED"
    # The held log-batch was committed by the dead server and sent again by
    # its client to the new one: its points are stored once.
    marker = client.get_metric_history(mlflow_held, HOLD_KEY)
    assert len(marker) == 1, f"the held MLflow request's point is stored {len(marker)} times"
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
    marker = client.get_metric_history(sdk_held, HOLD_KEY)
    assert len(marker) == 1, f"the held SDK batch's point is stored {len(marker)} times"


@pytest.mark.timeout(180)
def test_sixty_four_http_clients_at_once_lose_nothing(
    tmp_path: Path, labbook_servers: LabbookServers
) -> None:
    server = labbook_servers.start(tmp_path)
    url = server.url
    experiment_id = requests.post(
        f"{url}/api/2.0/mlflow/experiments/create", json={"name": "many-clients"}, timeout=10
    ).json()["experiment_id"]
    writers, readers, seconds, per_batch = 48, 16, 8.0, 20
    sent: dict[str, int] = {}
    errors: list[str] = []
    reads = [0] * readers
    most_seen = [0] * readers
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def guarded(work: Callable[..., None], *args: Any) -> Callable[[], None]:
        """A thread's work, any exception of which becomes a test failure."""

        def run() -> None:
            try:
                work(*args)
            except BaseException:
                with lock:
                    errors.append(traceback.format_exc())

        return run

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
                    for s in range(step, step + per_batch)
                ]
                r = http.post(
                    f"{url}/api/2.0/mlflow/runs/log-batch",
                    json={"run_id": run_id, "metrics": metrics},
                    timeout=30,
                )
                assert r.status_code == 200, f"log-batch {r.status_code}: {r.text[:200]}"
                step += per_batch
            with lock:
                sent[run_id] = step

    def read(reader: int) -> None:
        seen: dict[str, int] = {}
        with requests.Session() as http:
            while time.monotonic() < stop:
                r = http.get(f"{url}/api/v1/projects", timeout=30)
                assert r.status_code == 200, f"GET /projects {r.status_code}: {r.text[:200]}"
                assert "many-clients" in [p["name"] for p in r.json()["projects"]]
                r = http.get(f"{url}/api/v1/projects/many-clients/runs?limit=50", timeout=30)
                assert r.status_code == 200, f"GET runs {r.status_code}: {r.text[:200]}"
                runs = r.json()["runs"]
                assert len(runs) <= writers
                for run in runs:
                    loss = run["metrics"].get("loss")
                    count = loss["count"] if loss else 0
                    # A batch is one transaction: a reader sees all of it or none,
                    # and a run's points only ever grow.
                    assert count % per_batch == 0, f"run {run['id']}: {count} points"
                    assert count >= seen.get(run["id"], 0), f"run {run['id']} lost points"
                    if loss:
                        assert loss["last_step"] == count - 1
                        assert loss["last"] == 1.0 / count
                    seen[run["id"]] = count
                reads[reader] += 1
                most_seen[reader] = max([most_seen[reader], *seen.values()])

    threads = [threading.Thread(target=guarded(write)) for _ in range(writers)]
    threads += [threading.Thread(target=guarded(read, i)) for i in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a client thread is still running"
    assert not errors, "\n".join(errors[:5])
    assert len(sent) == writers
    print(f"reads per reader: {reads}")
    assert all(n > 0 for n in reads), f"a reader read nothing: {reads}"
    assert all(n > 0 for n in most_seen), f"a reader never saw a point: {most_seen}"

    with requests.Session() as http:
        for run_id, count in sent.items():
            r = http.get(
                f"{url}/api/2.0/mlflow/metrics/get-history",
                params={"run_id": run_id, "metric_key": "loss", "max_results": 100_000},
                timeout=30,
            ).json()
            steps = sorted(m["step"] for m in r.get("metrics", []))
            assert steps == list(range(count)), f"run {run_id}: {len(steps)} of {count}"
