"""The provider contract harness for the Azure ML v2 backend: the fake plus Azurite.

The contract suite speaks of a web service definition with a trained-model asset.
An online endpoint has no such thing: the model lives on the deployment holding the
traffic. So ``raw`` presents one as the suite expects, an adapter and nothing more:
the endpoint's tags, its serving deployment's ``model`` as the asset's URI, and
every other field of both (traffic and model aside) so that "nothing else changed"
still means something. ``edit`` does what a person would: a PATCH of the endpoint's
tags, or a PUT of the serving deployment with another model. The fake refuses a
deployment model that is not a registered model version (as the service does), so
``foreign_model`` registers one by hand, outside retrain's model name.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests
from azure.storage.blob import BlobServiceClient

from reconciler import model, redact
from reconciler.providers.azureml import backend, config, provider
from tests.fakes.azurite import Azurite
from tests.fakes.server import FakeAzure
from tests.providers import conftest
from tests.providers.trainers import tiny

SUB = "00000000-0000-0000-0000-0000000000cc"
RG = "rg-contract"
WS = "ws-contract"
CODE = "azureml:tiny-code:1"
API = "2025-12-01"
WORKSPACE_ID = (
    f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices"
    f"/workspaces/{WS}"
)
HEADERS = {"Authorization": "Bearer someone-else"}
ENDPOINT_BODY = {"location": "eastus", "properties": {"authMode": "Key"}}
DEPLOYMENT_BODY = {
    "location": "eastus",
    "sku": {"name": "Default", "capacity": 1},
    "properties": {
        "endpointComputeType": "Managed",
        "instanceType": "Standard_DS3_v2",
        "environmentId": "azureml:sklearn-env:1",
    },
}
OPERATION_POLLS = 50  # bound on polls of one operation an edit waits for


class AzureMLHarness(conftest.Harness):
    container: str = ""
    blobs: BlobServiceClient
    api: Api | None = None

    def foreign_model(self) -> str:
        """A model version someone registered by hand, outside retrain's model name: a
        deployment may only serve a registered version, so that is what a person's edit
        points it at."""
        assert self.api is not None
        suffix = "/models/someone-elses-model/versions/1"
        body = {
            "properties": {
                "modelUri": "azureml://datastores/workspaceblobstore/paths/elsewhere/model",
                "modelType": "custom_model",
            }
        }
        answer = self.api.call("PUT", suffix, body)
        assert answer.status_code in (200, 201), answer.text
        return f"{WORKSPACE_ID}{suffix}"

    def data(self, name: str, rows: list[float]) -> str:
        client = self.blobs.get_container_client(self.container)
        client.upload_blob(
            f"data/{name}", ("y\n" + "".join(f"{v}\n" for v in rows)).encode(), overwrite=True
        )
        return f"data/{name}"

    def trainer(self, secrets: dict[str, str] | None) -> model.Trainer:
        spec = backend.Command(
            code=CODE,
            command="python tiny.py --data ${{inputs.data}} --model ${{outputs.model}}",
            environment="azureml:sklearn-env:1",
            compute="cpu",
        )
        return model.Trainer("tiny", spec, timeout_seconds=60)

    def endpoint(
        self,
        name: str,
        *,
        data: str,
        parameters: dict[str, Any] | None = None,
        secrets: dict[str, str] | None = None,
    ) -> model.Endpoint:
        made = super().endpoint(name, data=data, parameters=parameters, secrets=secrets)
        create = model.frozen_map({"endpoint": ENDPOINT_BODY, "deployment": DEPLOYMENT_BODY})
        address = backend.OnlineEndpoint(create=create)
        return model.Endpoint(
            name=made.name,
            web_service=made.web_service,
            asset=made.asset,
            version=made.version,
            trainer=made.trainer,
            inputs=made.inputs,
            parameters=made.parameters,
            gate=None,
            definition=None,
            source=made.source,
            address=address,
        )


class Api:
    """A person's requests to the fake (a token of their own)."""

    def __init__(self, fake: FakeAzure) -> None:
        self.base = (
            f"{fake.arm_base_url}/subscriptions/{SUB}/resourceGroups/{RG}/providers/"
            f"Microsoft.MachineLearningServices/workspaces/{WS}"
        )
        self.verify = fake.ca_bundle_path

    def call(self, method: str, suffix: str, body: Any = None) -> requests.Response:
        url = suffix if suffix.startswith("https://") else f"{self.base}{suffix}"
        params = None if "api-version=" in url else {"api-version": API}
        return requests.request(
            method, url, params=params, json=body, headers=HEADERS, verify=self.verify, timeout=30
        )

    def wait(self, answer: requests.Response) -> None:
        for header, done in (("Azure-AsyncOperation", "status"), ("Location", None)):
            url = answer.headers.get(header)
            for _ in range(OPERATION_POLLS if url else 0):
                polled = self.call("GET", url or "")
                if (done and polled.json().get(done) != "InProgress") or (
                    not done and polled.status_code != 202
                ):
                    return

    def serving(self, name: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        endpoint = self.call("GET", f"/onlineEndpoints/{name}")
        if endpoint.status_code == 404:
            return None
        body = endpoint.json()
        traffic = body["properties"].get("traffic") or {}
        deployments = self.call("GET", f"/onlineEndpoints/{name}/deployments").json()["value"]
        top = max(deployments, key=lambda d: traffic.get(d["name"], 0))
        return body, top


def view(api: Api, name: str) -> dict[str, Any] | None:
    """The endpoint as a definition with one asset (see the module docstring)."""
    found = api.serving(name)
    if found is None:
        return None
    endpoint, deployment = found
    ep_props = {k: v for k, v in endpoint["properties"].items() if k != "traffic"}
    dep_props = {k: v for k, v in deployment["properties"].items() if k != "model"}
    asset = {"name": conftest.ASSET, "locationInfo": {"uri": deployment["properties"]["model"]}}
    return {
        "tags": endpoint.get("tags") or {},
        "properties": {"assets": {"0": asset}, "endpoint": ep_props, "deployment": dep_props},
    }


@contextlib.contextmanager
def harness(emulator: Azurite, workdir: Path) -> Iterator[conftest.Harness]:
    options = {"lro_polls": 1, "job_queue_polls": 1}
    with FakeAzure(blob_connection_string=emulator.connection_string, azureml_options=options) as f:
        ws = f.azureml.add_workspace(SUB, RG, WS)
        f.azureml.jobs.register_trainer(CODE, tiny.train)
        container = ws.datastores["workspaceblobstore"]["properties"]["containerName"]
        section = {
            "subscriptionId": SUB,
            "resourceGroup": RG,
            "workspace": WS,
            "endpoints": {"resourceManager": f.arm_base_url},
            "caBundle": f.ca_bundle_path,
            "storage": {
                "connectionString": model.Secret("env:S", emulator.connection_string),
                "container": f"state-{workdir.name[-20:].lower().strip('-_')}".replace("_", "-"),
            },
            "pollSeconds": 0.02,
        }
        cfg = config.from_section(section, manifest_dir=workdir, env={})
        prov = provider.AzureMLProvider(
            cfg,
            env={},
            scrub=redact.Redactor(),
            credential=provider.StaticToken("token"),
            workers=4,
        )
        api = Api(f)

        def raw(name: str) -> dict[str, Any] | None:
            return view(api, name)

        def edit(name: str, change: Callable[[dict[str, Any]], None]) -> None:
            before = view(api, name)
            assert before is not None
            after = copy.deepcopy(before)
            change(after)
            if after["tags"] != before["tags"]:
                api.wait(api.call("PATCH", f"/onlineEndpoints/{name}", {"tags": after["tags"]}))
            uri = after["properties"]["assets"]["0"]["locationInfo"]["uri"]
            if uri != before["properties"]["assets"]["0"]["locationInfo"]["uri"]:
                _point(api, name, uri)

        made = AzureMLHarness(prov, workdir, raw, edit, passes_environment=False)
        made.container = container
        made.api = api
        made.blobs = BlobServiceClient.from_connection_string(emulator.connection_string)
        yield made


def _point(api: Api, name: str, uri: str) -> None:
    """A person's PUT of the serving deployment with another model."""
    assert uri.startswith("/subscriptions/"), f"a deployment serves registered versions: {uri}"
    found = api.serving(name)
    assert found is not None
    _, deployment = found
    body = {k: v for k, v in deployment.items() if k not in ("id", "name", "type", "systemData")}
    body["properties"] = dict(body["properties"], model=uri)
    body["properties"].pop("provisioningState", None)
    answer = api.call("PUT", f"/onlineEndpoints/{name}/deployments/{deployment['name']}", body)
    assert answer.status_code in (200, 201), answer.text
    api.wait(answer)
