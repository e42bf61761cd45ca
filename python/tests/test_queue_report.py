"""The overnight queue and the morning report through the real CLI: a plan
of commands and a sweep run on free slots, a runner killed with SIGKILL
and started again (no job lost, a crashed job run once more, none twice),
bad plans named by field, and the report of a fixture night checked field
by field (JSON) and rendered as text, Markdown and HTML."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import labbook_bin

PY = sys.executable
PY_DIR = str(Path(sys.executable).parent)

TRAIN = """
import argparse, time, labbook
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--mark", default="")
a = p.parse_args()
if a.mark:
    with open(a.mark, "a") as f:
        f.write(f"{a.lr}\\n")
run = labbook.init(config={"lr": a.lr})
for step in range(5):
    time.sleep(a.sleep)
    run.log({"val/loss": a.lr * 10 + 1.0 / (step + 1)}, step=step)
run.finish()
"""


def env_for(store: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    env["LABBOOK_DIR"] = str(store)
    env["LABBOOK_SNAPSHOT"] = "0"
    env["LABBOOK_PROJECT"] = "night"
    env["PATH"] = f"{PY_DIR}{os.pathsep}{env.get('PATH', '')}"
    return env


def lb(store: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [labbook_bin(), *args],
        cwd=store.parent,
        env=env_for(store),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def jobs(store: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(ok(lb(store, "queue", "ls", "--json")))
    return out


def runs(store: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(ok(lb(store, "ls", "--limit", "0", "--json")))
    return out


@pytest.fixture
def night(store: Path) -> Path:
    (store.parent / "train.py").write_text(TRAIN)
    return store


def test_a_plan_runs_every_job_once_and_the_report_says_what_each_answered(night: Path) -> None:
    folder = night.parent
    (folder / "sweep.yaml").write_text(
        "name: lr-sweep\nmethod: grid\nprogram: train.py\n"
        "command: [python, '${program}', '${args}']\n"
        "metric: {name: val/loss, goal: minimize}\n"
        "parameters: {lr: {values: [0.01, 0.02, 0.03]}}\n"
    )
    (folder / "plan.yaml").write_text(
        "name: tonight\nwhy: find a good lr\njobs:\n"
        "  - command: python train.py --lr 0.5\n    why: does a large lr still converge?\n"
        '  - command: ["python", "-c", "import sys; print(\'CUDA out of memory\', file=sys.stderr); sys.exit(3)"]\n'
        "    why: a job that dies\n"
        "  - sweep: sweep.yaml\n    count: 3\n"
    )
    ok(lb(night, "queue", "add", "--file", "plan.yaml"))
    assert [j["state"] for j in jobs(night)] == ["waiting"] * 3
    # The baseline: a run from before the night.
    ok(lb(night, "run", "--why", "the baseline", "--", PY, "train.py", "--lr", "0.2"))
    baseline = runs(night)[0]["id"]
    ok(lb(night, "baseline", "set", baseline))
    # The night starts on the next whole second, after the baseline ran.
    since_s = int(time.time()) + 1
    time.sleep(since_s - time.time() + 0.05)
    since_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since_s))
    report_path_file = folder / "report-path.txt"
    done = lb(
        night,
        "queue",
        "run",
        "--parallel",
        "2",
        "--then",
        f"echo {{report}} > {report_path_file}",
    )
    ok(done)
    states = [j["state"] for j in jobs(night)]
    assert states == ["complete", "failed", "complete"], states
    # The report the runner wrote, and the one asked for now, agree.
    written = Path(report_path_file.read_text().strip())
    assert written.is_file() and written.with_suffix(".html").is_file()
    assert "does a large lr still converge?" in written.read_text()

    report = json.loads(ok(lb(night, "report", "--since", since_iso, "--format", "json")))
    assert report["project"] == "night"
    assert report["counts"]["started"] == 5
    assert report["counts"]["finished"] == 4
    assert report["counts"]["failed"] == 1
    assert report["baseline"]["id"] == baseline
    by_title = {g["title"]: g for g in report["groups"]}
    sweep = by_title["lr-sweep"]
    assert sweep["kind"] == "sweep"
    assert sweep["metric"] == {"name": "val/loss", "goal": "minimize"}
    assert sweep["counts"] == {"finished": 3}
    assert sweep["best"]["value"] == pytest.approx(0.01 * 10 + 1 / 5)
    assert sweep["baseline_value"] == pytest.approx(0.2 * 10 + 1 / 5)
    assert sweep["better_than_baseline"] is True
    assert sweep["delta"] == pytest.approx((0.1 + 0.2) - (2.0 + 0.2))
    assert 2 <= len(sweep["curve"]) <= 32
    large = by_title["does a large lr still converge?"]
    assert large["kind"] == "why" and large["plan"] == "tonight"
    assert large["better_than_baseline"] is False
    dies = by_title["a job that dies"]
    assert dies["counts"] == {"failed": 1}
    [failure] = report["failures"]
    assert failure["group"] == "a job that dies"
    assert failure["last_lines"] == ["CUDA out of memory"]
    assert report["running"] == [] and report["queue_left"] == []
    assert report["gpu_hours"] == 0

    text = ok(lb(night, "report", "--since", "1h"))
    assert "lr-sweep" in text and "CUDA out of memory" in text and "better" in text
    md = ok(lb(night, "report", "--since", "1h", "--format", "md"))
    assert md.startswith("# Report: night") and "| run | status | val/loss |" in md
    html = folder / "report.html"
    ok(lb(night, "report", "--since", "1h", "--format", "html", "-o", str(html)))
    page = html.read_text()
    assert (
        page.startswith("<!doctype html>")
        and "<svg" in page
        and "prefers-color-scheme: dark" in page
    )


def test_a_runner_killed_with_sigkill_loses_no_job_and_runs_none_twice(night: Path) -> None:
    folder = night.parent
    marks = folder / "marks.txt"
    for lr in (0.1, 0.2, 0.3, 0.4):
        ok(
            lb(
                night,
                "queue",
                "add",
                "--why",
                f"lr {lr}",
                "--",
                "python",
                "train.py",
                "--lr",
                str(lr),
                "--sleep",
                "0.4",
                "--mark",
                str(marks),
            )
        )
    runner = subprocess.Popen(
        [labbook_bin(), "queue", "run", "--parallel", "2"],
        cwd=folder,
        env=env_for(night),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if marks.exists() and len(marks.read_text().split()) >= 2:
            break
        time.sleep(0.05)
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    time.sleep(0.5)
    ok(lb(night, "queue", "run", "--parallel", "2"))
    final = jobs(night)
    by_lr: dict[str, list[str]] = {}
    for j in final:
        lr = j["command"][j["command"].index("--lr") + 1]
        by_lr.setdefault(lr, []).append(j["state"])
    # Every job completed once; the two killed ones crashed and ran once more.
    for lr, states in by_lr.items():
        assert states.count("complete") == 1, (lr, states)
    crashed = [j for j in final if j["state"] == "crashed"]
    assert len(crashed) == 2, final
    retries = [j for j in final if j["retry_of"] is not None]
    assert sorted(j["retry_of"] for j in retries) == sorted(j["number"] for j in crashed)
    # No program ran on past its killed runner to finish a second time.
    finished = [r for r in runs(night) if r["status"] == "finished"]
    assert len(finished) == 4


@pytest.mark.parametrize(
    ("plan", "field"),
    [
        ("jobs: []\n", "jobs"),
        ("name: x\nfoo: 1\njobs: [{command: a}]\n", "foo"),
        ("jobs: [{why: nothing to run}]\n", "jobs[0]"),
        ("jobs: [{command: a, sweep: b}]\n", "jobs[0]"),
        ("jobs: [{command: 'a', gpus: -1}]\n", "jobs[0].gpus"),
        ("jobs: [{command: 'a \"unclosed'}]\n", "jobs[0].command"),
        ("jobs: [{command: a, colour: red}]\n", "jobs[0].colour"),
    ],
)
def test_bad_plans_name_the_field_and_queue_nothing(night: Path, plan: str, field: str) -> None:
    (night.parent / "plan.yaml").write_text(plan)
    done = lb(night, "queue", "add", "--file", "plan.yaml")
    assert done.returncode != 0
    assert f"{field}:" in done.stderr, done.stderr
    ok(lb(night, "init"))
    assert jobs(night) == []


def test_report_times_and_baselines_are_checked(night: Path) -> None:
    ok(lb(night, "init"))
    for bad in ("yesterday", "25:00", "2026-13-01"):
        done = lb(night, "report", "--since", bad)
        assert done.returncode != 0 and "is not a time" in done.stderr, (bad, done.stderr)
    done = lb(night, "report", "--since", "1h", "--until", "2h")
    assert done.returncode != 0 and "is not before" in done.stderr
    done = lb(night, "baseline", "show")
    assert done.returncode != 0 and "has no baseline" in done.stderr
