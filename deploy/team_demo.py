"""`make team-demo`: a team server on this machine, to try before deploying
one. A throwaway PostgreSQL cluster, an S3-protocol server (s3s-fs), two
`labbook serve` replicas on them and a round-robin proxy in front, with one
admin account. Ctrl-C (or SIGTERM) stops everything and removes its files.

    python3 deploy/team_demo.py [--port 5000] [--replicas 2] [--no-auth]

Needs PostgreSQL's server programs (`apt-get install postgresql`), the
labbook binary (`make build`) and s3s-fs (`make .tools/bin/s3s-fs`).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "deploy"))

from lb_proxy import ProxyThread  # noqa: E402
from pg_server import PgCluster, postgres_bin  # noqa: E402
from s3_server import S3Server, s3s_binary  # noqa: E402

BUCKET = "labbook"
ACCOUNT = "demo"


def fail(message: str, hint: str) -> None:
    sys.exit(f"team-demo: {message}\n  hint: {hint}")


def labbook_binary() -> Path:
    named = os.environ.get("LABBOOK_BIN")
    for candidate in (named, REPO / "target" / "release" / "labbook", shutil.which("labbook")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    fail("no labbook binary found", "run `make build` (or set LABBOOK_BIN)")
    raise AssertionError("unreachable")


class Replica:
    def __init__(
        self, binary: Path, store: str, env: dict[str, str], log: Path, auth: bool
    ) -> None:
        args = [str(binary), "serve", "--host", "127.0.0.1", "--port", "0"]
        args += ["--artifacts", f"s3://{BUCKET}/demo"]
        args += ["--auth"] if auth else []
        self.log = log
        self.process = subprocess.Popen(
            args,
            env={**env, "LABBOOK_STORE": store},
            stdout=subprocess.PIPE,
            stderr=open(log, "ab"),
            text=True,
            start_new_session=True,
        )
        banner: list[str] = []
        got_banner = threading.Event()

        def read_output() -> None:
            # The first line says where it listens; the rest goes to its log,
            # so a full pipe never blocks it.
            assert self.process.stdout is not None
            with open(log, "a") as sink:
                for line in self.process.stdout:
                    if not banner:
                        banner.append(line)
                        got_banner.set()
                    sink.write(line)
            got_banner.set()

        threading.Thread(target=read_output, daemon=True).start()
        got_banner.wait(60)
        if not banner or " at " not in banner[0]:
            self.stop()
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"a replica did not start: {tail}")
        self.url = banner[0].rsplit(" at ", 1)[1].strip()
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=5000, help="the proxy's port (0: any free one)")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--no-auth", action="store_true", help="serve without accounts")
    args = parser.parse_args()
    if not 1 <= args.replicas <= 16:
        fail(f"--replicas {args.replicas} is out of range", "give 1 to 16")

    binary = labbook_binary()
    pg_bin = postgres_bin()
    if pg_bin is None:
        fail("PostgreSQL's initdb was not found", "apt-get install postgresql")
    s3s = s3s_binary()
    if s3s is None:
        fail("s3s-fs was not found", "make .tools/bin/s3s-fs (or set S3S_FS)")
    assert pg_bin is not None and s3s is not None

    root = Path(tempfile.mkdtemp(prefix="labbook-team-demo-"))
    os.chmod(root, 0o755)
    cluster = PgCluster(pg_bin)
    s3 = S3Server(s3s, root / "s3", root / "s3s-fs.log")
    replicas: list[Replica] = []
    proxy: ProxyThread | None = None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        print("team-demo: starting PostgreSQL, s3s-fs and the replicas…", flush=True)
        cluster.start()
        store = cluster.create_database("labbook")
        s3.start()
        s3.make_bucket(BUCKET)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
        env.update(s3.env())
        password = secrets.token_urlsafe(12)
        if not args.no_auth:
            subprocess.run(
                [
                    str(binary),
                    "--store",
                    store,
                    "user",
                    "add",
                    ACCOUNT,
                    "--admin",
                    "--password-stdin",
                ],
                input=password + "\n",
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
        for i in range(args.replicas):
            replicas.append(
                Replica(binary, store, env, root / f"replica-{i}.log", not args.no_auth)
            )
        proxy = ProxyThread([("127.0.0.1", r.port) for r in replicas], ("127.0.0.1", args.port))

        width = 12
        print(f"\nlabbook team demo, everything under {root}")
        print(f"  {'open':<{width}}{proxy.url}   (the dashboard and MLflow's tracking API)")
        if not args.no_auth:
            print(f"  {'sign in':<{width}}{ACCOUNT} / {password}   (an admin)")
        print(f"  {'replicas':<{width}}{'  '.join(r.url for r in replicas)}")
        print(f"  {'database':<{width}}{store}")
        print(f"  {'artifacts':<{width}}s3://{BUCKET}/demo on s3s-fs at {s3.endpoint}")
        credentials = (
            ""
            if args.no_auth
            else f" MLFLOW_TRACKING_USERNAME={ACCOUNT} MLFLOW_TRACKING_PASSWORD={password}"
        )
        print(f"\n  try: MLFLOW_TRACKING_URI={proxy.url}{credentials} python train.py")
        print(
            f"       LABBOOK_STORE={store} {binary.name} user add ada   # accounts live in the database"
        )
        print("\nCtrl-C stops everything and removes its files.", flush=True)
        while not stop.wait(1):
            dead = [r for r in replicas if r.process.poll() is not None]
            for replica in dead:
                print(
                    f"team-demo: the replica at {replica.url} exited; see {replica.log}", flush=True
                )
                replicas.remove(replica)
            if not replicas:
                break
    except (RuntimeError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", None) or str(error)
        print(f"team-demo: {detail.strip()}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        print("team-demo: stopping…", flush=True)
        if proxy is not None:
            proxy.stop()
        for replica in replicas:
            replica.stop()
        s3.stop()
        cluster.remove()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
