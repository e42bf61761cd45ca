"""What MLflow's own REST tests found labbook answering differently: each case here is
checked against `mlflow server` first (CONFORMANCE_SERVER=mlflow)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import mlflow
import requests
from conftest import Experiment, Server, unique_name
from mlflow.entities import LoggedModelInput, Metric

API = "/api/2.0/mlflow"


def test_a_logged_models_metrics_keep_their_dataset(
    experiment: Experiment, client: mlflow.MlflowClient
) -> None:
    run_id = client.create_run(experiment.id).info.run_id
    model_id = client.create_logged_model(experiment.id, source_run_id=run_id).model_id
    client.log_metric(
        run_id, "acc", 0.5, step=1, model_id=model_id, dataset_name="val", dataset_digest="d1"
    )
    client.log_batch(
        run_id,
        metrics=[
            Metric("f1", 0.25, 1000, 2, model_id=model_id, dataset_name="test", dataset_digest="d2")
        ],
    )
    got = {
        (m.key, m.dataset_name, m.dataset_digest)
        for m in client.get_logged_model(model_id).metrics or []
    }
    assert got == {("acc", "val", "d1"), ("f1", "test", "d2")}


def test_log_inputs_records_the_models_a_run_read(
    experiment: Experiment, client: mlflow.MlflowClient
) -> None:
    producer = client.create_run(experiment.id).info.run_id
    model_id = client.create_logged_model(experiment.id, source_run_id=producer).model_id
    consumer = client.create_run(experiment.id).info.run_id
    client.log_inputs(consumer, models=[LoggedModelInput(model_id)])
    inputs = client.get_run(consumer).inputs
    assert [m.model_id for m in inputs.model_inputs] == [model_id]


def test_a_logged_model_may_name_a_run_the_server_does_not_hold(
    experiment: Experiment, client: mlflow.MlflowClient
) -> None:
    elsewhere = "f" * 32
    model = client.create_logged_model(experiment.id, source_run_id=elsewhere)
    assert client.get_logged_model(model.model_id).source_run_id == elsewhere


def test_a_version_made_from_a_logged_model_is_listed_on_it(
    experiment: Experiment, client: mlflow.MlflowClient
) -> None:
    run_id = client.create_run(experiment.id).info.run_id
    model = client.create_logged_model(experiment.id, source_run_id=run_id)
    name = unique_name("conf-mv-tag")
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(
            name, f"models:/{model.model_id}", run_id=run_id, model_id=model.model_id
        )
    tag = client.get_logged_model(model.model_id).tags["mlflow.modelVersions"]
    assert json.loads(tag) == [{"name": name, "version": 1}, {"name": name, "version": 2}]


def test_search_logged_models_by_dataset(
    experiment: Experiment, client: mlflow.MlflowClient
) -> None:
    run_id = client.create_run(experiment.id).info.run_id
    cases = [
        ("a", "val", "d1", 0.9),
        ("b", "val", "d2", 0.5),
        ("c", "test", "d3", 0.7),
    ]
    for name, dataset, digest, value in cases:
        model_id = client.create_logged_model(
            experiment.id, name=name, source_run_id=run_id
        ).model_id
        client.log_metric(
            run_id, "acc", value, model_id=model_id, dataset_name=dataset, dataset_digest=digest
        )
    client.create_logged_model(experiment.id, name="bare")

    def names(**kwargs: object) -> list[str]:
        found = client.search_logged_models(
            [experiment.id], order_by=[{"field_name": "name"}], **kwargs
        )
        return [m.name for m in found]

    assert names() == ["a", "b", "bare", "c"]
    assert names(datasets=[{"dataset_name": "val", "dataset_digest": "d2"}]) == ["b"]
    both = [
        {"dataset_name": "val", "dataset_digest": "d1"},
        {"dataset_name": "test", "dataset_digest": "d3"},
    ]
    assert names(datasets=both) == ["a", "c"]
    # Over MLflow's REST API a dataset named without a digest is one logged without
    # (which MLflow's client refuses to log).
    assert names(datasets=[{"dataset_name": "val"}]) == []
    # A metric filter reads only the metrics on those datasets.
    on_test = [{"dataset_name": "test", "dataset_digest": "d3"}]
    assert names(filter_string="metrics.acc > 0.6", datasets=on_test) == ["c"]
    assert names(filter_string="metrics.acc > 0.6") == ["a", "c"]


def test_runs_started_together_come_in_run_id_order(
    experiment: Experiment, client: mlflow.MlflowClient
) -> None:
    start = 1_700_000_000_000
    ids = [client.create_run(experiment.id, start_time=start).info.run_id for _ in range(6)]
    found = [r.info.run_id for r in client.search_runs([experiment.id])]
    assert found == sorted(ids)
    by_name = [
        r.info.run_id
        for r in client.search_runs([experiment.id], order_by=["attributes.status ASC"])
    ]
    assert by_name == sorted(ids)


def test_model_versions_updated_together_come_by_name_then_newest_version(
    client: mlflow.MlflowClient,
) -> None:
    prefix = unique_name("conf-mv-order")
    for suffix in ("b", "a"):
        client.create_registered_model(f"{prefix}-{suffix}")
        for _ in range(3):
            client.create_model_version(f"{prefix}-{suffix}", "s3://bucket/model")
    found = client.search_model_versions(
        f"name LIKE '{prefix}-%'", order_by=["creation_timestamp ASC"]
    )
    by_time = [(v.creation_timestamp, v.name, int(v.version)) for v in found]
    # Within one creation time: name ascending, then version descending.
    assert by_time == sorted(by_time, key=lambda t: (t[0], t[1], -t[2]))
    plain = [
        (v.name, int(v.version)) for v in client.search_model_versions(f"name LIKE '{prefix}-%'")
    ]
    assert len(plain) == 6


def test_artifact_downloads_say_what_they_are(
    experiment: Experiment, client: mlflow.MlflowClient, base_url: str, tmp_path: Path
) -> None:
    files = {
        "notes.txt": (b"hello", "text/plain"),
        "conf.yaml": (b"a: 1", "text/plain"),
        "MLmodel": (b"flavors: {}", "text/plain"),
        # MLflow's list of text names has `mlproject` in lower case only.
        "mlproject": (b"name: p", "text/plain"),
        "MLproject": (b"name: p", "application/octet-stream"),
        "plot.png": (b"\x89PNG\r\n\x1a\n", "image/png"),
        "report.pdf": (b"%PDF-1.4", "application/pdf"),
        "page.html": (b"<script>alert(1)</script>", "text/html"),
        "blob.weird": (b"\x00\x01", "application/octet-stream"),
    }
    run_id = client.create_run(experiment.id).info.run_id
    for name, (data, _) in files.items():
        (tmp_path / name).write_bytes(data)
        client.log_artifact(run_id, str(tmp_path / name))
    root = client.get_run(run_id).info.artifact_uri.split("mlflow-artifacts:", 1)[1].strip("/")
    for name, (data, media) in files.items():
        for resp in (
            requests.get(f"{base_url}/get-artifact", params={"path": name, "run_uuid": run_id}),
            requests.get(f"{base_url}/api/2.0/mlflow-artifacts/artifacts/{root}/{name}"),
        ):
            assert resp.status_code == 200, resp.text
            assert resp.content == data
            assert resp.headers["Content-Type"].split(";")[0] == media, (name, resp.url)
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert resp.headers["Content-Disposition"] == f"attachment; filename={name}", resp.url


def test_a_relative_artifact_location_is_made_absolute(base_url: str, server: Server) -> None:
    name = unique_name("conf-relative")
    resp = requests.post(
        f"{base_url}{API}/experiments/create", json={"name": name, "artifact_location": "rel/dir"}
    )
    assert resp.status_code == 200, resp.text
    exp_id = resp.json()["experiment_id"]
    got = requests.get(f"{base_url}{API}/experiments/get", params={"experiment_id": exp_id}).json()
    location = got["experiment"]["artifact_location"]
    assert location.startswith("/") and location.endswith("/rel/dir"), location
    assert os.path.isabs(location)


def test_a_logged_models_files_are_listed(
    experiment: Experiment, base_url: str, tmp_path: Path
) -> None:
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="m", python_model=_Echo())
    resp = requests.get(f"{base_url}{API}/logged-models/{info.model_id}/artifacts/directories")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["root_uri"].endswith(f"/models/{info.model_id}/artifacts")
    names = {f["path"] for f in body["files"]}
    assert "MLmodel" in names
    mlmodel = next(f for f in body["files"] if f["path"] == "MLmodel")
    assert mlmodel["file_size"] > 0 and not mlmodel.get("is_dir", False)


class _Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context: object, model_input: list[str]) -> list[str]:
        return model_input


def test_tags_aliases_and_version_edits_leave_a_models_update_time(
    client: mlflow.MlflowClient,
) -> None:
    name = unique_name("conf-updated")
    client.create_registered_model(name)
    client.create_model_version(name, "s3://bucket/model")
    before = client.get_registered_model(name).last_updated_timestamp
    time.sleep(0.01)
    client.update_model_version(name, "1", description="better")
    client.set_model_version_tag(name, "1", "k", "v")
    client.set_registered_model_tag(name, "k", "v")
    client.set_registered_model_alias(name, "a", "1")
    assert client.get_registered_model(name).last_updated_timestamp == before
    client.update_registered_model(name, description="changed")
    assert client.get_registered_model(name).last_updated_timestamp > before


def test_a_path_starting_with_two_slashes_is_served(base_url: str) -> None:
    # A base URL ending in "/" joined with "/api/..." sends "//api/...":
    # MLflow's server routes it as one slash; so must labbook (not the
    # dashboard's HTML page).
    resp = requests.get(
        f"{base_url}//api/2.0/mlflow/experiments/get", params={"experiment_id": "0"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["experiment"]["experiment_id"] == "0"
    runs = requests.post(
        f"{base_url}//api/2.0/mlflow/runs/search", json={"experiment_ids": ["0"], "max_results": 1}
    )
    assert runs.status_code == 200, runs.text


def test_a_copied_version_downloads_what_its_source_version_holds(
    experiment: Experiment, client: mlflow.MlflowClient
) -> None:
    run_id = client.create_run(experiment.id).info.run_id
    artifacts = client.get_run(run_id).info.artifact_uri
    source_name = unique_name("conf-copy-src")
    client.create_registered_model(source_name)
    original = client.create_model_version(source_name, f"{artifacts}/model", run_id=run_id)
    copy_name = unique_name("conf-copy-dst")
    copied = client.copy_model_version(f"models:/{source_name}/{original.version}", copy_name)
    assert copied.source == f"models:/{source_name}/{original.version}"
    assert copied.run_id == run_id
    assert client.get_model_version_download_uri(
        copy_name, copied.version
    ) == client.get_model_version_download_uri(source_name, original.version)
    # A copy of a copy still reaches the files.
    again = client.copy_model_version(f"models:/{copy_name}/{copied.version}", copy_name)
    assert client.get_model_version_download_uri(copy_name, again.version) == f"{artifacts}/model"


def test_a_version_copied_from_a_missing_one_is_refused(
    server: Server, client: mlflow.MlflowClient
) -> None:
    name = unique_name("conf-copy-missing")
    client.create_registered_model(name)
    for source in (f"models:/{unique_name('nosuch')}/1", f"models:/{name}/7"):
        resp = requests.post(
            f"{server.url}{API}/model-versions/create",
            json={"name": name, "source": source},
            timeout=30,
        )
        assert resp.status_code == 404, (source, resp.status_code, resp.text[:300])
        assert resp.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert client.search_model_versions(f"name = '{name}'") == []
