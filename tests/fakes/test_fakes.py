"""Tests of the Azure fakes themselves, through real HTTPS clients.

Why: the Azure provider's tests are only as good as the fake they run against. These tests pin
the fake's wire behaviour — TLS, faults, ARM LROs as the real ``azure-mgmt-resource`` SDK sees
them, swagger validation, quirks, throttling, real BES training against Azurite, and the
classic endpoint rules — so a regression in the fake cannot silently weaken other tests.

``REQUESTS_CA_BUNDLE`` is set on these machines and overrides ``Session.verify``, so every
``requests`` call passes ``verify=`` explicitly.
"""

from __future__ import annotations

import contextlib
import copy
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from .arm import (
    API_VERSION,
    BucketSpec,
    FakeResourceManager,
    ManualClock,
    StaticTokenCredential,
    ThrottleConfig,
)
from .azurite import Azurite
from .httpserver import FakeHTTPServer, Request, Response
from .server import FakeAzure
from .trainers import linear_trainer

SUB = "00000000-0000-0000-0000-0000000000aa"
RG = "rg-retrain"
TOKEN = {"Authorization": "Bearer test-token"}
# Seconds any single poll loop in these tests may spin before failing (jobs take ~0.1 s).
POLL_DEADLINE_S = 20

PREDICTIVE: dict[str, Any] = {
    "location": "South Central US",
    "tags": {"owner": "retrain"},
    "properties": {
        "title": "Retrain Sample [Predictive Exp.]",
        "readOnly": False,
        "storageAccount": {"name": "mltestaccount", "key": "secret-storage-key"},
        "machineLearningWorkspace": {"id": "ws-guid"},
        "commitmentPlan": {
            "id": f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/"
            "Microsoft.MachineLearning/commitmentPlans/plan"
        },
        "packageType": "Graph",
        "assets": {
            "asset1": {
                "name": "Execute R Script",
                "type": "Module",
                "locationInfo": {"uri": "aml://module/moduleId-1", "credentials": ""},
            },
            "asset3": {
                "name": "Retrain Sample [trained model]",
                "type": "Resource",
                "locationInfo": {
                    "uri": "https://mltestaccount.blob.core.windows.net/"
                    "azuremlassetscontainer/old.ilearner"
                },
                "outputPorts": {"Results dataset": {"type": "Dataset"}},
            },
        },
        "package": {
            "nodes": {"node1": {"AssetId": "asset3"}, "node3": {"InputId": "input1"}},
            "edges": [{"SourceNodeId": "node3", "TargetNodeId": "node1"}],
            "graphParameters": {},
        },
        "exampleRequest": {"inputs": {"input1": [["age"]]}, "globalParameters": None},
    },
}


def ws_url(fake: FakeAzure, name: str) -> str:
    return (
        f"{fake.arm_base_url}/subscriptions/{SUB}/resourceGroups/{RG}/providers/"
        f"Microsoft.MachineLearning/webServices/{name}?api-version={API_VERSION}"
    )


def arm_client(
    fake: FakeAzure, credential: StaticTokenCredential | None = None, **kwargs: Any
) -> Any:
    from azure.mgmt.resource.resources import ResourceManagementClient

    return ResourceManagementClient(
        credential or StaticTokenCredential(),
        SUB,
        base_url=fake.arm_base_url,
        credential_scopes=["https://fake-arm.local/.default"],
        polling_interval=0,
        connection_verify=fake.ca_bundle_path,
        **kwargs,
    )


def finish_lro(fake: FakeAzure, resp: requests.Response) -> dict[str, Any]:
    """Poll Azure-AsyncOperation until terminal; returns the last status body."""
    url = resp.headers["Azure-AsyncOperation"]
    for _ in range(50):  # bounded: the fake finishes after lro_polls + 1 polls
        body: dict[str, Any] = requests.get(
            url, headers=TOKEN, verify=fake.ca_bundle_path, timeout=10
        ).json()
        if body["status"] != "InProgress":
            return body
    raise AssertionError("operation never finished")


# -- httpserver ---------------------------------------------------------------------------


@pytest.fixture
def echo_server() -> Iterator[FakeHTTPServer]:
    srv = FakeHTTPServer()

    @srv.route("POST", r"/echo/(?P<name>[^/]+)", name="echo")
    def echo(req: Request) -> Response:
        assert req.match is not None
        return Response.json(200, {"name": req.match["name"], "body": req.json()})

    @srv.route("GET", r"/ping", name="ping")
    def ping(req: Request) -> Response:
        return Response.json(200, {"ok": True})

    with srv:
        yield srv
    srv.close()


def test_routes_tls_log_and_counters(echo_server: FakeHTTPServer) -> None:
    ca = echo_server.ca_bundle_path
    assert echo_server.base_url.startswith("https://127.0.0.1:")
    r = requests.post(
        f"{echo_server.base_url}/echo/abc?x=1",
        json={"a": 1},
        headers={"Authorization": "Bearer s3cret"},
        verify=ca,
        timeout=10,
    )
    assert r.json() == {"name": "abc", "body": {"a": 1}}
    with pytest.raises(requests.exceptions.SSLError):  # really TLS, with a private CA
        requests.get(f"{echo_server.base_url}/ping", verify=True, timeout=10)
    assert requests.get(f"{echo_server.base_url}/nope", verify=ca, timeout=10).status_code == 404
    assert requests.get(f"{echo_server.base_url}/echo/x", verify=ca, timeout=10).status_code == 405
    entry = echo_server.requests("POST")[0]
    assert entry.query == {"x": ["1"]} and entry.json == {"a": 1} and entry.route == "echo"
    assert all(k.lower() != "authorization" for k in entry.headers)
    assert echo_server.counts["echo"] == 1


def test_faults_are_targeted_and_bounded(echo_server: FakeHTTPServer) -> None:
    ca, base = echo_server.ca_bundle_path, echo_server.base_url
    echo_server.throttle(2, retry_after=3, path=r"/ping")
    codes = [requests.get(f"{base}/ping", verify=ca, timeout=10) for _ in range(3)]
    assert [c.status_code for c in codes] == [429, 429, 200]
    assert codes[0].headers["Retry-After"] == "3"
    echo_server.fail_with_status(503, times=1, method="POST")
    assert requests.get(f"{base}/ping", verify=ca, timeout=10).status_code == 200  # not targeted
    assert requests.post(f"{base}/echo/a", json={}, verify=ca, timeout=10).status_code == 503
    assert requests.post(f"{base}/echo/a", json={}, verify=ca, timeout=10).status_code == 200
    echo_server.reset_connections(1, path=r"/ping")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{base}/ping", verify=ca, timeout=10)
    assert requests.get(f"{base}/ping", verify=ca, timeout=10).status_code == 200
    echo_server.add_latency(0.3, path=r"/ping", times=1)
    t0 = time.monotonic()
    requests.get(f"{base}/ping", verify=ca, timeout=10)
    assert time.monotonic() - t0 >= 0.3
    assert [e.fault for e in echo_server.requests("GET", r"/ping")].count("reset") == 1


def test_a_reset_after_handling_runs_the_handler_and_loses_only_the_answer(
    echo_server: FakeHTTPServer,
) -> None:
    handled: list[str] = []

    @echo_server.route("PUT", r"/thing", name="thing")
    def thing(req: Request) -> Response:
        handled.append(req.method)
        return Response.json(200, {})

    base, ca = echo_server.base_url, echo_server.ca_bundle_path
    echo_server.reset_connections(1, method="PUT", after=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.put(f"{base}/thing", json={}, verify=ca, timeout=10)
    assert handled == ["PUT"]  # the write took effect
    echo_server.reset_connections(1, method="PUT")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.put(f"{base}/thing", json={}, verify=ca, timeout=10)
    assert handled == ["PUT"]  # before handling: it did not
    faults = [e.fault for e in echo_server.requests("PUT", r"/thing")]
    assert faults == ["reset-after", "reset"]


# -- Resource Manager ---------------------------------------------------------------------


def test_sdk_lro_create_get_update_delete(fake_azure: FakeAzure) -> None:
    from azure.mgmt.resource.resources.models import GenericResource

    fake_azure.arm.lro_polls = 2
    cred = StaticTokenCredential()
    client = arm_client(fake_azure, cred)
    rid = fake_azure.arm.resource_id(SUB, RG, "svc1")
    poller = client.resources.begin_create_or_update_by_id(
        rid,
        GenericResource(
            location=PREDICTIVE["location"],
            tags=PREDICTIVE["tags"],
            properties=copy.deepcopy(PREDICTIVE["properties"]),
        ),
        api_version=API_VERSION,
    )
    result = poller.result()
    assert result.properties["provisioningState"] == "Succeeded"
    assert cred.scopes_requested[0] == ("https://fake-arm.local/.default",)
    log = fake_azure.server.log
    assert [e.route for e in log] == ["arm.put"] + ["arm.operation"] * 3 + ["arm.get"]
    assert log[0].status == 201

    got = client.resources.get_by_id(rid, api_version=API_VERSION)
    props = got.properties
    assert "keys" not in props and props["storageAccount"] == {"name": "mltestaccount"}
    assert props["package"]["nodes"]["node1"] == {"AssetId": "asset3"}  # casing preserved
    assert props["swaggerLocation"].startswith(fake_azure.bes_base_url)

    props["assets"]["asset3"]["locationInfo"]["uri"] = "https://mltestaccount/new.ilearner"
    updated = client.resources.begin_create_or_update_by_id(
        rid, GenericResource(location=got.location, properties=props), api_version=API_VERSION
    ).result()
    assert updated.properties["assets"]["asset3"]["locationInfo"]["uri"].endswith("new.ilearner")
    assert fake_azure.server.requests("PUT")[-1].status == 200
    assert fake_azure.arm.keys_of(SUB, RG, "svc1")["primary"]  # keys kept, never returned
    patched = client.resources.begin_update_by_id(
        rid, {"properties": {"packageType": "Graph", "title": "patched"}}, api_version=API_VERSION
    ).result()
    assert patched.properties["title"] == "patched" and "assets" in patched.properties
    assert fake_azure.server.requests("PATCH")[-1].status == 200
    client.resources.begin_delete_by_id(rid, api_version=API_VERSION).result()
    assert not client.resources.check_existence_by_id(rid, api_version=API_VERSION)


def test_lro_status_body_and_provisioning_state(fake_azure: FakeAzure) -> None:
    ca = fake_azure.ca_bundle_path
    fake_azure.arm.lro_polls = 1
    fake_azure.arm.get_advances_lro = False
    r = requests.put(
        ws_url(fake_azure, "svc2"), json=PREDICTIVE, headers=TOKEN, verify=ca, timeout=10
    )
    assert r.status_code == 201 and r.headers["Retry-After"] == "0"
    assert r.json()["properties"]["provisioningState"] == "Provisioning"
    assert "key" not in r.json()["properties"]["storageAccount"]
    op_url = r.headers["Azure-AsyncOperation"]
    assert op_url.startswith(fake_azure.arm_base_url)
    first = requests.get(op_url, headers=TOKEN, verify=ca, timeout=10).json()
    assert (first["status"], first["provisioningState"]) == ("InProgress", "Provisioning")
    get = requests.get(ws_url(fake_azure, "svc2"), headers=TOKEN, verify=ca, timeout=10)
    assert get.json()["properties"]["provisioningState"] == "Provisioning"
    done = requests.get(op_url, headers=TOKEN, verify=ca, timeout=10).json()
    assert (done["status"], done["provisioningState"]) == ("Succeeded", "Succeeded")
    get = requests.get(ws_url(fake_azure, "svc2"), headers=TOKEN, verify=ca, timeout=10)
    assert get.json()["properties"]["provisioningState"] == "Succeeded"
    assert get.headers["x-ms-ratelimit-remaining-subscription-reads"].isdigit()


def test_auth_and_api_version_required(fake_azure: FakeAzure) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    ca = fake_azure.ca_bundle_path
    r = requests.get(ws_url(fake_azure, "x"), verify=ca, timeout=10)
    assert r.status_code == 401 and r.json()["error"]["code"] == "AuthenticationFailed"
    bad = ws_url(fake_azure, "x").replace(API_VERSION, "2016-05-01-preview")
    r = requests.get(bad, headers=TOKEN, verify=ca, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidApiVersionParameter"
    r = requests.get(ws_url(fake_azure, "x"), headers=TOKEN, verify=ca, timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "ResourceNotFound"
    fake_azure.arm.accepted_tokens = {"the-only-token"}
    with pytest.raises(ClientAuthenticationError):
        arm_client(fake_azure).resources.get_by_id(
            fake_azure.arm.resource_id(SUB, RG, "x"), api_version=API_VERSION
        )


def test_swagger_validation_rejects_bad_bodies(fake_azure: FakeAzure) -> None:
    from azure.core.exceptions import HttpResponseError

    ca = fake_azure.ca_bundle_path
    bad = copy.deepcopy(PREDICTIVE)
    del bad["properties"]["packageType"]
    bad["properties"]["assets"]["asset3"]["locationInfo"] = {"credentials": ""}
    bad["properties"]["realtimeConfiguration"] = {"maxConcurrentCalls": 1}
    r = requests.put(ws_url(fake_azure, "bad"), json=bad, headers=TOKEN, verify=ca, timeout=10)
    assert r.status_code == 400
    err = r.json()["error"]
    targets = {d["target"] for d in err["details"]}
    assert err["code"] == "InvalidRequestContent"
    assert "properties.packageType" in targets
    assert "properties.realtimeConfiguration.maxConcurrentCalls" in targets
    # the discriminator: packageType Graph selects WebServicePropertiesForGraph (package)
    bad = copy.deepcopy(PREDICTIVE)
    bad["properties"]["package"]["edges"] = "not-a-list"
    r = requests.put(ws_url(fake_azure, "bad"), json=bad, headers=TOKEN, verify=ca, timeout=10)
    assert r.status_code == 400 and "properties.package.edges" in r.text
    # PATCH uses PatchedWebService: location optional, packageType still required
    fake_azure.arm.seed_web_service(SUB, RG, "ok", PREDICTIVE)
    r = requests.patch(
        ws_url(fake_azure, "ok"),
        json={"properties": {"title": "x"}},
        headers=TOKEN,
        verify=ca,
        timeout=10,
    )
    assert r.status_code == 400 and "packageType" in r.text
    with pytest.raises(HttpResponseError) as info:
        arm_client(fake_azure, retry_total=0).resources.begin_create_or_update_by_id(
            fake_azure.arm.resource_id(SUB, RG, "bad"),
            {"location": "x", "properties": {}},
            api_version=API_VERSION,
        ).result()
    assert info.value.status_code == 400
    assert fake_azure.arm.stored(SUB, RG, "bad") is None


def test_storage_account_change_and_read_only_refused(fake_azure: FakeAzure) -> None:
    ca = fake_azure.ca_bundle_path
    fake_azure.arm.seed_web_service(SUB, RG, "svc", PREDICTIVE)
    body = copy.deepcopy(PREDICTIVE)
    body["properties"]["storageAccount"] = {"name": "otheraccount", "key": "k"}
    r = requests.put(ws_url(fake_azure, "svc"), json=body, headers=TOKEN, verify=ca, timeout=10)
    assert r.status_code == 400
    detail = r.json()["error"]["details"][0]
    assert detail["code"] == "CannotChangeStorageAccount" and "'mltestaccount'" in detail["message"]
    patch = {"properties": {"packageType": "Graph", "StorageAccount": {"name": "other"}}}
    r = requests.patch(ws_url(fake_azure, "svc"), json=patch, headers=TOKEN, verify=ca, timeout=10)
    assert r.json()["error"]["details"][0]["code"] == "CannotChangeStorageAccount"

    ro = copy.deepcopy(PREDICTIVE)
    ro["properties"]["readOnly"] = True
    fake_azure.arm.seed_web_service(SUB, RG, "frozen", ro)
    for method in ("PUT", "PATCH"):
        r = requests.request(
            method, ws_url(fake_azure, "frozen"), json=ro, headers=TOKEN, verify=ca, timeout=10
        )
        assert r.status_code == 400
        assert r.json()["error"]["details"][0]["code"] == "WebServiceIsReadOnly"
    r = requests.delete(ws_url(fake_azure, "frozen"), headers=TOKEN, verify=ca, timeout=10)
    assert r.status_code == 202


def test_patch_merges_one_level_and_preserves_casing(fake_azure: FakeAzure) -> None:
    ca = fake_azure.ca_bundle_path
    fake_azure.arm.seed_web_service(SUB, RG, "svc", PREDICTIVE)
    new_asset = {
        "Name": "Retrain Sample [trained model]",
        "Type": "Resource",
        "LocationInfo": {"Uri": "https://mltestaccount/new.ilearner"},
    }
    patch = {
        "properties": {
            "packageType": "Graph",
            "Assets": {"asset3": new_asset},
            "description": None,
            "title": "new title",
        }
    }
    r = requests.patch(ws_url(fake_azure, "svc"), json=patch, headers=TOKEN, verify=ca, timeout=10)
    assert r.status_code == 200
    finish_lro(fake_azure, r)
    props = requests.get(ws_url(fake_azure, "svc"), headers=TOKEN, verify=ca, timeout=10).json()[
        "properties"
    ]
    assert props["Assets"] == {"asset3": new_asset}  # whole map replaced, client casing kept
    assert "assets" not in props and "asset1" not in props["Assets"]
    assert props["title"] == "new title" and "description" not in props
    assert props["package"] == PREDICTIVE["properties"]["package"]  # untouched
    stored = fake_azure.arm.stored(SUB, RG, "svc")
    assert stored is not None and stored.storage_key == "secret-storage-key"


def test_lro_failure_rolls_back(fake_azure: FakeAzure) -> None:
    ca = fake_azure.ca_bundle_path
    fake_azure.arm.seed_web_service(SUB, RG, "svc", PREDICTIVE)
    fake_azure.arm.fail_next_operation(name="svc", code="UpdateFailed", message="boom")
    r = requests.patch(
        ws_url(fake_azure, "svc"),
        json={"properties": {"packageType": "Graph", "title": "never"}},
        headers=TOKEN,
        verify=ca,
        timeout=10,
    )
    status = finish_lro(fake_azure, r)
    assert status["status"] == "Failed" and status["error"]["code"] == "UpdateFailed"
    props = requests.get(ws_url(fake_azure, "svc"), headers=TOKEN, verify=ca, timeout=10).json()[
        "properties"
    ]
    assert props["title"] == PREDICTIVE["properties"]["title"]
    assert props["provisioningState"] == "Failed"


def test_list_is_sparse_and_paged(fake_azure: FakeAzure) -> None:
    ca = fake_azure.ca_bundle_path
    fake_azure.arm.page_size = 2
    for i in range(3):
        fake_azure.arm.seed_web_service(SUB, RG, f"svc{i}", PREDICTIVE)
    url = ws_url(fake_azure, "x").replace("/x?", "?")
    page = requests.get(url, headers=TOKEN, verify=ca, timeout=10).json()
    assert len(page["value"]) == 2 and "assets" not in page["value"][0]["properties"]
    rest = requests.get(page["nextLink"], headers=TOKEN, verify=ca, timeout=10).json()
    assert [v["name"] for v in rest["value"]] == ["svc2"] and "nextLink" not in rest


def test_throttling_token_bucket() -> None:
    clock = ManualClock()
    arm_opts = {
        "clock": clock,
        "throttle": ThrottleConfig(writes=BucketSpec(3, 1)),
    }  # tiny write bucket
    with FakeAzure(arm_options=arm_opts) as fake:
        ca = fake.ca_bundle_path
        fake.arm.seed_web_service(SUB, RG, "svc", PREDICTIVE)
        with requests.Session() as s:
            # Default read bucket: 250 burst, then empty.
            remaining = [
                s.get(ws_url(fake, "svc"), headers=TOKEN, verify=ca, timeout=10).headers[
                    "x-ms-ratelimit-remaining-subscription-reads"
                ]
                for _ in range(250)
            ]
            assert remaining[0] == "249" and remaining[-1] == "0"
            r = s.get(ws_url(fake, "svc"), headers=TOKEN, verify=ca, timeout=10)
            assert r.status_code == 429 and r.headers["Retry-After"] == "1"
            assert r.json()["error"]["code"] == "SubscriptionRequestsThrottled"
            # Other subscriptions have their own bucket.
            other = ws_url(fake, "svc").replace(SUB, "other-sub")
            assert s.get(other, headers=TOKEN, verify=ca, timeout=10).status_code == 404
            clock.advance(1.0)  # 25 reads/s refill
            oks = [
                s.get(ws_url(fake, "svc"), headers=TOKEN, verify=ca, timeout=10).status_code
                for _ in range(26)
            ]
            assert oks.count(200) == 25 and oks[-1] == 429
            # Writes: 3 burst at 1/s; Retry-After says when a token will be back.
            patch = {"properties": {"packageType": "Graph", "title": "t"}}
            codes = [
                s.patch(ws_url(fake, "svc"), json=patch, headers=TOKEN, verify=ca, timeout=10)
                for _ in range(4)
            ]
            assert [c.status_code for c in codes] == [200, 200, 200, 429]
            assert codes[0].headers["x-ms-ratelimit-remaining-subscription-writes"] == "2"
            assert codes[3].headers["Retry-After"] == "1"
            d = s.delete(ws_url(fake, "svc"), headers=TOKEN, verify=ca, timeout=10)
            assert d.headers["x-ms-ratelimit-remaining-subscription-deletes"] == "199"


def test_sdk_retries_injected_429(fake_azure: FakeAzure) -> None:
    fake_azure.arm.seed_web_service(SUB, RG, "svc", PREDICTIVE)
    fake_azure.server.throttle(1, retry_after=0, method="GET")
    got = arm_client(fake_azure).resources.get_by_id(
        fake_azure.arm.resource_id(SUB, RG, "svc"), api_version=API_VERSION
    )
    assert got.name == "svc"
    assert [e.status for e in fake_azure.server.requests("GET")] == [429, 200]


def test_default_swagger_is_read_at_runtime() -> None:
    arm = FakeResourceManager()
    assert "WebServicePropertiesForGraph" in arm.validator.defs
    assert arm.validator.subtypes["WebServiceProperties"] == {
        "graph": "WebServicePropertiesForGraph"
    }


# -- BES against real Azurite --------------------------------------------------------------


def _upload(azurite: Azurite, container: str, name: str, data: bytes) -> None:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    svc = BlobServiceClient.from_connection_string(azurite.connection_string)
    with contextlib.suppress(ResourceExistsError):
        svc.create_container(container)
    svc.get_blob_client(container, name).upload_blob(data, overwrite=True)


def _ref(azurite: Azurite, location: str) -> dict[str, str]:
    return {"ConnectionString": azurite.connection_string, "RelativeLocation": location}


def _wait_job(fake: FakeAzure, url: str, key: str) -> dict[str, Any]:
    deadline = time.monotonic() + POLL_DEADLINE_S
    while time.monotonic() < deadline:
        status: dict[str, Any] = requests.get(
            url, headers={"Authorization": f"Bearer {key}"}, verify=fake.ca_bundle_path, timeout=10
        ).json()
        if status["StatusCode"] not in ("NotStarted", "Running", 0, 1):
            return status
        time.sleep(0.05)  # seconds between polls
    raise AssertionError("job did not finish")


def test_bes_job_trains_against_azurite(fake_azure_with_blobs: FakeAzure, azurite: Azurite) -> None:
    fake = fake_azure_with_blobs
    ca = fake.ca_bundle_path
    _upload(azurite, "data", "train.csv", b"x,y\n1,2\n2,4\n3,6\n")
    # A classic training service (its default endpoint accepts BES jobs) and a predictive one.
    classic = fake.classic
    token = classic.add_workspace("ws1")
    train_ep = classic.seed_web_service(
        "ws1", "train", "Training", training=True, trainer=linear_trainer, model_outputs={"output1"}
    )
    api = classic.endpoint("ws1", "train", "default")
    view = requests.get(
        f"{fake.classic_base_url}/workspaces/ws1/webservices/train/endpoints/default",
        headers={"Authorization": f"Bearer {token}"},
        verify=ca,
        timeout=10,
    ).json()
    base, key = view["ApiLocation"], train_ep.primary_key
    auth = {"Authorization": f"Bearer {key}"}
    request = {
        "Inputs": {"input1": _ref(azurite, "data/train.csv")},
        "Outputs": {
            "output1": _ref(azurite, "models/run1/model.ilearner"),
            "output2": _ref(azurite, "models/run1/eval.csv"),
        },
        "GlobalParameters": {},
    }
    r = requests.post(
        f"{base}/jobs?api-version=2.0", json=request, headers=auth, verify=ca, timeout=10
    )
    assert r.status_code == 200 and r.text.startswith('"')
    job_id = r.json()
    job_url = f"{base}/jobs/{job_id}?api-version=2.0"
    assert (
        requests.get(job_url, headers=auth, verify=ca, timeout=10).json()["StatusCode"]
        == "NotStarted"
    )
    r = requests.post(
        f"{base}/jobs/{job_id}/start?api-version=2.0", headers=auth, verify=ca, timeout=10
    )
    assert r.status_code == 204
    status = _wait_job(fake, job_url, key)
    assert status["StatusCode"] == "Finished" and status["Details"] is None
    out1 = status["Results"]["output1"]
    assert out1["BaseLocation"] == azurite.blob_endpoint + "/"
    assert out1["SasBlobToken"].startswith("?") and "sig=" in out1["SasBlobToken"]
    model = requests.get(
        out1["BaseLocation"] + out1["RelativeLocation"] + out1["SasBlobToken"], timeout=10
    )
    assert model.status_code == 200 and json.loads(model.content)["a"] == pytest.approx(2.0)
    out2 = status["Results"]["output2"]
    evaluation = requests.get(
        out2["BaseLocation"] + out2["RelativeLocation"] + out2["SasBlobToken"], timeout=10
    ).text
    assert evaluation.startswith("Metric,Value")
    assert requests.get(
        out1["BaseLocation"] + out1["RelativeLocation"], timeout=10
    ).status_code in (403, 404)  # the SAS is what grants access
    assert len(fake.bes.job_list()) == 1
    again = requests.post(
        f"{base}/jobs/{job_id}/start?api-version=2.0", headers=auth, verify=ca, timeout=10
    )
    assert again.json()["error"]["details"][0]["code"] == "CannotStartJob"

    # Point a new classic endpoint at the trained model; the fake checks the SAS URL works.
    classic.seed_web_service(
        "ws1",
        "pred",
        "Predictive",
        resources=[
            {
                "Name": "Model [trained model]",
                "Kind": "TrainedModel",
                "Location": {
                    "BaseLocation": "https://x/",
                    "RelativeLocation": "m/old.ilearner",
                    "SasBlobToken": "",
                },
            }
        ],
    )
    ep_url = f"{fake.classic_base_url}/workspaces/ws1/webservices/pred/endpoints/ep1"
    ws_auth = {"Authorization": f"Bearer {token}"}
    assert (
        requests.put(
            ep_url, json={"Description": "customer 1"}, headers=ws_auth, verify=ca, timeout=10
        ).status_code
        == 200
    )
    loc = {k: out1[k] for k in ("BaseLocation", "RelativeLocation", "SasBlobToken")}
    patch = {"Resources": [{"Name": "Model [trained model]", "Location": loc}]}
    r = requests.patch(ep_url, json=patch, headers=ws_auth, verify=ca, timeout=10)
    assert r.status_code == 204
    ep = requests.get(ep_url, headers=ws_auth, verify=ca, timeout=10).json()
    assert ep["Resources"][0]["Location"] == loc
    broken = {
        "Resources": [
            {"Name": "Model [trained model]", "Location": {**loc, "SasBlobToken": "?sig=forged"}}
        ]
    }
    r = requests.patch(ep_url, json=broken, headers=ws_auth, verify=ca, timeout=10)
    assert r.status_code == 400 and "retraining model URL is invalid" in r.text
    assert api.name == "default"


def test_bes_validation_failures_and_int_status(
    fake_azure_with_blobs: FakeAzure, azurite: Azurite
) -> None:
    fake = fake_azure_with_blobs
    ca = fake.ca_bundle_path
    fake.bes.status_code_format = "int"
    _upload(azurite, "data", "in.csv", b"x,y\n1,1\n2,2\n")
    base = fake.bes.register_training_service(
        "workspaces/w/services/s", "k1", linear_trainer, model_outputs={"output1"}
    )
    auth = {"Authorization": "Bearer k1"}
    good = {
        "Inputs": {"input1": _ref(azurite, "data/in.csv")},
        "Outputs": {
            "output1": _ref(azurite, "out/m.ilearner"),
            "output2": _ref(azurite, "out/e.csv"),
        },
    }

    def submit(body: dict[str, Any], headers: dict[str, str] = auth) -> requests.Response:
        return requests.post(
            f"{base}/jobs?api-version=2.0", json=body, headers=headers, verify=ca, timeout=10
        )

    assert submit(good, {"Authorization": "Bearer wrong"}).status_code == 401
    bad = copy.deepcopy(good)
    bad["Outputs"]["output1"]["RelativeLocation"] = "out/m.csv"
    r = submit(bad)
    assert r.status_code == 400
    assert r.json()["error"]["details"][0]["code"] == "InvalidBlobExtension"
    missing = copy.deepcopy(good)
    missing["Inputs"]["input1"]["RelativeLocation"] = "data/absent.csv"
    assert submit(missing).json()["error"]["details"][0]["code"] == "BlobNotFound"
    remote = copy.deepcopy(good)
    remote["Inputs"]["input1"] = {
        "ConnectionString": "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5",
        "RelativeLocation": "c/b",
    }
    assert submit(remote).json()["error"]["details"][0]["code"] == "InvalidBlobConnectionString"

    fake.bes.fail_next_job("Error 0085: injected")
    job = submit(good).json()
    requests.post(f"{base}/jobs/{job}/start?api-version=2.0", headers=auth, verify=ca, timeout=10)
    status = _wait_job(fake, f"{base}/jobs/{job}?api-version=2.0", "k1")
    assert status["StatusCode"] == 2 and "Error 0085" in status["Details"]  # 2 = Failed

    job = submit(good).json()
    fake.bes.run_delay_s = 5.0  # long enough that the cancel lands first
    requests.post(f"{base}/jobs/{job}/start?api-version=2.0", headers=auth, verify=ca, timeout=10)
    r = requests.delete(f"{base}/jobs/{job}?api-version=2.0", headers=auth, verify=ca, timeout=10)
    assert r.status_code == 204
    status = requests.get(
        f"{base}/jobs/{job}?api-version=2.0", headers=auth, verify=ca, timeout=10
    ).json()
    assert status["StatusCode"] == 3  # 3 = Cancelled
    assert len(fake.bes.job_list("workspaces/w/services/s")) == 2


def test_seed_example_file(fake_azure_with_blobs: FakeAzure) -> None:
    path = Path(__file__).with_name("seed.example.json")
    out = fake_azure_with_blobs.seed(json.loads(path.read_text("utf-8")), path.parent)
    assert len(out["arm"]) == 2 and len(out["bes"]) == 2
    assert out["classic"] == [{"workspace": "demo-workspace", "token": "demo-workspace-token"}]


# -- classic management -------------------------------------------------------------------


def test_classic_patch_rules(fake_azure: FakeAzure) -> None:
    ca = fake_azure.ca_bundle_path
    classic = fake_azure.classic
    token = classic.add_workspace("ws")
    auth = {"Authorization": f"Bearer {token}"}
    res = [
        {
            "Name": "Census Model [trained model]",
            "Kind": "TrainedModel",
            "Location": {
                "BaseLocation": "https://acct.blob.core.windows.net/",
                "RelativeLocation": "models/a.ilearner",
                "SasBlobToken": "?sv=x",
            },
        }
    ]
    classic.seed_web_service("ws", "pred", "Predictive", resources=res)
    classic.seed_web_service("ws", "train", "Training", training=True)
    ep = classic.seed_endpoint("ws", "pred", "ep2")
    base = f"{fake_azure.classic_base_url}/workspaces/ws/webservices"
    new_loc = {
        "BaseLocation": "https://acct.blob.core.windows.net/",
        "RelativeLocation": "models/b.ilearner",
        "SasBlobToken": "?sv=y",
    }
    patch = {"Resources": [{"Name": "Census Model [trained model]", "Location": new_loc}]}

    r = requests.patch(
        f"{base}/pred/endpoints/default", json=patch, headers=auth, verify=ca, timeout=10
    )
    assert r.status_code == 400 and "default endpoint cannot be replaced" in r.text
    r = requests.patch(
        f"{base}/train/endpoints/default", json=patch, headers=auth, verify=ca, timeout=10
    )
    assert r.status_code == 400 and "no updatable resources" in r.text
    wrong = {"Resources": [{"Name": "census model [trained model]", "Location": new_loc}]}
    r = requests.patch(
        f"{base}/pred/endpoints/ep2", json=wrong, headers=auth, verify=ca, timeout=10
    )
    assert r.status_code == 400 and "not an updatable resource" in r.text
    r = requests.patch(f"{base}/pred/endpoints/ep2", json=patch, verify=ca, timeout=10)
    assert r.status_code == 401
    # The endpoint's own key works too (the retrain doc's PATCH uses it).
    r = requests.patch(
        f"{base}/pred/endpoints/ep2",
        json=patch,
        verify=ca,
        timeout=10,
        headers={"Authorization": f"Bearer {ep.primary_key}"},
    )
    assert r.status_code == 204
    eps = requests.get(f"{base}/pred/endpoints", headers=auth, verify=ca, timeout=10).json()
    by_name = {e["Name"]: e for e in eps}
    assert by_name["ep2"]["Resources"][0]["Location"] == new_loc
    assert by_name["default"]["Resources"] == res
    assert set(by_name["ep2"]) >= {
        "ApiLocation",
        "PrimaryKey",
        "HelpLocation",
        "ThrottleLevel",
        "MaxConcurrentCalls",
        "WebServiceId",
        "WorkspaceId",
    }
    assert (
        requests.delete(
            f"{base}/pred/endpoints/ep2", headers=auth, verify=ca, timeout=10
        ).status_code
        == 204
    )
    assert (
        requests.get(f"{base}/pred/endpoints/ep2", headers=auth, verify=ca, timeout=10).status_code
        == 404
    )


def test_cli_help_runs() -> None:
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "tests.fakes", "--help"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "--seed" in out.stdout
