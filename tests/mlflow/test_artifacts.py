"""Artifacts through the tracking server's proxy (mlflow-artifacts)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import mlflow
import pytest
import requests
from conftest import Experiment

PROXY = "/api/2.0/mlflow-artifacts/artifacts"


def proxied_root(artifact_uri: str) -> str:
    """The run's artifact root as a path under the proxy endpoint."""
    if artifact_uri.startswith("mlflow-artifacts:"):
        rest = artifact_uri[len("mlflow-artifacts:") :]
        if rest.startswith("//"):  # mlflow-artifacts://host:port/path
            rest = rest[2:].split("/", 1)[1] if "/" in rest[2:] else ""
        return rest.strip("/")
    if PROXY in artifact_uri:
        return artifact_uri.split(PROXY, 1)[1].strip("/")
    pytest.fail(f"artifact_uri {artifact_uri!r} is not served through the artifact proxy")


@pytest.fixture
def populated(experiment: Experiment, tmp_path: Path) -> tuple[str, Path]:
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "top.txt").write_text("top")
    (src / "empty.bin").write_bytes(b"")
    (src / "sub" / "mid.json").write_text('{"a": 1}')
    (src / "sub" / "deeper" / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (src / "sub" / "name with spaces é.txt").write_text("spaced")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(src))
        mlflow.log_artifact(str(src / "top.txt"), artifact_path="a/b/c")
    return run.info.run_id, src


def test_list_sizes_and_dirs(populated: tuple[str, Path], client: mlflow.MlflowClient) -> None:
    run_id, src = populated
    root = client.list_artifacts(run_id)
    # MLflow leaves file_size out for an empty file (the client reads None); 0 is fine too.
    assert [(f.path, f.is_dir, f.file_size or 0) for f in root] == [
        ("a", True, 0),
        ("empty.bin", False, 0),
        ("sub", True, 0),
        ("top.txt", False, 3),
    ]
    assert root[0].file_size is None and root[2].file_size is None  # directories have no size
    sub = client.list_artifacts(run_id, "sub")
    assert [(f.path, f.is_dir) for f in sub] == [
        ("sub/deeper", True),
        ("sub/mid.json", False),
        ("sub/name with spaces é.txt", False),
    ]
    assert {f.path: f.file_size for f in sub if not f.is_dir} == {
        "sub/mid.json": 8,
        "sub/name with spaces é.txt": 6,
    }
    deeper = client.list_artifacts(run_id, "sub/deeper")
    assert [(f.path, f.file_size) for f in deeper] == [
        ("sub/deeper/big.bin", (src / "sub" / "deeper" / "big.bin").stat().st_size)
    ]
    assert [f.path for f in client.list_artifacts(run_id, "a/b")] == ["a/b/c"]
    # Listing a file or a missing directory gives nothing.
    assert client.list_artifacts(run_id, "top.txt") == []
    assert client.list_artifacts(run_id, "no/such/dir") == []


def test_download_file_and_dir(
    populated: tuple[str, Path], client: mlflow.MlflowClient, tmp_path: Path
) -> None:
    run_id, src = populated
    dst = tmp_path / "dst"
    dst.mkdir()
    big = Path(client.download_artifacts(run_id, "sub/deeper/big.bin", str(dst)))
    assert big.read_bytes() == (src / "sub" / "deeper" / "big.bin").read_bytes()
    spaced = Path(client.download_artifacts(run_id, "sub/name with spaces é.txt", str(dst)))
    assert spaced.read_text() == "spaced"

    whole = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp_path / "w")))
    got = sorted(p.relative_to(whole).as_posix() for p in whole.rglob("*") if p.is_file())
    assert got == [
        "a/b/c/top.txt",
        "empty.bin",
        "sub/deeper/big.bin",
        "sub/mid.json",
        "sub/name with spaces é.txt",
        "top.txt",
    ]
    for rel in got:
        original = src / rel if not rel.startswith("a/") else src / "top.txt"
        assert (whole / rel).read_bytes() == original.read_bytes(), rel

    via_uri = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"runs:/{run_id}/sub", dst_path=str(tmp_path / "u")
        )
    )
    assert (via_uri / "mid.json").read_text() == '{"a": 1}'


def test_raw_proxy_endpoints(
    populated: tuple[str, Path],
    client: mlflow.MlflowClient,
    base_url: str,
    http: requests.Session,
) -> None:
    run_id, _ = populated
    root = proxied_root(client.get_run(run_id).info.artifact_uri)

    listing = http.get(f"{base_url}{PROXY}", params={"path": f"{root}/sub"})
    assert listing.status_code == 200, listing.text
    files = {f["path"]: f for f in listing.json()["files"]}
    assert set(files) == {"deeper", "mid.json", "name with spaces é.txt"}
    assert files["deeper"]["is_dir"] is True
    assert files["mid.json"]["is_dir"] is False
    assert int(files["mid.json"]["file_size"]) == 8

    got = http.get(f"{base_url}{PROXY}/{root}/sub/mid.json")
    assert got.status_code == 200
    assert got.content == b'{"a": 1}'
    quoted = http.get(f"{base_url}{PROXY}/{root}/sub/{quote('name with spaces é.txt')}")
    assert quoted.status_code == 200 and quoted.content == b"spaced"

    # Upload with PUT, as the client does, then read it back.
    put = http.put(f"{base_url}{PROXY}/{root}/raw/upload.bin", data=b"\x00raw\xff")
    assert put.status_code == 200, put.text
    assert [f.path for f in client.list_artifacts(run_id, "raw")] == ["raw/upload.bin"]
    assert http.get(f"{base_url}{PROXY}/{root}/raw/upload.bin").content == b"\x00raw\xff"

    missing = http.get(f"{base_url}{PROXY}/{root}/no-such-file.txt")
    assert missing.status_code == 404

    # The tracking API's own listing (used by the UI) agrees.
    tracked = http.get(
        f"{base_url}/api/2.0/mlflow/artifacts/list", params={"run_id": run_id, "path": "sub"}
    )
    assert tracked.status_code == 200, tracked.text
    body = tracked.json()
    assert body["root_uri"]
    assert sorted(f["path"] for f in body["files"]) == [
        "sub/deeper",
        "sub/mid.json",
        "sub/name with spaces é.txt",
    ]

    # The UI's download endpoint.
    ui = http.get(f"{base_url}/get-artifact", params={"path": "top.txt", "run_uuid": run_id})
    assert ui.status_code == 200
    assert ui.content == b"top"


def test_delete_artifact(
    populated: tuple[str, Path],
    client: mlflow.MlflowClient,
    base_url: str,
    http: requests.Session,
) -> None:
    run_id, _ = populated
    root = proxied_root(client.get_run(run_id).info.artifact_uri)
    resp = http.delete(f"{base_url}{PROXY}/{root}/sub/mid.json")
    assert resp.status_code == 200, resp.text
    assert [f.path for f in client.list_artifacts(run_id, "sub")] == [
        "sub/deeper",
        "sub/name with spaces é.txt",
    ]
    assert http.get(f"{base_url}{PROXY}/{root}/sub/mid.json").status_code == 404
    # A directory goes with everything in it.
    resp = http.delete(f"{base_url}{PROXY}/{root}/sub/deeper")
    assert resp.status_code == 200, resp.text
    assert [f.path for f in client.list_artifacts(run_id, "sub")] == ["sub/name with spaces é.txt"]
    # Other artifacts are untouched.
    assert [f.path for f in client.list_artifacts(run_id)] == ["a", "empty.bin", "sub", "top.txt"]
