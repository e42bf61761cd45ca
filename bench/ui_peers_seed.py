"""Seeds the same curves into labbook and into MLflow for W10 (bench/ui_peers.sh).

W10 times the first chart of N runs x S steps of one metric ("loss") in each
tool's web UI. Both tools get identical data: run r's value at step s is
exp(-s / tau_r) + 0.05 + noise, with tau_r spread over the runs and seeded
Gaussian noise. Runs are laid out as if logged one after another, a point
every 50 ms: run r's step s has the timestamp base + 50 ms x (r x S + s).

    # labbook, through its Python SDK (run with .venv/bin/python):
    ui_peers_seed.py labbook --dir STORE --runs 100 --steps 100000 > labbook.json
    # MLflow: the experiment and runs through MLflow's client against a running
    # `mlflow server` (run with .venv-mlflow/bin/python) ...
    ui_peers_seed.py mlflow-runs --uri http://127.0.0.1:PORT --runs 100 --steps 100000 > mlflow.json
    # ... then, with that server stopped, the points by bulk SQL into its
    # SQLite store: logging 10M points through MLflow's API takes ~25 minutes.
    ui_peers_seed.py mlflow-metrics --db mlflow.db --ids mlflow.json --steps 100000
    # ... and (the default of ui_peers.sh, in MLflow's favour) ANALYZE it, or
    # --no-analyze to drop the statistics again, as MLflow leaves its store:
    ui_peers_seed.py mlflow-stats --db mlflow.db --analyze

Each subcommand prints JSON on stdout and progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

METRIC = "loss"
BASE_TS_MS = 1_700_000_000_000
STEP_MS = 50
PROJECT = "w10"
EXPERIMENT = "w10"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] seed: {message}", file=sys.stderr, flush=True)


def curve(run: int, runs: int, steps: int) -> tuple[Any, Any, Any]:
    """Steps, values and timestamps (ms) of run `run`: a noisy decaying loss."""
    import numpy as np

    step = np.arange(steps, dtype=np.int64)
    tau = steps * (0.1 + 0.4 * run / max(1, runs - 1))
    noise = np.random.default_rng(1000 + run).normal(0.0, 0.02, steps)
    value = np.exp(-step / tau) + 0.05 + noise
    ts_ms = BASE_TS_MS + (run * steps + step) * STEP_MS
    return step, value, ts_ms


def run_name(run: int) -> str:
    return f"run-{run:03d}"


def seed_labbook(args: argparse.Namespace) -> dict[str, Any]:
    import labbook

    ids = []
    t0 = time.perf_counter()
    for r in range(args.runs):
        run = labbook.init(
            project=PROJECT,
            name=run_name(r),
            dir=args.dir,
            system_metrics=False,
        )
        step, value, ts_ms = curve(r, args.runs, args.steps)
        run.log_series(METRIC, step, value, timestamps=ts_ms / 1000.0)
        run.finish()
        ids.append(run.id)
    log(f"labbook: {args.runs} runs x {args.steps} steps in {time.perf_counter() - t0:.1f} s")
    return {"project": PROJECT, "metric": METRIC, "run_ids": ids}


def seed_mlflow_runs(args: argparse.Namespace) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=args.uri)
    t0 = time.perf_counter()
    experiment_id = client.create_experiment(EXPERIMENT)

    def create(r: int) -> str:
        start = BASE_TS_MS + r * args.steps * STEP_MS
        return client.create_run(experiment_id, run_name=run_name(r), start_time=start).info.run_id

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(create, range(args.runs)))
    log(
        f"mlflow: experiment {experiment_id} and {args.runs} runs in {time.perf_counter() - t0:.1f} s"
    )
    return {"experiment_id": experiment_id, "metric": METRIC, "run_ids": ids}


def seed_mlflow_metrics(args: argparse.Namespace) -> dict[str, Any]:
    """Bulk-inserts the curves into MLflow's `metrics` and `latest_metrics`.

    Run after run, step after step: what logging the runs one after another
    leaves, and the order of the primary key ("key", timestamp, step, run_uuid,
    value, is_nan), so that B-tree only appends. Each run's rows are contiguous
    in the table, which is the layout MLflow reads fastest. The two secondary
    indexes on `metrics` are dropped during the insert and created again after
    it, with MLflow's own definitions read back from sqlite_master. The runs end
    FINISHED at their last point's timestamp, as set_terminated would leave them.
    """
    ids = json.loads(Path(args.ids).read_text())["run_ids"]
    runs = len(ids)
    steps = args.steps
    t0 = time.perf_counter()
    db = sqlite3.connect(args.db, isolation_level=None)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-1000000")  # KiB: 1 GB
    (count,) = db.execute("SELECT count(*) FROM metrics").fetchone()
    if count:
        raise SystemExit(f"{args.db}: metrics is not empty ({count} rows)")
    index_sql = [
        sql
        for (sql,) in db.execute(
            "SELECT sql FROM sqlite_master WHERE type='index' AND tbl_name='metrics' AND sql IS NOT NULL"
        )
    ]
    db.execute("BEGIN")
    for sql in index_sql:
        name = sql.split()[2]
        db.execute(f"DROP INDEX {name}")

    last: list[tuple[float, int, int]] = []  # value, timestamp, step of each run's last point

    def rows() -> Iterator[tuple[str, float, int, str, int, int]]:
        for r, uuid in enumerate(ids):
            step, value, ts_ms = curve(r, runs, steps)
            last.append((float(value[-1]), int(ts_ms[-1]), int(step[-1])))
            for s, v, ts in zip(step.tolist(), value.tolist(), ts_ms.tolist()):
                yield (METRIC, v, ts, uuid, s, 0)

    db.executemany(
        'INSERT INTO metrics ("key", value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)',
        rows(),
    )
    log(f"mlflow: {runs * steps} metric rows inserted in {time.perf_counter() - t0:.1f} s")
    for sql in index_sql:
        db.execute(sql)
    log(f"mlflow: indexes rebuilt at {time.perf_counter() - t0:.1f} s")
    db.executemany(
        'INSERT OR REPLACE INTO latest_metrics ("key", value, timestamp, step, is_nan, run_uuid) '
        "VALUES (?, ?, ?, ?, 0, ?)",
        [(METRIC, v, ts, s, uuid) for uuid, (v, ts, s) in zip(ids, last)],
    )
    db.executemany(
        "UPDATE runs SET status = 'FINISHED', end_time = ? WHERE run_uuid = ?",
        [(ts, uuid) for uuid, (_, ts, _) in zip(ids, last)],
    )
    db.execute("COMMIT")
    db.close()
    log(f"mlflow: {runs} runs x {steps} steps seeded by SQL in {time.perf_counter() - t0:.1f} s")
    return {"rows": runs * steps, "seconds": round(time.perf_counter() - t0, 1)}


def mlflow_stats(args: argparse.Namespace) -> dict[str, Any]:
    """ANALYZE the store, or drop its statistics (what MLflow leaves: it never runs ANALYZE).

    Without statistics, SQLite's planner answers get-history-bulk-interval's
    per-run query (WHERE run_uuid = ? AND key = ?) by scanning the covering
    primary-key index ("key", timestamp, ...) across every run's points; with
    them, it takes the (run_uuid, key, step) index and reads one run's points.
    """
    t0 = time.perf_counter()
    db = sqlite3.connect(args.db, isolation_level=None)
    if args.analyze:
        db.execute("ANALYZE")
    elif db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone():
        db.execute("DROP TABLE sqlite_stat1")
    db.close()
    what = "ANALYZEd" if args.analyze else "without statistics"
    log(f"mlflow: store {what} in {time.perf_counter() - t0:.1f} s")
    return {"analyzed": args.analyze}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("labbook", help="seed a labbook store through the Python SDK")
    p.add_argument("--dir", required=True, help="the .labbook store to create")
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--steps", type=int, default=100_000)
    p = sub.add_parser(
        "mlflow-runs", help="create the experiment and runs on a running mlflow server"
    )
    p.add_argument("--uri", required=True)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--steps", type=int, default=100_000, help="sets the runs' start times")
    p = sub.add_parser("mlflow-metrics", help="bulk-insert the points into MLflow's SQLite store")
    p.add_argument("--db", required=True, help="MLflow's SQLite file (its server stopped)")
    p.add_argument("--ids", required=True, help="the JSON that mlflow-runs printed")
    p.add_argument("--steps", type=int, default=100_000)
    p = sub.add_parser("mlflow-stats", help="ANALYZE MLflow's SQLite store or drop its statistics")
    p.add_argument("--db", required=True, help="MLflow's SQLite file (its server stopped)")
    p.add_argument("--analyze", action=argparse.BooleanOptionalAction, required=True)
    args = parser.parse_args()
    handler = {
        "labbook": seed_labbook,
        "mlflow-runs": seed_mlflow_runs,
        "mlflow-metrics": seed_mlflow_metrics,
        "mlflow-stats": mlflow_stats,
    }[args.command]
    print(json.dumps(handler(args)))


if __name__ == "__main__":
    main()
