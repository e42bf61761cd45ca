"""The `mlflow` client against `labbook serve --auth`, signing in as MLflow's
own auth app expects: MLFLOW_TRACKING_TOKEN (bearer) or
MLFLOW_TRACKING_USERNAME/PASSWORD (basic). Without them, or with wrong
ones, every call is MLflow's 401 and nothing is written."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import mlflow
import pytest
from conftest import (
    LabbookServers,
    StoreRef,
    _labbook_binary,
    labbook_only,
    store_args,
    store_env,
    store_serve_args,
)
from mlflow.exceptions import MlflowException

PASSWORD = "a long passphrase"


def cli(store: StoreRef, *args: str, stdin: str | None = None) -> str:
    """`labbook --dir STORE ARGS…` (or `--store URL`), which must succeed; its output."""
    done = subprocess.run(
        [str(_labbook_binary()), *store_args(store), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def accounts(store: StoreRef) -> tuple[str, str]:
    """User ada with PASSWORD, a live token of hers and a revoked one."""
    cli(store, "user", "add", "ada", "--password-stdin", stdin=PASSWORD + "\n")
    live = json.loads(cli(store, "token", "create", "ada", "--json"))["token"]
    old = json.loads(cli(store, "token", "create", "ada", "--name", "old", "--json"))
    cli(store, "token", "revoke", str(old["id"]))
    return live, old["token"]


@labbook_only
def test_the_mlflow_client_signs_in_by_token_or_password(
    tmp_path: Path,
    labbook_servers: LabbookServers,
    monkeypatch: pytest.MonkeyPatch,
    fresh_store: StoreRef,
) -> None:
    live, revoked = accounts(fresh_store)
    server = labbook_servers.start(
        tmp_path,
        env=store_env(fresh_store),
        args=("--auth", *store_serve_args(fresh_store, tmp_path)),
    )
    for var in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    client = mlflow.MlflowClient(tracking_uri=server.url)

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", live)
    experiment = client.create_experiment("signed-in")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "loss", 0.5, step=0)
    client.log_param(run.info.run_id, "lr", "0.1")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ada")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    client.log_metric(run.info.run_id, "loss", 0.25, step=1)
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.value for m in history] == [0.5, 0.25]
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")

    for name, env in (
        ("nothing", {}),
        ("revoked token", {"MLFLOW_TRACKING_TOKEN": revoked}),
        (
            "wrong password",
            {"MLFLOW_TRACKING_USERNAME": "ada", "MLFLOW_TRACKING_PASSWORD": "nope-nope"},
        ),
    ):
        with monkeypatch.context() as scoped:
            for var, value in env.items():
                scoped.setenv(var, value)
            with pytest.raises(MlflowException) as refused:
                client.log_metric(run.info.run_id, "loss", 9.0, step=2)
            assert refused.value.get_http_status_code() == 401, name
            assert refused.value.error_code == "UNAUTHENTICATED", name
            with pytest.raises(MlflowException):
                client.search_experiments()
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", live)
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [0.5, 0.25]
    assert client.get_run(run.info.run_id).data.params == {"lr": "0.1"}


@labbook_only
def test_the_mlflow_client_meets_roles_per_experiment(
    tmp_path: Path,
    labbook_servers: LabbookServers,
    monkeypatch: pytest.MonkeyPatch,
    fresh_store: StoreRef,
) -> None:
    store = fresh_store
    tokens = {}
    for name in ("ada", "bob", "carol"):
        cli(store, "user", "add", name, "--password-stdin", stdin=PASSWORD + "\n")
        tokens[name] = json.loads(cli(store, "token", "create", name, "--json"))["token"]
    server = labbook_servers.start(
        tmp_path,
        env=store_env(store),
        args=(
            "--auth",
            "--default-permission",
            "NO_PERMISSIONS",
            *store_serve_args(store, tmp_path),
        ),
    )
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    client = mlflow.MlflowClient(tracking_uri=server.url)

    def as_(user: str) -> None:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", tokens[user])

    as_("ada")
    shared = client.create_experiment("shared")
    run = client.create_run(shared).info.run_id
    client.log_metric(run, "loss", 0.5, step=0)
    notes = tmp_path / "notes.txt"
    notes.write_text("ada's notes")
    client.log_artifact(run, str(notes))
    cli(store, "perm", "set", "bob", "READ", "--project", "shared")

    as_("bob")
    assert client.get_run(run).data.metrics == {"loss": 0.5}
    assert [e.name for e in client.search_experiments()] == ["shared"]
    assert [a.path for a in client.list_artifacts(run)] == ["notes.txt"]
    for write in (
        lambda: client.log_metric(run, "loss", 9.0, step=1),
        lambda: client.set_tag(run, "bob", "was here"),
        lambda: client.create_run(shared),
        lambda: client.delete_run(run),
        lambda: client.rename_experiment(shared, "bobs"),
    ):
        with pytest.raises(MlflowException) as refused:
            write()
        assert refused.value.get_http_status_code() == 403
        assert refused.value.error_code == "PERMISSION_DENIED"
    with pytest.raises(Exception, match="403"):
        client.log_artifact(run, str(notes), artifact_path="bob")

    as_("carol")
    assert client.search_experiments() == []
    with pytest.raises(MlflowException) as refused:
        client.get_run(run)
    assert refused.value.error_code == "PERMISSION_DENIED"
    assert "shared" not in str(refused.value) and run not in str(refused.value)
    # Her own experiment, made the way `mlflow.set_experiment` makes one.
    mlflow.set_tracking_uri(server.url)
    try:
        mlflow.set_experiment("carols")
        with mlflow.start_run() as own:
            mlflow.log_metric("acc", 0.9)
    finally:
        mlflow.set_tracking_uri(None)
    assert client.get_run(own.info.run_id).data.metrics == {"acc": 0.9}
    assert [e.name for e in client.search_experiments()] == ["carols"]

    as_("ada")
    kept = client.get_run(run)
    assert kept.data.metrics == {"loss": 0.5} and "bob" not in kept.data.tags
    assert kept.info.lifecycle_stage == "active"
    assert [a.path for a in client.list_artifacts(run)] == ["notes.txt"]
    assert client.get_experiment(shared).name == "shared"
