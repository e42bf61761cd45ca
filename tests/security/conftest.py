"""The security suite: `labbook serve` and `labbook ui`, the real binary, attacked
over plain HTTP on loopback as a hostile web page or a hostile local client would.

Every server here runs on a fresh store in its own temporary directory, started
on port 0 (the banner names the port it bound), and is stopped in teardown.
``store_snapshot`` reads every row of every table and every stored file, so a
test can say "nothing changed" about the whole store, not a sample of it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

# CI harnesses may start the suite with SIGTERM ignored or blocked; the servers
# started here must stop on it as they would from a shell.
signal.signal(signal.SIGTERM, signal.SIG_DFL)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from store_snapshot import assert_unchanged as assert_unchanged  # noqa: E402
from store_snapshot import snapshot as store_snapshot  # noqa: E402,F401

BANNER = re.compile(r"^labbook (?:serve|ui): serving (?P<dir>.+) at (?P<url>http://\S+)\s*$")
START_TIMEOUT_S = 30.0


def labbook_bin() -> Path:
    binary = Path(os.environ.get("LABBOOK_BIN", str(REPO / "target/release/labbook")))
    if not binary.is_file():
        pytest.fail(f"labbook binary not found at {binary} (run `make build` or set LABBOOK_BIN)")
    return binary


@dataclass
class Server:
    url: str
    store: Path
    process: subprocess.Popen[bytes]
    log: Path
    host: str = field(init=False)
    port: int = field(init=False)

    def __post_init__(self) -> None:
        hostport = self.url.removeprefix("http://")
        host, port = hostport.rsplit(":", 1)
        self.host, self.port = host, int(port)

    def alive(self) -> bool:
        return self.process.poll() is None

    def get(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 30)
        return requests.get(self.url + path, **kw)

    def post_json(self, path: str, body: Any, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 30)
        return requests.post(self.url + path, json=body, **kw)

    def rss_peak_kb(self) -> int:
        """The server's peak resident memory so far (VmHWM), in KiB."""
        text = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
        assert match, text
        return int(match[1])

    def log_tail(self, limit: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-limit:]
        except OSError:
            return "(no log)"


def start_server(
    tmp: Path, command: str = "serve", args: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> Server:
    """``labbook COMMAND`` on a store in ``tmp`` (created for ``serve``; ``ui``
    needs one, so it is made first), answering once ``/health`` does."""
    binary = labbook_bin()
    store = tmp / ".labbook"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    full_env.update(env or {})
    if command == "ui" and not store.exists():
        subprocess.run(
            [str(binary), "--dir", str(store), "init"],
            check=True,
            env=full_env,
            capture_output=True,
        )
    log = tmp / f"{command}.log"
    log_file = open(log, "ab")
    proc = subprocess.Popen(
        [str(binary), "--dir", str(store), command, "--host", "127.0.0.1", "--port", "0", *args],
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=log_file,
        env=full_env,
        start_new_session=True,
    )
    assert proc.stdout is not None
    stdout = proc.stdout
    banner: list[bytes] = []
    got = threading.Event()

    def drain() -> None:
        banner.append(stdout.readline())
        got.set()
        for line in iter(stdout.readline, b""):
            log_file.write(line)
        log_file.close()

    threading.Thread(target=drain, daemon=True).start()
    if not got.wait(START_TIMEOUT_S) or not banner or not banner[0]:
        stop(proc)
        pytest.fail(f"labbook {command} printed no banner; log:\n{log.read_text(errors='replace')}")
    match = BANNER.match(banner[0].decode(errors="replace"))
    if match is None:
        stop(proc)
        pytest.fail(f"unexpected banner {banner[0]!r}")
    server = Server(match["url"], store, proc, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if server.get("/health", timeout=2).status_code == 200:
                return server
        except requests.RequestException:
            pass
        if time.monotonic() > deadline or not server.alive():
            stop(proc)
            pytest.fail(f"labbook {command} never answered /health; log:\n{server.log_tail()}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Any]:
    """Starts servers for a test (``launch("serve", "--max-upload-size", "1MiB")``)
    and stops every one of them afterwards, whatever happened."""
    started: list[Server] = []

    def start(
        command: str = "serve", *args: str, env: dict[str, str] | None = None, name: str = ""
    ) -> Server:
        tmp = tmp_path / (name or f"{command}{len(started)}")
        tmp.mkdir(parents=True, exist_ok=True)
        server = start_server(tmp, command, args, env)
        started.append(server)
        return server

    yield start
    for server in started:
        stop(server.process)


@pytest.fixture
def serve(launch: Any) -> Server:
    """A `labbook serve` on a fresh store."""
    server: Server = launch("serve")
    return server


def seed(server: Server) -> dict[str, str]:
    """A store worth attacking: a labbook run with points, a note and tags, an
    MLflow experiment with a run, a param, a metric and two artifacts, a
    registered model, and a logged model with a file. Returns the ids."""
    run_id = "seedrun1"
    r = server.post_json(
        "/api/v1/runs",
        {
            "id": run_id,
            "project": "victim",
            "created_ms": 1_700_000_000_000,
            "config": {"lr": 0.01},
            "tags": ["keep"],
            "notes": "the victim run",
        },
    )
    assert r.status_code == 200, r.text
    r = server.post_json(
        f"/api/v1/runs/{run_id}/log",
        {
            "batch_id": "seed-1",
            "series": {
                "loss": {"steps": [0, 1, 2], "ts_ms": [1, 2, 3], "values": [1.0, 0.5, 0.25]}
            },
            "patch": {"status": "finished", "ended_ms": 1_700_000_001_000},
        },
    )
    assert r.status_code == 200, r.text
    ml = server.url + "/api/2.0/mlflow"
    exp = requests.post(ml + "/experiments/create", json={"name": "victim-exp"}, timeout=30).json()[
        "experiment_id"
    ]
    run = requests.post(
        ml + "/runs/create", json={"experiment_id": exp, "start_time": 1}, timeout=30
    ).json()
    ml_run = run["run"]["info"]["run_id"]
    for path, payload in (
        ("log-parameter", {"key": "p", "value": "1"}),
        ("log-metric", {"key": "m", "value": 1.0, "timestamp": 1, "step": 0}),
    ):
        r = requests.post(f"{ml}/runs/{path}", json={"run_id": ml_run, **payload}, timeout=30)
        assert r.status_code == 200, r.text
    artifact_root = run["run"]["info"]["artifact_uri"].split("mlflow-artifacts:", 1)[-1].lstrip("/")
    for name, body in (("model/weights.bin", b"\x00" * 1000), ("notes.txt", b"hello")):
        r = requests.put(
            f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{artifact_root}/{name}",
            data=body,
            timeout=30,
        )
        assert r.status_code == 200, r.text
    r = requests.post(ml + "/registered-models/create", json={"name": "victim-model"}, timeout=30)
    assert r.status_code == 200, r.text
    model = requests.post(
        ml + "/logged-models", json={"experiment_id": exp, "name": "victim-lm"}, timeout=30
    ).json()["model"]["info"]
    model_root = model["artifact_uri"].split("mlflow-artifacts:", 1)[-1].lstrip("/")
    r = requests.put(
        f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{model_root}/MLmodel",
        data=b"flavors: {}\n",
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return {
        "run": run_id,
        "experiment": exp,
        "mlflow_run": ml_run,
        "artifact_root": artifact_root,
        "logged_model": model["model_id"],
    }


def labbook_python() -> str:
    """An interpreter with the labbook SDK: $LABBOOK_PYTHON or the repo's .venv."""
    for candidate in (os.environ.get("LABBOOK_PYTHON"), str(REPO / ".venv/bin/python")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("no Python with the labbook SDK: run `make build` or set LABBOOK_PYTHON")
    raise AssertionError


# Versioned artifacts come only from the SDK (or the CLI), never over HTTP:
# logged into the server's store directly, as a script beside it would.
SEED_ARTIFACTS = """
import json, pathlib, sys
import labbook
root = pathlib.Path(sys.argv[1])
files = int(sys.argv[2])
data = root / "data"
(data / "sub").mkdir(parents=True)
(data / "train.csv").write_text("x,y\\n1,2\\n")
(data / "sub" / "notes.txt").write_text("victim notes")
for i in range(files):
    (data / "many" / f"{i // 1000:03d}").mkdir(parents=True, exist_ok=True)
    (data / "many" / f"{i // 1000:03d}" / f"f{i:06d}.txt").write_text(str(i))
(root / "model.pt").write_bytes(b"victim weights")
maker = labbook.init(project="victim", name="artifact-maker", system_metrics=False)
art = labbook.Artifact("victim-data", type="dataset", metadata={"rows": 2}, description="victim data")
art.add_dir(str(data))
maker.log_artifact(art, aliases=["best"])
maker.finish()
user = labbook.init(project="victim", name="artifact-user", system_metrics=False)
user.use_artifact("victim-data:best")
user.log_model(str(root / "model.pt"), name="victim-weights")
user.finish()
print(json.dumps({"artifact_run": user.id, "artifact_maker": maker.id}))
"""


def seed_artifacts(server: Server, files: int = 0) -> dict[str, str]:
    """Versioned artifacts in the project "victim": the dataset
    `victim-data` (v0, @best; two files and `files` more) logged by one run,
    used by another that logged the model `victim-weights`. Returns the run
    ids (`artifact_maker`, `artifact_run`: the user)."""
    work = server.store.parent / "artifact-seed"
    work.mkdir()
    # The tables below expect exactly these versions, not the scripts' code.
    return run_seed(SEED_ARTIFACTS, str(work), str(files), cwd=work, store=server.store)


SEED_STUDY = """
import json, sys
import labbook
s = labbook.study("victim-study", direction="minimize", project="victim", store=sys.argv[1],
                  pruner="median", why="the seeded search")
for i in range(8):
    t = s.ask()
    x = t.suggest_float("x", -3.0, 3.0)
    opt = t.suggest_categorical("opt", ["adam", "sgd"])
    for step in range(3):
        t.report(x * x + step, step)
    s.tell(t, x * x)
print(json.dumps({"study": s.id}))
"""


def seed_study(server: Server) -> dict[str, str]:
    """A `labbook.study()` of 8 trials in the project "victim"; its id."""
    return run_seed(SEED_STUDY, str(server.store))


def run_seed(
    script: str, *args: str, cwd: Path | None = None, store: Path | None = None
) -> dict[str, Any]:
    """Runs a seeding script with the labbook package, outside any store the
    environment names (in ``store`` when given) and without code snapshots;
    the JSON object its last line prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    if store is not None:
        env["LABBOOK_DIR"] = str(store)
    env["LABBOOK_SNAPSHOT"] = "0"
    done = subprocess.run(
        [labbook_python(), "-c", script, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def create_sweep(server: Server, **overrides: Any) -> str:
    """A random sweep in the project "victim", made with the CLI on the
    server's store (``overrides`` replace keys of its file); its id."""
    folder = server.store.parent
    config: dict[str, Any] = {
        "program": "train.py",
        "method": "random",
        "project": "victim",
        "run_cap": 3,
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"lr": {"min": 0.001, "max": 0.1}},
    }
    config.update(overrides)
    (folder / "sweep.json").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    done = subprocess.run(
        [str(labbook_bin()), "--dir", str(server.store), "sweep", "create", "sweep.json", "--json"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    sweep: str = json.loads(done.stdout)["id"]
    return sweep


def raw_http(host: str, port: int, request: bytes, timeout: float = 10.0) -> bytes:
    """Sends bytes as they are (requests would fix a bad Host or method) and
    reads the whole answer."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            # A server may answer an oversized body (413) and close before
            # reading it all; its answer is still waiting to be read.
            pass
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                break
        return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return match is not None and len(body) >= int(match[1])


def status_of(response: bytes) -> int:
    line = response.split(b"\r\n", 1)[0]
    return int(line.split()[1]) if line.startswith(b"HTTP/1.1 ") else 0


def body_json(response: bytes) -> Any:
    return json.loads(response.partition(b"\r\n\r\n")[2])
