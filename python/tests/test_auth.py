"""`labbook serve --auth`: accounts made with `labbook user` and `labbook
token`, and every route but /health refusing a request that names none.
The real binary, the SDK and `labbook sync` through LABBOOK_TOKEN, and raw
HTTP for what a hostile client sends."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import LabbookServer, StoreRef, labbook_bin

import labbook

PASSWORD = "a long passphrase"


def cli(store: StoreRef, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    where = ["--store", store] if isinstance(store, str) else ["--dir", str(store)]
    return subprocess.run(
        [labbook_bin(), *where, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


class AuthServer(LabbookServer):
    """`labbook serve --auth` on a store with user ada (password and a
    token), and a revoked token of hers."""

    def __init__(self, store: Path) -> None:
        added = cli(store, "user", "add", "ada", "--password-stdin", stdin=PASSWORD + "\n")
        assert added.returncode == 0, added.stderr
        made = json.loads(cli(store, "token", "create", "ada", "--name", "laptop", "--json").stdout)
        self.token: str = made["token"]
        old = json.loads(cli(store, "token", "create", "ada", "--name", "old", "--json").stdout)
        self.revoked: str = old["token"]
        assert cli(store, "token", "revoke", str(old["id"])).returncode == 0
        super().__init__(store, args=("--auth",))


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[AuthServer]:
    server = AuthServer(tmp_path / "server" / ".labbook")
    try:
        yield server
    finally:
        server.stop()


def call(
    url: str,
    method: str = "GET",
    body: Any = None,
    authorization: str | None = None,
    content_type: str = "application/json",
    raw: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            # An event stream never ends: its head is enough.
            if answer.headers.get("content-type", "").startswith("text/event-stream"):
                return answer.status, dict(answer.headers), b""
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def seed(server: AuthServer) -> str:
    """One project with one run, logged by ada through the SDK: what the
    refused requests must neither change nor reveal."""
    code = (
        "import labbook\n"
        f"run = labbook.init(url={server.url!r}, project='secret-project', name='secret-run',"
        " system_metrics=False)\n"
        "run.log({'loss': 0.5})\nrun.finish()\nprint(run.id)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    env["LABBOOK_TOKEN"] = server.token
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_every_surface_refuses_a_request_naming_no_live_account(guarded: AuthServer) -> None:
    run_id = seed(guarded)
    url = guarded.url
    before = labbook.Api(str(guarded.store)).runs(project="secret-project")
    refused_credentials = {
        "none": None,
        "wrong token": "Bearer lbk_" + "0" * 64,
        "revoked token": f"Bearer {guarded.revoked}",
        "wrong password": basic("ada", PASSWORD + "!"),
        "unknown user": basic("mallory", PASSWORD),
        "token of another name": basic("mallory", guarded.token),
        "malformed basic": "Basic %%%",
        "other scheme": f"Token {guarded.token}",
        "empty bearer": "Bearer ",
        "long bearer": "Bearer lbk_" + "f" * 8000,
        "long password": basic("ada", "x" * 6000),
        "odd user name": basic("../../ada\u00e9", PASSWORD),
    }
    requests: list[tuple[str, str, Any, str]] = [
        ("GET", "/api/v1/projects", None, "application/json"),
        ("GET", "/api/v1/projects/secret-project/runs", None, "application/json"),
        ("GET", f"/api/v1/runs/{run_id}", None, "application/json"),
        ("POST", "/api/v1/runs", {"project": "intruder"}, "application/json"),
        ("POST", "/api/v1/runs/delete", {"ids": [run_id]}, "application/json"),
        (
            "POST",
            f"/api/v1/runs/{run_id}/log",
            {"series": {"loss": {"steps": [9], "ts_ms": [1], "values": [1.0]}}},
            "application/json",
        ),
        ("GET", "/api/v1/events?project=secret-project", None, "application/json"),
        ("POST", "/api/2.0/mlflow/experiments/search", {"max_results": 10}, "application/json"),
        ("POST", "/api/2.0/mlflow/experiments/create", {"name": "intruder"}, "application/json"),
        ("GET", f"/api/2.0/mlflow/runs/get?run_id={run_id}", None, "application/json"),
        (
            "PUT",
            "/api/2.0/mlflow-artifacts/artifacts/1/x/artifacts/evil.txt",
            b"evil",
            "application/octet-stream",
        ),
        ("GET", "/api/2.0/mlflow-artifacts/artifacts?path=1", None, "application/json"),
        ("GET", "/api/v1/session", None, "application/json"),
        ("POST", "/api/v1/session/sign-out", {}, "application/json"),
    ]
    # Wrong passwords are throttled once there have been enough of them:
    # those answers are 429s, as refused and as silent.
    password_guesses = {"wrong password", "unknown user", "long password", "odd user name"}
    for what, authorization in refused_credentials.items():
        for method, path, body, content_type in requests:
            raw = body if isinstance(body, bytes) else None
            status, headers, answer = call(
                url + path, method, None if raw else body, authorization, content_type, raw
            )
            label = f"{what}: {method} {path}"
            text = answer.decode(errors="replace")
            assert "secret" not in text and run_id not in text, (label, text)
            if status == 429 and what in password_guesses:
                assert int(headers.get("Retry-After", headers.get("retry-after", "0"))) > 0
                assert "too many wrong passwords" in text, (label, text)
                continue
            assert status == 401, (label, status, answer[:200])
            assert headers.get("WWW-Authenticate", headers.get("www-authenticate", "")).startswith(
                "Basic realm="
            ), label
            assert "UNAUTHENTICATED" in text, (label, text)
    # Nothing changed, nothing was uploaded.
    after = labbook.Api(str(guarded.store)).runs(project="secret-project")
    assert [(r["id"], r["status"], r["deleted"]) for r in after] == [
        (r["id"], r["status"], r["deleted"]) for r in before
    ]
    assert list(labbook.Api(str(guarded.store)).history(run_id, "loss")["step"]) == [0]
    assert not any(p["name"] == "intruder" for p in labbook.Api(str(guarded.store)).projects())
    assert not list(guarded.store.rglob("evil.txt"))
    # /health answers anyone: load balancers probe it. The dashboard's pages
    # too: they hold nothing of the store, and show the sign-in page.
    assert call(url + "/health")[0] == 200
    for page in ("/", "/p/secret-project"):
        status, headers, body = call(url + page)
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert b"secret" not in body


def test_password_guesses_are_throttled_and_tokens_still_sign_in(guarded: AuthServer) -> None:
    assert (
        cli(guarded.store, "user", "add", "bo", "--password-stdin", stdin=PASSWORD + "\n")
    ).returncode == 0
    projects = guarded.url + "/api/v1/projects"
    for guess in range(10):
        status, _, _ = call(projects, authorization=basic("ada", f"guess {guess}!"))
        assert status == 401, guess
    # The next try at ada's password is not checked, not even the right one.
    for secret in ("guess 10!", PASSWORD):
        status, headers, body = call(projects, authorization=basic("ada", secret))
        assert status == 429, (secret, body)
        assert 0 < int({k.lower(): v for k, v in headers.items()}["retry-after"]) <= 900
        assert json.loads(body)["error"]["code"] == "TOO_MANY_ATTEMPTS"
    status, _, body = call(
        guarded.url + "/api/2.0/mlflow/experiments/search",
        "POST",
        {"max_results": 1},
        basic("ada", PASSWORD),
    )
    assert status == 429 and json.loads(body)["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    # Her token is never throttled, and another user's password still works.
    assert call(projects, authorization=f"Bearer {guarded.token}")[0] == 200
    assert call(projects, authorization=basic("bo", PASSWORD))[0] == 200


def test_a_token_a_password_or_both_let_ada_in_everywhere(guarded: AuthServer) -> None:
    run_id = seed(guarded)
    for authorization in (
        f"Bearer {guarded.token}",
        basic("ada", PASSWORD),
        basic("ada", guarded.token),
    ):
        status, _, body = call(guarded.url + "/api/v1/projects", authorization=authorization)
        assert status == 200 and b"secret-project" in body, (authorization, body)
        status, _, body = call(
            guarded.url + "/api/2.0/mlflow/experiments/search",
            "POST",
            {"max_results": 5},
            authorization,
        )
        assert status == 200 and b"secret-project" in body
        status, _, _ = call(guarded.url + f"/api/v1/runs/{run_id}", authorization=authorization)
        assert status == 200
        status, _, body = call(guarded.url + "/api/v1/session", authorization=authorization)
        assert status == 200 and json.loads(body)["user"] == {"name": "ada", "admin": False}


def session_call(
    url: str,
    method: str = "GET",
    body: Any = None,
    cookie: str | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    if cookie is not None:
        request.add_header("Cookie", f"labbook_session={cookie}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def test_the_dashboard_signs_in_with_a_session_cookie(guarded: AuthServer) -> None:
    run_id = seed(guarded)
    session = guarded.url + "/api/v1/session"
    status, headers, body = session_call(session, "POST", {"user": "ada", "password": PASSWORD})
    assert status == 200, body
    assert json.loads(body) == {"auth": True, "user": {"name": "ada", "admin": False}}
    set_cookie = headers["set-cookie"]
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=1209600"):
        assert attribute in set_cookie, set_cookie
    assert "Secure" not in set_cookie  # plain http here; over https it is Secure
    cookie = set_cookie.split(";")[0].split("=", 1)[1]
    assert cookie.startswith("lbk_")
    # The cookie reaches every surface, as a browser sends it.
    for path in (f"/api/v1/runs/{run_id}", f"/api/2.0/mlflow/runs/get?run_id={run_id}"):
        assert session_call(guarded.url + path, cookie=cookie)[0] == 200, path
    # Behind a TLS proxy the cookie is sent over TLS only.
    _, headers, _ = session_call(
        session,
        "POST",
        {"user": "ada", "password": PASSWORD},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert "; Secure" in headers["set-cookie"]
    # It is listed as a token, and signing out revokes it in the store.
    listed = json.loads(cli(guarded.store, "token", "ls", "--json").stdout)
    sessions = [t for t in listed if t["name"] == "dashboard session"]
    assert len(sessions) == 2 and all(t["expires_ms"] for t in sessions)
    status, headers, body = session_call(session + "/sign-out", "POST", {}, cookie=cookie)
    assert status == 200 and "Max-Age=0" in headers["set-cookie"]
    assert session_call(guarded.url + f"/api/v1/runs/{run_id}", cookie=cookie)[0] == 401


def test_the_sign_in_refuses_what_a_hostile_page_or_client_sends(
    guarded: AuthServer, tmp_path: Path
) -> None:
    session = guarded.url + "/api/v1/session"
    good = {"user": "ada", "password": PASSWORD}
    # Another site's page cannot sign a visitor in (login CSRF) nor out.
    for path in (session, session + "/sign-out"):
        status, _, body = session_call(
            path, "POST", good, headers={"Origin": "https://evil.example"}
        )
        assert status == 403 and b"CROSS_ORIGIN" in body, (path, body)
    status, _, _ = session_call(session, "POST", good, headers={"Host": "evil.example"})
    assert status == 403
    # A form post is not JSON.
    form = urllib.request.Request(session, data=b"user=ada&password=x", method="POST")
    form.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        urllib.request.urlopen(form, timeout=10)
        raise AssertionError("a form post signed in")
    except urllib.error.HTTPError as e:
        assert e.code == 415
    for body, field in (
        ({"password": PASSWORD}, "user"),
        ({"user": "ada"}, "password"),
        ({"user": "ada", "password": "x" * 5000}, "password"),
        ({"user": ["ada"], "password": PASSWORD}, "user"),
    ):
        status, _, answer = session_call(session, "POST", body)
        assert status == 400 and json.loads(answer)["error"]["field"] == field, answer
    assert session_call(session, "POST", raw=b"[" * 100_000)[0] == 400
    assert session_call(session, "POST", raw=b"{" + b" " * (5 << 20) + b"}")[0] == 413
    # A wrong password says no more than that; no cookie is set.
    for user in ("ada", "mallory"):
        status, headers, answer = session_call(
            session, "POST", {"user": user, "password": "nope-nope"}
        )
        assert status == 401 and "set-cookie" not in headers
        assert json.loads(answer)["error"]["message"] == "the user name or password is wrong"
    # Made-up, malformed or empty cookies let no one in.
    for cookie in ("lbk_" + "0" * 64, "", "x" * 5000, "x; other_cookie=" + guarded.token):
        status, _, _ = session_call(guarded.url + "/api/v1/projects", cookie=cookie)
        assert status == 401, cookie[:40]
    # An API token works as a cookie too (it is the same kind of secret).
    assert session_call(guarded.url + "/api/v1/projects", cookie=guarded.token)[0] == 200
    # Guessing through the sign-in page is throttled like Basic.
    for guess in range(10):
        session_call(session, "POST", {"user": "ada", "password": f"guess {guess}!"})
    status, headers, answer = session_call(session, "POST", good)
    assert status == 429 and int(headers["retry-after"]) > 0, answer
    # A server without accounts has no one to sign in as.
    plain = LabbookServer(tmp_path / "plain" / ".labbook")
    try:
        status, _, answer = session_call(plain.url + "/api/v1/session", "POST", good)
        assert status == 404 and json.loads(answer)["error"]["code"] == "NO_ACCOUNTS"
        status, _, answer = session_call(plain.url + "/api/v1/session")
        assert status == 200 and json.loads(answer) == {"auth": False, "user": None}
    finally:
        plain.stop()


def test_the_sdk_and_sync_sign_in_with_labbook_token(guarded: AuthServer, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    code = (
        "import labbook\n"
        f"run = labbook.init(url={guarded.url!r}, project='p', system_metrics=False)\n"
        "run.finish()\n"
    )
    refused = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode != 0
    assert "asks who you are" in refused.stderr and "LABBOOK_TOKEN" in refused.stderr
    # A local run, pushed with the token.
    local = tmp_path / "laptop" / ".labbook"
    (tmp_path / "laptop").mkdir()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import labbook\nr = labbook.init(project='p', system_metrics=False)\n"
            "r.log({'loss': 1.0})\nr.finish()\n",
        ],
        env={**env, "LABBOOK_DIR": str(local)},
        cwd=tmp_path / "laptop",
        check=True,
        timeout=60,
    )
    args = [
        labbook_bin(),
        "--dir",
        str(local),
        "sync",
        "--to",
        guarded.url,
        "-p",
        "p",
        "--json",
        "--retry",
        "0",
    ]
    without = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert without.returncode != 0 and "LABBOOK_TOKEN" in without.stderr
    pushed = subprocess.run(
        args,
        env={**env, "LABBOOK_TOKEN": guarded.token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["runs"][0]["points"] == 1


def test_users_and_tokens_from_the_command_line(tmp_path: Path) -> None:
    store = tmp_path / ".labbook"
    refused = subprocess.run(
        [labbook_bin(), "--dir", str(store), "serve", "--auth", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 1 and "no users yet" in refused.stderr
    assert cli(store, "user", "add", "bo", "--password-stdin", stdin="short\n").returncode == 1
    bad = cli(store, "user", "add", "bo:b", "--password-stdin", stdin=PASSWORD + "\n")
    assert bad.returncode == 1 and "user" in bad.stderr
    assert (
        cli(store, "user", "add", "bo", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    )
    # With accounts, an address other machines reach is served, to them only.
    exposed = LabbookServer(store, host="0.0.0.0", args=("--auth",))
    try:
        status, _, _ = call(f"http://127.0.0.1:{exposed.port}/api/v1/projects")
        assert status == 401
    finally:
        exposed.stop()
    again = cli(store, "user", "add", "bo", "--password-stdin", stdin=PASSWORD + "\n")
    assert again.returncode != 0 and "already exists" in again.stderr
    made = cli(store, "token", "create", "bo", "--name", "ci")
    token = made.stdout.strip()
    assert made.returncode == 0 and token.startswith("lbk_") and len(token) == 68
    listed = json.loads(cli(store, "token", "ls", "--json").stdout)
    assert [(t["user"], t["name"], t["revoked_ms"]) for t in listed] == [("bo", "ci", None)]
    # The token itself is nowhere in the store's files, nor the password.
    for path in store.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert token.encode() not in data and PASSWORD.encode() not in data, path
    assert cli(store, "token", "create", "nobody").returncode != 0
    assert cli(store, "token", "revoke", "99").returncode != 0
    users = json.loads(cli(store, "user", "ls", "--json").stdout)
    assert [u["name"] for u in users] == ["bo"] and "password_hash" not in users[0]
    assert cli(store, "user", "rm", "bo").returncode == 0
    assert json.loads(cli(store, "token", "ls", "--json").stdout) == []
    assert cli(store, "user", "rm", "bo").returncode != 0
