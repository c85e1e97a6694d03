"""An Azure ML v2 world on loopback: the fake workspace over HTTPS, real blobs in Azurite,
a hand-made champion deployment serving a hand-registered model, and a manifest for it.

Tests run the real CLI against it and count what the fake received.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from reconciler import cli
from tests.conftest import Run
from tests.fakes.azureml.state import Workspace
from tests.fakes.azurite import Azurite
from tests.fakes.fixtures import azurite  # noqa: F401 - the session's emulator
from tests.fakes.server import FakeAzure
from tests.fakes.trainers import aml_linear_trainer

SUB = "00000000-0000-0000-0000-0000000000dd"
RG = "rg-bikes"
WS = "ws-bikes"
ARM_TOKEN = "aml-arm-token-s3cret-0001"
CODE = "azureml:bike-code:1"
STATE = "retrain-state"
WS_ID = (
    f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices"
    f"/workspaces/{WS}"
)
CHAMPION_MODEL = f"{WS_ID}/models/bike-handmade/versions/1"
DEPLOYMENT: dict[str, Any] = {
    "location": "eastus",
    "sku": {"name": "Default", "capacity": 1},
    "tags": {"team": "bikes"},
    "properties": {
        "endpointComputeType": "Managed",
        "instanceType": "Standard_DS3_v2",
        "environmentId": "azureml:sklearn-env:1",
        "environmentVariables": {"WORKERS": "2"},
    },
}
ROWS = "x,y\n1,2.1\n2,3.9\n3,6.2\n4,7.8\n5,10.1\n"
WRITES = ("PUT", "PATCH", "POST", "DELETE")


@dataclass
class World:
    fake: FakeAzure
    emulator: Azurite
    ws: Workspace
    root: Path
    env: dict[str, str]
    container: str
    outputs: list[str] = field(default_factory=list)

    # -- set-up ----------------------------------------------------------------------
    def data(self, name: str, text: str = ROWS) -> str:
        service = BlobServiceClient.from_connection_string(self.emulator.connection_string)
        service.get_container_client(self.container).upload_blob(
            f"data/{name}", text.encode(), overwrite=True
        )
        return f"data/{name}"

    def seed_endpoint(self, name: str) -> None:
        """An endpoint someone made by hand: deployment ``blue`` at 100 % on a model of theirs."""
        body: dict[str, Any] = {
            "location": "eastus",
            "tags": {"owner": "ops"},
            "properties": {"authMode": "Key"},
        }
        deployment = {**DEPLOYMENT, "properties": {**DEPLOYMENT["properties"]}}
        deployment["properties"]["model"] = CHAMPION_MODEL
        self.fake.azureml.seed_endpoint(
            self.ws,
            name,
            {**body, "properties": {**body["properties"], "traffic": {"blue": 100}}},
            deployments={"blue": deployment},
        )

    def manifest(self, endpoints: str, *, gate: str = "0.5") -> Path:
        text = f"""\
apiVersion: retrain/v1
backend:
  kind: azureml
  azureml:
    subscriptionId: {SUB}
    resourceGroup: {RG}
    workspace: {WS}
    auth: {{tokenEnv: TEST_ARM_TOKEN}}
    endpoints: {{resourceManager: {self.fake.arm_base_url}}}
    caBundle: {self.fake.ca_bundle_path}
    storage: {{connectionString: "${{env:TEST_STORAGE}}", container: {STATE}}}
    modelName: bike-demand
    pollSeconds: 0.02
    retries: 2
trainers:
  linear:
    command:
      code: {CODE}
      command: python train.py --data ${{{{inputs.data}}}} --model ${{{{outputs.model}}}}
      environment: azureml:sklearn-env:1
      compute: cpu-cluster
    parameters: {{scale: 1}}
    timeout: 60
defaults:
  trainer: linear
  asset: Bike Demand
  version: "1"
  gate: {{metric: Coefficient of Determination, minimum: {gate}}}
endpoints:
{endpoints}"""
        path = self.root / "retrain.yaml"
        path.write_text(text)
        return path

    # -- running -----------------------------------------------------------------------
    def run(self, *args: str, capsys: pytest.CaptureFixture[str]) -> Run:
        capsys.readouterr()
        code = cli.main([*args, "-f", str(self.root / "retrain.yaml")], self.env, interactive=False)
        captured = capsys.readouterr()
        self.outputs += [captured.out, captured.err]
        return Run(code, captured.out, captured.err)

    # -- inspection --------------------------------------------------------------------
    def writes(self) -> list[str]:
        """Every mutating Azure ML request the fake received (scoring aside)."""
        return [
            f"{r.method} {r.path}"
            for r in self.fake.server.requests()
            if r.method in WRITES and "machinelearningservices" in r.path.lower()
        ]

    def jobs(self) -> list[str]:
        return sorted(self.ws.jobs)

    def deployments(self, endpoint: str) -> dict[str, str]:
        """Each deployment's model, by name."""
        ep = self.ws.endpoints[endpoint.lower()]
        return {d.name: str(d.body["properties"]["model"]) for d in ep.deployments.values()}

    def traffic(self, endpoint: str) -> dict[str, int]:
        props = self.ws.endpoints[endpoint.lower()].body["properties"]
        return {k: int(v) for k, v in (props.get("traffic") or {}).items() if v}

    def tags(self, endpoint: str) -> dict[str, Any]:
        return dict(self.ws.endpoints[endpoint.lower()].body.get("tags") or {})


@pytest.fixture
def world(azurite: Azurite, tmp_path: Path) -> Iterator[World]:  # noqa: F811
    options = {"lro_polls": 1, "job_queue_polls": 1}
    with FakeAzure(blob_connection_string=azurite.connection_string, azureml_options=options) as f:
        ws = f.azureml.add_workspace(SUB, RG, WS)
        f.azureml.jobs.register_trainer(CODE, aml_linear_trainer)
        f.azureml.seed_model_version(
            ws,
            "bike-handmade",
            "1",
            {"modelUri": "azureml://datastores/workspaceblobstore/paths/handmade/model/"},
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEST_")}
        env.update(TEST_ARM_TOKEN=ARM_TOKEN, TEST_STORAGE=azurite.connection_string)
        container = ws.datastores["workspaceblobstore"]["properties"]["containerName"]
        yield World(f, azurite, ws, tmp_path, env, container)


def secrets(world: World) -> list[str]:
    return [ARM_TOKEN, world.emulator.connection_string.split("AccountKey=")[1].split(";")[0]]
