"""Real client code from other projects, run unchanged twice: once against the server
under test, once against MLflow's own SQL store (``sqlite:///``, no server). The two
stores must hold the same runs, params, tags, datasets, artifacts and metric histories,
point for point: a point counted twice, or dropped, fails.

Run names, run ids and wall-clock values (timestamps, fit and score times) differ
between the two executions; everything else the code logged must match.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from conftest import Server, unique_name
from mlflow import MlflowClient

# Metric keys whose values are wall-clock measurements.
VOLATILE_METRIC = re.compile(r"time|duration", re.IGNORECASE)
# Tags whose values name this execution (ids, users, source paths, timings).
VOLATILE_TAG = re.compile(
    r"^(mlflow\.(runName|parentRunId|user|source\.|log-model\.history|loggedArtifacts|"
    r"autologging|databricks|note\.content|modelVersions)|datetime_)"
)

Flow = Callable[[str], None]


def _dataset(n: int = 240, features: int = 6, seed: int = 0) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features))
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).astype(int) + (x[:, 3] > 1).astype(int)
    return x, y


def sklearn_grid_search(experiment: str) -> None:
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    mlflow.set_experiment(experiment)
    mlflow.sklearn.autolog(log_models=True, silent=True)
    try:
        x, y = _dataset()
        search = GridSearchCV(
            SVC(random_state=0), {"C": [0.1, 1.0, 10.0], "kernel": ["linear", "rbf"]}, cv=3
        )
        with mlflow.start_run(run_name="grid"):
            search.fit(x, y)
    finally:
        mlflow.sklearn.autolog(disable=True)


def lightgbm_autolog(experiment: str) -> None:
    import lightgbm as lgb

    mlflow.set_experiment(experiment)
    mlflow.lightgbm.autolog(log_models=True, silent=True)
    try:
        x, y = _dataset()
        train = lgb.Dataset(x[:180], label=y[:180])
        valid = lgb.Dataset(x[180:], label=y[180:], reference=train)
        params = {
            "objective": "multiclass",
            "num_class": 3,
            "learning_rate": 0.1,
            "num_leaves": 7,
            "deterministic": True,
            "num_threads": 1,
            "verbose": -1,
            "seed": 0,
        }
        with mlflow.start_run(run_name="lgb"):
            lgb.train(
                params,
                train,
                num_boost_round=20,
                valid_sets=[train, valid],
                valid_names=["train", "valid"],
                callbacks=[lgb.early_stopping(5, verbose=False)],
            )
    finally:
        mlflow.lightgbm.autolog(disable=True)


def optuna_mlflow_callback(experiment: str) -> None:
    import optuna
    from optuna_integration.mlflow import MLflowCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    callback = MLflowCallback(
        tracking_uri=mlflow.get_tracking_uri(),
        metric_name="loss",
        create_experiment=True,
        mlflow_kwargs={"nested": False},
    )

    @callback.track_in_mlflow()
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -4, 4)
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        depth = trial.suggest_int("depth", 1, 8)
        for step in range(3):
            mlflow.log_metric("partial", (x - 1) ** 2 / (step + 1), step=step)
        return (x - 1) ** 2 + math.log10(lr) ** 2 / 100 + depth / 10

    study = optuna.create_study(study_name=experiment, sampler=optuna.samplers.TPESampler(seed=7))
    study.optimize(objective, n_trials=6, callbacks=[callback])


def registry_with_aliases(experiment: str) -> None:
    from sklearn.linear_model import LogisticRegression

    mlflow.set_experiment(experiment)
    x, y = _dataset()
    model = LogisticRegression(max_iter=200).fit(x, y)
    client = MlflowClient()
    name = f"{experiment}-model"
    with mlflow.start_run(run_name="register") as run:
        mlflow.log_param("max_iter", 200)
        mlflow.log_metric("train_acc", float(model.score(x, y)))
        info = mlflow.sklearn.log_model(model, name="model", input_example=x[:2])
    first = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    second = mlflow.register_model(info.model_uri, name)
    client.set_registered_model_alias(name, "champion", first.version)
    client.set_registered_model_alias(name, "challenger", second.version)
    client.set_model_version_tag(name, second.version, "validated", "yes")
    client.update_registered_model(name, description="logistic baseline")
    # The alias moves; loading through it gives back the same predictions.
    client.set_registered_model_alias(name, "champion", second.version)
    loaded = mlflow.sklearn.load_model(f"models:/{name}@champion")
    assert (loaded.predict(x) == model.predict(x)).all()


def _artifacts(
    client: MlflowClient, run_id: str, path: str | None = None, depth: int = 0
) -> list[str]:
    out: list[str] = []
    for f in client.list_artifacts(run_id, path):
        if f.is_dir and depth < 6:
            out.extend(_artifacts(client, run_id, f.path, depth + 1))
        else:
            out.append(f.path)
    return out


def _number(value: float, volatile: bool) -> object:
    if volatile:
        return "<time>"
    return "NaN" if math.isnan(value) else value


def _run_snapshot(client: MlflowClient, run: Any, keys: dict[str, str]) -> dict[str, Any]:
    data = run.data
    tags = {
        k: ("<varies>" if VOLATILE_TAG.match(k) else v)
        for k, v in data.tags.items()
        if not k.startswith("mlflow.source") and k != "mlflow.user"
    }
    parent = data.tags.get("mlflow.parentRunId")
    histories = {}
    for key in data.metrics:
        volatile = bool(VOLATILE_METRIC.search(key))
        points = client.get_metric_history(run.info.run_id, key)
        histories[key] = sorted((p.step, json.dumps(_number(p.value, volatile))) for p in points)
    return {
        "parent": keys.get(parent) if parent else None,
        "status": run.info.status,
        "params": data.params,
        "tags": tags,
        "histories": histories,
        "datasets": sorted(
            (
                d.dataset.name,
                d.dataset.digest,
                d.dataset.source_type,
                *sorted((t.key, t.value) for t in d.tags),
            )
            for d in run.inputs.dataset_inputs
        ),
        "artifacts": sorted(_artifacts(client, run.info.run_id)),
    }


def snapshot(uri: str, experiment: str) -> list[dict[str, Any]]:
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"{experiment} was not created at {uri}"
    runs = client.search_runs(
        [exp.experiment_id], max_results=1000, order_by=["attributes.start_time ASC"]
    )
    # A run is named by what it did, not by its random name or id.
    keys = {r.info.run_id: json.dumps(sorted(r.data.params.items())) for r in runs}
    out = sorted(
        (_run_snapshot(client, r, keys) for r in runs),
        key=lambda s: json.dumps(s, sort_keys=True),
    )
    models = client.search_registered_models(f"name = '{experiment}-model'")
    for m in models:
        versions = sorted(
            client.search_model_versions(f"name = '{m.name}'"), key=lambda v: int(v.version)
        )
        out.append(
            {
                "registered_model": m.name.removeprefix(experiment),
                "description": m.description,
                # MLflow's local store answers versions as ints, its REST API as strings.
                "aliases": {k: str(v) for k, v in sorted(m.aliases.items())},
                "versions": [
                    (
                        str(v.version),
                        v.status,
                        keys.get(v.run_id or ""),
                        dict(sorted(v.tags.items())),
                    )
                    for v in versions
                ],
            }
        )
    return out


def run_flow(flow: Flow, uri: str, experiment: str) -> list[dict[str, Any]]:
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flow(experiment)
    while mlflow.active_run() is not None:
        mlflow.end_run()
    return snapshot(uri, experiment)


@pytest.mark.parametrize(
    "flow",
    [sklearn_grid_search, lightgbm_autolog, optuna_mlflow_callback, registry_with_aliases],
    ids=lambda f: f.__name__,
)
def test_real_client_code_stores_what_mlflow_stores(
    flow: Flow, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # MLflow's own store puts its artifacts under ./mlruns
    name = unique_name(f"real-{flow.__name__}")
    reference = run_flow(flow, f"sqlite:///{tmp_path / 'mlflow.db'}", name)
    served = run_flow(flow, server.url, name)
    assert reference, "the flow logged nothing"
    assert len(served) == len(reference), "a different number of runs"
    for want, got in zip(reference, served, strict=True):
        for field in want:
            assert got[field] == want[field], (
                f"{field} differs for {json.dumps(want.get('params'))}"
            )
