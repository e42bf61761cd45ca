"""Hostile input through the SDK, the CLI and labbook's HTTP API.

Each row gets one clear error that names what was wrong, nothing panics, and
what the store held before is unchanged afterwards. (The MLflow API's table is
in tests/mlflow/test_bad_input.py.)
"""

from __future__ import annotations

import http.client
import json
import math
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import store_snapshot
from conftest import LabbookServer, labbook_bin

import labbook

MEGABYTE = "k" * (1 << 20)


def nested(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        node["a"] = {}
        node = node["a"]
    return root


@pytest.fixture
def seeded(store: Path) -> Iterator[tuple[labbook.Run, dict[str, Any]]]:
    """A finished run and an open one; yields the open run and a snapshot of the store."""
    done = labbook.init(project="bad", config={"lr": 0.1}, system_metrics=False)
    for step in range(100):
        done.log({"loss": 1 / (step + 1)})
    done.finish()
    run = labbook.init(project="bad", system_metrics=False)
    run.log({"loss": 0.5})
    run.flush()
    # The environment is captured in the background: the snapshot waits for
    # it, so that its arrival is not taken for a change a row made.
    api = labbook.Api(dir=str(store))
    deadline = time.monotonic() + 30
    while api.run(run.id).get("environment") is None:
        assert time.monotonic() < deadline, "the open run's environment never arrived"
        time.sleep(0.02)
    yield run, snapshot(store)
    run.finish()


def snapshot(store: Path) -> dict[str, Any]:
    """The whole store: every row of every table and every file, all projects.
    The open run's writer beats its heartbeat meanwhile; that is all it may
    change."""
    return store_snapshot.snapshot(store, store_snapshot.LIVE_COLUMNS)


def assert_unchanged(store: Path, before: dict[str, Any], label: str) -> None:
    store_snapshot.assert_unchanged(before, snapshot(store), label)


# (label, call, exception type, text the message must contain)
SDK_ROWS: list[tuple[str, Callable[[labbook.Run], object], type[Exception], str]] = [
    ("1 MB metric key", lambda r: r.log({MEGABYTE: 1.0}), ValueError, "the limit is 250"),
    ("a string value", lambda r: r.log({"loss": "abc"}), TypeError, 'metric "loss"'),
    ("a list value", lambda r: r.log({"loss": [1, 2]}), TypeError, 'metric "loss"'),
    ("a non-str key", lambda r: r.log({5: 1.0}), TypeError, "metric keys must be strings"),
    ("a lone surrogate in a key", lambda r: r.log({"a\udcff": 1.0}), TypeError, "a metric key"),
    ("a step beyond 64 bits", lambda r: r.log({"loss": 1.0}, step=2**70), ValueError, "step"),
    (
        "a lone surrogate in log_series",
        lambda r: r.log_series("a\udcff", None, [1.0]),
        TypeError,
        "key is not valid UTF-8",
    ),
    (
        "10,000-level config",
        lambda r: labbook.init(project="bad", config=nested(10_000)),
        ValueError,
        "nested deeper than",
    ),
    (
        "1 MB config value",
        lambda r: labbook.init(project="bad", config={"x": MEGABYTE}),
        ValueError,
        'config key "x"',
    ),
    ("1 MB run name", lambda r: labbook.init(project="bad", name=MEGABYTE), ValueError, "name"),
    (
        "a lone surrogate in a name",
        lambda r: labbook.init(project="bad", name="a\udcff"),
        TypeError,
        "name is not valid UTF-8",
    ),
    (
        "a lone surrogate in tags",
        lambda r: labbook.init(project="bad", tags=["a\udcff"]),
        TypeError,
        "tags",
    ),
    (
        "SQL after a filter",
        lambda r: labbook.Api().runs(project="bad", filter="1; DROP TABLE runs"),
        ValueError,
        "column 2",
    ),
    (
        "a quote-escape injection",
        lambda r: labbook.Api().runs(project="bad", filter="name = 'x'' OR 1=1 --'"),
        ValueError,
        "column",
    ),
    (
        "a 1 MB filter",
        lambda r: labbook.Api().runs(project="bad", filter="name = " + MEGABYTE),
        ValueError,
        "…",
    ),
]


@pytest.mark.parametrize(("label", "call", "error", "text"), SDK_ROWS, ids=[r[0] for r in SDK_ROWS])
def test_sdk_refuses_bad_input_and_changes_nothing(
    store: Path,
    seeded: tuple[labbook.Run, dict[str, Any]],
    label: str,
    call: Callable[[labbook.Run], object],
    error: type[Exception],
    text: str,
) -> None:
    run, before = seeded
    with pytest.raises(error) as raised:
        call(run)
    message = str(raised.value)
    assert text in message, f"{label}: {message}"
    assert len(message) < 1_000, f"{label}: the message echoes the input"
    run.flush()
    assert_unchanged(store, before, label)


def test_sdk_keeps_nan_and_infinities_exactly(store: Path) -> None:
    run = labbook.init(project="bad", system_metrics=False)
    run.log({"x": math.nan})
    run.log({"x": math.inf})
    run.log({"x": -math.inf})
    run.finish()
    values = list(labbook.Api().history(run.id, "x")["value"])
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf]


def cli(store: Path, *args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [labbook_bin(), "--dir", str(store), *args], capture_output=True, env=env, timeout=60
    )


CLI_ROWS: list[tuple[str, list[str | bytes], str]] = [
    ("SQL after a filter", ["ls", "--filter", "1; DROP TABLE runs"], "column 2"),
    ("a 64 KB filter", ["ls", "--filter", "name = " + "x" * (1 << 16)], "…"),
    ("invalid UTF-8 in an argument", ["ls", "--filter", b"name = \xff"], "invalid UTF-8"),
    ("a path as a run id", ["show", "../../etc/passwd"], "not found"),
    (
        "a config that is not KEY=VALUE",
        ["run", "--config", "{" * 100_000, "--", "true"],
        "KEY=VALUE",
    ),
    (
        "a config key 1,000 levels deep",
        ["run", "--config", "a." * 1_000 + "a=1", "--", "true"],
        "config key",
    ),
]


@pytest.mark.parametrize(("label", "args", "text"), CLI_ROWS, ids=[r[0] for r in CLI_ROWS])
def test_cli_refuses_bad_input_in_one_clear_line(
    store: Path,
    seeded: tuple[labbook.Run, dict[str, Any]],
    label: str,
    args: list[str | bytes],
    text: str,
) -> None:
    _, before = seeded
    done = cli(store, *args)
    err = done.stderr.decode(errors="replace")
    assert done.returncode != 0, f"{label}: {err}"
    assert text in err, f"{label}: {err[:500]}"
    assert "panicked" not in err
    assert len(err) < 2_000, f"{label}: the error echoes the input"
    assert_unchanged(store, before, label)


def request(url: str, method: str, path: str, body: bytes | None) -> tuple[int, dict[str, Any]]:
    """One request; a server that answers before reading all of a huge body
    (and closes) still has its answer read."""
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest(method, path)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders()
        try:
            conn.send(body or b"")
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


API_ROWS: list[tuple[str, str, str, bytes | None, int, str]] = [
    (
        "SQL after a filter",
        "GET",
        "/api/v1/projects/bad/runs?filter=1%3B%20DROP%20TABLE%20runs",
        None,
        400,
        "filter",
    ),
    ("SQL in a sort", "GET", "/api/v1/projects/bad/runs?sort=name%3B%20DROP", None, 400, "sort"),
    ("ids of the wrong JSON type", "POST", "/api/v1/runs/tags", b'{"ids": 5}', 400, "ids"),
    ("invalid UTF-8", "POST", "/api/v1/runs/tags", b'{"ids": ["\xff"]}', 400, "body"),
    ("not JSON", "POST", "/api/v1/runs/delete", b"{not json", 400, "body"),
    ("100,000 nested arrays", "POST", "/api/v1/runs/delete", b"[" * 100_000, 400, "body"),
    (
        "an 8 MB body",
        "POST",
        "/api/v1/runs/tags",
        b'{"ids": ["' + b"a" * (8 << 20) + b'"]}',
        413,
        "body",
    ),
    ("a path as a run id", "GET", "/api/v1/runs/..%2F..%2Fetc%2Fpasswd", None, 404, ""),
    # The write API; RUN stands for the seeded run's id.
    (
        "a 1 MB metric key",
        "POST",
        "/api/v1/runs/RUN/log",
        b'{"series": {"' + b"k" * (1 << 20) + b'": {"steps": [0], "ts_ms": [0], "values": [1]}}}',
        400,
        "metric key",
    ),
    (
        "a value of the wrong JSON type",
        "POST",
        "/api/v1/runs/RUN/log",
        b'{"series": {"loss": {"steps": [0], "ts_ms": [0], "values": [{"x": 1}]}}}',
        400,
        "series.loss.values[0]",
    ),
    (
        "columns of different lengths",
        "POST",
        "/api/v1/runs/RUN/log",
        b'{"series": {"loss": {"steps": [0, 1], "ts_ms": [0], "values": [1]}}}',
        400,
        "series",
    ),
    (
        "a 1 MB batch id",
        "POST",
        "/api/v1/runs/RUN/log",
        b'{"batch_id": "' + b"b" * (1 << 20) + b'"}',
        400,
        "batch_id",
    ),
    ("an unknown field", "POST", "/api/v1/runs/RUN/log", b'{"steps": [1]}', 400, "steps"),
    (
        "invalid UTF-8 in a key",
        "POST",
        "/api/v1/runs/RUN/log",
        b'{"series": {"\xff": {}}}',
        400,
        "",
    ),
    (
        "a path as the run to log to",
        "POST",
        "/api/v1/runs/..%2F..%2Fetc%2Fpasswd/log",
        b'{"series": {"loss": {"steps": [0], "ts_ms": [0], "values": [1]}}}',
        404,
        "",
    ),
    (
        "an 8 MB log batch",
        "POST",
        "/api/v1/runs/RUN/log",
        b'{"series": {"loss": {"steps": [' + b"1," * (4 << 20) + b"1]}}}",
        413,
        "body",
    ),
    (
        "a start with a config nested 10,000 deep",
        "POST",
        "/api/v1/runs",
        b'{"project": "p", "config": ' + b'{"a": ' * 10_000 + b"1" + b"}" * 10_001,
        400,
        "config",
    ),
    (
        "a start with tags of the wrong type",
        "POST",
        "/api/v1/runs",
        b'{"project": "p", "tags": "a,b"}',
        400,
        "tags",
    ),
]


@pytest.mark.parametrize(
    ("label", "method", "path", "body", "status", "field"), API_ROWS, ids=[r[0] for r in API_ROWS]
)
def test_api_refuses_bad_input_with_a_json_error(
    store: Path,
    seeded: tuple[labbook.Run, dict[str, Any]],
    label: str,
    method: str,
    path: str,
    body: bytes | None,
    status: int,
    field: str,
) -> None:
    _, before = seeded
    served = LabbookServer(store, "ui")
    try:
        got, answer = request(served.url, method, path.replace("RUN", seeded[0].id), body)
        assert got == status, f"{label}: {got} {answer}"
        error = answer["error"]
        assert error["message"] and len(error["message"]) < 1_000, f"{label}: {error}"
        assert len(error.get("field", "")) < 1_000, f"{label}: the field echoes the input"
        if field:
            assert error.get("field", "").startswith(field), f"{label}: {error}"
        assert served.proc.poll() is None, f"{label}: the server died"
    finally:
        served.stop()
    assert_unchanged(store, before, label)


def test_the_snapshot_sees_every_kind_of_change(
    store: Path, seeded: tuple[labbook.Run, dict[str, Any]]
) -> None:
    """What the tables above compare would notice what an earlier, narrower
    snapshot missed: a tag changed on a run, a run made in another project,
    a note, an artifact file."""
    run, before = seeded
    other = labbook.init(project="elsewhere", system_metrics=False)
    other.finish()
    with pytest.raises(AssertionError, match="table runs"):
        assert_unchanged(store, before, "a run in another project")
    before = snapshot(store)
    done = cli(store, "tag", run.id, "sneaky")
    assert done.returncode == 0, done.stderr
    with pytest.raises(AssertionError, match="table runs"):
        assert_unchanged(store, before, "a tag")
    before = snapshot(store)
    assert cli(store, "note", run.id, "a note").returncode == 0
    with pytest.raises(AssertionError, match="table notebook"):
        assert_unchanged(store, before, "a note")
    before = snapshot(store)
    (store / "artifacts").mkdir(exist_ok=True)
    (store / "artifacts" / "planted").write_bytes(b"x")
    with pytest.raises(AssertionError, match="file artifacts/planted"):
        assert_unchanged(store, before, "a file")
