"""The everyday fluent API, end to end, read back with MlflowClient."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from conftest import STORED_INF, Experiment
from mlflow.entities import RunStatus
from PIL import Image


def _walk(
    client: mlflow.MlflowClient, run_id: str, path: str | None = None
) -> dict[str, int | None]:
    """Every artifact path under `path`, recursively: file -> size, directory -> None."""
    found: dict[str, int | None] = {}
    for info in client.list_artifacts(run_id, path):
        if info.is_dir:
            found[info.path] = None
            found.update(_walk(client, run_id, info.path))
        else:
            found[info.path] = info.file_size
    return found


def test_fluent_run_round_trips(
    experiment: Experiment, client: mlflow.MlflowClient, tmp_path: Path
) -> None:
    # Files for the artifact calls.
    single = tmp_path / "notes.txt"
    single.write_bytes(b"hello artifact\n\x00\x01binary tail")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a")
    (tree / "sub" / "b.bin").write_bytes(bytes(range(256)) * 4)

    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    dataset = mlflow.data.from_pandas(df, source="/data/train.csv", name="train-set", targets="y")
    image = (np.arange(12 * 10 * 3) % 256).astype(np.uint8).reshape(12, 10, 3)

    with mlflow.start_run(run_name="fluent-run") as active:
        run_id = active.info.run_id
        assert active.info.experiment_id == experiment.id
        assert active.info.run_name == "fluent-run"
        mlflow.log_param("lr", 0.01)
        mlflow.log_params({"depth": 4, "optimizer": "adam", "note": "spaces and ünïcode"})
        mlflow.log_metric("loss", 1.5, step=0)
        mlflow.log_metric("loss", 0.75, step=1)
        mlflow.log_metric("loss", 0.25, step=2)
        mlflow.log_metrics({"acc": 0.5, "f1": 0.25}, step=7)
        mlflow.log_metric("nan_metric", float("nan"))
        mlflow.log_metric("pos_inf", float("inf"))
        mlflow.log_metric("neg_inf", float("-inf"))
        mlflow.set_tag("team", "vision")
        mlflow.set_tags({"stage": "dev", "priority": 3})
        mlflow.log_artifact(str(single))
        mlflow.log_artifact(str(single), artifact_path="copies")
        mlflow.log_artifacts(str(tree), artifact_path="tree")
        mlflow.log_dict({"k": [1, 2, {"n": None}]}, "config/settings.json")
        mlflow.log_text("some text\nline 2\n", "text/readme.txt")
        mlflow.log_image(image, artifact_file="images/pic.png")
        mlflow.log_input(dataset, context="training")

    run = client.get_run(run_id)
    assert run.info.status == RunStatus.to_string(RunStatus.FINISHED)
    assert run.info.experiment_id == experiment.id
    assert run.info.run_name == "fluent-run"
    assert run.info.end_time is not None and run.info.end_time >= run.info.start_time
    assert run.info.lifecycle_stage == "active"

    assert run.data.params == {
        "lr": "0.01",
        "depth": "4",
        "optimizer": "adam",
        "note": "spaces and ünïcode",
    }

    metrics = run.data.metrics
    assert metrics["loss"] == 0.25
    assert metrics["acc"] == 0.5
    assert metrics["f1"] == 0.25
    assert math.isnan(metrics["nan_metric"])
    assert metrics["pos_inf"] == STORED_INF
    assert metrics["neg_inf"] == -STORED_INF
    assert set(metrics) == {"loss", "acc", "f1", "nan_metric", "pos_inf", "neg_inf"}

    history = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.5), (1, 0.75), (2, 0.25)]
    acc = client.get_metric_history(run_id, "acc")
    assert [(m.step, m.value) for m in acc] == [(7, 0.5)]

    tags = run.data.tags
    assert tags["team"] == "vision"
    assert tags["stage"] == "dev"
    assert tags["priority"] == "3"
    assert tags["mlflow.runName"] == "fluent-run"
    # The client sets these itself on create_run.
    assert "mlflow.user" in tags
    assert "mlflow.source.name" in tags

    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1
    ds = inputs[0].dataset
    assert ds.name == "train-set"
    assert ds.digest == dataset.digest
    assert ds.source_type == "local"
    assert json.loads(ds.source) == {"uri": "/data/train.csv"}
    # Every string of the dataset entity round-trips exactly.
    sent = dataset._to_mlflow_entity()
    assert (ds.source, ds.schema, ds.profile) == (sent.source, sent.schema, sent.profile)
    assert json.loads(ds.schema)["mlflow_colspec"][0]["name"] == "x"
    assert {(t.key, t.value) for t in inputs[0].tags} == {("mlflow.data.context", "training")}

    listed = _walk(client, run_id)
    expected_sizes = {
        "notes.txt": single.stat().st_size,
        "copies/notes.txt": single.stat().st_size,
        "tree/a.txt": 1,
        "tree/sub/b.bin": 1024,
        "text/readme.txt": len(b"some text\nline 2\n"),
    }
    for path, size in expected_sizes.items():
        assert listed.get(path) == size, (path, listed)
    for directory in ("copies", "tree", "tree/sub", "config", "text", "images"):
        assert directory in listed and listed[directory] is None, (directory, listed)
    assert "config/settings.json" in listed
    assert "images/pic.png" in listed
    assert set(listed) == set(expected_sizes) | {
        "copies",
        "tree",
        "tree/sub",
        "config",
        "text",
        "images",
        "config/settings.json",
        "images/pic.png",
    }

    out = tmp_path / "download"
    out.mkdir()
    got = Path(client.download_artifacts(run_id, "notes.txt", str(out)))
    assert got.read_bytes() == single.read_bytes()
    got_tree = Path(client.download_artifacts(run_id, "tree", str(out)))
    assert (got_tree / "a.txt").read_text() == "a"
    assert (got_tree / "sub" / "b.bin").read_bytes() == (tree / "sub" / "b.bin").read_bytes()
    settings = Path(client.download_artifacts(run_id, "config/settings.json", str(out)))
    assert json.loads(settings.read_text()) == {"k": [1, 2, {"n": None}]}
    readme = Path(client.download_artifacts(run_id, "text/readme.txt", str(out)))
    assert readme.read_text() == "some text\nline 2\n"
    pic = Path(client.download_artifacts(run_id, "images/pic.png", str(out)))
    with Image.open(io.BytesIO(pic.read_bytes())) as loaded:
        assert np.array_equal(np.asarray(loaded), image)

    # The same through the fluent helpers.
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/text/readme.txt") == "some text\nline 2\n"
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/config/settings.json") == {
        "k": [1, 2, {"n": None}]
    }


def test_run_lifecycle_and_status(experiment: Experiment, client: mlflow.MlflowClient) -> None:
    run = mlflow.start_run(run_name="will-fail")
    run_id = run.info.run_id
    assert client.get_run(run_id).info.status == "RUNNING"
    assert client.get_run(run_id).info.end_time is None
    mlflow.end_run(status="FAILED")
    got = client.get_run(run_id)
    assert got.info.status == "FAILED"
    assert got.info.end_time is not None

    # Client-level create/terminate with an explicit start time and tags.
    created = client.create_run(experiment.id, start_time=1_700_000_000_000, tags={"k": "v"})
    assert created.info.start_time == 1_700_000_000_000
    assert created.info.status == "RUNNING"
    client.set_terminated(created.info.run_id, status="KILLED", end_time=1_700_000_005_000)
    got = client.get_run(created.info.run_id)
    assert got.info.status == "KILLED"
    assert got.info.end_time == 1_700_000_005_000
    assert got.data.tags["k"] == "v"

    # Rename through update_run; the runName tag follows.
    client.update_run(created.info.run_id, name="renamed")
    got = client.get_run(created.info.run_id)
    assert got.info.run_name == "renamed"
    assert got.data.tags["mlflow.runName"] == "renamed"

    client.delete_tag(created.info.run_id, "k")
    assert "k" not in client.get_run(created.info.run_id).data.tags


def test_nested_runs_and_parent_tag(experiment: Experiment, client: mlflow.MlflowClient) -> None:
    with (
        mlflow.start_run(run_name="parent") as parent,
        mlflow.start_run(run_name="child", nested=True) as child,
    ):
        mlflow.log_metric("m", 1.0)
    got = client.get_run(child.info.run_id)
    assert got.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert got.info.experiment_id == experiment.id
    children = client.search_runs(
        [experiment.id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert [r.info.run_id for r in children] == [child.info.run_id]
