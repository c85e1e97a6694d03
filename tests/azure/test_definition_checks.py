"""An exported definition must agree with the live web service where the service
cannot change: a different ``storageAccount`` is a plan-time error for that endpoint,
and nothing at all is written."""

from __future__ import annotations

import json

import pytest

from tests.azure.conftest import World, predictive_definition

pytestmark = pytest.mark.slow

TWO = """\
  - forEach: [{city: seattle, file: same.json}, {city: boston, file: other.json}]
    name: bike-${each.city}
    webService: bike-${each.city}
    definition: ${each.file}
    inputs: {data: "data/${each.city}.csv"}
"""


def seed(world: World, boston_account: str) -> None:
    for city in ("seattle", "boston"):
        world.blob(f"{city}.csv", [1, 2, 3])
        world.seed_arm(f"bike-{city}")
    for name, account in (("same.json", "devstoreaccount1"), ("other.json", boston_account)):
        doc = predictive_definition()
        doc["properties"]["storageAccount"] = {"name": account, "key": "exported-key"}
        (world.root / name).write_text(json.dumps(doc))
    world.manifest(TWO)


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_a_definition_naming_another_storage_account_is_a_plan_time_error(
    world: World, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    seed(world, "otheraccount")
    world.fake.server.reset_log()
    args = ("apply", "--auto-approve") if command == "apply" else ("plan",)
    result = world.run(*args, capsys=capsys)
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert lines[-1] == (
        "Error: endpoint bike-boston: definition storageAccount.name is 'otheraccount' but the "
        "live web service 'bike-boston' uses 'devstoreaccount1'; a web service's storage "
        f"account cannot change ({world.root / 'other.json'})"
    )
    assert "Traceback" not in result.err
    assert world.writes() == []  # nothing changed, not even the endpoint that agrees
    assert world.fake.bes.job_list() == []


def test_a_definition_naming_the_same_storage_account_plans_as_usual(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(world, "DevStoreAccount1")  # storage account names compare without case
    result = world.run("plan", capsys=capsys)
    assert result.code == 0, result.err
    assert "2 to retrain" in result.out
