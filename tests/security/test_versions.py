"""The versioned artifacts' endpoints (issue 11), attacked as the rest of the
API is: traversal in every path segment and parameter, names outside the
artifact alphabet, oversized and repeated parameters, paths that are not
UTF-8, methods the read-only routes do not serve, and a version of thousands
of files asked for whole. (Foreign Host names and reads embedded by other
sites are rows of test_guard.py's tables.) Every refusal is the API's JSON
error naming what was wrong, no answer carries a file from outside the
store, and the whole store is the same afterwards."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import (
    Server,
    assert_unchanged,
    body_json,
    raw_http,
    seed,
    seed_artifacts,
    status_of,
    store_snapshot,
)

pytestmark = pytest.mark.timeout(180)

BASE = "/api/v1/projects/victim/artifacts"
VERSION = f"{BASE}/victim-data/versions/best"


@pytest.fixture
def store(serve: Server) -> tuple[Server, dict[str, str]]:
    ids = seed(serve)
    ids.update(seed_artifacts(serve))
    return serve, ids


def endpoints(ids: dict[str, str]) -> list[str]:
    """One path of each new endpoint, naming what the store holds."""
    return [
        BASE,
        f"{BASE}/victim-data",
        VERSION,
        f"{VERSION}/lineage",
        f"/api/v1/runs/{ids['artifact_run']}/lineage",
        f"/api/v1/runs/{ids['artifact_run']}/artifact-versions",
    ]


def get_raw(server: Server, path: str) -> bytes:
    """GET `path` byte for byte: an HTTP library would remove its `..`
    segments before sending."""
    head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nConnection: close\r\n\r\n"
    return raw_http(server.host, server.port, head.encode())


def error(server: Server, path: str, status: int, field: str | None) -> dict[str, Any]:
    answer = get_raw(server, path)
    head, _, content = answer.partition(b"\r\n\r\n")
    assert status_of(answer) == status, (path, answer[:300])
    assert b"\r\ncontent-type: application/json\r\n" in head.lower() + b"\r\n", (path, head)
    body: dict[str, Any] = body_json(answer)
    assert set(body) == {"error"}, (path, body)
    assert body["error"]["code"] == ("NOT_FOUND" if status == 404 else "INVALID_ARGUMENT"), body
    assert body["error"]["message"], body
    assert body["error"].get("field") == field, (path, body)
    # A refusal names the bad input briefly; it never echoes a file.
    assert len(content) < 2000 and b"root:" not in content, (path, content[:300])
    return body


def test_each_endpoint_answers_what_the_store_holds(store: tuple[Server, dict[str, str]]) -> None:
    """Not vacuous: the refusals below are refusals of endpoints that answer."""
    server, ids = store
    for path in endpoints(ids):
        r = server.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        assert b"victim-data" in r.content, path
    v = server.get(VERSION).json()
    assert v["ref"] == "victim-data:v0" and v["aliases"] == ["best", "latest"]
    assert [f["path"] for f in v["files"]] == ["sub/notes.txt", "train.csv"]
    assert [(r["id"], r["role"]) for r in v["runs"]] == [
        (ids["artifact_maker"], "output"),
        (ids["artifact_run"], "input"),
    ]


def test_traversal_and_foreign_names_are_refused_in_every_segment(
    store: tuple[Server, dict[str, str]],
) -> None:
    server, ids = store
    before = store_snapshot(server.store)
    run = ids["artifact_run"]
    rows: list[tuple[str, int, str | None]] = [
        # The project: a name the store does not hold, however it is spelled.
        ("/api/v1/projects/..%2F..%2Fetc%2Fpasswd/artifacts", 404, None),
        ("/api/v1/projects/%2E%2E/artifacts/victim-data", 404, None),
        ("/api/v1/projects/victim%00/artifacts", 404, None),
        ("/api/v1/projects/nope/artifacts/victim-data/versions/v0", 404, None),
        # The name: only [A-Za-z0-9_.-], not starting with '.' or '-'.
        (f"{BASE}/..", 400, "name"),
        (f"{BASE}/..%2F..%2F..%2Fetc%2Fpasswd", 400, "name"),
        (f"{BASE}/%2E%2E%2Fvictim-data/versions/v0", 400, "name"),
        (f"{BASE}/victim-data%00/versions/v0", 400, "name"),
        (f"{BASE}/victim%20data/versions/v0/lineage", 400, "name"),
        (f"{BASE}/-victim", 400, "name"),
        (f"{BASE}/%C3%A9t%C3%A9", 400, "name"),
        (f"{BASE}/nope", 404, None),
        (f"{BASE}/nope/versions/v0", 404, None),
        # The version: v and digits, or an alias by the name's rules.
        (f"{BASE}/victim-data/versions/..%2F..%2Fetc", 400, "version"),
        (f"{BASE}/victim-data/versions/v0%2F..%2F..", 400, "version"),
        (f"{BASE}/victim-data/versions/.hidden", 400, "version"),
        (f"{BASE}/victim-data/versions/v99999999999999999999999", 400, "version"),
        (f"{BASE}/victim-data/versions/v-1", 404, None),
        (f"{BASE}/victim-data/versions/v7", 404, None),
        (f"{BASE}/victim-data/versions/nobody/lineage", 404, None),
        # The type filter, by the same rules.
        (f"{BASE}?type=..%2F..%2Fetc", 400, "type"),
        (f"{BASE}?type=%00", 400, "type"),
        # Runs: any id the store does not hold.
        ("/api/v1/runs/..%2F..%2Fetc/lineage", 404, None),
        ("/api/v1/runs/nope/artifact-versions", 404, None),
        (f"/api/v1/runs/{run}%2F..%2F/lineage", 404, None),
    ]
    for path, status, field in rows:
        error(server, path, status, field)
    # A path the router does not know stays the API's 404, not the dashboard.
    for path in (f"{VERSION}/lineage/../../../../etc/passwd", f"{BASE}/../../../../../etc/passwd"):
        answer = get_raw(server, path)
        assert status_of(answer) in (400, 404) and b"root:" not in answer, answer[:300]
    assert server.alive()
    assert_unchanged(before, store_snapshot(server.store), "traversal in artifact paths")


def test_oversized_and_repeated_parameters_are_400s_naming_them(
    store: tuple[Server, dict[str, str]],
) -> None:
    server, ids = store
    before = store_snapshot(server.store)
    run = ids["artifact_run"]
    long = "a" * 40_000
    rows: list[tuple[str, str | None]] = [
        (f"{BASE}/{long}", "name"),
        (f"{BASE}/victim-data/versions/{long}", "version"),
        (f"{BASE}/{'b' * 129}/versions/v0/lineage", "name"),
        (f"{BASE}?type={long}", "type"),
        (f"{BASE}?limit=10001", "limit"),
        (f"{BASE}?limit=18446744073709551616", "limit"),
        (f"{BASE}?offset=-1", "offset"),
        (f"{BASE}?offset=1e9", "offset"),
        (f"{BASE}/victim-data?limit=99999999999999999999999", "limit"),
        (f"{VERSION}?offset=x", "offset"),
        (f"/api/v1/runs/{run}/artifact-versions?limit=-5", "limit"),
        # Given twice: refused, not resolved to one of the copies.
        (f"{BASE}?type=dataset&type=model", "type"),
        (f"{BASE}?limit=1&limit=10000", "limit"),
        (f"{BASE}/victim-data?offset=0&offset=1", "offset"),
        (f"{VERSION}?limit=1&limit=1", "limit"),
        (f"/api/v1/runs/{run}/artifact-versions?limit=1&limit=2", "limit"),
    ]
    for path, field in rows:
        body = error(server, path, 400, field)
        assert long not in body["error"]["message"], path
    # Parameters an endpoint does not read are ignored, as elsewhere.
    assert server.get(f"{VERSION}?x=1&x=2&{'y' * 1000}=z").status_code == 200
    # Past the URL limit, the HTTP layer refuses before any handler.
    huge = raw_http(
        server.host,
        server.port,
        f"GET {BASE}?type={'a' * 70_000} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Connection: close\r\n\r\n".encode(),
    )
    assert status_of(huge) in (400, 414), huge[:200]
    for path in (f"{BASE}/%FF", f"{BASE}/victim-data/versions/%C3%28", "/api/v1/runs/%FF/lineage"):
        r = server.get(path)
        assert 400 <= r.status_code < 500 and r.json()["error"]["message"], (path, r.text)
    assert server.alive()
    assert_unchanged(before, store_snapshot(server.store), "oversized and repeated parameters")


def test_the_read_only_routes_refuse_every_other_method(
    store: tuple[Server, dict[str, str]],
) -> None:
    server, ids = store
    before = store_snapshot(server.store)
    for path in endpoints(ids):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            head = (
                f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                "Connection: close\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
            )
            answer = raw_http(server.host, server.port, head.encode())
            assert status_of(answer) == 405, (method, path, answer[:300])
            head_part = answer.partition(b"\r\n\r\n")[0].lower()
            assert b"\r\nallow:get,head" in head_part.replace(b" ", b""), head_part
            assert b'"METHOD_NOT_ALLOWED"' in answer, answer[:300]
    assert_unchanged(before, store_snapshot(server.store), "writes to read-only artifact routes")


def test_a_version_of_thousands_of_files_answers_a_bounded_page(serve: Server) -> None:
    """A version's answer lists a page of its files and says how many it
    left out; no parameter makes it list more than 10,000."""
    seed_artifacts(serve, files=12_000)
    total = 12_002
    first = serve.get(VERSION)
    assert first.status_code == 200, first.text[:300]
    v = first.json()
    assert (v["file_count"], v["files_total"]) == (total, total)
    assert len(v["files"]) == 1000 and v["files_left_out"] == total - 1000
    assert v["files"][0]["path"] == "many/000/f000000.txt"
    most = serve.get(VERSION, params={"limit": 10_000, "offset": 5_000}).json()
    assert len(most["files"]) == 7_002 and most["files_left_out"] == 5_000
    assert most["files_offset"] == 5_000 and most["files"][0]["path"] == "many/005/f005000.txt"
    capped = serve.get(VERSION, params={"limit": 10_000}).json()
    assert len(capped["files"]) == 10_000 and capped["files_left_out"] == 2_002
    past = serve.get(VERSION, params={"offset": 10**15}).json()
    assert past["files"] == [] and past["files_left_out"] == total
    assert serve.get(VERSION, params={"limit": 10_001}).status_code == 400
    assert serve.alive()
