"""The provider contract harness for the Azure backend: the fake APIs plus Azurite.

Same powers as the local harness: inputs are blobs, the trainer is a BES
training service running the same tiny fit, out-of-band edits go through the
Resource Manager API as a person's would.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests
from azure.storage.blob import BlobServiceClient

from reconciler import model, redact
from reconciler.providers.azure import backend, config, provider
from tests.azure import trainers
from tests.azure.conftest import BES_KEY, RG, SUB, TRAINING_DEFINITION, predictive_definition
from tests.fakes.azurite import Azurite
from tests.fakes.server import FakeAzure
from tests.providers import conftest


class AzureHarness(conftest.Harness):
    bes_url: str = ""
    blobs: BlobServiceClient

    def data(self, name: str, rows: list[float]) -> str:
        container = self.blobs.get_container_client("data")
        with contextlib.suppress(Exception):
            container.create_container()
        container.upload_blob(
            name, ("y\n" + "".join(f"{v}\n" for v in rows)).encode(), overwrite=True
        )
        return f"data/{name}"

    def trainer(self, secrets: dict[str, str] | None) -> model.Trainer:
        return model.Trainer(
            "tiny",
            backend.Bes(self.bes_url, model.Secret("env:K", BES_KEY)),
            timeout_seconds=60,
        )


@contextlib.contextmanager
def harness(emulator: Azurite, workdir: Path) -> Iterator[conftest.Harness]:
    definition = predictive_definition()
    (workdir / "webservice.json").write_text(json.dumps(definition))
    with FakeAzure(blob_connection_string=emulator.connection_string) as fake:
        bes_url = fake.seed_arm_training_service(
            SUB,
            RG,
            "training",
            TRAINING_DEFINITION,
            trainers.mean_trainer,
            model_outputs={"output1"},
            keys={"primary": BES_KEY, "secondary": BES_KEY},
        )
        section = {
            "subscriptionId": SUB,
            "resourceGroup": RG,
            "endpoints": {
                "resourceManager": fake.arm_base_url,
                "classicManagement": fake.classic_base_url,
            },
            "caBundle": fake.ca_bundle_path,
            "storage": {
                "connectionString": model.Secret("env:S", emulator.connection_string),
                "container": f"contract-{workdir.name[-20:].lower().strip('-_')}".replace("_", "-"),
            },
            "pollSeconds": 0.05,
        }
        cfg = config.from_section(section, manifest_dir=workdir, env={})
        from reconciler.providers.azure import arm

        prov = provider.AzureProvider(
            cfg, env={}, scrub=redact.Redactor(), credential=arm.StaticToken("token"), workers=4
        )

        def raw(ws: str) -> dict[str, Any] | None:
            return fake.arm.view(SUB, RG, ws)

        def edit(ws: str, change: Callable[[dict[str, Any]], None]) -> None:
            doc = fake.arm.view(SUB, RG, ws)
            assert doc is not None
            change(doc)
            url = (
                f"{fake.arm_base_url}/subscriptions/{SUB}/resourceGroups/{RG}/providers/"
                f"Microsoft.MachineLearning/webServices/{ws}?api-version=2017-01-01"
            )
            body = {
                "tags": doc["tags"],
                "properties": {"packageType": "Graph", "assets": doc["properties"]["assets"]},
            }
            headers = {"Authorization": "Bearer someone-else"}
            r = requests.patch(
                url, json=body, headers=headers, verify=fake.ca_bundle_path, timeout=10
            )
            assert r.status_code in (200, 202), r.text
            requests.get(url, headers=headers, verify=fake.ca_bundle_path, timeout=10)

        made = AzureHarness(prov, workdir, raw, edit, passes_environment=False)
        made.bes_url = bes_url
        made.blobs = BlobServiceClient.from_connection_string(emulator.connection_string)
        yield made
