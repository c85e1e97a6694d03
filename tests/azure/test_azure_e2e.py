"""The Azure backend end to end: the CLI against the fake APIs and real Azurite."""

from __future__ import annotations

import re

import pytest

from tests.azure.conftest import RG, SECRETS, SUB, World

pytestmark = pytest.mark.slow

THREE = """\
  - forEach: [{city: seattle}, {city: portland}, {city: boston}]
    name: bike-${each.city}
    webService: bike-${each.city}
    inputs: {data: "data/${each.city}.csv"}
"""


def seed_three(world: World) -> None:
    for i, city in enumerate(("seattle", "portland", "boston")):
        world.blob(f"{city}.csv", [1 + i, 2, 3 + i, 4])
        world.seed_arm(f"bike-{city}")
    world.manifest(THREE)


def test_apply_twice_second_run_writes_nothing_and_trains_nothing(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_three(world)
    plan = world.run("plan", "--detailed-exitcode", capsys=capsys)
    assert plan.code == 2, plan.err
    assert "Plan: 0 to create, 3 to retrain" in plan.out
    first = world.run("apply", "--auto-approve", capsys=capsys)
    assert first.code == 0, first.err + first.out
    assert len(world.fake.bes.job_list()) == 3
    for city in ("seattle", "portland", "boston"):
        assert re.match(
            r"http://127\.0\.0\.1:\d+/devstoreaccount1/retrain/models/[0-9a-f]{64}/"
            r"model\.ilearner$",
            world.arm_uri(f"bike-{city}"),
        )
    world.fake.server.reset_log()
    again = world.run("plan", "--detailed-exitcode", capsys=capsys)
    assert again.code == 0, again.out + again.err
    second = world.run("apply", "--auto-approve", capsys=capsys)
    assert second.code == 0
    assert world.writes() == []
    assert len(world.fake.bes.job_list()) == 3
    gets = [r for r in world.fake.server.requests() if r.method == "GET"]
    lists = [r for r in gets if r.path.split("?")[0].lower().endswith("/webservices")]
    assert len(gets) - len(lists) == 2 * 3  # plan and apply: exactly one read per endpoint
    assert len(lists) == 2  # and one list of the resource group each, to find orphans
    for secret in SECRETS(world):
        assert all(secret not in text for text in world.outputs)


def test_endpoints_sharing_a_fingerprint_cause_exactly_one_bes_job(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.blob("shared.csv", [1, 2, 3, 5])
    for city in ("a", "b", "c", "d"):
        world.seed_arm(f"bike-{city}")
    world.manifest("""\
  - forEach: [{city: a}, {city: b}, {city: c}, {city: d}]
    name: bike-${each.city}
    webService: bike-${each.city}
    inputs: {data: data/shared.csv}
""")
    result = world.run("apply", "--auto-approve", capsys=capsys)
    assert result.code == 0, result.err
    assert "Training jobs: 1." in result.out
    assert len(world.fake.bes.job_list()) == 1
    assert len({world.arm_uri(f"bike-{c}") for c in "abcd"}) == 1


def test_same_path_new_content_is_a_new_model(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_three(world)
    assert world.run("apply", "--auto-approve", capsys=capsys).code == 0
    before = world.arm_uri("bike-boston")
    world.blob("boston.csv", [10, 20, 30, 40])  # same blob name, new content
    plan = world.run("plan", capsys=capsys)
    assert "~ bike-boston  retrain" in plan.out
    assert "inputs changed: data" in plan.out
    assert world.run("apply", "--auto-approve", capsys=capsys).code == 0
    assert world.arm_uri("bike-boston") != before
    assert len(world.fake.bes.job_list()) == 4


def test_the_definition_keeps_every_other_field_exactly(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_three(world)
    before = world.fake.arm.view(SUB, RG, "bike-seattle")
    assert world.run("apply", "--auto-approve", capsys=capsys).code == 0
    after = world.fake.arm.view(SUB, RG, "bike-seattle")
    assert before is not None and after is not None
    for doc in (before, after):
        doc["properties"].pop("modifiedOn")
        for asset in doc["properties"]["assets"].values():
            if asset["name"] == "Bike Demand [trained model]":
                asset["locationInfo"].pop("uri")
    assert after["tags"].pop("retrain.managed-by") == "retrain"
    for tag in ("retrain.endpoint", "retrain.fingerprint", "retrain.version"):
        after["tags"].pop(tag)
    assert after == before
    stored = world.fake.arm.stored(SUB, RG, "bike-seattle")
    assert stored is not None and stored.storage_account_name == "devstoreaccount1"


def test_an_out_of_band_change_of_the_model_uri_shows_as_drift_and_is_repaired(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_three(world)
    assert world.run("apply", "--auto-approve", capsys=capsys).code == 0
    good = world.arm_uri("bike-portland")
    world.out_of_band_patch("bike-portland", "https://elsewhere.example/hand.ilearner")
    plan = world.run("plan", "--detailed-exitcode", capsys=capsys)
    assert plan.code == 2
    assert "! bike-portland  repair-drift" in plan.out
    assert "serves https://elsewhere.example/hand.ilearner" in plan.out
    fixed = world.run("apply", "--auto-approve", capsys=capsys)
    assert fixed.code == 0, fixed.err
    assert world.arm_uri("bike-portland") == good
    assert len(world.fake.bes.job_list()) == 3  # repaired without training


class Crash(BaseException):
    """A process dying: not an Exception, so nothing on the way catches it."""


def crash(*_args: object, **_kw: object) -> None:
    raise Crash


def crash_in(
    world: World, method: str, capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch
) -> None:
    """One endpoint, and an apply that dies inside ``bes.Trainer.<method>``."""
    from reconciler.providers.azure import bes

    seed_solo(world)
    with mp.context() as patch:
        patch.setattr(bes.Trainer, method, crash)
        with pytest.raises(Crash):
            world.run("apply", "--auto-approve", capsys=capsys)


def seed_solo(world: World) -> None:
    world.blob("solo.csv", [1, 2, 4])
    world.seed_arm("bike-solo")
    world.manifest("""\
  - name: bike-solo
    webService: bike-solo
    inputs: {data: data/solo.csv}
""")


def test_a_crash_after_submitting_a_job_resumes_that_job_on_rerun(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    crash_in(world, "_start", capsys, monkeypatch)
    assert len(world.fake.bes.job_list()) == 1
    assert world.fake.bes.job_list()[0].status == "NotStarted"
    rerun = world.run("apply", "--auto-approve", "--lock-timeout", "70", capsys=capsys)
    assert rerun.code == 0, rerun.err
    assert "resuming BES job" in rerun.err
    assert len(world.fake.bes.job_list()) == 1
    assert world.fake.bes.job_list()[0].status == "Finished"


def test_a_crash_while_polling_resumes_polling_without_a_second_job(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    crash_in(world, "_wait", capsys, monkeypatch)
    rerun = world.run("apply", "--auto-approve", "--lock-timeout", "70", capsys=capsys)
    assert rerun.code == 0, rerun.err
    assert len(world.fake.bes.job_list()) == 1


def test_a_throttled_and_flaky_run_converges(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_three(world)
    server = world.fake.server
    server.throttle(3, retry_after=0, path=".*/webServices/.*")
    server.fail_with_status(503, times=2, method="GET", path="/bes/.*")
    server.reset_connections(1, method="GET", path="/bes/.*")
    result = world.run("apply", "--auto-approve", capsys=capsys)
    assert result.code == 0, result.err
    assert "will retry" in result.err or "retrying" in result.err
    assert world.run("plan", "--detailed-exitcode", capsys=capsys).code == 0
    statuses = [r.status for r in server.requests()]
    assert statuses.count(429) == 3 and statuses.count(503) == 2
    assert len(world.fake.bes.job_list()) == 3


def test_a_failed_bes_job_is_reported_with_its_details_and_leaves_the_service(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_three(world)
    world.fake.bes.fail_next_job("Module 'Train Model' ran out of memory.")
    result = world.run("apply", "--auto-approve", "--parallelism", "1", capsys=capsys)
    assert result.code == 1
    assert "failed: training failed: BES job" in result.out
    assert "Module 'Train Model' ran out of memory." in result.out
    assert (
        sum(
            world.arm_uri(f"bike-{c}") == "https://old.example/initial.ilearner"
            for c in ("seattle", "portland", "boston")
        )
        == 1
    )


def test_bes_status_codes_sent_as_integers_are_understood(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.fake.bes.status_code_format = "int"
    seed_three(world)
    result = world.run("apply", "--auto-approve", capsys=capsys)
    assert result.code == 0, result.err
    assert len(world.fake.bes.job_list()) == 3


def test_a_recorded_job_that_bes_no_longer_knows_is_replaced_on_the_next_run(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    crash_in(world, "_wait", capsys, monkeypatch)
    world.fake.bes.jobs.clear()  # the service forgot the job (expired, or deleted by hand)
    lost = world.run("apply", "--auto-approve", capsys=capsys)
    assert lost.code == 1
    assert "no longer exists; the next run submits a new one" in lost.out
    again = world.run("apply", "--auto-approve", capsys=capsys)
    assert again.code == 0, again.err
    assert len(world.fake.bes.job_list()) == 1
