from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

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
