"""Artifact contents kept outside the store: `labbook serve --artifacts s3://…`
against s3s-fs (a real S3-protocol server), and `--artifacts file:///…`, driven
by the unchanged `mlflow` client and the labbook commands.

The contents land in the bucket once per distinct file, named by hash; the
store directory keeps none of them; a bucket that stops answering makes
artifact calls fail with MLflow's 503 while everything else goes on, and
nothing half-uploaded becomes visible; the location is recorded, so a
restarted server (or any later command) finds the contents without being
told again."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import requests
from conftest import (
    ON_POSTGRES,
    LabbookServers,
    Server,
    StoreRef,
    _labbook_binary,
    labbook_only,
    store_args,
    store_env,
)
from s3_server import S3Server, s3s_binary

# Most of these servers keep their runs in a .labbook folder, which the tests
# inspect: the first pass of the suite runs them. A stopped bucket matters as
# much to a team database, and runs in both passes.
folder_only = pytest.mark.skipif(
    ON_POSTGRES, reason="about a .labbook store's own folder; run in the folder pass"
)

BLOB_KEY = re.compile(r"^lab/blobs/([0-9a-f]{2})/(\1[0-9a-f]{62})$")


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3Server]:
    binary = s3s_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("s3s-fs is missing: CI must build it (make .tools/bin/s3s-fs)")
        pytest.skip("s3s-fs is not built here: `make .tools/bin/s3s-fs`")
    server = S3Server(binary, tmp_path / "s3", tmp_path / "s3.log")
    server.start()
    server.make_bucket("team")
    try:
        yield server
    finally:
        server.stop()


def serve(servers: LabbookServers, tmp: Path, s3: S3Server, *args: str) -> Server:
    return servers.start(tmp, env=s3.env(), args=("--artifacts", "s3://team/lab", *args))


def blobs(s3: S3Server) -> dict[str, bytes]:
    objects = s3.objects("team")
    for key in objects:
        assert BLOB_KEY.match(key), f"an object that is not a blob: {key}"
    return objects


def spool_is_empty(store: Path) -> bool:
    tmp = store / "artifacts" / "tmp"
    return not tmp.exists() or not any(tmp.iterdir())


@labbook_only
@folder_only
def test_contents_live_in_the_bucket_once_each_and_read_back(
    tmp_path: Path, labbook_servers: LabbookServers, s3: S3Server
) -> None:
    server = serve(labbook_servers, tmp_path, s3)
    client = mlflow.MlflowClient(tracking_uri=server.url)
    run = client.create_run(client.create_experiment("s3-artifacts")).info.run_id
    src = tmp_path / "src"
    (src / "nested").mkdir(parents=True)
    (src / "a.txt").write_text("same bytes\n")
    (src / "nested" / "b.txt").write_text("same bytes\n")
    # Past the 8 MiB part size: a multipart upload of three parts.
    big = os.urandom(20 << 20)
    (src / "weights.bin").write_bytes(big)
    client.log_artifacts(run, str(src))

    objects = blobs(s3)
    assert sorted(objects.values(), key=len) == [b"same bytes\n", big]
    store = tmp_path / ".labbook"
    assert not (store / "artifacts" / "blobs").exists(), "contents were kept in the store too"
    assert spool_is_empty(store)

    out = tmp_path / "out"
    client.download_artifacts(run, "", str(out))
    assert (out / "a.txt").read_text() == "same bytes\n"
    assert (out / "nested" / "b.txt").read_text() == "same bytes\n"
    assert (out / "weights.bin").read_bytes() == big

    # Overwriting a path with new contents frees the old object once no
    # path holds it; the twin path keeps the shared one.
    (src / "a.txt").write_text("new bytes\n")
    client.log_artifact(run, str(src / "a.txt"))
    assert sorted(blobs(s3).values(), key=len) == [b"new bytes\n", b"same bytes\n", big]
    client.log_artifact(run, str(src / "a.txt"), "nested")  # nested/a.txt
    (src / "nested" / "b.txt").write_text("new bytes\n")
    client.log_artifact(run, str(src / "nested" / "b.txt"), "nested")
    assert sorted(blobs(s3).values(), key=len) == [b"new bytes\n", big]


@labbook_only
@folder_only
def test_the_location_is_recorded_and_a_different_one_refused(
    tmp_path: Path, labbook_servers: LabbookServers, s3: S3Server
) -> None:
    server = serve(labbook_servers, tmp_path, s3)
    _, run = run_with_file(server.url, tmp_path / "model.txt", "weights")
    labbook_servers.stop_all()
    # The bucket's client goes with the store when the server stops on SIGTERM.
    assert "panicked" not in (tmp_path / "server.log").read_text()

    # Restarted without --artifacts: the store says where its contents are.
    again = labbook_servers.start(tmp_path, env=s3.env())
    got = requests.get(
        f"{again.url}/api/2.0/mlflow-artifacts/artifacts/{_artifact_path(again.url, run)}/model.txt",
        timeout=30,
    )
    assert got.status_code == 200 and got.content == b"weights"
    labbook_servers.stop_all()

    moved = subprocess.run(
        [
            str(_labbook_binary()),
            "--dir",
            str(tmp_path / ".labbook"),
            "serve",
            "--port",
            "0",
            "--artifacts",
            "s3://team/other",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **s3.env()},
    )
    assert moved.returncode != 0
    assert "s3://team/lab" in moved.stderr and "s3://team/other" in moved.stderr
    assert "Traceback" not in moved.stderr and "panicked" not in moved.stderr


@labbook_only
@folder_only
def test_serve_refuses_a_bucket_it_cannot_write(tmp_path: Path, s3: S3Server) -> None:
    cases = {
        "s3://no-such-bucket/x": s3.env(),
        "s3://team/x": {**s3.env(), "AWS_SECRET_ACCESS_KEY": "wrong-secret"},
    }
    for i, (location, env) in enumerate(cases.items()):
        done = subprocess.run(
            [
                str(_labbook_binary()),
                "--dir",
                str(tmp_path / f"store{i}"),
                "serve",
                "--port",
                "0",
                "--artifacts",
                location,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **env},
        )
        assert done.returncode != 0, location
        assert location in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) <= 2, done.stderr  # the error and its hint
        assert not (tmp_path / f"store{i}" / "artifacts" / "location").exists()


@labbook_only
@pytest.mark.outage
def test_a_stopped_bucket_fails_artifact_calls_with_503_and_nothing_half_visible(
    tmp_path: Path, labbook_servers: LabbookServers, s3: S3Server, fresh_store: StoreRef
) -> None:
    # Its own temporary folder: a team database's server spools uploads there.
    spool_root = tmp_path / "tmp"
    spool_root.mkdir()
    server = labbook_servers.start(
        tmp_path,
        env={**s3.env(), **store_env(fresh_store), "TMPDIR": str(spool_root)},
        args=("--artifacts", "s3://team/lab"),
    )
    client, run = run_with_file(server.url, tmp_path / "before.txt", "kept")
    (tmp_path / "doomed.txt").write_text("doomed")
    client.log_artifact(run, str(tmp_path / "doomed.txt"))
    base = f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{_artifact_path(server.url, run)}"
    before = blobs(s3)

    s3.stop()
    put = requests.put(f"{base}/during.bin", data=os.urandom(12 << 20), timeout=60)
    assert put.status_code == 503, put.text
    assert put.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert "s3://team/lab" in put.json()["message"]
    got = requests.get(f"{base}/before.txt", timeout=60)
    assert got.status_code == 503 and got.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    # The rest of the server goes on: metrics, and the artifact index.
    client.log_metric(run, "loss", 0.25, step=1)
    listed = [f.path for f in client.list_artifacts(run)]
    assert listed == ["before.txt", "doomed.txt"], "the failed upload became visible"
    # A delete still takes the path away; its object waits for `gc`.
    assert requests.delete(f"{base}/doomed.txt", timeout=60).status_code == 200
    assert [f.path for f in client.list_artifacts(run)] == ["before.txt"]
    assert spool_is_empty(tmp_path / ".labbook")
    assert not [p for p in spool_root.rglob("*") if p.is_file()], "an upload left in the spool"

    s3.start()
    assert blobs(s3) == before, "a half-written object is visible in the bucket"
    labbook_cli(fresh_store, s3, "gc")
    assert sorted(blobs(s3).values()) == [b"kept"]
    assert requests.get(f"{base}/before.txt", timeout=60).content == b"kept"
    assert requests.put(f"{base}/after.txt", data=b"later", timeout=60).status_code == 200
    assert sorted(f.path for f in client.list_artifacts(run)) == ["after.txt", "before.txt"]
    assert client.get_metric_history(run, "loss")[0].value == 0.25


def run_with_file(url: str, file: Path, text: str) -> tuple[mlflow.MlflowClient, str]:
    """A new run of a new experiment with `file` (holding `text`) logged."""
    client = mlflow.MlflowClient(tracking_uri=url)
    run: str = client.create_run(client.create_experiment(f"with-{file.stem}")).info.run_id
    file.write_text(text)
    client.log_artifact(run, str(file))
    return client, run


def labbook_cli(store: StoreRef, s3: S3Server, *args: str) -> str:
    """`labbook --dir STORE ARGS…` (or `--store URL`) reaching the bucket,
    which must succeed; its output."""
    done = subprocess.run(
        [str(_labbook_binary()), *store_args(store), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **s3.env()},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _artifact_path(url: str, run_id: str) -> str:
    """The run's folder under the artifact proxy, from its artifact URI."""
    got = requests.get(f"{url}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=30)
    uri: str = got.json()["run"]["info"]["artifact_uri"]
    return uri.split("mlflow-artifacts:/", 1)[1].lstrip("/")


@labbook_only
@folder_only
def test_gc_frees_a_deleted_versions_objects_in_the_bucket(
    tmp_path: Path, labbook_servers: LabbookServers, s3: S3Server
) -> None:
    serve(labbook_servers, tmp_path, s3)

    def labbook(*args: str) -> str:
        return labbook_cli(tmp_path / ".labbook", s3, *args)

    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("x,y\n1,2\n")
    (data / "test.csv").write_text("x,y\n3,4\n")
    labbook("artifact", "log", str(data), "--name", "spirals", "--type", "dataset")
    assert sorted(blobs(s3).values()) == [b"x,y\n1,2\n", b"x,y\n3,4\n"]
    out = tmp_path / "got"
    labbook("artifact", "get", "spirals:v0", "-o", str(out))
    assert (out / "train.csv").read_text() == "x,y\n1,2\n"

    labbook("artifact", "rm", "spirals:v0")
    dry = json.loads(labbook("gc", "--dry-run", "--json"))
    assert len(dry["blobs"]) == 2 and blobs(s3), "a dry run removed objects"
    freed = json.loads(labbook("gc", "--json"))
    assert len(freed["blobs"]) == 2
    assert blobs(s3) == {}


@labbook_only
@folder_only
def test_a_shared_folder_keeps_the_contents(
    tmp_path: Path, labbook_servers: LabbookServers
) -> None:
    shared = tmp_path / "shared" / "labbook"
    server = labbook_servers.start(tmp_path, args=("--artifacts", f"file://{shared}"))
    client = mlflow.MlflowClient(tracking_uri=server.url)
    run = client.create_run(client.create_experiment("shared-folder")).info.run_id
    (tmp_path / "a.txt").write_text("on the share")
    client.log_artifact(run, str(tmp_path / "a.txt"))
    held = [p for p in (shared / "blobs").rglob("*") if p.is_file()]
    assert [p.read_text() for p in held] == ["on the share"]
    assert not (tmp_path / ".labbook" / "artifacts" / "blobs").exists()
    assert (
        tmp_path / ".labbook" / "artifacts" / "location"
    ).read_text().strip() == f"file://{shared}"
    out = tmp_path / "out"
    client.download_artifacts(run, "a.txt", str(out))
    assert (out / "a.txt").read_text() == "on the share"
