"""The SDK logging into `labbook serve` (`init(url=…)` / `LABBOOK_URL`)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import LabbookServer, StoreRef, api_get, api_post, labbook_bin, read_line

import labbook


def test_a_run_logged_into_a_server_is_stored_whole(served: LabbookServer, store: Path) -> None:
    run = labbook.init(
        url=served.url,
        project="remote",
        name="far-away",
        config={"optimizer": {"lr": 0.01}, "seed": 7},
        notes="Does logging over HTTP keep every point?",
        tags=["http"],
        system_metrics=False,
    )
    assert run.dir == served.url
    for step in range(5000):
        run.log({"train/loss": 1.0 / (step + 1), "acc": step / 5000})
    run.log({"odd": math.nan})
    run.log({"odd": math.inf})
    run.log({"odd": -math.inf})
    run.log_series("grad", list(range(120_000)), [i * 0.25 for i in range(120_000)])
    run.summary["best_acc"] = 0.97
    run.config["extra"] = "late"
    run.tag("checked")
    run.note("looked fine")
    assert run.summary["train/loss"] == pytest.approx(1.0 / 5000)
    run.finish()

    # The client wrote nothing locally: everything is in the server's store.
    assert not (store / "labbook.db").exists()
    api = served.api()
    (r,) = api.runs(project="remote")
    assert r["id"] == run.id and r["name"] == "far-away"
    assert r["status"] == "finished"
    assert r["config"]["optimizer.lr"] == 0.01 and r["config"]["extra"] == "late"
    assert r["summary"]["best_acc"] == 0.97
    assert set(r["tags"]) == {"http", "checked"}
    assert r["notes"] == "Does logging over HTTP keep every point?"
    loss = api.history(run.id, "train/loss")
    assert list(loss["step"]) == list(range(5000))
    assert list(loss["value"]) == [1.0 / (s + 1) for s in range(5000)]
    odd = list(api.history(run.id, "odd")["value"])
    assert math.isnan(odd[0]) and odd[1:] == [math.inf, -math.inf]
    grad = api.history(run.id, "grad")
    assert len(grad["step"]) == 120_000 and grad["value"][-1] == 119_999 * 0.25
    _, run_json = api_get(served.url, f"/api/v1/runs/{run.id}")
    assert run_json["environment"]["python"]["executable"] == sys.executable
    assert [n["text"] for n in run_json["notebook"]] == ["looked fine"]


def test_resume_over_http_continues_the_steps(served: LabbookServer) -> None:
    first = labbook.init(url=served.url, project="remote", id="resumable", system_metrics=False)
    for step in range(10):
        first.log({"loss": float(step)})
    first.finish("failed")
    with pytest.raises(ValueError, match="already exists"):
        labbook.init(url=served.url, project="remote", id="resumable", system_metrics=False)
    again = labbook.init(
        url=served.url, id="resumable", resume="allow", project="remote", system_metrics=False
    )
    assert again.step == 10
    again.log({"loss": 10.0})
    again.finish()
    api = served.api()
    assert list(api.history("resumable", "loss")["step"]) == list(range(11))
    assert api.run("resumable")["status"] == "finished"


def test_labbook_url_in_the_environment_selects_the_server(
    served: LabbookServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABBOOK_URL", served.url)
    with labbook.init(project="from-env", system_metrics=False) as run:
        run.log({"x": 1.0})
    assert served.api().run(run.id)["status"] == "finished"


def test_bad_addresses_and_requests_are_clear_errors(served: LabbookServer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="url"):
        labbook.init(url="ftp://example", system_metrics=False)
    with pytest.raises(ValueError, match="not both"):
        labbook.init(url=served.url, dir=str(tmp_path), system_metrics=False)
    # The write API names the field at fault and stores nothing.
    run = labbook.init(url=served.url, project="remote", system_metrics=False)
    status, body = api_post(
        served.url,
        f"/api/v1/runs/{run.id}/log",
        b'{"batch_id": "x", "series": {"loss": {"steps": [0], "ts_ms": [0], "values": [true]}}}',
    )
    assert status == 400
    assert body["error"]["field"] == "series.loss.values[0]"
    status, body = api_post(served.url, "/api/v1/runs/no-such-run/log", b'{"batch_id": "x"}')
    assert status == 404
    status, body = api_post(served.url, "/api/v1/runs", b'{"project": "p", "resume": "sometimes"}')
    assert status == 400 and body["error"]["field"] == "resume"
    run.finish()
    assert served.api().run(run.id)["metrics"] == {}


def test_a_repeated_batch_is_applied_once(served: LabbookServer) -> None:
    run = labbook.init(url=served.url, project="remote", system_metrics=False)
    run.finish()
    batch = json.dumps(
        {
            "batch_id": "same-batch",
            "series": {"loss": {"steps": [0, 1], "ts_ms": [5, 6], "values": [0.5, "NaN"]}},
        }
    ).encode()
    assert api_post(served.url, f"/api/v1/runs/{run.id}/log", batch) == (200, {"applied": True})
    assert api_post(served.url, f"/api/v1/runs/{run.id}/log", batch) == (200, {"applied": False})
    loss = served.api().history(run.id, "loss")
    assert list(loss["step"]) == [0, 1] and math.isnan(loss["value"][1])


def restart_on(store: StoreRef, port: int, artifacts: Path | None = None) -> LabbookServer:
    """The server again on the same port, as a restarted service would be;
    the port may take a moment to be free again."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return LabbookServer(store, port=port, artifacts=artifacts)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# A training process logging into the server; it prints its run id, then
# "done" once finish() returned.
SDK_CLIENT = textwrap.dedent("""
    import sys, time, labbook
    url, steps = sys.argv[1], int(sys.argv[2])
    run = labbook.init(url=url, project="outage", system_metrics=False)
    print(run.id, flush=True)
    for s in range(steps):
        run.log({"loss": 1.0 / (s + 1), "acc": s / steps})
        time.sleep(0.002)
    run.finish()
    print("done", flush=True)
""")


def test_logging_survives_a_server_outage(tmp_path: Path, server_store: StoreRef) -> None:
    """The server dies and comes back while the SDK logs: log() never
    blocks, and every point lands once."""
    artifacts = tmp_path / "artifacts"
    server = LabbookServer(server_store, artifacts=artifacts)
    steps = 2000
    client = subprocess.Popen(
        [sys.executable, "-c", SDK_CLIENT, server.url, str(steps)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None
        run_id = read_line(client.stdout, what="the client's run id").strip()
        # Kill the server once points are landing, while the client logs.
        api = server.api()
        deadline = time.monotonic() + 60
        while api.run(run_id)["metrics"].get("loss", {}).get("count", 0) == 0:
            assert time.monotonic() < deadline, "no point reached the server"
            time.sleep(0.05)
        server.kill()
        # The outage itself: the client keeps logging for 2 s into nothing.
        time.sleep(2.0)
        server = restart_on(server_store, server.port, artifacts)
        out, err = client.communicate(timeout=120)
        assert client.returncode == 0, err[-2000:]
        assert out.strip() == "done"
        api = server.api()
        for key in ("loss", "acc"):
            h = api.history(run_id, key)
            assert list(h["step"]) == list(range(steps)), f"{key}: {len(h['step'])} points"
        assert list(api.history(run_id, "loss")["value"]) == [1.0 / (s + 1) for s in range(steps)]
        assert api.run(run_id)["status"] == "finished"
    finally:
        if client.poll() is None:
            client.kill()
        server.stop()


def test_an_address_other_machines_reach_needs_no_auth_said_aloud(tmp_path: Path) -> None:
    """Without accounts, `serve` and `ui` on an address other machines can
    reach are refused unless --no-auth says so (`serve --auth` is in
    test_auth.py)."""
    store = tmp_path / ".labbook"
    for command in ("serve", "ui"):
        refused = subprocess.run(
            [labbook_bin(), "--dir", str(store), command, "--host", "0.0.0.0", "--port", "0"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert refused.returncode == 1, refused.stderr
        first, hint = refused.stderr.strip().splitlines()
        assert "will not listen on 0.0.0.0 without accounts" in first
        assert "--no-auth" in hint
    served = LabbookServer(store, host="0.0.0.0", args=("--no-auth",))
    try:
        status, _ = api_get(f"http://127.0.0.1:{served.port}", "/api/v1/projects")
        assert status == 200
    finally:
        served.stop()
