"""Orphans on the azure backend (issue 10, point 4): a Resource Manager web service and a
classic endpoint left behind by the manifest are shown orphaned, and --prune removes
retrain's ownership (the tags; the classic ownership record) and deletes nothing."""

from __future__ import annotations

import pytest

from tests.azure.conftest import RG, SUB, World
from tests.azure.test_classic import CLASSIC, seed_census

pytestmark = pytest.mark.slow

ARM_ONE = """\
  - name: bike-seattle
    webService: bike-seattle
    inputs: {data: "data/seattle.csv"}
"""


def test_orphans_of_both_kinds_are_shown_and_pruned_without_deleting_anything(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_census(world)
    world.blob("seattle.csv", [1, 2, 3, 5])
    world.seed_arm("bike-seattle")
    world.manifest(CLASSIC + ARM_ONE)
    applied = world.run("apply", "--auto-approve", capsys=capsys)
    assert applied.code == 0, applied.err + applied.out
    world.manifest(CLASSIC.replace("{customer: acme}, ", ""))  # seattle and acme removed
    plan = world.run("plan", capsys=capsys)
    assert plan.code == 0, plan.err
    assert "? bike-seattle  orphaned  (web service bike-seattle, resource group" in plan.out
    assert "? census-acme  orphaned  (web service ws1/census/acme, classic endpoint)" in plan.out
    refused = world.run("apply", "--auto-approve", "--prune", "--prune-delete", capsys=capsys)
    assert refused.code == 1
    assert "the azure backend never deletes a web service" in refused.err
    pruned = world.run("apply", "--auto-approve", "--prune", capsys=capsys)
    assert pruned.code == 0, pruned.err + pruned.out
    assert pruned.out.count(": applied: pruned: removed retrain's ownership") == 2
    stored = world.fake.arm.stored(SUB, RG, "bike-seattle")
    assert stored is not None and not any(k.startswith("retrain.") for k in stored.tags or {})
    assert world.fake.classic.endpoint_view("ws1", "census", "acme") is not None
    after = world.run("plan", capsys=capsys)
    assert "orphaned" not in after.out and after.code == 0
