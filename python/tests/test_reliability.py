"""Many processes at once, processes killed without warning, capture in a dirty repo."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_python

import labbook

WORKER = textwrap.dedent("""
    import sys, labbook
    worker, steps = int(sys.argv[1]), int(sys.argv[2])
    run = labbook.init(project="sweep", name=f"worker-{worker}", config={"worker": worker},
                       flush_interval=0.05, system_metrics=False)
    for step in range(steps):
        run.log({"loss": worker + step / steps, "acc": step / steps})
        if step % 500 == 0:
            run.summary["progress"] = step
    run.log_series("bulk", None, [float(worker)] * 10_000)
    run.finish()
    print(run.id)
""")


def test_thirty_two_processes_log_into_one_store_at_once(store: Path) -> None:
    steps = 3_000
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(w), str(steps)],
            cwd=store.parent,
            env={"LABBOOK_DIR": str(store), "PATH": __import__("os").environ["PATH"]},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(32)
    ]
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert "locked" not in err
        ids.append(out.strip())
    api = labbook.Api()
    runs = {r["id"]: r for r in api.runs(project="sweep")}
    assert sorted(runs) == sorted(ids)
    for r in runs.values():
        assert r["status"] == "finished"
        assert r["metrics"]["loss"]["count"] == steps
        assert r["metrics"]["acc"]["count"] == steps
        assert r["metrics"]["bulk"]["count"] == 10_000
        assert r["summary"]["progress"] == 2_500
        h = api.history(r["id"], "loss")
        assert list(h["step"]) == list(range(steps))
        worker = r["config"]["worker"]
        assert h["value"][-1] == worker + (steps - 1) / steps


KILLED = textwrap.dedent("""
    import sys, time, labbook
    run = labbook.init(project="crash", system_metrics=False)
    print(run.id, flush=True)
    step = 0
    while True:
        run.log({"loss": 1.0 / (step + 1), "step_copy": float(step)})
        if step % 200 == 0:
            print(step, flush=True)
        step += 1
        time.sleep(0.0005)
""")


def test_sigkill_mid_run_leaves_a_crashed_run_with_every_flushed_point(store: Path) -> None:
    p = run_python(KILLED, store.parent, {"LABBOOK_DIR": str(store)})
    assert p.stdout is not None
    run_id = p.stdout.readline().strip()
    accepted = -1
    while accepted < 2_000:
        accepted = int(p.stdout.readline())
    # Every point logged up to `accepted` was handed to log() at least this
    # long before the kill: more than the 0.5 s flush interval plus a write.
    time.sleep(1.5)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)

    db = store / "labbook.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    api = labbook.Api()
    r = api.run(run_id)
    assert r["status"] == "crashed", "a dead pid on this host means crashed"
    assert r["ended_ms"] is not None
    steps = list(api.history(run_id, "step_copy")["step"])
    assert steps == list(range(len(steps))), "no gaps"
    assert len(steps) > accepted, f"{len(steps)} stored, {accepted} accepted ≥1.5 s before the kill"
    values = list(api.history(run_id, "step_copy")["value"])
    assert values == [float(s) for s in steps]
    # The store takes new runs afterwards.
    again = labbook.init(project="crash")
    again.log({"x": 1.0})
    again.finish()
    assert api.run(again.id)["status"] == "finished"


def git(repo: Path, *args: str) -> str:
    env = {
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "PATH": __import__("os").environ["PATH"],
    }
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout


def test_capture_inside_a_dirty_git_repository(tmp_path: Path) -> None:
    repo = tmp_path / "proj"
    repo.mkdir()
    git(repo, "-c", "init.defaultBranch=main", "init", "-q")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "T")
    (repo / "train.py").write_text("lr = 0.1\n")
    (repo / ".gitignore").write_text("ignored.txt\n.labbook/\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "first")
    git(repo, "remote", "add", "origin", "https://user:s3cret@example.com/lab/proj.git")
    (repo / "train.py").write_text("lr = 0.01  # try lower\n")
    (repo / "notes.md").write_text("untracked\n")
    (repo / "ignored.txt").write_text("x\n")
    head = git(repo, "rev-parse", "HEAD").strip()

    code = (
        "import labbook; r = labbook.init(project='p', config={'seed': 3}); r.finish(); print(r.id)"
    )
    p = run_python(code, repo)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    env = labbook.Api(dir=str(repo)).run(out.strip())["environment"]
    g = env["git"]
    assert g["commit"] == head and g["branch"] == "main" and g["dirty"] is True
    assert "+lr = 0.01  # try lower" in g["diff"]
    assert g["untracked"] == ["notes.md"]
    assert g["remote_url"] == "https://example.com/lab/proj.git", "credentials never stored"
    assert env["command"] == ["-c"]
    assert env["cwd"] == str(repo)
    assert env["seed"]["value"] == 3
    assert env["capture_micros"] < 2_000_000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB filesystem of the test's own, unmounted afterwards."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount_point)],
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


def test_a_full_disk_is_a_clear_error_and_loses_nothing(small_disk: Path) -> None:
    store = small_disk / ".labbook"
    earlier = labbook.init(project="disk", dir=str(store), system_metrics=False)
    for step in range(1_000):
        earlier.log({"loss": 1.0 / (step + 1)})
    earlier.finish()
    before = labbook.Api(dir=str(store)).history(earlier.id, "loss")

    run = labbook.init(project="disk", dir=str(store), system_metrics=False)
    run.log({"loss": 0.5})
    run.flush()
    # Fill what is left but a little, then log more than that little.
    filler = small_disk / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65_536)
                f.flush()
        except OSError:
            pass
    filler.write_bytes(filler.read_bytes()[: -256 * 1024])
    rng = random.Random(0)
    values = [rng.random() for _ in range(400_000)]  # incompressible: ~3 MB stored
    run.log_series("noise", list(range(len(values))), values)
    with pytest.raises(Exception, match="disk is full") as failure:
        run.flush(timeout=5)
    assert "free space and retry" in str(failure.value)

    # Nothing stored before is damaged, and the store still reads.
    with sqlite3.connect(store / "labbook.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    api = labbook.Api(dir=str(store))
    assert api.history(earlier.id, "loss") == before
    assert api.run(earlier.id)["status"] == "finished"

    # With space again, the points held in memory are written, all of them.
    filler.unlink()
    run.flush(timeout=30)
    run.finish()
    noise = api.history(run.id, "noise")
    assert list(noise["value"]) == values
    assert api.run(run.id)["status"] == "finished"
