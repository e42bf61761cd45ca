"""The team server, side by side: two `labbook serve --store postgresql://…
--artifacts s3://…` replicas and two `mlflow server --backend-store-uri
postgresql://… --artifacts-destination s3://…` processes, on the same
throwaway PostgreSQL cluster (a database each) and the same s3s-fs, driven
by the same `MlflowClient` code.

- Ingest: N client processes (64) log for S seconds (60), `log_batch` of 100
  points each call, client i through replica i mod 2; then every
  acknowledged point is looked for in `get_metric_history`, once.
- Search: runs seeded over HTTP through both replicas (create_run +
  log_batch of 2 params and 2 metrics each, raw requests from a few
  processes), then `runs/search` with a filter (raw HTTP, one kept-alive
  connection) and, for labbook, the dashboard's first runs page.
- Idle memory of one replica (its process tree, RSS and PSS).

    .venv-mlflow/bin/python bench/team_bench.py [--clients 64] [--seconds 60]
        [--labbook-runs 100000] [--mlflow-runs 2000] [--markdown FILE]

Needs psycopg2 and boto3 in the interpreter (mlflow server's database and
S3 clients: bench/team-requirements.txt), PostgreSQL's initdb (the
machine's), and s3s-fs (`make .tools/bin/s3s-fs`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
# Seeding counts and retries its own failures; a figure must not hide them.
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "120"

from mlflow_server import (  # noqa: E402
    SEARCH_FILTER,
    RawHTTP,
    Server,
    client_for,
    concurrent_client,
    free_port,
    health_status,
    log_tail,
    seeded_matches,
    seeded_values,
    stop_server,
    timed_ms,
    tree_cpu_seconds,
    tree_memory,
)
from pg_server import PgCluster, postgres_bin  # noqa: E402
from s3_server import S3Server, s3s_binary  # noqa: E402

LABBOOK = Path(os.environ.get("LABBOOK_BIN", str(REPO / "target/release/labbook")))


def log(message: str) -> None:
    print(f"[team-bench] {message}", file=sys.stderr, flush=True)


def start(name: str, cmd: list[str], env: dict[str, str], tmp: Path, port: int) -> Server:
    log_path = tmp / f"{name}-{port}.log"
    with open(log_path, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(name, proc, tmp, port, log_path, 0.0)
    while time.perf_counter() - t0 < 180:
        if health_status(port, timeout=1.0) == 200:
            server.startup_s = time.perf_counter() - t0
            return server
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"{name} did not start:\n{log_tail(log_path)}")


def replicas(name: str, pg: PgCluster, s3: S3Server, tmp: Path, count: int = 2) -> list[Server]:
    database = pg.create_database(name)
    s3.make_bucket("bench")
    env = {**os.environ, **s3.env()}
    out = []
    for _ in range(count):
        port = free_port()
        if name == "labbook":
            cmd = [
                str(LABBOOK),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--artifacts",
                "s3://bench/labbook",
            ]
            env_one = {**env, "LABBOOK_STORE": database}
        else:
            cmd = [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--backend-store-uri",
                database.replace("postgresql://", "postgresql+psycopg2://"),
                "--artifacts-destination",
                "s3://bench/mlflow",
            ]
            env_one = dict(env)
        out.append(start(name, cmd, env_one, tmp, port))
    return out


def postmaster_pid(pg: PgCluster) -> int:
    return int((pg.data / "postmaster.pid").read_text().split()[0])


def ingest(
    servers: list[Server], pg: PgCluster, clients: int, seconds: float, batch: int
) -> dict[str, Any]:
    urls = [s.url for s in servers]
    client = client_for(urls[0])
    experiment = client.create_experiment(f"ingest-{time.time_ns()}")
    run_ids = [client.create_run(experiment, run_name=f"c{i}").info.run_id for i in range(clients)]
    ctx = multiprocessing.get_context("spawn")
    go, ready, results = ctx.Event(), ctx.Queue(), ctx.Queue()
    procs = [
        ctx.Process(
            target=concurrent_client,
            args=(urls[i % len(urls)], rid, seconds, batch, go, ready, results),
            daemon=True,
        )
        for i, rid in enumerate(run_ids)
    ]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            ready.get(timeout=900)
        log(f"  {clients} clients logging for {seconds:g} s through {len(urls)} replicas")
        # Where the CPU goes, per call: the clients' own (each measures its
        # own), the replicas' and PostgreSQL's (their process trees).
        server_cpu0 = sum(tree_cpu_seconds(s.proc.pid) for s in servers)
        pg_cpu0 = tree_cpu_seconds(postmaster_pid(pg))
        go.set()
        outcomes = [results.get(timeout=seconds + 900) for _ in procs]
        server_cpu = sum(tree_cpu_seconds(s.proc.pid) for s in servers) - server_cpu0
        pg_cpu = tree_cpu_seconds(postmaster_pid(pg)) - pg_cpu0
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    acked = sum(o["acked"] for o in outcomes)
    wall = max(o["elapsed"] for o in outcomes)
    missing = duplicated = 0
    for o in outcomes:
        history = client.get_metric_history(o["run_id"], "m")
        steps = [m.step for m in history if m.value == m.step]
        duplicated += len(steps) - len(set(steps))
        missing += max(0, o["acked"] - len(set(steps)))
    latencies = sorted(x for o in outcomes for x in o["latencies"])
    calls = max(1, sum(o["calls"] for o in outcomes))
    return {
        "cpu_ms_per_call": {
            "clients": sum(o["cpu_s"] for o in outcomes) * 1e3 / calls,
            "servers": server_cpu * 1e3 / calls,
            "postgres": pg_cpu * 1e3 / calls,
        },
        "points_per_s": acked / wall,
        "acked": acked,
        "errors": sum(o["errors"] for o in outcomes),
        "first_errors": [e for o in outcomes for e in o["first_errors"]][:3],
        "missing": missing,
        "duplicated": duplicated,
        "p50_ms": statistics.median(latencies) if latencies else None,
        "p99_ms": latencies[int(len(latencies) * 0.99)] if latencies else None,
    }


def seed_part(url: str, experiment: str, part: int, parts: int, runs: int) -> int:
    """Seeds runs part, part + parts, … below `runs` over one kept-alive
    connection, the requests the MLflow client sends for create_run and a
    log_batch of 2 params and 2 metrics, without its per-call cost (a
    process of its own: threads would wait on one another for the GIL);
    how many requests had to be repeated."""
    import http.client

    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    retried = 0

    def call(path: str, body: dict[str, Any]) -> dict[str, Any]:
        nonlocal conn, retried
        for attempt in range(5):
            try:
                conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
                answer = conn.getresponse()
                data = answer.read()
                if answer.status == 200:
                    return dict(json.loads(data))
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=120)
            retried += 1
            time.sleep(0.1 * 2**attempt)
        raise RuntimeError(f"{path} failed five times")

    for i in range(part, runs, parts):
        lr, bs, acc, loss = seeded_values(i)
        now = int(time.time() * 1000)
        run = call(
            "/api/2.0/mlflow/runs/create",
            {"experiment_id": experiment, "run_name": f"r{i}", "start_time": now},
        )["run"]["info"]["run_id"]
        call(
            "/api/2.0/mlflow/runs/log-batch",
            {
                "run_id": run,
                "metrics": [
                    {"key": "acc", "value": acc, "timestamp": now, "step": 0},
                    {"key": "loss", "value": loss, "timestamp": now, "step": 0},
                ],
                "params": [{"key": "lr", "value": lr}, {"key": "batch_size", "value": bs}],
            },
        )
    return retried


def seed(urls: list[str], experiment: str, runs: int, processes: int) -> tuple[float, int]:
    """Seeds `runs` runs from `processes` processes, spread over the
    replicas; the seconds it took and the requests repeated."""
    ctx = multiprocessing.get_context("spawn")
    t0 = time.perf_counter()
    with ctx.Pool(processes) as pool:
        retried = pool.starmap(
            seed_part,
            [(urls[p % len(urls)], experiment, p, processes, runs) for p in range(processes)],
        )
    return time.perf_counter() - t0, sum(retried)


def raw_search(url: str, experiment: str, runs: int, calls: int) -> list[float]:
    """`runs/search` as the MLflow client sends it (first page of up to
    1,000), over one kept-alive connection, its answer parsed and checked."""
    expected = seeded_matches(runs)
    body = json.dumps(
        {
            "experiment_ids": [experiment],
            "run_view_type": "ACTIVE_ONLY",
            "filter": SEARCH_FILTER,
            "max_results": 1000,
        }
    ).encode()

    def search() -> None:
        answer = json.loads(raw.call("POST", "/api/2.0/mlflow/runs/search", body))
        got = len(answer.get("runs", []))
        if got != min(expected, 1000) or bool(answer.get("next_page_token")) != (expected > 1000):
            raise AssertionError(f"runs/search returned {got} runs of {expected}")

    with RawHTTP(url) as raw:
        return timed_ms(search, calls, warmup=2)


def first_runs_page(url: str, project: str, reps: int) -> list[float]:
    path = f"{url}/api/v1/projects/{urllib.request.quote(project)}/runs?limit=50"

    def get() -> None:
        with urllib.request.urlopen(path, timeout=60) as answer:
            body = json.loads(answer.read())
            if not body.get("runs"):
                raise AssertionError(f"no runs on the first page: {str(body)[:200]}")

    return timed_ms(get, reps, warmup=1)


def idle_memory(server: Server) -> dict[str, Any]:
    time.sleep(5)
    memory = tree_memory(server.proc.pid)
    return {"rss_mb": memory.rss_mb, "pss_mb": memory.pss_mb, "processes": len(memory.processes)}


def measure(name: str, args: argparse.Namespace, pg: PgCluster, s3: S3Server) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"team-bench-{name}-"))
    servers = replicas(name, pg, s3, tmp)
    urls = [s.url for s in servers]
    result: dict[str, Any] = {"startup_s": [s.startup_s for s in servers]}
    try:
        result["idle"] = idle_memory(servers[0])
        log(f"{name}: ingest")
        result["ingest"] = ingest(servers, pg, args.clients, args.seconds, args.batch)
        log(f"{name}: {json.dumps(result['ingest'])}")
        runs = args.labbook_runs if name == "labbook" else args.mlflow_runs
        client = client_for(urls[0])
        project = f"search-{runs}"
        experiment = client.create_experiment(project)
        log(f"{name}: seeding {runs:,} runs")
        seconds, retried = seed(urls, experiment, runs, args.seed_processes)
        log(f"{name}: seeded {runs:,} runs in {seconds:.0f} s")
        result["seed"] = {"runs": runs, "seconds": seconds, "repeated_requests": retried}
        # Asked of one replica: half of what it serves, the other wrote.
        result["search_ms"] = raw_search(urls[0], experiment, runs, args.search_calls)
        if name == "labbook":
            result["first_page_ms"] = first_runs_page(urls[0], project, args.search_calls)
    finally:
        for server in servers:
            stop_server(server)
    return result


def median(samples: list[float]) -> str:
    return f"{statistics.median(samples):,.1f} ({min(samples):,.1f}–{max(samples):,.1f})"


def markdown(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    lab, ml = results.get("labbook"), results.get("mlflow")
    rows = ["| workload | labbook | MLflow 3.17.2 | labbook ÷ MLflow |", "|---|---:|---:|---:|"]

    def pair(label: str, a: float | None, b: float | None, unit: str, higher: bool) -> None:
        ratio = ""
        if a and b:
            ratio = f"{(a / b if higher else b / a):,.1f}×"

        def shown(v: float | None) -> str:
            return "–" if v is None else f"{v:,.0f} {unit}"

        rows.append(f"| {label} | {shown(a)} | {shown(b)} | {ratio} |")

    def get(r: dict[str, Any] | None, *keys: str) -> Any:
        for key in keys:
            if r is None:
                return None
            r = r.get(key)
        return r

    pair(
        f"{args.clients} clients × {args.seconds:g} s, log_batch of {args.batch}, 2 replicas",
        get(lab, "ingest", "points_per_s"),
        get(ml, "ingest", "points_per_s"),
        "points/s",
        True,
    )
    for name, r in (("labbook", lab), ("MLflow", ml)):
        if r is None:
            continue
        i = r["ingest"]
        rows.append(
            f"| {name}: errors / acknowledged points missing / stored twice / p50 / p99 "
            f"| {i['errors']} / {i['missing']} / {i['duplicated']} / {i['p50_ms']:.1f} ms / "
            f"{i['p99_ms']:.1f} ms | | |"
        )
    for name, r in (("labbook", lab), ("MLflow", ml)):
        if r is None:
            continue
        cpu = r["ingest"]["cpu_ms_per_call"]
        rows.append(
            f"| {name}: CPU per call, clients / servers / PostgreSQL "
            f"| {cpu['clients']:.1f} / {cpu['servers']:.1f} / {cpu['postgres']:.1f} ms | | |"
        )
    if lab is not None and ml is not None:
        # With every process on the same cores, a call costs the machine the
        # sum of the three; the clients' share is the same whatever serves
        # them, so it bounds the ratio even for a server that cost nothing.
        ml_cpu, lab_cpu = ml["ingest"]["cpu_ms_per_call"], lab["ingest"]["cpu_ms_per_call"]
        rows.append(
            "| the ratio these cores allow: MLflow's CPU per call ÷ the clients' own "
            f"| | | {sum(ml_cpu.values()) / lab_cpu['clients']:,.1f}× |"
        )
    for name, r in (("labbook", lab), ("MLflow", ml)):
        if r is None:
            continue
        rows.append(
            f"| {name}: `runs/search` over {r['seed']['runs']:,} runs, first page of 1,000 "
            "(raw HTTP, ms) "
            f"| {median(r['search_ms'])} | | |"
        )
    if lab is not None and "first_page_ms" in lab:
        rows.append(
            f"| labbook: the dashboard's first runs page over {lab['seed']['runs']:,} runs (ms) "
            f"| {median(lab['first_page_ms'])} | | |"
        )
    for name, r in (("labbook", lab), ("MLflow", ml)):
        if r is None:
            continue
        idle = r["idle"]
        pss = f", PSS {idle['pss_mb']:.1f} MB" if idle["pss_mb"] is not None else ""
        rows.append(
            f"| {name}: one idle replica, {idle['processes']} process(es) | RSS "
            f"{idle['rss_mb']:.1f} MB{pss} | | |"
        )
    head = (
        f"# Team server: labbook vs MLflow on PostgreSQL and S3 ({datetime.date.today()})\n\n"
        f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        "PostgreSQL 15 (a throwaway cluster, fsync off for both), s3s-fs 0.14.1; "
        "made by `make bench-team` (bench/team_bench.py).\n\n"
    )
    return head + "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--labbook-runs", type=int, default=100_000)
    parser.add_argument("--mlflow-runs", type=int, default=2_000)
    parser.add_argument("--seed-processes", type=int, default=4)
    parser.add_argument("--search-calls", type=int, default=9)
    parser.add_argument("--servers", default="labbook,mlflow")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--json", type=Path, default=REPO / "bench/out/team_bench.json")
    args = parser.parse_args()
    pg_bin, s3_bin = postgres_bin(), s3s_binary()
    if pg_bin is None or s3_bin is None:
        sys.exit("needs PostgreSQL's initdb and s3s-fs (`make .tools/bin/s3s-fs`)")
    scratch = Path(tempfile.mkdtemp(prefix="team-bench-"))
    pg = PgCluster(pg_bin)
    s3 = S3Server(s3_bin, scratch / "s3", scratch / "s3.log")
    pg.start()
    s3.start()
    results: dict[str, dict[str, Any]] = {}
    try:
        for name in args.servers.split(","):
            results[name] = measure(name, args, pg, s3)
    finally:
        s3.stop()
        pg.remove()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    text = markdown(results, args)
    if args.markdown:
        args.markdown.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
