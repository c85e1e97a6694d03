"""The azureml backend end to end: the real CLI against the Azure ML fake and Azurite."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
import time

import pytest
from azure.storage.blob import BlobServiceClient

from reconciler import fingerprint
from tests.azureml.conftest import CHAMPION_MODEL, STATE, World, secrets
from tests.fakes.azureml.validation import StrictValidator

ONE = """\
  - name: seattle
    webService: bike-seattle
    inputs: {data: DATA}
    azureml:
      rollout: {steps: [10, 50, 100], hold: 0s}
"""
KILL_WITHIN = 60  # seconds for the child apply to reach its first traffic step
# Request bodies by route, and the swagger definition each must satisfy.
DEFINITIONS = {
    "aml.endpoint.put": "OnlineEndpointTrackedResource",
    "aml.endpoint.patch": "PartialMinimalTrackedResourceWithIdentity",
    "aml.deployment.put": "OnlineDeploymentTrackedResource",
    "aml.modelVersion.put": "ModelVersionResource",
    "aml.job.put": "JobBaseResource",
}


def one(world: World, name: str = "seattle.csv", **kw: str) -> None:
    world.seed_endpoint("bike-seattle")
    world.manifest(ONE.replace("DATA", world.data(name)), **kw)


def retrain_deployments(world: World, endpoint: str) -> list[str]:
    return sorted(n for n in world.deployments(endpoint) if n.startswith("retrain-"))


def test_apply_rolls_a_new_model_out_blue_green_and_the_second_apply_writes_nothing(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    one(world)
    assert world.run("validate", capsys=capsys).code == 0
    planned = world.run("plan", capsys=capsys)
    assert planned.code == 0, planned.err
    assert world.writes() == []
    assert world.run("apply", "--auto-approve", capsys=capsys).code == 0
    [new] = retrain_deployments(world, "bike-seattle")
    assert world.traffic("bike-seattle") == {new: 100}
    assert world.deployments("bike-seattle")["blue"] == CHAMPION_MODEL  # kept, untouched
    assert world.tags("bike-seattle")["owner"] == "ops"  # the endpoint's own tags are kept
    assert world.tags("bike-seattle")["retrain.managed-by"] == "retrain"
    shifts = [w for w in world.writes() if w.startswith("PUT") and w.endswith("bike-seattle")]
    assert len(shifts) == 3  # one PUT per step: 10, 50, 100
    assert len(world.jobs()) == 1
    before = len(world.fake.server.requests())
    again = world.run("apply", "--auto-approve", capsys=capsys)
    assert again.code == 0 and "No changes" in again.out
    later = world.fake.server.requests()[before:]
    assert [r for r in later if r.method != "GET"] == []
    assert len(world.jobs()) == 1


def test_the_clone_keeps_every_field_of_the_serving_deployment_but_the_model(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    one(world)
    assert world.run("apply", "--auto-approve", capsys=capsys).code == 0
    [new] = retrain_deployments(world, "bike-seattle")
    ep = world.ws.endpoints["bike-seattle"]
    view = world.fake.azureml.online.deployment_view
    blue = view(world.ws, ep, ep.deployments["blue"])
    green = view(world.ws, ep, ep.deployments[new.lower()])
    assert {k: v for k, v in green["properties"].items() if k != "model"} == {
        k: v for k, v in blue["properties"].items() if k != "model"
    }
    assert green["sku"] == blue["sku"] and green["location"] == blue["location"]
    assert green["tags"]["team"] == "bikes"


def test_endpoints_sharing_a_fingerprint_share_one_job(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.seed_endpoint("bike-seattle")
    world.seed_endpoint("bike-boston")
    data = world.data("shared.csv")
    world.manifest(
        f"""\
  - forEach: [{{city: seattle}}, {{city: boston}}]
    name: ${{each.city}}
    webService: bike-${{each.city}}
    inputs: {{data: {data}}}
"""
    )
    assert world.run("apply", "--auto-approve", capsys=capsys).code == 0
    assert len(world.jobs()) == 1
    for endpoint in ("bike-seattle", "bike-boston"):
        [new] = retrain_deployments(world, endpoint)
        assert world.traffic(endpoint) == {new: 100}


def test_a_gate_failure_leaves_all_traffic_on_the_champion(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    one(world, gate="1.5")  # no model reaches a coefficient of determination of 1.5
    result = world.run("apply", "--auto-approve", capsys=capsys)
    assert result.code == 1 and "gate" in result.out + result.err
    assert world.traffic("bike-seattle") == {"blue": 100}
    assert retrain_deployments(world, "bike-seattle") == []


def test_a_deployment_ending_failed_leaves_all_traffic_on_the_champion_and_says_why(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    one(world)
    world.fake.azureml.fail_next_deployment()
    result = world.run("apply", "--auto-approve", capsys=capsys)
    assert result.code == 1
    assert "did not become ready" in result.out + result.err
    assert world.traffic("bike-seattle") == {"blue": 100}
    assert "retrain.fingerprint" not in world.tags("bike-seattle")
    again = world.run("apply", "--auto-approve", capsys=capsys)  # the next run mends it
    assert again.code == 0, again.out + again.err
    [new] = retrain_deployments(world, "bike-seattle")
    assert world.traffic("bike-seattle") == {new: 100} and len(world.jobs()) == 1


def test_a_manifest_revert_moves_traffic_back_with_no_training_and_no_new_deployment(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    one(world)
    manifest = world.root / "retrain.yaml"
    first = manifest.read_text()
    assert world.run("apply", "--auto-approve", capsys=capsys).code == 0
    [old] = retrain_deployments(world, "bike-seattle")
    other = world.data("seattle-2.csv", "x,y\n1,3\n2,5\n3,7.2\n4,8.9\n5,11\n")
    manifest.write_text(first.replace("data/seattle.csv", other))
    assert world.run("apply", "--auto-approve", capsys=capsys).code == 0
    assert len(world.jobs()) == 2
    deployments = retrain_deployments(world, "bike-seattle")
    [new] = [d for d in deployments if d != old]
    assert world.traffic("bike-seattle") == {new: 100}
    manifest.write_text(first)
    planned = world.run("plan", capsys=capsys)
    assert "without training" in planned.out
    assert world.run("apply", "--auto-approve", capsys=capsys).code == 0
    assert world.traffic("bike-seattle") == {old: 100}
    assert len(world.jobs()) == 2
    assert retrain_deployments(world, "bike-seattle") == sorted([old, new])


def test_a_smoke_test_reaches_the_new_deployment_alone_before_any_traffic(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.seed_endpoint("bike-seattle")
    endpoint = ONE.replace("DATA", world.data("seattle.csv")) + (
        "      smoke: {request: {data: [{x: 3}, {x: 4}]}}\n"
    )
    world.manifest(endpoint)
    assert world.run("apply", "--auto-approve", capsys=capsys).code == 0
    [new] = retrain_deployments(world, "bike-seattle")
    [score] = world.fake.server.requests("POST", r"/inference/.*")
    headers = {k.lower(): v for k, v in score.headers.items()}
    assert headers["azureml-model-deployment"] == new


def test_a_rollout_schedule_that_does_not_rise_to_100_is_refused_at_load_time(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.manifest(ONE.replace("DATA", "data/x.csv").replace("[10, 50, 100]", "[10, 50, 40]"))
    result = world.run("validate", capsys=capsys)
    assert result.code == 1
    assert re.search(r"retrain\.yaml:\d+: .*rollout/steps: rollout steps must rise", result.err)
    assert world.fake.server.requests() == []


def test_every_body_the_fake_received_is_valid_against_the_swagger_and_no_secret_leaks(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    one(world)
    assert world.run("apply", "--auto-approve", capsys=capsys).code == 0
    validator = StrictValidator.load()
    checked = 0
    for request in world.fake.server.requests():
        definition = DEFINITIONS.get(request.route or "")
        if definition is not None:
            assert validator.validate(request.json, definition) == [], request.path
            checked += 1
    assert checked >= 6  # a job, a model version, a deployment, three traffic steps
    for text in world.outputs:
        for secret in secrets(world):
            assert secret not in text


def test_a_sigkill_during_the_traffic_shift_then_a_rerun_completes_with_no_second_job_or_deployment(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.seed_endpoint("bike-seattle")
    world.manifest(ONE.replace("DATA", world.data("seattle.csv")).replace("hold: 0s", "hold: 2s"))
    command = [sys.executable, "-m", "reconciler", "apply", "--auto-approve"]
    child = subprocess.Popen(
        [*command, "-f", str(world.root / "retrain.yaml")],
        env=world.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + KILL_WITHIN
        while not 0 < max(_new_weights(world), default=0) < 100:
            assert time.monotonic() < deadline, "the rollout never reached its first step"
            time.sleep(0.02)  # seconds between looks at the fake's state
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert 0 < max(_new_weights(world)) < 100  # killed mid-shift
    lock = BlobServiceClient.from_connection_string(world.emulator.connection_string)
    lock_id = lock.get_blob_client(STATE, "lock").get_blob_properties().metadata["id"]
    assert world.run("force-unlock", lock_id, capsys=capsys).code == 0
    planned = world.run("plan", capsys=capsys)
    assert "traffic split" in planned.out
    again = world.run("apply", "--auto-approve", capsys=capsys)
    assert again.code == 0, again.out + again.err
    [new] = retrain_deployments(world, "bike-seattle")
    assert world.traffic("bike-seattle") == {new: 100}
    assert len(world.jobs()) == 1
    puts = [r for r in world.fake.server.requests("PUT") if r.route == "aml.deployment.put"]
    assert len(puts) == 1


def _new_weights(world: World) -> list[int]:
    traffic = world.traffic("bike-seattle")
    return [w for n, w in traffic.items() if n.startswith("retrain-")]


def test_the_plan_shows_the_serving_deployment_the_split_and_the_steps_apply_will_take(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    one(world)
    planned = world.run("plan", capsys=capsys)
    assert "live: traffic: blue 100%" in planned.out
    assert "live: deployment blue: 100%, model bike-handmade:1, Succeeded" in planned.out
    steps = planned.out.split("steps:")[1]
    for expected in (
        "1. train model",
        "2. register it as a model version",
        "3. deploy it as retrain-",
        "4. shift traffic to retrain-",
        "10% → 50% → 100%",
        "5. remove retrain's idle deployments beyond the newest 1",
    ):
        assert expected in steps
    markdown = world.run("plan", "--format", "markdown", capsys=capsys)
    assert "Steps:" in markdown.out and "- traffic: blue 100%" in markdown.out


def test_a_saved_plan_whose_steps_were_edited_is_refused(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    one(world)
    saved = world.root / "plan.json"
    assert world.run("plan", "-out", str(saved), capsys=capsys).code == 0
    data = json.loads(saved.read_text())
    assert data["changes"][0]["steps"][0].startswith("train model")
    data["changes"][0]["steps"] = ["shift traffic to blue: 100%"]
    body = {k: v for k, v in data.items() if k != "checksum"}
    body["checksum"] = hashlib.sha256(fingerprint.canonical_json(body).encode()).hexdigest()
    saved.write_text(json.dumps(body))
    result = world.run("apply", str(saved), capsys=capsys)
    assert result.code == 1 and "steps are not what apply would do now" in result.err
    assert world.writes() == []


def test_a_missing_endpoint_is_created_from_the_manifests_bodies_when_it_says_so(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    data = world.data("seattle.csv")
    world.manifest(
        f"""\
  - name: seattle
    webService: bike-new
    inputs: {{data: {data}}}
    azureml:
      create:
        endpoint: {{location: eastus, properties: {{authMode: Key}}}}
        deployment:
          location: eastus
          sku: {{name: Default, capacity: 1}}
          properties:
            endpointComputeType: Managed
            instanceType: Standard_DS3_v2
            environmentId: "azureml:sklearn-env:1"
"""
    )
    planned = world.run("plan", capsys=capsys)
    assert "+ seattle  create" in planned.out
    assert "1. create online endpoint bike-new from azureml.create.endpoint" in planned.out
    assert world.run("apply", "--auto-approve", capsys=capsys).code == 0
    [new] = retrain_deployments(world, "bike-new")
    assert world.traffic("bike-new") == {new: 100}
    assert "No changes" in world.run("plan", capsys=capsys).out


def test_a_mirror_step_copies_live_traffic_to_the_new_deployment_before_it_gets_any(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.seed_endpoint("bike-seattle")
    world.manifest(
        ONE.replace("DATA", world.data("seattle.csv")).replace("hold: 0s}", "hold: 0s, mirror: 20}")
    )
    planned = world.run("plan", capsys=capsys)
    assert "mirror 20% of live traffic to retrain-" in planned.out
    assert world.run("apply", "--auto-approve", capsys=capsys).code == 0
    [new] = retrain_deployments(world, "bike-seattle")
    puts = [
        r.json["properties"]
        for r in world.fake.server.requests("PUT")
        if r.route == "aml.endpoint.put"
    ]
    assert [p.get("mirrorTraffic") for p in puts][:2] == [{new: 20}, {}]
    assert puts[0]["traffic"] == {"blue": 100}
    assert world.traffic("bike-seattle") == {new: 100}
