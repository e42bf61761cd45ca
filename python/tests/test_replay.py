"""`labbook replay` and `labbook check-replay` through the real CLI: the demo
training script rebuilt from a dirty tree with a new untracked helper after
the checkout moved away, an unseeded variant caught at the step it parts, a
changed dataset named, a what-if `--set`, a run outside git, an
interrupted replay, and the bad inputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, labbook_bin

DEMO = REPO / "examples/spirals/train.py"

HELPER = "def scale(lr):\n    return lr * 1.0\n"

# Loss curves from a seeded generator; from step `--noisy-from` on, noise
# from an unseeded one, so two runs part exactly there.
NOISY = """
import argparse, random
import labbook
from helper import scale

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
p.add_argument("--noisy-from", type=int, default=-1)
p.add_argument("--steps", type=int, default=20)
p.add_argument("--data", default="")
p.add_argument("--sleep", type=float, default=0.0)
a = p.parse_args()
run = labbook.init(config={"seed": a.seed, "noisy_from": a.noisy_from, "extra": 1})
if a.data:
    run.use_dataset(a.data)
rng = random.Random(a.seed)
unseeded = random.SystemRandom()
for step in range(a.steps):
    loss = scale(1.0) / (1 + step) + rng.random() * 0.01
    if 0 <= a.noisy_from <= step:
        loss += unseeded.random() * 0.01
    run.log({"loss": loss, "extra": float(run.config["extra"])})
    if a.sleep:
        time.sleep(a.sleep)
run.finish()
""".replace("import argparse, random", "import argparse, random, time")


def env_for(store: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    env["LABBOOK_DIR"] = str(store)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def lb(
    cwd: Path, store: Path, *args: str, timeout: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [labbook_bin(), *args],
        cwd=cwd,
        env={**env_for(store), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def runs(cwd: Path, store: Path) -> list[dict[str, Any]]:
    done = lb(cwd, store, "ls", "-A", "--limit", "0", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def show(cwd: Path, store: Path, run_id: str) -> dict[str, Any]:
    done = lb(cwd, store, "show", run_id, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def series(run: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (m["count"], m["last"]) for k, m in run["metrics"].items() if not k.startswith("sys/")
    }


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding the demo script and the noisy one, committed."""
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    shutil.copy(DEMO, root / "train.py")
    (root / "noisy.py").write_text(NOISY)
    (root / ".gitignore").write_text("data/\n")
    git(root, "add", ".")
    git(root, "commit", "-qm", "demo")
    return root


def make_dirty(root: Path) -> None:
    """The demo now imports a helper module that exists only untracked."""
    (root / "helper.py").write_text(HELPER)
    text = (root / "train.py").read_text()
    text = text.replace("import labbook\n", "import labbook\nfrom helper import scale\n", 1)
    text = text.replace("param -= args.lr * g", "param -= scale(args.lr) * g")
    assert "scale(args.lr)" in text
    (root / "train.py").write_text(text)


def the_one_replay(cwd: Path, store: Path, original: str) -> dict[str, Any]:
    found = [r for r in runs(cwd, store) if r["kv_tags"].get("labbook.replay_of") == original]
    assert len(found) == 1, found
    return show(cwd, store, found[-1]["id"])


def test_the_demo_replays_bit_exact_from_a_dirty_tree_after_the_checkout_moved(
    repo: Path, tmp_path: Path
) -> None:
    make_dirty(repo)
    store = repo / ".labbook"
    done = lb(
        repo,
        store,
        "run",
        "--why",
        "does the helper change anything?",
        "--",
        "python",
        "train.py",
        "--epochs",
        "40",
    )
    assert done.returncode == 0, done.stderr
    original = runs(repo, store)[0]
    env = show(repo, store, original["id"])["environment"]
    assert env["git"]["changed"] == ["train.py"] and env["git"]["untracked"] == ["helper.py"]
    assert env["code"]["files"] == 2 and env["code"]["version"] == "code:v0"

    # The checkout moves away, and its tree moves on: the helper is gone,
    # the script changed and committed.
    moved = tmp_path / "moved"
    repo.rename(moved)
    store = moved / ".labbook"
    (moved / "helper.py").unlink()
    git(moved, "checkout", "-q", "train.py")
    with (moved / "train.py").open("a") as f:
        f.write("# a later change\n")
    git(moved, "commit", "-qam", "later")
    status_before = git(moved, "status", "--porcelain")
    head_before = git(moved, "rev-parse", "HEAD")

    done = lb(moved, store, "replay", original["id"], "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: reproduced (tolerance rel=1e-6, abs=0" in done.stdout
    for key in ("train/loss", "val/acc"):
        line = next(x for x in done.stdout.splitlines() if x.startswith(key))
        assert " reproduced " in line, line
    assert "2 file(s) from code:v0" in done.stderr
    assert "the run's folder" in done.stderr and "is gone" in done.stderr

    replay = the_one_replay(moved, store, original["id"])
    assert "replay" in replay["tags"]
    assert replay["kv_tags"]["labbook.replay_verdict"] == "reproduced"
    assert replay["notes"].startswith(f"Replays {original['name']} ({original['id']})")
    assert "does the helper change anything?" in replay["notes"]
    assert series(replay) == series(show(moved, store, original["id"]))
    assert replay["environment"]["code"]["version"] == "code:v0", "the same code, recorded"
    replay_dir = Path(replay["environment"]["replay"]["dir"])
    assert (replay_dir / "helper.py").read_text() == HELPER
    assert "scale(args.lr)" in (replay_dir / "train.py").read_text()
    assert "a later change" not in (replay_dir / "train.py").read_text()
    reqs = (replay_dir / "requirements.txt").read_text()
    assert "numpy==" in reqs

    # The user's checkout is as it was.
    assert git(moved, "status", "--porcelain") == status_before
    assert git(moved, "rev-parse", "HEAD") == head_before
    assert not (moved / "helper.py").exists()

    # check-replay afterwards gives the same verdict, and --json the detail.
    done = lb(moved, store, "check-replay", original["id"], replay["id"], "--json")
    assert done.returncode == 0, done.stderr
    check = json.loads(done.stdout)
    assert check["verdict"] == {"state": "reproduced"}
    assert {m["key"] for m in check["metrics"]} == {
        "train/loss",
        "train/acc",
        "val/loss",
        "val/acc",
    }

    # A replay replays too: from the same code, in its own new folder.
    done = lb(moved, store, "replay", replay["id"], "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: reproduced" in done.stdout


def test_an_unseeded_variant_diverges_at_the_step_it_parts(repo: Path) -> None:
    (repo / "helper.py").write_text(HELPER)
    store = repo / ".labbook"
    done = lb(repo, store, "run", "--", "python", "noisy.py", "--noisy-from", "7")
    assert done.returncode == 0, done.stderr
    original = runs(repo, store)[0]

    done = lb(repo, store, "replay", original["id"], "--check")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "verdict: diverged at step 7" in done.stdout
    loss = next(x for x in done.stdout.splitlines() if x.startswith("loss"))
    assert "diverged at step 7" in loss
    extra = next(x for x in done.stdout.splitlines() if x.startswith("extra"))
    assert " reproduced " in extra

    replay = the_one_replay(repo, store, original["id"])
    assert replay["kv_tags"]["labbook.replay_verdict"] == "diverged at step 7"
    # A looser tolerance does not hide a divergence of this size; a wide
    # one does.
    done = lb(repo, store, "check-replay", original["id"], replay["id"], "--tolerance", "rel=1e-9")
    assert done.returncode == 1
    done = lb(repo, store, "check-replay", original["id"], replay["id"], "--tolerance", "rel=0.5")
    assert done.returncode == 0, done.stdout
    assert "verdict: reproduced within tolerance (tolerance rel=5e-1" in done.stdout


def test_a_dataset_changed_after_the_run_is_caught_with_the_file_named(repo: Path) -> None:
    (repo / "helper.py").write_text(HELPER)
    data = repo / "data"
    data.mkdir()
    (data / "train.csv").write_text("x,y\n1,2\n")
    (data / "labels.csv").write_text("a\n")
    store = repo / ".labbook"
    done = lb(repo, store, "run", "--", "python", "noisy.py", "--data", "data")
    assert done.returncode == 0, done.stderr
    original = runs(repo, store)[0]
    before = len(runs(repo, store))

    (data / "train.csv").write_text("x,y\n1,3\n")
    done = lb(repo, store, "replay", original["id"])
    assert done.returncode == 2, done.stderr
    assert "train.csv changed" in done.stderr
    assert "labels.csv" not in done.stderr, "only the changed file is named"
    assert "--allow-data-drift" in done.stderr
    assert len(runs(repo, store)) == before, "nothing ran"

    done = lb(repo, store, "replay", original["id"], "--allow-data-drift")
    assert done.returncode == 0, done.stderr
    replay = the_one_replay(repo, store, original["id"])
    assert replay["environment"]["replay"]["data_drift"] is True


def test_set_replays_with_a_change_and_records_it(repo: Path) -> None:
    store = repo / ".labbook"
    done = lb(repo, store, "run", "--", "python", "train.py", "--epochs", "20")
    assert done.returncode == 0, done.stderr
    original = runs(repo, store)[0]

    done = lb(
        repo, store, "replay", original["id"], "--set", "lr=0.1", "--set", "epochs=25", "--check"
    )
    assert done.returncode == 1, "a changed learning rate changes the curves"
    assert "set      lr = 0.1 (was 0.3)" in done.stderr
    # The run left --lr at its default; the script declares it, so it is added.
    assert "command  python train.py --epochs 25 --lr=0.1 (in .)" in done.stderr

    replay = the_one_replay(repo, store, original["id"])
    assert replay["config"]["lr"] == 0.1 and replay["config"]["epochs"] == 25
    assert replay["kv_tags"]["labbook.replay_set"] == "lr=0.1, epochs=25"
    assert "with lr=0.1 (was 0.3), epochs=25 (was 20)" in replay["notes"]
    assert replay["environment"]["command"][-3:] == ["--epochs", "25", "--lr=0.1"]
    assert replay["metrics"]["train/loss"]["count"] == 25
    assert replay["environment"]["replay"]["set"] == ["lr=0.1", "epochs=25"]


def test_a_run_without_git_replays_from_its_snapshot(tmp_path: Path) -> None:
    work = tmp_path / "nogit"
    (work / "lib").mkdir(parents=True)
    (work / "noisy.py").write_text(NOISY)
    (work / "helper.py").write_text(HELPER)
    (work / "lib" / "unused.py").write_text("X = 1\n")
    (work / ".venv").mkdir()
    (work / ".venv" / "pyvenv.cfg").write_text("home = /usr\n")
    store = work / ".labbook"
    # The SDK alone, no wrapper: it records the command line as typed.
    env = env_for(store)
    done = subprocess.run(
        [sys.executable, "noisy.py", "--steps", "12"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    original = runs(work, store)[0]
    recorded = show(work, store, original["id"])["environment"]
    assert "git" not in recorded
    assert recorded["command"] == [sys.executable, "noisy.py", "--steps", "12"]
    assert recorded["code"]["base"] == "directory" and recorded["code"]["files"] == 3

    (work / "helper.py").write_text("def scale(lr):\n    return lr * 2.0\n")
    done = lb(work, store, "replay", original["id"], "--check", "--into", str(tmp_path / "again"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: reproduced" in done.stdout
    assert "3 file(s) from the snapshot code:v0 (the run was outside git)" in done.stderr
    assert (tmp_path / "again" / "helper.py").read_text() == HELPER
    assert not (tmp_path / "again" / ".venv").exists()


def test_an_interrupted_replay_is_killed_and_the_original_untouched(repo: Path) -> None:
    (repo / "helper.py").write_text(HELPER)
    store = repo / ".labbook"
    done = lb(repo, store, "run", "--", "python", "noisy.py", "--steps", "6")
    assert done.returncode == 0, done.stderr
    original = show(repo, store, runs(repo, store)[0]["id"])

    # The replay runs slowly (a what-if), and is stopped midway.
    proc = subprocess.Popen(
        [labbook_bin(), "replay", original["id"], "--set", "sleep=0.5", "--set", "steps=200"],
        cwd=repo,
        env=env_for(store),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        replay: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            found = [
                r
                for r in runs(repo, store)
                if r["kv_tags"].get("labbook.replay_of") == original["id"]
            ]
            if found and found[0]["metrics"].get("loss", {}).get("count", 0) >= 2:
                replay = found[0]
                break
            time.sleep(0.2)
        assert replay is not None, "the replay never logged"
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    after = show(repo, store, replay["id"])
    assert after["status"] == "killed", after["status"]
    again = show(repo, store, original["id"])
    assert again["status"] == "finished"
    assert series(again) == series(original)
    assert again["kv_tags"] == original["kv_tags"]


def test_bad_inputs_get_one_clear_error(repo: Path, tmp_path: Path) -> None:
    (repo / "helper.py").write_text(HELPER)
    store = repo / ".labbook"
    done = lb(repo, store, "run", "--", "python", "noisy.py", "--steps", "3")
    assert done.returncode == 0, done.stderr
    original = runs(repo, store)[0]["id"]

    done = lb(repo, store, "replay", "nosuchrun")
    assert done.returncode == 2 and "nosuchrun" in done.stderr

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    done = lb(repo, store, "replay", original, "--into", str(busy))
    assert done.returncode == 2 and "exists and is not empty" in done.stderr
    assert (busy / "keep.txt").read_text() == "mine"

    for bad in (["--set", "novalue"], ["--tolerance", "rel=-1"], ["--tolerance", "x=1"]):
        done = lb(repo, store, "replay", original, *bad)
        assert done.returncode == 2, bad
        assert len(done.stderr.strip().splitlines()) <= 3, done.stderr

    # --dry-run says everything and writes nothing.
    count = len(runs(repo, store))
    done = lb(repo, store, "replay", original, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "command  " in done.stderr and "dry run: nothing was written" in done.stderr
    assert len(runs(repo, store)) == count
    assert not (store / "replays").exists()

    # The commit is gone from every repository: the error names it.
    commit = show(repo, store, original)["environment"]["git"]["commit"]
    shutil.rmtree(repo / ".git")
    done = lb(repo, store, "replay", original)
    assert done.returncode == 2
    assert f"commit {commit} is not in a local repository" in done.stderr


def test_a_diff_that_does_not_apply_is_completed_from_the_snapshot_or_named(repo: Path) -> None:
    """A changed binary file is only "Binary files differ" in the diff, which
    git apply refuses: the snapshot's whole copy stands in; when the file
    was too large to keep, the error names it."""
    (repo / "helper.py").write_text(HELPER)
    (repo / "weights.bin").write_bytes(bytes(range(256)) * 4)
    (repo / "big.bin").write_bytes(b"\0" * 4096)
    git(repo, "add", "weights.bin", "big.bin")
    git(repo, "commit", "-qm", "binaries")
    (repo / "weights.bin").write_bytes(bytes(reversed(range(256))) * 4)
    store = repo / ".labbook"
    done = lb(repo, store, "run", "--", "python", "noisy.py", "--steps", "3")
    assert done.returncode == 0, done.stderr
    original = runs(repo, store)[0]["id"]
    assert "Binary files" in show(repo, store, original)["environment"]["git"]["diff"]

    done = lb(repo, store, "replay", original, "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the diff did not apply" in done.stderr
    assert "the snapshot's copies of the changed files are used" in done.stderr
    rebuilt = Path(the_one_replay(repo, store, original)["environment"]["replay"]["dir"])
    assert (rebuilt / "weights.bin").read_bytes() == bytes(reversed(range(256))) * 4

    # Over the per-file cap, the changed file is not kept: named, not guessed.
    (repo / "big.bin").write_bytes(b"\1" * 4096)
    cap = {"LABBOOK_SNAPSHOT_MAX_FILE_BYTES": "2000"}
    done = lb(repo, store, "run", "--", "python", "noisy.py", "--steps", "3", env=cap)
    assert done.returncode == 0, done.stderr
    second = runs(repo, store)[0]["id"]
    code = show(repo, store, second)["environment"]["code"]
    assert any(s["path"] == "big.bin" and "per file" in s["reason"] for s in code["skipped"]), code
    done = lb(repo, store, "replay", second)
    assert done.returncode == 2, done.stderr
    assert "not in the snapshot: big.bin" in done.stderr
    assert "the run's diff does not apply, and the snapshot lacks big.bin" in done.stderr
