"""Models: pyfunc log_model, the model registry, and loading models:/ URIs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd
import pytest
from conftest import Server, unique_name
from mlflow.exceptions import MlflowException

# No requirement inference: it would import and run the model in a subprocess.
PIP_REQUIREMENTS = [f"mlflow=={mlflow.__version__}"]


class AddOne(mlflow.pyfunc.PythonModel):
    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return model_input + 1


class TimesTwo(mlflow.pyfunc.PythonModel):
    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return model_input * 2


@dataclass
class Registered:
    name: str
    run_id: str
    experiment_id: str
    model_id: str
    model_uri: str


@pytest.fixture(scope="module")
def registered(server: Server) -> Iterator[Registered]:
    mlflow.set_tracking_uri(server.url)
    name = unique_name("conf-model")
    exp = mlflow.set_experiment(unique_name("conf-models"))
    with mlflow.start_run() as run:
        mlflow.log_param("kind", "add-one")
        info = mlflow.pyfunc.log_model(
            name="adder",
            python_model=AddOne(),
            registered_model_name=name,
            pip_requirements=PIP_REQUIREMENTS,
        )
    yield Registered(name, run.info.run_id, exp.experiment_id, info.model_id, info.model_uri)


INPUT = pd.DataFrame({"a": [1.0, 2.5, -3.0], "b": [10, 20, 30]})


def test_log_model_and_load_by_version(registered: Registered) -> None:
    assert registered.model_uri == f"models:/{registered.model_id}"
    by_version = mlflow.pyfunc.load_model(f"models:/{registered.name}/1")
    pd.testing.assert_frame_equal(by_version.predict(INPUT), INPUT + 1)
    # The logged model itself, and the run's view of it.
    by_id = mlflow.pyfunc.load_model(registered.model_uri)
    pd.testing.assert_frame_equal(by_id.predict(INPUT), INPUT + 1)
    logged = mlflow.get_logged_model(registered.model_id)
    assert logged.name == "adder"
    assert logged.source_run_id == registered.run_id
    assert logged.experiment_id == registered.experiment_id
    assert str(logged.status) == "READY"


def test_registry_reads(registered: Registered, client: mlflow.MlflowClient) -> None:
    model = client.get_registered_model(registered.name)
    assert model.name == registered.name
    assert [v.version for v in model.latest_versions] == ["1"]
    version = client.get_model_version(registered.name, "1")
    assert version.version == "1"
    assert version.name == registered.name
    assert version.run_id == registered.run_id
    assert version.status == "READY"
    assert version.current_stage == "None"
    # MLflow 3 registers the logged model by reference; the files stay where log_model put
    # them, and the download URI resolves the reference to that place.
    assert version.source == f"models:/{registered.model_id}"
    uri = client.get_model_version_download_uri(registered.name, "1")
    assert uri == client.get_logged_model(registered.model_id).artifact_location
    assert [v.version for v in client.search_model_versions(f"name = '{registered.name}'")] == ["1"]


def test_registry_lifecycle(
    registered: Registered, client: mlflow.MlflowClient, tmp_path: Any
) -> None:
    name = unique_name("conf-reg")
    created = client.create_registered_model(
        name, tags={"owner": "team-a"}, description="first description"
    )
    assert created.name == name
    # A version from the already-logged model's files, and one from a new model.
    source = client.get_model_version(registered.name, "1").source
    v1 = client.create_model_version(
        name,
        source,
        run_id=registered.run_id,
        tags={"v": "one"},
        description="v1 desc",
        model_id=registered.model_id,
    )
    assert v1.version == "1"
    assert v1.source == source
    assert v1.tags == {"v": "one"}
    with mlflow.start_run(experiment_id=registered.experiment_id) as second_run:
        info = mlflow.pyfunc.log_model(
            name="doubler",
            python_model=TimesTwo(),
            registered_model_name=name,
            pip_requirements=PIP_REQUIREMENTS,
        )
    v2 = client.get_model_version(name, "2")
    assert v2.source == f"models:/{info.model_id}"
    assert v2.version == "2"
    assert v2.run_id == second_run.info.run_id

    pd.testing.assert_frame_equal(
        mlflow.pyfunc.load_model(f"models:/{name}/1").predict(INPUT), INPUT + 1
    )
    pd.testing.assert_frame_equal(
        mlflow.pyfunc.load_model(f"models:/{name}/2").predict(INPUT), INPUT * 2
    )
    pd.testing.assert_frame_equal(
        mlflow.pyfunc.load_model(f"models:/{name}/latest").predict(INPUT), INPUT * 2
    )

    # Aliases.
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    assert client.get_model_version_by_alias(name, "challenger").version == "2"
    assert client.get_registered_model(name).aliases == {"champion": "1", "challenger": "2"}
    assert client.get_model_version(name, "1").aliases == ["champion"]
    champion = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    pd.testing.assert_frame_equal(champion.predict(INPUT), INPUT + 1)
    client.set_registered_model_alias(name, "champion", "2")  # moves
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    client.delete_registered_model_alias(name, "challenger")
    assert client.get_registered_model(name).aliases == {"champion": "2"}
    with pytest.raises(MlflowException) as err:
        client.get_model_version_by_alias(name, "challenger")
    assert err.value.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")

    # Tags.
    client.set_registered_model_tag(name, "owner", "team-b")
    client.set_registered_model_tag(name, "extra", "1")
    client.delete_registered_model_tag(name, "extra")
    assert client.get_registered_model(name).tags == {"owner": "team-b"}
    client.set_model_version_tag(name, "1", "validated", "true")
    client.delete_model_version_tag(name, "1", "v")
    assert client.get_model_version(name, "1").tags == {"validated": "true"}

    # Descriptions.
    assert client.get_registered_model(name).description == "first description"
    client.update_registered_model(name, description="second description")
    assert client.get_registered_model(name).description == "second description"
    assert client.get_model_version(name, "1").description == "v1 desc"
    client.update_model_version(name, "1", description="v1 updated")
    assert client.get_model_version(name, "1").description == "v1 updated"

    # Stages (deprecated in MLflow 3, still served).
    with pytest.warns(FutureWarning):
        moved = client.transition_model_version_stage(name, "1", "Staging")
    assert moved.current_stage == "Staging"
    assert client.get_model_version(name, "1").current_stage == "Staging"
    with pytest.warns(FutureWarning):
        client.transition_model_version_stage(
            name, "2", "Production", archive_existing_versions=True
        )
    assert client.get_model_version(name, "2").current_stage == "Production"
    with pytest.warns(FutureWarning):
        latest = client.get_latest_versions(name, stages=["Production"])
    assert [v.version for v in latest] == ["2"]

    # Searches.
    prefix = name[: name.rindex("-")]
    found = client.search_registered_models(filter_string=f"name LIKE '{prefix}%'")
    assert name in [m.name for m in found]
    exact = client.search_registered_models(filter_string=f"name = '{name}'")
    assert [m.name for m in exact] == [name]
    by_tag = client.search_registered_models(
        filter_string=f"name = '{name}' AND tags.owner = 'team-b'"
    )
    assert [m.name for m in by_tag] == [name]
    versions = client.search_model_versions(f"name = '{name}'", order_by=["version_number ASC"])
    assert [v.version for v in versions] == ["1", "2"]
    by_run = client.search_model_versions(f"run_id = '{registered.run_id}'")
    assert sorted((v.name, v.version) for v in by_run) == sorted(
        [(registered.name, "1"), (name, "1")]
    )
    assert [v.version for v in client.search_model_versions(f"run_id = '{v2.run_id}'")] == ["2"]
    assert client.get_model_version_download_uri(name, "2")

    # Rename.
    renamed = unique_name("conf-renamed")
    client.rename_registered_model(name, renamed)
    assert client.get_model_version(renamed, "2").version == "2"
    with pytest.raises(MlflowException) as err:
        client.get_registered_model(name)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    # Deletes.
    client.delete_model_version(renamed, "1")
    with pytest.raises(MlflowException) as err:
        client.get_model_version(renamed, "1")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert [v.version for v in client.search_model_versions(f"name = '{renamed}'")] == ["2"]
    client.delete_registered_model(renamed)
    with pytest.raises(MlflowException) as err:
        client.get_registered_model(renamed)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert list(client.search_registered_models(filter_string=f"name = '{renamed}'")) == []


def test_registry_errors(client: mlflow.MlflowClient) -> None:
    name = unique_name("conf-regerr")
    client.create_registered_model(name)
    with pytest.raises(MlflowException) as err:
        client.create_registered_model(name)
    assert err.value.error_code == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(MlflowException) as err:
        client.get_model_version(name, "7")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as err:
        client.get_registered_model(unique_name("conf-nope"))
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_search_registered_models_paging(client: mlflow.MlflowClient) -> None:
    prefix = unique_name("conf-page")
    names = [f"{prefix}-{i}" for i in range(5)]
    for n in names:
        client.create_registered_model(n)
    seen: list[str] = []
    token = None
    while True:
        page = client.search_registered_models(
            filter_string=f"name LIKE '{prefix}-%'",
            order_by=["name ASC"],
            max_results=2,
            page_token=token,
        )
        seen.extend(m.name for m in page)
        token = page.token
        if not token:
            break
    assert seen == names
