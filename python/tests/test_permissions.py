"""Roles on a `labbook serve --auth`: who may read, write and delete what,
through labbook's API, MLflow's API, the artifact proxy, the event stream
and the dashboard's listings. The real binary and raw HTTP, as a hostile
or merely curious teammate would send it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import LabbookServer, PgCluster, StoreRef
from store_snapshot import snapshot
from test_auth import PASSWORD, call, cli

import labbook

ROLES = {"READ": 1, "EDIT": 2, "MANAGE": 3}


class Team:
    """A server whose default role is NO_PERMISSIONS: owner made team-a
    (a run with points, a file and a note); outsider made team-b; reader
    and editor were given READ and EDIT on team-a; boss is an admin."""

    def __init__(self, store: StoreRef, artifacts: Path, default: str = "NO_PERMISSIONS") -> None:
        self.tokens: dict[str, str] = {}
        for name in ("owner", "reader", "editor", "outsider", "boss"):
            extra = ("--admin",) if name == "boss" else ()
            added = cli(
                store, "user", "add", name, *extra, "--password-stdin", stdin=PASSWORD + "\n"
            )
            assert added.returncode == 0, added.stderr
            made = json.loads(cli(store, "token", "create", name, "--json").stdout)
            self.tokens[name] = made["token"]
        self.server = LabbookServer(
            store, args=("--auth", "--default-permission", default), artifacts=artifacts
        )
        self.artifacts = artifacts
        self.url = self.server.url
        self.store = store
        self.run = self.start("owner", "team-a", "secret-run")
        self.spare = self.start("owner", "team-a", "spare-run")
        self.theirs = self.start("outsider", "team-b", "their-run")
        _, _, found = self.as_(
            "boss", "GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=team-a"
        )
        self.experiment = str(json.loads(found)["experiment"]["experiment_id"])
        status, _, body = self.as_(
            "owner",
            "PUT",
            f"/api/2.0/mlflow-artifacts/artifacts/{self.experiment}/{self.run}/artifacts/notes.txt",
            raw=b"the owner's notes",
        )
        assert status == 200, body
        for user, role in (("reader", "READ"), ("editor", "EDIT")):
            given = cli(store, "perm", "set", user, role, "--project", "team-a")
            assert given.returncode == 0, given.stderr

    def start(self, user: str, project: str, name: str) -> str:
        code = (
            "import labbook\n"
            f"run = labbook.init(url={self.url!r}, project={project!r}, name={name!r},"
            " system_metrics=False)\n"
            "for i in range(3):\n    run.log({'loss': 1.0 / (i + 1)})\n"
            "run.finish()\nprint(run.id)\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
        env["LABBOOK_TOKEN"] = self.tokens[user]
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def as_(
        self,
        user: str,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        content_type = "application/octet-stream" if raw is not None else "application/json"
        return call(
            self.url + path,
            method,
            body,
            f"Bearer {self.tokens[user]}",
            content_type,
            raw,
        )

    def state(self) -> Any:
        """What no refused request may change: on a team database, every
        row of every table and every file its contents went to."""
        if isinstance(self.store, str):
            files = sorted(
                (str(p.relative_to(self.artifacts)), p.read_bytes())
                for p in self.artifacts.rglob("*")
                if p.is_file()
            )
            return snapshot(self.store), files
        api = labbook.Api(str(self.store))
        runs = sorted(
            (r["id"], r["name"], r["status"], r["deleted"], sorted(r["tags"]))
            for deleted in (False, True)
            for r in api.runs(project="team-a", deleted=deleted)
        )
        files = sorted(
            str(p.relative_to(self.store)) for p in self.store.rglob("*.txt") if p.is_file()
        )
        return (
            runs,
            list(api.history(self.run, "loss")["value"]),
            sorted(p["name"] for p in api.projects()),
            files,
            [
                (e["kind"], e.get("id"), e.get("text"), e.get("run", {}).get("id"))
                for e in json.loads(self.as_("boss", "GET", "/api/v1/projects/team-a/notebook")[2])[
                    "entries"
                ]
            ],
            self.as_("boss", "GET", f"/api/v1/runs/{self.run}")[2],
        )

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, pg_cluster: PgCluster | None) -> Iterator[Team]:
    tmp = tmp_path_factory.mktemp("team")
    team = Team(team_store(tmp, pg_cluster), tmp / "artifacts")
    try:
        yield team
    finally:
        team.stop()


def team_store(tmp: Path, cluster: PgCluster | None) -> StoreRef:
    if cluster is None:
        return tmp / ".labbook"
    return cluster.create_database(f"t{os.urandom(8).hex()}")


def requests_on_team_a(team: Team) -> list[tuple[str, str, str, Any, bytes | None]]:
    """(role needed, method, path, JSON body, raw body) across every surface."""
    run, exp = team.run, team.experiment
    files = f"/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts"
    point = {"key": "loss", "value": 9.0, "timestamp": 1, "step": 99}
    return [
        ("READ", "GET", "/api/v1/projects/team-a/runs", None, None),
        ("READ", "GET", "/api/v1/projects/team-a/keys", None, None),
        ("READ", "GET", "/api/v1/projects/team-a/notebook", None, None),
        ("READ", "GET", f"/api/v1/runs/{run}", None, None),
        ("READ", "GET", f"/api/v1/runs/{run}/output", None, None),
        ("READ", "GET", f"/api/v1/runs/{run}/artifacts", None, None),
        ("READ", "GET", f"/api/v1/series?runs={run}&keys=loss", None, None),
        ("READ", "GET", "/api/v1/events?project=team-a", None, None),
        ("READ", "GET", f"/api/2.0/mlflow/runs/get?run_id={run}", None, None),
        ("READ", "GET", f"/api/2.0/mlflow/experiments/get?experiment_id={exp}", None, None),
        (
            "READ",
            "GET",
            "/api/2.0/mlflow/experiments/get-by-name?experiment_name=team-a",
            None,
            None,
        ),
        ("READ", "POST", "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp]}, None),
        (
            "READ",
            "GET",
            f"/api/2.0/mlflow/metrics/get-history?run_id={run}&metric_key=loss",
            None,
            None,
        ),
        ("READ", "GET", f"/api/2.0/mlflow/artifacts/list?run_id={run}", None, None),
        (
            "READ",
            "GET",
            f"/api/2.0/mlflow-artifacts/artifacts?path={exp}/{run}/artifacts",
            None,
            None,
        ),
        ("READ", "GET", f"{files}/notes.txt", None, None),
        ("READ", "GET", f"/get-artifact?run_uuid={run}&path=notes.txt", None, None),
        (
            "EDIT",
            "POST",
            f"/api/v1/runs/{run}/log",
            {"series": {"loss": {"steps": [99], "ts_ms": [1], "values": [9.0]}}},
            None,
        ),
        ("EDIT", "POST", f"/api/v1/runs/{run}/notes", {"text": "intruder note"}, None),
        ("EDIT", "POST", "/api/v1/projects/team-a/notebook", {"text": "intruder note"}, None),
        ("EDIT", "POST", "/api/v1/runs", {"project": "team-a", "name": "intruder"}, None),
        ("EDIT", "POST", "/api/v1/runs/tags", {"ids": [run], "add": ["intruded"]}, None),
        (
            "EDIT",
            "POST",
            "/api/2.0/mlflow/runs/log-batch",
            {"run_id": run, "metrics": [point]},
            None,
        ),
        ("EDIT", "POST", "/api/2.0/mlflow/runs/log-metric", {"run_id": run, **point}, None),
        (
            "EDIT",
            "POST",
            "/api/2.0/mlflow/runs/set-tag",
            {"run_id": run, "key": "intruded", "value": "1"},
            None,
        ),
        ("EDIT", "POST", "/api/2.0/mlflow/runs/create", {"experiment_id": exp}, None),
        (
            "EDIT",
            "POST",
            "/api/2.0/mlflow/experiments/update",
            {"experiment_id": exp, "new_name": "intruded"},
            None,
        ),
        ("EDIT", "PUT", f"{files}/evil.txt", None, b"evil"),
        ("MANAGE", "POST", "/api/v1/runs/delete", {"ids": [run]}, None),
        ("MANAGE", "POST", "/api/2.0/mlflow/runs/delete", {"run_id": run}, None),
        ("MANAGE", "POST", "/api/2.0/mlflow/experiments/delete", {"experiment_id": exp}, None),
        ("MANAGE", "DELETE", f"{files}/notes.txt", None, None),
    ]


def refusal_code(body: bytes) -> str:
    answer = json.loads(body)
    return str(answer.get("error_code") or answer.get("error", {}).get("code"))


def test_each_role_is_refused_what_it_may_not_do_and_nothing_changes(team: Team) -> None:
    before = team.state()
    roles = {"reader": 1, "editor": 2, "outsider": 0}
    refused = 0
    for user, has in roles.items():
        for needs, method, path, body, raw in requests_on_team_a(team):
            if has >= ROLES[needs]:
                continue
            status, _, answer = team.as_(user, method, path, body, raw)
            label = (user, method, path)
            assert status == 403, (label, status, answer[:300])
            assert refusal_code(answer) == "PERMISSION_DENIED", (label, answer)
            text = answer.decode()
            # The refusal names the user and the roles, nothing of team-a.
            for secret in ("team-a", "secret-run", "spare-run", "notes.txt", team.run):
                assert secret not in text, (label, text)
            refused += 1
    # outsider: all 32; reader: the 11 edits and 4 deletes; editor: the 4 deletes.
    assert refused == 32 + 15 + 4
    assert team.state() == before


def test_an_outsider_lists_only_their_own_projects(team: Team) -> None:
    for user, expected in (("outsider", ["team-b"]), ("reader", ["team-a"]), ("boss", None)):
        _, _, body = team.as_(user, "GET", "/api/v1/projects")
        names = sorted(p["name"] for p in json.loads(body)["projects"])
        _, _, body = team.as_(
            user, "POST", "/api/2.0/mlflow/experiments/search", {"max_results": 100}
        )
        experiments = sorted(e["name"] for e in json.loads(body)["experiments"])
        if expected is None:
            assert names == ["team-a", "team-b"] and "Default" in experiments, (names, experiments)
        else:
            assert names == expected and experiments == expected, (user, names, experiments)
    # The artifact tree's root lists every project's folder: admins only.
    root = "/api/2.0/mlflow-artifacts/artifacts?path="
    assert team.as_("outsider", "GET", root)[0] == 403
    assert team.as_("boss", "GET", root)[0] == 200
    # Their own project's run is theirs to read and delete.
    assert team.as_("outsider", "GET", f"/api/v1/runs/{team.theirs}")[0] == 200
    assert team.as_("reader", "GET", f"/api/v1/runs/{team.theirs}")[0] == 403


def test_each_role_may_do_what_it_should(team: Team) -> None:
    skip = {"/api/2.0/mlflow/experiments/update"}
    for user, has in (("reader", 1), ("editor", 2)):
        for needs, method, path, body, raw in requests_on_team_a(team):
            if ROLES[needs] != has or path in skip:
                continue
            status, _, answer = team.as_(user, method, path, body, raw)
            assert status == 200, (user, method, path, status, answer[:300])
    api = team.server.api(team.tokens["boss"])
    assert "intruded" in api.run(team.run)["tags"]
    # MANAGE deletes and restores; an admin may do anything.
    assert team.as_("owner", "POST", "/api/v1/runs/delete", {"ids": [team.spare]})[0] == 200
    assert (
        team.as_("boss", "POST", "/api/2.0/mlflow/runs/restore", {"run_id": team.spare})[0] == 200
    )
    assert not api.run(team.spare)["deleted"]
    # Whoever creates an experiment manages it.
    status, _, body = team.as_(
        "reader", "POST", "/api/2.0/mlflow/experiments/create", {"name": "readers-own"}
    )
    assert status == 200, body
    own = json.loads(body)["experiment_id"]
    status, _, body = team.as_(
        "reader", "POST", "/api/2.0/mlflow/runs/create", {"experiment_id": own}
    )
    assert status == 200, body
    assert (
        team.as_("editor", "GET", f"/api/2.0/mlflow/experiments/get?experiment_id={own}")[0] == 403
    )


def test_registered_models_have_roles_of_their_own(team: Team) -> None:
    status, _, body = team.as_(
        "outsider", "POST", "/api/2.0/mlflow/registered-models/create", {"name": "b-model"}
    )
    assert status == 200, body
    assert (
        team.as_("outsider", "GET", "/api/2.0/mlflow/registered-models/get?name=b-model")[0] == 200
    )
    assert team.as_("reader", "GET", "/api/2.0/mlflow/registered-models/get?name=b-model")[0] == 403
    assert (
        team.as_(
            "reader",
            "POST",
            "/api/2.0/mlflow/model-versions/create",
            {"name": "b-model", "source": "runs:/x/model"},
        )[0]
        == 403
    )
    for user, listed in (("reader", []), ("outsider", ["b-model"]), ("boss", ["b-model"])):
        _, _, body = team.as_(user, "GET", "/api/2.0/mlflow/registered-models/search")
        names = [m["name"] for m in json.loads(body).get("registered_models", [])]
        assert names == listed, (user, names)
    # A renamed model keeps its roles; a deleted one's go with it.
    renamed = team.as_(
        "outsider",
        "POST",
        "/api/2.0/mlflow/registered-models/rename",
        {"name": "b-model", "new_name": "b-model-2"},
    )
    assert renamed[0] == 200, renamed
    assert (
        team.as_("outsider", "GET", "/api/2.0/mlflow/registered-models/get?name=b-model-2")[0]
        == 200
    )
    deleted = team.as_(
        "outsider", "DELETE", "/api/2.0/mlflow/registered-models/delete", {"name": "b-model-2"}
    )
    assert deleted[0] == 200, deleted
    perms = json.loads(cli(team.store, "perm", "ls", "--user", "outsider", "--json").stdout)
    assert [p["kind"] for p in perms] == ["project"], perms


def test_a_role_taken_away_counts_from_the_next_request(team: Team) -> None:
    path = "/api/v1/projects/team-a/runs"
    assert team.as_("reader", "GET", path)[0] == 200
    assert cli(team.store, "perm", "rm", "reader", "--project", "team-a").returncode == 0
    assert team.as_("reader", "GET", path)[0] == 403
    assert cli(team.store, "perm", "set", "reader", "read", "--project", "team-a").returncode == 0
    assert team.as_("reader", "GET", path)[0] == 200
    # An admin's rights are taken away the same way.
    assert cli(team.store, "user", "admin", "boss", "--off").returncode == 0
    assert team.as_("boss", "GET", path)[0] == 403
    assert cli(team.store, "user", "admin", "boss").returncode == 0
    assert team.as_("boss", "GET", path)[0] == 200


def test_the_sdk_says_when_a_role_is_missing(team: Team) -> None:
    code = (
        "import labbook\n"
        f"run = labbook.init(url={team.url!r}, project='team-a', system_metrics=False)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    env["LABBOOK_TOKEN"] = team.tokens["outsider"]
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "needs EDIT" in done.stderr and "Traceback" not in done.stderr.split("\n")[-2]


def test_the_default_role_applies_where_none_was_given(
    tmp_path: Path, pg_cluster: PgCluster | None
) -> None:
    team = Team(team_store(tmp_path, pg_cluster), tmp_path / "artifacts", default="READ")
    try:
        # READ by default: outsider reads team-a, and may not write it.
        assert team.as_("outsider", "GET", f"/api/v1/runs/{team.run}")[0] == 200
        status, _, body = team.as_(
            "outsider",
            "POST",
            "/api/2.0/mlflow/runs/set-tag",
            {"run_id": team.run, "key": "x", "value": "1"},
        )
        assert status == 403 and refusal_code(body) == "PERMISSION_DENIED"
        # A NO_PERMISSIONS given to one user shuts them out of one project.
        assert (
            cli(team.store, "perm", "set", "outsider", "none", "--project", "team-a").returncode
            == 0
        )
        assert team.as_("outsider", "GET", f"/api/v1/runs/{team.run}")[0] == 403
    finally:
        team.stop()


def test_perm_commands_say_what_is_wrong(tmp_path: Path) -> None:
    store = tmp_path / ".labbook"
    assert (
        cli(store, "user", "add", "ada", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    )
    bad_role = cli(store, "perm", "set", "ada", "OWNER", "--model", "m")
    assert bad_role.returncode != 0 and "READ, EDIT, MANAGE or NO_PERMISSIONS" in bad_role.stderr
    no_project = cli(store, "perm", "set", "ada", "READ", "--project", "nope")
    assert no_project.returncode != 0 and "nope" in no_project.stderr
    no_user = cli(store, "perm", "set", "bob", "READ", "--model", "m")
    assert no_user.returncode != 0 and "bob" in no_user.stderr
    neither = cli(store, "perm", "set", "ada", "READ")
    assert neither.returncode != 0
    assert cli(store, "perm", "set", "ada", "EDIT", "--model", "m").returncode == 0
    listed = cli(store, "perm", "ls")
    assert listed.returncode == 0 and "ada" in listed.stdout and "EDIT" in listed.stdout
    assert cli(store, "perm", "rm", "ada", "--model", "m").returncode == 0
    assert cli(store, "perm", "rm", "ada", "--model", "m").returncode != 0
    assert json.loads(cli(store, "perm", "ls", "--json").stdout) == []


def test_hostile_requests_cannot_steer_the_check(team: Team) -> None:
    """Each tries to be checked on something the caller may touch and act on
    something they may not, or to make the check itself fail open."""
    status, _, body = team.as_(
        "outsider", "POST", "/api/2.0/mlflow/experiments/create", {"name": "outsiders-own"}
    )
    assert status == 200, body
    own_exp = json.loads(body)["experiment_id"]
    _, _, body = team.as_(
        "outsider", "POST", "/api/2.0/mlflow/runs/create", {"experiment_id": own_exp}
    )
    own_run = json.loads(body)["run"]["info"]["run_id"]
    before = team.state()
    point = {"key": "loss", "value": 9.0, "timestamp": 1, "step": 99}
    hostile: list[tuple[str, str, Any, bytes | None, set[int]]] = [
        # A write's ids come from its body; a query naming their own run is
        # not what is checked.
        (
            "POST",
            f"/api/2.0/mlflow/runs/log-batch?run_id={own_run}",
            {"run_id": team.run, "metrics": [point]},
            None,
            {403},
        ),
        # The same field twice: handlers differ in which they would take.
        ("GET", f"/api/2.0/mlflow/runs/get?run_id={own_run}&run_id={team.run}", None, None, {400}),
        ("GET", "/api/v1/events?project=outsiders-own&project=team-a", None, None, {400}),
        ("GET", f"/api/v1/series?runs={own_run}&runs={team.run}&keys=loss", None, None, {400}),
        ("GET", f"/api/v1/series?runs={own_run},{team.run}&keys=loss", None, None, {403}),
        # Climbing out of their own project's artifact root.
        (
            "GET",
            f"/api/2.0/mlflow-artifacts/artifacts/{own_exp}/../{team.experiment}/{team.run}"
            "/artifacts/notes.txt",
            None,
            None,
            {400, 403, 404},
        ),
        (
            "PUT",
            f"/api/2.0/mlflow-artifacts/artifacts/{own_exp}/%2E%2E/{team.experiment}/{team.run}"
            "/artifacts/evil.txt",
            None,
            b"evil",
            {400, 403, 404},
        ),
        (
            "GET",
            f"/api/2.0/mlflow-artifacts/artifacts?path={own_exp}/../{team.experiment}",
            None,
            None,
            {400, 403},
        ),
        # Deep nesting, too many ids, a body over the cap, ids of odd types.
        ("POST", "/api/2.0/mlflow/runs/log-batch", None, b"[" * 100_000, {400}),
        ("POST", "/api/v1/runs/delete", {"ids": [team.run] * 5000}, None, {400, 403}),
        ("POST", "/api/v1/runs/tags", {"ids": [{"id": team.run}], "add": ["x"]}, None, {400}),
        ("POST", "/api/2.0/mlflow/runs/search", {"experiment_ids": team.experiment}, None, {400}),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-batch",
            None,
            b'{"run_id": "' + team.run.encode() + b'", "x": "' + b"a" * (5 << 20) + b'"}',
            {413},
        ),
        ("POST", "/api/2.0/mlflow/runs/set-tag", None, b"not json", {400}),
    ]
    for method, path, body, raw, expected in hostile:
        if raw is not None and method == "POST":
            status, _, answer = call(
                team.url + path,
                method,
                None,
                f"Bearer {team.tokens['outsider']}",
                "application/json",
                raw,
            )
        else:
            status, _, answer = team.as_("outsider", method, path, body, raw)
        assert status in expected, (method, path[:120], status, answer[:300])
        text = answer.decode(errors="replace")
        assert "team-a" not in text and "the owner's notes" not in text, (path[:120], text[:300])
    assert team.state() == before
    assert team.as_("boss", "GET", "/health")[0] == 200


def test_a_live_stream_ends_when_its_reader_loses_the_role(team: Team) -> None:
    request = urllib.request.Request(
        team.url + "/api/v1/events?project=team-a",
        headers={"Authorization": f"Bearer {team.tokens['reader']}"},
    )
    stream = urllib.request.urlopen(request, timeout=20)
    try:
        assert stream.status == 200
        taken = cli(team.store, "perm", "set", "reader", "NO_PERMISSIONS", "--project", "team-a")
        assert taken.returncode == 0, taken.stderr
        logged = team.as_(
            "owner",
            "POST",
            f"/api/v1/runs/{team.run}/log",
            {"series": {"late": {"steps": [0], "ts_ms": [1], "values": [1.0]}}},
        )
        assert logged[0] == 200, logged
        received = b""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            chunk = stream.read1(4096)
            if not chunk:
                break
            received += chunk
        assert time.monotonic() < deadline, "the stream went on"
        assert b"event: runs" not in received and b"late" not in received, received
    finally:
        stream.close()
        cli(team.store, "perm", "set", "reader", "READ", "--project", "team-a")


def test_a_readable_model_names_no_run_of_a_project_its_reader_may_not_see(team: Team) -> None:
    made = team.as_(
        "outsider", "POST", "/api/2.0/mlflow/registered-models/create", {"name": "c-model"}
    )
    assert made[0] == 200, made
    version = team.as_(
        "outsider",
        "POST",
        "/api/2.0/mlflow/model-versions/create",
        {"name": "c-model", "source": f"runs:/{team.run}/model", "run_id": team.run},
    )
    assert version[0] == 200, version
    for path in ("/api/v1/models/c-model", "/api/v1/models"):
        status, _, body = team.as_("outsider", "GET", path)
        assert status == 200, body
        assert b"secret-run" not in body and b"team-a" not in body, body
    status, _, body = team.as_("boss", "GET", "/api/v1/models/c-model")
    assert status == 200 and b"secret-run" in body and b"team-a" in body
