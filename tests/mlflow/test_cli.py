"""The `mlflow` command line against the server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
from conftest import Experiment, Server, unique_name

MLFLOW = str(Path(sys.executable).parent / "mlflow")


def cli(server: Server, *args: str) -> str:
    env = dict(os.environ, MLFLOW_TRACKING_URI=server.url)
    done = subprocess.run(
        [MLFLOW, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"mlflow {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


def test_cli_lists_experiments_and_runs(
    server: Server, experiment: Experiment, client: mlflow.MlflowClient
) -> None:
    runs = [client.create_run(experiment.id, run_name=f"cli-run-{i}").info.run_id for i in range(3)]
    client.log_param(runs[0], "alpha", "0.5")
    client.log_metric(runs[0], "score", 0.25, step=4)
    client.set_terminated(runs[0])

    listing = cli(server, "experiments", "search")
    rows = [line.split() for line in listing.splitlines()]
    assert [experiment.id, experiment.name] in [row[:2] for row in rows]
    assert ["0", "Default"] in [row[:2] for row in rows]

    run_listing = cli(server, "runs", "list", "--experiment-id", experiment.id)
    for i, run_id in enumerate(runs):
        line = next(line for line in run_listing.splitlines() if run_id in line)
        assert f"cli-run-{i}" in line

    described = json.loads(cli(server, "runs", "describe", "--run-id", runs[0]))
    assert described["info"]["run_id"] == runs[0]
    assert described["info"]["status"] == "FINISHED"
    assert described["data"]["params"] == {"alpha": "0.5"}
    assert described["data"]["metrics"] == {"score": 0.25}


def test_cli_creates_experiment(server: Server, client: mlflow.MlflowClient) -> None:
    name = unique_name("conf-cli-created")
    out = cli(server, "experiments", "create", "--experiment-name", name)
    created = client.get_experiment_by_name(name)
    assert created is not None
    assert created.experiment_id in out
    assert created.lifecycle_stage == "active"
