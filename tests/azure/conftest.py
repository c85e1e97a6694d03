"""An Azure world on loopback: the fake Resource Manager, BES and classic APIs over
HTTPS, real blob storage in Azurite, and a manifest pointing at them.

Tests run the real CLI against it and count the requests the fake received.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.storage.blob import BlobServiceClient

from reconciler import cli
from tests.azure import trainers
from tests.conftest import Run
from tests.fakes.azurite import Azurite
from tests.fakes.fixtures import azurite  # noqa: F401 - the session's emulator
from tests.fakes.server import FakeAzure

SUB = "00000000-0000-0000-0000-0000000000aa"
RG = "retrain-test"
ARM_TOKEN = "arm-token-s3cret-0001"
BES_KEY = "bes-key-s3cret-0002"
CLASSIC_TOKEN = "classic-token-s3cret-0003"
ASSET = "Bike Demand [trained model]"
CONTAINER = "retrain"
HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def predictive_definition(uri: str = "https://old.example/initial.ilearner") -> dict[str, Any]:
    """An exported predictive web service (the example's), serving ``uri``."""
    doc: dict[str, Any] = json.loads(
        (ROOT / "examples" / "bike_rental" / "webservice.json").read_text()
    )
    for asset in doc["properties"]["assets"].values():
        if asset["name"] == ASSET:
            asset["locationInfo"]["uri"] = uri
    doc["properties"]["storageAccount"] = {"name": "devstoreaccount1", "key": "k"}
    doc["properties"]["commitmentPlan"] = {
        "id": f"/subscriptions/{SUB}/resourceGroups/{RG}/"
        "providers/Microsoft.MachineLearning/"
        "commitmentPlans/plan"
    }
    return doc


TRAINING_DEFINITION = {
    "location": "South Central US",
    "properties": {
        "title": "Bike Demand [Training Exp.]",
        "storageAccount": {"name": "devstoreaccount1"},
        "machineLearningWorkspace": {"id": "ws"},
        "commitmentPlan": {
            "id": f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/"
            "Microsoft.MachineLearning/commitmentPlans/plan"
        },
        "packageType": "Graph",
        "package": {"nodes": {}, "edges": [], "graphParameters": {}},
    },
}


@dataclass
class World:
    fake: FakeAzure
    emulator: Azurite
    root: Path
    bes_url: str
    env: dict[str, str]
    outputs: list[str] = field(default_factory=list)

    # -- set-up helpers ----------------------------------------------------------
    def blob(self, name: str, rows: list[float], container: str = "data") -> str:
        service = BlobServiceClient.from_connection_string(self.emulator.connection_string)
        client = service.get_container_client(container)
        if not client.exists():
            client.create_container()
        text = "y\n" + "".join(f"{v}\n" for v in rows)
        client.upload_blob(name, text.encode(), overwrite=True)
        return f"{container}/{name}"

    def seed_arm(self, name: str, uri: str = "https://old.example/initial.ilearner") -> None:
        self.fake.arm.seed_web_service(SUB, RG, name, predictive_definition(uri))

    def seed_classic(self, endpoints: tuple[str, ...] = ()) -> None:
        self.fake.classic.add_workspace("ws1", CLASSIC_TOKEN)
        resource = {
            "Name": ASSET,
            "Kind": "Resource",
            "Location": {
                "BaseLocation": "https://old.example/",
                "RelativeLocation": "c/initial.ilearner",
                "SasBlobToken": "?sig=x",
            },
        }
        self.fake.classic.seed_web_service(
            "ws1", "census", "Census [Predictive Exp.]", resources=[resource]
        )
        for name in endpoints:
            self.fake.classic.seed_endpoint("ws1", "census", name)

    def manifest(self, endpoints: str, *, extra_backend: str = "") -> Path:
        text = f"""\
apiVersion: retrain/v1
backend:
  kind: azure
  azure:
    subscriptionId: {SUB}
    resourceGroup: {RG}
    auth: {{tokenEnv: TEST_ARM_TOKEN}}
    endpoints:
      resourceManager: {self.fake.arm_base_url}
      classicManagement: {self.fake.classic_base_url}
    caBundle: {self.fake.ca_bundle_path}
    storage:
      connectionString: ${{env:TEST_STORAGE}}
      container: {CONTAINER}
    pollSeconds: 0.05
    retries: 4
{extra_backend}trainers:
  mean:
    bes:
      url: {self.bes_url}
      apiKey: ${{env:TEST_BES_KEY}}
    parameters: {{shift: 0}}
    timeout: 60
defaults:
  trainer: mean
  asset: {ASSET}
  version: "1"
  gate: {{metric: Score, minimum: 0.01}}
endpoints:
{endpoints}"""
        path = self.root / "retrain.yaml"
        path.write_text(text)
        return path

    # -- running -----------------------------------------------------------------
    def run(self, *args: str, capsys: pytest.CaptureFixture[str]) -> Run:
        capsys.readouterr()
        code = cli.main([*args, "-f", str(self.root / "retrain.yaml")], self.env, interactive=False)
        captured = capsys.readouterr()
        self.outputs += [captured.out, captured.err]
        return Run(code, captured.out, captured.err)

    # -- inspection ----------------------------------------------------------------
    def writes(self) -> list[str]:
        """Every mutating request the fake received, as "METHOD path"."""
        return [
            f"{r.method} {r.path}"
            for r in self.fake.server.requests()
            if r.method in ("PUT", "PATCH", "POST", "DELETE")
        ]

    def arm_uri(self, name: str) -> str:
        view = self.fake.arm.view(SUB, RG, name)
        assert view is not None
        for asset in view["properties"]["assets"].values():
            if asset["name"] == ASSET:
                return str(asset["locationInfo"]["uri"])
        raise AssertionError(f"no asset in {name}")

    def out_of_band_patch(self, name: str, uri: str) -> None:
        """What a person does with PowerShell: PATCH the assets by hand."""
        view = self.fake.arm.view(SUB, RG, name)
        assert view is not None
        assets = view["properties"]["assets"]
        for asset in assets.values():
            if asset["name"] == ASSET:
                asset["locationInfo"]["uri"] = uri
        url = (
            f"{self.fake.arm_base_url}/subscriptions/{SUB}/resourceGroups/{RG}/providers/"
            f"Microsoft.MachineLearning/webServices/{name}?api-version=2017-01-01"
        )
        headers = {"Authorization": "Bearer someone-else"}
        body = {"properties": {"packageType": "Graph", "assets": assets}}
        r = requests.patch(
            url, json=body, headers=headers, verify=self.fake.ca_bundle_path, timeout=10
        )
        assert r.status_code in (200, 202), r.text
        requests.get(url, headers=headers, verify=self.fake.ca_bundle_path, timeout=10)


@pytest.fixture
def world(azurite: Azurite, tmp_path: Path) -> Iterator[World]:  # noqa: F811
    with FakeAzure(blob_connection_string=azurite.connection_string) as fake:
        bes_url = fake.seed_arm_training_service(
            SUB,
            RG,
            "bike-training",
            TRAINING_DEFINITION,
            trainers.mean_trainer,
            model_outputs={"output1"},
            keys={"primary": BES_KEY, "secondary": BES_KEY + "-2"},
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEST_")}
        env.update(
            TEST_ARM_TOKEN=ARM_TOKEN,
            TEST_BES_KEY=BES_KEY,
            TEST_STORAGE=azurite.connection_string,
            TEST_CLASSIC=CLASSIC_TOKEN,
        )
        yield World(fake, azurite, tmp_path, bes_url, env)


SECRETS: Callable[[World], list[str]] = lambda w: [  # noqa: E731
    ARM_TOKEN,
    BES_KEY,
    CLASSIC_TOKEN,
    w.emulator.connection_string.split("AccountKey=")[1].split(";")[0],
]
