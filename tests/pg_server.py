"""A real PostgreSQL server for tests: a throwaway cluster made with the
machine's own `initdb` and `pg_ctl` (as the `postgres` user when the tests
run as root, since PostgreSQL refuses to run as root), listening on
127.0.0.1 with trust authentication, stopped and removed afterwards.

Where PostgreSQL is not installed a test skips, except under CI, where it
fails: CI installs it (.ci/run).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def postgres_bin() -> Path | None:
    """The folder holding initdb and pg_ctl, or None."""
    try:
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
        if (Path(out) / "initdb").exists():
            return Path(out)
    except (OSError, subprocess.CalledProcessError):
        pass
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PgCluster:
    """One PostgreSQL cluster in a folder of its own under the system's temp
    folder (the `postgres` user must reach it, which it cannot inside
    pytest's private folders); `url(db)` names a database in it."""

    def __init__(self, binary_dir: Path) -> None:
        self.bin = binary_dir
        self.root = Path(tempfile.mkdtemp(prefix="labbook-pg-"))
        self.data = self.root / "data"
        self.socket = self.root / "socket"
        self.log = self.root / "postgres.log"
        self.port = _free_port()

    def _as_postgres(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        if not self.data.exists():
            self.socket.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(self.root, "postgres")
                shutil.chown(self.socket, "postgres")
            made = self._as_postgres(
                "initdb", "-A", "trust", "--no-sync", "-U", "postgres", "-D", str(self.data)
            )
            if made.returncode != 0:
                raise RuntimeError(f"initdb failed: {made.stderr}")
        self.pg_ctl("start")

    def pg_ctl(self, action: str) -> None:
        options = (
            f"-p {self.port} -k {self.socket} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=200"
        )
        done = self._as_postgres(
            "pg_ctl",
            "-w",
            "-m",
            "fast",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.log),
            action,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl {action} failed: {done.stderr}\n{self.log_tail()}")

    def create_database(self, name: str) -> str:
        made = subprocess.run(
            ["psql", self.url(), "-v", "ON_ERROR_STOP=1", "-qc", f"CREATE DATABASE {name}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if made.returncode != 0:
            raise RuntimeError(f"CREATE DATABASE {name}: {made.stderr}")
        return self.url(name)

    def stop(self) -> None:
        """Stops the server (immediately: nothing in it is kept)."""
        if self.data.exists():
            self._as_postgres("pg_ctl", "-w", "-m", "immediate", "-D", str(self.data), "stop")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-limit:]
        except OSError:
            return "(no log)"
