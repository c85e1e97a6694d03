"""The azureml backend under faults: failed and stuck jobs, a crashed run's job, refused
writes mid-rollout, a failing smoke test, hand edits of the traffic."""

from __future__ import annotations

import threading
import time

import pytest

from reconciler.providers.azureml import names
from tests.azureml.conftest import CHAMPION_MODEL, World
from tests.azureml.test_azureml_e2e import ONE, one, retrain_deployments

WATCH = 30.0  # seconds a watcher thread waits for the rollout's first step


def _job_of(world: World) -> str:
    [job] = world.jobs()
    return job


def test_a_failed_job_is_reported_masked_and_the_next_run_tries_once_more_under_a_new_name(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    one(world)
    world.fake.azureml.fail_next_job(message="exit 1 with key AccountKey=abc123secret")
    failed = world.run("apply", "--auto-approve", capsys=capsys)
    assert failed.code == 1
    assert "Failed" in failed.out + failed.err and "abc123secret" not in failed.out + failed.err
    assert world.traffic("bike-seattle") == {"blue": 100}
    first = _job_of(world)
    again = world.run("apply", "--auto-approve", capsys=capsys)
    assert again.code == 0, again.out + again.err
    assert world.jobs() == sorted([first, f"{first}-2"])


@pytest.mark.parametrize("status", ["NotResponding", "Unknown"])
def test_a_job_not_responding_for_a_while_is_polled_through(
    world: World, capsys: pytest.CaptureFixture[str], status: str
) -> None:
    one(world)
    plan = world.run("plan", capsys=capsys).out
    name = plan.split("as command job ")[1].split()[0]
    world.fake.azureml.job_not_responding(name, polls=3, status=status)
    result = world.run("apply", "--auto-approve", capsys=capsys)
    assert result.code == 0, result.out + result.err
    assert f"{name} {status}" in result.out + result.err
    assert len(world.jobs()) == 1


def test_a_job_a_crashed_run_submitted_is_resumed_not_submitted_again(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    one(world)
    planned = world.run("plan", capsys=capsys).out
    name = planned.split("as command job ")[1].split()[0]
    world.run("plan", "--train", capsys=capsys)  # trains and registers: a job by that name
    assert world.jobs() == [name.lower()]
    registered = world.ws.models["bike-demand"].versions
    assert len(registered) == 1
    registered.clear()  # as if the run died after the job, before registering its model
    result = world.run("apply", "--auto-approve", capsys=capsys)
    assert result.code == 0, result.out + result.err
    assert "resuming job" in result.out + result.err
    assert world.jobs() == [name.lower()]


def test_a_write_refused_mid_rollout_returns_all_traffic_to_the_champion_and_says_why(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.seed_endpoint("bike-seattle")
    world.manifest(ONE.replace("DATA", world.data("seattle.csv")).replace("hold: 0s", "hold: 1s"))
    refused = threading.Event()

    def refuse_the_second_step() -> None:
        deadline = time.monotonic() + WATCH
        while time.monotonic() < deadline:
            if any(w == 10 for n, w in world.traffic("bike-seattle").items() if n != "blue"):
                world.fake.server.fail_with_status(
                    400, method="PUT", path=r".*/onlineEndpoints/bike-seattle"
                )
                refused.set()
                return
            time.sleep(0.01)  # seconds between looks

    watcher = threading.Thread(target=refuse_the_second_step)
    watcher.start()
    result = world.run("apply", "--auto-approve", capsys=capsys)
    watcher.join()
    assert refused.is_set()
    assert result.code == 1
    assert "all traffic is back on blue" in result.out + result.err
    assert world.traffic("bike-seattle") == {"blue": 100}
    assert "retrain.fingerprint" not in world.tags("bike-seattle")


def test_a_failing_smoke_test_sends_no_traffic_to_the_new_deployment(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.seed_endpoint("bike-seattle")
    endpoint = ONE.replace("DATA", world.data("seattle.csv")) + (
        "      smoke: {request: {data: [{no_x: 3}]}}\n"
    )
    world.manifest(endpoint)
    result = world.run("apply", "--auto-approve", capsys=capsys)
    assert result.code == 1 and "smoke test" in result.out + result.err
    assert world.traffic("bike-seattle") == {"blue": 100}


def test_traffic_moved_by_hand_is_drift_and_apply_moves_it_back(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    one(world)
    assert world.run("apply", "--auto-approve", capsys=capsys).code == 0
    [new] = retrain_deployments(world, "bike-seattle")
    world.ws.endpoints["bike-seattle"].body["properties"]["traffic"] = {"blue": 100}
    planned = world.run("plan", capsys=capsys)
    assert "repair-drift" in planned.out and "shift traffic to " + new in planned.out
    assert world.run("apply", "--auto-approve", capsys=capsys).code == 0
    assert world.traffic("bike-seattle") == {new: 100}
    assert len(world.jobs()) == 1


def test_job_and_deployment_names_come_from_the_fingerprint() -> None:
    fp = "0123456789abcdef" * 4
    assert names.job_name(fp) == "retrain-0123456789abcdef0123456789abcdef"
    assert names.job_name(fp, 2).endswith("-2")
    assert names.deployment_name(fp) == "retrain-0123456789ab"
    assert 3 <= len(names.deployment_name(fp)) <= 32  # the service's limit for a deployment


def test_a_serving_deployment_pointed_at_another_model_by_hand_gets_a_new_deployment_back(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    one(world)
    assert world.run("apply", "--auto-approve", capsys=capsys).code == 0
    [ours] = retrain_deployments(world, "bike-seattle")
    ep = world.ws.endpoints["bike-seattle"]
    ours_model = world.deployments("bike-seattle")[ours]
    ep.deployments[ours.lower()].body["properties"]["model"] = CHAMPION_MODEL  # by hand
    planned = world.run("plan", capsys=capsys)
    assert "repair-drift" in planned.out and f"deploy it as {ours}-2" in planned.out
    result = world.run("apply", "--auto-approve", capsys=capsys)
    assert result.code == 0, result.out + result.err
    assert world.traffic("bike-seattle") == {f"{ours}-2": 100}
    assert world.deployments("bike-seattle")[f"{ours}-2"] == ours_model
    assert len(world.jobs()) == 1


def test_a_taken_deployment_name_gets_a_suffix() -> None:
    fp = "ab" * 32
    base = names.deployment_name(fp)
    assert names.free_deployment_name(fp, ["blue"]) == base
    assert names.free_deployment_name(fp, [base.upper(), f"{base}-2"]) == f"{base}-3"
