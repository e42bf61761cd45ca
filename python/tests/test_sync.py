"""`labbook sync`: runs logged into a local store reach a `labbook serve`
whole, a second sync sends nothing, a sync killed after the server stored a
batch it never answered goes on without doubling a point, and --watch
follows a run still logging. The real binary on both ends, the real SDK."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

from conftest import LabbookServer, StoreRef, api_get, labbook_bin, read_line

import labbook

HOLD_ENV = "LABBOOK_TEST_HOLD_AFTER_COMMIT"

# A run with every part sync carries: config, tags, the why, two long series
# (non-finite values among them), a user summary, key/value tags, a note,
# output, an environment and two files, one in a folder.
TRAIN = textwrap.dedent("""
    import math, sys, labbook
    points = int(sys.argv[1])
    run = labbook.init(project="team", config={"lr": 3e-4, "model": {"depth": 4}},
                       notes="does the deeper model still converge?", tags=["deep", "v2"])
    for i in range(points):
        value = math.nan if i == 7 else (math.inf if i == 8 else 1.0 / (i + 1))
        run.log({"loss": value, "z_acc": i / points})
    print("epoch done", flush=True)
    run.summary["best_acc"] = 0.93
    run.note("the loss is flat after step 1000")
    open("weights.bin", "wb").write(bytes(range(256)) * 4096)
    open("config.txt", "w").write("depth=4\\n")
    run.log_artifact("weights.bin")
    run.log_artifact("config.txt", name="conf")
    run.finish()
    print(run.id)
""")


def labbook_cli(
    *args: str, cwd: Path, check: bool = True, **kw: Any
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [labbook_bin(), *args], cwd=cwd, capture_output=True, text=True, timeout=300, **kw
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def train(local: Path, points: int) -> str:
    """Logs TRAIN's run into the store at `local` through `labbook run`
    (which also captures its output); its id."""
    local.parent.mkdir(parents=True, exist_ok=True)
    (local.parent / "train.py").write_text(TRAIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    env["LABBOOK_DIR"] = str(local)
    done = labbook_cli(
        "run",
        "-p",
        "team",
        "--",
        sys.executable,
        "train.py",
        str(points),
        cwd=local.parent,
        env=env,
    )
    return done.stdout.strip().splitlines()[-1]


def sync(local: Path, url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return labbook_cli(
        "--dir", str(local), "sync", "--to", url, *args, cwd=local.parent, check=check
    )


def assert_same_run(local: Path, server: LabbookServer, run_id: str) -> None:
    """The server's copy of the run equals the local one: its fields, every
    point of every series (values bit for bit), notes, output and files."""
    here, there = labbook.Api(str(local)), server.api()
    mine, theirs = here.run(run_id), there.run(run_id)
    for field in (
        "name",
        "project",
        "status",
        "created_ms",
        "ended_ms",
        "notes",
        "group",
        "config",
        "summary",
        "exit_code",
    ):
        assert theirs[field] == mine[field], field
    assert sorted(theirs["tags"]) == sorted(mine["tags"])
    for key in ("loss", "z_acc"):
        a, b = here.history(run_id, key), there.history(run_id, key)
        for column in ("step", "timestamp_ms"):
            assert list(a[column]) == list(b[column]), (key, column)
        va, vb = [float(v) for v in a["value"]], [float(v) for v in b["value"]]
        assert [repr(v) for v in va] == [repr(v) for v in vb], key


def server_run(server: LabbookServer, run_id: str) -> dict[str, Any]:
    status, body = api_get(server.url, f"/api/v1/runs/{run_id}")
    assert status == 200, body
    return body


def test_a_synced_run_arrives_whole_and_a_second_sync_sends_nothing(
    served: LabbookServer, tmp_path: Path
) -> None:
    local = tmp_path / "laptop" / ".labbook"
    run_id = train(local, 20_000)
    first = json.loads(sync(local, served.url, "-p", "team", "--json").stdout)
    [sent] = first["runs"]
    assert sent["created"] and sent["points"] == 40_000 and sent["files"] == 2, sent
    assert sent["notes"] == 1 and sent["output_chunks"] >= 1 and sent["environment"], sent
    assert_same_run(local, served, run_id)
    remote = server_run(served, run_id)
    assert remote["status"] == "finished"
    assert [n["text"] for n in remote["notebook"]] == ["the loss is flat after step 1000"]
    assert remote["environment"] == labbook.Api(str(local)).run(run_id)["environment"]
    status, output = api_get(served.url, f"/api/v1/runs/{run_id}/output")
    assert "epoch done" in "".join(c["text"] for c in output["chunks"])
    status, files = api_get(served.url, f"/api/v1/runs/{run_id}/artifacts")
    assert status == 200, files
    names = json.dumps(files)
    assert "weights.bin" in names and "conf" in names, names
    # The same files as the laptop's own server lists, folder by folder.
    laptop = LabbookServer(local)
    try:
        for folder in ("", "weights.bin", "conf"):
            listing = f"/api/v1/runs/{run_id}/artifacts"
            there = api_get(served.url, listing, path=folder)
            assert there[0] == 200 and there == api_get(laptop.url, listing, path=folder), there
    finally:
        laptop.stop()
    _, inside = api_get(served.url, f"/api/v1/runs/{run_id}/artifacts", path="weights.bin")
    path = next(f["path"] for f in inside["files"] if not f["is_dir"])
    with urllib.request.urlopen(
        f"{served.url}/api/v1/runs/{run_id}/artifacts/raw?path={path}", timeout=10
    ) as answer:
        raw = answer.read()
    assert raw == bytes(range(256)) * 4096

    again = json.loads(sync(local, served.url, "-p", "team", "--json").stdout)
    [second] = again["runs"]
    assert not any(
        second[k]
        for k in ("created", "points", "output_chunks", "notes", "files", "updated", "environment")
    ), second
    assert_same_run(local, served, run_id)
    assert server_run(served, run_id)["metric_keys"] == remote["metric_keys"]
    # The text form names what was sent, aligned, and says nothing was new.
    text = sync(local, served.url, "-p", "team").stdout
    assert "up to date" in text and "0 of 1 runs sent" in text, text
    # A tag taken off the local run comes off the server's copy.
    labbook_cli("--dir", str(local), "tag", run_id, "v2", "--remove", cwd=tmp_path)
    [third] = json.loads(sync(local, served.url, "-p", "team", "--json").stdout)["runs"]
    assert third["updated"] and not third["points"], third
    assert server_run(served, run_id)["tags"] == ["deep"]
    assert_same_run(local, served, run_id)


def test_a_sync_killed_after_an_unanswered_commit_goes_on_without_doubling(
    tmp_path: Path, server_store: StoreRef
) -> None:
    """The server commits the batch carrying z_acc's first points and never
    answers it; sync is killed while it waits, the server restarts, and a
    new sync sends the rest: every point once."""
    local = tmp_path / "node" / ".labbook"
    run_id = train(local, 150_000)
    artifacts = tmp_path / "server" / "artifacts"
    held = LabbookServer(server_store, artifacts=artifacts, env={HOLD_ENV: "z_acc"})
    try:
        assert held.proc.stderr is not None
        url = held.url
        pusher = subprocess.Popen(
            [labbook_bin(), "--dir", str(local), "sync", "--to", url, "-p", "team"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = ""
        while "committed a batch for run" not in line:
            line = read_line(held.proc.stderr, timeout=60, what="the hook's line")
        pusher.send_signal(signal.SIGKILL)
        pusher.wait(timeout=10)
        held_count = server_run_at(url, run_id)["metric_keys"]
    finally:
        held.kill()
    counts = {k["key"]: k["count"] for k in held_count}
    assert counts["loss"] == 150_000 and 0 < counts["z_acc"] < 150_000, counts
    server = LabbookServer(server_store, artifacts=artifacts)
    try:
        rest = json.loads(sync(local, server.url, "-p", "team", "--json").stdout)
        [sent] = rest["runs"]
        assert sent["points"] == 150_000 - counts["z_acc"], sent
        assert not sent["created"]
        assert_same_run(local, server, run_id)
        assert server_run(server, run_id)["status"] == "finished"
    finally:
        server.stop()


def server_run_at(url: str, run_id: str) -> dict[str, Any]:
    status, body = api_get(url, f"/api/v1/runs/{run_id}")
    assert status == 200, body
    return body


# Logs slowly through `labbook run` so sync --watch meets it running.
SLOW = textwrap.dedent("""
    import time, labbook
    run = labbook.init(project="team", system_metrics=False)
    for i in range(40):
        run.log({"loss": 1.0 / (i + 1), "z_acc": i / 40})
        run.flush()
        time.sleep(0.05)
    run.finish()
""")


def test_watch_follows_a_run_still_logging_until_it_ends(
    served: LabbookServer, tmp_path: Path
) -> None:
    local = tmp_path / "node" / ".labbook"
    local.parent.mkdir(parents=True)
    (local.parent / "slow.py").write_text(SLOW)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    env["LABBOOK_DIR"] = str(local)
    trainer = subprocess.Popen(
        [labbook_bin(), "run", "-p", "team", "--", sys.executable, "slow.py"],
        cwd=local.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (local.exists() and labbook.Api(str(local)).runs(project="team")):
            assert time.monotonic() < deadline, "the training run never started"
            time.sleep(0.05)
        [run] = labbook.Api(str(local)).runs(project="team")
        assert run["status"] == "running"
        watched = sync(local, served.url, "-p", "team", "--watch", "--interval", "0.2", "--json")
    finally:
        assert trainer.wait(timeout=60) == 0, trainer.stderr.read() if trainer.stderr else ""
    [sent] = json.loads(watched.stdout)["runs"]
    assert sent["points"] == 80 and sent["status"] == "finished", sent
    assert_same_run(local, served, run["id"])


def test_bad_targets_are_one_clear_error(served: LabbookServer, tmp_path: Path) -> None:
    local = tmp_path / "laptop" / ".labbook"
    run_id = train(local, 10)
    closed = sync(local, "http://127.0.0.1:9", "-p", "team", "--retry", "0", check=False)
    assert closed.returncode != 0 and "cannot reach the labbook server" in closed.stderr
    assert len(closed.stderr.strip().splitlines()) <= 2, closed.stderr
    nothing = sync(local, "ftp://example", "-p", "team", check=False)
    assert nothing.returncode != 0 and "http://" in nothing.stderr
    interval = sync(local, served.url, "--interval", "0", check=False)
    assert interval.returncode != 0 and "--interval" in interval.stderr
    # A different run under the same id on the server is never merged into.
    other = tmp_path / "other" / ".labbook"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    env["LABBOOK_DIR"] = str(other)
    (tmp_path / "other").mkdir()
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"import labbook; labbook.init(project='team', id={run_id!r}).finish()",
        ],
        cwd=tmp_path / "other",
        env=env,
        check=True,
        timeout=60,
    )
    assert sync(other, served.url, "-p", "team", check=False).returncode == 0
    clash = sync(local, served.url, "-p", "team", check=False)
    assert clash.returncode != 0 and "different run" in clash.stderr, clash.stderr
