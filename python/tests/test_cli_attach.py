"""The SDK inside `labbook run`: one run, metrics from the SDK, output and
status from the wrapper."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import labbook_bin

import labbook

SCRIPT = textwrap.dedent("""
    import sys, labbook
    run = labbook.init(project="ignored-under-run", config={"lr": 0.1})
    for step in range(50):
        run.log({"loss": 1.0 / (step + 1)})
    print("trained", run.id, run.attached, flush=True)
    if len(sys.argv) > 1:
        raise ValueError("bad batch at step 50")
    run.finish()
""")


def wrap(store: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    script = store.parent / "train.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    env["LABBOOK_DIR"] = str(store)
    cmd = [labbook_bin(), "run", "--project", "attach", "--why", "does attach work?", "--"]
    return subprocess.run(
        [*cmd, sys.executable, str(script), *extra],
        cwd=store.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_sdk_attaches_to_the_wrappers_run(store: Path) -> None:
    done = wrap(store)
    assert done.returncode == 0, done.stderr
    runs = labbook.Api().runs()
    assert len(runs) == 1, "one run, not one per process"
    r = labbook.Api().run(runs[0]["id"])
    assert r["project"] == "attach" and r["notes"] == "does attach work?"
    assert r["status"] == "finished" and r["exit_code"] == 0
    assert r["metrics"]["loss"]["count"] == 50
    assert r["config"] == {"lr": 0.1}
    assert f"trained {r['id']} True" in labbook.Api().output(r["id"])
    env = r["environment"]
    assert env["python"]["executable"] == sys.executable, "the SDK adds what only it sees"
    assert env["command"][0] == sys.executable, "the wrapper records the command"


def test_a_failing_script_under_run_is_failed_with_its_traceback(store: Path) -> None:
    done = wrap(store, "fail")
    assert done.returncode == 1
    r = labbook.Api().run(labbook.Api().runs()[0]["id"])
    assert r["status"] == "failed" and r["exit_code"] == 1
    assert "ValueError: bad batch at step 50" in r["error"]
    assert r["metrics"]["loss"]["count"] == 50
    assert "ValueError" in labbook.Api().output(r["id"])
