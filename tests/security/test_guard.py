"""The request guard, table by table: Host names, cross-site writes to every
writing endpoint of both APIs, embedded reads, CORS, security headers and
methods a route does not serve. Each row is a request a hostile web page (or
a page on a rebound DNS name) can make; afterwards the whole store must be
unchanged."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import (
    REPO,
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

SERVER_SRC = REPO / "crates/labbook-server/src"

# labbook's own writing endpoints (api.rs), with bodies that would change the
# seeded store if they got through.
LABBOOK_WRITES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/api/v1/runs", {"project": "pwned", "id": "pwned001"}),
    ("POST", "/api/v1/runs/tags", {"ids": ["{run}"], "add": ["pwned"]}),
    ("POST", "/api/v1/runs/delete", {"ids": ["{run}"]}),
    ("POST", "/api/v1/runs/restore", {"ids": ["{run}"]}),
    (
        "POST",
        "/api/v1/runs/{run}/log",
        {"batch_id": "pwn", "series": {"loss": {"steps": [9], "ts_ms": [9], "values": [9]}}},
    ),
    ("POST", "/api/v1/runs/{run}/environment", {"git": {"commit": "forged"}}),
    ("POST", "/api/v1/runs/{run}/notes", {"text": "pwned"}),
    ("POST", "/api/v1/projects/victim/notebook", {"text": "pwned"}),
]

# Bodies for MLflow's writing endpoints that would succeed against the seed.
MLFLOW_BODIES: dict[str, dict[str, Any]] = {
    "/experiments/create": {"name": "pwned"},
    "/experiments/update": {"experiment_id": "{exp}", "new_name": "pwned"},
    "/experiments/delete": {"experiment_id": "{exp}"},
    "/experiments/restore": {"experiment_id": "{exp}"},
    "/experiments/set-experiment-tag": {"experiment_id": "{exp}", "key": "k", "value": "pwned"},
    "/experiments/delete-experiment-tag": {"experiment_id": "{exp}", "key": "k"},
    "/runs/create": {"experiment_id": "{exp}"},
    "/runs/update": {"run_id": "{mlrun}", "status": "KILLED"},
    "/runs/delete": {"run_id": "{mlrun}"},
    "/runs/restore": {"run_id": "{mlrun}"},
    "/runs/log-metric": {"run_id": "{mlrun}", "key": "m", "value": 9, "timestamp": 9, "step": 9},
    "/runs/log-parameter": {"run_id": "{mlrun}", "key": "q", "value": "pwned"},
    "/runs/log-batch": {
        "run_id": "{mlrun}",
        "metrics": [{"key": "m", "value": 9, "timestamp": 9, "step": 9}],
    },
    "/runs/set-tag": {"run_id": "{mlrun}", "key": "t", "value": "pwned"},
    "/runs/delete-tag": {"run_id": "{mlrun}", "key": "t"},
    "/runs/log-inputs": {
        "run_id": "{mlrun}",
        "datasets": [{"dataset": {"name": "d", "digest": "x"}}],
    },
    "/runs/outputs": {"run_id": "{mlrun}", "models": [{"model_id": "m-1", "step": 0}]},
    "/runs/log-model": {"run_id": "{mlrun}", "model_json": "{}"},
    "/logged-models": {"experiment_id": "{exp}", "name": "pwned"},
    "/registered-models/create": {"name": "pwned"},
    "/registered-models/rename": {"name": "victim-model", "new_name": "pwned"},
    "/registered-models/update": {"name": "victim-model", "description": "pwned"},
    "/registered-models/delete": {"name": "victim-model"},
    "/registered-models/set-tag": {"name": "victim-model", "key": "k", "value": "pwned"},
    "/registered-models/delete-tag": {"name": "victim-model", "key": "k"},
    "/registered-models/alias": {"name": "victim-model", "alias": "a", "version": "1"},
    "/model-versions/create": {"name": "victim-model", "source": "mlflow-artifacts:/x"},
    "/model-versions/update": {"name": "victim-model", "version": "1", "description": "pwned"},
    "/model-versions/delete": {"name": "victim-model", "version": "1"},
    "/model-versions/transition-stage": {
        "name": "victim-model",
        "version": "1",
        "stage": "Production",
    },
    "/model-versions/set-tag": {"name": "victim-model", "version": "1", "key": "k", "value": "v"},
    "/model-versions/delete-tag": {"name": "victim-model", "version": "1", "key": "k"},
}

ROUTE = re.compile(
    r'\.route\(\s*"(?P<path>[^"]+)",\s*(?P<methods>(?:\s*\.?\s*(?:get|post|patch|delete|put)\(\w+\))+)',
    re.S,
)


def mlflow_writes() -> list[tuple[str, str]]:
    """Every (method, path) of MLflow's API that is not a GET, read from the
    router's source so that a new endpoint cannot be left out of the table."""
    found = []
    for file in ("mlflow/tracking.rs", "mlflow/registry.rs"):
        for m in ROUTE.finditer((SERVER_SRC / file).read_text()):
            for method in re.findall(r"(get|post|patch|delete|put)\(", m["methods"]):
                if method != "get":
                    found.append((method.upper(), m["path"]))
    assert len(found) >= 40, found
    return found


def all_writes(ids: dict[str, str]) -> list[tuple[str, str, str]]:
    """(method, path, JSON body) for every writing endpoint of both APIs,
    MLflow's under both of its prefixes."""

    def fill(text: str) -> str:
        return (
            text.replace("{run}", ids["run"])
            .replace("{exp}", ids["experiment"])
            .replace("{mlrun}", ids["mlflow_run"])
            .replace("{model_id}", "m-1")
            .replace("{key}", "k")
        )

    rows = [(m, fill(p), fill(json.dumps(b))) for m, p, b in LABBOOK_WRITES]
    for method, path in mlflow_writes():
        body = MLFLOW_BODIES.get(path, {"name": "pwned", "key": "k", "value": "v"})
        for prefix in ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow"):
            rows.append((method, fill(prefix + path), fill(json.dumps(body))))
    return rows


def request(
    server: Server, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return raw_http(server.host, server.port, head.encode() + b"\r\n" + body)


def host(server: Server) -> dict[str, str]:
    return {"Host": f"127.0.0.1:{server.port}"}


def refused(answer: bytes, status: int, mlflow: bool, code: str) -> None:
    assert status_of(answer) == status, answer[:600]
    body = body_json(answer)
    if mlflow:
        assert body["error_code"] in (code, "BAD_REQUEST", "PERMISSION_DENIED"), body
        assert body["message"], body
    else:
        assert body["error"]["code"] == code, body
        assert body["error"]["message"], body


@pytest.fixture
def victim(serve: Server) -> tuple[Server, dict[str, str]]:
    ids = seed(serve)
    ids.update(seed_artifacts(serve))
    return serve, ids


def artifact_reads(ids: dict[str, str]) -> list[str]:
    """A path of each endpoint of versioned artifacts, naming what the
    victim's store holds."""
    version = "/api/v1/projects/victim/artifacts/victim-data/versions/best"
    return [
        "/api/v1/projects/victim/artifacts",
        "/api/v1/projects/victim/artifacts/victim-data",
        version,
        f"{version}/lineage",
        f"/api/v1/runs/{ids['artifact_run']}/lineage",
        f"/api/v1/runs/{ids['artifact_run']}/artifact-versions",
        f"/api/v1/runs/{ids['run']}/replays",
        "/api/v1/projects/victim/studies",
        "/api/v1/projects/victim/queue",
        "/api/v1/projects/victim/report",
    ]


def test_foreign_host_names_are_refused_for_every_kind_of_request(
    victim: tuple[Server, dict[str, str]],
) -> None:
    server, ids = victim
    before = store_snapshot(server.store)
    artifact = f"/api/2.0/mlflow-artifacts/artifacts/{ids['artifact_root']}/notes.txt"
    reads = [
        ("GET", "/api/v1/projects", b"", False),
        ("GET", "/api/v1/projects/victim/runs", b"", False),
        ("GET", f"/api/v1/runs/{ids['run']}", b"", False),
        ("GET", "/api/v1/events?project=victim", b"", False),
        ("GET", "/api/2.0/mlflow/experiments/search?max_results=10", b"", True),
        ("GET", artifact, b"", True),
        ("GET", f"/get-artifact?path=notes.txt&run_uuid={ids['mlflow_run']}", b"", True),
        ("GET", "/", b"", False),
        ("GET", "/p/victim", b"", False),
        (
            "POST",
            "/api/v1/runs/tags",
            json.dumps({"ids": [ids["run"]], "add": ["pwned"]}).encode(),
            False,
        ),
        ("POST", "/api/2.0/mlflow/experiments/create", b'{"name": "pwned"}', True),
        ("DELETE", artifact, b"", True),
        *(("GET", path, b"", False) for path in artifact_reads(ids)),
    ]
    bad_hosts = [
        "evil.example",
        f"evil.example:{server.port}",
        "localhost.evil.example",
        f"127.0.0.1.evil.example:{server.port}",
        "localhost@evil.example",
        "",
    ]
    for bad in bad_hosts:
        for method, path, body, mlflow in reads:
            headers = {"Host": bad, "Content-Type": "application/json"}
            answer = request(server, method, path, headers, body)
            # An empty Host is refused by the HTTP layer or the guard: 400 or 403.
            assert status_of(answer) in (400, 403), (bad, path, answer[:300])
            assert b"victim" not in answer and b"seedrun1" not in answer, (bad, path)
            assert ids["artifact_run"].encode() not in answer, (bad, path)
            if status_of(answer) == 403:
                refused(answer, 403, mlflow, "FORBIDDEN_HOST")
    no_host = raw_http(
        server.host, server.port, b"GET /api/v1/projects HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    assert status_of(no_host) in (400, 403) and b"victim" not in no_host
    assert_unchanged(before, store_snapshot(server.store), "requests with foreign Host headers")
    # The names a user's own browser uses are answered.
    for good in (
        f"127.0.0.1:{server.port}",
        f"localhost:{server.port}",
        "[::1]",
        f"LOCALHOST:{server.port}",
        socket.gethostname(),
    ):
        answer = request(server, "GET", "/api/v1/projects", {"Host": good})
        assert status_of(answer) == 200 and b"victim" in answer, (good, answer[:300])


def test_allowed_hosts_names_more(launch: Any) -> None:
    server: Server = launch("serve", "--allowed-hosts", "labbook.test,*.corp.test")
    for good in ("labbook.test", f"labbook.test:{server.port}", "a.corp.test", "127.0.0.1"):
        assert status_of(request(server, "GET", "/health", {"Host": good})) == 200, good
    for bad in ("corp.test", "evil.test", "labbook.test.evil"):
        assert status_of(request(server, "GET", "/health", {"Host": bad})) == 403, bad


def test_paths_with_leading_slashes_meet_the_same_guard(
    victim: tuple[Server, dict[str, str]],
) -> None:
    """`//api/...` is served as `/api/...` (as MLflow does): the merge happens
    before the guard, so a doubled slash is no way around it."""
    server, ids = victim
    before = store_snapshot(server.store)
    writes = [
        ("//api/2.0/mlflow/experiments/create", b'{"name": "pwned"}', True),
        (
            "///api/v1/runs/tags",
            json.dumps({"ids": [ids["run"]], "add": ["pwned"]}).encode(),
            False,
        ),
    ]
    for path, body, mlflow in writes:
        for headers, status, code in [
            ({"Origin": "http://evil.example", "Content-Type": "text/plain"}, 403, "CROSS_ORIGIN"),
            (
                {"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"},
                403,
                "CROSS_ORIGIN",
            ),
            ({"Content-Type": "text/plain"}, 415, "UNSUPPORTED_MEDIA_TYPE"),
        ]:
            answer = request(server, "POST", path, {**host(server), **headers}, body)
            refused(answer, status, mlflow, code)
        foreign = request(
            server, "POST", path, {"Host": "evil.example", "Content-Type": "application/json"}, body
        )
        assert status_of(foreign) == 403, foreign[:300]
    # Traversal stays refused: only the leading slashes merge.
    root = ids["artifact_root"]
    for path in (
        f"//api/2.0/mlflow-artifacts/artifacts/{root}/../../../etc/passwd",
        "//api/2.0/mlflow-artifacts/artifacts//etc/passwd",
    ):
        answer = request(server, "GET", path, host(server))
        assert status_of(answer) in (400, 404), answer[:300]
        assert b"root:" not in answer
    assert server.alive()
    assert_unchanged(before, store_snapshot(server.store), "writes to //-prefixed paths")


def test_no_cross_site_write_reaches_any_endpoint(victim: tuple[Server, dict[str, str]]) -> None:
    """Every writing endpoint of both APIs, in every form a web page can send:
    a form (text/plain with a JSON-looking body, urlencoded, multipart), a
    no-cors fetch, a JSON fetch (which a browser would preflight), from
    another site, from another port of 127.0.0.1 (same site), from a
    sandboxed frame (Origin: null); and bodies that are not JSON at all."""
    server, ids = victim
    before = store_snapshot(server.store)
    other_port = f"http://127.0.0.1:{server.port + 1 if server.port < 65535 else 1}"
    rows = all_writes(ids)
    assert len(rows) > 90
    for method, path, body_text in rows:
        mlflow = "mlflow" in path
        # What the page can send: (headers, body, expected status, labbook code)
        smuggled = body_text[:-1] + ', "x": "=y"}' if body_text.endswith("}") else body_text
        variants: list[tuple[dict[str, str], bytes, int, str]] = [
            (
                {
                    "Origin": "http://evil.example",
                    "Sec-Fetch-Site": "cross-site",
                    "Content-Type": "text/plain",
                },
                smuggled.encode(),
                403,
                "CROSS_ORIGIN",
            ),
            (
                {
                    "Origin": "http://evil.example",
                    "Content-Type": "application/x-www-form-urlencoded",
                },
                b"name=pwned&run_id=" + ids["mlflow_run"].encode(),
                403,
                "CROSS_ORIGIN",
            ),
            (
                {
                    "Origin": "http://evil.example",
                    "Content-Type": "multipart/form-data; boundary=b",
                },
                b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\npwned\r\n--b--\r\n',
                403,
                "CROSS_ORIGIN",
            ),
            (
                {"Origin": "http://evil.example", "Content-Type": "application/json"},
                body_text.encode(),
                403,
                "CROSS_ORIGIN",
            ),
            (
                {
                    "Origin": other_port,
                    "Sec-Fetch-Site": "same-site",
                    "Content-Type": "application/json",
                },
                body_text.encode(),
                403,
                "CROSS_ORIGIN",
            ),
            (
                {"Origin": "null", "Content-Type": "application/json"},
                body_text.encode(),
                403,
                "CROSS_ORIGIN",
            ),
            (
                {"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"},
                body_text.encode(),
                403,
                "CROSS_ORIGIN",
            ),
            # A bodyless fetch (fields in the query string) carries its Origin.
            ({"Origin": "http://evil.example"}, b"", 403, "CROSS_ORIGIN"),
            # Without browser headers (an old browser, a plain form with the
            # fields in the query string): the body type alone stops it.
            ({"Content-Type": "text/plain"}, body_text.encode(), 415, "UNSUPPORTED_MEDIA_TYPE"),
            (
                {"Content-Type": "application/x-www-form-urlencoded"},
                b"",
                415,
                "UNSUPPORTED_MEDIA_TYPE",
            ),
        ]
        for headers, body, status, code in variants:
            target = path + ("?name=pwned&experiment_id=" + ids["experiment"] if not body else "")
            answer = request(server, method, target, {**host(server), **headers}, body)
            try:
                refused(answer, status, mlflow, code)
            except AssertionError as e:
                raise AssertionError(f"{method} {target} with {headers}: {e}") from None
    assert server.alive()
    assert_unchanged(before, store_snapshot(server.store), "cross-site writes")
    # The same writes sent the way the mlflow client and the SDK send them
    # (JSON, no browser headers) do change the store: the table above would
    # have seen a write that got through.
    r = requests.post(
        f"{server.url}/api/2.0/mlflow/experiments/create", json={"name": "legit"}, timeout=30
    )
    assert r.status_code == 200, r.text
    r = server.post_json("/api/v1/runs/tags", {"ids": [ids["run"]], "add": ["legit"]})
    assert r.status_code == 200, r.text
    after = store_snapshot(server.store)
    with pytest.raises(AssertionError):
        assert_unchanged(before, after, "legitimate writes")


def test_the_dashboards_own_writes_pass(victim: tuple[Server, dict[str, str]]) -> None:
    """Same-origin requests, as the dashboard's page sends them, still work."""
    server, ids = victim
    headers = {
        **host(server),
        "Origin": server.url,
        "Sec-Fetch-Site": "same-origin",
        "Content-Type": "application/json",
    }
    body = json.dumps({"ids": [ids["run"]], "add": ["from-dashboard"]}).encode()
    answer = request(server, "POST", "/api/v1/runs/tags", headers, body)
    assert status_of(answer) == 200, answer[:300]
    assert "from-dashboard" in server.get(f"/api/v1/runs/{ids['run']}").json()["tags"]


def test_api_reads_embedded_by_other_sites_are_refused(
    victim: tuple[Server, dict[str, str]],
) -> None:
    server, ids = victim
    artifact = f"/api/2.0/mlflow-artifacts/artifacts/{ids['artifact_root']}/notes.txt"
    for path in (
        "/api/v1/projects",
        "/api/v1/projects/victim/runs",
        "/api/2.0/mlflow/experiments/search?max_results=5",
        artifact,
        "/api/v1/events?project=victim",
        *artifact_reads(ids),
    ):
        for site, dest in (
            ("cross-site", "image"),
            ("cross-site", "script"),
            ("same-site", "empty"),
            ("cross-site", "empty"),
        ):
            headers = {
                **host(server),
                "Sec-Fetch-Site": site,
                "Sec-Fetch-Mode": "no-cors",
                "Sec-Fetch-Dest": dest,
            }
            answer = request(server, "GET", path, headers)
            assert status_of(answer) == 403, (path, site, dest, answer[:300])
            assert b"victim" not in answer and b"hello" not in answer
        cors = request(
            server,
            "GET",
            path,
            {
                **host(server),
                "Origin": "http://evil.example",
                "Sec-Fetch-Mode": "cors",
                "Sec-Fetch-Site": "cross-site",
            },
        )
        assert status_of(cors) == 403 and b"access-control-allow-origin" not in cors.lower()
        # A user following a link from elsewhere (a navigation) may look.
        nav = request(
            server,
            "GET",
            path if "events" not in path else "/api/v1/projects",
            {**host(server), "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"},
        )
        assert status_of(nav) == 200, (path, nav[:300])


def test_cors_only_for_the_origins_named(launch: Any) -> None:
    plain: Server = launch("serve")
    preflight = {
        "Origin": "http://localhost:8888",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    answer = request(
        plain, "OPTIONS", "/api/2.0/mlflow/experiments/create", {**host(plain), **preflight}
    )
    assert status_of(answer) == 403 and b"access-control-allow" not in answer.lower()
    answer = request(
        plain, "GET", "/api/v1/projects", {**host(plain), "Origin": "http://localhost:8888"}
    )
    assert b"access-control-allow-origin" not in answer.lower()

    opened: Server = launch("serve", "--cors-allowed-origins", "http://localhost:8888")
    answer = request(
        opened, "OPTIONS", "/api/2.0/mlflow/experiments/create", {**host(opened), **preflight}
    )
    assert status_of(answer) == 204, answer[:300]
    assert b"access-control-allow-origin: http://localhost:8888" in answer.lower()
    assert b"access-control-allow-headers: content-type" in answer.lower()
    headers = {
        **host(opened),
        "Origin": "http://localhost:8888",
        "Sec-Fetch-Site": "same-site",
        "Sec-Fetch-Mode": "cors",
        "Content-Type": "application/json",
    }
    answer = request(
        opened, "POST", "/api/2.0/mlflow/experiments/create", headers, b'{"name": "from-notebook"}'
    )
    assert (
        status_of(answer) == 200
        and b"access-control-allow-origin: http://localhost:8888" in answer.lower()
    )
    answer = request(
        opened,
        "POST",
        "/api/2.0/mlflow/experiments/create",
        {**headers, "Origin": "http://evil.example"},
        b'{"name": "pwned"}',
    )
    assert status_of(answer) == 403


CSP_DASHBOARD = "default-src 'self'; script-src 'self'; style-src 'self'"


def headers_of(answer: bytes) -> dict[str, str]:
    head = answer.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head)}


def test_every_response_carries_security_headers(victim: tuple[Server, dict[str, str]]) -> None:
    server, ids = victim
    artifact = f"/api/2.0/mlflow-artifacts/artifacts/{ids['artifact_root']}/notes.txt"
    cases = [
        ("GET", "/", {}, "html"),
        ("GET", "/p/victim/run/seedrun1", {}, "html"),
        ("GET", "/api/v1/projects", {}, "api"),
        ("GET", artifact, {}, "api"),
        ("GET", "/api/v1/nope", {}, "api"),
        ("GET", "/health", {}, "api"),
        ("GET", "/api/v1/projects", {"Host": "evil.example"}, "api"),
        ("PUT", "/p/x", {}, "api"),
        ("POST", "/api/v1/runs/tags", {"Content-Type": "text/plain"}, "api"),
    ]
    for method, path, extra, kind in cases:
        answer = request(server, method, path, {**host(server), **extra})
        h = headers_of(answer)
        assert h.get("x-content-type-options") == "nosniff", (path, h)
        assert h.get("x-frame-options") == "DENY", (path, h)
        assert h.get("referrer-policy") == "no-referrer", (path, h)
        assert h.get("cross-origin-resource-policy") == "same-origin", (path, h)
        csp = h.get("content-security-policy", "")
        if kind == "html":
            assert csp.startswith(CSP_DASHBOARD) and "frame-ancestors 'none'" in csp, (path, csp)
            assert "unsafe" not in csp
        else:
            assert csp.startswith("default-src 'none'") and "sandbox" in csp, (path, csp)
    download = server.get(artifact)
    assert download.content == b"hello"
    # Typed as MLflow types it, but always an attachment the browser saves,
    # never a page it renders on the server's origin.
    assert download.headers["content-type"] == "text/plain"
    assert download.headers["content-disposition"] == "attachment; filename=notes.txt"
    assert download.headers["x-content-type-options"] == "nosniff"


def test_methods_a_route_does_not_serve_are_405(serve: Server) -> None:
    rows = [
        ("PUT", "/p/x", False),
        ("POST", "/", False),
        ("DELETE", "/p/victim", False),
        ("PATCH", "/api/v1/projects", False),
        ("DELETE", "/api/v1/runs/tags", False),
        ("GET", "/api/2.0/mlflow/runs/create", True),
        ("PUT", "/api/2.0/mlflow/experiments/create", True),
    ]
    for method, path, mlflow in rows:
        headers = {**host(serve), "Content-Type": "application/json"}
        answer = request(serve, method, path, headers, b"{}" if method != "GET" else b"")
        assert status_of(answer) == 405, (method, path, answer[:300])
        assert b"<html" not in answer.lower() and b"<!doctype" not in answer.lower()
        body = body_json(answer)
        if mlflow:
            assert body["error_code"] == "ENDPOINT_NOT_FOUND", body
        else:
            assert body["error"]["code"] == "METHOD_NOT_ALLOWED", body
    page = request(serve, "PUT", "/p/x", host(serve))
    assert headers_of(page).get("allow") == "GET, HEAD"


def test_the_route_table_covers_labbook_writes() -> None:
    """A writing endpoint added to api.rs must join LABBOOK_WRITES."""
    source = (SERVER_SRC / "api.rs").read_text()
    writes = set()
    for m in ROUTE.finditer(source):
        for method in re.findall(r"(get|post|patch|delete|put)\(", m["methods"]):
            if method != "get":
                writes.add((method.upper(), "/api/v1" + m["path"]))

    def normal(path: str) -> str:
        return re.sub(r"\{[^}]+\}", "{}", path).replace("/victim/", "/{}/")

    table = {(m, normal(p)) for m, p, _ in LABBOOK_WRITES}
    assert {(m, normal(p)) for m, p in writes} == table


def test_store_snapshot_sees_every_table(
    victim: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    server, _ = victim
    snap = store_snapshot(server.store)
    for table in ("runs", "projects", "chunks", "series", "artifacts", "documents"):
        assert table in snap["tables"], sorted(snap["tables"])
    assert any(path.startswith("artifacts/blobs/") for path in snap["files"])
