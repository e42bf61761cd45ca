"""Artifacts through the server into one S3-protocol server, side by side:
`labbook serve --artifacts s3://bench/labbook` and `mlflow server
--artifacts-destination s3://bench/mlflow` (proxied artifacts, boto3), both
against the same s3s-fs process, driven by the same `MlflowClient` code.

Workloads, each on a fresh run, repeated (median, min, max):
- one large file up (`log_artifact`) and down (`download_artifacts`);
- a folder of many small files up (`log_artifacts`) and down.
Every download is compared byte for byte with what was sent.

    .venv-mlflow/bin/python bench/s3_artifacts_bench.py [--big-mb 256] [--files 500] [--reps 3]

Needs boto3 in the interpreter (mlflow server's S3 client; bench/s3-requirements.txt)
and s3s-fs (`make .tools/bin/s3s-fs`). The markdown goes to --markdown or stdout.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import mlflow  # noqa: E402
from mlflow_server import Server, free_port, health_status, log_tail, stop_server  # noqa: E402
from s3_server import S3Server, s3s_binary  # noqa: E402


def log(message: str) -> None:
    print(f"[s3-bench] {message}", file=sys.stderr, flush=True)


def start(name: str, cmd: list[str], env: dict[str, str], tmp: Path, port: int) -> Server:
    log_path = tmp / "server.log"
    with open(log_path, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(name, proc, tmp, port, log_path, 0.0)
    while time.perf_counter() - t0 < 180:
        if health_status(port, timeout=1.0) == 200:
            server.startup_s = time.perf_counter() - t0
            return server
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    tail = log_tail(log_path)
    stop_server(server)
    raise RuntimeError(f"{name} did not start:\n{tail}")


def same_tree(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)


def timed(call: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def measure(url: str, big: Path, small: Path, reps: int, scratch: Path) -> dict[str, list[float]]:
    client = mlflow.MlflowClient(tracking_uri=url)
    experiment = client.create_experiment(f"s3-bench-{time.time_ns()}")
    out: dict[str, list[float]] = {"big up": [], "big down": [], "small up": [], "small down": []}
    for rep in range(reps):
        run = client.create_run(experiment).info.run_id
        big_dest, small_dest = scratch / f"big-{rep}", scratch / f"small-{rep}"
        out["big up"].append(timed(partial(client.log_artifact, run, str(big))))
        out["big down"].append(
            timed(partial(client.download_artifacts, run, big.name, str(big_dest)))
        )
        if (big_dest / big.name).read_bytes() != big.read_bytes():
            raise AssertionError(f"{url}: the large file came back different")
        out["small up"].append(timed(partial(client.log_artifacts, run, str(small), "small")))
        out["small down"].append(
            timed(partial(client.download_artifacts, run, "small", str(small_dest)))
        )
        if not same_tree(small, small_dest / "small"):
            raise AssertionError(f"{url}: the small files came back different")
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
    return out


def cell(samples: list[float]) -> str:
    return f"{statistics.median(samples):.2f} s ({min(samples):.2f}–{max(samples):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--big-mb", type=int, default=256)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--file-kb", type=int, default=4)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--labbook-bin",
        type=Path,
        default=Path(os.environ.get("LABBOOK_BIN", REPO / "target/release/labbook")),
    )
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    binary = s3s_binary()
    if binary is None:
        sys.exit("s3s-fs is not built: make .tools/bin/s3s-fs")
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    work = Path(tempfile.mkdtemp(prefix="s3-bench-"))
    s3 = S3Server(binary, work / "s3", work / "s3.log")
    s3.start()
    s3.make_bucket("bench")
    big = work / "input" / "weights.bin"
    big.parent.mkdir(parents=True)
    big.write_bytes(os.urandom(args.big_mb << 20))
    small = work / "input" / "small"
    for i in range(args.files):
        (small / f"shard-{i // 100:02d}").mkdir(parents=True, exist_ok=True)
        (small / f"shard-{i // 100:02d}" / f"{i:05d}.json").write_bytes(
            os.urandom(args.file_kb << 10)
        )
    env = {**os.environ, **s3.env(), "MLFLOW_S3_ENDPOINT_URL": s3.endpoint}
    results: dict[str, dict[str, list[float]]] = {}
    startup: dict[str, float] = {}
    try:
        for name in ("labbook", "mlflow"):
            tmp = work / name
            tmp.mkdir()
            port = free_port()
            if name == "labbook":
                cmd = [
                    str(args.labbook_bin),
                    "--dir",
                    str(tmp / ".labbook"),
                    "serve",
                    "--port",
                    str(port),
                    "--artifacts",
                    "s3://bench/labbook",
                ]
            else:
                cmd = [
                    str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port),
                    "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
                    "--artifacts-destination", "s3://bench/mlflow",
                ]  # fmt: skip
            log(f"starting {name}")
            server = start(name, cmd, env, tmp, port)
            startup[name] = server.startup_s
            try:
                log(f"measuring {name}")
                results[name] = measure(
                    f"http://127.0.0.1:{port}", big, small, args.reps, work / "scratch"
                )
            finally:
                stop_server(server)
    finally:
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        f"# Artifacts through the server into S3 (s3s-fs), {datetime.date.today()}",
        "",
        f"`bench/s3_artifacts_bench.py --big-mb {args.big_mb} --files {args.files} --file-kb {args.file_kb} --reps {args.reps}`"
        f" on {platform.node()} ({os.cpu_count()} cores), mlflow {mlflow.__version__}; the same `MlflowClient` code,"
        " the same s3s-fs process; median (min–max) of the repetitions, each on a fresh run; every download checked byte for byte.",
        "",
        "| workload | labbook serve --artifacts s3:// | mlflow server --artifacts-destination s3:// | MLflow ÷ labbook |",
        "|---|---:|---:|---:|",
    ]
    names = {
        "big up": f"one {args.big_mb} MiB file up (`log_artifact`)",
        "big down": f"the {args.big_mb} MiB file down (`download_artifacts`)",
        "small up": f"{args.files} files of {args.file_kb} KiB up (`log_artifacts`)",
        "small down": f"the {args.files} files down",
    }
    for key, label in names.items():
        lab, mlf = results["labbook"][key], results["mlflow"][key]
        ratio = statistics.median(mlf) / statistics.median(lab)
        lines.append(f"| {label} | {cell(lab)} | {cell(mlf)} | {ratio:.1f}× |")
    lines += [
        "",
        f"Start to first /health: labbook {startup['labbook']:.2f} s, MLflow {startup['mlflow']:.2f} s.",
    ]
    text = "\n".join(lines) + "\n"
    if args.markdown:
        args.markdown.write_text(text)
        log(f"wrote {args.markdown}")
    print(text)


if __name__ == "__main__":
    main()
