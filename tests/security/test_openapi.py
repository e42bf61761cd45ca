"""docs/openapi.yaml is true of the server: the same routes as api.rs, real
answers that match its schemas, and a schemathesis run against a live, seeded
`labbook serve` that finds no server error, no crash and no answer the document
does not describe."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any

import hypothesis.configuration
import jsonschema_rs
import pytest
import requests
import schemathesis
import yaml
from conftest import (
    REPO,
    Server,
    create_sweep,
    seed,
    seed_artifacts,
    seed_study,
    start_server,
    stop,
)
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

OPENAPI = REPO / "docs/openapi.yaml"
API_RS = REPO / "crates/labbook-server/src/api.rs"
SERVER_RS = REPO / "crates/labbook-server/src/server.rs"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# One seed for every schemathesis run: the same requests each time.
SEED = 20_251_202
EXAMPLES_PER_OPERATION = 40

pytestmark = pytest.mark.timeout(60)


def load_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    return spec


# --- the routes ---------------------------------------------------------------


def _calls(text: str, name: str) -> Iterator[str]:
    """The argument text of each `.NAME(...)` call in `text`, parentheses balanced
    (string literals may hold any of them)."""
    for match in re.finditer(rf"\.{name}\(", text):
        depth, i, in_string = 1, match.end(), False
        while depth:
            c = text[i]
            if in_string:
                if c == "\\":
                    i += 1
                elif c == '"':
                    in_string = False
            elif c == '"':
                in_string = True
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            i += 1
        yield text[match.end() : i - 1]


def _function_body(source: str, signature: str) -> str:
    start = source.index(signature)
    end = source.index("\n}\n", start)
    return source[start:end]


def _routes_in(body: str, prefix: str) -> set[tuple[str, str]]:
    routes: set[tuple[str, str]] = set()
    for args in _calls(body, "route"):
        match = re.fullmatch(r'\s*"([^"]+)"\s*,(.*)', args, re.S)
        assert match, f"a route whose path is not a string literal: .route({args})"
        path, handlers = match[1], match[2]
        methods = re.findall(r"\b(get|post|put|patch|delete|head|options|trace|any|on)\(", handlers)
        assert methods, f"no method router in .route({args})"
        assert not {"any", "on"} & set(methods), f"spell out the methods of .route({args})"
        routes.update((m, prefix + path) for m in methods)
    return routes


def rust_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the server's router serves: `api::routes()`
    under its nest prefix, and the routes `server::router` adds itself."""
    api = _function_body(API_RS.read_text(encoding="utf-8"), "pub fn routes() -> Router<AppState>")
    server = _function_body(SERVER_RS.read_text(encoding="utf-8"), "pub fn router(")
    # `api::routes()` itself, or wrapped in one call (the access check's).
    nests = re.findall(r'\.nest\(\s*"([^"]+)"\s*,\s*(?:\w+\()?api::routes\(\)', server)
    assert nests == ["/api/v1"], f"api::routes() is nested under {nests}, not once under /api/v1"
    return _routes_in(api, "/api/v1") | _routes_in(server, "")


def yaml_routes(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in spec["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def test_the_document_describes_every_route_of_the_router_and_no_other() -> None:
    in_rust = rust_routes()
    in_yaml = yaml_routes(load_spec())
    # Not vacuous: the parse found the routes this document was written for.
    assert ("post", "/api/v1/runs/{id}/log") in in_rust and ("get", "/health") in in_rust
    assert ("post", "/api/v1/projects/{project}/notebook") in in_rust
    missing = sorted(in_rust - in_yaml)
    extra = sorted(in_yaml - in_rust)
    assert not missing, f"routes the server has and docs/openapi.yaml lacks: {missing}"
    assert not extra, f"routes docs/openapi.yaml describes and the server lacks: {extra}"


def test_the_route_parser_reads_routes_however_rustfmt_lays_them_out() -> None:
    body = (
        "pub fn routes() -> Router<AppState> {\n    Router::new()\n"
        '        .route("/a", get(a))\n'
        '        .route(\n            "/b/{id}",\n            get(b).post(c),\n        )\n}\n'
    )
    assert _routes_in(_function_body(body, "pub fn routes()"), "/x") == {
        ("get", "/x/a"),
        ("get", "/x/b/{id}"),
        ("post", "/x/b/{id}"),
    }


def test_the_document_is_valid_openapi_3_1() -> None:
    spec = load_spec()
    assert spec["openapi"].startswith("3.1.")
    # The OpenAPI 3.1 meta-schema schemathesis (pinned) checks documents with.
    OPENAPI_31_VALIDATOR.validate(spec)
    # Every operation is reachable by schemathesis: no schema errors when loading.
    loaded = schemathesis.openapi.from_path(OPENAPI)
    labels = []
    for result in loaded.get_all_operations():
        labels.append(result.ok().label)
    assert len(labels) == len(yaml_routes(spec))


def test_every_write_takes_json_only_and_every_error_is_the_error_object() -> None:
    spec = load_spec()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            body = _resolve(spec, operation.get("requestBody", {}))
            if method in ("post", "put", "patch", "delete"):
                assert list(body.get("content", {})) == ["application/json"], f"{method} {path}"
                assert body.get("required") is True, f"{method} {path}"
                for status in ("403", "413", "415"):
                    assert status in operation["responses"], f"{method} {path} lacks {status}"
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    content = _resolve(spec, response)["content"]
                    assert content == {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    }, f"{method} {path} {status}"


# --- real answers against the schemas -----------------------------------------


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follows a `$ref` to a response or request body (not inside schemas)."""
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _operation(spec: dict[str, Any], method: str, template: str) -> dict[str, Any]:
    return spec["paths"][template][method.lower()]


def _validator(spec: dict[str, Any], schema: dict[str, Any]) -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator({**schema, "components": spec["components"]})


def check_answer(
    spec: dict[str, Any], method: str, template: str, response: requests.Response | _Head
) -> Any:
    """The answer's status is documented for the operation, its content type is
    the documented one, and its body validates against the documented schema.
    Returns the parsed body."""
    operation = _operation(spec, method, template)
    status = str(response.status_code)
    assert status in operation["responses"], (
        f"{method} {template}: status {status} is not documented; body {response.text[:300]}"
    )
    documented = _resolve(spec, operation["responses"][status])
    (media_type, media), *_ = documented["content"].items()
    assert response.headers["content-type"].split(";")[0].strip() == media_type, response.headers
    body: Any = response.json() if media_type == "application/json" else response.text
    errors = [
        f"{e.instance_path}: {e.message}"
        for e in _validator(spec, media["schema"]).iter_errors(body)
    ]
    assert not errors, (
        f"{method} {template} {status}: {errors[:5]}\nbody: {json.dumps(body)[:1000]}"
    )
    return body


def check_error(spec: dict[str, Any], response: requests.Response, status: int, code: str) -> None:
    """An answer outside any operation (a refused method): the error object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    schema = {"$ref": "#/components/schemas/Error"}
    assert _validator(spec, schema).is_valid(body), body
    assert body["error"]["code"] == code, body


def seed_sweep(server: Server) -> dict[str, str]:
    """A random sweep with hyperband in the project "victim" (made with the CLI
    on the server's store) and one trial of it claimed through the API, so the
    agent routes have a sweep and a trial to answer 2xx about: their ids."""
    sweep = create_sweep(server, run_cap=6, early_terminate={"type": "hyperband", "min_iter": 1})
    r = server.post_json(f"/api/v1/studies/{sweep}/claim", {"host": "openapi-agent", "pid": 4242})
    assert r.status_code == 200 and r.json()["claimed"] == "trial", r.text
    return {"sweep": sweep, "sweep_trial": str(r.json()["trial"]["id"])}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    """One `labbook serve` on a seeded store for the module: the answers test
    reads it, and the schemathesis run writes to it."""
    # Hypothesis keeps caches (its Unicode tables) under its home directory,
    # `.hypothesis` in the working directory unless told otherwise.
    hypothesis.configuration.set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    server = start_server(tmp_path_factory.mktemp("openapi"), "serve", ())
    try:
        ids = seed(server)
        ids.update(seed_artifacts(server))
        ids.update(seed_study(server))
        ids.update(seed_sweep(server))
        yield server, ids
    finally:
        stop(server.process)
        hypothesis.configuration.set_hypothesis_home_dir(None)


@pytest.mark.timeout(120)
def test_real_answers_match_the_documented_schemas(live: tuple[Server, dict[str, str]]) -> None:
    server, ids = live
    spec = load_spec()
    run_id = ids["run"]
    json_headers = {"Content-Type": "application/json"}

    def get(template: str, path: str, **params: Any) -> Any:
        return check_answer(spec, "get", template, server.get(path, params=params))

    def post(template: str, path: str, body: Any) -> Any:
        return check_answer(spec, "post", template, server.post_json(path, body))

    assert get("/health", "/health") == "ok"
    projects = get("/api/v1/projects", "/api/v1/projects")["projects"]
    assert {"victim", "victim-exp"} <= {p["name"] for p in projects}

    # A run with everything a run can carry: non-finite floats in every place.
    started = post(
        "/api/v1/runs",
        "/api/v1/runs",
        {
            "project": "openapi",
            "id": "openapi1",
            "name": "conformance",
            "group": "g",
            "notes": "why",
            "tags": ["a", "b"],
            "config": {
                "lr": 0.001,
                "model": {"depth": 4},
                "bad": {"$float": "NaN"},
                "xs": [1, "two", None],
            },
            "created_ms": 1_700_000_000_000,
            "host": "somewhere",
            "pid": 4242,
        },
    )
    assert started["run"]["id"] == "openapi1" and started["next_step"] == 0
    logged = post(
        "/api/v1/runs/{id}/log",
        "/api/v1/runs/openapi1/log",
        {
            "batch_id": "b-1",
            "series": {
                "loss": {
                    "steps": [0, 1, 2, 3],
                    "ts_ms": [1, 2, 3, 4],
                    "values": [1.0, "NaN", "Infinity", "-Infinity"],
                },
                "nan/only": {"steps": [0], "ts_ms": [1], "values": ["NaN"]},
                "sys/cpu": {"steps": [0], "ts_ms": [1], "values": [3]},
            },
            "output": [
                {"stream": "stdout", "ts_ms": 1, "text": "hello\n"},
                {"stream": "stderr", "ts_ms": 2, "text": "é"},
            ],
            "patch": {
                "status": "failed",
                "ended_ms": 1_700_000_001_000,
                "exit_code": 3,
                "error": "boom",
                "add_tags": ["c"],
                "remove_tags": ["a"],
                "config": {"extra": {"deep": True}},
                "summary": {"best": {"$float": "Infinity"}, "obj": {"k": [1]}, "gone": None},
            },
            "seal": True,
        },
    )
    assert logged == {"applied": True}
    assert post("/api/v1/runs/{id}/log", "/api/v1/runs/openapi1/log", {"batch_id": "b-1"}) == {
        "applied": False
    }
    assert post(
        "/api/v1/runs/{id}/environment",
        "/api/v1/runs/openapi1/environment",
        {"git": {"commit": "abc"}},
    ) == {"ok": True}
    assert post("/api/v1/runs/{id}/notes", "/api/v1/runs/openapi1/notes", {"text": "a note"}) == {
        "ok": True
    }
    note = post(
        "/api/v1/projects/{project}/notebook",
        "/api/v1/projects/openapi/notebook",
        {"text": "n", "run_id": "openapi1"},
    )
    assert note["kind"] == "note" and note["run_id"] == "openapi1"

    detail = get("/api/v1/runs/{id}", "/api/v1/runs/openapi1")
    assert (
        detail["metrics"]["loss"]["last"] == "-Infinity"
        and detail["metrics"]["nan/only"]["min"] is None
    )
    assert detail["config"]["bad"] == "NaN" and detail["summary"]["best"] == "Infinity"
    assert (
        detail["environment"] == {"git": {"commit": "abc"}}
        and detail["notebook"][0]["text"] == "a note"
    )
    get("/api/v1/runs/{id}", f"/api/v1/runs/{run_id}")
    assert len(get("/api/v1/runs/{id}/output", "/api/v1/runs/openapi1/output")["chunks"]) == 2
    runs = get(
        "/api/v1/projects/{project}/runs", "/api/v1/projects/openapi/runs", sort="-created", limit=5
    )
    assert runs["total"] == 1 and runs["runs"][0]["status"] == "failed"
    get(
        "/api/v1/projects/{project}/runs",
        "/api/v1/projects/victim/runs",
        filter='status = "finished"',
    )
    get("/api/v1/projects/{project}/keys", "/api/v1/projects/openapi/keys")
    groups = get("/api/v1/projects/{project}/groups", "/api/v1/projects/openapi/groups", by="tags")
    assert {g["value"] for g in groups["groups"]} == {"b", "c"}
    get("/api/v1/projects/{project}/groups", "/api/v1/projects/openapi/groups", by="config.lr")
    entries = get(
        "/api/v1/projects/{project}/notebook", "/api/v1/projects/openapi/notebook", headline="loss"
    )
    assert {e["kind"] for e in entries["entries"]} == {"run", "note"}
    assert get(
        "/api/v1/query/validate",
        "/api/v1/query/validate",
        filter="config.lr > 0.1",
        sort="-created",
    ) == {"ok": True}
    curves = get(
        "/api/v1/series", "/api/v1/series", runs=f"openapi1,{run_id},nope", keys="loss,nan/only"
    )["series"]
    assert {(c["run"], c["key"]) for c in curves} == {
        ("openapi1", "loss"),
        ("openapi1", "nan/only"),
        (run_id, "loss"),
    }
    assert ["NaN", "Infinity", "-Infinity"] == next(
        c for c in curves if c["key"] == "loss" and c["run"] == "openapi1"
    )["values"][1:]
    get(
        "/api/v1/series",
        "/api/v1/series",
        runs="openapi1",
        keys="loss",
        buckets=1,
        ts=0,
        lo=1,
        hi=2,
    )
    get("/api/v1/series", "/api/v1/series", runs="openapi1", keys="loss", after=0)
    for path in ("/api/v1/runs/tags", "/api/v1/runs/delete", "/api/v1/runs/restore"):
        assert post(path, path, {"ids": ["openapi1"], "add": ["d"]}) == {"ok": True}

    # A sweep, as an agent sees it: its file, a claim, a heartbeat, a finish.
    sweep = ids["sweep"]
    search = get("/api/v1/studies/{id}", f"/api/v1/studies/{sweep}")
    assert search["config"]["method"] == "random" and search["study"]["kind"] == "sweep"
    assert get("/api/v1/studies/{id}", f"/api/v1/studies/{ids['study']}")["config"] is None
    claim_t, beat_t = "/api/v1/studies/{id}/claim", "/api/v1/studies/{id}/heartbeat"
    finish_t = "/api/v1/trials/{id}/finish"
    claimed = post(claim_t, f"/api/v1/studies/{sweep}/claim", {"host": "h", "pid": 1})
    assert claimed["claimed"] == "trial", claimed
    trial = claimed["trial"]["id"]
    beat = post(beat_t, f"/api/v1/studies/{sweep}/heartbeat", {"trials": [trial], "prune": True})
    assert beat == {"state": "running", "state_reason": None, "stop": []}
    ended = post(finish_t, f"/api/v1/trials/{trial}/finish", {"ending": "natural"})
    assert ended == {"state": "crashed", "value": None, "already_ended": False}
    again = post(finish_t, f"/api/v1/trials/{trial}/finish", {"ending": "stopped", "why": None})
    assert again["already_ended"] is True
    assert post(claim_t, f"/api/v1/studies/{ids['study']}/claim", {})["error"]["field"] == "id"
    assert post(beat_t, f"/api/v1/studies/{sweep}/heartbeat", {"prune": 1})["error"]["field"] == (
        "prune"
    )
    assert post(finish_t, "/api/v1/trials/x/finish", {"ending": "natural"})["error"]["field"] == (
        "id"
    )
    assert (
        post(finish_t, "/api/v1/trials/424242/finish", {"ending": "natural"})["error"]["code"]
        == "NOT_FOUND"
    )

    # Versioned artifacts: every answer, and the errors of each.
    base = "/api/v1/projects/{project}/artifacts"
    version_t = base + "/{name}/versions/{version}"
    names = get(base, "/api/v1/projects/victim/artifacts")
    assert names["types"] == ["dataset", "model"] and names["total"] == 2
    assert names["artifacts"][0]["aliases"] == {"best": 0, "latest": 0}
    assert get(base, "/api/v1/projects/victim/artifacts", type="model", limit=1)["total"] == 1
    versions = get(base + "/{name}", "/api/v1/projects/victim/artifacts/victim-data")
    assert versions["versions"][0]["producer"]["id"] == ids["artifact_maker"]
    detail = get(version_t, "/api/v1/projects/victim/artifacts/victim-data/versions/best", limit=1)
    assert detail["files_left_out"] == 1 and detail["metadata"] == {"rows": 2}
    assert {r["role"] for r in detail["runs"]} == {"input", "output"}
    graph = get(
        version_t + "/lineage", "/api/v1/projects/victim/artifacts/victim-data/versions/v0/lineage"
    )
    assert {n["kind"] for n in graph["nodes"]} == {"artifact", "run"} and graph["edges"]
    run_graph = get("/api/v1/runs/{id}/lineage", f"/api/v1/runs/{ids['artifact_run']}/lineage")
    assert run_graph["root"] == ids["artifact_run"]
    io = get(
        "/api/v1/runs/{id}/artifact-versions",
        f"/api/v1/runs/{ids['artifact_run']}/artifact-versions",
    )
    assert [v["ref"] for v in io["inputs"]] == ["victim-data:v0"]
    assert [v["ref"] for v in io["outputs"]] == ["victim-weights:v0"]
    assert get(base, "/api/v1/projects/nope/artifacts")["error"]["code"] == "NOT_FOUND"
    assert get(base, "/api/v1/projects/victim/artifacts", type="a/b")["error"]["field"] == "type"
    assert (
        get(base + "/{name}", "/api/v1/projects/victim/artifacts/%2E%2E")["error"]["field"]
        == "name"
    )
    assert (
        get(version_t, "/api/v1/projects/victim/artifacts/victim-data/versions/v9")["error"]["code"]
        == "NOT_FOUND"
    )
    assert (
        get(version_t + "/lineage", "/api/v1/projects/victim/artifacts/x/versions/.v")["error"][
            "field"
        ]
        == "version"
    )
    assert get("/api/v1/runs/{id}/lineage", "/api/v1/runs/nope/lineage")["error"]["code"] == (
        "NOT_FOUND"
    )
    assert (
        get(
            "/api/v1/runs/{id}/artifact-versions",
            "/api/v1/runs/openapi1/artifact-versions",
            limit=-1,
        )["error"]["field"]
        == "limit"
    )

    # The errors, each as documented for its operation.
    assert get("/api/v1/runs/{id}", "/api/v1/runs/nope")["error"]["code"] == "NOT_FOUND"
    bad = get(
        "/api/v1/projects/{project}/runs", "/api/v1/projects/openapi/runs", filter="config.lr >"
    )
    assert bad["error"]["code"] == "INVALID_QUERY" and bad["error"]["column"] >= 1
    assert (
        get("/api/v1/series", "/api/v1/series", runs="a", keys="b", buckets=10001)["error"]["field"]
        == "buckets"
    )
    assert get("/api/v1/events", "/api/v1/events")["error"]["field"] == "project"
    refused = post("/api/v1/runs/{id}/log", "/api/v1/runs/openapi1/log", {"surprise": 1})
    assert refused["error"] == {
        "code": "INVALID_ARGUMENT",
        "field": "surprise",
        "message": refused["error"]["message"],
    }
    assert (
        post("/api/v1/runs", "/api/v1/runs", {"project": "p", "id": "openapi1"})["error"]["field"]
        == "id"
    )
    plain = requests.post(
        server.url + "/api/v1/runs",
        data='{"project": "p"}',
        headers={"Content-Type": "text/plain"},
        timeout=30,
    )
    assert (
        check_answer(spec, "post", "/api/v1/runs", plain)["error"]["code"]
        == "UNSUPPORTED_MEDIA_TYPE"
    )
    rebound = server.get("/api/v1/projects", headers={"Host": "evil.example"})
    assert (
        check_answer(spec, "get", "/api/v1/projects", rebound)["error"]["code"] == "FORBIDDEN_HOST"
    )
    foreign = requests.post(
        server.url + "/api/v1/runs/tags",
        json={"ids": []},
        headers={"Origin": "http://evil.example"},
        timeout=30,
    )
    assert (
        check_answer(spec, "post", "/api/v1/runs/tags", foreign)["error"]["code"] == "CROSS_ORIGIN"
    )
    huge = requests.post(
        server.url + "/api/v1/runs/openapi1/log",
        data=b'{"batch_id": "' + b"x" * (5 << 20) + b'"}',
        headers=json_headers,
        timeout=30,
    )
    assert (
        check_answer(spec, "post", "/api/v1/runs/{id}/log", huge)["error"]["code"]
        == "PAYLOAD_TOO_LARGE"
    )
    # A method a path does not serve: 405 with Allow, outside every operation.
    wrong = requests.put(server.url + "/api/v1/runs/openapi1", json={}, timeout=30)
    check_error(spec, wrong, 405, "METHOD_NOT_ALLOWED")
    assert wrong.headers["allow"]
    assert server.alive()


@pytest.mark.timeout(60)
def test_a_member_documented_as_an_object_takes_only_an_object(
    live: tuple[Server, dict[str, str]],
) -> None:
    """serde reads a struct from a JSON array too, field by field in
    declaration order: `{"patch": ["killed"]}` would set the run's status. The
    document says object, and the server must agree."""
    server, _ = live
    spec = load_spec()
    r = server.post_json("/api/v1/runs", {"project": "openapi", "id": "arrays1"})
    assert r.status_code == 200, r.text
    for body in (
        [],
        [None, {}, [], None, False],
        {"patch": ["killed"]},
        {"series": {"k": [[1], [1], [2.0]]}},
        {"output": [["stdout", 5, "hi"]]},
    ):
        answer = server.post_json("/api/v1/runs/arrays1/log", body)
        assert answer.status_code == 400, (body, answer.text)
        check_answer(spec, "post", "/api/v1/runs/{id}/log", answer)
    answer = server.post_json("/api/v1/runs", [None, False, None, "arrays"])
    assert answer.status_code == 400, answer.text
    check_answer(spec, "post", "/api/v1/runs", answer)
    detail = server.get("/api/v1/runs/arrays1").json()
    assert detail["status"] == "running" and detail["metrics"] == {}, detail


@pytest.mark.timeout(60)
def test_a_path_that_is_not_utf8_gets_the_error_object(
    live: tuple[Server, dict[str, str]],
) -> None:
    """A percent-encoded path segment that does not decode to UTF-8 is refused
    by the router's path extractor; the answer is still the API's error."""
    server, _ = live
    spec = load_spec()
    for template, path in (
        ("/api/v1/runs/{id}", "/api/v1/runs/%FF"),
        ("/api/v1/runs/{id}/output", "/api/v1/runs/%C3%28/output"),
        ("/api/v1/projects/{project}/runs", "/api/v1/projects/%FF/runs"),
        ("/api/v1/projects/{project}/keys", "/api/v1/projects/%FF/keys"),
        ("/api/v1/projects/{project}/artifacts", "/api/v1/projects/%FF/artifacts"),
        (
            "/api/v1/projects/{project}/artifacts/{name}/versions/{version}",
            "/api/v1/projects/victim/artifacts/%FF/versions/v0",
        ),
        ("/api/v1/runs/{id}/lineage", "/api/v1/runs/%C3%28/lineage"),
    ):
        answer = server.get(path)
        assert 400 <= answer.status_code < 500, (path, answer.status_code)
        check_answer(spec, "get", template, answer)
    answer = server.post_json("/api/v1/runs/%FF/log", {})
    assert 400 <= answer.status_code < 500, answer.status_code
    check_answer(spec, "post", "/api/v1/runs/{id}/log", answer)


@pytest.mark.timeout(60)
def test_an_event_carries_the_documented_data(live: tuple[Server, dict[str, str]]) -> None:
    server, ids = live
    spec = load_spec()
    with requests.get(
        server.url + "/api/v1/events", params={"project": "victim"}, stream=True, timeout=30
    ) as stream:
        check_answer(spec, "get", "/api/v1/events", _Head(stream))
        # The stream counts changes from the moment it answered: this one is news.
        r = server.post_json(
            f"/api/v1/runs/{ids['run']}/log",
            {"series": {"acc": {"steps": [7], "ts_ms": [7], "values": ["NaN"]}}},
        )
        assert r.status_code == 200, r.text
        event, data = None, None
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:") and event == "runs":
                data = json.loads(line.removeprefix("data:"))
                break
    assert data is not None
    pointer = spec["paths"]["/api/v1/events"]["get"]["x-event-data-schema"]
    errors = [e.message for e in _validator(spec, {"$ref": pointer}).iter_errors(data)]
    assert not errors, (errors, data)
    changed = next(r for r in data["runs"] if r["id"] == ids["run"])
    assert changed["metrics"]["acc"] == {"count": 1, "last_step": 7}


class _Head:
    """A streaming response's status and headers, for `check_answer`, whose body
    (an endless stream) is not read."""

    def __init__(self, response: requests.Response) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self.text = ""

    def json(self) -> Any:
        raise AssertionError("an event stream has no JSON body")


# --- schemathesis against the live server -------------------------------------


SCHEMATHESIS_CONFIG: dict[str, Any] = {
    "seed": SEED,
    "request-timeout": 10,
    "generation": {
        "mode": "all",
        "max-examples": EXAMPLES_PER_OPERATION,
        "deterministic": True,
        "database": "none",
    },
    "phases": {
        "examples": {"enabled": True},
        "coverage": {"enabled": True},
        "fuzzing": {"enabled": True},
        "stateful": {"enabled": False},
    },
    "checks": {
        "enabled": False,
        "not_a_server_error": {"enabled": True},
        "status_code_conformance": {"enabled": True},
        "content_type_conformance": {"enabled": True},
        "response_schema_conformance": {"enabled": True},
        "negative_data_rejection": {"enabled": True},
        "unsupported_method": {"enabled": True},
    },
    "operations": [
        {
            # An event stream never ends: read each for half a second (what
            # arrived by then is checked), and ask for fewer of them.
            "include-path": "/api/v1/events",
            "request-timeout": 0.5,
            "generation": {"max-examples": 5},
        }
    ],
}


@pytest.fixture
def api_schema(live: tuple[Server, dict[str, str]]) -> Any:
    server, _ = live
    config = schemathesis.Config.from_dict({**SCHEMATHESIS_CONFIG, "base-url": server.url})
    return schemathesis.openapi.from_path(OPENAPI, config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


def _case_text(case: Any) -> str:
    """The generated case, as text: what every choice for it is drawn from."""
    body = case.body if isinstance(case.body, (dict, list, str, int, float, bool)) else None
    return json.dumps([case.path_parameters, case.query, body], sort_keys=True, default=repr)


def _pick(text: str, salt: str, n: int) -> int:
    """A choice among `n` that depends only on the case as generated, never on
    the seeded ids (random on each run) nor on an earlier choice: the run is
    the same each time and no case is favoured by order."""
    return int(hashlib.blake2b(f"{salt}{text}".encode(), digest_size=4).hexdigest(), 16) % n


# The operations that already had a valid case aimed at the store by every
# choice: the first such case of each is, so each gets past its 404s at least
# once however few valid cases its run draws.
_AIMED_FULLY: set[str] = set()


def aim_at_the_store(case: Any, ids: dict[str, str]) -> None:
    """Points some valid cases at what the seeded store holds, so the run and
    project handlers get past their 404s. Negative cases stay as generated: a
    replaced value could make them valid."""
    meta = case.meta
    if meta is None or meta.generation.mode != schemathesis.GenerationMode.POSITIVE:
        return
    run, project = ids["run"], "victim"
    path = case.operation.path
    text = _case_text(case)
    first = case.operation.label not in _AIMED_FULLY
    _AIMED_FULLY.add(case.operation.label)

    def choose(salt: str, n: int) -> int:
        # The first valid case takes the last choice of each, which aims.
        return n - 1 if first else _pick(text, salt, n)

    if case.path_parameters:
        if "id" in case.path_parameters and choose("id", 6):
            # The files are the MLflow run's and the logged model's.
            held = ids["logged_model"] if path.startswith("/api/v1/logged-models/") else run
            if path.startswith("/api/v1/runs/{id}/artifacts"):
                held = ids["mlflow_run"]
            if path == "/api/v1/studies/{id}":
                held = (ids["study"], ids["sweep"])[choose("search", 2)]
            elif path.startswith("/api/v1/studies/"):
                # Only sweeps take agents.
                held = ids["sweep"]
            elif path == "/api/v1/trials/{id}/finish":
                held = ids["sweep_trial"]
            case.path_parameters = {**case.path_parameters, "id": held}
        if path.startswith("/api/v1/runs/{id}/") and path.endswith(
            ("/lineage", "/artifact-versions")
        ):
            # The run that used and logged versions, where the id was aimed.
            if case.path_parameters.get("id") == run:
                case.path_parameters = {**case.path_parameters, "id": ids["artifact_run"]}
        if path.startswith("/api/v1/projects/{project}/artifacts"):
            # An artifact's paths need the project, the name and the version
            # right at once: aimed together.
            if choose("artifact", 4):
                aimed = {"project": project}
                if "name" in case.path_parameters:
                    aimed["name"] = "victim-data"
                if "version" in case.path_parameters:
                    aimed["version"] = ("v0", "best", "latest")[choose("version", 3)]
                case.path_parameters = {**case.path_parameters, **aimed}
        elif "name" in case.path_parameters and choose("name", 2):
            case.path_parameters = {**case.path_parameters, "name": "victim-model"}
        if (
            "project" in case.path_parameters
            and not path.startswith("/api/v1/projects/{project}/artifacts")
            and choose("project", 2)
        ):
            case.path_parameters = {**case.path_parameters, "project": project}
    if isinstance(case.query, dict) and case.query:
        if "runs" in case.query and choose("runs", 2):
            case.query = {**case.query, "runs": [run, *case.query["runs"][:1]]}
        if "keys" in case.query and choose("keys", 2):
            case.query = {**case.query, "keys": ["loss", *case.query["keys"][:1]]}
        # A file of the run or model aimed at, most of the time: both picks
        # must land for a 200, and these operations get few examples.
        if path.endswith(("/artifacts/preview", "/artifacts/raw")) and choose("path", 8):
            name = "MLmodel" if path.startswith("/api/v1/logged-models/") else "notes.txt"
            case.query = {**case.query, "path": name}
        if case.operation.path == "/api/v1/events" and choose("events", 2):
            case.query = {**case.query, "project": project}
    if isinstance(case.body, dict):
        if isinstance(case.body.get("ids"), list) and choose("ids", 2):
            case.body = {**case.body, "ids": [run]}
        if "run_id" in case.body and choose("run_id", 2):
            case.body = {**case.body, "run_id": run}
        if isinstance(case.body.get("trials"), list) and choose("trials", 2):
            case.body = {**case.body, "trials": [int(ids["sweep_trial"])]}
        if case.operation.path == "/api/v1/runs" and choose("resume", 3) == 0:
            case.body = {**case.body, "id": run, "resume": "allow"}


# The statuses each operation answered during the schemathesis run.
ANSWERED: dict[str, set[int]] = {}
# The operations whose run failed (and stopped early): reported there.
FAILED: set[str] = set()


@pytest.mark.timeout(240)
@schema.parametrize()
def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    case: Any, live: tuple[Server, dict[str, str]]
) -> None:
    server, ids = live
    aim_at_the_store(case, ids)
    try:
        response = case.call_and_validate()
    except BaseException:
        FAILED.add(case.operation.label)
        raise
    if case.method.lower() == case.operation.method.lower():  # not a probe with another method
        ANSWERED.setdefault(case.operation.label, set()).add(response.status_code)
    assert server.alive(), (
        f"the server died on {case.method} {case.formatted_path}:\n{server.log_tail()}"
    )


# The fuzzed server has no accounts, so signing in can only be refused (404
# NO_ACCOUNTS); python/tests/test_auth.py drives its success and its hostile
# rows on a server with accounts.
SUCCEEDS_ONLY_WITH_ACCOUNTS = {"POST /api/v1/session"}


@pytest.mark.timeout(30)
def test_the_server_survived_the_schemathesis_run(live: tuple[Server, dict[str, str]]) -> None:
    server, ids = live
    assert server.alive(), server.log_tail()
    assert server.get("/health").text == "ok"
    assert server.get(f"/api/v1/runs/{ids['run']}").status_code == 200
    if not ANSWERED:
        pytest.skip("the schemathesis run did not run in this session")
    # Each operation got past its 404s and 400s at least once: the run
    # exercised the handlers, not only their refusals. (One whose run failed
    # stopped early, and its failure says why.)
    unanswered = sorted(
        label
        for label in yaml_operation_labels()
        if label not in FAILED
        and label not in SUCCEEDS_ONLY_WITH_ACCOUNTS
        and not any(200 <= s < 300 for s in ANSWERED.get(label, ()))
    )
    assert not unanswered, f"operations that never answered 2xx: {unanswered}; {ANSWERED}"


def yaml_operation_labels() -> list[str]:
    return [f"{method.upper()} {path}" for method, path in sorted(yaml_routes(load_spec()))]
