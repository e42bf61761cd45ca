"""Side by side: labbook and the trackers its users would pick instead, one run, one machine.

Workloads W1 to W7 of `bench/PEERS.md` run on labbook and on each peer (MLflow on a
local `sqlite:///` store, W&B offline, trackio local, expman-rs); every
measurement runs in a fresh subprocess of the right interpreter, in its own
empty directory. The results are JSON lines (`--out`), one per workload,
figure and tool:

    {"workload": "W3", "figure": "log_2_keys", "tool": "wandb", "unit": "us/call",
     "median": 241.0, "min": 230.5, "max": 260.1, "n": 60, "note": "…"}

with `median` null (and the reason in `note`) where a workload does not apply
to a tool or its measurement failed. The first line (`"workload": "meta"`)
records the machine, the interpreters and the versions measured; the last one
the elapsed time. `bench/peers_report.py` turns the file into a Markdown table.

    .venv-peers/bin/pip install -r bench/peers-requirements.txt
    .venv/bin/python bench/peers.py --peers-python .venv-peers/bin/python
    .venv/bin/python bench/peers.py --quick --peers-python /tmp/peers/bin/python \\
        --python mlflow=.venv-mlflow/bin/python --tools labbook,mlflow

A full run takes ~22 minutes on 2 busy cores (load average 6 to 17); MLflow
takes 10 of them (1M points through log_batch in ~5 minutes, read back in ~1),
seeding 10,000 labbook runs ~3. `--quick` (small sizes, one or two
repetitions) takes ~2.5 minutes and is for checking that everything works.

This file is also the worker: `peers.py worker SPEC` runs one measurement in
the interpreter of the tool under test and writes its samples to the file that
SPEC names. The worker imports nothing outside the standard library until the
task needs it, so the same file runs in every virtualenv.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
THIS = Path(__file__).resolve()
TOOLS = ("labbook", "mlflow", "wandb", "trackio", "expman")
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7")
# The module each tool is imported as, and the distribution its version is read from.
MODULES = {t: t for t in TOOLS}
DISTRIBUTIONS = {
    "labbook": "labbook",
    "mlflow": "mlflow",
    "wandb": "wandb",
    "trackio": "trackio",
    "expman": "expman-rs",
}
PROJECT = "bench"
# W2's "small config", logged as a run's config (MLflow: its params).
CONFIG = {"lr": 0.001, "batch_size": 64, "optimizer": "adam", "depth": 4}
# W3's 20-key dict, built once (as a training loop logging per-layer norms would).
KEYS_20 = [f"layer{i}/grad_norm" for i in range(20)]
# W7: each seeded run has lr (config/param) and acc, loss (metrics, one point each);
# the filter keeps one lr in five and one acc in ten, so ~2% of the runs.
LRS = (0.1, 0.03, 0.01, 0.003, 0.001)
SEARCH_LR = 0.01
SEARCH_ACC = 0.9
FILTERS = {
    "labbook": f"metrics.acc > {SEARCH_ACC} and config.lr = {SEARCH_LR}",
    "mlflow": f"metrics.acc > {SEARCH_ACC} and params.lr = '{SEARCH_LR}'",
    "trackio": (
        "SELECT c.run_name FROM configs c JOIN metrics m ON m.run_id = c.run_id "
        f"WHERE json_extract(c.config, '$.lr') = {SEARCH_LR} "
        f"AND json_extract(m.metrics, '$.acc') > {SEARCH_ACC}"
    ),
    "expman": f"load_runs() → vectors['acc'] > {SEARCH_ACC} → load_config(path)['lr'] == {SEARCH_LR}",
}
# What the child processes see: no tool may reach the network or a server, and
# none may pick up a store, run or credentials from the caller's environment.
CHILD_ENV = {
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "WANDB_DISABLE_CODE": "true",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "TRACKIO_STORAGE_MODE": "sqlite",
    "PYTHONUNBUFFERED": "1",
}
STRIPPED_ENV_PREFIXES = ("LABBOOK_", "MLFLOW_", "WANDB_", "TRACKIO_", "HF_", "EXPMAN_")

NA = {
    ("W6", "wandb"): (
        "n/a (offline runs cannot be read back without syncing: wandb 0.31 has no "
        "local reader for .wandb files, its public Api reads from a server)"
    ),
    ("W7", "wandb"): (
        "n/a (no local query API: offline runs are searchable only after `wandb sync` to a server)"
    ),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- data


def curve(n: int, float32_valued: bool) -> tuple[Any, Any]:
    """A noisy decaying loss curve of n points (steps 0..n-1), float64; with
    `float32_valued` every value is exactly representable as a float32."""
    import numpy as np

    rng = np.random.default_rng(0)
    steps = np.arange(n, dtype=np.int64)
    values = 2 * np.exp(-steps / (0.15 * n)) + 0.1 + 0.02 * rng.standard_normal(n)
    if float32_valued:
        values = values.astype(np.float32).astype(np.float64)
    return steps, values


def seed_values(i: int) -> tuple[float, float, float]:
    """(lr, acc, loss) of W7's seeded run i, the same for every tool."""
    rng = random.Random(i)
    return LRS[i % len(LRS)], rng.random(), rng.random()


def expected_matches(runs: int) -> int:
    return sum(
        1 for i in range(runs) if seed_values(i)[0] == SEARCH_LR and seed_values(i)[1] > SEARCH_ACC
    )


def compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def dir_bytes(root: Path) -> tuple[int, dict[str, int]]:
    """Apparent size of the regular files under root (symlinks not followed),
    and the size of each SQLite WAL among them."""
    total = 0
    wal: dict[str, int] = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            if path.is_symlink() or not path.is_file():
                continue
            size = path.stat().st_size
            total += size
            if name.endswith("-wal"):
                wal[str(path.relative_to(root))] = size
    return total, wal


# --------------------------------------------------------------------------- worker: tools


class Tool:
    """One tracker, driven the way its documentation shows. `root` is an empty
    directory that holds the tool's store and nothing else."""

    name = ""

    def __init__(self, root: Path) -> None:
        self.root = root

    def setup(self) -> None:
        """Points the tool at its store (and creates it where that is a separate step)."""

    def start(self, name: str, config: dict[str, Any]) -> Any:
        raise NotImplementedError

    def finish(self, run: Any) -> None:
        raise NotImplementedError

    def loop_2(self, run: Any, calls: int, step0: int) -> None:
        raise NotImplementedError

    def loop_20(self, run: Any, values: dict[str, float], calls: int, step0: int) -> None:
        raise NotImplementedError

    def prepare(self, steps: Any, values: Any) -> tuple[Any, Any]:
        return steps.tolist(), values.tolist()

    def ingest(self, run: Any, steps: Any, values: Any) -> None:
        raise NotImplementedError

    def run_info(self, run: Any) -> dict[str, Any]:
        return {}

    def open_reader(self, info: dict[str, Any]) -> None:
        """Whatever a script does before reading (untimed): open the client, find the run."""

    def read(self, info: dict[str, Any]) -> int:
        raise NotImplementedError

    def seed(self, indices: range) -> None:
        raise NotImplementedError

    def open_search(self) -> None:
        """Untimed setup before the first search."""

    def search(self) -> int:
        raise NotImplementedError


class Labbook(Tool):
    name = "labbook"

    @property
    def store(self) -> str:
        return str(self.root / ".labbook")

    def start(self, name: str, config: dict[str, Any]) -> Any:
        import labbook

        return labbook.init(
            project=PROJECT, name=name, config=config, dir=self.store, system_metrics=False
        )

    def finish(self, run: Any) -> None:
        run.finish()

    def loop_2(self, run: Any, calls: int, step0: int) -> None:
        log_ = run.log
        v = 0.5
        for _ in range(calls):
            log_({"train/loss": v, "train/acc": v})

    def loop_20(self, run: Any, values: dict[str, float], calls: int, step0: int) -> None:
        log_ = run.log
        for _ in range(calls):
            log_(values)

    def prepare(self, steps: Any, values: Any) -> tuple[Any, Any]:
        return steps, values

    def ingest(self, run: Any, steps: Any, values: Any) -> None:
        run.log_series("loss", steps, values)

    def run_info(self, run: Any) -> dict[str, Any]:
        return {"run_id": run.id}

    def open_reader(self, info: dict[str, Any]) -> None:
        import labbook

        self.api = labbook.Api(dir=self.store)
        self.api.run(info["run_id"])

    def read(self, info: dict[str, Any]) -> int:
        return len(self.api.history(info["run_id"], "loss")["value"])

    def seed(self, indices: range) -> None:
        import labbook

        for i in indices:
            lr, acc, loss = seed_values(i)
            run = labbook.init(
                project=PROJECT,
                name=f"r{i:05d}",
                config={"lr": lr, "batch_size": 32},
                dir=self.store,
                system_metrics=False,
            )
            run.log({"acc": acc, "loss": loss})
            run.finish()

    def search(self) -> int:
        # Opening the store is part of it: the first query loads the run index.
        import labbook

        if not hasattr(self, "api"):
            self.api = labbook.Api(dir=self.store)
        return len(self.api.runs(project=PROJECT, filter=FILTERS["labbook"]))


class Mlflow(Tool):
    name = "mlflow"

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def setup(self) -> None:
        import mlflow

        mlflow.set_tracking_uri(self.uri)
        self.experiment = mlflow.set_experiment(PROJECT)

    def start(self, name: str, config: dict[str, Any]) -> Any:
        import mlflow

        run = mlflow.start_run(run_name=name)
        mlflow.log_params(config)
        return run

    def finish(self, run: Any) -> None:
        import mlflow

        mlflow.end_run()

    def loop_2(self, run: Any, calls: int, step0: int) -> None:
        import mlflow

        log_ = mlflow.log_metrics
        v = 0.5
        for i in range(step0, step0 + calls):
            log_({"train/loss": v, "train/acc": v}, step=i)

    def loop_20(self, run: Any, values: dict[str, float], calls: int, step0: int) -> None:
        import mlflow

        log_ = mlflow.log_metrics
        for i in range(step0, step0 + calls):
            log_(values, step=i)

    def ingest(self, run: Any, steps: Any, values: Any) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import Metric

        client = MlflowClient()
        run_id = run.info.run_id
        for lo in range(0, len(steps), 1000):
            ts = int(time.time() * 1000)
            client.log_batch(
                run_id,
                metrics=[
                    Metric("loss", v, ts, s)
                    for s, v in zip(steps[lo : lo + 1000], values[lo : lo + 1000])
                ],
            )

    def run_info(self, run: Any) -> dict[str, Any]:
        return {"run_id": run.info.run_id}

    def open_reader(self, info: dict[str, Any]) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(self.uri)
        self.client.get_run(info["run_id"])

    def read(self, info: dict[str, Any]) -> int:
        return len(self.client.get_metric_history(info["run_id"], "loss"))

    def seed(self, indices: range) -> None:
        # ~100 ms per run through MlflowClient (create_run, log_batch,
        # set_terminated) would take 16 minutes for 10,000 runs, so the runs are
        # inserted in one transaction through MLflow's own table definitions,
        # with the rows those three calls write; search() checks the result.
        import mlflow
        from mlflow.store.tracking.dbmodels import models
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        mlflow.set_tracking_uri(self.uri)
        experiment = mlflow.set_experiment(PROJECT)
        store = SqlAlchemyStore(self.uri, str(self.root / "artifacts"))
        now = int(time.time() * 1000)
        runs: list[dict[str, Any]] = []
        tags: list[dict[str, Any]] = []
        params: list[dict[str, Any]] = []
        metrics: list[dict[str, Any]] = []
        for i in indices:
            lr, acc, loss = seed_values(i)
            run_id = uuid.uuid4().hex
            name = f"r{i:05d}"
            runs.append(
                {
                    "run_uuid": run_id,
                    "name": name,
                    "source_type": "UNKNOWN",
                    "source_name": "",
                    "entry_point_name": "",
                    "user_id": "bench",
                    "status": "FINISHED",
                    "start_time": now,
                    "end_time": now,
                    "deleted_time": None,
                    "source_version": "",
                    "lifecycle_stage": "active",
                    "artifact_uri": f"{experiment.artifact_location}/{run_id}/artifacts",
                    "experiment_id": int(experiment.experiment_id),
                }
            )
            tags.append({"key": "mlflow.runName", "value": name, "run_uuid": run_id})
            params += [
                {"key": "lr", "value": str(lr), "run_uuid": run_id},
                {"key": "batch_size", "value": "32", "run_uuid": run_id},
            ]
            for key, value in (("acc", acc), ("loss", loss)):
                metrics.append(
                    {
                        "key": key,
                        "value": value,
                        "timestamp": now,
                        "step": 0,
                        "is_nan": False,
                        "run_uuid": run_id,
                    }
                )
        with store.ManagedSessionMaker(read_only=False) as session:
            session.execute(models.SqlRun.__table__.insert(), runs)
            session.execute(models.SqlTag.__table__.insert(), tags)
            session.execute(models.SqlParam.__table__.insert(), params)
            session.execute(models.SqlMetric.__table__.insert(), metrics)
            session.execute(models.SqlLatestMetric.__table__.insert(), metrics)

    def open_search(self) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(self.uri)
        self.experiment_id = self.client.get_experiment_by_name(PROJECT).experiment_id

    def search(self) -> int:
        found = 0
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], FILTERS["mlflow"], max_results=1000, page_token=token
            )
            found += len(page)
            token = page.token
            if not token:
                return found


class Wandb(Tool):
    name = "wandb"

    def start(self, name: str, config: dict[str, Any]) -> Any:
        import wandb

        return wandb.init(
            project=PROJECT,
            name=name,
            config=config,
            dir=str(self.root),
            mode="offline",
            settings=wandb.Settings(x_disable_stats=True),
        )

    def finish(self, run: Any) -> None:
        run.finish()

    def loop_2(self, run: Any, calls: int, step0: int) -> None:
        log_ = run.log
        v = 0.5
        for _ in range(calls):
            log_({"train/loss": v, "train/acc": v})

    def loop_20(self, run: Any, values: dict[str, float], calls: int, step0: int) -> None:
        log_ = run.log
        for _ in range(calls):
            log_(values)

    def ingest(self, run: Any, steps: Any, values: Any) -> None:
        log_ = run.log
        for v in values:
            log_({"loss": v})


class Trackio(Tool):
    name = "trackio"

    def start(self, name: str, config: dict[str, Any]) -> Any:
        import trackio

        return trackio.init(
            project=PROJECT,
            name=name,
            config=config,
            auto_log_cpu=False,
            auto_log_gpu=False,
            embed=False,
        )

    def finish(self, run: Any) -> None:
        run.finish()

    def loop_2(self, run: Any, calls: int, step0: int) -> None:
        log_ = run.log
        v = 0.5
        for _ in range(calls):
            log_({"train/loss": v, "train/acc": v})

    def loop_20(self, run: Any, values: dict[str, float], calls: int, step0: int) -> None:
        log_ = run.log
        for _ in range(calls):
            log_(values)

    def ingest(self, run: Any, steps: Any, values: Any) -> None:
        log_ = run.log
        for v in values:
            log_({"loss": v})

    def run_info(self, run: Any) -> dict[str, Any]:
        return {"run_name": run.name}

    def open_reader(self, info: dict[str, Any]) -> None:
        from trackio.sqlite_storage import SQLiteStorage

        self.storage = SQLiteStorage
        SQLiteStorage.get_runs(PROJECT)

    def read(self, info: dict[str, Any]) -> int:
        # What `trackio get metric --project P --run R --metric K` calls.
        return len(self.storage.get_metric_values(PROJECT, info["run_name"], "loss"))

    def seed(self, indices: range) -> None:
        # trackio writes through SQLiteStorage.bulk_log, ~35 ms per call with its
        # lock and schema checks: 6 minutes for 10,000 runs. The first run goes
        # through it (creating the database); the rest are inserted in one
        # transaction as the rows bulk_log writes, and search() checks the result.
        import sqlite3

        from trackio.sqlite_storage import SQLiteStorage

        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        rows_metrics: list[tuple[Any, ...]] = []
        rows_configs: list[tuple[Any, ...]] = []
        for n, i in enumerate(indices):
            lr, acc, loss = seed_values(i)
            name = f"r{i:05d}"
            config = {"lr": lr, "batch_size": 32}
            metrics = {"acc": acc, "loss": loss}
            if n == 0:
                SQLiteStorage.bulk_log(
                    project=PROJECT,
                    run=name,
                    run_id=name,
                    metrics_list=[metrics],
                    steps=[0],
                    config=config,
                )
                continue
            rows_metrics.append((now, name, name, 0, compact_json(metrics)))
            rows_configs.append((name, name, compact_json(config), now))
        conn = sqlite3.connect(str(SQLiteStorage.get_project_db_path(PROJECT)), timeout=120)
        with conn:
            conn.executemany(
                "INSERT INTO metrics (timestamp, run_id, run_name, step, metrics) "
                "VALUES (?, ?, ?, ?, ?)",
                rows_metrics,
            )
            conn.executemany(
                "INSERT INTO configs (run_id, run_name, config, created_at) VALUES (?, ?, ?, ?)",
                rows_configs,
            )
        conn.close()

    def open_search(self) -> None:
        from trackio.sqlite_storage import SQLiteStorage

        self.storage = SQLiteStorage

    def search(self) -> int:
        # What `trackio query project --project P --sql …` calls: read-only SQL
        # over the project's database; each seeded run has one metrics row.
        return int(self.storage.query_project(PROJECT, FILTERS["trackio"])["row_count"])


class Expman(Tool):
    name = "expman"

    @property
    def base(self) -> str:
        return str(self.root / "experiments")

    def start(self, name: str, config: dict[str, Any]) -> Any:
        import expman

        exp = expman.Experiment(
            PROJECT,
            run_name=name,
            base_dir=self.base,
            redirect_console=False,
            system_metrics_interval_secs=0,
        )
        exp.log_params(config)
        return exp

    def finish(self, run: Any) -> None:
        run.close()

    def loop_2(self, run: Any, calls: int, step0: int) -> None:
        log_ = run.log_vector
        v = 0.5
        for i in range(step0, step0 + calls):
            log_({"train/loss": v, "train/acc": v}, step=i)

    def loop_20(self, run: Any, values: dict[str, float], calls: int, step0: int) -> None:
        log_ = run.log_vector
        for i in range(step0, step0 + calls):
            log_(values, step=i)

    def ingest(self, run: Any, steps: Any, values: Any) -> None:
        log_ = run.log_vector
        for s, v in zip(steps, values):
            log_({"loss": v}, step=s)

    def run_info(self, run: Any) -> dict[str, Any]:
        return {"run_dir": str(Path(run.run_dir).resolve())}

    def read(self, info: dict[str, Any]) -> int:
        import expman

        return len(expman.read_metrics(info["run_dir"]))

    def seed(self, indices: range) -> None:
        import expman

        for i in indices:
            lr, acc, loss = seed_values(i)
            # Seeding is untimed: without git provenance (~23 ms a run) and
            # heartbeats it takes 1 minute instead of 4; the search reads neither.
            exp = expman.Experiment(
                PROJECT,
                run_name=f"r{i:05d}",
                base_dir=self.base,
                redirect_console=False,
                system_metrics_interval_secs=0,
                heartbeat_interval_secs=0,
                capture_provenance=False,
            )
            exp.log_params({"lr": lr, "batch_size": 32})
            exp.log_vector({"acc": acc, "loss": loss}, step=0)
            exp.close()

    def search(self) -> int:
        # load_runs filters on project, experiment, group, status and tags only:
        # the metric is compared in Python on each run's last values, then the
        # param read from each remaining run's config.yaml.
        import expman

        runs = expman.load_runs(base_dir=self.base, experiment=PROJECT)
        hits = [
            r
            for r in runs
            if (r.get("vectors") or {}).get("acc", float("-inf")) > SEARCH_ACC
            and expman.load_config(r["path"]).get("lr") == SEARCH_LR
        ]
        return len(hits)


TOOL_CLASSES: dict[str, type[Tool]] = {c.name: c for c in (Labbook, Mlflow, Wandb, Trackio, Expman)}


# --------------------------------------------------------------------------- worker: tasks


def figure(unit: str, samples: list[float], note: str = "") -> dict[str, Any]:
    return {"unit": unit, "samples": samples, "note": note}


def task_init_new(tool: Tool, spec: dict[str, Any]) -> dict[str, Any]:
    t = time.perf_counter()
    tool.setup()
    run = tool.start("init-0", CONFIG)
    elapsed = time.perf_counter() - t
    tool.finish(run)
    return {"figures": {"init_new_store": figure("ms", [elapsed * 1e3])}}


def task_init(tool: Tool, spec: dict[str, Any]) -> dict[str, Any]:
    tool.setup()
    tool.finish(tool.start("init-0", CONFIG))
    samples = []
    for i in range(spec["reps"]):
        t = time.perf_counter()
        run = tool.start(f"init-{i + 1}", CONFIG)
        samples.append((time.perf_counter() - t) * 1e3)
        tool.finish(run)
    return {"figures": {"init": figure("ms", samples)}}


def task_log(tool: Tool, spec: dict[str, Any]) -> dict[str, Any]:
    tool.setup()
    run = tool.start("log", CONFIG)
    step = 0
    per_call_2 = []
    batches, calls = spec["log2"]
    tool.loop_2(run, min(calls, 10), step)  # warm-up: first-call costs are init's
    step += min(calls, 10)
    for _ in range(batches):
        t = time.perf_counter_ns()
        tool.loop_2(run, calls, step)
        per_call_2.append((time.perf_counter_ns() - t) / 1e3 / calls)
        step += calls
    values = dict.fromkeys(KEYS_20, 0.25)
    per_call_20 = []
    batches20, calls20 = spec["log20"]
    for _ in range(batches20):
        t = time.perf_counter_ns()
        tool.loop_20(run, values, calls20, step)
        per_call_20.append((time.perf_counter_ns() - t) / 1e3 / calls20)
        step += calls20
    tool.finish(run)
    # finish() measured on a second run that logged the same for every tool:
    # the loops above log far more through the fast tools than through the slow.
    run = tool.start("finish", CONFIG)
    tool.loop_20(run, values, spec["finish_calls"], 0)
    t = time.perf_counter()
    tool.finish(run)
    finish_ms = (time.perf_counter() - t) * 1e3
    return {
        "figures": {
            "log_2_keys": figure("us/call", per_call_2),
            "log_20_keys": figure("us/call", per_call_20),
            "finish": figure("ms", [finish_ms]),
        }
    }


def task_empty(tool: Tool, spec: dict[str, Any]) -> dict[str, Any]:
    tool.setup()
    tool.finish(tool.start("empty", CONFIG))
    return {"figures": {}}


def task_ingest(tool: Tool, spec: dict[str, Any]) -> dict[str, Any]:
    steps, values = curve(spec["points"], spec["float32_valued"])
    steps, values = tool.prepare(steps, values)
    tool.setup()
    run = tool.start("ingest", CONFIG)
    info = tool.run_info(run)
    t = time.perf_counter()
    tool.ingest(run, steps, values)
    tool.finish(run)
    elapsed = time.perf_counter() - t
    return {"figures": {"ingest": figure("points/s", [spec["points"] / elapsed])}, "info": info}


def task_read(tool: Tool, spec: dict[str, Any]) -> dict[str, Any]:
    tool.setup()
    tool.open_reader(spec["info"])
    t = time.perf_counter()
    count = tool.read(spec["info"])
    elapsed = time.perf_counter() - t
    if count != spec["points"]:
        raise RuntimeError(f"read {count} points, expected {spec['points']}")
    return {"figures": {"read": figure("ms", [elapsed * 1e3])}}


def task_seed(tool: Tool, spec: dict[str, Any]) -> dict[str, Any]:
    t = time.perf_counter()
    tool.seed(range(spec["start"], spec["runs"], spec["stride"]))
    return {"figures": {"seed": figure("s", [time.perf_counter() - t])}}


def task_search(tool: Tool, spec: dict[str, Any]) -> dict[str, Any]:
    tool.open_search()
    t = time.perf_counter()
    found = tool.search()
    first = (time.perf_counter() - t) * 1e3
    repeats = []
    for _ in range(spec["repeats"]):
        t = time.perf_counter()
        again = tool.search()
        repeats.append((time.perf_counter() - t) * 1e3)
        if again != found:
            raise RuntimeError(f"search found {found} runs, then {again}")
    if found != spec["expected"]:
        raise RuntimeError(f"search found {found} runs, expected {spec['expected']}")
    return {
        "figures": {"search": figure("ms", [first]), "search_repeat": figure("ms", repeats)},
        "info": {"found": found},
    }


TASKS = {
    "init_new": task_init_new,
    "init": task_init,
    "log": task_log,
    "empty": task_empty,
    "ingest": task_ingest,
    "read": task_read,
    "seed": task_seed,
    "search": task_search,
}


def worker(spec_text: str) -> None:
    spec = json.loads(spec_text)
    tool = TOOL_CLASSES[spec["tool"]](Path(spec["root"]))
    result = TASKS[spec["task"]](tool, spec)
    Path(spec["result"]).write_text(json.dumps(result))
    # wandb and trackio finish their background threads and services at exit;
    # the measurement is over, and the parent waits for the process to end.


# --------------------------------------------------------------------------- driver


@dataclass(frozen=True)
class Plan:
    """How much of each workload one tool gets (its speed decides)."""

    import_reps: int
    init_new_reps: int
    init_reps: int
    log_procs: int
    log2: tuple[int, int]  # batches, calls per batch
    log20: tuple[int, int]
    ingest_points: int
    ingest_reps: int
    f32_points: int
    read_reps: int
    search_reps: int
    search_repeats: int
    seed_procs: int


FULL = {
    "labbook": Plan(21, 5, 11, 5, (200, 1000), (100, 1000), 1_000_000, 5, 1_000_000, 7, 7, 5, 2),
    "expman": Plan(11, 5, 11, 5, (50, 1000), (50, 1000), 1_000_000, 3, 1_000_000, 3, 5, 5, 2),
    "trackio": Plan(7, 3, 11, 3, (20, 500), (20, 250), 1_000_000, 2, 200_000, 3, 5, 5, 1),
    "wandb": Plan(7, 3, 11, 3, (20, 250), (10, 250), 100_000, 2, 50_000, 0, 0, 0, 0),
    "mlflow": Plan(7, 3, 11, 3, (5, 40), (5, 20), 1_000_000, 1, 100_000, 1, 5, 5, 1),
}
QUICK = {
    "labbook": Plan(2, 1, 3, 1, (5, 1000), (3, 1000), 20_000, 1, 20_000, 1, 1, 2, 2),
    "expman": Plan(2, 1, 3, 1, (5, 500), (3, 500), 20_000, 1, 20_000, 1, 1, 2, 2),
    "trackio": Plan(2, 1, 3, 1, (3, 200), (3, 100), 20_000, 1, 20_000, 1, 1, 2, 1),
    "wandb": Plan(2, 1, 3, 1, (3, 100), (3, 50), 3_000, 1, 3_000, 0, 0, 0, 0),
    "mlflow": Plan(2, 1, 3, 1, (2, 10), (2, 5), 3_000, 1, 3_000, 1, 1, 2, 1),
}
SEARCH_RUNS = {"full": 10_000, "quick": 300}


class WorkerError(RuntimeError):
    pass


@dataclass
class Job:
    """One worker process, its spec and the file its output goes to."""

    proc: subprocess.Popen[bytes]
    spec: dict[str, Any]
    logfile: Path


class Driver:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.quick: bool = args.quick
        self.plans = QUICK if self.quick else FULL
        self.search_runs = SEARCH_RUNS["quick" if self.quick else "full"]
        self.finish_calls = 50 if self.quick else 200
        self.tools: list[str] = args.tools
        self.pythons: dict[str, str] = {t: args.peers_python for t in TOOLS}
        self.pythons["labbook"] = args.labbook_python
        for item in args.python:
            tool, _, path = item.partition("=")
            if tool not in TOOLS or not path:
                raise SystemExit(f"--python {item!r}: expected TOOL=PATH, TOOL one of {TOOLS}")
            self.pythons[tool] = path
        self.scratch = Path(tempfile.mkdtemp(prefix="labbook-peers-", dir=args.workdir))
        self.counter = 0
        self.out = open(args.out, "w")
        self.timeout = 900 if self.quick else 1800

    def close(self) -> None:
        self.out.close()
        if not self.args.keep:
            shutil.rmtree(self.scratch, ignore_errors=True)

    # ---- output

    def emit(self, row: dict[str, Any]) -> None:
        self.out.write(json.dumps(row) + "\n")
        self.out.flush()

    def emit_figure(
        self, workload: str, figure: str, tool: str, unit: str, samples: list[float], note: str
    ) -> None:
        row: dict[str, Any] = {"workload": workload, "figure": figure, "tool": tool, "unit": unit}
        if samples:
            row.update(
                median=statistics.median(samples),
                min=min(samples),
                max=max(samples),
                n=len(samples),
            )
        else:
            row.update(median=None, min=None, max=None, n=0)
        row["note"] = note
        self.emit(row)
        if samples:
            log(
                f"  {workload} {figure:<18} {tool:<8} {row['median']:.6g} {unit} (n={len(samples)})"
            )
        else:
            log(f"  {workload} {figure:<18} {tool:<8} {note}")

    # ---- processes

    def env(self, base: Path) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(STRIPPED_ENV_PREFIXES) and k != "VIRTUAL_ENV"
        }
        env.update(CHILD_ENV)
        # trackio's store is TRACKIO_DIR (read when it is imported); whatever a
        # tool writes outside its store goes under the scratch directory too.
        env["TRACKIO_DIR"] = str(base / "store")
        env["WANDB_DIR"] = str(base / "store")
        env["WANDB_CONFIG_DIR"] = str(base / "wandb-config")
        env["WANDB_CACHE_DIR"] = str(base / "wandb-cache")
        env["WANDB_DATA_DIR"] = str(base / "wandb-data")
        env["MPLCONFIGDIR"] = str(base / "mpl")
        return env

    def new_dir(self, label: str) -> Path:
        self.counter += 1
        base = self.scratch / f"{self.counter:04d}-{label}"
        (base / "store").mkdir(parents=True)
        return base

    def spawn(self, tool: str, task: str, base: Path, **spec: Any) -> Job:
        tag = uuid.uuid4().hex[:8]
        spec.update(
            tool=tool,
            task=task,
            root=str(base / "store"),
            result=str(base / f"result-{tag}.json"),
        )
        logfile = base / f"log-{tag}.txt"
        with open(logfile, "wb") as out:
            proc = subprocess.Popen(
                [self.pythons[tool], str(THIS), "worker", json.dumps(spec)],
                cwd=base / "store",
                env=self.env(base),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return Job(proc, spec, logfile)

    def wait(self, job: Job) -> dict[str, Any]:
        try:
            rc = job.proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            job.proc.kill()
            job.proc.wait()
            rc = -9
        result = Path(job.spec["result"])
        if rc != 0 or not result.exists():
            lines = job.logfile.read_text(errors="replace").strip().splitlines()
            last = lines[-1] if lines else ""
            raise WorkerError(f"{job.spec['task']} exited with {rc}: {last[-300:]}")
        return json.loads(result.read_text())

    def run(self, tool: str, task: str, base: Path | None = None, **spec: Any) -> dict[str, Any]:
        base = base or self.new_dir(f"{tool}-{task}")
        return self.wait(self.spawn(tool, task, base, **spec))

    # ---- workloads

    def w1(self, tool: str, plan: Plan) -> None:
        module = MODULES[tool]
        code = (
            "import time; t = time.perf_counter(); "
            f"import {module}; print(repr(time.perf_counter() - t))"
        )
        base = self.new_dir(f"{tool}-import")
        samples = []
        for i in range(plan.import_reps + 1):
            out = subprocess.run(
                [self.pythons[tool], "-c", code],
                cwd=base / "store",
                env=self.env(base),
                capture_output=True,
                text=True,
                timeout=300,
            )
            if out.returncode != 0:
                raise WorkerError(f"import {module} failed: {out.stderr.strip()[-300:]}")
            if i > 0:  # the first one warms the page cache
                samples.append(float(out.stdout.strip().splitlines()[-1]) * 1e3)
        self.emit_figure(
            "W1",
            "import",
            tool,
            "ms",
            samples,
            f"`import {module}` in a fresh interpreter, after one unmeasured warm-up",
        )

    def w2(self, tool: str, plan: Plan) -> None:
        samples: list[float] = []
        for _ in range(plan.init_new_reps):
            samples += self.run(tool, "init_new")["figures"]["init_new_store"]["samples"]
        what = {
            "labbook": "labbook.init(project, config, dir=…)",
            "mlflow": "set_tracking_uri(sqlite) + set_experiment + start_run + log_params",
            "wandb": 'wandb.init(project, config, mode="offline")',
            "trackio": "trackio.init(project, config)",
            "expman": "Experiment(name, base_dir) + log_params",
        }[tool]
        self.emit_figure(
            "W2",
            "init_new_store",
            tool,
            "ms",
            samples,
            f"{what} in a fresh process and an empty directory: the first init creates the store",
        )
        result = self.run(tool, "init", reps=plan.init_reps)
        self.emit_figure(
            "W2",
            "init",
            tool,
            "ms",
            result["figures"]["init"]["samples"],
            f"{what}, store already created by an earlier init in the same process; "
            "finish() between inits untimed",
        )

    def w3(self, tool: str, plan: Plan) -> None:
        merged: dict[str, list[float]] = {"log_2_keys": [], "log_20_keys": [], "finish": []}
        for _ in range(plan.log_procs):
            result = self.run(
                tool, "log", log2=plan.log2, log20=plan.log20, finish_calls=self.finish_calls
            )
            for name in merged:
                merged[name] += result["figures"][name]["samples"]
        call = {
            "labbook": "run.log(d)",
            "mlflow": "mlflow.log_metrics(d, step=i) on a local sqlite:/// store",
            "wandb": "run.log(d), offline",
            "trackio": "run.log(d), local",
            "expman": "exp.log_vector(d, step=i)",
        }[tool]
        b2, c2 = plan.log2
        b20, c20 = plan.log20
        self.emit_figure(
            "W3",
            "log_2_keys",
            tool,
            "us/call",
            merged["log_2_keys"],
            f"{call} with a 2-key dict literal (built in the loop); {b2} batches × {c2} calls "
            f"per process, {processes(plan.log_procs)}; each sample is one batch's mean",
        )
        self.emit_figure(
            "W3",
            "log_20_keys",
            tool,
            "us/call",
            merged["log_20_keys"],
            f"{call} with a prebuilt 20-key dict; {b20} batches × {c20} calls per process, "
            f"{processes(plan.log_procs)}",
        )
        self.emit_figure(
            "W3",
            "finish",
            tool,
            "ms",
            merged["finish"],
            f"finish() of a run that logged {self.finish_calls:,} steps of the 20-key dict "
            f"({self.finish_calls * 20:,} points) just before; one sample per process",
        )

    def w456(self, tool: str, plan: Plan, workloads: set[str]) -> None:
        need_read = "W6" in workloads and plan.read_reps > 0
        need_ingest = bool(workloads & {"W4", "W5"}) or need_read
        empty = 0
        if "W5" in workloads:
            base = self.new_dir(f"{tool}-empty")
            self.run(tool, "empty", base)
            empty, _ = dir_bytes(base / "store")
            shutil.rmtree(base)
        path = {
            "labbook": "run.log_series(key, steps, values) with NumPy arrays, then finish()",
            "mlflow": "MlflowClient.log_batch of 1,000 metrics per call (Metric objects built "
            "in the loop) on a local sqlite:/// store, then end_run()",
            "wandb": "run.log({key: v}) per point (no bulk API), offline, then finish()",
            "trackio": "run.log({key: v}) per point (no bulk API), then finish()",
            "expman": "exp.log_vector({key: v}, step=s) per point (no bulk API), then close()",
        }[tool]
        rates: list[float] = []
        sizes: list[float] = []
        wal_notes: list[str] = []
        kept: tuple[Path, dict[str, Any]] | None = None
        n = plan.ingest_points
        if need_ingest:
            for rep in range(plan.ingest_reps if "W4" in workloads else 1):
                base = self.new_dir(f"{tool}-ingest")
                result = self.run(tool, "ingest", base, points=n, float32_valued=False)
                rates += result["figures"]["ingest"]["samples"]
                total, wal = dir_bytes(base / "store")
                sizes.append((total - empty) / n)
                wal_notes += [f"{k} {v:,} B" for k, v in wal.items()]
                if rep == 0 and need_read:
                    kept = (base, result.get("info", {}))
                else:
                    shutil.rmtree(base)
        if "W4" in workloads:
            self.emit_figure(
                "W4",
                "bulk_ingest",
                tool,
                "points/s",
                rates,
                f"{n:,} points of one metric through {path}; timed until that returns",
            )
        if "W5" in workloads:
            wal_text = (
                f"; WAL at exit: {', '.join(sorted(set(wal_notes)))}"
                if wal_notes
                else "; no WAL left at exit"
            )
            self.emit_figure(
                "W5",
                "disk_noisy_f64",
                tool,
                "bytes/point",
                sizes,
                f"{n:,}-point noisy float64 curve; all files under the store after the process "
                f"exited, minus an empty run's store ({empty:,} B){wal_text}",
            )
            m = plan.f32_points
            base = self.new_dir(f"{tool}-f32")
            self.run(tool, "ingest", base, points=m, float32_valued=True)
            total, wal = dir_bytes(base / "store")
            shutil.rmtree(base)
            self.emit_figure(
                "W5",
                "disk_f32_valued",
                tool,
                "bytes/point",
                [(total - empty) / m],
                f"{m:,}-point curve of float32-representable values (logged as float64), "
                f"same measure; WAL at exit: {sum(wal.values()):,} B",
            )
        if "W6" in workloads:
            if plan.read_reps == 0 or kept is None:
                self.emit_figure("W6", "read_1m", tool, "ms", [], NA[("W6", tool)])
            else:
                base, info = kept
                samples: list[float] = []
                for _ in range(plan.read_reps):
                    samples += self.run(tool, "read", base, info=info, points=n)["figures"]["read"][
                        "samples"
                    ]
                reader = {
                    "labbook": "labbook.Api(dir).history(run_id, key) → array.array columns",
                    "mlflow": "MlflowClient.get_metric_history(run_id, key) → Metric objects",
                    "trackio": "SQLiteStorage.get_metric_values(project, run, key) (what "
                    "`trackio get metric` calls) → dicts",
                    "expman": "expman.read_metrics(run_dir) → one dict per step",
                }[tool]
                self.emit_figure(
                    "W6",
                    "read_1m",
                    tool,
                    "ms",
                    samples,
                    f"{n:,}-point history via {reader}; each sample a fresh process, reader "
                    "opened untimed",
                )
                shutil.rmtree(base)

    def w7(self, tool: str, plan: Plan) -> None:
        if plan.search_reps == 0:
            self.emit_figure("W7", "search_10k", tool, "ms", [], NA[("W7", tool)])
            self.emit_figure("W7", "search_10k_repeat", tool, "ms", [], NA[("W7", tool)])
            return
        runs = self.search_runs
        expected = expected_matches(runs)
        base = self.new_dir(f"{tool}-search")
        t = time.perf_counter()
        procs = [
            self.spawn(tool, "seed", base, start=k, runs=runs, stride=plan.seed_procs)
            for k in range(plan.seed_procs)
        ]
        errors = []
        for proc in procs:
            try:
                self.wait(proc)
            except WorkerError as e:
                errors.append(str(e))
        if errors:
            raise WorkerError("; ".join(errors))
        seed_s = time.perf_counter() - t
        first: list[float] = []
        repeat: list[float] = []
        for _ in range(plan.search_reps):
            result = self.run(tool, "search", base, expected=expected, repeats=plan.search_repeats)
            first += result["figures"]["search"]["samples"]
            repeat += result["figures"]["search_repeat"]["samples"]
        shutil.rmtree(base)
        how = {
            "labbook": f'labbook.Api(dir).runs(project, filter="{FILTERS["labbook"]}"), '
            "opening the store included",
            "mlflow": f'MlflowClient.search_runs(filter_string="{FILTERS["mlflow"]}") on the '
            "local sqlite:/// store (client and experiment lookup untimed)",
            "trackio": "read-only SQL through SQLiteStorage.query_project (what `trackio query "
            "project --sql` calls), json_extract on the config and metrics rows",
            "expman": f"{FILTERS['expman']}: load_runs has no metric or param filter, so the "
            "filtering is Python",
        }[tool]
        seeded = {
            "labbook": f"labbook.init + log + finish per run, {processes(plan.seed_procs)}",
            "mlflow": "one transaction of inserts through MLflow's own SQLAlchemy tables "
            "(MlflowClient would take ~16 min)",
            "trackio": "one transaction of inserts into trackio's metrics/configs tables "
            "(bulk_log per run would take ~6 min)",
            "expman": "Experiment(capture_provenance=False) + log_params + log_vector + close per run, "
            f"{processes(plan.seed_procs)}",
        }[tool]
        common = f"{runs:,} runs, {expected} match; seeded in {seed_s:.0f} s by {seeded}"
        self.emit_figure(
            "W7",
            "search_10k",
            tool,
            "ms",
            first,
            f"{how}; first query in a fresh process; {common}",
        )
        self.emit_figure(
            "W7",
            "search_10k_repeat",
            tool,
            "ms",
            repeat,
            f"the same query repeated in that process ({plan.search_repeats}× per process)",
        )

    # ---- meta

    def versions(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for tool in self.tools:
            code = (
                "import importlib.metadata as m, platform, sys; "
                f"print(m.version({DISTRIBUTIONS[tool]!r})); print(platform.python_version())"
            )
            out = subprocess.run(
                [self.pythons[tool], "-c", code], capture_output=True, text=True, timeout=120
            )
            if out.returncode != 0:
                raise SystemExit(
                    f"{tool} is not importable with {self.pythons[tool]}: {out.stderr.strip()[-300:]}"
                )
            version, python = out.stdout.split()
            found[tool] = {"version": version, "python": python, "interpreter": self.pythons[tool]}
        return found

    def main(self) -> None:
        started = time.time()
        workloads = set(self.args.workloads)
        self.emit(
            {
                "workload": "meta",
                "figure": "run",
                "tool": "",
                "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds"
                ),
                "quick": self.quick,
                "machine": {**machine(), "loadavg_start": list(os.getloadavg())},
                "tools": self.versions(),
                "workloads": sorted(workloads),
                "search_runs": self.search_runs,
            }
        )
        steps = [
            ("W1", self.w1),
            ("W2", self.w2),
            ("W3", self.w3),
        ]
        for workload, fn in steps:
            if workload not in workloads:
                continue
            log(f"{workload}")
            for tool in self.tools:
                self.guard(workload, tool, partial(fn, tool, self.plans[tool]))
        if workloads & {"W4", "W5", "W6"}:
            log("W4 W5 W6")
            for tool in self.tools:
                self.guard("W4", tool, partial(self.w456, tool, self.plans[tool], workloads))
        if "W7" in workloads:
            log(f"W7 ({self.search_runs:,} runs)")
            for tool in self.tools:
                self.guard("W7", tool, partial(self.w7, tool, self.plans[tool]))
        elapsed = time.time() - started
        self.emit(
            {
                "workload": "meta",
                "figure": "elapsed",
                "tool": "",
                "elapsed_s": elapsed,
                "loadavg_end": list(os.getloadavg()),
            }
        )
        log(f"done in {elapsed / 60:.1f} min → {self.args.out}")

    def guard(self, workload: str, tool: str, fn: Callable[[], None]) -> None:
        t = time.perf_counter()
        try:
            fn()
        except Exception as e:  # one tool failing must not end the run
            log(f"  {workload} {tool}: FAILED: {e}")
            self.emit(
                {
                    "workload": workload,
                    "figure": "error",
                    "tool": tool,
                    "unit": "",
                    "median": None,
                    "min": None,
                    "max": None,
                    "n": 0,
                    "note": f"error: {e}",
                }
            )
        log(f"  ({tool} {workload}: {time.perf_counter() - t:.0f} s)")


def processes(n: int) -> str:
    return "1 process" if n == 1 else f"{n} processes"


def machine() -> dict[str, Any]:
    """What the machine is (bench/peers_report.py describes it the same way)."""
    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gib": None,
        "os": platform.platform(),
        "node": platform.node(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024**2, 1)
                break
    except OSError:
        pass
    return info


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default=str(REPO / "bench" / "out" / "peers.jsonl"))
    p.add_argument(
        "--labbook-python",
        default=str(REPO / ".venv" / "bin" / "python"),
        help="interpreter with the labbook package (default: .venv)",
    )
    p.add_argument(
        "--peers-python",
        default=str(REPO / ".venv-peers" / "bin" / "python"),
        help="interpreter with the peers of bench/peers-requirements.txt (default: .venv-peers)",
    )
    p.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="TOOL=PATH",
        help="another interpreter for one tool, e.g. mlflow=.venv-mlflow/bin/python",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, one or two repetitions")
    p.add_argument(
        "--tools",
        type=lambda s: [t for t in s.split(",") if t],
        default=list(TOOLS),
        help=f"comma-separated subset of {','.join(TOOLS)}",
    )
    p.add_argument(
        "--workloads",
        type=lambda s: [w.upper() for w in s.split(",") if w],
        default=list(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)}",
    )
    p.add_argument("--workdir", default=None, help="where the scratch stores go (default: $TMPDIR)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = p.parse_args(argv)
    for t in args.tools:
        if t not in TOOLS:
            p.error(f"unknown tool {t!r}")
    for w in args.workloads:
        if w not in WORKLOADS:
            p.error(f"unknown workload {w!r}")
    args.tools = [t for t in TOOLS if t in args.tools]  # labbook first, always the same order
    return args


def main(argv: list[str]) -> None:
    if argv[:1] == ["worker"]:
        worker(argv[1])
        return
    args = parse_args(argv)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    driver = Driver(args)
    try:
        driver.main()
    finally:
        driver.close()


if __name__ == "__main__":
    main(sys.argv[1:])
