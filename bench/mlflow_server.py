"""Side by side: MLflow's own client against `mlflow server` and `labbook serve`.

The same `MlflowClient` code runs against each server in turn, on this machine,
over loopback: MLflow 3.x on a SQLite backend, labbook on a `.labbook` store,
each started fresh in a temporary directory. Figures are medians over
repetitions with min and max (as in report.py); the JSON goes to --out, a markdown
table to stdout, progress to stderr.

Run it with an interpreter that has `mlflow` installed (the client under test):

    .venv-mlflow/bin/python bench/mlflow_server.py --quick
    .venv-mlflow/bin/python bench/mlflow_server.py --servers mlflow
    .venv-mlflow/bin/python bench/mlflow_server.py --servers labbook \\
        --reuse bench/out/mlflow_server.json

A full MLflow pass takes ~13 minutes on 2 cores (two starts of 15 to 45 s, a
minute of 32 clients, ~8 minutes seeding 10,000 runs over HTTP), so `--reuse`
takes the servers not measured now from an earlier JSON file.

Beside each client figure, a "raw HTTP" row times the same request with the
same JSON body sent with http.client over one kept-alive connection: the MLflow
client's own cost per call (protobuf parsing, entity objects; ~40 ms of a
3,000-point get_metric_history) hides the server's speed, which those rows show.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import multiprocessing
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode, urlsplit

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parent.parent
SERVERS = ("mlflow", "labbook")
HOST = "127.0.0.1"

# Learning rates the seeded runs draw from, and the filter the search uses:
# one lr in five and one acc in ten, so ~2% of the runs match.
LRS = ("0.1", "0.03", "0.01", "0.003", "0.001")
SEARCH_FILTER = "metrics.acc > 0.9 and params.lr = '0.01'"

T = TypeVar("T")

# /health polling interval and give-up time, seconds: labbook's start is
# meant to take milliseconds, so poll finely; MLflow's takes tens of seconds,
# and polling it every 50 ms leaves the CPU to it.
HEALTH_POLL = {"labbook": (0.005, 30.0), "mlflow": (0.05, 300.0)}

# How the client under test is configured, in this process and the
# concurrent clients it spawns (the servers get the environment as it was):
CLIENT_ENV = {
    # The default is 7 retries with backoff on 429/5xx, which would turn a
    # server error into a slow call nobody sees; with none, each one raises.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    # A pool larger than the 16 seeding threads keeps their connections
    # alive instead of dropping them (the default pool holds 10).
    "MLFLOW_HTTP_POOL_MAXSIZE": "64",
    # The client's usage telemetry sets and pops an os.environ entry from a
    # background thread, which made a concurrent log_batch fail with a
    # KeyError in `requests` (os.environ changed while being read); it has
    # nothing to do with either server.
    "MLFLOW_DISABLE_TELEMETRY": "true",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Sizes:
    starts: dict[str, int]
    runs: dict[str, int]
    clients: int
    concurrent_seconds: float
    health_calls: int = 200
    log_metric_warmup: int = 10
    log_metric_calls: int = 200
    batch_metrics: int = 1000
    batch_calls: int = 30
    history_points: int = 3000
    history_calls: int = 30
    search_calls: int = 20
    seed_threads: int = 16
    concurrent_batch: int = 100


def sizes_from_args(args: argparse.Namespace) -> Sizes:
    def given(value: T | None, full: T, quick: T) -> T:
        if value is not None:
            return value
        return quick if args.quick else full

    runs = given(args.runs, 10_000, 300)
    common: dict[str, Any] = {
        "runs": {"labbook": runs, "mlflow": given(args.mlflow_runs, runs, runs)},
        "clients": given(args.clients, 32, 4),
        "concurrent_seconds": given(args.concurrent_seconds, 60.0, 5.0),
    }
    if not args.quick:
        # MLflow takes 15 to 45 s a start on a small shared machine: two of those.
        return Sizes(starts={"labbook": 5, "mlflow": 2}, **common)
    return Sizes(
        starts={"labbook": 2, "mlflow": 1},
        health_calls=30,
        log_metric_calls=30,
        batch_calls=5,
        history_calls=5,
        search_calls=5,
        **common,
    )


# --------------------------------------------------------------------------- figures


@dataclass
class Figure:
    unit: str
    samples: list[float]
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "median": statistics.median(self.samples),
            "min": min(self.samples),
            "max": max(self.samples),
            "n": len(self.samples),
            # Per-call latencies under load can run to 100k+; those stay out.
            "samples": self.samples if len(self.samples) <= 1000 else None,
            "note": self.note,
            **self.extra,
        }


@dataclass
class ServerResult:
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    endpoints: list[dict[str, Any]] = field(default_factory=list)

    def add(self, key: str, figure: Figure) -> None:
        self.figures[key] = figure.to_json()

    def to_json(self) -> dict[str, Any]:
        return {
            "figures": self.figures,
            "errors": self.errors,
            "info": self.info,
            "endpoints": self.endpoints,
        }


def timed_ms(call: Callable[[], object], n: int, warmup: int = 0) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t) * 1e3)
    return samples


# --------------------------------------------------------------------------- endpoint log

# Every request the client makes, as (method, path, status): it says which
# REST endpoints labbook must serve, and shows 4xx/5xx answers. The status is
# the exception's name where there was no response to count (a refused
# connection, or a 5xx that urllib3 turns into MaxRetryError with retries off).
ENDPOINTS: Counter[tuple[str, str, int | str]] = Counter()


def record_endpoints() -> None:
    """Counts requests at `requests.Session.request`, which MLflow's REST client
    goes through; a counter increment is noise next to a loopback round trip."""
    import requests

    original = requests.Session.request

    def request(
        self: requests.Session, method: str, url: str, *args: Any, **kwargs: Any
    ) -> requests.Response:
        key = (method.upper(), urlsplit(url).path)
        try:
            response = original(self, method, url, *args, **kwargs)
        except Exception as e:
            ENDPOINTS[(*key, type(e).__name__)] += 1
            raise
        ENDPOINTS[(*key, response.status_code)] += 1
        return response

    requests.Session.request = request  # type: ignore[method-assign]


def endpoint_table() -> list[dict[str, Any]]:
    return [
        {"method": m, "path": p, "status": s, "count": c}
        for (m, p, s), c in sorted(
            ENDPOINTS.items(), key=lambda kv: (kv[0][1], kv[0][0], str(kv[0][2]))
        )
    ]


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def health_status(port: int, timeout: float) -> int | None:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def process_tree(root: int) -> list[int]:
    """The root and all its descendants, from /proc/*/stat (no psutil in the
    venv, and /proc/PID/task/*/children needs a kernel option)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses; ppid is
        # the second field after its closing parenthesis.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def proc_kb(path: str, key: str) -> int | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


@dataclass
class Memory:
    rss_mb: float
    pss_mb: float | None
    processes: list[dict[str, Any]]


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) spent by the tree so far: each live process's
    own, plus what its exited children spent once it reaped them (a
    PostgreSQL backend's time goes to the postmaster as its connection ends)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in process_tree(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        # After the command name: state is field 3, utime..cstime are 14..17.
        fields = stat.rsplit(")", 1)[1].split()
        total += sum(int(f) for f in fields[11:15])
    return total / ticks


def tree_memory(root: int) -> Memory:
    """RSS summed over the tree counts a page shared between processes (the
    Python runtime and libraries, in MLflow's case) once per process; PSS
    splits each shared page between its sharers, so its sum is the real cost."""
    rows = []
    for pid in process_tree(root):
        rss = proc_kb(f"/proc/{pid}/status", "VmRSS")
        if rss is None:
            continue
        pss = proc_kb(f"/proc/{pid}/smaps_rollup", "Pss")
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            cmd = "?"
        rows.append({"pid": pid, "rss_kb": rss, "pss_kb": pss, "cmd": cmd.strip()[:160]})
    pss_known = all(r["pss_kb"] is not None for r in rows)
    return Memory(
        rss_mb=sum(r["rss_kb"] for r in rows) / 1024,
        pss_mb=sum(r["pss_kb"] for r in rows) / 1024 if pss_known and rows else None,
        processes=rows,
    )


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    tmp: Path
    port: int
    log_path: Path
    startup_s: float

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def server_command(name: str, args: argparse.Namespace, tmp: Path, port: int) -> list[str]:
    if name == "labbook":
        return [
            str(args.labbook_bin),
            "--dir",
            str(tmp / ".labbook"),
            "serve",
            "--host",
            HOST,
            "--port",
            str(port),
        ]
    # `mlflow server` as shipped: default workers (4 uvicorn processes) and its
    # job runner; only the stores are pointed into the temporary directory.
    return [
        str(args.mlflow_bin),
        "server",
        "--host",
        HOST,
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{tmp / 'mlflow.db'}",
        "--artifacts-destination",
        str(tmp / "artifacts"),
    ]


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start_server(name: str, args: argparse.Namespace) -> Server:
    """Starts one fresh server and times Popen → first 200 from GET /health."""
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    port = free_port()
    log_path = tmp / "server.log"
    interval, limit = HEALTH_POLL[name]
    cmd = server_command(name, args, tmp, port)
    try:
        with open(log_path, "wb") as out:
            t0 = time.perf_counter()
            # A session of its own, so stopping it can signal MLflow's whole
            # tree (uvicorn workers, job runner, huey consumers) at once.
            proc = subprocess.Popen(
                cmd,
                cwd=tmp,
                env=args.server_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    server = Server(name, proc, tmp, port, log_path, 0.0)
    while True:
        if health_status(port, timeout=max(1.0, interval)) == 200:
            server.startup_s = time.perf_counter() - t0
            return server
        if proc.poll() is not None:
            tail = log_tail(log_path)
            stop_server(server)
            raise RuntimeError(
                f"{name} exited with {proc.returncode} before /health answered:\n{tail}"
            )
        if time.perf_counter() - t0 > limit:
            tail = log_tail(log_path)
            stop_server(server)
            raise RuntimeError(f"{name}: no 200 from /health within {limit:.0f} s:\n{tail}")
        time.sleep(interval)


def stop_server(server: Server) -> None:
    tree = process_tree(server.proc.pid)
    for sig, wait_s in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(server.proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            server.proc.wait(wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    # Descendants that left the session or outlived the parent are still ours.
    deadline = time.monotonic() + 5
    for pid in tree[1:]:
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if Path(f"/proc/{pid}").exists():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    shutil.rmtree(server.tmp, ignore_errors=True)


@contextmanager
def measuring(result: ServerResult, key: str) -> Iterator[None]:
    """One figure failing (an endpoint labbook lacks, say) leaves the others."""
    try:
        yield
    except Exception as e:
        log(f"  {key} failed: {e!r}")
        result.errors[key] = f"{e!r}\n{traceback.format_exc(limit=4)}"


# --------------------------------------------------------------------------- client figures


def client_for(url: str) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=url)


def now_ms() -> int:
    return int(time.time() * 1000)


def measure_health_rtt(url: str, sizes: Sizes) -> Figure:
    """The floor under every figure below: a bare GET through `requests`, the
    HTTP library MLflow's client uses, on a kept-alive connection."""
    import requests

    with requests.Session() as session:
        samples = timed_ms(
            lambda: session.get(f"{url}/health", timeout=10).raise_for_status(),
            sizes.health_calls,
            warmup=10,
        )
    return Figure("ms", samples, "GET /health via requests.Session, kept-alive")


def measure_log_metric(client: MlflowClient, experiment_id: str, sizes: Sizes) -> Figure:
    run_id = client.create_run(experiment_id, run_name="log_metric").info.run_id
    step = iter(range(10**9))
    samples = timed_ms(
        lambda: client.log_metric(run_id, "loss", random.random(), step=next(step)),
        sizes.log_metric_calls,
        warmup=sizes.log_metric_warmup,
    )
    return Figure("ms", samples, f"MlflowClient.log_metric, {sizes.log_metric_calls} calls")


def metric_batch(key: str, first_step: int, n: int) -> list[Any]:
    from mlflow.entities import Metric

    ts = now_ms()
    return [Metric(key, random.random(), ts, first_step + i) for i in range(n)]


def measure_log_batch(client: MlflowClient, experiment_id: str, sizes: Sizes) -> Figure:
    run_id = client.create_run(experiment_id, run_name="log_batch").info.run_id
    n = sizes.batch_metrics
    # Built ahead so the timing holds the client's serialisation and the round
    # trip, not the construction of Metric objects; steps never repeat.
    batches = [metric_batch("batch", i * n, n) for i in range(sizes.batch_calls + 2)]
    it = iter(batches)
    samples = timed_ms(
        lambda: client.log_batch(run_id, metrics=next(it)), sizes.batch_calls, warmup=2
    )
    return Figure("ms", samples, f"log_batch of {n} metrics, one key, distinct steps")


def measure_metric_history(client: MlflowClient, experiment_id: str, sizes: Sizes) -> Figure:
    run_id = client.create_run(experiment_id, run_name="history").info.run_id
    n, chunk = sizes.history_points, sizes.batch_metrics
    for first in range(0, n, chunk):
        client.log_batch(run_id, metrics=metric_batch("history", first, min(chunk, n - first)))
    got = len(client.get_metric_history(run_id, "history"))
    if got != n:
        raise AssertionError(f"get_metric_history returned {got} points, logged {n}")
    samples = timed_ms(
        lambda: client.get_metric_history(run_id, "history"), sizes.history_calls, warmup=2
    )
    return Figure("ms", samples, f"{n}-point series, whole history")


def seeded_values(i: int) -> tuple[str, str, float, float]:
    """Run i's (lr, batch_size, acc, loss): a function of i alone, so both
    servers hold the same data and the expected match count is known. lr
    cycles through LRS; acc walks the golden-ratio sequence, uniform over
    [0, 1) within each lr, so 2% match (201 of 10,000) without sampling noise."""
    rng = random.Random(i)
    acc = ((i // len(LRS)) * 0.6180339887498949 + 0.5) % 1.0
    return LRS[i % len(LRS)], str(rng.choice((32, 64, 128, 256))), acc, rng.random()


def retrying(errors: list[str], call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Seeding is setup, not a figure: a failed request is counted and retried
    (the client's own retries are off, see main)."""
    attempts = 5
    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except Exception as e:
            errors.append(repr(e)[:300])
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


def seed_runs(url: str, experiment_id: str, n: int, threads: int) -> tuple[float, list[str]]:
    """Creates n runs, each with 2 params and 2 metrics: create_run then one
    log_batch, from `threads` client threads (16 requests in flight keep
    MLflow's 4 workers busy; serial seeding would take ~25 min there)."""
    from mlflow.entities import Metric, Param

    errors: list[str] = []
    done = 0
    lock = threading.Lock()
    t0 = time.perf_counter()
    last_report = t0

    def seed(worker: int) -> None:
        nonlocal done, last_report
        client = client_for(url)
        for i in range(worker, n, threads):
            lr, bs, acc, loss = seeded_values(i)
            run = retrying(errors, client.create_run, experiment_id, run_name=f"r{i}")
            ts = now_ms()
            retrying(
                errors,
                client.log_batch,
                run.info.run_id,
                metrics=[Metric("acc", acc, ts, 0), Metric("loss", loss, ts, 0)],
                params=[Param("lr", lr), Param("batch_size", bs)],
            )
            with lock:
                done += 1
                now = time.perf_counter()
                if now - last_report >= 15 or done == n:
                    last_report = now
                    rate = done / (now - t0)
                    log(f"  seeded {done:,}/{n:,} runs, {rate:,.0f} runs/s")

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(seed, w) for w in range(threads)]:
            future.result()
    return time.perf_counter() - t0, errors


def seed_search(
    client: MlflowClient, url: str, n_runs: int, sizes: Sizes, result: ServerResult
) -> str:
    """Seeds an experiment for the searches; its id."""
    experiment_id = client.create_experiment(f"search-{n_runs}")
    log(f"  seeding {n_runs:,} runs with {sizes.seed_threads} threads")
    seconds, errors = seed_runs(url, experiment_id, n_runs, sizes.seed_threads)
    result.add(
        "seed_runs",
        Figure(
            "s",
            [seconds],
            f"{n_runs} × (create_run + log_batch of 2 params, 2 metrics), {sizes.seed_threads} threads",
            {
                "runs": n_runs,
                "runs_per_s": n_runs / seconds,
                "failed_requests": len(errors),
                "first_errors": errors[:5],
            },
        ),
    )
    return experiment_id


def seeded_matches(n_runs: int) -> int:
    """How many of n_runs seeded runs SEARCH_FILTER matches."""
    return sum(1 for i in range(n_runs) if (v := seeded_values(i))[0] == "0.01" and v[2] > 0.9)


def measure_search(client: MlflowClient, experiment_id: str, n_runs: int, sizes: Sizes) -> Figure:
    expected = seeded_matches(n_runs)
    returned: list[int] = []

    def search() -> None:
        runs = client.search_runs([experiment_id], SEARCH_FILTER, max_results=1000)
        returned.append(len(runs))

    samples = timed_ms(search, sizes.search_calls, warmup=2)
    if set(returned) != {expected}:
        raise AssertionError(
            f"search_runs returned {sorted(set(returned))} runs, expected {expected}"
        )
    return Figure(
        "ms",
        samples,
        f"{SEARCH_FILTER!r} over {n_runs} runs, max_results=1000",
        {"runs": n_runs, "matches": expected},
    )


# --------------------------------------------------------------------------- raw HTTP figures

# The same requests as the client figures above, with the JSON bodies the
# MLflow client sends (as its message_to_json writes them), sent with
# http.client over one kept-alive connection: no MLflow client, no `requests`,
# so what is left is the server and the loopback. Request bodies are encoded
# ahead of the clock (json.dumps of 1,000 metrics alone takes ~1-2 ms here; its
# median goes in the figure as encode_ms); answers are read whole and, where
# they carry data, parsed with json.loads inside it, as any client must (that
# median goes in as parse_ms). These requests are not in the endpoint table.


class RawHTTP:
    """One kept-alive `http.client` connection with TCP_NODELAY set, so the
    client side is not held back by Nagle's algorithm. Each figure opens its
    own (an idle connection may be dropped by the server between figures); if
    an answer closes it, the next call opens another: connects counts them."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=60)
        self.connects = 0

    def __enter__(self) -> RawHTTP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()

    def call(self, method: str, path: str, body: bytes | None = None) -> bytes:
        if self.conn.sock is None:
            self.conn.connect()
            self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connects += 1
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            where = path.split("?", 1)[0]
            raise RuntimeError(f"{method} {where} answered {response.status}: {data[:300]!r}")
        return data


def encoded(bodies: list[dict[str, Any]]) -> tuple[list[bytes], float]:
    """The bodies as `requests` would send them (json.dumps, default separators),
    and the median time one took to encode, ms."""
    out, times = [], []
    for body in bodies:
        t = time.perf_counter()
        out.append(json.dumps(body).encode())
        times.append((time.perf_counter() - t) * 1e3)
    return out, statistics.median(times)


def raw_figure(raw: RawHTTP, samples: list[float], note: str, **extra: Any) -> Figure:
    return Figure("ms", samples, note, {"connects": raw.connects, **extra})


def measure_raw_health(url: str, sizes: Sizes) -> Figure:
    with RawHTTP(url) as raw:
        samples = timed_ms(lambda: raw.call("GET", "/health"), sizes.health_calls, warmup=10)
        return raw_figure(raw, samples, "GET /health via http.client, kept-alive, TCP_NODELAY")


def measure_raw_log_metric(
    url: str, client: MlflowClient, experiment_id: str, sizes: Sizes
) -> Figure:
    run_id = client.create_run(experiment_id, run_name="raw log_metric").info.run_id
    n = sizes.log_metric_warmup + sizes.log_metric_calls
    bodies, encode_ms = encoded(
        [
            {
                "run_uuid": run_id,
                "key": "loss",
                "value": random.random(),
                "timestamp": now_ms(),
                "step": step,
                "run_id": run_id,
            }
            for step in range(n)
        ]
    )
    it = iter(bodies)
    with RawHTTP(url) as raw:
        samples = timed_ms(
            lambda: raw.call("POST", "/api/2.0/mlflow/runs/log-metric", next(it)),
            sizes.log_metric_calls,
            warmup=sizes.log_metric_warmup,
        )
        return raw_figure(
            raw,
            samples,
            f"POST runs/log-metric via http.client, {sizes.log_metric_calls} calls",
            encode_ms=encode_ms,
        )


def measure_raw_log_batch(
    url: str, client: MlflowClient, experiment_id: str, sizes: Sizes
) -> Figure:
    run_id = client.create_run(experiment_id, run_name="raw log_batch").info.run_id
    n = sizes.batch_metrics
    ts = now_ms()
    bodies, encode_ms = encoded(
        [
            {
                "run_id": run_id,
                "metrics": [
                    {"key": "batch", "value": random.random(), "timestamp": ts, "step": i * n + j}
                    for j in range(n)
                ],
            }
            for i in range(sizes.batch_calls + 2)
        ]
    )
    it = iter(bodies)
    with RawHTTP(url) as raw:
        samples = timed_ms(
            lambda: raw.call("POST", "/api/2.0/mlflow/runs/log-batch", next(it)),
            sizes.batch_calls,
            warmup=2,
        )
        return raw_figure(
            raw,
            samples,
            f"POST runs/log-batch of {n} metrics via http.client, one key, distinct steps",
            encode_ms=encode_ms,
        )


def parsed(
    raw: RawHTTP, parse_times: list[float], method: str, path: str, body: bytes | None
) -> Any:
    """The answer to one request, read whole and parsed; the parse is timed."""
    data = raw.call(method, path, body)
    t = time.perf_counter()
    answer = json.loads(data)
    parse_times.append((time.perf_counter() - t) * 1e3)
    return answer


def measure_raw_metric_history(
    url: str, client: MlflowClient, experiment_id: str, sizes: Sizes
) -> Figure:
    run_id = client.create_run(experiment_id, run_name="raw history").info.run_id
    n, chunk = sizes.history_points, sizes.batch_metrics
    for first in range(0, n, chunk):
        client.log_batch(run_id, metrics=metric_batch("history", first, min(chunk, n - first)))
    # The query string the client sends (it passes its JSON body as params).
    path = "/api/2.0/mlflow/metrics/get-history?" + urlencode(
        {"run_uuid": run_id, "metric_key": "history", "run_id": run_id, "max_results": 25000}
    )
    parse_times: list[float] = []

    def get() -> None:
        answer = parsed(raw, parse_times, "GET", path, None)
        got = len(answer.get("metrics", []))
        if got != n or answer.get("next_page_token"):
            raise AssertionError(f"get-history returned {got} points of {n}, or a next page")

    with RawHTTP(url) as raw:
        samples = timed_ms(get, sizes.history_calls, warmup=2)
        return raw_figure(
            raw,
            samples,
            f"GET metrics/get-history via http.client, {n}-point series, body parsed",
            parse_ms=statistics.median(parse_times),
        )


def measure_raw_search(url: str, experiment_id: str, n_runs: int, sizes: Sizes) -> Figure:
    expected = seeded_matches(n_runs)
    body = {
        "experiment_ids": [experiment_id],
        "run_view_type": "ACTIVE_ONLY",
        "filter": SEARCH_FILTER,
        "max_results": 1000,
    }
    (payload,), encode_ms = encoded([body])
    parse_times: list[float] = []

    def search() -> None:
        answer = parsed(raw, parse_times, "POST", "/api/2.0/mlflow/runs/search", payload)
        got = len(answer.get("runs", []))
        if got != expected or answer.get("next_page_token"):
            raise AssertionError(f"runs/search returned {got} runs, expected {expected}")

    with RawHTTP(url) as raw:
        samples = timed_ms(search, sizes.search_calls, warmup=2)
        return raw_figure(
            raw,
            samples,
            f"POST runs/search via http.client, {SEARCH_FILTER!r} over {n_runs} runs, "
            "max_results=1000, body parsed",
            runs=n_runs,
            matches=expected,
            encode_ms=encode_ms,
            parse_ms=statistics.median(parse_times),
        )


# --------------------------------------------------------------------------- concurrent clients


def concurrent_client(
    url: str,
    run_id: str,
    seconds: float,
    batch: int,
    go: Any,
    ready: Any,
    results: Any,
) -> None:
    """One of the concurrent clients, in a process of its own (threads would
    serialise on the GIL and hide the server): log_batch of `batch` points,
    steps increasing, until the time is up; any exception is an error."""
    from mlflow.entities import Metric

    record_endpoints()
    client = client_for(url)
    errors: list[str] = []
    error_count = 0
    # Connects and pulls in the client's lazy imports before the clock starts.
    try:
        client.get_run(run_id)
    except Exception as e:
        error_count += 1
        errors.append(f"warm-up get_run: {e!r}"[:300])
    ready.put(run_id)
    go.wait()
    cpu0 = time.process_time()
    acked = calls = 0
    latencies: list[float] = []
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        ts = now_ms()
        first = calls * batch
        metrics = [Metric("m", float(first + j), ts, first + j) for j in range(batch)]
        calls += 1
        t = time.perf_counter()
        try:
            client.log_batch(run_id, metrics=metrics)
        except Exception as e:
            error_count += 1
            if len(errors) < 5:
                errors.append(repr(e)[:300])
            # A refusing server would otherwise spin this loop flat out.
            time.sleep(0.01)
            continue
        latencies.append((time.perf_counter() - t) * 1e3)
        acked += batch
    results.put(
        {
            "run_id": run_id,
            "acked": acked,
            "calls": calls,
            "errors": error_count,
            "first_errors": errors,
            "elapsed": time.perf_counter() - t0,
            "cpu_s": time.process_time() - cpu0,
            "latencies": latencies,
            "endpoints": list(ENDPOINTS.items()),
        }
    )


def measure_concurrent(
    client: MlflowClient, url: str, experiment_id: str, sizes: Sizes, result: ServerResult
) -> None:
    n = sizes.clients
    run_ids = [client.create_run(experiment_id, run_name=f"c{i}").info.run_id for i in range(n)]
    # spawn, not fork: this process has threads and a live requests session.
    ctx = multiprocessing.get_context("spawn")
    go, ready, results = ctx.Event(), ctx.Queue(), ctx.Queue()
    procs = [
        ctx.Process(
            target=concurrent_client,
            args=(url, rid, sizes.concurrent_seconds, sizes.concurrent_batch, go, ready, results),
            daemon=True,
        )
        for rid in run_ids
    ]
    log(f"  starting {n} client processes")
    for p in procs:
        p.start()
    try:
        # Importing mlflow 32 times over on two cores takes a while.
        for _ in procs:
            ready.get(timeout=600)
        log(f"  {n} clients logging for {sizes.concurrent_seconds:g} s")
        go.set()
        outcomes = [results.get(timeout=sizes.concurrent_seconds + 600) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    for o in outcomes:
        ENDPOINTS.update(dict(o["endpoints"]))
    wall = max(o["elapsed"] for o in outcomes)
    acked = sum(o["acked"] for o in outcomes)
    errors = sum(o["errors"] for o in outcomes)
    latencies = sorted(x for o in outcomes for x in o["latencies"])

    log("  verifying every acknowledged point is stored")
    missing = extra = 0
    stored_total = 0
    for o in outcomes:
        history = client.get_metric_history(o["run_id"], "m")
        # Each point's value is its step, so a stored point is checked whole.
        stored = len({m.step for m in history if m.value == m.step})
        stored_total += stored
        missing += max(0, o["acked"] - stored)
        # A batch that raised on the client may still have been stored.
        extra += max(0, stored - o["acked"])
    label = f"{n} clients × {sizes.concurrent_seconds:g} s, log_batch of {sizes.concurrent_batch}"
    result.add(
        "concurrent_points_per_s",
        Figure(
            "points/s",
            [acked / wall],
            label,
            {
                "acked_points": acked,
                "stored_points": stored_total,
                "wall_s": wall,
                "calls": sum(o["calls"] for o in outcomes),
            },
        ),
    )
    if latencies:
        result.add(
            "concurrent_latency",
            Figure(
                "ms",
                latencies,
                label + ": per-call latency",
                {"p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]},
            ),
        )
    first_errors = [e for o in outcomes for e in o["first_errors"]][:5]
    result.add(
        "concurrent_errors", Figure("count", [errors], label, {"first_errors": first_errors})
    )
    result.add(
        "concurrent_missing",
        Figure(
            "count",
            [missing],
            "acknowledged points not in get_metric_history",
            {"stored_but_not_acked": extra},
        ),
    )


# --------------------------------------------------------------------------- one server


def measure_server(name: str, args: argparse.Namespace, sizes: Sizes) -> ServerResult:
    result = ServerResult()
    result.info["command"] = " ".join(server_command(name, args, Path("TMP"), 0))
    ENDPOINTS.clear()

    # Fresh starts; the last server stays up for everything else.
    startups: list[float] = []
    server: Server | None = None
    for i in range(sizes.starts[name]):
        if server is not None:
            stop_server(server)
        log(f"{name}: start {i + 1}/{sizes.starts[name]}")
        server = start_server(name, args)
        startups.append(server.startup_s)
        log(f"  /health answered after {server.startup_s:.3f} s")
    assert server is not None
    result.add(
        "startup",
        Figure(
            "s", startups, "Popen → first 200 from GET /health, empty store in a fresh temp dir"
        ),
    )

    try:
        time.sleep(3)  # idle: let workers and background jobs settle
        mem = tree_memory(server.proc.pid)
        result.info["idle_processes"] = mem.processes
        result.add("idle_rss", Figure("MB", [mem.rss_mb], "RSS summed over the process tree"))
        if mem.pss_mb is not None:
            result.add("idle_pss", Figure("MB", [mem.pss_mb], "PSS summed over the process tree"))
        result.add("idle_processes", Figure("count", [len(mem.processes)], "processes in the tree"))
        log(
            f"  idle: {len(mem.processes)} processes, RSS {mem.rss_mb:,.0f} MB, "
            f"PSS {mem.pss_mb or float('nan'):,.0f} MB"
        )

        url = server.url
        client = client_for(url)
        with measuring(result, "health_rtt"):
            result.add("health_rtt", measure_health_rtt(url, sizes))
        with measuring(result, "raw_health_rtt"):
            result.add("raw_health_rtt", measure_raw_health(url, sizes))
        experiment_id = client.create_experiment("bench")
        # Each client figure, then the same requests as raw HTTP.
        for key, measure in (
            ("log_metric", measure_log_metric),
            ("raw_log_metric", partial(measure_raw_log_metric, url)),
            ("log_batch_1000", measure_log_batch),
            ("raw_log_batch_1000", partial(measure_raw_log_batch, url)),
            ("metric_history_3000", measure_metric_history),
            ("raw_metric_history_3000", partial(measure_raw_metric_history, url)),
        ):
            log(f"  {key}")
            with measuring(result, key):
                result.add(key, measure(client, experiment_id, sizes))
        with measuring(result, "concurrent"):
            log("  concurrent clients")
            measure_concurrent(client, url, client.create_experiment("concurrent"), sizes, result)
        n_runs = sizes.runs[name]
        search_experiment: str | None = None
        with measuring(result, "search_runs"):
            log("  search_runs")
            search_experiment = seed_search(client, url, n_runs, sizes, result)
            result.add("search_runs", measure_search(client, search_experiment, n_runs, sizes))
        if search_experiment is not None:
            with measuring(result, "raw_search_runs"):
                log("  raw_search_runs")
                result.add(
                    "raw_search_runs", measure_raw_search(url, search_experiment, n_runs, sizes)
                )

        mem = tree_memory(server.proc.pid)
        result.add("memory_after_rss", Figure("MB", [mem.rss_mb], "after all of the above"))
        if mem.pss_mb is not None:
            result.add("memory_after_pss", Figure("MB", [mem.pss_mb], "after all of the above"))
        if server.proc.poll() is not None:
            result.errors["server"] = f"exited with {server.proc.returncode}"
        result.info["log_tail"] = log_tail(server.log_path, 30)
    finally:
        result.endpoints = endpoint_table()
        stop_server(server)
    return result


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    target: str = "–"
    check: Callable[[float], bool] | None = None
    # "lower" or "higher" is better; None: no ratio (counts)
    better: str | None = "lower"


def rows_for(config: dict[str, Any]) -> list[Row]:
    runs = config["runs"]
    runs_text = f"{runs['labbook']:,}" + (
        "" if runs["labbook"] == runs["mlflow"] else f" (mlflow: {runs['mlflow']:,})"
    )
    conc = f"{config['clients']} clients × {config['concurrent_seconds']:g} s"
    return [
        Row("startup", "start → `/health` answers", "≤ 0.2 s", lambda m: m <= 0.2),
        Row("idle_pss", "idle memory, PSS", "≤ 50 MB", lambda m: m <= 50),
        Row("idle_rss", "idle memory, RSS summed"),
        Row("idle_processes", "processes", better=None),
        Row("health_rtt", "`GET /health` round trip (floor)"),
        Row("raw_health_rtt", "`GET /health`, raw HTTP (floor)"),
        Row("log_metric", "`log_metric` round trip", "≤ 1 ms", lambda m: m <= 1),
        Row("raw_log_metric", "`log_metric`, raw HTTP", "≤ 1 ms", lambda m: m <= 1),
        Row("log_batch_1000", "`log_batch`, 1,000 metrics", "≤ 5 ms", lambda m: m <= 5),
        Row(
            "raw_log_batch_1000",
            "`log_batch`, 1,000 metrics, raw HTTP",
            "≤ 5 ms",
            lambda m: m <= 5,
        ),
        Row(
            "metric_history_3000",
            "`get_metric_history`, 3,000 points",
            "≤ 5 ms",
            lambda m: m <= 5,
        ),
        Row(
            "raw_metric_history_3000",
            "`get_metric_history`, 3,000 points, raw HTTP",
            "≤ 5 ms",
            lambda m: m <= 5,
        ),
        Row(
            "search_runs",
            f"`search_runs`, metric + param filter, {runs_text} runs",
            "≤ 50 ms",
            lambda m: m <= 50,
        ),
        Row(
            "raw_search_runs",
            f"`search_runs`, metric + param filter, {runs_text} runs, raw HTTP",
            "≤ 50 ms",
            lambda m: m <= 50,
        ),
        Row("seed_runs", f"seeding {runs_text} runs, {config['seed_threads']} threads"),
        Row("concurrent_points_per_s", f"{conc}: points/s acknowledged", better="higher"),
        Row("concurrent_latency", f"{conc}: `log_batch` of 100 latency"),
        Row("concurrent_errors", f"{conc}: errors", "0", lambda m: m == 0, better=None),
        Row(
            "concurrent_missing",
            f"{conc}: acknowledged points missing",
            "0",
            lambda m: m == 0,
            better=None,
        ),
        Row("memory_after_pss", "memory after the run, PSS"),
    ]


def number(v: float) -> str:
    if v == 0 or abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def cell(fig: dict[str, Any] | None) -> str:
    if fig is None:
        return "–"
    if fig["unit"] == "count":
        return f"{fig['median']:,.0f}"
    unit = " pts/s" if fig["unit"] == "points/s" else " " + fig["unit"]
    text = number(fig["median"]) + unit
    if fig["n"] > 1:
        text += f" ({number(fig['min'])}–{number(fig['max'])})"
    return text


def markdown(report: dict[str, Any]) -> str:
    servers = report["servers"]

    def fig(server: str, key: str) -> dict[str, Any] | None:
        return servers.get(server, {}).get("figures", {}).get(key)

    lines = [
        f"MLflow server vs labbook serve · {report['machine']['node']} · "
        f"{report['machine']['cpus']} CPUs · mlflow client {report['machine']['mlflow']}",
        "",
        "medians (min–max); ratio: how many times better labbook is; load average "
        f"{report['machine']['loadavg_start'][0]:.1f} at the start, "
        f"{report['machine'].get('loadavg_end', [float('nan')])[0]:.1f} at the end",
        "",
        "raw HTTP: the same requests and JSON bodies as the MLflow client's, sent with "
        "http.client over one kept-alive connection (TCP_NODELAY), bodies encoded ahead, "
        "answers read whole and json.loads-ed; the targets are for the server answering",
        "",
        "| figure | mlflow | labbook | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    missed = []
    for row in rows_for(report["config"]):
        m, lb = fig("mlflow", row.key), fig("labbook", row.key)
        ratio = "–"
        if m and lb and row.better and m["median"] > 0 and lb["median"] > 0:
            r = m["median"] / lb["median"] if row.better == "lower" else lb["median"] / m["median"]
            ratio = f"{r:,.1f}×" if r < 100 else f"{r:,.0f}×"
        met = "–"
        if row.check is not None and lb is not None:
            met = "yes" if row.check(lb["median"]) else "**NO**"
        if row.check is not None and met != "yes":
            missed.append(row.key)
        lines.append(f"| {row.label} | {cell(m)} | {cell(lb)} | {ratio} | {row.target} | {met} |")
    if missed:
        lines.append(f"\nlabbook missed or did not measure: {', '.join(missed)}")
    for name, data in servers.items():
        if data.get("reused_from"):
            lines.append(f"\n{name}: figures reused from {data['reused_from']}")
            then = data.get("reused_config", {})
            differ = [
                f"{k} {then.get(k)!r} (now {v!r})"
                for k, v in report["config"].items()
                if then.get(k) != v
            ]
            if differ:
                lines.append(f"measured with a different setup: {'; '.join(differ)}")
        for key, err in data.get("errors", {}).items():
            first = err.splitlines()[0] if err else ""
            lines.append(f"\n{name} · {key} failed: {first[:400]}")
    lines += ["", "REST requests the client made (status: count)", ""]
    lines += ["| request | " + " | ".join(servers) + " |", "|---" * (len(servers) + 1) + "|"]
    for request, by_server in endpoint_matrix(servers).items():
        counts = [
            ", ".join(f"{status}: {n:,}" for status, n in by_server.get(name, {}).items()) or "–"
            for name in servers
        ]
        lines.append(f"| `{request}` | " + " | ".join(counts) + " |")
    return "\n".join(lines)


def endpoint_matrix(servers: dict[str, Any]) -> dict[str, dict[str, dict[str, int]]]:
    """request → server → status → count, requests in path order."""
    matrix: dict[str, dict[str, dict[str, int]]] = {}
    for name, data in servers.items():
        for e in data.get("endpoints", []):
            request = f"{e['method']} {e['path']}"
            matrix.setdefault(request, {}).setdefault(name, {})[str(e["status"])] = e["count"]
    return dict(sorted(matrix.items(), key=lambda kv: kv[0].split(" ", 1)[1]))


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--servers", default="labbook,mlflow", help="comma-separated: labbook,mlflow")
    p.add_argument("--labbook-bin", type=Path, default=REPO / "target/release/labbook")
    p.add_argument("--mlflow-bin", type=Path, default=REPO / ".venv-mlflow/bin/mlflow")
    p.add_argument("--runs", type=int, help="runs seeded for search_runs (10,000; --quick 300)")
    p.add_argument("--mlflow-runs", type=int, help="runs seeded on mlflow, if not --runs")
    p.add_argument("--concurrent-seconds", type=float, help="60; --quick 5")
    p.add_argument("--clients", type=int, help="concurrent client processes (32; --quick 4)")
    p.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    p.add_argument("--out", type=Path, default=REPO / "bench/out/mlflow_server.json")
    p.add_argument(
        "--reuse",
        type=Path,
        help="an earlier --out file: servers not measured now are taken from it",
    )
    args = p.parse_args()
    # Absolute, because each server runs in its temporary directory.
    args.labbook_bin = args.labbook_bin.absolute()
    args.mlflow_bin = args.mlflow_bin.absolute()
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(args.servers) - set(SERVERS)
    if unknown:
        p.error(f"unknown server(s): {', '.join(sorted(unknown))}")
    return args


def main() -> None:
    args = parse_args()
    args.server_env = dict(os.environ)
    os.environ.update(CLIENT_ENV)
    from importlib.metadata import version

    record_endpoints()
    sizes = sizes_from_args(args)
    config = {
        "quick": args.quick,
        "runs": sizes.runs,
        "clients": sizes.clients,
        "concurrent_seconds": sizes.concurrent_seconds,
        "seed_threads": sizes.seed_threads,
        "starts": sizes.starts,
        "client_env": CLIENT_ENV,
    }
    report: dict[str, Any] = {
        "bench": "mlflow_server",
        "when": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {
            "node": platform.node(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "mlflow": version("mlflow"),
            # The machine may be shared (compiles): the load says how much.
            "loadavg_start": os.getloadavg(),
        },
        "config": config,
        "servers": {},
    }
    if args.reuse:
        earlier = json.loads(args.reuse.read_text())
        for name, data in earlier.get("servers", {}).items():
            if name not in args.servers:
                report["servers"][name] = {
                    **data,
                    "reused_from": str(args.reuse),
                    "reused_config": earlier.get("config", {}),
                }

    for name in args.servers:
        binary = args.labbook_bin if name == "labbook" else args.mlflow_bin
        try:
            if not binary.exists():
                raise FileNotFoundError(f"{binary} not found")
            result = measure_server(name, args, sizes)
            report["servers"][name] = result.to_json()
        except Exception as e:
            log(f"{name} failed: {e!r}")
            report["servers"][name] = {
                "figures": {},
                "errors": {"server": f"{e!r}\n{traceback.format_exc(limit=4)}"},
                "endpoints": endpoint_table(),
            }

    report["machine"]["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(markdown(report))
    print(f"\nJSON: {args.out}")


if __name__ == "__main__":
    main()
