"""Issue 12: what the code snapshot costs a run, and what `labbook replay`
adds before the replayed command starts.

A git repository of 2,000 committed source files (~2 KB each), 20 of them
changed and 20 untracked files beside them: the shape of a research
repository mid-experiment. Each figure is the median over fresh processes.

- `init()` returning, with the snapshot on and off (LABBOOK_SNAPSHOT=0): the
  snapshot is hashed and stored on the capture thread, so init must not
  wait for it.
- The background work itself: `init()` then `finish()` at once (finish waits
  for the capture thread), on minus off. Each run edits one untracked file,
  so each stores one new file's bytes.
- `labbook replay RUN` of a run of that repository, from the command's
  start to the replayed program's first statement (it writes the time),
  and the replay's own figure (printed before it starts the program); and
  `--dry-run`, the plan without writing the 2,020 files.

Prints one JSON object per figure (median, min, max).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FILES = 2000
UNTRACKED = 20
CHANGED = 20
REPEAT = 11


def emit(figure: str, unit: str, samples: list[float], note: str = "") -> None:
    print(
        json.dumps(
            {
                "figure": figure,
                "tool": "labbook",
                "unit": unit,
                "median": statistics.median(samples),
                "min": min(samples),
                "max": max(samples),
                "note": note,
            }
        ),
        flush=True,
    )


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=b@example.com", "-c", "user.name=b", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def labbook_bin() -> str:
    return os.environ.get("LABBOOK_BIN") or str(REPO / "target/release/labbook")


def make_repo(root: Path) -> None:
    body = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n\n" for i in range(45))
    for i in range(FILES):
        d = root / f"pkg{i // 100}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"mod{i}.py").write_text(f"# module {i}\n{body}")
    (root / "stamp.py").write_text(
        "import sys, time\n"
        "open(sys.argv[1], 'w').write(str(time.time_ns()))\n"
        "import labbook\n"
        "run = labbook.init(config={'seed': 0})\n"
        "run.log({'loss': 1.0})\n"
        "run.finish()\n"
    )
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-qm", "code")
    for i in range(CHANGED):
        p = root / f"pkg{i}" / f"mod{i * 100}.py"
        p.write_text(p.read_text() + "# tuned\n")
    for i in range(UNTRACKED):
        (root / f"scratch{i}.py").write_text(f"# experiment helper {i}\n{body}")


INIT = """
import json, sys, time
import labbook
t0 = time.perf_counter()
run = labbook.init(project="bench", system_metrics=False)
t1 = time.perf_counter()
run.finish()
t2 = time.perf_counter()
print(json.dumps({"init": (t1 - t0) * 1e3, "finish": (t2 - t1) * 1e3}))
"""


def init_samples(root: Path, snapshot: bool) -> tuple[list[float], list[float]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    env["LABBOOK_DIR"] = str(root / ".labbook")
    env["LABBOOK_SNAPSHOT"] = "1" if snapshot else "0"
    inits, finishes = [], []
    for i in range(REPEAT + 1):
        # An edit between runs, as a researcher makes: one new file's bytes.
        (root / "scratch0.py").write_text(f"# edit {i} {time.time_ns()}\n")
        out = subprocess.run(
            [sys.executable, "-c", INIT],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout)
        if i:  # the first one creates the store
            inits.append(row["init"])
            finishes.append(row["finish"])
    return inits, finishes


def replay_samples(root: Path) -> tuple[list[float], list[float], list[float]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    env["LABBOOK_DIR"] = str(root / ".labbook")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    stamp = root.parent / "stamp"
    subprocess.run(
        [labbook_bin(), "run", "--", "python", "stamp.py", str(stamp)],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
    )
    runs = json.loads(
        subprocess.run(
            [labbook_bin(), "ls", "-A", "--json"],
            cwd=root,
            env=env,
            check=True,
            capture_output=True,
        ).stdout
    )
    original = next(r["id"] for r in runs if "replay" not in r["tags"] and r["project"] != "bench")
    dry = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        subprocess.run(
            [labbook_bin(), "replay", original, "--dry-run"],
            cwd=root,
            env=env,
            check=True,
            capture_output=True,
        )
        dry.append((time.perf_counter() - t0) * 1e3)
    outer, inner = [], []
    # The rebuilt folders are removed after the loop: on a disk mounted with
    # `discard`, deleting 2,000 files slows the next writes for a while.
    for i in range(REPEAT):
        into = root.parent / f"replay{i}"
        t0 = time.time_ns()
        done = subprocess.run(
            [labbook_bin(), "replay", original, "--into", str(into)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"labbook replay failed: {done.stderr}")
        outer.append((int(stamp.read_text()) - t0) / 1e6)
        m = re.search(r"replay starts (\d+) ms after", done.stderr)
        if m:
            inner.append(float(m.group(1)))
    for i in range(REPEAT):
        shutil.rmtree(root.parent / f"replay{i}")
    return dry, outer, inner


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="labbook-replay-bench-") as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        make_repo(root)
        shape = f"{FILES} files, {CHANGED} changed, {UNTRACKED} untracked"
        on_init, on_finish = init_samples(root, snapshot=True)
        off_init, off_finish = init_samples(root, snapshot=False)
        emit("snapshot_init", "ms", on_init, f"init() with the snapshot; {shape}")
        emit("snapshot_init_off", "ms", off_init, "init() with LABBOOK_SNAPSHOT=0")
        emit(
            "snapshot_background",
            "ms",
            [max(0.0, a - b) for a, b in zip(sorted(on_finish), sorted(off_finish), strict=True)],
            "the snapshot's work on the capture thread (finish() at once, on minus off)",
        )
        dry, outer, inner = replay_samples(root)
        emit(
            "replay_plan",
            "ms",
            dry,
            "labbook replay --dry-run: the plan (code source, data checks, drift, command)",
        )
        emit(
            "replay_overhead",
            "ms",
            outer,
            "labbook replay → the program's first statement (rebuild of 2,020 files, checks, Python start)",
        )
        if inner:
            emit("replay_overhead_inner", "ms", inner, "labbook replay → the program spawned")


if __name__ == "__main__":
    main()
