"""Bounded work: no single request, and no slow or silent client, can crash the
server, exhaust its memory or descriptors, empty the artifact store or fill the
disk. Each test runs the real server as its own process, so a request that
would abort it (a stack overflow) shows as a dead process, not a dead suite."""

from __future__ import annotations

import json
import os
import resource
import select
import socket
import stat
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import (
    Server,
    assert_unchanged,
    body_json,
    labbook_bin,
    raw_http,
    seed,
    status_of,
    store_snapshot,
)

pytestmark = pytest.mark.timeout(300)


def healthy(server: Server) -> bool:
    try:
        return server.alive() and server.get("/health", timeout=10).text == "ok"
    except requests.RequestException:
        return False


def test_deep_and_long_filters_are_refused_not_crashing(serve: Server) -> None:
    """3,000 nested parentheses (a 6 KB URL) once overflowed the stack; so
    did a 60,000-clause `and` chain (1 MB) walked recursively."""
    ids = seed(serve)
    deep = "(" * 3000 + "config.lr > 0" + ")" * 3000
    nots = "not " * 3000 + "config.lr > 0"
    chain = " and ".join(["config.lr > 0"] * 2_500)  # URLs stop at 64 KB
    for path in (
        "/api/v1/query/validate",
        "/api/v1/projects/victim/runs",
        "/api/v1/projects/victim/groups",
    ):
        for text in (deep, nots, chain):
            q = urllib.parse.urlencode({"filter": text, "by": "config.lr"})
            r = serve.get(f"{path}?{q}")
            assert r.status_code == 400, (path, r.status_code, r.text[:200])
            assert r.json()["error"]["field"] == "filter"
            assert "nests deeper" in r.text or "more than 1000 conditions" in r.text
            assert len(r.content) < 2000
        assert healthy(serve), serve.log_tail()
    ml = serve.url + "/api/2.0/mlflow"
    huge = " and ".join(["metrics.m > 0"] * 60_000)
    assert len(huge) > 800_000
    for path, body in (
        ("/runs/search", {"experiment_ids": [ids["experiment"]], "filter": huge}),
        (
            "/experiments/search",
            {"filter": " and ".join(["name = 'x'"] * 60_000), "max_results": 10},
        ),
        ("/logged-models/search", {"experiment_ids": [ids["experiment"]], "filter": huge}),
    ):
        r = requests.post(ml + path, json=body, timeout=60)
        assert r.status_code == 400, (path, r.status_code, r.text[:200])
        assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert healthy(serve), serve.log_tail()
    r = requests.get(
        ml + "/registered-models/search",
        params={"filter": " and ".join(["name = 'x'"] * 2_500)},
        timeout=60,
    )
    assert r.status_code == 400, r.text[:200]
    # A long but legal chain still answers.
    legal = " and ".join(["metrics.m >= 0"] * 1000)
    r = requests.post(
        ml + "/runs/search",
        json={"experiment_ids": [ids["experiment"]], "filter": legal},
        timeout=60,
    )
    assert r.status_code == 200 and len(r.json()["runs"]) == 1, r.text[:300]
    assert healthy(serve)


def plant_curve(server: Server, run: str, key: str, points: int) -> None:
    per = 50_000
    for start in range(0, points, per):
        steps = list(range(start, min(points, start + per)))
        batch = {
            "batch_id": f"{key}-{start}",
            "series": {
                key: {"steps": steps, "ts_ms": steps, "values": [float(s % 997) for s in steps]}
            },
        }
        r = server.post_json(f"/api/v1/runs/{run}/log", batch, timeout=120)
        assert r.status_code == 200, r.text[:300]


def test_series_answers_are_bounded_however_asked(serve: Server) -> None:
    """One GET asking for a 1M-point curve 10,000 times (200 runs x 50 keys,
    all the same) with `after=` grew the server to 21 GB until the kernel
    killed it. Runs and keys are now de-duplicated and every answer holds at
    most 1,000,000 points."""
    seed(serve)
    plant_curve(serve, "seedrun1", "big", 1_000_000)
    before_kb = serve.rss_peak_kb()
    runs = ",".join(["seedrun1"] * 200)
    keys = ",".join(["big"] * 50)
    for extra in ("after=-1", "buckets=10000", "after=-1&ts=1"):
        r = serve.get(f"/api/v1/series?runs={runs}&keys={keys}&{extra}", timeout=120)
        assert r.status_code == 200, r.text[:300]
        curves = r.json()["series"]
        assert len(curves) == 1, len(curves)
        assert curves[0]["total"] == 1_000_000
        assert len(curves[0]["steps"]) <= 1_000_000
    grown_mb = (serve.rss_peak_kb() - before_kb) / 1024
    assert grown_mb < 400, f"the server grew by {grown_mb:.0f} MB answering /series"
    # Distinct curves share the budget: 20 runs x the planted key at 10,000
    # buckets would be 800,000 points each; the answer stays under 1M.
    for i in range(19):
        r = serve.post_json("/api/v1/runs", {"project": "victim", "id": f"twin{i:04d}"})
        assert r.status_code == 200, r.text
        plant_curve(serve, f"twin{i:04d}", "big", 60_000)
    twins = ",".join(["seedrun1"] + [f"twin{i:04d}" for i in range(19)])
    r = serve.get(f"/api/v1/series?runs={twins}&keys=big&buckets=10000", timeout=120)
    assert r.status_code == 200
    total = sum(len(c["steps"]) for c in r.json()["series"])
    assert len(r.json()["series"]) == 20 and total <= 1_000_000, total
    assert healthy(serve)


def test_the_artifact_root_can_never_be_deleted(serve: Server) -> None:
    """`DELETE …/artifacts/.` (also `%2e`, `./`) normalized to the root and
    deleted every artifact of every experiment, with the stored files."""
    ids = seed(serve)
    before = store_snapshot(serve.store)
    assert any(f.startswith("artifacts/blobs/") for f in before["files"])
    spellings = [
        ".",
        "%2e",
        "%2E",
        "./",
        ".%2f",
        "%2e/",
        "a/..",
        "a/%2e%2e",
        "a/../",
        "%2e%2e/x/..",
        "x/%2E%2E",
        "./.",
        "%2e%2f%2e",
    ]
    for prefix in (
        "/api/2.0/mlflow-artifacts/artifacts/",
        "/ajax-api/2.0/mlflow-artifacts/artifacts/",
    ):
        for spelling in [*spellings, ""]:
            answer = raw_http(
                serve.host,
                serve.port,
                f"DELETE {prefix}{spelling} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode(),
            )
            assert status_of(answer) in (400, 404, 405), (spelling, answer[:300])
            assert "error_code" in body_json(answer), answer[:300]
    assert_unchanged(before, store_snapshot(serve.store), "deletes of the artifact root")
    # A file or a folder can still be deleted.
    r = requests.delete(
        f"{serve.url}/api/2.0/mlflow-artifacts/artifacts/{ids['artifact_root']}/model", timeout=30
    )
    assert r.status_code == 200, r.text
    listing = requests.get(
        f"{serve.url}/api/2.0/mlflow-artifacts/artifacts",
        params={"path": ids["artifact_root"]},
        timeout=30,
    ).json()
    assert [f["path"] for f in listing["files"]] == ["notes.txt"]


def test_links_inside_the_store_are_not_followed(serve: Server, tmp_path: Path) -> None:
    ids = seed(serve)
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-OUTSIDE-THE-STORE")
    blobs = sorted((serve.store / "artifacts/blobs").rglob("*"))
    hello = next(p for p in blobs if p.is_file() and p.read_bytes() == b"hello")
    hello.unlink()
    hello.symlink_to(secret)
    url = f"{serve.url}/api/2.0/mlflow-artifacts/artifacts/{ids['artifact_root']}/notes.txt"
    r = requests.get(url, timeout=30)
    assert r.status_code >= 400 and b"TOP-SECRET" not in r.content, (r.status_code, r.content[:200])
    # A linked folder of blobs is refused too, for reads and for writes.
    folder = hello.parent
    moved = folder.with_name(folder.name + ".real")
    folder.rename(moved)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / hello.name).write_text("TOP-SECRET-OUTSIDE-THE-STORE")
    folder.symlink_to(outside)
    r = requests.get(url, timeout=30)
    assert r.status_code >= 400 and b"TOP-SECRET" not in r.content
    r = requests.put(
        f"{serve.url}/api/2.0/mlflow-artifacts/artifacts/{ids['artifact_root']}/again.txt",
        data=b"hello",
        timeout=30,
    )
    assert r.status_code >= 400
    assert sorted(p.name for p in outside.iterdir()) == [hello.name], (
        "a write followed the link out of the store"
    )
    assert healthy(serve)


def raise_own_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))


def test_silent_and_slow_connections_do_not_starve_others(launch: Any) -> None:
    """1,100 silent connections held against a 1,024-descriptor limit made
    /health time out for everyone; a client sending its head a byte at a time
    held its connection forever."""
    env = {"LABBOOK_HTTP_HEAD_TIMEOUT": "2", "LABBOOK_HTTP_IDLE_TIMEOUT": "3"}
    server: Server = launch("serve", env=env)
    raise_own_fd_limit(4096)
    silent = []
    try:
        for _ in range(1100):
            silent.append(socket.create_connection((server.host, server.port), timeout=10))
        t0 = time.monotonic()
        assert server.get("/health", timeout=10).text == "ok"
        assert time.monotonic() - t0 < 2.0
        # The server closes them after the head timeout: every one sees EOF.
        deadline = time.monotonic() + 15
        for sock in silent:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            assert sock.recv(1) == b"", "a silent connection was kept open"
    finally:
        for sock in silent:
            sock.close()
    # A head trickled in a byte at a time is cut off at the head timeout.
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        t0 = time.monotonic()
        closed = False
        for byte in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000:
            try:
                sock.sendall(bytes([byte]))
                readable, _, _ = select.select([sock], [], [], 0.1)
                if readable:
                    sock.recv(1024)
                    closed = True
            except OSError:
                closed = True
            if closed:
                break
        assert closed and time.monotonic() - t0 < 6, "a trickled head was kept open"
    # A body that stops arriving is cut off at the idle timeout. First the
    # server must be taking connections again: on a loaded machine the
    # 1,100 silent ones may still hold their slots for a moment, and a
    # connection left in the backlog never starts its idle timer.
    assert server.get("/health", timeout=30).text == "ok"
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        t0 = time.monotonic()
        sock.settimeout(10)
        try:
            data = sock.recv(4096)
        except ConnectionResetError:
            data = b""
        assert time.monotonic() - t0 < 8, "a stalled body was kept open"
        assert b"200 OK" not in data
    assert healthy(server)


def test_uploads_over_the_limit_or_the_free_space_store_nothing(launch: Any) -> None:
    small: Server = launch("serve", "--max-upload-size", "1MiB")
    ids = seed(small)
    root = f"{small.url}/api/2.0/mlflow-artifacts/artifacts/{ids['artifact_root']}"
    before = store_snapshot(small.store)
    r = requests.put(root + "/big.bin", data=b"x" * (2 << 20), timeout=60)
    assert r.status_code == 413, r.text
    assert r.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED" and "1.0 MiB" in r.json()["message"]

    def chunks() -> Any:
        for _ in range(32):
            yield b"y" * (64 << 10)

    r = requests.put(root + "/chunked.bin", data=chunks(), timeout=60)
    assert r.status_code == 413, r.text
    assert_unchanged(before, store_snapshot(small.store), "uploads over the limit")
    assert not list((small.store / "artifacts/tmp").iterdir())
    r = requests.put(root + "/fits.bin", data=b"z" * (512 << 10), timeout=60)
    assert r.status_code == 200, r.text

    full: Server = launch("serve", "--min-free-space", "1000000TiB")
    ids = seed_no_artifacts(full)
    before = store_snapshot(full.store)
    r = requests.put(
        f"{full.url}/api/2.0/mlflow-artifacts/artifacts/{ids}/tiny.txt", data=b"tiny", timeout=30
    )
    assert r.status_code == 507, r.text
    assert r.json()["error_code"] == "RESOURCE_EXHAUSTED" and "free" in r.json()["message"]
    r = requests.put(
        f"{full.url}/api/2.0/mlflow-artifacts/artifacts/{ids}/chunked.txt",
        data=iter([b"a", b"b"]),
        timeout=30,
    )
    assert r.status_code == 507, r.text
    assert_unchanged(before, store_snapshot(full.store), "uploads past the free-space reserve")


def seed_no_artifacts(server: Server) -> str:
    ml = server.url + "/api/2.0/mlflow"
    exp = requests.post(ml + "/experiments/create", json={"name": "e"}, timeout=30).json()[
        "experiment_id"
    ]
    run = requests.post(ml + "/runs/create", json={"experiment_id": exp}, timeout=30).json()
    return str(run["run"]["info"]["artifact_uri"].split("mlflow-artifacts:", 1)[-1].lstrip("/"))


def test_event_streams_per_client_are_bounded(serve: Server) -> None:
    seed(serve)
    streams = []
    try:
        for _ in range(16):
            r = serve.get("/api/v1/events?project=victim", stream=True, timeout=10)
            assert r.status_code == 200
            streams.append(r)
        extra = serve.get("/api/v1/events?project=victim", stream=True, timeout=10)
        assert extra.status_code == 429, extra.status_code
        assert extra.json()["error"]["code"] == "TOO_MANY_STREAMS"
        streams.pop().close()
        # The slot frees once the server notices the closed stream: at its
        # next keep-alive, every 3 s.
        deadline = time.monotonic() + 8
        while True:
            again = serve.get("/api/v1/events?project=victim", stream=True, timeout=10)
            if again.status_code == 200:
                streams.append(again)
                break
            again.close()
            assert time.monotonic() < deadline, "a closed stream never freed its slot"
            time.sleep(0.2)
    finally:
        for s in streams:
            s.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_store_is_private_by_default(tmp_path: Path, launch: Any) -> None:
    """With the usual umask 022, `.labbook/` was 755 and `labbook.db` 644:
    every local user of a shared machine could read all of it."""
    binary = str(labbook_bin())
    old = os.umask(0o022)
    try:
        project = tmp_path / "private"
        project.mkdir()
        subprocess.run([binary, "init"], cwd=project, check=True, capture_output=True)
        subprocess.run(
            [binary, "run", "--no-monitor", "--", "true"],
            cwd=project,
            check=True,
            capture_output=True,
        )
        store = project / ".labbook"
        assert mode(store) == 0o700
        for f in store.iterdir():
            assert f.is_file() and mode(f) == 0o600, (f.name, oct(mode(f)))
        # A store made by a first `labbook run` (no init) is private too.
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        subprocess.run(
            [binary, "run", "--no-monitor", "--", "true"],
            cwd=fresh,
            check=True,
            capture_output=True,
        )
        assert mode(fresh / ".labbook") == 0o700
        assert mode(fresh / ".labbook" / "labbook.db") == 0o600
        # Artifacts stored by the server: folders 0700, files 0600.
        server: Server = launch("serve")
        seed(server)
        for p in (server.store / "artifacts").rglob("*"):
            assert mode(p) == (0o700 if p.is_dir() else 0o600), (p, oct(mode(p)))
        assert mode(server.store) == 0o700
        # A group-shared store on request, also for an existing one.
        shared = tmp_path / "shared"
        shared.mkdir()
        subprocess.run([binary, "init", "--shared"], cwd=shared, check=True, capture_output=True)
        subprocess.run(
            [binary, "run", "--no-monitor", "--", "true"],
            cwd=shared,
            check=True,
            capture_output=True,
        )
        assert mode(shared / ".labbook") == 0o2770
        for f in (shared / ".labbook").iterdir():
            assert mode(f) == 0o660, (f.name, oct(mode(f)))
        out = subprocess.run(
            [binary, "init", "--shared"], cwd=project, check=True, capture_output=True, text=True
        )
        assert "shared with its group" in out.stdout
        assert mode(store) == 0o2770 and mode(store / "labbook.db") & 0o060 == 0o060
    finally:
        os.umask(old)


def test_deleting_many_artifacts_does_not_stall_writers(serve: Server) -> None:
    """Deleting a folder of 2,000 artifacts held the write lock for 5.8 s,
    stalling every writer; blobs are now removed a few per lock hold."""
    ids = seed(serve)
    root = f"{serve.url}/api/2.0/mlflow-artifacts/artifacts/{ids['artifact_root']}/many"
    session = requests.Session()
    for i in range(2000):
        r = session.put(f"{root}/f{i:04d}.bin", data=f"distinct contents {i}".encode(), timeout=30)
        assert r.status_code == 200
    latencies: list[float] = []
    done = threading.Event()

    def log_metrics() -> None:
        s = requests.Session()
        step = 100
        while not done.is_set():
            t0 = time.monotonic()
            r = s.post(
                f"{serve.url}/api/2.0/mlflow/runs/log-metric",
                json={
                    "run_id": ids["mlflow_run"],
                    "key": "during",
                    "value": 1.0,
                    "timestamp": step,
                    "step": step,
                },
                timeout=60,
            )
            latencies.append(time.monotonic() - t0)
            assert r.status_code == 200
            step += 1

    writer = threading.Thread(target=log_metrics)
    writer.start()
    try:
        t0 = time.monotonic()
        r = session.delete(root, timeout=120)
        delete_s = time.monotonic() - t0
        assert r.status_code == 200, r.text
    finally:
        done.set()
        writer.join(60)
    listing = session.get(
        f"{serve.url}/api/2.0/mlflow-artifacts/artifacts",
        params={"path": ids["artifact_root"]},
        timeout=30,
    ).json()
    assert "many" not in [f["path"] for f in listing["files"]]
    assert max(latencies) < 1.5, (
        f"a writer waited {max(latencies):.2f} s while {delete_s:.2f} s of deletes ran"
    )
    assert len(latencies) >= 2, latencies
    blobs = [p for p in (serve.store / "artifacts/blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 3, f"{len(blobs)} blobs left (expected the seed's three)"


def test_bad_requests_leave_the_server_answering(serve: Server) -> None:
    """Garbage at the HTTP layer: a 1 MB URL, 10,000 headers, a method that
    is not one, bytes that are not HTTP."""
    for raw in (
        b"GET /" + b"a" * (1 << 20) + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + b"".join(b"X-%d: y\r\n" % i for i in range(10_000))
        + b"\r\n",
        b"FROB / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        b"\x00\xff\x16\x03\x01garbage\r\n\r\n",
    ):
        try:
            answer = raw_http(serve.host, serve.port, raw, timeout=10)
        except OSError:
            answer = b""
        assert status_of(answer) in (0, 400, 404, 405, 414, 431), answer[:200]
    assert healthy(serve)
    assert json.loads(serve.get("/api/v1/projects").text) == {"projects": []}
