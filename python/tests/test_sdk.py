"""The SDK end to end: what a training script does, checked through the store."""

from __future__ import annotations

import array
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from conftest import read_line, run_python

import labbook


def test_the_readme_flow_records_everything(store: Path) -> None:
    run = labbook.init(
        project="mnist",
        config={"lr": 1e-3, "model": {"depth": 4, "act": "relu"}, "seed": 7},
        tags=["baseline"],
        notes="Does dropout help on the small split?",
    )
    assert len(run.id) == 8 and run.project == "mnist" and run.name.count("-") == 2
    for step in range(1000):
        run.log({"train/loss": 1.0 / (step + 1), "train/acc": step / 1000})
    run.log({"val/loss": 0.25}, step=999)
    run.summary["best_acc"] = 0.97
    run.finish()

    api = labbook.Api()
    r = api.run(run.id)
    assert r["status"] == "finished" and r["ended_ms"] >= r["created_ms"]
    assert r["config"] == {"lr": 1e-3, "model.depth": 4, "model.act": "relu", "seed": 7}
    assert r["tags"] == ["baseline"]
    assert r["notes"] == "Does dropout help on the small split?"
    assert r["summary"] == {"best_acc": 0.97}
    loss = r["metrics"]["train/loss"]
    assert loss["count"] == 1000 and loss["last"] == 1 / 1000 and loss["max"] == 1.0
    assert r["metrics"]["val/loss"]["last_step"] == 999
    h = api.history(run.id, "train/acc")
    assert list(h["step"]) == list(range(1000))
    assert list(h["value"]) == [s / 1000 for s in range(1000)]
    assert all(t > 1.7e12 for t in h["timestamp_ms"])
    env = r["environment"]
    assert env["python"]["executable"] == sys.executable
    assert any(p["name"] == "pytest" for p in env["python"]["packages"])
    assert env["seed"] == {"key": "seed", "value": 7}
    assert env["cpu_count"] >= 1 and env["host"]


def test_steps_auto_increment_and_explicit_steps_move_the_counter(store: Path) -> None:
    run = labbook.init(project="p")
    run.log({"a": 1.0})
    run.log({"a": 2.0})
    run.log({"a": 3.0}, step=10)
    run.log({"a": 4.0})
    assert run.step == 12
    run.finish()
    assert list(labbook.Api().history(run.id, "a")["step"]) == [0, 1, 10, 11]


def test_config_access_and_later_updates_are_recorded(store: Path) -> None:
    run = labbook.init(project="p", config={"lr": 0.1, "model": {"depth": 4}})
    assert run.config.lr == 0.1
    assert run.config["model.depth"] == 4
    assert run.config.model == {"depth": 4}
    assert run.config["model"]["depth"] == 4
    assert "model" in run.config and "nope" not in run.config
    run.config.batch_size = 64
    run.config["optimizer"] = {"name": "adam", "betas": [0.9, 0.999]}
    run.config.update({"lr": 0.05})
    with pytest.raises(AttributeError):
        _ = run.config.missing
    run.finish()
    config = labbook.Api().run(run.id)["config"]
    assert config["batch_size"] == 64 and config["lr"] == 0.05
    assert config["optimizer.name"] == "adam" and config["optimizer.betas"] == [0.9, 0.999]


def test_nested_config_reads_by_attribute_at_any_depth(store: Path) -> None:
    run = labbook.init(
        project="p", config={"model": {"depth": 4, "layers": {"n": 2, "act": "relu"}}}
    )
    assert run.config.model.depth == 4
    assert run.config.model.layers.n == 2
    assert run.config["model"].layers["act"] == "relu"
    assert run.config.model["layers.n"] == 2
    assert run.config.model == {"depth": 4, "layers": {"n": 2, "act": "relu"}}
    assert run.config.model.layers == {"act": "relu", "n": 2}
    assert run.config.model != {"depth": 5, "layers": {"n": 2, "act": "relu"}}
    assert isinstance(run.config.model, Mapping)
    assert dict(run.config.model) == {"depth": 4, "layers.act": "relu", "layers.n": 2}
    assert len(run.config.model) == 3 and "layers.n" in run.config.model
    assert run.config.model.get("width", 7) == 7
    assert run.config.model.as_dict() == {"depth": 4, "layers": {"n": 2, "act": "relu"}}
    with pytest.raises(AttributeError, match=r"model\.width"):
        _ = run.config.model.width
    with pytest.raises(KeyError, match=r"model\.layers\.k"):
        _ = run.config.model.layers["k"]
    run.config.model.depth = 5
    run.config.model.layers.update({"k": 3})
    run.finish()
    config = labbook.Api().run(run.id)["config"]
    assert config["model.depth"] == 5 and config["model.layers.k"] == 3


def test_summary_falls_back_to_the_last_logged_value(store: Path) -> None:
    run = labbook.init(project="p")
    run.log({"acc": 0.5})
    run.log({"acc": 0.75})
    assert run.summary["acc"] == 0.75
    run.summary["acc"] = 0.9
    assert run.summary["acc"] == 0.9
    run.finish()


def test_module_level_log_and_finish(store: Path) -> None:
    labbook.init(project="p")
    labbook.log({"x": 1.0})
    assert labbook.run is not None
    run_id = labbook.run.id
    labbook.finish()
    assert labbook.run is None
    assert labbook.Api().run(run_id)["metrics"]["x"]["count"] == 1
    with pytest.raises(labbook.LabbookError, match="init"):
        labbook.log({"x": 1.0})


def test_context_manager_marks_an_exception_failed_with_its_traceback(store: Path) -> None:
    with pytest.raises(ZeroDivisionError), labbook.init(project="p") as run:
        run.log({"x": 1.0})
        _ = 1 / 0
    r = labbook.Api().run(run.id)
    assert r["status"] == "failed"
    assert "ZeroDivisionError" in r["error"] and "Traceback" in r["error"]
    assert r["metrics"]["x"]["count"] == 1
    with labbook.init(project="p") as ok:
        ok.log({"x": 2.0})
    assert labbook.Api().run(ok.id)["status"] == "finished"


def test_a_non_numeric_value_names_the_key_and_loses_nothing(store: Path) -> None:
    run = labbook.init(project="p")
    run.log({"good": 1.0})
    with pytest.raises(TypeError, match=r'"bad".*str'):
        run.log({"fine": 2.0, "bad": "oops"})
    with pytest.raises(TypeError, match="None"):
        run.log({"none": None})
    with pytest.raises(TypeError, match="metric keys must be strings"):
        run.log({1: 2.0})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="empty"):
        run.log({"": 1.0})
    with pytest.raises(ValueError, match="limit is 250"):
        run.log({"k" * 300: 1.0})
    run.log({"good": 3.0})
    run.finish()
    r = labbook.Api().run(run.id)
    assert set(r["metrics"]) == {"good"}, "a rejected call records none of its keys"
    assert list(labbook.Api().history(run.id, "good")["step"]) == [0, 1]


def test_nan_and_infinity_round_trip(store: Path) -> None:
    run = labbook.init(project="p")
    values = [math.nan, math.inf, -math.inf, -0.0, 1e-300, 1.5]
    for v in values:
        run.log({"x": v})
    run.finish()
    back = list(labbook.Api().history(run.id, "x")["value"])
    assert math.isnan(back[0]) and back[1:] == values[1:]
    assert math.copysign(1, back[3]) == -1
    m = labbook.Api().run(run.id)["metrics"]["x"]
    assert (m["min"], m["max"], m["last"]) == (-math.inf, math.inf, 1.5)


def test_numpy_and_torch_like_scalars_are_numbers(store: Path) -> None:
    np = pytest.importorskip("numpy")
    run = labbook.init(project="p")
    run.log({"f32": np.float32(0.5), "i64": np.int64(3), "zero_d": np.array(2.5), "flag": True})
    run.finish()
    m = labbook.Api().run(run.id)["metrics"]
    assert {k: v["last"] for k, v in m.items()} == {
        "f32": 0.5,
        "i64": 3.0,
        "zero_d": 2.5,
        "flag": 1.0,
    }


def test_nested_dicts_log_as_dotted_keys(store: Path) -> None:
    run = labbook.init(project="p")
    run.log({"val": {"loss": 0.5, "acc": 0.8}})
    run.finish()
    assert set(labbook.Api().run(run.id)["metrics"]) == {"val.loss", "val.acc"}


def test_log_series_takes_lists_numpy_and_array_module(store: Path) -> None:
    np = pytest.importorskip("numpy")
    run = labbook.init(project="p")
    n = 300_000
    run.log_series("np", np.arange(n), np.linspace(0, 1, n))
    run.log_series("f32", None, np.arange(10, dtype=np.float32))
    run.log_series("lst", [0, 5, 10], [1.0, math.nan, 3.0], timestamps=[1.0, 2.0, 3.0])
    run.log_series("arr", array.array("q", [1, 2]), array.array("d", [0.25, 0.5]))
    with pytest.raises(ValueError, match="2 steps but 3 values"):
        run.log_series("bad", [1, 2], [1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match=r"values\[1\]"):
        run.log_series("bad", [1, 2], [1.0, "x"])
    with pytest.raises(ValueError, match="one-dimensional"):
        run.log_series("bad", None, np.zeros((2, 2)))
    run.finish()
    api = labbook.Api()
    h = api.history(run.id, "np")
    assert np.array_equal(np.asarray(h["value"]), np.linspace(0, 1, n))
    assert np.array_equal(np.asarray(h["step"]), np.arange(n))
    lst = api.history(run.id, "lst")
    assert list(lst["timestamp_ms"]) == [1000, 2000, 3000] and math.isnan(lst["value"][1])
    assert list(api.history(run.id, "f32")["value"]) == list(range(10))
    down = api.history(run.id, "np", buckets=100)
    assert 100 <= len(down["value"]) <= 400 and down["step"][0] == 0 and down["step"][-1] == n - 1


def test_resume_allow_must_and_never(store: Path) -> None:
    run = labbook.init(project="p", id="exp-1")
    run.log({"x": 1.0})
    run.log({"x": 2.0})
    run.finish()
    with pytest.raises(ValueError, match="already exists"):
        labbook.init(project="p", id="exp-1")
    with pytest.raises(ValueError, match="no run"):
        labbook.init(project="p", id="exp-2", resume="must")
    again = labbook.init(id="exp-1", resume="allow", config={"extra": 1})
    assert again.step == 2
    again.log({"x": 3.0})
    again.finish()
    r = labbook.Api().run("exp-1")
    assert r["status"] == "finished" and r["config"] == {"extra": 1}
    assert list(labbook.Api().history("exp-1", "x")["step"]) == [0, 1, 2]
    fresh = labbook.init(project="p", id="exp-3", resume="allow")
    fresh.finish()
    with pytest.raises(ValueError, match="resume must be"):
        labbook.init(id="exp-1", resume="sometimes")


def test_bad_init_arguments_name_the_field(store: Path) -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(40):
        node["a"] = {}
        node = node["a"]  # type: ignore[assignment]
    node["x"] = 1
    with pytest.raises(ValueError, match="nested deeper"):
        labbook.init(project="p", config=deep)
    with pytest.raises(ValueError, match="tag"):
        labbook.init(project="p", tags=["a,b"])
    with pytest.raises(ValueError, match="project"):
        labbook.init(project="")
    with pytest.raises(TypeError, match="config must be"):
        labbook.init(project="p", config=42)
    assert labbook.Api().runs() == [], "nothing half-created"


def test_argparse_namespace_and_odd_values_are_accepted_as_config(store: Path) -> None:
    import argparse

    ns = argparse.Namespace(lr=0.1, out=Path("/tmp/x"), big=2**70)
    run = labbook.init(project="p", config=ns)
    run.finish()
    c = labbook.Api().run(run.id)["config"]
    assert c == {"lr": 0.1, "out": "/tmp/x", "big": str(2**70)}


def test_logging_after_finish_says_what_to_do(store: Path) -> None:
    run = labbook.init(project="p")
    run.finish()
    run.finish()  # idempotent
    with pytest.raises(labbook.LabbookError, match="finished"):
        run.log({"x": 1.0})


def test_notes_and_tags_from_the_sdk(store: Path) -> None:
    run = labbook.init(project="p", tags=["a"])
    run.tag("b", "c")
    run.note("lr 0.1 diverged at step 300; trying 0.01 next")
    run.finish()
    r = labbook.Api().run(run.id)
    assert r["tags"] == ["a", "b", "c"]
    assert r["notebook"][0]["text"].startswith("lr 0.1 diverged")


def test_import_does_not_import_numpy(tmp_path: Path) -> None:
    code = "import sys, labbook; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_script_that_never_calls_finish_is_finished_at_exit(store: Path) -> None:
    code = "import labbook; r = labbook.init(project='p'); r.log({'x': 1.0}); print(r.id)"
    p = run_python(code, store.parent, {"LABBOOK_DIR": str(store)})
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    r = labbook.Api().run(out.strip())
    assert r["status"] == "finished" and r["metrics"]["x"]["count"] == 1


def test_an_uncaught_exception_marks_the_run_failed(store: Path) -> None:
    code = textwrap.dedent("""
        import labbook
        r = labbook.init(project='p')
        print(r.id, flush=True)
        r.log({'x': 1.0})
        raise RuntimeError('boom at step 1')
    """)
    p = run_python(code, store.parent, {"LABBOOK_DIR": str(store)})
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1 and "boom" in err
    r = labbook.Api().run(out.strip())
    assert r["status"] == "failed" and "RuntimeError: boom at step 1" in r["error"]
    assert r["metrics"]["x"]["count"] == 1


def test_sigterm_flushes_and_marks_the_run_killed(store: Path) -> None:
    code = textwrap.dedent("""
        import time, labbook
        r = labbook.init(project='p')
        for i in range(100):
            r.log({'x': float(i)})
        print(r.id, flush=True)
        time.sleep(60)
    """)
    p = run_python(code, store.parent, {"LABBOOK_DIR": str(store)})
    assert p.stdout is not None
    run_id = read_line(p.stdout, what="the run id").strip()
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)
    assert p.returncode == -signal.SIGTERM
    r = labbook.Api().run(run_id)
    assert r["status"] == "killed" and r["metrics"]["x"]["count"] == 100


def test_finish_returns_in_bounded_time_with_a_big_backlog(store: Path) -> None:
    run = labbook.init(project="p", system_metrics=False)
    for i in range(200_000):
        run.log({"a": float(i), "b": float(i)})
    started = time.monotonic()
    run.finish()
    assert time.monotonic() - started < 30
    assert labbook.Api().run(run.id)["metrics"]["b"]["count"] == 200_000


def test_system_metrics_are_sampled(store: Path) -> None:
    run = labbook.init(project="p", system_interval=0.2)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        sum(range(10_000))
    run.finish()
    metrics = labbook.Api().run(run.id)["metrics"]
    assert metrics["sys/rss_mb"]["count"] >= 2 and metrics["sys/rss_mb"]["last"] > 0
    assert "sys/cpu_percent" in metrics
    off = labbook.init(project="p", system_metrics=False)
    time.sleep(0.3)
    off.finish()
    assert not any(k.startswith("sys/") for k in labbook.Api().run(off.id)["metrics"])


def test_the_store_is_found_like_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABBOOK_DIR", raising=False)
    monkeypatch.delenv("LABBOOK_RUN_ID", raising=False)
    monkeypatch.delenv("LABBOOK_PROJECT", raising=False)
    repo = tmp_path / "myproj"
    (repo / "src" / "deep").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    monkeypatch.chdir(repo / "src" / "deep")
    run = labbook.init()
    run.finish()
    assert Path(run.dir) == repo / ".labbook"
    assert run.project == "myproj", "the default project is the folder that holds the store"
    monkeypatch.chdir(repo / "src")
    assert labbook.Api().run(run.id)["id"] == run.id


def test_runs_of_one_process_share_the_store_but_never_a_recreated_file(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    first = labbook.init(project="a", dir=str(project), system_metrics=False)
    first.finish()
    shutil.rmtree(project / ".labbook")
    # `first` still holds the old, deleted file open; the new run must not write there.
    second = labbook.init(project="b", dir=str(project), system_metrics=False)
    second.log({"x": 1.0})
    second.finish()
    runs = labbook.Api(str(project / ".labbook")).runs()
    assert [r["id"] for r in runs] == [second.id]
    assert first.finished


def test_a_forked_child_logs_through_its_own_connection(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    parent = labbook.init(project="fork", dir=str(project), system_metrics=False)
    parent.log({"x": 1.0})
    # Finished first: forking while a writer thread is inside SQLite could
    # leave one of SQLite's process-wide locks held in the child. The open
    # run object still holds the store, so the child would find it shared.
    parent.finish()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            child = labbook.init(project="fork", dir=str(project), system_metrics=False)
            child.log({"x": 2.0})
            child.finish()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    after = labbook.init(project="fork", dir=str(project), system_metrics=False)
    after.log({"x": 3.0})
    after.finish()
    runs = labbook.Api(str(project / ".labbook")).runs(project="fork")
    assert sorted(r["status"] for r in runs) == ["finished"] * 3
    assert sorted(r["metrics"]["x"]["last"] for r in runs) == [1.0, 2.0, 3.0]


def test_a_run_nested_under_another_is_found_by_its_parent(store: Path) -> None:
    parent = labbook.init(project="grid", name="search")
    children = []
    for lr in (0.1, 0.01):
        child = labbook.init(project="grid", config={"lr": lr}, parent=parent)
        child.finish()
        children.append(child.id)
    by_prefix = labbook.init(project="grid", parent=parent.id[:5])
    by_prefix.finish()
    parent.finish()
    api = labbook.Api()
    nested = api.runs(project="grid", filter=f'parent = "{parent.id}"')
    assert sorted(r["id"] for r in nested) == sorted([*children, by_prefix.id])
    assert api.run(children[0])["parent"] == parent.id
    assert api.run(children[0])["kv_tags"] == {"mlflow.parentRunId": parent.id}
    assert [r["id"] for r in api.runs(project="grid", filter="parent is null")] == [parent.id]
    with pytest.raises(ValueError, match="parent: no run"):
        labbook.init(project="grid", parent="nosuchrun")
