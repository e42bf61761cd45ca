"""Bad input over raw HTTP: the exact status and error_code MLflow answers with.

Every JSON error body has `error_code` and `message`. Where MLflow itself gets a bad
input wrong (a 500, or a 200 that stores garbage), the test accepts MLflow's answer
only under CONFORMANCE_SERVER=mlflow and demands a 4xx (and nothing stored) otherwise.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests
import store_snapshot
from conftest import IS_MLFLOW, Server, unique_name

API = "/api/2.0/mlflow"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"
MISSING_RUN = "0" * 32
MISSING_EXPERIMENT = "987654321"


def error(resp: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, f"{resp.status_code} {resp.text[:300]}"
    body = resp.json()
    assert body["error_code"] == code, body
    assert isinstance(body["message"], str) and body["message"], body
    return body


def is_4xx_error(resp: requests.Response) -> None:
    """A client error with the usual body."""
    assert 400 <= resp.status_code < 500, f"{resp.status_code} {resp.text[:300]}"
    body = resp.json()
    assert isinstance(body["error_code"], str) and body["error_code"], body
    assert isinstance(body["message"], str) and body["message"], body


@dataclass
class Ctx:
    base: str
    http: requests.Session
    experiment_id: str
    experiment_name: str
    run_id: str

    def post(self, path: str, body: Any) -> requests.Response:
        return self.http.post(f"{self.base}{API}/{path}", json=body)

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.http.get(f"{self.base}{API}/{path}", params=params)

    def run_data(self, run_id: str | None = None) -> dict[str, Any]:
        resp = self.get("runs/get", run_id=run_id or self.run_id)
        assert resp.status_code == 200, resp.text
        data: dict[str, Any] = resp.json()["run"].get("data", {})
        return data

    def logged(self, run_id: str | None = None) -> tuple[list[Any], list[Any]]:
        """The run's metrics and params (absent and empty lists are the same thing)."""
        data = self.run_data(run_id)
        return data.get("metrics", []), data.get("params", [])

    def fresh_run(self) -> str:
        resp = self.post("runs/create", {"experiment_id": self.experiment_id})
        assert resp.status_code == 200, resp.text
        run_id: str = resp.json()["run"]["info"]["run_id"]
        return run_id


@pytest.fixture
def ctx(base_url: str, http: requests.Session) -> Ctx:
    name = unique_name("conf-bad")
    resp = http.post(f"{base_url}{API}/experiments/create", json={"name": name})
    assert resp.status_code == 200, resp.text
    exp_id = resp.json()["experiment_id"]
    run = http.post(f"{base_url}{API}/runs/create", json={"experiment_id": exp_id})
    assert run.status_code == 200, run.text
    return Ctx(base_url, http, exp_id, name, run.json()["run"]["info"]["run_id"])


def metric(
    key: str, value: Any = 1.0, timestamp: Any = 1_700_000_000_000, step: Any = 0
) -> dict[str, Any]:
    return {"key": key, "value": value, "timestamp": timestamp, "step": step}


# --- missing fields and wrong types ------------------------------------------------------


def test_missing_required_fields(ctx: Ctx) -> None:
    rid = ctx.run_id
    error(ctx.get("runs/get"), 400, "INVALID_PARAMETER_VALUE")
    error(ctx.post("experiments/create", {}), 400, "INVALID_PARAMETER_VALUE")
    error(ctx.post("experiments/create", {"name": ""}), 400, "INVALID_PARAMETER_VALUE")
    error(ctx.get("experiments/get"), 400, "INVALID_PARAMETER_VALUE")
    error(ctx.get("metrics/get-history", run_id=rid), 400, "INVALID_PARAMETER_VALUE")
    error(
        ctx.post("runs/log-metric", {"run_id": rid, "value": 1.0, "timestamp": 1}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(
        ctx.post("runs/log-metric", {"run_id": rid, "key": "m", "timestamp": 1}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(
        ctx.post("runs/log-metric", {"run_id": rid, "key": "m", "value": 1.0}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(ctx.post("runs/set-tag", {"run_id": rid, "value": "v"}), 400, "INVALID_PARAMETER_VALUE")
    error(
        ctx.post(
            "runs/log-batch", {"run_id": rid, "metrics": [{"key": "m", "value": 1.0, "step": 1}]}
        ),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(
        ctx.post("runs/log-batch", {"run_id": rid, "metrics": [{"value": 1.0, "timestamp": 1}]}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(ctx.post("registered-models/create", {}), 400, "INVALID_PARAMETER_VALUE")
    assert ctx.logged()[0] == []


def test_wrong_types(ctx: Ctx) -> None:
    rid = ctx.run_id
    error(
        ctx.post("runs/log-metric", metric("m", value="abc") | {"run_id": rid}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(
        ctx.post("runs/log-metric", metric("m", step="abc") | {"run_id": rid}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(
        ctx.post("runs/log-metric", metric("m", timestamp="yesterday") | {"run_id": rid}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(ctx.post("experiments/create", {"name": 5}), 400, "INVALID_PARAMETER_VALUE")
    error(
        ctx.post("runs/log-parameter", {"run_id": rid, "key": "p", "value": 5}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(
        ctx.post("runs/log-batch", {"run_id": rid, "metrics": {"key": "m"}}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(
        ctx.post("runs/search", {"experiment_ids": ctx.experiment_id}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    error(ctx.get("experiments/get", experiment_id="abc"), 400, "INVALID_PARAMETER_VALUE")
    assert ctx.logged() == ([], [])


def test_bad_names(ctx: Ctx) -> None:
    rid = ctx.run_id
    for key in ("../x", "a!b", "/abs"):
        error(
            ctx.post("runs/log-metric", metric(key) | {"run_id": rid}),
            400,
            "INVALID_PARAMETER_VALUE",
        )
    error(
        ctx.post("runs/log-parameter", {"run_id": rid, "key": "k" * 251, "value": "v"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    assert ctx.post("runs/log-parameter", {"run_id": rid, "key": "k" * 250, "value": "v"}).ok
    assert ctx.logged()[0] == []


def test_lenient_json_the_proto_way(ctx: Ctx) -> None:
    """Protobuf JSON: int64 fields may be strings, doubles may be "NaN"/"Infinity", and
    unknown fields are ignored. The real client never sends these, other clients do."""
    rid = ctx.run_id
    resp = ctx.post(
        "runs/log-metric",
        {"run_id": rid, "key": "s", "value": 2.5, "timestamp": "1700000000123", "step": "5"},
    )
    assert resp.status_code == 200, resp.text
    resp = ctx.post("runs/log-metric", metric("n", value="NaN") | {"run_id": rid})
    assert resp.status_code == 200, resp.text
    resp = ctx.post("runs/log-metric", metric("u", value=1.0) | {"run_id": rid, "bogus": 1})
    assert resp.status_code == 200, resp.text
    metrics = {m["key"]: m for m in ctx.run_data()["metrics"]}
    assert (metrics["s"]["value"], int(metrics["s"]["step"])) == (2.5, 5)
    assert int(metrics["s"]["timestamp"]) == 1_700_000_000_123
    assert metrics["n"]["value"] == "NaN"
    assert metrics["u"]["value"] == 1.0


# --- log-batch limits: all or nothing ---------------------------------------------------


@pytest.mark.parametrize(
    ("label", "batch"),
    [
        ("1001 metrics", {"metrics": [metric(f"lim{i}", float(i)) for i in range(1001)]}),
        ("101 params", {"params": [{"key": f"lim{i}", "value": "v"} for i in range(101)]}),
        ("101 tags", {"tags": [{"key": f"lim{i}", "value": "v"} for i in range(101)]}),
        (
            "1001 entities in all",
            {
                "metrics": [metric(f"lim{i}") for i in range(900)],
                "params": [{"key": f"lim{i}", "value": "v"} for i in range(100)],
                "tags": [{"key": "lim", "value": "v"}],
            },
        ),
        (
            "one bad key among good ones",
            {
                "metrics": [metric("lim-ok"), metric("bad!")],
                "params": [{"key": "lim-p", "value": "v"}],
                "tags": [{"key": "lim-t", "value": "v"}],
            },
        ),
        (
            "the same param twice with different values",
            {
                "metrics": [metric("lim-ok")],
                "params": [{"key": "lim-dd", "value": "1"}, {"key": "lim-dd", "value": "2"}],
            },
        ),
    ],
)
def test_log_batch_rejected_whole(ctx: Ctx, label: str, batch: dict[str, Any]) -> None:
    error(
        ctx.post("runs/log-batch", {"run_id": ctx.run_id} | batch), 400, "INVALID_PARAMETER_VALUE"
    )
    data = ctx.run_data()
    assert data.get("metrics", []) == [], label
    assert data.get("params", []) == [], label
    assert [t["key"] for t in data.get("tags", []) if t["key"].startswith("lim")] == [], label


def test_log_batch_at_the_limits(ctx: Ctx) -> None:
    resp = ctx.post(
        "runs/log-batch",
        {"run_id": ctx.run_id, "metrics": [metric(f"m{i}", float(i), step=i) for i in range(1000)]},
    )
    assert resp.status_code == 200, resp.text
    resp = ctx.post(
        "runs/log-batch",
        {
            "run_id": ctx.run_id,
            "params": [{"key": f"p{i}", "value": str(i)} for i in range(100)],
            "tags": [{"key": f"t{i}", "value": str(i)} for i in range(100)],
        },
    )
    assert resp.status_code == 200, resp.text
    data = ctx.run_data()
    assert len(data["metrics"]) == 1000
    assert {p["key"]: p["value"] for p in data["params"]} == {f"p{i}": str(i) for i in range(100)}
    assert {t["key"] for t in data["tags"]} >= {f"t{i}" for i in range(100)}


@pytest.mark.parametrize(
    ("label", "bad"),
    [
        ("value not a number", metric("typed", value="x")),
        ("timestamp not a number", metric("typed", timestamp="x")),
        ("step not a number", metric("typed", step="x")),
    ],
)
def test_log_batch_wrong_types(ctx: Ctx, label: str, bad: dict[str, Any]) -> None:
    run_id = ctx.fresh_run()
    resp = ctx.post("runs/log-batch", {"run_id": run_id, "metrics": [metric("typed-ok"), bad]})
    if IS_MLFLOW:
        # MLflow does not type-check the entries of a batch: it answers 200 and stores the
        # bad field as 0 ("x" -> 0.0). labbook must refuse the whole batch instead.
        assert resp.status_code == 200, label
        return
    error(resp, 400, "INVALID_PARAMETER_VALUE")
    assert ctx.logged(run_id)[0] == [], label


def test_log_batch_param_value_not_a_string(ctx: Ctx) -> None:
    run_id = ctx.fresh_run()
    resp = ctx.post("runs/log-batch", {"run_id": run_id, "params": [{"key": "p", "value": 1}]})
    if IS_MLFLOW:
        # MLflow answers 200 and stores the param with the value "" (!).
        assert resp.status_code == 200
        assert ctx.run_data(run_id)["params"] == [{"key": "p", "value": ""}]
        return
    error(resp, 400, "INVALID_PARAMETER_VALUE")
    assert ctx.logged(run_id)[1] == []


# --- unknown things -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "runs/get", {"run_id": MISSING_RUN}),
        ("POST", "runs/log-metric", metric("m") | {"run_id": MISSING_RUN}),
        ("POST", "runs/log-parameter", {"run_id": MISSING_RUN, "key": "k", "value": "v"}),
        ("POST", "runs/set-tag", {"run_id": MISSING_RUN, "key": "k", "value": "v"}),
        ("POST", "runs/delete-tag", {"run_id": MISSING_RUN, "key": "k"}),
        ("POST", "runs/log-batch", {"run_id": MISSING_RUN, "metrics": [metric("m")]}),
        ("POST", "runs/log-batch", {"run_id": MISSING_RUN}),
        ("POST", "runs/log-inputs", {"run_id": MISSING_RUN, "datasets": []}),
        ("POST", "runs/update", {"run_id": MISSING_RUN, "status": "FINISHED"}),
        ("POST", "runs/delete", {"run_id": MISSING_RUN}),
        ("POST", "runs/restore", {"run_id": MISSING_RUN}),
        ("GET", "experiments/get", {"experiment_id": MISSING_EXPERIMENT}),
        ("GET", "experiments/get-by-name", {"experiment_name": "no-such-experiment-x1"}),
        ("POST", "experiments/delete", {"experiment_id": MISSING_EXPERIMENT}),
        ("POST", "experiments/restore", {"experiment_id": MISSING_EXPERIMENT}),
        ("POST", "experiments/update", {"experiment_id": MISSING_EXPERIMENT, "new_name": "zz-x"}),
        (
            "POST",
            "experiments/set-experiment-tag",
            {"experiment_id": MISSING_EXPERIMENT, "key": "k", "value": "v"},
        ),
        ("POST", "runs/create", {"experiment_id": MISSING_EXPERIMENT}),
        ("GET", "registered-models/get", {"name": "no-such-model-x1"}),
        ("GET", "logged-models/m-00000000000000000000000000000000", None),
    ],
)
def test_unknown_ids_are_404(ctx: Ctx, method: str, path: str, body: dict[str, Any] | None) -> None:
    url = f"{ctx.base}{API}/{path}"
    if method == "GET":
        resp = ctx.http.get(url, params=body)
    else:
        resp = ctx.http.post(url, json=body)
    error(resp, 404, "RESOURCE_DOES_NOT_EXIST")


def test_unknown_things_that_are_not_errors(ctx: Ctx) -> None:
    # The history of an unknown run is empty for MLflow (200, no metrics).
    resp = ctx.get("metrics/get-history", run_id=MISSING_RUN, metric_key="m")
    if IS_MLFLOW:
        assert resp.status_code == 200 and resp.json().get("metrics", []) == []
    elif resp.status_code != 200:
        error(resp, 404, "RESOURCE_DOES_NOT_EXIST")
    else:
        assert resp.json().get("metrics", []) == []
    # Searching an unknown experiment finds nothing.
    resp = ctx.post("runs/search", {"experiment_ids": [MISSING_EXPERIMENT]})
    assert resp.status_code == 200
    assert resp.json().get("runs", []) == []
    # Deleting a tag that the run does not have.
    error(
        ctx.post("runs/delete-tag", {"run_id": ctx.run_id, "key": "nope"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )


def test_duplicates_and_states(ctx: Ctx) -> None:
    error(
        ctx.post("experiments/create", {"name": ctx.experiment_name}),
        400,
        "RESOURCE_ALREADY_EXISTS",
    )
    name = unique_name("conf-badmodel")
    assert ctx.post("registered-models/create", {"name": name}).status_code == 200
    error(ctx.post("registered-models/create", {"name": name}), 400, "RESOURCE_ALREADY_EXISTS")
    error(ctx.get("model-versions/get", name=name, version="abc"), 400, "INVALID_PARAMETER_VALUE")
    error(ctx.get("model-versions/get", name=name, version="9"), 404, "RESOURCE_DOES_NOT_EXIST")
    # A deleted run can be read but not written.
    run_id = ctx.fresh_run()
    assert ctx.post("runs/delete", {"run_id": run_id}).status_code == 200
    error(
        ctx.post("runs/log-metric", metric("m") | {"run_id": run_id}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    resp = ctx.get("runs/get", run_id=run_id)
    assert resp.status_code == 200
    assert resp.json()["run"]["info"]["lifecycle_stage"] == "deleted"
    assert resp.json()["run"].get("data", {}).get("metrics", []) == []


def test_search_arguments(ctx: Ctx) -> None:
    eid = ctx.experiment_id
    for body in (
        {"experiment_ids": [eid], "max_results": 0},
        {"experiment_ids": [eid], "max_results": -1},
        {"experiment_ids": [eid], "max_results": 50001},
        {"experiment_ids": [eid], "page_token": "garbage"},
        {"experiment_ids": [eid], "filter": "metrics.x >"},
        {"experiment_ids": [eid], "order_by": ["metrics.x SIDEWAYS"]},
    ):
        error(ctx.post("runs/search", body), 400, "INVALID_PARAMETER_VALUE")
    error(ctx.post("experiments/search", {"max_results": 0}), 400, "INVALID_PARAMETER_VALUE")
    # One experiment named 100,000 times among unknown ones: the same runs
    # as naming it once, answered without a lookup or a check per repeat.
    once = ctx.post("runs/search", {"experiment_ids": [eid]})
    assert once.status_code == 200, once.text
    repeated = [eid, MISSING_EXPERIMENT] * 50_000
    started = time.monotonic()
    many = ctx.post("runs/search", {"experiment_ids": repeated})
    assert many.status_code == 200, many.text[:300]
    assert time.monotonic() - started < 10
    ids = [r["info"]["run_id"] for r in many.json()["runs"]]
    assert ids == [r["info"]["run_id"] for r in once.json()["runs"]] and ids
    error(
        ctx.post("experiments/search", {"max_results": 10, "filter": "nme = 'x'"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )


# --- malformed bodies ---------------------------------------------------------------------


def test_malformed_json(ctx: Ctx) -> None:
    headers = {"Content-Type": "application/json"}
    url = f"{ctx.base}{API}/runs/log-metric"
    resp = ctx.http.post(url, data=b"{not json", headers=headers)
    error(resp, 400, "INVALID_PARAMETER_VALUE")
    resp = ctx.http.post(
        url, data=b'{"run_id": "' + ctx.run_id.encode() + b'", "key": ', headers=headers
    )
    error(resp, 400, "INVALID_PARAMETER_VALUE")
    resp = ctx.http.post(
        f"{ctx.base}{API}/experiments/create", data=b"\xff\xfe\x00garbage", headers=headers
    )
    error(resp, 400, "INVALID_PARAMETER_VALUE")
    resp = ctx.http.post(url, data=b"[1, 2]", headers=headers)
    if IS_MLFLOW:
        # MLflow crashes on a JSON body that is not an object: a 500 HTML page.
        assert resp.status_code == 500
    else:
        is_4xx_error(resp)
    assert ctx.logged()[0] == []


def test_unknown_route_and_method(ctx: Ctx) -> None:
    assert ctx.http.get(f"{ctx.base}{API}/runs/no-such-endpoint").status_code == 404
    assert ctx.http.get(f"{ctx.base}{API}/runs/create").status_code == 405


# --- artifact paths -----------------------------------------------------------------------

SENTINEL = b"TOPSECRET-conformance-sentinel"


@dataclass
class Traversal:
    base: str
    run_id: str
    root: str  # the run's artifact root under the proxy
    secret: Path


@pytest.fixture
def traversal(ctx: Ctx, server: Server) -> Iterator[Traversal]:
    secret = server.tmp / "secret.txt"
    secret.write_bytes(SENTINEL)
    info = ctx.get("runs/get", run_id=ctx.run_id).json()["run"]["info"]
    uri = info["artifact_uri"]
    if uri.startswith("mlflow-artifacts:"):
        root = uri.split(":", 1)[1].lstrip("/")
        if uri.startswith("mlflow-artifacts://"):
            root = root.split("/", 1)[1]
    else:
        root = uri.split(PROXY, 1)[1].strip("/")
    put = ctx.http.put(f"{ctx.base}{PROXY}/{root}/ok.txt", data=b"ok")
    assert put.status_code == 200, put.text
    yield Traversal(ctx.base, ctx.run_id, root, secret)
    assert secret.read_bytes() == SENTINEL


def raw_request(
    base: str, method: str, target: str, body: bytes | None = None
) -> tuple[int, bytes]:
    """Send `target` byte for byte: no client-side normalization of `..` or `%2e`."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.request(method, target, body=body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _targets(t: Traversal) -> list[tuple[str, str]]:
    up = "../" * 16  # from anywhere, far enough up to reach /
    abs_secret = str(t.secret).lstrip("/")
    enc_up = "%2e%2e/" * 16
    return [
        ("GET", f"{PROXY}/{t.root}/{up}{abs_secret}"),
        ("GET", f"{PROXY}/{up}{abs_secret}"),
        ("GET", f"{PROXY}/{t.root}/{enc_up}{abs_secret}"),
        ("GET", f"{PROXY}/{t.root}/{quote(up + abs_secret, safe='')}"),
        ("GET", f"{PROXY}/%2e%2e%2f{quote(abs_secret, safe='')}"),
        ("GET", f"{PROXY}/{quote(str(t.secret), safe='')}"),
        ("GET", f"{PROXY}//{abs_secret}"),
        ("GET", f"{PROXY}?path={quote(t.root + '/' + up + abs_secret)}"),
        ("GET", f"{PROXY}?path={quote(str(t.secret.parent))}"),
        ("GET", f"{PROXY}?path=..%2F"),
        ("GET", f"{API}/artifacts/list?run_id={t.run_id}&path={quote(up + abs_secret)}"),
        ("GET", f"{API}/artifacts/list?run_id={t.run_id}&path={quote(str(t.secret.parent))}"),
        ("GET", f"/get-artifact?run_uuid={t.run_id}&path={quote(up + abs_secret)}"),
        ("GET", f"/get-artifact?run_uuid={t.run_id}&path={quote(str(t.secret))}"),
        ("GET", f"/get-artifact?run_uuid={t.run_id}&path={enc_up}{abs_secret}"),
        ("PUT", f"{PROXY}/{t.root}/{up}{abs_secret}"),
        ("PUT", f"{PROXY}/{t.root}/{enc_up}escape-{uuid.uuid4().hex[:6]}.txt"),
        ("PUT", f"{PROXY}/{quote(str(t.secret.parent), safe='')}%2Fescape.txt"),
        ("DELETE", f"{PROXY}/{t.root}/{up}{abs_secret}"),
        ("DELETE", f"{PROXY}/{t.root}/{enc_up}{abs_secret}"),
    ]


def test_artifact_path_traversal_rejected(traversal: Traversal, server: Server) -> None:
    before = {p for p in server.tmp.parent.rglob("*")}
    for method, target in _targets(traversal):
        status, body = raw_request(
            traversal.base, method, target, b"pwned" if method == "PUT" else None
        )
        assert SENTINEL not in body, (method, target)
        assert b"root:" not in body, (method, target)
        assert status == 400, (method, target, status, body[:200])
        parsed = json.loads(body)
        assert parsed["error_code"] == "INVALID_PARAMETER_VALUE", (method, target, parsed)
        assert parsed["message"]
    assert traversal.secret.read_bytes() == SENTINEL
    created = {p for p in server.tmp.parent.rglob("*")} - before
    assert [
        p for p in created if "escape" in p.name or (p.is_file() and p.read_bytes() == b"pwned")
    ] == []


def test_artifact_absolute_delete(traversal: Traversal) -> None:
    status, body = raw_request(
        traversal.base, "DELETE", f"{PROXY}//{str(traversal.secret).lstrip('/')}"
    )
    if IS_MLFLOW:
        # Werkzeug answers a `//` in the path with a 308 redirect to the merged path
        # (inside the artifact root); it never touches the file.
        assert status == 308
    else:
        assert 400 <= status < 500, (status, body[:200])
    assert traversal.secret.read_bytes() == SENTINEL
    # And the legitimate file is still there.
    status, body = raw_request(traversal.base, "GET", f"{PROXY}/{traversal.root}/ok.txt")
    assert (status, body) == (200, b"ok")


# --- hostile input: huge, malformed, injected ---------------------------------------------

MEGABYTE = "k" * (1 << 20)


def hostile_requests(run_id: str, experiment_id: str) -> list[tuple[str, str, str, bytes]]:
    """(label, method, path, body): each must be refused with a 4xx and change nothing."""

    def body(value: Any) -> bytes:
        return json.dumps(value).encode()

    run = f'"run_id":"{run_id}"'.encode()
    return [
        (
            "1 MB metric key",
            "POST",
            "runs/log-metric",
            body({"run_id": run_id, **metric(MEGABYTE)}),
        ),
        (
            "1 MB param value",
            "POST",
            "runs/log-parameter",
            body({"run_id": run_id, "key": "p", "value": MEGABYTE}),
        ),
        (
            "1 MB tag value",
            "POST",
            "runs/set-tag",
            body({"run_id": run_id, "key": "t", "value": MEGABYTE}),
        ),
        ("1 MB experiment name", "POST", "experiments/create", body({"name": MEGABYTE})),
        (
            "invalid UTF-8 in a key",
            "POST",
            "runs/log-batch",
            b"{" + run + b',"metrics":[{"key":"a\xff","value":1,"timestamp":1,"step":0}]}',
        ),
        ("100,000 nested arrays", "POST", "runs/log-batch", b"[" * 100_000),
        (
            "5,000 nested objects",
            "POST",
            "runs/log-batch",
            b"{" + run + b',"tags":' + b'{"a":' * 5_000 + b"1" + b"}" * 5_000 + b"}",
        ),
        (
            "a value of the wrong JSON type",
            "POST",
            "runs/log-batch",
            body({"run_id": run_id, "metrics": {"key": "loss"}}),
        ),
        (
            "SQL after a filter",
            "POST",
            "runs/search",
            body(
                {"experiment_ids": [experiment_id], "filter": "metrics.loss < 1; DROP TABLE runs"}
            ),
        ),
        (
            "OR 1=1 in a filter",
            "POST",
            "runs/search",
            body({"experiment_ids": [experiment_id], "filter": "params.p = '1' OR '1'='1'"}),
        ),
        (
            "SQL in order_by",
            "POST",
            "runs/search",
            body(
                {"experiment_ids": [experiment_id], "order_by": ["metrics.loss; DROP TABLE runs"]}
            ),
        ),
        (
            "SQL in an experiment filter",
            "POST",
            "experiments/search",
            body({"filter": "name = 'x' UNION SELECT * FROM runs"}),
        ),
        (
            "a 6 MB body",
            "POST",
            "runs/log-batch",
            b"{"
            + run
            + b',"tags":['
            + b'{"key":"k","value":"v"},' * 250_000
            + b'{"key":"k","value":"v"}]}',
        ),
    ]


@pytest.mark.skipif(IS_MLFLOW, reason="MLflow answers several of these with a 500")
def test_hostile_input_is_refused_and_changes_nothing(ctx: Ctx, server: Server) -> None:
    ctx.post(
        "runs/log-batch",
        {
            "run_id": ctx.run_id,
            "metrics": [metric("loss", 0.5)],
            "params": [{"key": "p", "value": "1"}],
        },
    )
    before = ctx.run_data()
    # The whole store, every experiment and run and file: a row that created
    # an experiment, or touched another run, would show.
    assert server.store is not None, "needs the store (a labbook server this suite started)"
    whole_before = store_snapshot.snapshot(server.store, store_snapshot.LIVE_COLUMNS)
    for label, method, path, data in hostile_requests(ctx.run_id, ctx.experiment_id):
        resp = ctx.http.request(
            method,
            f"{ctx.base}{API}/{path}",
            data=data,
            headers={"Content-Type": "application/json"},
        )
        assert 400 <= resp.status_code < 500, f"{label}: {resp.status_code} {resp.text[:200]}"
        body = resp.json()
        assert body["error_code"] == "INVALID_PARAMETER_VALUE", f"{label}: {body}"
        assert 0 < len(body["message"]) < 2_000, f"{label}: the message echoes the input"
    assert ctx.run_data() == before
    store_snapshot.assert_unchanged(
        whole_before,
        store_snapshot.snapshot(server.store, store_snapshot.LIVE_COLUMNS),
        "the hostile rows",
    )
    # A string that only looks like SQL is data, stored and matched verbatim.
    tricky = "1'; DROP TABLE runs; --"
    assert ctx.post("runs/set-tag", {"run_id": ctx.run_id, "key": "t", "value": tricky}).ok
    found = ctx.post(
        "runs/search",
        {"experiment_ids": [ctx.experiment_id], "filter": "tags.t = '1''; DROP TABLE runs; --'"},
    )
    assert [r["info"]["run_id"] for r in found.json()["runs"]] == [ctx.run_id]


@pytest.mark.skipif(IS_MLFLOW, reason="mlflow server serves these or answers with HTML")
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/ajax-api/2.0/mlflow/traces/tr-1"),
        ("GET", "/ajax-api/3.0/mlflow/gateway/routes"),
        ("POST", "/api/2.0/mlflow/gateway-proxy"),
        ("GET", "/graphql"),
        ("POST", "/graphql"),
        ("GET", "/graphql/schema"),
        ("GET", "/model-versions/get-artifact?path=MLmodel&name=m&version=1"),
        # MLflow's own test_path_validation asks with a doubled slash.
        ("GET", "//model-versions/get-artifact?path=../path&name=m&version=1"),
        ("GET", "//api/2.0/mlflow/no-such-endpoint"),
        ("POST", "/v1/traces"),
        ("GET", "/v1/traces"),
        ("POST", "/gateway/mlflow/v1/chat/completions"),
        ("GET", "/gateway/mlflow/v1/models"),
    ],
)
def test_mlflow_features_labbook_does_not_serve_are_json_404s(
    ctx: Ctx, method: str, path: str
) -> None:
    """A client of MLflow's tracing, gateway or GraphQL must read an API error
    it can report, not the dashboard's HTML (a JSONDecodeError)."""
    resp = ctx.http.request(
        method,
        f"{ctx.base}{path}",
        data=b"{}" if method == "POST" else None,
        headers={"Content-Type": "application/json"} if method == "POST" else {},
    )
    assert resp.status_code == 404, resp.text[:200]
    assert resp.headers["Content-Type"].startswith("application/json"), resp.headers
    assert resp.json()["error_code"] == "ENDPOINT_NOT_FOUND"


@pytest.mark.parametrize(
    "source",
    [
        "/etc",
        "file:///etc/passwd",
        "../../x",
        "model",
        "mlflow-artifacts:/../../etc",
        "mlflow-artifacts://host:5000/a/..%2f..%2fetc",
        "http://host/api/2.0/mlflow-artifacts/artifacts/../../x",
        "s3://bucket/models/../../other",
        "s3://bucket/models/%00",
        f"runs:/{MISSING_RUN}/model",
        f"mlflow-artifacts:/1/{MISSING_RUN}/artifacts/model",
        "models:/../../etc/1",
        "models:/nosuch-model@champion",
    ],
)
def test_model_version_sources_that_reach_outside_are_refused(ctx: Ctx, source: str) -> None:
    name = unique_name("conf-source")
    assert ctx.post("registered-models/create", {"name": name}).status_code == 200
    resp = ctx.post("model-versions/create", {"name": name, "source": source, "run_id": ctx.run_id})
    assert resp.status_code in (400, 404), f"{source}: {resp.status_code} {resp.text[:300]}"
    is_4xx_error(resp)
    versions = ctx.get("model-versions/search", filter=f"name = '{name}'").json()
    assert versions.get("model_versions", []) == [], source


@pytest.mark.parametrize(
    "source",
    ["s3://bucket/models/model", "{artifacts}/model", "runs:/{run}/model"],
)
def test_model_version_sources_mlflow_accepts(ctx: Ctx, source: str) -> None:
    name = unique_name("conf-source")
    assert ctx.post("registered-models/create", {"name": name}).status_code == 200
    artifacts = ctx.get("runs/get", run_id=ctx.run_id).json()["run"]["info"]["artifact_uri"]
    source = source.replace("{run}", ctx.run_id).replace("{artifacts}", artifacts)
    resp = ctx.post("model-versions/create", {"name": name, "source": source, "run_id": ctx.run_id})
    assert resp.status_code == 200, f"{source}: {resp.text[:300]}"
    assert resp.json()["model_version"]["source"] == source
