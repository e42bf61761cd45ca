"""Conformance suite: the real `mlflow` client against a tracking server.

The server under test is chosen by ``CONFORMANCE_SERVER``:

- ``labbook`` (default): ``$LABBOOK_BIN`` (default ``target/release/labbook`` at the
  repository root) as ``labbook --dir TMP/.labbook serve --host 127.0.0.1 --port 0``.
  It prints ``labbook serve: serving <dir> at http://127.0.0.1:<port>`` on stdout.
- ``mlflow``: the reference, ``mlflow server`` on SQLite with proxied artifacts.
  Every test must pass against it; a test that does not is a wrong test.

``CONFORMANCE_ENDPOINTS_OUT=FILE`` writes the REST endpoints the suite called
(``METHOD PATH STATUS``, ids normalized), as the client saw them and, for
``mlflow``, as the server's access log recorded them (the CLI tests included).

``CONFORMANCE_KEEP_LOG=FILE`` copies the server's log (for ``mlflow``, its access
log) there at the end.

``CONFORMANCE_ARTIFACTS=s3`` (labbook only) keeps artifact contents in a bucket of a
real S3-protocol server (``s3s-fs``, see tests/s3_server.py) started for the session,
``serve --artifacts s3://conformance/artifacts``: the same tests, the other backend.

``CONFORMANCE_STORE=postgres`` (labbook only) serves a database in a throwaway
PostgreSQL cluster (tests/pg_server.py) instead of a ``.labbook`` folder, with
artifact contents in a folder (or the bucket, with ``CONFORMANCE_ARTIFACTS=s3``).

``CONFORMANCE_URL=http://...`` uses a server that is already running instead of
starting one (``CONFORMANCE_STORE`` names its store for the labbook-only tests,
``CONFORMANCE_SERVER_LOG`` its log).
"""

from __future__ import annotations

import collections
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

# Before mlflow is imported: a test run must not send usage telemetry anywhere. The
# servers and CLI processes started below inherit this.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow

# CI harnesses may start the suite with SIGTERM ignored or blocked; both survive
# exec, and the servers started here must stop on SIGTERM as they would from a shell.
signal.signal(signal.SIGTERM, signal.SIG_DFL)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})

REPO = Path(__file__).resolve().parents[2]
# tests/store_snapshot.py, shared with the Python and security suites.
sys.path.insert(0, str(REPO / "tests"))
from pg_server import PgCluster, postgres_bin  # noqa: E402
from s3_server import S3Server, s3s_binary  # noqa: E402

SERVER_KIND = os.environ.get("CONFORMANCE_SERVER", "labbook")
if SERVER_KIND not in ("labbook", "mlflow"):
    raise RuntimeError(f"CONFORMANCE_SERVER must be 'labbook' or 'mlflow', not {SERVER_KIND!r}")

IS_MLFLOW = SERVER_KIND == "mlflow"
IS_LABBOOK = SERVER_KIND == "labbook"
# The labbook server keeps its store in PostgreSQL, not a .labbook folder.
ON_POSTGRES = IS_LABBOOK and os.environ.get("CONFORMANCE_STORE") == "postgres"

labbook_only = pytest.mark.skipif(not IS_LABBOOK, reason="labbook-only behaviour")

# What a logged +inf metric reads back as. MLflow's SQL store replaces ±inf with
# ±max float64 (SqlAlchemyStore.sanitize_metric_value); labbook keeps infinities.
STORED_INF = sys.float_info.max if IS_MLFLOW else math.inf

MLFLOW_START_TIMEOUT_S = 120.0
LABBOOK_START_TIMEOUT_S = 30.0
LABBOOK_BANNER = re.compile(r"^labbook serve: serving (?P<dir>.+) at (?P<url>http://\S+)\s*$")


@dataclass
class Server:
    kind: str
    url: str
    tmp: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None
    # labbook only:
    store_dir: Path | None = None
    binary: Path | None = None
    # The team database it serves instead of store_dir (CONFORMANCE_STORE=postgres).
    store_url: str | None = None

    @property
    def store(self) -> str | Path | None:
        """What it stores into: the database's URL, else the folder."""
        return self.store_url or self.store_dir


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _log_tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"


def _server_env() -> dict[str, str]:
    env = dict(os.environ)
    # A server a test starts serves a folder unless the test passes a database.
    for key in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
        "MLFLOW_EXPERIMENT_NAME",
        "LABBOOK_STORE",
    ):
        env.pop(key, None)
    return env


class ServerStartError(Exception):
    """A server that did not come up; `retryable` when its port was still taken."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def _labbook_binary() -> Path:
    binary = Path(os.environ.get("LABBOOK_BIN", str(REPO / "target/release/labbook")))
    if not binary.is_file():
        pytest.exit(f"labbook binary not found at {binary} (build it or set LABBOOK_BIN)", 2)
    return binary


def _launch_labbook(
    tmp: Path, port: int = 0, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Server:
    """Starts `labbook serve` on `port` (0: any) and waits until it answers;
    raises ServerStartError (having stopped it) when it does not."""
    binary = _labbook_binary()
    store = tmp / ".labbook"
    log_path = tmp / "server.log"
    log = open(log_path, "ab")
    # A restarted server appends to the same log: judge only its own part.
    log_start = log.tell()
    # A team database replaces the folder (LABBOOK_STORE in `env`).
    where = [] if "LABBOOK_STORE" in (env or {}) else ["--dir", str(store)]
    proc = subprocess.Popen(
        [
            str(binary),
            *where,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *args,
        ],
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=log,
        env={**_server_env(), **(env or {})},
        start_new_session=True,
    )
    assert proc.stdout is not None
    stdout = proc.stdout
    first: list[bytes] = []
    got_line = threading.Event()

    def drain() -> None:
        # Read the banner, then keep the pipe empty so the server never blocks on stdout.
        line = stdout.readline()
        first.append(line)
        log.write(line)
        log.flush()
        got_line.set()
        for rest in iter(stdout.readline, b""):
            log.write(rest)
            log.flush()
        log.close()

    threading.Thread(target=drain, daemon=True, name="labbook-stdout").start()

    def own_log() -> str:
        try:
            with open(log_path, "rb") as f:
                f.seek(log_start)
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    # The wait for the banner is bounded: the reading thread may block forever.
    if not got_line.wait(LABBOOK_START_TIMEOUT_S) or not first[0]:
        _stop(proc)
        text = own_log()
        raise ServerStartError(
            f"labbook serve printed no banner; log:\n{text}",
            retryable=port != 0 and "in use" in text,
        )
    text = first[0].decode(errors="replace")
    match = LABBOOK_BANNER.match(text)
    if match is None:
        _stop(proc)
        raise ServerStartError(f"unexpected banner from labbook serve: {text!r}")
    url = match["url"].rstrip("/")
    _wait_healthy(url, proc, log_path, LABBOOK_START_TIMEOUT_S)
    database = (env or {}).get("LABBOOK_STORE")
    return Server(
        "labbook",
        url,
        tmp,
        log_path,
        proc,
        store_dir=None if database else store,
        binary=binary,
        store_url=database,
    )


def _start_labbook(
    tmp: Path, port: int = 0, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Server:
    """The suite's own server: without it no test can run, so a failure ends the session."""
    try:
        return _launch_labbook(tmp, port, env, args)
    except ServerStartError as e:
        pytest.exit(str(e), 2)
        raise AssertionError from e  # unreachable; pytest.exit raises


class LabbookServers:
    """Servers a test starts for itself (to kill them); all stopped at its teardown."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        tmp: Path,
        port: int = 0,
        env: dict[str, str] | None = None,
        timeout: float = 30.0,
        args: tuple[str, ...] = (),
    ) -> Server:
        """Starts one on `port`. A port the previous server held may still be
        taken for a moment: binding is retried until `timeout`, then the test fails."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                server = _launch_labbook(tmp, port, env, args)
            except ServerStartError as e:
                if e.retryable and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                pytest.fail(f"labbook serve did not start on port {port}: {e}")
            assert server.process is not None
            self._procs.append(server.process)
            return server

    def stop_all(self) -> None:
        for proc in self._procs:
            _stop(proc)


@pytest.fixture
def labbook_servers() -> Iterator[LabbookServers]:
    servers = LabbookServers()
    try:
        yield servers
    finally:
        servers.stop_all()


def _start_mlflow(tmp: Path) -> Server:
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    port = _free_port()
    log_path = tmp / "server.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                str(mlflow_bin),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{tmp / 'mlflow.db'}",
                "--artifacts-destination",
                str(tmp / "artifacts"),
            ],
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_server_env(),
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log_path, MLFLOW_START_TIMEOUT_S)
    except ServerStartError as e:
        pytest.exit(str(e), 2)
    return Server("mlflow", url, tmp, log_path, proc)


def _attach(tmp: Path) -> Server:
    """Use a server that is already running (for iterating on the suite)."""
    url = os.environ["CONFORMANCE_URL"].rstrip("/")
    store = os.environ.get("CONFORMANCE_STORE")
    binary = Path(os.environ.get("LABBOOK_BIN", str(REPO / "target/release/labbook")))
    log_path = Path(os.environ.get("CONFORMANCE_SERVER_LOG", str(tmp / "server.log")))
    return Server(
        SERVER_KIND,
        url,
        tmp,
        log_path,
        None,
        store_dir=Path(store) if store else None,
        binary=binary if IS_LABBOOK else None,
    )


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    """Raises ServerStartError (having stopped the server) unless it answers in `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerStartError(
                f"server exited with {proc.returncode}; log:\n{_log_tail(log_path)}"
            )
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    _stop(proc)
    raise ServerStartError(
        f"server at {url} not healthy after {timeout:.0f} s; log:\n{_log_tail(log_path)}"
    )


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the server's process group (it was started in its own session), then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        proc.wait(timeout=15)


# --- endpoint recording ---------------------------------------------------------------

_CALLS: collections.Counter[tuple[str, str, int]] = collections.Counter()
_CALLS_LOCK = threading.Lock()
_ORIGINAL_REQUEST = requests.Session.request
_SERVER_ERRORS: list[str] = []

_ID_PATTERNS = [
    (re.compile(r"/mlflow-artifacts/artifacts/.+"), "/mlflow-artifacts/artifacts/<path>"),
    (re.compile(r"/logged-models/m-[0-9a-f]+"), "/logged-models/<model_id>"),
    (re.compile(r"/(get-artifact|model-versions/get-artifact)\b.*"), r"/\1"),
]


def normalize_path(path: str) -> str:
    path = path.split("?", 1)[0]
    for pattern, replacement in _ID_PATTERNS:
        path = pattern.sub(replacement, path)
    return path


def _recording_request(
    self: requests.Session, method: str, url: str, *args: Any, **kwargs: Any
) -> Any:
    response = _ORIGINAL_REQUEST(self, method, url, *args, **kwargs)
    path = normalize_path(requests.utils.urlparse(url).path or "/")
    with _CALLS_LOCK:
        _CALLS[(method.upper(), path, response.status_code)] += 1
        if response.status_code >= 500:
            _SERVER_ERRORS.append(f"{method.upper()} {url} -> {response.status_code}")
    return response


_ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})')


def _write_endpoints(server: Server, out: Path) -> None:
    lines = ["# client side: METHOD PATH STATUS COUNT"]
    for (method, path, status), count in sorted(_CALLS.items()):
        lines.append(f"{method} {path} {status} {count}")
    if server.kind == "mlflow":
        seen: collections.Counter[tuple[str, str, int]] = collections.Counter()
        for line in _log_tail(server.log_path, limit=1 << 30).splitlines():
            match = _ACCESS_LINE.search(line)
            if match:
                key = (match["method"], normalize_path(match["path"]), int(match["status"]))
                seen[key] += 1
        lines.append("# server access log: METHOD PATH STATUS COUNT")
        for (method, path, status), count in sorted(seen.items()):
            lines.append(f"{method} {path} {status} {count}")
    out.write_text("\n".join(lines) + "\n")


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster | None]:
    """With CONFORMANCE_STORE=postgres, the session's PostgreSQL cluster."""
    if not ON_POSTGRES or os.environ.get("CONFORMANCE_URL"):
        yield None
        return
    pg_bin = postgres_bin()
    if pg_bin is None:
        pytest.exit("CONFORMANCE_STORE=postgres needs PostgreSQL installed", 2)
    pg = PgCluster(pg_bin)
    pg.start()
    try:
        yield pg
    finally:
        pg.remove()


StoreRef = Path | str


@pytest.fixture
def fresh_store(pg_cluster: PgCluster | None, tmp_path: Path) -> StoreRef:
    """An empty store for a server a test starts itself: a new database of the
    session's cluster with CONFORMANCE_STORE=postgres, else a folder."""
    if pg_cluster is None:
        return tmp_path / ".labbook"
    return pg_cluster.create_database(f"t{uuid.uuid4().hex[:16]}")


def store_args(store: StoreRef) -> list[str]:
    """The labbook options that name `store`."""
    return ["--store", store] if isinstance(store, str) else ["--dir", str(store)]


def store_env(store: StoreRef) -> dict[str, str]:
    """What a server started by `LabbookServers.start` needs to serve `store`
    (a folder is the default); with a database, its artifact contents go to
    a folder beside it."""
    return {"LABBOOK_STORE": store} if isinstance(store, str) else {}


def store_serve_args(store: StoreRef, tmp: Path) -> tuple[str, ...]:
    return ("--artifacts", f"file://{tmp / 'artifacts'}") if isinstance(store, str) else ()


@pytest.fixture(scope="session")
def server(
    tmp_path_factory: pytest.TempPathFactory, pg_cluster: PgCluster | None
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"conformance-{SERVER_KIND}")
    requests.Session.request = _recording_request  # type: ignore[method-assign]
    s3: S3Server | None = None
    pg = pg_cluster
    # What the session's server and the labbook commands the tests run need.
    shared_env: dict[str, str] = {}
    if os.environ.get("CONFORMANCE_URL"):
        srv = _attach(tmp)
    elif IS_LABBOOK:
        args: tuple[str, ...] = ()
        if os.environ.get("CONFORMANCE_ARTIFACTS") == "s3":
            binary = s3s_binary()
            if binary is None:
                pytest.exit(
                    "CONFORMANCE_ARTIFACTS=s3 needs s3s-fs: `make .tools/bin/s3s-fs` or set S3S_FS",
                    2,
                )
            s3 = S3Server(binary, tmp / "s3", tmp / "s3.log")
            s3.start()
            s3.make_bucket("conformance")
            shared_env.update(s3.env())
            args = ("--artifacts", "s3://conformance/artifacts")
        if pg is not None and not args:
            args = ("--artifacts", f"file://{tmp / 'artifacts'}")
        server_env = dict(shared_env)
        if pg is not None:
            server_env["LABBOOK_STORE"] = pg.create_database("conformance")
        srv = _start_labbook(tmp, env=server_env, args=args)
    else:
        srv = _start_mlflow(tmp)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", srv.url)
        # A 5xx must fail the test at once, not after minutes of client retries.
        mp.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        mp.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
        mp.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
        mp.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
        # The labbook commands the tests run on the store reach its bucket too.
        for key, value in shared_env.items():
            mp.setenv(key, value)
        mlflow.set_tracking_uri(srv.url)
        mlflow.set_registry_uri(srv.url)
        try:
            yield srv
        finally:
            while mlflow.active_run() is not None:
                mlflow.end_run()
            _stop(srv.process)
            if s3 is not None:
                s3.stop()
            requests.Session.request = _ORIGINAL_REQUEST  # type: ignore[method-assign]
            out = os.environ.get("CONFORMANCE_ENDPOINTS_OUT")
            if out:
                _write_endpoints(srv, Path(out))
            keep = os.environ.get("CONFORMANCE_KEEP_LOG")
            if keep and srv.log_path.exists():
                shutil.copyfile(srv.log_path, keep)


@pytest.fixture(autouse=True)
def _tracking(server: Server) -> Iterator[None]:
    """Every test talks to the server under test and leaves no active run behind."""
    mlflow.set_tracking_uri(server.url)
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture(autouse=True)
def _no_server_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """No request of any test may get a 5xx from labbook: bad input is a 4xx, and a store
    error is a bug. (MLflow has known 500s on bad input; the tests that hit them say so.)
    A test that takes away what the server depends on marks itself `outage`: its 503s
    are what it checks."""
    before = len(_SERVER_ERRORS)
    yield
    new = _SERVER_ERRORS[before:]
    if request.node.get_closest_marker("outage"):
        new = [e for e in new if not e.endswith("-> 503")]
    if new and not IS_MLFLOW:
        pytest.fail("server errors:\n" + "\n".join(new))


@pytest.fixture(scope="session")
def base_url(server: Server) -> str:
    return server.url


@pytest.fixture(scope="session")
def http(server: Server) -> Iterator[requests.Session]:
    """A plain session for raw-HTTP tests (no retries)."""
    with requests.Session() as session:
        yield session


@pytest.fixture
def client() -> mlflow.MlflowClient:
    return mlflow.MlflowClient()


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Experiment:
    id: str
    name: str


@pytest.fixture
def experiment(request: pytest.FixtureRequest) -> Experiment:
    """A fresh experiment of its own, made the active one."""
    test_name = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)[:60]
    name = unique_name(f"conf-{test_name}")
    exp = mlflow.set_experiment(name)
    return Experiment(exp.experiment_id, name)
