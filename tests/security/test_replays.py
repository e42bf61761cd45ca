"""`GET /api/v1/runs/{id}/replays` (issue 12), attacked: the link between a
replay and its original is a run tag (`labbook.replay_of`), which anyone
who may log may set to anything through MLflow's API, so hostile values
(traversal, quotes that would break a query, a huge value, a run pointing
at itself, a cycle) must come back as data, never as a 500 or another
run's answer; unknown and traversing ids are 404s; the list is bounded;
every other method is refused. (Foreign Host names and reads embedded by
other sites are rows of test_guard.py's tables.)"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from conftest import Server, assert_unchanged, raw_http, seed, status_of, store_snapshot

pytestmark = pytest.mark.timeout(180)

REPLAY_OF = "labbook.replay_of"


def start(server: Server, run_id: str, tags: dict[str, str] | None = None) -> None:
    r = server.post_json(
        "/api/v1/runs",
        {"id": run_id, "project": "victim", "created_ms": 1_700_000_000_000},
    )
    assert r.status_code == 200, r.text
    if tags:
        r = server.post_json(
            f"/api/v1/runs/{run_id}/log",
            {"batch_id": f"tags-{run_id}", "patch": {"set_kv_tags": tags}},
        )
        assert r.status_code == 200, r.text


def set_tag(server: Server, run_id: str, key: str, value: str) -> requests.Response:
    return requests.post(
        f"{server.url}/api/2.0/mlflow/runs/set-tag",
        json={"run_id": run_id, "key": key, "value": value},
        timeout=30,
    )


def replays(server: Server, run_id: str) -> dict[str, Any]:
    r = server.get(f"/api/v1/runs/{run_id}/replays")
    assert r.status_code == 200, (run_id, r.text[:300])
    body: dict[str, Any] = r.json()
    assert set(body) == {"run", "replay_of", "replays", "replays_total", "check"}, body
    return body


@pytest.fixture
def victim(serve: Server) -> tuple[Server, dict[str, str]]:
    return serve, seed(serve)


def test_links_both_ways_and_hostile_tag_values_come_back_as_data(
    victim: tuple[Server, dict[str, str]],
) -> None:
    server, ids = victim
    original = ids["run"]
    for rid in ("replay01", "replay02"):
        start(server, rid)
        assert set_tag(server, rid, REPLAY_OF, original).status_code == 200
    body = replays(server, original)
    assert body["replay_of"] is None and body["check"] is None
    assert {r["id"] for r in body["replays"]} == {"replay01", "replay02"}
    assert body["replays_total"] == 2
    assert replays(server, "replay01")["replay_of"]["id"] == original

    hostile = {
        "hostile1": "../../../../etc/passwd",
        "hostile2": '" or status = "finished',
        "hostile3": "x" * 5000,
        "hostile4": "hostile4",  # a replay of itself
        "hostile5": "%00\u0000\ufeff",
    }
    before = store_snapshot(server.store)
    for rid, value in hostile.items():
        start(server, rid)
        r = set_tag(server, rid, REPLAY_OF, value)
        assert r.status_code in (200, 400), r.text
        body = replays(server, rid)
        link = body["replay_of"]
        if r.status_code == 200 and value != rid:
            assert link == {"id": value, "missing": True}, link
        assert b"root:" not in server.get(f"/api/v1/runs/{rid}/replays").content
        # The quote never widened a query: no run replays these.
        assert body["replays"] == [] or rid == "hostile4", body
    # The self-loop lists itself once and ends there.
    loop = replays(server, "hostile4")
    assert loop["replay_of"]["id"] == "hostile4"
    assert [r["id"] for r in loop["replays"]] == ["hostile4"]
    # The original's list is untouched by the hostile tags.
    assert replays(server, original)["replays_total"] == 2
    assert server.alive()
    del before  # the runs above were meant to change the store


def test_unknown_and_traversing_ids_are_404s(victim: tuple[Server, dict[str, str]]) -> None:
    server, ids = victim
    before = store_snapshot(server.store)
    for path in (
        "/api/v1/runs/nope/replays",
        "/api/v1/runs/..%2F..%2Fetc/replays",
        f"/api/v1/runs/{ids['run']}%2F..%2F/replays",
        f"/api/v1/runs/{'a' * 40_000}/replays",
        "/api/v1/runs/%FF/replays",
    ):
        head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nConnection: close\r\n\r\n"
        answer = raw_http(server.host, server.port, head.encode())
        assert status_of(answer) in (400, 404), (path[:80], answer[:300])
        assert b'"error"' in answer and b"root:" not in answer, answer[:300]
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        head = (
            f"{method} /api/v1/runs/{ids['run']}/replays HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nConnection: close\r\n"
            "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        )
        answer = raw_http(server.host, server.port, head.encode())
        assert status_of(answer) == 405, (method, answer[:300])
    assert server.alive()
    assert_unchanged(before, store_snapshot(server.store), "reads of replay links")


def test_the_list_is_bounded(victim: tuple[Server, dict[str, str]]) -> None:
    server, ids = victim
    for i in range(230):
        start(server, f"many{i:04d}", {REPLAY_OF: ids["run"]})
    body = replays(server, ids["run"])
    assert len(body["replays"]) == 200 and body["replays_total"] == 230
    assert server.alive()
