"""MLflow 3 logged models through MlflowClient."""

from __future__ import annotations

import mlflow
import pytest
from conftest import Experiment
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException


def test_logged_model_lifecycle(experiment: Experiment, client: mlflow.MlflowClient) -> None:
    run_id = client.create_run(experiment.id).info.run_id
    model = client.create_logged_model(
        experiment.id,
        name="lm-a",
        source_run_id=run_id,
        tags={"t": "1", "other": "x"},
        params={"p": "x", "n": "3"},
        model_type="agent",
    )
    model_id = model.model_id
    assert model_id
    assert model.name == "lm-a"
    assert model.experiment_id == experiment.id
    assert model.source_run_id == run_id
    assert model.model_type == "agent"
    assert model.status == LoggedModelStatus.PENDING
    assert model.tags == {"t": "1", "other": "x"}
    assert model.params == {"p": "x", "n": "3"}
    assert model.artifact_location
    assert model.creation_timestamp > 1_600_000_000_000

    got = client.get_logged_model(model_id)
    assert (got.model_id, got.name, got.experiment_id, got.source_run_id, got.model_type) == (
        model_id,
        "lm-a",
        experiment.id,
        run_id,
        "agent",
    )
    assert got.tags == {"t": "1", "other": "x"}
    assert got.params == {"p": "x", "n": "3"}
    assert got.status == LoggedModelStatus.PENDING

    client.set_logged_model_tags(model_id, {"t": "2", "new": "y"})
    client.delete_logged_model_tag(model_id, "other")
    assert client.get_logged_model(model_id).tags == {"t": "2", "new": "y"}

    client.log_model_params(model_id, {"q": "0.5"})
    assert client.get_logged_model(model_id).params == {"p": "x", "n": "3", "q": "0.5"}

    # Metrics logged against the model show up on it.
    client.log_metric(run_id, "acc", 0.75, step=2, model_id=model_id)
    metrics = client.get_logged_model(model_id).metrics or []
    assert [(m.key, m.value, m.step, m.model_id) for m in metrics] == [("acc", 0.75, 2, model_id)]

    finalized = client.finalize_logged_model(model_id, "READY")
    assert finalized.status == LoggedModelStatus.READY
    assert client.get_logged_model(model_id).status == LoggedModelStatus.READY
    assert client.get_logged_model(model_id).last_updated_timestamp >= model.creation_timestamp

    client.delete_logged_model(model_id)
    with pytest.raises(MlflowException) as err:
        client.get_logged_model(model_id)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert [m.model_id for m in client.search_logged_models([experiment.id])] == []


def test_search_logged_models(experiment: Experiment, client: mlflow.MlflowClient) -> None:
    ids = {}
    for name, params, tags in [
        ("m-one", {"lr": "0.1"}, {"stage": "dev"}),
        ("m-two", {"lr": "0.2"}, {"stage": "prod"}),
        ("m-three", {"lr": "0.1"}, {"stage": "prod"}),
    ]:
        ids[name] = client.create_logged_model(
            experiment.id, name=name, params=params, tags=tags
        ).model_id
    client.finalize_logged_model(ids["m-two"], "READY")

    def names(**kwargs: object) -> list[str]:
        found = client.search_logged_models([experiment.id], **kwargs)  # type: ignore[arg-type]
        return [m.name for m in found]

    # Newest first by default.
    assert names() == ["m-three", "m-two", "m-one"]
    assert names(filter_string="name = 'm-two'") == ["m-two"]
    assert names(filter_string="params.lr = '0.1'") == ["m-three", "m-one"]
    assert names(filter_string="tags.stage = 'prod'") == ["m-three", "m-two"]
    # (MLflow 3.17 matches nothing with `status = 'READY'`: it stores the status as an
    # integer, so the status filter is left out here.)
    assert names(filter_string="name IN ('m-one', 'm-two')") == ["m-two", "m-one"]
    assert names(filter_string="creation_timestamp > 0") == ["m-three", "m-two", "m-one"]
    assert names(filter_string="name LIKE 'm-t%'") == ["m-three", "m-two"]
    assert names(order_by=[{"field_name": "name", "ascending": True}]) == [
        "m-one",
        "m-three",
        "m-two",
    ]
    assert names(order_by=[{"field_name": "creation_timestamp", "ascending": True}]) == [
        "m-one",
        "m-two",
        "m-three",
    ]

    seen: list[str] = []
    token = None
    while True:
        page = client.search_logged_models(
            [experiment.id],
            order_by=[{"field_name": "name", "ascending": True}],
            max_results=2,
            page_token=token,
        )
        seen.extend(m.name for m in page)
        token = page.token
        if not token:
            break
    assert seen == ["m-one", "m-three", "m-two"]

    # The fluent search returns the same.
    frame = mlflow.search_logged_models(experiment_ids=[experiment.id], output_format="list")
    assert sorted(m.model_id for m in frame) == sorted(ids.values())
