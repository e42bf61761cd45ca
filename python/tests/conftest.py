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


def api_get(url: str, path: str, **params: Any) -> tuple[int, Any]:
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


class LabbookServer:
    """`labbook ui` or `labbook serve` on a port the OS picks, as a test's
    own process group; ``stop()`` (always called by the fixtures that make
    one) ends it whatever happened."""

    def __init__(
        self,
        store: Path,
        command: str = "serve",
        port: int = 0,
        host: str = "127.0.0.1",
        args: tuple[str, ...] = (),
    ) -> None:
        self.store = store
        self.proc = subprocess.Popen(
            [
                labbook_bin(),
                "--dir",
                str(store),
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


@pytest.fixture
def served(tmp_path: Path) -> Iterator[LabbookServer]:
    """A `labbook serve` on its own store under the test's folder."""
    server = LabbookServer(tmp_path / "server" / ".labbook")
    try:
        yield server
    finally:
        server.stop()
