"""The dashboard's JSON API (docs/API.md) through the real `labbook ui`."""

from __future__ import annotations

import json
import math
import struct
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import LabbookServer
from conftest import api_get as get
from conftest import api_post as post

import labbook


@pytest.fixture
def server(store: Path) -> Iterator[str]:
    """A store with a small sweep in it, served by `labbook ui --port 0`."""
    for lr in (0.1, 0.01):
        for seed in (0, 1):
            run = labbook.init(
                project="sweep",
                config={"lr": lr, "seed": seed},
                notes=f"lr {lr} seed {seed}",
                system_metrics=False,
            )
            for step in range(3000):
                run.log({"loss": 1 / (step + 1) + lr, "acc": step / 3000})
            run.log({"weird": math.nan})
            run.finish()
    served = LabbookServer(store, "ui")
    try:
        yield served.url
    finally:
        served.stop()


def test_health_and_projects(server: str) -> None:
    with urllib.request.urlopen(f"{server}/health") as r:
        assert r.read() == b"ok"
    status, body = get(server, "/api/v1/projects")
    assert status == 200
    # The empty Default project (MLflow's experiment 0) is not listed.
    [project] = body["projects"]
    assert project["last_activity_ms"] >= project["created_ms"] > 0
    assert {k: project[k] for k in ("name", "runs", "running", "deleted_ms", "tags")} == {
        "name": "sweep",
        "runs": 4,
        "running": 0,
        "deleted_ms": None,
        "tags": {},
    }
    assert isinstance(project["id"], int)


def test_runs_filter_sort_page_and_total(server: str) -> None:
    status, body = get(
        server,
        "/api/v1/projects/sweep/runs",
        filter="config.lr > 0.05",
        sort="config.seed",
        limit=1,
    )
    assert status == 200 and body["total"] == 2 and len(body["runs"]) == 1
    run = body["runs"][0]
    assert run["config"] == {"lr": 0.1, "seed": 0}
    assert run["metrics"]["loss"]["count"] == 3000
    assert run["metrics"]["weird"]["last"] == "NaN", "non-finite values travel as strings"
    assert run["status"] == "finished" and run["duration_ms"] >= 0
    _, page2 = get(
        server,
        "/api/v1/projects/sweep/runs",
        filter="config.lr > 0.05",
        sort="config.seed",
        limit=1,
        offset=1,
    )
    assert page2["runs"][0]["config"]["seed"] == 1


def test_bad_queries_are_400s_naming_field_and_column(server: str) -> None:
    status, body = get(server, "/api/v1/projects/sweep/runs", filter="config.lr >")
    assert status == 400
    assert body["error"]["code"] == "INVALID_QUERY"
    assert (body["error"]["field"], body["error"]["column"]) == ("filter", 12)
    status, body = get(server, "/api/v1/query/validate", sort="-")
    assert status == 400 and body["error"]["field"] == "sort"
    assert get(server, "/api/v1/query/validate", filter="status = 'finished'") == (
        200,
        {"ok": True},
    )
    status, body = get(server, "/api/v1/projects/sweep/runs", limit="lots")
    assert status == 400 and body["error"] == {
        "code": "INVALID_ARGUMENT",
        "field": "limit",
        "message": 'limit must be a non-negative integer, not "lots"',
    }
    status, body = get(server, "/api/v1/runs/nope")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    status, body = get(server, "/api/v1/nothing-here")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"


def test_keys_and_groups(server: str) -> None:
    _, keys = get(server, "/api/v1/projects/sweep/keys")
    assert {"key": "lr", "count": 4, "numeric": True} in keys["config"]
    assert [m["key"] for m in keys["metrics"]] == ["acc", "loss", "weird"]
    _, groups = get(server, "/api/v1/projects/sweep/groups", by="config.lr")
    by_lr = {g["value"]: g for g in groups["groups"]}
    assert set(by_lr) == {0.1, 0.01} and by_lr[0.1]["count"] == 2
    loss = by_lr[0.1]["metrics"]["loss"]
    assert loss["n"] == 2 and loss["mean"] == pytest.approx(1 / 3000 + 0.1) and loss["std"] == 0
    assert "weird" not in by_lr[0.1]["metrics"], "NaN last values are left out of mean ± std"
    status, body = get(server, "/api/v1/projects/sweep/groups", by="lr")
    assert status == 400 and body["error"]["field"] == "by"


def test_run_detail_and_series(server: str) -> None:
    _, runs = get(server, "/api/v1/projects/sweep/runs", sort="config.lr,config.seed")
    ids = [r["id"] for r in runs["runs"]]
    _, run = get(server, f"/api/v1/runs/{ids[0]}")
    assert run["environment"]["python"]["version"]
    assert {"key": "loss", "count": 3000} in run["metric_keys"]

    _, full = get(
        server, "/api/v1/series", runs=",".join(ids), keys="loss,acc,missing", buckets=100
    )
    assert len(full["series"]) == 8, "4 runs × 2 keys; a missing key gives no entry"
    s = full["series"][0]
    assert s["total"] == 3000 and s["downsampled"] is True and len(s["steps"]) <= 400
    assert s["steps"][0] == 0 and s["steps"][-1] == 2999
    _, zoom = get(server, "/api/v1/series", runs=ids[0], keys="loss", buckets=100, lo=1000, hi=1049)
    z = zoom["series"][0]
    assert z["steps"] == list(range(1000, 1050)) and z["downsampled"] is False, (
        "zoomed in, every point"
    )
    _, live = get(server, "/api/v1/series", runs=ids[0], keys="loss", after=2995)
    assert live["series"][0]["steps"] == [2996, 2997, 2998, 2999]
    _, weird = get(server, "/api/v1/series", runs=ids[0], keys="weird")
    assert weird["series"][0]["values"] == ["NaN"]
    status, body = get(server, "/api/v1/series", runs=",".join(["x"] * 201), keys="loss")
    assert status == 400 and body["error"]["field"] == "runs"


def test_runs_with_only_some_fields(server: str) -> None:
    _, full = get(server, "/api/v1/projects/sweep/runs", sort="config.lr,config.seed")
    _, shape = get(
        server, "/api/v1/projects/sweep/runs", sort="config.lr,config.seed", fields="id,parent,id"
    )
    assert shape["runs"] == [{"id": r["id"], "parent": r["parent"]} for r in full["runs"]]
    assert shape["total"] == full["total"] == 4
    _, some = get(server, "/api/v1/projects/sweep/runs", fields="config, status")
    assert all(set(r) == {"config", "status"} for r in some["runs"])
    assert sorted(r["config"]["lr"] for r in some["runs"]) == [0.01, 0.01, 0.1, 0.1]
    status, body = get(server, "/api/v1/projects/sweep/runs", fields="id,secret")
    assert status == 400 and body["error"]["field"] == "fields"
    assert "secret" in body["error"]["message"]


def _read_columns(body: bytes) -> list[dict[str, Any]]:
    """`/series?format=columns` read as docs/API.md lays it out."""
    assert body[:4] == b"LBS1"
    (head_len,) = struct.unpack_from("<I", body, 4)
    head = json.loads(body[8 : 8 + head_len])
    at = -(-(8 + head_len) // 8) * 8
    curves = []
    for h in head["series"]:
        names = ["steps", *(["ts_ms"] if h["ts"] else []), "values"]
        curve: dict[str, Any] = {"run": h["run"], "key": h["key"]}
        for name in names:
            curve[name] = list(struct.unpack_from(f"<{h['n']}d", body, at))
            at += 8 * h["n"]
        curves.append(curve | {"total": h["total"], "downsampled": h["downsampled"]})
    assert at == len(body), "nothing after the last column"
    return curves


def _raw_get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


@pytest.mark.parametrize("ts", ["1", "0"])
def test_series_as_binary_columns_hold_what_json_holds(server: str, ts: str) -> None:
    _, runs = get(server, "/api/v1/projects/sweep/runs")
    ids = ",".join(r["id"] for r in runs["runs"])
    query = {"runs": ids, "keys": "loss,weird,missing", "buckets": "50", "ts": ts}
    _, as_json = get(server, "/api/v1/series", **query)
    status, media, body = _raw_get(
        f"{server}/api/v1/series?{urllib.parse.urlencode(query | {'format': 'columns'})}"
    )
    assert (status, media) == (200, "application/vnd.labbook.series")
    curves = _read_columns(body)
    assert len(curves) == len(as_json["series"]) == 8
    for got, want in zip(curves, as_json["series"], strict=True):
        want = dict(want, values=[float(v) for v in want["values"]])
        assert got.keys() == want.keys()
        for key in got:
            if key == "values":
                assert [repr(v) for v in got[key]] == [repr(v) for v in want[key]], key
            else:
                assert got[key] == want[key], key
    status, body = get(server, "/api/v1/series", runs=ids, keys="loss", format="arrow")
    assert status == 400 and body["error"]["field"] == "format"
    assert "arrow" in body["error"]["message"]


def test_bulk_tags_delete_restore(server: str) -> None:
    _, runs = get(server, "/api/v1/projects/sweep/runs")
    ids = [r["id"] for r in runs["runs"]][:2]
    assert post(server, "/api/v1/runs/tags", {"ids": ids, "add": ["keep", "best"]}) == (
        200,
        {"ok": True},
    )
    assert post(server, "/api/v1/runs/tags", {"ids": ids, "remove": ["best"]}) == (
        200,
        {"ok": True},
    )
    _, tagged = get(server, "/api/v1/projects/sweep/runs", filter="tags contains 'keep'")
    assert sorted(r["id"] for r in tagged["runs"]) == sorted(ids)
    assert all(r["tags"] == ["keep"] for r in tagged["runs"])
    status, body = post(server, "/api/v1/runs/tags", {"ids": [*ids, "nope"], "add": ["x"]})
    assert status == 404
    _, still = get(server, "/api/v1/projects/sweep/runs", filter="tags contains 'x'")
    assert still["total"] == 0, "a bad id changes nothing"
    assert post(server, "/api/v1/runs/delete", {"ids": ids}) == (200, {"ok": True})
    assert get(server, "/api/v1/projects/sweep/runs")[1]["total"] == 2
    assert get(server, "/api/v1/projects/sweep/runs", deleted=1)[1]["total"] == 2
    assert post(server, "/api/v1/runs/restore", {"ids": ids}) == (200, {"ok": True})
    assert get(server, "/api/v1/projects/sweep/runs")[1]["total"] == 4
    status, body = post(server, "/api/v1/runs/delete", None, raw=b"{not json")
    assert status == 400 and body["error"]["field"] == "body"
    status, body = post(server, "/api/v1/runs/tags", {"ids": "abc"})
    assert status == 400 and body["error"]["field"] == "ids"


def test_notebook_timeline_and_notes(server: str) -> None:
    status, note = post(
        server, "/api/v1/projects/sweep/notebook", {"text": "**lr 0.1** wins; try 0.3 next"}
    )
    assert status == 200 and note["kind"] == "note" and note["run_id"] is None
    _, book = get(server, "/api/v1/projects/sweep/notebook")
    kinds = [e["kind"] for e in book["entries"]]
    assert kinds[0] == "note" and kinds.count("run") == 4
    first_run = next(e for e in book["entries"] if e["kind"] == "run")["run"]
    assert first_run["notes"].startswith("lr ") and first_run["headline"]["key"] == "acc"
    status, body = post(server, "/api/v1/projects/sweep/notebook", {"text": "  "})
    assert status == 400 and body["error"]["field"] == "text"
    status, body = post(server, "/api/v1/projects/nope/notebook", {"text": "x"})
    assert status == 404


def test_events_report_a_live_run(server: str, store: Path) -> None:
    received: list[dict[str, Any]] = []
    answered = threading.Event()

    def listen() -> None:
        with urllib.request.urlopen(f"{server}/api/v1/events?project=sweep", timeout=30) as r:
            # The stream reports changes from the moment it answered.
            answered.set()
            event = None
            for raw in r:
                line = raw.decode().rstrip("\n")
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event == "runs":
                    received.append(json.loads(line.split(":", 1)[1]))
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert answered.wait(15), "the event stream never answered"
    run = labbook.init(project="sweep", dir=str(store), system_metrics=False, flush_interval=0.1)
    for step in range(10):
        run.log({"loss": float(step)})
    run.flush()
    listener.join(timeout=15)
    run.finish()
    assert received, "no event within 15 s"
    changed = {r["id"]: r for r in received[0]["runs"]}
    assert run.id in changed and changed[run.id]["status"] == "running"
