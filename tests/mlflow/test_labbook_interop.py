"""labbook only: MLflow runs are labbook runs, and labbook runs are MLflow runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any
from urllib.parse import quote

import mlflow
import pytest
import requests
from conftest import Experiment, Server, labbook_only, unique_name

pytestmark = labbook_only


def labbook(server: Server, *args: str) -> str:
    if server.binary is None or server.store_dir is None:
        pytest.skip(
            "needs the labbook binary and a .labbook store: the run commands read a folder, "
            "not a team database"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABBOOK_", "MLFLOW_"))}
    done = subprocess.run(
        [str(server.binary), "--dir", str(server.store_dir), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"labbook {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


def as_text(value: Any) -> str:
    """A config value as MLflow would show it (params are strings in MLflow)."""
    return value if isinstance(value, str) else json.dumps(value)


def test_mlflow_run_in_labbook_ls_and_dashboard_api(
    server: Server, experiment: Experiment, http: requests.Session
) -> None:
    with mlflow.start_run(run_name="interop") as run:
        mlflow.log_params({"lr": "0.01", "depth": "4", "opt": "adam"})
        mlflow.log_metric("loss", 0.5, step=0)
        mlflow.log_metric("loss", 0.25, step=1)
        mlflow.log_metric("acc", 0.75, step=1)
        mlflow.set_tag("team", "vision")
    run_id = run.info.run_id

    listed = json.loads(labbook(server, "ls", "--json", "--project", experiment.name))
    assert isinstance(listed, list)
    (found,) = [r for r in listed if r["id"] == run_id]
    assert found["name"] == "interop"
    assert found["project"] == experiment.name
    assert found["status"] == "finished"
    assert {k: as_text(found["config"][k]) for k in ("lr", "depth", "opt")} == {
        "lr": "0.01",
        "depth": "4",
        "opt": "adam",
    }
    loss = found["metrics"]["loss"]
    assert (loss["count"], loss["last"], loss["last_step"]) == (2, 0.25, 1)
    assert (loss["min"], loss["max"]) == (0.25, 0.5)
    assert found["metrics"]["acc"]["last"] == 0.75

    resp = http.get(f"{server.url}/api/v1/projects/{quote(experiment.name, safe='')}/runs")
    assert resp.status_code == 200, resp.text
    runs = resp.json()["runs"]
    (api_run,) = [r for r in runs if r["id"] == run_id]
    assert api_run["name"] == "interop"
    assert as_text(api_run["config"]["lr"]) == "0.01"
    assert api_run["metrics"]["loss"]["last"] == 0.25
    assert api_run["metrics"]["loss"]["count"] == 2


def test_native_labbook_run_visible_to_mlflow(server: Server, client: mlflow.MlflowClient) -> None:
    project = unique_name("conf-native")
    labbook(
        server,
        "run",
        "--project",
        project,
        "--name",
        "native-run",
        "--config",
        "lr=0.1",
        "--",
        sys.executable,
        "-c",
        "print(1)",
    )
    experiment = client.get_experiment_by_name(project)
    assert experiment is not None
    frame = mlflow.search_runs(experiment_names=[project])
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row["tags.mlflow.runName"] == "native-run"
    assert row["status"] == "FINISHED"
    assert row["params.lr"] == "0.1"
    got = client.get_run(str(row["run_id"]))
    assert got.info.run_name == "native-run"
    assert got.info.experiment_id == experiment.experiment_id
    assert got.info.end_time is not None and got.info.end_time >= got.info.start_time


def test_secrets_in_params_and_tags_never_reach_the_store(
    server: Server, experiment: Experiment, client: mlflow.MlflowClient
) -> None:
    """A param or tag named like a secret is stored as ``***``; credentials in
    URLs are removed from the rest. The real client logs; the store's bytes
    are then searched. The secrets are made at run time: a literal in this
    file could reach the store through a captured git diff."""
    secret = {name: f"{name}-{uuid.uuid4().hex}" for name in ("p1", "p2", "p3", "t1", "t2")}
    with mlflow.start_run(experiment_id=experiment.id) as run:
        mlflow.log_param("api_key", secret["p1"])
        mlflow.log_params(
            {"hf_token": secret["p2"], "db": f"postgres://me:{secret['p3']}@db.example/x"}
        )
        mlflow.log_param("lr", "0.01")
        mlflow.set_tag("repo", f"https://oauth2:{secret['t1']}@gitlab.example/a/b.git")
        mlflow.set_tag("WANDB_API_KEY", secret["t2"])
        mlflow.set_tag("plain", "kept as sent")
        # Logging the same param again is the same value, not a change.
        mlflow.log_param("api_key", secret["p1"])
    got = client.get_run(run.info.run_id).data
    assert got.params["api_key"] == "***" and got.params["hf_token"] == "***"
    assert got.params["db"] == "postgres://me:***@db.example/x"
    assert got.params["lr"] == "0.01"
    assert got.tags["repo"] == "https://gitlab.example/a/b.git"
    assert got.tags["WANDB_API_KEY"] == "***" and got.tags["plain"] == "kept as sent"
    if server.store_dir is None:
        pytest.skip("needs the store's files (set CONFORMANCE_STORE)")
    stored = b"".join(p.read_bytes() for p in server.store_dir.iterdir() if p.is_file())
    for name, value in secret.items():
        assert value.encode() not in stored, f"secret {name} reached the store"


def test_params_in_exponent_form_filter_and_sort_as_numbers(
    server: Server, experiment: Experiment
) -> None:
    # Hugging Face's default learning rate reaches MLflow as "5e-05".
    ids = {}
    for lr in ("5e-05", "0.001", "1e-12", "0.1"):
        with mlflow.start_run() as run:
            mlflow.log_param("learning_rate", lr)
        ids[run.info.run_id] = lr
    small = json.loads(
        labbook(
            server,
            "ls",
            "--json",
            "--project",
            experiment.name,
            "--filter",
            "config.learning_rate < 0.01",
            "--sort",
            "config.learning_rate",
        )
    )
    assert [ids[r["id"]] for r in small] == ["1e-12", "5e-05", "0.001"]
    assert all(isinstance(r["config"]["learning_rate"], float) for r in small)


def test_labbook_show_has_tags_datasets_models_and_files(
    server: Server, experiment: Experiment, tmp_path: Any
) -> None:
    import pandas as pd

    (tmp_path / "notes.txt").write_text("hello")
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.set_tag("team", "vision")
        frame = pd.DataFrame({"x": [1, 2, 3]})
        mlflow.log_input(mlflow.data.from_pandas(frame, name="spirals"), context="training")
        mlflow.log_artifact(str(tmp_path / "notes.txt"), artifact_path="docs")
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_param("lr", "0.1")
    shown = json.loads(labbook(server, "show", "--json", parent.info.run_id))
    assert shown["kv_tags"]["team"] == "vision"
    assert [d["name"] for d in shown["inputs"]] == ["spirals"]
    assert shown["artifacts"] == [{"path": "docs/notes.txt", "size": 5}]
    text = labbook(server, "show", parent.info.run_id)
    for heading in ("tags", "datasets", "artifacts"):
        assert f"\n{heading}\n" in text, text
    assert "team = vision" in text and "docs/notes.txt" in text and "spirals" in text
    kid = json.loads(labbook(server, "show", "--json", child.info.run_id))
    assert kid["parent"] == parent.info.run_id
    assert f"parent    {parent.info.run_id}" in labbook(server, "show", child.info.run_id)
    nested = json.loads(
        labbook(
            server,
            "ls",
            "--json",
            "--project",
            experiment.name,
            "--filter",
            f'parent = "{parent.info.run_id}"',
        )
    )
    assert [r["id"] for r in nested] == [child.info.run_id]


def test_labbook_models_lists_and_shows_the_registry(
    server: Server, experiment: Experiment
) -> None:
    client = mlflow.MlflowClient()
    name = unique_name("cli-model")
    with mlflow.start_run(run_name="maker") as run:
        pass
    client.create_registered_model(name, description="a baseline")
    artifacts = client.get_run(run.info.run_id).info.artifact_uri
    for _ in range(2):
        client.create_model_version(name, f"{artifacts}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", "2")
    listed = json.loads(labbook(server, "models", "ls", "--json"))
    (mine,) = [m for m in listed if m["name"] == name]
    assert mine["aliases"] == {"champion": 2}
    assert [v["version"] for v in mine["versions"]] == [2, 1]
    assert mine["versions"][0]["run_name"] == "maker"
    text = labbook(server, "models", "show", name)
    assert "a baseline" in text and "@champion" in text and "maker" in text, text
    table = labbook(server, "models", "ls")
    assert any(line.startswith(name) and "@champion=v2" in line for line in table.splitlines()), (
        table
    )


def test_dashboard_downloads_survive_compression(
    server: Server, experiment: Experiment, base_url: str, tmp_path: Any
) -> None:
    body = json.dumps({"rows": list(range(5000))}).encode()
    (tmp_path / "data.json").write_bytes(body)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "data.json"))
    url = f"{base_url}/api/v1/runs/{run.info.run_id}/artifacts/raw"
    for encoding in ("gzip", "gzip, deflate, br, zstd", "identity"):
        resp = requests.get(
            url, params={"path": "data.json"}, headers={"Accept-Encoding": encoding}
        )
        assert resp.status_code == 200, resp.text
        assert resp.content == body, encoding
    preview = requests.get(f"{url[: -len('/raw')]}/preview", params={"path": "data.json"}).json()
    assert preview["kind"] == "text" and preview["format"] == "json"


def test_mlflow_datasets_and_logged_models_join_labbooks_lineage(
    server: Server, experiment: Experiment
) -> None:
    import numpy as np
    from mlflow.entities import LoggedModelInput
    from sklearn.linear_model import LogisticRegression

    features = np.arange(40, dtype=float).reshape(20, 2)
    labels = np.arange(20) % 2
    with mlflow.start_run(run_name="fit"):
        dataset = mlflow.data.from_numpy(features, source="data/spirals.npy", name="spirals")
        mlflow.log_input(dataset, context="training")
        info = mlflow.sklearn.log_model(LogisticRegression().fit(features, labels), name="clf")
    with mlflow.start_run(run_name="evaluate") as evaluate:
        mlflow.MlflowClient().log_inputs(
            evaluate.info.run_id, models=[LoggedModelInput(info.model_id)]
        )

    listed = {
        a["name"]: a
        for a in json.loads(
            labbook(server, "artifact", "ls", "--project", experiment.name, "--json")
        )
    }
    assert listed["spirals"]["type"] == "dataset"
    assert listed["clf"]["type"] == "model"
    shown = json.loads(
        labbook(server, "artifact", "show", "clf", "--project", experiment.name, "--json")
    )
    assert shown["metadata"]["mlflow"]["model_id"] == info.model_id
    assert "MLmodel" in {f["path"] for f in shown["file_list"]}, "the model's own files, no copy"
    assert {(r["run_name"], r["role"]) for r in shown["runs"]} == {
        ("fit", "output"),
        ("evaluate", "input"),
    }
    data = json.loads(
        labbook(server, "artifact", "show", "spirals", "--project", experiment.name, "--json")
    )
    assert data["metadata"]["mlflow"]["digest"] == dataset.digest
    assert "data/spirals.npy" in json.dumps(data["metadata"]["mlflow"]["source"])
    assert data["metadata"]["mlflow"]["source_type"] == dataset.source._get_source_type()

    graph = json.loads(
        labbook(server, "lineage", "spirals", "--project", experiment.name, "--json")
    )
    names = {n["id"]: n["name"] for n in graph["nodes"]}
    edges = {(names[e["from"]], names[e["to"]]) for e in graph["edges"]}
    assert edges == {("spirals", "fit"), ("fit", "clf"), ("clf", "evaluate")}


def test_a_labbook_artifact_logged_on_a_run_is_in_mlflows_listing(
    server: Server, experiment: Experiment, tmp_path: Any
) -> None:
    with mlflow.start_run(run_name="producer") as run:
        pass
    data = tmp_path / "weights"
    (data / "sub").mkdir(parents=True)
    (data / "w.bin").write_bytes(b"\x00\x01" * 1000)
    (data / "sub" / "cfg.json").write_text('{"layers": 2}')
    labbook(
        server,
        "artifact",
        "log",
        str(data),
        "--name",
        "ckpt",
        "--type",
        "model",
        "--run",
        run.info.run_id,
    )
    client = mlflow.MlflowClient()
    top = {f.path: f for f in client.list_artifacts(run.info.run_id)}
    assert top["ckpt"].is_dir
    inside = {f.path: f.file_size for f in client.list_artifacts(run.info.run_id, "ckpt")}
    assert inside == {"ckpt/sub": None, "ckpt/w.bin": 2000}
    got = client.download_artifacts(run.info.run_id, "ckpt/sub/cfg.json", str(tmp_path / "dl"))
    assert json.loads(open(got).read()) == {"layers": 2}
