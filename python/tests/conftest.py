from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

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
