"""Tests of the Azure ML v2 fake itself, each through a real HTTPS request.

Why: the ``azureml`` backend will be only as trustworthy as this fake, so every rule the fake
claims (swagger validation, LRO headers and polls, traffic rules, PATCH limits, idempotent
registration and job PUTs, real training against Azurite, real scoring routed by traffic and by
the deployment header, switchable faults) is pinned here with ``requests`` and ``verify=`` the
fake's CA bundle (``REQUESTS_CA_BUNDLE`` on these machines overrides ``Session.verify``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from .azureml.validation import StrictValidator
from .azurite import Azurite
from .server import FakeAzure
from .trainers import aml_linear_trainer

SUB = "00000000-0000-0000-0000-0000000000bb"
RG = "rg-aml"
WS = "ws-aml"
API = "2025-12-01"
TOKEN = {"Authorization": "Bearer test-token"}
WS_ID = (
    f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices"
    f"/workspaces/{WS}"
)
BIKE_TRAINER = Path(__file__).resolve().parents[2] / "examples" / "bike_rental" / "train.py"
BIKE_CODE = f"{WS_ID}/codes/bike/versions/1"
POLLS = 50  # upper bound on polls of any one operation or job in these tests
BAD_SHORT = "ep"  # two characters: below the minimum of three
TRAIN_CSV = "x,y\n1,2.1\n2,3.9\n3,6.2\n4,7.8\n5,10.1\n"


class Aml:
    """A thin by-hand client: URLs, verbs with token + api-version, LRO and job polling."""

    def __init__(self, fake: FakeAzure) -> None:
        self.fake = fake
        self.base = fake.server.base_url
        self.verify = fake.ca_bundle_path

    def url(self, suffix: str) -> str:
        return f"{self.base}{WS_ID}{suffix}"

    def call(self, method: str, suffix: str, body: Any = None, **kw: Any) -> requests.Response:
        url = suffix if suffix.startswith("https://") else self.url(suffix)
        params = None if "api-version=" in url else {"api-version": API, **kw.pop("params", {})}
        headers = {**TOKEN, **kw.pop("headers", {})}
        return requests.request(
            method,
            url,
            params=params,
            json=body,
            headers=headers,
            verify=self.verify,
            timeout=30,
            **kw,
        )

    def wait(self, resp: requests.Response) -> requests.Response:
        """Follow an LRO's Azure-AsyncOperation or Location to its end; returns the last answer."""
        if "Azure-AsyncOperation" in resp.headers:
            for _ in range(POLLS):
                status = self.call("GET", resp.headers["Azure-AsyncOperation"])
                if status.json()["status"] != "InProgress":
                    return status
        if "Location" in resp.headers:
            for _ in range(POLLS):
                final = self.call("GET", resp.headers["Location"])
                if final.status_code != 202:
                    return final
        raise AssertionError(f"operation did not end: {resp.status_code} {resp.headers}")

    def endpoint(
        self, name: str, traffic: dict[str, int] | None = None, **props: Any
    ) -> requests.Response:
        properties: dict[str, Any] = {"authMode": "Key", **props}
        if traffic is not None:
            properties["traffic"] = traffic
        body = {"location": "eastus", "properties": properties}
        return self.call("PUT", f"/onlineEndpoints/{name}", body)

    def set_traffic(
        self, name: str, traffic: dict[str, int], mirror: dict[str, int] | None = None
    ) -> requests.Response:
        """GET the endpoint, change only traffic, PUT it back (what the backend will do)."""
        body = self.call("GET", f"/onlineEndpoints/{name}").json()
        body["properties"]["traffic"] = traffic
        if mirror is not None:
            body["properties"]["mirrorTraffic"] = mirror
        return self.call("PUT", f"/onlineEndpoints/{name}", body)

    def model(self, name: str, version: str, uri: str, **props: Any) -> requests.Response:
        body = {"properties": {"modelUri": uri, "modelType": "custom_model", **props}}
        return self.call("PUT", f"/models/{name}/versions/{version}", body)

    def deployment(self, endpoint: str, name: str, model: str, **props: Any) -> requests.Response:
        body = {
            "location": "eastus",
            "sku": {"name": "Default", "capacity": 1},
            "properties": {
                "endpointComputeType": "Managed",
                "model": model,
                "instanceType": "Standard_DS3_v2",
                "environmentId": "azureml:sklearn-env:1",
                **props,
            },
        }
        return self.call("PUT", f"/onlineEndpoints/{endpoint}/deployments/{name}", body)

    def ready(self, resp: requests.Response) -> dict[str, Any]:
        assert resp.status_code == 201, resp.text
        assert self.wait(resp).json()["status"] == "Succeeded"
        final = self.call("GET", resp.url.split("?")[0])
        assert final.status_code == 200
        return dict(final.json())

    def job(self, name: str, **overrides: Any) -> requests.Response:
        props: dict[str, Any] = {
            "jobType": "Command",
            "command": "python train.py --data ${{inputs.data}} --model ${{outputs.model}}",
            "environmentId": "azureml:sklearn-env:1",
            "computeId": f"{WS_ID}/computes/cpu",
            "inputs": {
                "data": {
                    "jobInputType": "uri_file",
                    "uri": "azureml://datastores/workspaceblobstore/paths/data/train.csv",
                },
                "scale": {"jobInputType": "literal", "value": "1"},
            },
            "outputs": {
                "model": {"jobOutputType": "custom_model", "mode": "Upload"},
                "evaluation": {"jobOutputType": "uri_folder", "mode": "Upload"},
            },
            "tags": {"retrain.fingerprint": "fp-1"},
        }
        props.update(overrides)
        return self.call("PUT", f"/jobs/{name}", {"properties": props})

    def run_job(self, name: str) -> list[str]:
        seen: list[str] = []
        for _ in range(POLLS * 4):
            status = self.call("GET", f"/jobs/{name}").json()["properties"]["status"]
            if not seen or seen[-1] != status:
                seen.append(status)
            if status in ("Completed", "Failed", "Canceled"):
                return seen
            self.fake.azureml.wait_jobs_idle(0.05)  # seconds; let the trainer thread progress
        raise AssertionError(f"job {name} did not finish: {seen}")


@pytest.fixture
def aml() -> Iterator[Aml]:
    with FakeAzure(azureml_options={"default_trainer": aml_linear_trainer}) as fake:
        fake.azureml.add_workspace(SUB, RG, WS)
        yield Aml(fake)


@pytest.fixture
def aml_blobs(azurite: Azurite) -> Iterator[Aml]:
    options = {"default_trainer": aml_linear_trainer}
    with FakeAzure(
        blob_connection_string=azurite.connection_string, azureml_options=options
    ) as fake:
        ws = fake.azureml.add_workspace(SUB, RG, WS)
        container = ws.datastores["workspaceblobstore"]["properties"]["containerName"]
        fake.azureml.state.blobs.write(container, "data/train.csv", TRAIN_CSV.encode())
        yield Aml(fake)


def _seed_model(aml: Aml, name: str = "m", version: str = "1") -> str:
    aml.fake.azureml.seed_model_version(
        aml.fake.azureml.workspace(SUB, RG, WS),
        name,
        version,
        {"modelUri": f"azureml://datastores/workspaceblobstore/paths/models/{name}/{version}/"},
    )
    return f"{WS_ID}/models/{name}/versions/{version}"


def _with_blue(aml: Aml) -> None:
    aml.ready(aml.endpoint("bikes"))
    aml.ready(aml.deployment("bikes", "blue", _seed_model(aml)))
    aml.wait(aml.set_traffic("bikes", {"blue": 100}))


# -- gate, validation, LRO shapes ------------------------------------------------------------


def test_every_request_needs_a_bearer_token_and_a_supported_api_version(aml: Aml) -> None:
    url = aml.url("/onlineEndpoints")
    assert (
        requests.get(url, params={"api-version": API}, verify=aml.verify, timeout=5).status_code
        == 401
    )
    bad = aml.call("GET", f"{url}?api-version=2017-01-01")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidApiVersionParameter"
    assert aml.call("GET", "/onlineEndpoints").json() == {"value": []}


def test_endpoint_put_is_an_lro_whose_final_state_comes_from_the_original_uri(aml: Aml) -> None:
    resp = aml.endpoint("bikes", keys={"primaryKey": "k1", "secondaryKey": "k2"})
    assert resp.status_code == 201
    assert "/mfeOperationsStatus/" in resp.headers["Azure-AsyncOperation"]
    assert resp.headers["x-ms-async-operation-timeout"] == "PT1H"
    assert resp.json()["properties"]["provisioningState"] == "Creating"
    first = aml.call("GET", resp.headers["Azure-AsyncOperation"]).json()
    assert first["status"] == "InProgress"  # lro_polls=1: one poll in progress
    assert aml.call("GET", resp.headers["Azure-AsyncOperation"]).json()["status"] == "Succeeded"
    final = aml.call("GET", "/onlineEndpoints/bikes").json()
    assert final["id"] == f"{WS_ID}/onlineEndpoints/bikes"
    assert final["type"] == "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
    assert set(final["systemData"]) >= {"createdAt", "createdBy", "lastModifiedAt"}
    props = final["properties"]
    assert props["provisioningState"] == "Succeeded" and props["keys"] is None
    assert props["scoringUri"].endswith("/inference/eastus/bikes/score")
    assert props["traffic"] == {} and props["mirrorTraffic"] == {}
    keys = aml.call("POST", "/onlineEndpoints/bikes/listKeys").json()
    assert keys == {"primaryKey": "k1", "secondaryKey": "k2"}


def test_endpoint_and_deployment_names_follow_the_service_rules(aml: Aml) -> None:
    for bad in (BAD_SHORT, "1ep", "ep-", "e_p", "e" * 33):
        resp = aml.endpoint(bad)
        assert resp.status_code == 400 and resp.json()["error"]["target"] == "name", bad
    assert aml.endpoint("e" * 32).status_code == 201


def test_a_body_that_breaks_the_swagger_is_a_400_naming_the_field(aml: Aml) -> None:
    missing = aml.call("PUT", "/onlineEndpoints/bikes", {"location": "eastus", "properties": {}})
    assert missing.status_code == 400
    assert missing.json()["error"]["target"] == "properties.authMode"
    typed = aml.endpoint("bikes", traffic={"blue": "all"})  # type: ignore[dict-item]
    assert (
        typed.status_code == 400 and "properties.traffic.blue" in typed.json()["error"]["message"]
    )
    unknown = aml.call(
        "PUT",
        "/onlineEndpoints/bikes",
        {"location": "eastus", "properties": {"authMode": "Key"}, "colour": "blue"},
    )
    assert unknown.status_code == 400 and unknown.json()["error"]["target"] == "colour"
    job = aml.job("j", command="")
    assert job.status_code == 400 and "properties.command" in job.json()["error"]["message"]
    assert aml.call("GET", "/onlineEndpoints").json() == {"value": []}  # nothing was stored


def test_endpoint_patch_changes_tags_and_identity_only(aml: Aml) -> None:
    aml.ready(aml.endpoint("bikes"))
    refused = aml.call("PATCH", "/onlineEndpoints/bikes", {"properties": {"traffic": {}}})
    assert refused.status_code == 400 and refused.json()["error"]["target"] == "properties"
    resp = aml.call("PATCH", "/onlineEndpoints/bikes", {"tags": {"owner": "retrain"}})
    assert resp.status_code == 202
    assert "/mfeOperationResults/" in resp.headers["Location"]
    assert int(resp.headers["Retry-After"]) >= 10  # swagger: Retry-After 10..600
    assert aml.call("GET", resp.headers["Location"]).status_code == 202
    final = aml.call("GET", resp.headers["Location"])
    assert final.status_code == 200 and final.json()["tags"] == {"owner": "retrain"}


def test_deployment_patch_cannot_change_the_model_and_put_cannot_change_instance_type(
    aml: Aml,
) -> None:
    _with_blue(aml)
    other = _seed_model(aml, "m", "2")
    refused = aml.call(
        "PATCH", "/onlineEndpoints/bikes/deployments/blue", {"properties": {"model": other}}
    )
    assert refused.status_code == 400 and "properties" in refused.json()["error"]["message"]
    ok = aml.call(
        "PATCH",
        "/onlineEndpoints/bikes/deployments/blue",
        {"sku": {"capacity": 2}, "tags": {"a": "b"}},
    )
    assert ok.status_code == 202 and aml.wait(ok).json()["sku"] == {
        "name": "Default",
        "capacity": 2,
    }
    moved = aml.deployment("bikes", "blue", other, instanceType="Standard_F2s_v2")
    assert moved.status_code == 400 and moved.json()["error"]["innerError"]["code"] == "Immutable"


def test_lists_page_with_next_link(aml: Aml) -> None:
    aml.fake.azureml.state.page_size = 2
    for name in ("aaa", "bbb", "ccc"):
        aml.wait(aml.endpoint(name))
    first = aml.call("GET", "/onlineEndpoints").json()
    assert [e["name"] for e in first["value"]] == ["aaa", "bbb"]
    second = aml.call("GET", first["nextLink"]).json()
    assert [e["name"] for e in second["value"]] == ["ccc"] and "nextLink" not in second


def test_the_azure_sdk_generic_resources_client_drives_the_lros(aml: Aml) -> None:
    from azure.mgmt.resource.resources import ResourceManagementClient

    from .arm import StaticTokenCredential

    aml.fake.azureml.state.ops.retry_after_s = 0  # below the swagger's 10 s: keeps the test fast
    client = ResourceManagementClient(
        StaticTokenCredential(),
        SUB,
        base_url=aml.base,
        credential_scopes=["https://fake-arm.local/.default"],
        polling_interval=0,
        connection_verify=aml.verify,
    )
    rid = f"{WS_ID}/onlineEndpoints/sdk"
    body = {"location": "eastus", "properties": {"authMode": "Key"}}
    created = client.resources.begin_create_or_update_by_id(rid, body, api_version=API).result()
    assert (created.properties or {})["provisioningState"] == "Succeeded"
    patched = client.resources.begin_update_by_id(
        rid, {"tags": {"a": "b"}}, api_version=API
    ).result()
    assert patched.tags == {"a": "b"}
    client.resources.begin_delete_by_id(rid, api_version=API).result()
    assert aml.call("GET", "/onlineEndpoints/sdk").status_code == 404


# -- traffic rules ---------------------------------------------------------------------------


def test_traffic_must_name_existing_deployments_and_total_100_or_0(aml: Aml) -> None:
    aml.ready(aml.endpoint("bikes"))
    missing = aml.set_traffic("bikes", {"blue": 100})
    assert missing.status_code == 400 and "'blue'" in missing.json()["error"]["message"]
    model = _seed_model(aml)
    aml.ready(aml.deployment("bikes", "blue", model))
    aml.ready(aml.deployment("bikes", "green", model))
    assert aml.set_traffic("bikes", {"blue": 60, "green": 30}).status_code == 400
    assert aml.set_traffic("bikes", {"blue": -10, "green": 110}).status_code == 400
    assert aml.wait(aml.set_traffic("bikes", {"blue": 0})).json()["status"] == "Succeeded"  # 0: off
    assert aml.call("GET", "/onlineEndpoints/bikes").json()["properties"]["traffic"] == {}
    aml.wait(aml.set_traffic("bikes", {"blue": 100, "green": 0}))
    assert aml.call("GET", "/onlineEndpoints/bikes").json()["properties"]["traffic"] == {
        "blue": 100
    }
    assert (
        aml.wait(aml.set_traffic("bikes", {"blue": 90, "green": 10})).json()["status"]
        == "Succeeded"
    )
    assert aml.call("GET", "/onlineEndpoints/bikes").json()["properties"]["traffic"] == {
        "blue": 90,
        "green": 10,
    }


def test_mirror_traffic_is_at_most_50_to_one_deployment_that_has_no_live_traffic(aml: Aml) -> None:
    _with_blue(aml)
    model = _seed_model(aml, "m", "1")
    aml.ready(aml.deployment("bikes", "green", model))
    aml.ready(aml.deployment("bikes", "red", model))
    over = aml.set_traffic("bikes", {"blue": 100}, {"green": 60})
    assert over.status_code == 400 and "50" in over.json()["error"]["message"]
    assert aml.set_traffic("bikes", {"blue": 100}, {"green": 10, "red": 10}).status_code == 400
    assert (
        aml.set_traffic("bikes", {"blue": 100}, {"blue": 10}).status_code == 400
    )  # live and mirror
    assert (
        aml.wait(aml.set_traffic("bikes", {"blue": 100}, {"green": 50})).json()["status"]
        == "Succeeded"
    )


def test_a_deployment_with_live_traffic_cannot_be_deleted(aml: Aml) -> None:
    _with_blue(aml)
    aml.ready(aml.deployment("bikes", "green", _seed_model(aml, "m", "1")))
    refused = aml.call("DELETE", "/onlineEndpoints/bikes/deployments/blue")
    assert refused.status_code == 400 and "traffic" in refused.json()["error"]["message"]
    resp = aml.call("DELETE", "/onlineEndpoints/bikes/deployments/green")
    assert resp.status_code == 202 and "Location" in resp.headers
    assert (
        aml.call("GET", "/onlineEndpoints/bikes/deployments/green").json()["properties"][
            "provisioningState"
        ]
        == "Deleting"
    )
    assert aml.wait(resp).status_code == 204
    assert aml.call("GET", "/onlineEndpoints/bikes/deployments/green").status_code == 404
    assert aml.call("DELETE", "/onlineEndpoints/bikes/deployments/green").status_code == 204


def test_a_second_write_while_an_operation_runs_is_a_conflict(aml: Aml) -> None:
    first = aml.endpoint("bikes")
    again = aml.endpoint("bikes", description="second")
    assert again.status_code == 409
    aml.wait(first)
    assert aml.endpoint("bikes", description="second").status_code == 201


# -- models ----------------------------------------------------------------------------------


def test_model_version_put_is_synchronous_idempotent_and_immutable_in_content(aml: Aml) -> None:
    uri = "azureml://datastores/workspaceblobstore/paths/models/m/1/"
    first = aml.model("m", "1", uri, tags={"retrain.fingerprint": "fp"})
    assert first.status_code == 201 and "Location" not in first.headers
    assert first.json()["properties"]["provisioningState"] == "Succeeded"
    assert aml.model("m", "1", uri, tags={"retrain.fingerprint": "fp"}).status_code == 200
    retagged = aml.model("m", "1", uri, tags={"retrain.fingerprint": "fp", "champion": "yes"})
    assert (
        retagged.status_code == 200 and retagged.json()["properties"]["tags"]["champion"] == "yes"
    )
    moved = aml.model("m", "1", "azureml://datastores/workspaceblobstore/paths/elsewhere/")
    assert moved.status_code == 409 and moved.json()["error"]["innerError"]["code"] == "Immutable"
    container = aml.call("GET", "/models/m").json()["properties"]
    assert container["latestVersion"] == "1" and container["nextVersion"] == "2"
    found = aml.call("GET", "/models/m/versions", params={"tags": "champion=yes"})
    assert [v["name"] for v in found.json()["value"]] == ["1"]
    nowhere = aml.model("m", "2", "https://example.com/model.bin")
    assert nowhere.status_code == 400


def test_a_deployment_must_name_a_registered_model_version(aml: Aml) -> None:
    aml.ready(aml.endpoint("bikes"))
    missing = aml.deployment("bikes", "blue", f"{WS_ID}/models/nope/versions/1")
    assert missing.status_code == 400 and missing.json()["error"]["target"] == "properties.model"
    _seed_model(aml, "m", "3")
    assert aml.deployment("bikes", "blue", "azureml:m:3").status_code == 201


# -- faults ----------------------------------------------------------------------------------


def test_a_deployment_can_be_switched_to_end_failed(aml: Aml) -> None:
    aml.ready(aml.endpoint("bikes"))
    aml.fake.azureml.fail_next_deployment("green")
    resp = aml.deployment("bikes", "green", _seed_model(aml))
    status = aml.wait(resp).json()
    assert status["status"] == "Failed" and status["error"]["code"] == "DeploymentFailed"
    dep = aml.call("GET", "/onlineEndpoints/bikes/deployments/green").json()
    assert dep["properties"]["provisioningState"] == "Failed"


def test_throttling_server_errors_and_resets_are_switchable(aml: Aml) -> None:
    server = aml.fake.server
    server.throttle(1, retry_after=3, path=r".*/onlineEndpoints")
    throttled = aml.call("GET", "/onlineEndpoints")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "3"
    server.fail_with_status(503, path=r".*/onlineEndpoints")
    assert aml.call("GET", "/onlineEndpoints").status_code == 503
    server.reset_connections(1, path=r".*/onlineEndpoints")
    with pytest.raises(requests.ConnectionError):
        aml.call("GET", "/onlineEndpoints")
    assert aml.call("GET", "/onlineEndpoints").status_code == 200


def test_arm_throttling_is_shared_with_the_classic_provider(aml: Aml) -> None:
    aml.fake.arm.drain(SUB, "reads")
    resp = aml.call("GET", "/onlineEndpoints")
    assert (
        resp.status_code == 429 and resp.json()["error"]["code"] == "SubscriptionRequestsThrottled"
    )


# -- jobs ------------------------------------------------------------------------------------


def test_a_command_job_trains_for_real_and_writes_its_outputs_to_blobs(aml_blobs: Aml) -> None:
    aml = aml_blobs
    created = aml.job("train-fp-1")
    assert created.status_code == 201 and created.json()["properties"]["status"] == "NotStarted"
    assert aml.run_job("train-fp-1")[:3] == ["Queued", "Running", "Completed"]
    job = aml.call("GET", "/jobs/train-fp-1").json()["properties"]
    assert "uri" not in job["outputs"]["model"]  # the service does not report default locations
    ws = aml.fake.azureml.workspace(SUB, RG, WS)
    container = ws.datastores["workspaceblobstore"]["properties"]["containerName"]
    blobs = aml.fake.azureml.state.blobs
    model = json.loads(blobs.read(container, "azureml/train-fp-1/model/model"))
    assert model["kind"] == "linear" and model["a"] == pytest.approx(2.0, abs=0.1)
    evaluation = blobs.read(container, "azureml/train-fp-1/evaluation/evaluation.csv").decode()
    assert evaluation.startswith("Root Mean Squared Error,Coefficient of Determination\n")
    chosen = "azureml://datastores/workspaceblobstore/paths/models/fp-2/"
    outputs = {"model": {"jobOutputType": "custom_model", "uri": chosen}}
    aml.job("train-fp-2", outputs=outputs, command="python train.py")
    assert aml.run_job("train-fp-2")[-1] == "Completed"
    assert json.loads(blobs.read(container, "models/fp-2/model"))["kind"] == "linear"


def test_put_of_an_existing_job_returns_it_and_refuses_other_changes(aml_blobs: Aml) -> None:
    aml = aml_blobs
    assert aml.job("j").status_code == 201
    aml.run_job("j")
    again = aml.job("j", tags={"extra": "1"})
    assert again.status_code == 200 and again.json()["properties"]["status"] == "Completed"
    assert again.json()["properties"]["tags"] == {"retrain.fingerprint": "fp-1", "extra": "1"}
    echoed = aml.call("PUT", "/jobs/j", aml.call("GET", "/jobs/j").json())  # GET body sent back
    assert echoed.status_code == 200
    changed = aml.job("j", command="python other.py")
    assert changed.status_code == 400
    err = changed.json()["error"]
    assert err["innerError"]["code"] == "Immutable" and "command" in err["message"]
    assert len(aml.fake.azureml.workspace(SUB, RG, WS).jobs) == 1


def test_a_job_ends_failed_when_switched_or_when_its_trainer_raises(aml_blobs: Aml) -> None:
    aml = aml_blobs
    aml.fake.azureml.fail_next_job("doomed")
    aml.job("doomed")
    assert aml.run_job("doomed")[-1] == "Failed"
    missing = {"jobInputType": "uri_file", "uri": "azureml://datastores/nope/paths/x.csv"}
    aml.job("broken", inputs={"data": missing})
    assert aml.run_job("broken")[-1] == "Failed"
    props = aml.call("GET", "/jobs/broken").json()["properties"]
    assert "nope" in props["properties"]["azureml.error"]
    unbound = aml.job("unbound", command="python t.py ${{inputs.missing}}")
    assert unbound.status_code == 400


def test_a_running_job_can_be_made_to_show_not_responding_for_some_polls(aml_blobs: Aml) -> None:
    aml = aml_blobs
    aml.fake.azureml.job_not_responding("slow", polls=2)
    aml.job("slow")
    seen = aml.run_job("slow")
    assert seen[:4] == ["Queued", "Running", "NotResponding", "Running"]
    assert seen[-1] == "Completed"


def test_a_job_past_its_limits_timeout_is_canceled(aml_blobs: Aml) -> None:
    import threading

    aml = aml_blobs
    release = threading.Event()

    def slow(**kwargs: Any) -> None:
        release.wait(10)  # seconds; the test releases it as soon as the job is cancelled
        aml_linear_trainer(**kwargs)

    aml.fake.azureml.jobs.register_trainer("slow-code", slow)
    aml.job("late", codeId="slow-code", limits={"jobLimitsType": "Command", "timeout": "PT0.2S"})
    try:
        assert aml.run_job("late")[-1] == "Canceled"
    finally:
        release.set()
    aml.fake.azureml.wait_jobs_idle(5)
    ws = aml.fake.azureml.workspace(SUB, RG, WS)
    container = ws.datastores["workspaceblobstore"]["properties"]["containerName"]
    assert aml.fake.azureml.state.blobs.list(container, "azureml/late/") == []


def test_cancel_moves_a_job_to_canceled(aml_blobs: Aml) -> None:
    aml = aml_blobs
    aml.job("c")
    resp = aml.call("POST", "/jobs/c/cancel")
    assert resp.status_code == 202 and "Location" in resp.headers and "Retry-After" in resp.headers
    assert aml.call("GET", "/jobs/c").json()["properties"]["status"] == "Canceled"
    assert aml.call("POST", "/jobs/c/cancel").status_code == 200


# -- scoring and the blue/green sequence -----------------------------------------------------


def _register_output(aml: Aml, job: str, version: str) -> str:
    resp = aml.model("bike", version, f"azureml://jobs/{job}/outputs/model", jobName=job)
    assert resp.status_code == 201, resp.text
    return f"{WS_ID}/models/bike/versions/{version}"


def _score(aml: Aml, key: str, deployment: str | None = None) -> requests.Response:
    uri = aml.call("GET", "/onlineEndpoints/bikes").json()["properties"]["scoringUri"]
    headers = {"Authorization": f"Bearer {key}"}
    if deployment:
        headers["azureml-model-deployment"] = deployment
    return requests.post(
        uri, json={"data": [{"x": 10}]}, headers=headers, verify=aml.verify, timeout=30
    )


def test_blue_green_rollout_by_hand(aml_blobs: Aml) -> None:
    aml = aml_blobs
    ws = aml.fake.azureml.workspace(SUB, RG, WS)
    container = ws.datastores["workspaceblobstore"]["properties"]["containerName"]
    aml.job("v1")
    aml.run_job("v1")
    blue_model = _register_output(aml, "v1", "1")
    aml.ready(aml.endpoint("bikes"))
    aml.ready(aml.deployment("bikes", "blue", blue_model))
    aml.wait(aml.set_traffic("bikes", {"blue": 100}))
    key = aml.call("POST", "/onlineEndpoints/bikes/listKeys").json()["primaryKey"]
    assert _score(aml, "wrong").status_code == 401
    blue = _score(aml, key)
    assert blue.status_code == 200 and blue.headers["azureml-model-deployment"] == "blue"

    aml.fake.azureml.state.blobs.write(container, "data/train.csv", b"x,y\n1,3\n2,6\n3,9\n")
    aml.job("v2")
    aml.run_job("v2")
    green_model = _register_output(aml, "v2", "2")
    clone = aml.call("GET", "/onlineEndpoints/bikes/deployments/blue").json()
    clone["properties"]["model"] = green_model
    green = aml.ready(aml.call("PUT", "/onlineEndpoints/bikes/deployments/green", clone))
    assert green["properties"]["model"] == green_model
    alone = _score(aml, key, deployment="green")
    assert alone.headers["azureml-model-deployment"] == "green"
    assert alone.json() == [pytest.approx(30.0)] and blue.json() != alone.json()

    for weight in (10, 50, 100):
        aml.wait(aml.set_traffic("bikes", {"blue": 100 - weight, "green": weight}))
        served = Counter(_score(aml, key).headers["azureml-model-deployment"] for _ in range(10))
        assert served["green"] == weight // 10
    assert (
        aml.wait(aml.call("DELETE", "/onlineEndpoints/bikes/deployments/blue")).status_code == 204
    )
    assert aml.call("GET", "/onlineEndpoints/bikes").json()["properties"]["traffic"] == {
        "green": 100
    }
    assert [
        d["name"] for d in aml.call("GET", "/onlineEndpoints/bikes/deployments").json()["value"]
    ] == ["green"]


def test_mirrored_requests_reach_the_shadow_but_never_answer(aml_blobs: Aml) -> None:
    aml = aml_blobs
    aml.job("v1")
    aml.run_job("v1")
    model = _register_output(aml, "v1", "1")
    aml.ready(aml.endpoint("bikes"))
    aml.ready(aml.deployment("bikes", "blue", model))
    aml.ready(aml.deployment("bikes", "green", model))
    aml.wait(aml.set_traffic("bikes", {"blue": 100}, {"green": 20}))
    key = aml.call("POST", "/onlineEndpoints/bikes/listKeys").json()["primaryKey"]
    answers = {_score(aml, key).headers["azureml-model-deployment"] for _ in range(10)}
    assert answers == {"blue"}
    mirrored = [s for s in aml.fake.azureml.scoring.log if s.mirrored]
    assert len(mirrored) == 2 and {s.deployment for s in mirrored} == {"green"}
    _score(aml, key, deployment="blue")  # routed by header: never mirrored
    assert len([s for s in aml.fake.azureml.scoring.log if s.mirrored]) == 2


def test_scoring_serves_the_bike_demand_skops_model_a_job_trained(aml_blobs: Aml) -> None:
    aml = aml_blobs
    ws = aml.fake.azureml.workspace(SUB, RG, WS)
    container = ws.datastores["workspaceblobstore"]["properties"]["containerName"]
    data = (BIKE_TRAINER.parent / "data" / "seattle.csv").read_bytes()
    aml.fake.azureml.state.blobs.write(container, "bike/seattle.csv", data)
    from .azureml.jobs import load_trainer

    aml.fake.azureml.jobs.register_trainer(BIKE_CODE, load_trainer(f"{BIKE_TRAINER}:train"))
    rentals = {
        "jobInputType": "uri_file",
        "uri": "azureml://datastores/workspaceblobstore/paths/bike/seattle.csv",
    }
    trees = {"jobInputType": "literal", "value": "5"}
    aml.job(
        "bike",
        codeId=BIKE_CODE,
        command="python train.py ${{inputs.rentals}}",
        inputs={"rentals": rentals, "n_estimators": trees},
    )
    assert aml.run_job("bike")[-1] == "Completed"
    model = _register_output(aml, "bike", "1")
    aml.ready(aml.endpoint("bikes"))
    aml.ready(aml.deployment("bikes", "blue", model))
    key = aml.call("POST", "/onlineEndpoints/bikes/listKeys").json()["primaryKey"]
    row = dict(
        zip(
            data.decode().splitlines()[0].split(","),
            data.decode().splitlines()[1].split(","),
            strict=True,
        )
    )
    uri = aml.call("GET", "/onlineEndpoints/bikes").json()["properties"]["scoringUri"]
    headers = {"Authorization": f"Bearer {key}", "azureml-model-deployment": "blue"}
    resp = requests.post(uri, json={"data": [row]}, headers=headers, verify=aml.verify, timeout=30)
    assert resp.status_code == 200 and isinstance(resp.json()[0], float)
    assert _score(aml, key).status_code == 404  # no live traffic and no header: nowhere to route


def test_aml_token_endpoints_score_with_tokens_from_the_token_api(aml_blobs: Aml) -> None:
    aml = aml_blobs
    aml.job("v1")
    aml.run_job("v1")
    model = _register_output(aml, "v1", "1")
    aml.ready(
        aml.call(
            "PUT",
            "/onlineEndpoints/bikes",
            {"location": "eastus", "properties": {"authMode": "AMLToken"}},
        )
    )
    aml.ready(aml.deployment("bikes", "blue", model))
    aml.wait(aml.set_traffic("bikes", {"blue": 100}))
    assert aml.call("POST", "/onlineEndpoints/bikes/listKeys").status_code == 400
    token = aml.call("POST", "/onlineEndpoints/bikes/token").json()
    assert token["tokenType"] == "Bearer" and token["expiryTimeUtc"] > token["refreshAfterTimeUtc"]
    assert _score(aml, "not-a-token").status_code == 401
    assert _score(aml, token["accessToken"]).status_code == 200


# -- responses against the swagger, seeding --------------------------------------------------


def test_the_fakes_responses_validate_against_the_swagger(aml_blobs: Aml) -> None:
    aml = aml_blobs
    _with_blue(aml)
    aml.job("j")
    validator = StrictValidator.load()
    samples = {
        "OnlineEndpointTrackedResource": aml.call("GET", "/onlineEndpoints/bikes").json(),
        "OnlineDeploymentTrackedResource": aml.call(
            "GET", "/onlineEndpoints/bikes/deployments/blue"
        ).json(),
        "OnlineEndpointTrackedResourceArmPaginatedResult": aml.call(
            "GET", "/onlineEndpoints"
        ).json(),
        "OnlineDeploymentTrackedResourceArmPaginatedResult": aml.call(
            "GET", "/onlineEndpoints/bikes/deployments"
        ).json(),
        "ModelVersionResource": aml.call("GET", "/models/m/versions/1").json(),
        "ModelContainerResource": aml.call("GET", "/models/m").json(),
        "JobBaseResource": aml.call("GET", "/jobs/j").json(),
        "DatastoreResource": aml.call("GET", "/datastores/workspaceblobstore").json(),
        "EndpointAuthKeys": aml.call("POST", "/onlineEndpoints/bikes/listKeys").json(),
    }
    for definition, body in samples.items():
        assert validator.validate(body, definition) == [], definition
    aml.run_job("j")


def test_the_seed_example_seeds_a_scoring_endpoint(azurite: Azurite) -> None:
    seed = json.loads((Path(__file__).parent / "seed.example.json").read_text("utf-8"))
    with FakeAzure(blob_connection_string=azurite.connection_string) as fake:
        out = fake.seed(seed)["azureml"]
        endpoint = out["endpoints"][0]
        resp = requests.post(
            endpoint["scoringUri"],
            json={"data": [{"x": 3}]},
            headers={"Authorization": f"Bearer {endpoint['primaryKey']}"},
            verify=fake.ca_bundle_path,
            timeout=30,
        )
        assert resp.status_code == 200 and resp.json() == [pytest.approx(6.0)]
