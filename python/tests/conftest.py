from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

REPO = Path(__file__).resolve().parents[2]
# tests/store_snapshot.py, shared with the MLflow and security suites.
sys.path.insert(0, str(REPO / "tests"))
from pg_server import PgCluster, postgres_bin  # noqa: E402

# LABBOOK_TEST_STORE=postgres: the servers the remote tests start serve a
# team database (a fresh one per test, in one throwaway cluster) instead of
# a folder, so the SDK's remote tests run against both backends.
ON_POSTGRES = os.environ.get("LABBOOK_TEST_STORE") == "postgres"

# CI harnesses may start the suite with SIGTERM ignored or blocked, and both
# survive exec into the children the tests start (subprocess resets neither);
# the children must see what a login shell gives them.
signal.signal(signal.SIGTERM, signal.SIG_DFL)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project directory as cwd, its store at ./.labbook via LABBOOK_DIR."""
    monkeypatch.chdir(tmp_path)
    for var in ("LABBOOK_RUN_ID", "LABBOOK_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LABBOOK_DIR", str(tmp_path / ".labbook"))
    return tmp_path / ".labbook"


def run_python(
    code: str, cwd: Path, env: dict[str, str] | None = None, **kw: object
) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    full_env.update(env or {})
    return subprocess.Popen(  # type: ignore[call-overload]
        [sys.executable, "-c", code],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def labbook_bin() -> str:
    """The CLI binary: $LABBOOK_BIN, the release build, or the one on PATH."""
    candidates = [
        os.environ.get("LABBOOK_BIN"),
        str(REPO / "target/release/labbook"),
        shutil.which("labbook"),
    ]
    for c in candidates:
        if c and Path(c).is_file():
            return c
    pytest.fail("the labbook binary is not built: run `make build` (or set LABBOOK_BIN)")
    raise AssertionError  # unreachable; pytest.fail raises


def api_get(url: str, path: str, /, **params: Any) -> tuple[int, Any]:
    """GET from labbook's API: the status and the decoded JSON, errors included."""
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    try:
        with urllib.request.urlopen(f"{url}{path}?{query}", timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def api_post(url: str, path: str, body: Any, raw: bytes | None = None) -> tuple[int, Any]:
    """POST JSON (or `raw` bytes) to labbook's API: the status and the decoded JSON."""
    if raw is None and isinstance(body, bytes):
        raw = body
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{url}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB filesystem of the test's own, unmounted afterwards."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a small filesystem here: {mounted.stderr.strip()}"
        print(reason)
        pytest.skip(reason)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI (``CI`` set, as `.ci/run` does), a test marked ``required_in_ci``
    that skips fails instead: the condition it needs (mounting a small
    filesystem, say) holds there, so a skip would hide a broken promise."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and os.environ.get("CI") and item.get_closest_marker("required_in_ci"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI, where it must run: {reason}"


def read_line(stream: IO[str], timeout: float = 30.0, what: str = "a line") -> str:
    """One line from a child's pipe, or a test failure after ``timeout``
    seconds: a child that hangs before printing must not hang the suite."""
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not line:
        pytest.fail(f"no {what} within {timeout:.0f} s")
    return line[0]


StoreRef = Path | str  # a `.labbook` folder, or a team database's URL


class LabbookServer:
    """`labbook ui` or `labbook serve` on a port the OS picks, as a test's
    own process group; ``stop()`` (always called by the fixtures that make
    one) ends it whatever happened. `store` is a folder or, for `serve`, a
    team database (its artifact contents then go to `artifacts`)."""

    def __init__(
        self,
        store: StoreRef,
        command: str = "serve",
        port: int = 0,
        host: str = "127.0.0.1",
        args: tuple[str, ...] = (),
        artifacts: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.store = store
        if isinstance(store, str):
            where = ["--store", store]
            if artifacts is not None:
                args = ("--artifacts", artifacts.as_uri(), *args)
        else:
            where = ["--dir", str(store)]
        self.proc = subprocess.Popen(
            [
                labbook_bin(),
                *where,
                command,
                "--host",
                host,
                "--port",
                str(port),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        assert self.proc.stdout is not None
        try:
            line = read_line(self.proc.stdout, what=f"banner from labbook {command}")
            assert line.startswith(f"labbook {command}: serving"), line + self.stderr()
        except BaseException:
            self.kill()
            raise
        self.url = line.rsplit(" at ", 1)[1].strip()
        self.port = int(self.url.rsplit(":", 1)[1])

    def api(self, token: str | None = None) -> Any:
        """What the server stored, read back: `labbook.Api` on its folder, or
        the same reads over its HTTP API (as `token`'s user) on a team database."""
        if isinstance(self.store, str):
            return HttpApi(self.url, token)
        import labbook

        return labbook.Api(str(self.store))

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class HttpApi:
    """`labbook.Api`'s reads (run, runs, history) over a server's HTTP API,
    answering in the same shapes, for a team database the SDK cannot open.
    History comes from MLflow's get-history: every point, exact."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.token = token

    def _get(self, path: str, **params: Any) -> tuple[int, Any]:
        query = urllib.parse.urlencode(params)
        request = urllib.request.Request(f"{self.url}{path}?{query}")
        if self.token is not None:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def run(self, reference: str) -> dict[str, Any]:
        status, body = self._get(f"/api/v1/runs/{urllib.parse.quote(reference, safe='')}")
        if status == 404:
            raise KeyError(reference)
        assert status == 200, body
        return dict(body)

    def runs(self, project: str) -> list[dict[str, Any]]:
        status, body = self._get(
            f"/api/v1/projects/{urllib.parse.quote(project, safe='')}/runs", limit=10_000
        )
        assert status == 200, body
        return [self.run(r["id"]) for r in body["runs"]]

    def history(self, run: str, key: str) -> dict[str, list[Any]]:
        status, body = self._get("/api/2.0/mlflow/metrics/get-history", run_id=run, metric_key=key)
        assert status == 200, body
        points = sorted(
            (m["step"], m["timestamp"], float(m["value"])) for m in body.get("metrics", [])
        )
        return {
            "step": [p[0] for p in points],
            "timestamp_ms": [p[1] for p in points],
            "value": [p[2] for p in points],
        }


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster | None]:
    """The session's PostgreSQL cluster under LABBOOK_TEST_STORE=postgres."""
    if not ON_POSTGRES:
        yield None
        return
    binary_dir = postgres_bin()
    if binary_dir is None:
        reason = "LABBOOK_TEST_STORE=postgres, but PostgreSQL's initdb is not installed"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    cluster = PgCluster(binary_dir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def server_store(tmp_path: Path, pg_cluster: PgCluster | None) -> StoreRef:
    """Where a test's server keeps what it is sent: a folder under the
    test's, or a fresh database in the session's cluster."""
    if pg_cluster is None:
        return tmp_path / "server" / ".labbook"
    return pg_cluster.create_database(f"t{os.urandom(8).hex()}")


@pytest.fixture
def served(tmp_path: Path, server_store: StoreRef) -> Iterator[LabbookServer]:
    """A `labbook serve` on a store of its own (see `server_store`)."""
    server = LabbookServer(server_store, artifacts=tmp_path / "server" / "artifacts")
    try:
        yield server
    finally:
        server.stop()
