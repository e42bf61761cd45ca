"""The search and night endpoints (issue 13), attacked: a project's
studies, one study, the queue and the morning report. Names, parameters
and values in a study are anyone's who may log, so hostile ones come back
as data; ids that traverse, are huge or are not ids are clean 4xx JSON
errors; the report's window and metric are bounded; every write method is
refused; a study with long curves answers a bounded document. (Foreign
Host names and reads embedded by other sites are rows of test_guard.py.)"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest
from conftest import Server, labbook_python, raw_http, status_of

pytestmark = pytest.mark.timeout(180)

HOSTILE_STUDY = """
import json, sys
import labbook
s = labbook.study(sys.argv[1], direction="maximize", project="victim", store=sys.argv[2],
                  why="<script>alert(1)</script>")
for i in range(6):
    t = s.ask()
    name = t.suggest_categorical("opt", ["<img src=x onerror=alert(1)>", "' OR 1=1 --", "ok"])
    depth = t.suggest_int("depth", 1, 4)
    for step in range(int(sys.argv[3])):
        t.report(float(step + depth), step)
    s.tell(t, float(depth))
print(json.dumps({"id": s.id}))
"""


def make_study(server: Server, name: str, steps: int = 3) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    env["LABBOOK_SNAPSHOT"] = "0"
    done = subprocess.run(
        [labbook_python(), "-c", HOSTILE_STUDY, name, str(server.store), str(steps)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    sid: str = json.loads(done.stdout.strip().splitlines()[-1])["id"]
    return sid


def get(server: Server, path: str) -> tuple[int, Any]:
    raw = raw_http(
        server.host,
        server.port,
        f"GET {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\nConnection: close\r\n\r\n".encode(),
    )
    status = status_of(raw)
    body = raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in raw else b""
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = body
    return status, parsed


def test_hostile_names_and_values_come_back_as_data(serve: Server) -> None:
    sid = make_study(serve, "<b>study</b> ' OR 1=1 --")
    r = serve.get("/api/v1/projects/victim/studies")
    assert r.status_code == 200, r.text
    studies = r.json()["studies"]
    assert [s["name"] for s in studies] == ["<b>study</b> ' OR 1=1 --"]
    assert studies[0]["why"] == "<script>alert(1)</script>"
    r = serve.get(f"/api/v1/studies/{sid}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["trials_total"] == 6
    opts = {t["params"]["opt"] for t in body["trials"]}
    assert opts <= {"<img src=x onerror=alert(1)>", "' OR 1=1 --", "ok"}
    assert r.headers["content-type"].startswith("application/json")
    # The report carries the same text as data too.
    r = serve.get("/api/v1/projects/victim/report")
    assert r.status_code == 200, r.text
    assert any(g["title"] == "<b>study</b> ' OR 1=1 --" for g in r.json()["groups"])


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/studies/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/api/v1/studies/..%2F..%2Flabbook.db",
        "/api/v1/studies/" + "a" * 10_000,
        "/api/v1/studies/%00",
        "/api/v1/studies/'%20OR%201%3D1%20--",
        "/api/v1/studies/%E2%80%AE",
        "/api/v1/projects/" + "p" * 10_000 + "/studies",
        "/api/v1/projects/..%2F..%2F/report",
    ],
)
def test_unknown_and_traversing_ids_are_clean_errors(serve: Server, path: str) -> None:
    status, body = get(serve, path)
    if path.startswith("/api/v1/projects/") and status == 200:
        # A project name is only a name: an unknown one has nothing in it.
        assert body.get("studies", []) == [] and body.get("groups", []) == [], body
    else:
        assert 400 <= status < 500, (path, status, body)
        assert isinstance(body, dict) and "error" in body, (path, body)
    assert serve.alive()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=abc", "since"),
        ("until=1e3", "until"),
        ("since=2000&until=1000", "since"),
        ("since=0&until=99999999999999", "since"),
        ("metric=" + "m" * 300, "metric"),
        ("since=-9223372036854775808", "since"),
    ],
)
def test_the_report_window_and_metric_are_bounded(serve: Server, query: str, field: str) -> None:
    status, body = get(serve, f"/api/v1/projects/victim/report?{query}")
    assert status == 400, (query, status, body)
    assert body["error"]["field"] == field, body


def test_repeated_and_unknown_parameters_do_not_break_the_report(serve: Server) -> None:
    for query in ("since=1&since=2&until=3&until=4", "foo=bar&since=1", "since=1&" + "x=1&" * 2000):
        status, _ = get(serve, f"/api/v1/projects/victim/report?{query}")
        assert status in (200, 400, 414, 431), (query[:80], status)
        assert serve.alive()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/projects/victim/studies",
        "/api/v1/projects/victim/queue",
        "/api/v1/projects/victim/report",
        "/api/v1/studies/abc",
    ],
)
def test_every_write_method_is_refused(serve: Server, method: str, path: str) -> None:
    raw = raw_http(
        serve.host,
        serve.port,
        (
            f"{method} {path} HTTP/1.1\r\nHost: {serve.host}:{serve.port}\r\n"
            "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        ).encode(),
    )
    assert status_of(raw) in (403, 405), (method, path, raw[:200])


def test_a_study_with_long_curves_answers_a_bounded_document(serve: Server) -> None:
    sid = make_study(serve, "long-curves", steps=2_000)
    r = serve.get(f"/api/v1/studies/{sid}")
    assert r.status_code == 200, r.text
    for t in r.json()["trials"]:
        assert len(t["intermediate"]) <= 201, len(t["intermediate"])
        assert t["intermediate"][-1][0] == 1_999
    assert len(r.content) < 200_000
