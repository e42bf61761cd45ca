"""The search and night endpoints (issue 13), attacked: a project's
studies, one study, the queue and the morning report. Names, parameters
and values in a study are anyone's who may log, so hostile ones come back
as data; ids that traverse, are huge or are not ids are clean 4xx JSON
errors; the report's window and metric are bounded; every write method is
refused; a study with long curves answers a bounded document. The routes
a sweep agent uses (claim, heartbeat, finish) refuse cross-site and
foreign-Host requests and non-JSON bodies, and hostile bodies (deep
nesting, huge lists, wrong types, oversized) are clean 4xx errors that
change nothing. (Foreign Host names and reads embedded by other sites are
rows of test_guard.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import Server, create_sweep, raw_http, run_seed, status_of

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
    sid: str = run_seed(HOSTILE_STUDY, name, str(server.store), str(steps))["id"]
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


def make_sweep(server: Server, run_cap: int = 3) -> str:
    return create_sweep(server, run_cap=run_cap)


def trials_of(server: Server, sid: str) -> list[dict[str, Any]]:
    r = server.get(f"/api/v1/studies/{sid}")
    assert r.status_code == 200, r.text
    trials: list[dict[str, Any]] = r.json()["trials"]
    return trials


def post(server: Server, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    head = {
        "Host": f"{server.host}:{server.port}",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Connection": "close",
        **(headers or {}),
    }
    lines = "".join(f"{k}: {v}\r\n" for k, v in head.items())
    return raw_http(
        server.host, server.port, f"POST {path} HTTP/1.1\r\n{lines}\r\n".encode() + body
    )


def agent_paths(sid: str) -> list[str]:
    return [
        f"/api/v1/studies/{sid}/claim",
        f"/api/v1/studies/{sid}/heartbeat",
        "/api/v1/trials/1/finish",
    ]


def test_an_agent_claims_keeps_alive_and_ends_trials_and_the_cap_holds(serve: Server) -> None:
    sid = make_sweep(serve, run_cap=2)
    r = serve.post_json(f"/api/v1/studies/{sid}/claim", {"host": "far-away", "pid": 4242})
    assert r.status_code == 200, r.text
    claimed = r.json()
    assert claimed["claimed"] == "trial", claimed
    trial = claimed["trial"]
    run = serve.get(f"/api/v1/runs/{trial['run_id']}").json()
    assert run["config"] == trial["params"] and run["status"] == "running", run
    assert run["kv_tags"]["labbook.sweep"] == sid
    r = serve.post_json(
        f"/api/v1/studies/{sid}/heartbeat", {"trials": [trial["id"], 99_999], "prune": True}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"state": "running", "state_reason": None, "stop": []}
    # The run never logged: the trial fails with its run's status (running
    # means it crashed), and a second finish changes nothing.
    r = serve.post_json(f"/api/v1/trials/{trial['id']}/finish", {"ending": "natural"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "crashed" and r.json()["already_ended"] is False
    r = serve.post_json(f"/api/v1/trials/{trial['id']}/finish", {"ending": "pruned", "why": "x"})
    assert r.json() == {"state": "crashed", "value": None, "already_ended": True}
    # A trial that crashed without a value is not one the cap counts (as
    # W&B counts): two more claims fill the cap of two, a fourth gets none.
    for _ in range(2):
        more = serve.post_json(f"/api/v1/studies/{sid}/claim", {}).json()
        assert more["claimed"] == "trial", more
    last = serve.post_json(f"/api/v1/studies/{sid}/claim", {}).json()
    assert last["claimed"] in ("wait", "done"), last
    assert "run cap" in last["reason"], last
    assert len(trials_of(serve, sid)) == 3


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Host": "evil.example"},
    ],
)
def test_cross_site_foreign_host_and_non_json_requests_change_nothing(
    serve: Server, headers: dict[str, str]
) -> None:
    sid = make_sweep(serve)
    for path in agent_paths(sid):
        answer = post(serve, path, b'{"ending": "natural", "trials": []}', headers)
        assert status_of(answer) in (403, 415), (headers, path, answer[:300])
    assert trials_of(serve, sid) == []


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("claim", b'{"host": ' + b"[" * 5000 + b"]" * 5000 + b"}", "body"),
        ("claim", json.dumps({"host": "h" * 10_000}).encode(), "host"),
        ("claim", json.dumps({"host": 7}).encode(), "host"),
        ("claim", json.dumps({"pid": -1}).encode(), "pid"),
        ("claim", json.dumps({"pid": 2**40}).encode(), "pid"),
        ("claim", json.dumps({"pid": "1; rm -rf /"}).encode(), "pid"),
        ("claim", b"[]", "body"),
        ("claim", b"not json", "body"),
        ("heartbeat", json.dumps({"trials": list(range(100_000))}).encode(), "trials"),
        ("heartbeat", json.dumps({"trials": ["1 OR 1=1"]}).encode(), "trials"),
        ("heartbeat", json.dumps({"trials": {"a": 1}}).encode(), "trials"),
        ("heartbeat", json.dumps({"prune": "yes"}).encode(), "prune"),
        ("heartbeat", json.dumps({"trials": [1.5]}).encode(), "trials"),
    ],
    # The bodies are too long for test names (pytest puts them in the
    # environment of the processes a test starts).
    ids=lambda v: v[:40].decode(errors="replace") if isinstance(v, bytes) else str(v),
)
def test_hostile_agent_bodies_are_clean_errors_naming_the_field(
    serve: Server, route: str, body: bytes, field: str
) -> None:
    sid = make_sweep(serve)
    answer = post(serve, f"/api/v1/studies/{sid}/{route}", body)
    assert status_of(answer) == 400, answer[:300]
    error = json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
    assert error["field"] == field, error
    assert trials_of(serve, sid) == []
    assert serve.alive()


def test_an_oversized_agent_body_is_refused(serve: Server) -> None:
    sid = make_sweep(serve)
    body = json.dumps({"host": "h", "pad": "x" * (6 << 20)}).encode()
    answer = post(serve, f"/api/v1/studies/{sid}/claim", body)
    assert status_of(answer) == 413, answer[:300]
    assert trials_of(serve, sid) == []


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/v1/trials/abc/finish", {"ending": "natural"}, 400),
        ("/api/v1/trials/..%2F..%2Fetc%2Fpasswd/finish", {"ending": "natural"}, 400),
        ("/api/v1/trials/99999999999999999999999/finish", {"ending": "natural"}, 400),
        ("/api/v1/trials/424242/finish", {"ending": "natural"}, 404),
        ("/api/v1/studies/" + "s" * 10_000 + "/claim", {}, 400),
        ("/api/v1/studies/%2e%2e%2flabbook.db/claim", {}, 404),
        ("/api/v1/studies/nope/heartbeat", {}, 404),
        # LIKE's wildcards are not a prefix of every id.
        ("/api/v1/studies/___/claim", {}, 404),
        ("/api/v1/studies/%25%25%25/claim", {}, 404),
        ("/api/v1/studies/a_%25/heartbeat", {}, 404),
    ],
)
def test_unknown_and_traversing_agent_ids_are_clean_errors(
    serve: Server, path: str, body: dict[str, Any], status: int
) -> None:
    sid = make_sweep(serve)
    r = serve.post_json(path, body)
    assert r.status_code == status, (path, r.status_code, r.text[:300])
    assert "error" in r.json()
    assert trials_of(serve, sid) == []
    assert serve.alive()


def test_agents_cannot_claim_or_end_trials_of_a_study_and_bad_endings_are_refused(
    serve: Server,
) -> None:
    study = make_study(serve, "not-a-sweep")
    r = serve.post_json(f"/api/v1/studies/{study}/claim", {})
    assert r.status_code == 400 and r.json()["error"]["field"] == "id", r.text
    assert "not a sweep" in r.json()["error"]["message"]
    r = serve.post_json(f"/api/v1/studies/{study}/heartbeat", {"trials": [1]})
    assert r.status_code == 400, r.text
    before = trials_of(serve, study)
    # The study's trials are numbered from the store's first trial id.
    for trial_id in range(1, 8):
        r = serve.post_json(f"/api/v1/trials/{trial_id}/finish", {"ending": "natural"})
        assert r.status_code in (400, 404), r.text
    assert trials_of(serve, study) == before
    sid = make_sweep(serve)
    claimed = serve.post_json(f"/api/v1/studies/{sid}/claim", {}).json()["trial"]
    for bad in ({"ending": "exploded"}, {"ending": None}, {}, {"ending": "pruned", "why": 5}):
        r = serve.post_json(f"/api/v1/trials/{claimed['id']}/finish", bad)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"]["field"] in ("ending", "why"), r.text
    assert [t["state"] for t in trials_of(serve, sid)] == ["running"]
