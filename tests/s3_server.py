"""A real S3-protocol server for tests: `s3s-fs` (crates.io, built by `make`
into .tools/bin), serving a folder, one bucket per subfolder.

`S3S_FS` names the binary; without it, .tools/bin/s3s-fs at the repository
root. Where neither exists a test skips, except under CI, where it fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ACCESS_KEY = "labbook-test-key"
SECRET_KEY = "labbook-test-secret-0123456789"


def s3s_binary() -> Path | None:
    named = os.environ.get("S3S_FS")
    path = Path(named) if named else REPO / ".tools" / "bin" / "s3s-fs"
    return path if path.is_file() else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class S3Server:
    """One s3s-fs process over `root`, with access keys; `env()` is what a
    client (labbook serve) needs to reach it."""

    def __init__(self, binary: Path, root: Path, log: Path) -> None:
        self.binary = binary
        self.root = root
        self.log = log
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
        }

    def make_bucket(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    str(self.binary),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--access-key",
                    ACCESS_KEY,
                    "--secret-key",
                    SECRET_KEY,
                    str(self.root),
                ],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"s3s-fs exited with {self.process.returncode}: {self.log.read_text()[-2000:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"s3s-fs did not listen on {self.port} in 20 s")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def objects(self, bucket: str) -> dict[str, bytes]:
        """Every object in the bucket by key, read from s3s-fs's folder
        (its own metadata files left out)."""
        base = self.root / bucket
        out: dict[str, bytes] = {}
        for path in base.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                out[path.relative_to(base).as_posix()] = path.read_bytes()
        return out
