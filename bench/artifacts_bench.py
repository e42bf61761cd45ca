"""W11: logging, re-logging and downloading a 2 GB folder of 10,000 files as
an artifact version, and garbage collection over 100,000 blobs.

`make bench` runs the labbook part (its targets, in report.py); `make
bench-peers` runs it beside W&B offline `log_artifact`, MLflow
`log_artifacts` and `dvc add` (pinned in .venv-peers and .venv-dvc), and
writes bench/results/<date>-w11.md.

Every tool logs the same folder, which is in the page cache for all of them
(it was just written), and each timed log starts after a `sync`, so no tool
pays for another's writes. The disk's own copy speed (`cp -r` then `sync`)
is printed beside: a log that stores a copy cannot beat it by much.

Prints one JSON object per figure (median, min, max over repetitions).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ROWS: list[dict[str, Any]] = []


def emit(
    figure: str, unit: str, samples: list[float], tool: str = "labbook", note: str = ""
) -> dict[str, Any]:
    row = {
        "figure": figure,
        "tool": tool,
        "unit": unit,
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "note": note,
    }
    print(json.dumps(row), flush=True)
    ROWS.append(row)
    return row


def log(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


def sync() -> None:
    os.sync()


def du(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.lstat(p).st_blocks * 512
    return total


def make_folder(root: Path, files: int, size: int, seed: int = 0) -> Path:
    """`files` files of `size` random bytes in 100 subfolders."""
    root.mkdir(parents=True)
    chunk = os.urandom(size)
    for i in range(files):
        sub = root / f"part{i % 100:03}"
        sub.mkdir(exist_ok=True)
        # Each file distinct (its number in front), without paying for
        # 2 GB of fresh randomness.
        (sub / f"shard{i:06}.bin").write_bytes(i.to_bytes(8, "little") + chunk[8:])
    return root


def disk_copy(data: Path, scratch: Path, total: int, reps: int) -> None:
    samples = []
    for r in range(reps):
        target = scratch / f"copy{r}"
        sync()
        t = time.perf_counter()
        subprocess.run(["cp", "-r", str(data), str(target)], check=True)
        sync()
        samples.append(total / (time.perf_counter() - t) / 1e9)
        shutil.rmtree(target)
        sync()
    emit(
        "w11_disk_copy",
        "GB/s",
        samples,
        tool="cp -r + sync",
        note="the disk's own copy speed: the limit",
    )


def labbook_part(data: Path, scratch: Path, total: int, reps: int, gc_blobs: int) -> None:
    import labbook

    new, relog, relog_bytes, download, hashed = [], [], [], [], []
    for r in range(reps):
        # Hashing alone (the folder recorded where it is, nothing copied),
        # with a new store's empty hash cache: what the log's reads cost.
        store = scratch / f"hash{r}" / ".labbook"
        run = labbook.init(project="w11", dir=str(store), system_metrics=False)
        t = time.perf_counter()
        run.use_dataset(str(data), name="big")
        hashed.append(total / (time.perf_counter() - t) / 1e9)
        run.finish()
        shutil.rmtree(store.parent)
    for r in range(reps):
        store = scratch / f"lb{r}" / ".labbook"
        run = labbook.init(project="w11", dir=str(store), system_metrics=False)
        sync()
        t = time.perf_counter()
        art = labbook.Artifact("big", type="dataset")
        art.add_dir(str(data))
        v = run.log_artifact(art)
        new.append(total / (time.perf_counter() - t) / 1e9)
        assert v.version == "v0"
        # The hash cache trusts only files older than its racy window (1 s).
        time.sleep(1.1)
        for _ in range(5):
            before = du(store / "artifacts")
            t = time.perf_counter()
            art = labbook.Artifact("big", type="dataset")
            art.add_dir(str(data))
            again = run.log_artifact(art)
            relog.append((time.perf_counter() - t) * 1e3)
            relog_bytes.append(float(du(store / "artifacts") - before))
            assert again.version == "v0"
        for d in range(3):
            dest = scratch / f"dl{r}-{d}"
            t = time.perf_counter()
            v.download(str(dest))
            download.append((time.perf_counter() - t) * 1e3)
        run.finish()
        shutil.rmtree(store.parent)
        for d in range(3):
            shutil.rmtree(scratch / f"dl{r}-{d}")
        sync()
    emit(
        "artifact_log_new",
        "GB/s",
        new,
        note="log_artifact of a new 2 GB folder of 10,000 files: hashed, stored, synced",
    )
    emit(
        "artifact_hash_new",
        "GB/s",
        hashed,
        note="use_dataset of that folder: hashed on every core, nothing copied",
    )
    emit("artifact_relog", "ms", relog, note="the same unchanged folder logged again")
    emit(
        "artifact_relog_bytes",
        "B",
        relog_bytes,
        note="bytes of contents the store grew by on that re-log",
    )
    emit(
        "artifact_download",
        "ms",
        download,
        note="use_artifact(...).download() of that folder into a new folder",
    )
    gc_part(scratch, gc_blobs)


def gc_part(scratch: Path, blobs: int) -> None:
    """A store holding `blobs` blobs, half of them only in a deleted
    version; `labbook gc` then frees that half."""
    import labbook

    store = scratch / "gc" / ".labbook"
    data = scratch / "gc-data"
    data.mkdir()
    half = blobs // 2
    for i in range(blobs):
        sub = data / f"d{i % 256:03}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i:07}").write_bytes(i.to_bytes(8, "little") * 4)
    # The run's code snapshot (this checkout's changed files) would add
    # blobs of its own to the count.
    os.environ["LABBOOK_SNAPSHOT"] = "0"
    run = labbook.init(project="w11", dir=str(store), system_metrics=False)
    del os.environ["LABBOOK_SNAPSHOT"]
    run.log_artifact(str(data), name="doomed")
    for i in range(half):
        (data / f"d{i % 256:03}" / f"f{i:07}").unlink()
    run.log_artifact(str(data), name="kept")
    run.finish()
    binary = os.environ.get("LABBOOK_BIN") or str(REPO / "target/release/labbook")
    env = {**os.environ, "LABBOOK_DIR": str(store)}
    subprocess.run(
        [binary, "artifact", "rm", "doomed:v0"], env=env, check=True, capture_output=True
    )
    sync()
    t = time.perf_counter()
    done = subprocess.run(
        [binary, "gc", "--json"], env=env, check=True, capture_output=True, text=True
    )
    seconds = time.perf_counter() - t
    report = json.loads(done.stdout)
    assert report["blobs_scanned"] == blobs, report["blobs_scanned"]
    assert len(report["blobs"]) == half, len(report["blobs"])
    emit("gc_100k", "s", [seconds], note=f"`labbook gc` over {blobs:,} blobs, freeing {half:,}")
    shutil.rmtree(store.parent)
    shutil.rmtree(data)


WANDB = """
import os, sys, time, json
import wandb
data, root, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
new, again = [], []
for r in range(reps):
    d = os.path.join(root, f"wandb{r}")
    os.makedirs(d)
    os.sync()
    for i in range(2):
        run = wandb.init(mode="offline", dir=d, project="w11", settings=wandb.Settings(silent=True))
        t = time.perf_counter()
        art = wandb.Artifact("big", type="dataset")
        art.add_dir(data)
        run.log_artifact(art)
        run.finish()
        (new if i == 0 else again).append(time.perf_counter() - t)
print(json.dumps({"new": new, "again": again}))
"""

MLFLOW = """
import os, sys, time, json, shutil
import mlflow
data, root, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
new, again, download = [], [], []
for r in range(reps):
    d = os.path.join(root, f"mlflow{r}")
    os.makedirs(d)
    mlflow.set_tracking_uri("sqlite:///" + os.path.join(d, "mlflow.db"))
    exp = mlflow.create_experiment("w11", artifact_location=os.path.join(d, "artifacts"))
    os.sync()
    for i in range(2):
        with mlflow.start_run(experiment_id=exp) as run:
            t = time.perf_counter()
            mlflow.log_artifacts(data, "big")
            (new if i == 0 else again).append(time.perf_counter() - t)
    t = time.perf_counter()
    mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="big", dst_path=os.path.join(d, "dl"))
    download.append(time.perf_counter() - t)
print(json.dumps({"new": new, "again": again, "download": download}))
"""


def peer(python: str, code: str, data: Path, scratch: Path, reps: int) -> dict[str, list[float]]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LABBOOK_", "MLFLOW_", "WANDB_"))
    }
    env.update({"WANDB_SILENT": "true", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"})
    done = subprocess.run(
        [python, "-c", code, str(data), str(scratch), str(reps)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_dvc(dvc: str, repo: Path, *args: str) -> None:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run([dvc, *args], cwd=repo, env=env, check=True, capture_output=True)


def dvc_part(dvc: str, data: Path, scratch: Path, reps: int, total: int) -> None:
    new, again, checkout = [], [], []
    for r in range(reps):
        repo = scratch / f"dvc{r}"
        repo.mkdir()
        run_dvc(dvc, repo, "init", "--no-scm", "-q")
        subprocess.run(["cp", "-r", str(data), str(repo / "data")], check=True)
        sync()
        t = time.perf_counter()
        run_dvc(dvc, repo, "add", "-q", "data")
        new.append(total / (time.perf_counter() - t) / 1e9)
        t = time.perf_counter()
        run_dvc(dvc, repo, "add", "-q", "data")
        again.append((time.perf_counter() - t) * 1e3)
        shutil.rmtree(repo / "data")
        t = time.perf_counter()
        run_dvc(dvc, repo, "checkout", "-q", "data")
        checkout.append((time.perf_counter() - t) * 1e3)
        shutil.rmtree(repo)
        sync()
    emit(
        "artifact_log_new",
        "GB/s",
        new,
        tool="dvc add",
        note="md5, moved into .dvc/cache, copied back",
    )
    emit(
        "artifact_relog", "ms", again, tool="dvc add", note="its state database spares the hashing"
    )
    emit(
        "artifact_download",
        "ms",
        checkout,
        tool="dvc add",
        note="`dvc checkout` of the removed folder",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers-python", help="the Python of .venv-peers (wandb, mlflow)")
    parser.add_argument("--dvc", help="the dvc of .venv-dvc")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--file-size", type=int, default=200 * 1024)
    parser.add_argument("--gc-blobs", type=int, default=100_000)
    parser.add_argument("--markdown", help="write the table here (bench-peers)")
    args = parser.parse_args()
    os.environ.pop("LABBOOK_RUN_ID", None)

    # The scratch space sits where the store would: the current directory.
    with tempfile.TemporaryDirectory(dir=os.getcwd(), prefix="w11-") as tmp:
        scratch = Path(tmp)
        total = args.files * args.file_size
        log(f"writing {args.files:,} files of {args.file_size // 1024} KiB")
        data = make_folder(scratch / "data", args.files, args.file_size)
        sync()
        disk_copy(data, scratch, total, args.reps)
        labbook_part(data, scratch, total, args.reps, args.gc_blobs)
        if args.peers_python:
            log("W&B offline")
            w = peer(args.peers_python, WANDB, data, scratch, max(1, args.reps - 1))
            (
                emit(
                    "artifact_log_new",
                    "GB/s",
                    [total / s / 1e9 for s in w["new"]],
                    tool="wandb offline",
                    note="Artifact.add_dir + log_artifact + finish",
                )
            )
            (
                emit(
                    "artifact_relog",
                    "ms",
                    [s * 1e3 for s in w["again"]],
                    tool="wandb offline",
                    note="the same folder in a second run",
                )
            )
            log("MLflow")
            m = peer(args.peers_python, MLFLOW, data, scratch, max(1, args.reps - 1))
            (
                emit(
                    "artifact_log_new",
                    "GB/s",
                    [total / s / 1e9 for s in m["new"]],
                    tool="mlflow",
                    note="log_artifacts to a local artifact root",
                )
            )
            (
                emit(
                    "artifact_relog",
                    "ms",
                    [s * 1e3 for s in m["again"]],
                    tool="mlflow",
                    note="copied again: no dedup",
                )
            )
            (
                emit(
                    "artifact_download",
                    "ms",
                    [s * 1e3 for s in m["download"]],
                    tool="mlflow",
                    note="download_artifacts",
                )
            )
        if args.dvc:
            log("dvc")
            dvc_part(args.dvc, data, scratch, max(1, args.reps - 1), total)
    if args.markdown:
        Path(args.markdown).write_text(markdown(args))
        log(f"{args.markdown} written")


FIGURES = [
    ("artifact_log_new", "log a new 2 GB folder of 10,000 files", "GB/s", "≥ 1 GB/s"),
    ("artifact_hash_new", "hash it only (use_dataset, nothing copied)", "GB/s", "–"),
    ("artifact_relog", "log the same folder again", "ms", "≤ 50 ms"),
    ("artifact_relog_bytes", "bytes stored by that re-log", "B", "0"),
    ("artifact_download", "download that version", "ms", "≤ 500 ms"),
    ("gc_100k", "gc over 100,000 blobs", "s", "≤ 5 s"),
    ("w11_disk_copy", "the disk's copy speed (cp -r + sync)", "GB/s", "the limit"),
]


def shown(value: float, unit: str) -> str:
    """A figure as people read it: 13.3 s rather than 1.33e+04 ms."""
    if unit == "ms" and value >= 1000:
        return f"{value / 1000:.1f} s"
    if unit == "B":
        return f"{value:,.0f} B"
    if unit == "ms":
        return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"
    return f"{value:.3g} {unit}"


def markdown(args: argparse.Namespace) -> str:
    tools = list(dict.fromkeys(r["tool"] for r in ROWS))
    lines = [
        f"# W11: artifacts, {datetime.date.today().isoformat()}",
        "",
        f"`bench/artifacts_bench.py` (`make bench-peers`): {args.files:,} files of "
        f"{args.file_size // 1024} KiB, medians of {args.reps} runs for labbook and "
        f"{max(1, args.reps - 1)} for each peer (min–max in brackets); every log starts "
        "after a `sync`, the folder in the page cache for all. Peers from "
        "bench/peers-requirements.txt and bench/dvc-requirements.txt.",
        "",
        "| figure | target | " + " | ".join(tools) + " |",
        "|---|---|" + "---|" * len(tools),
    ]
    for key, label, unit, target in FIGURES:
        cells = []
        for tool in tools:
            found = [r for r in ROWS if r["figure"] == key and r["tool"] == tool]
            if not found:
                cells.append("–")
                continue
            r = found[0]
            cells.append(
                f"{shown(r['median'], unit)} ({shown(r['min'], unit)}–{shown(r['max'], unit)})"
            )
        lines.append(f"| {label} | {target} | " + " | ".join(cells) + " |")
    lines += ["", "Notes:"] + [
        f"- {r['tool']}, {r['figure']}: {r['note']}" for r in ROWS if r["note"]
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
