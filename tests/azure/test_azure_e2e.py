"""The Azure backend end to end: the CLI against the fake APIs and real Azurite."""

from __future__ import annotations

import re

import pytest

from tests.azure.conftest import SECRETS, World

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
    assert len(gets) == 2 * 3  # plan and apply: exactly one read per endpoint each
    for secret in SECRETS(world):
        assert all(secret not in text for text in world.outputs)
