"""Classic web service endpoints: add the missing one, PATCH its trained model, refuse
the default endpoint and training web services."""

from __future__ import annotations

import pytest

from tests.azure.conftest import ASSET, World

pytestmark = pytest.mark.slow

CLASSIC = """\
  - forEach: [{customer: acme}, {customer: globex}]
    name: census-${each.customer}
    webService: census/${each.customer}
    inputs: {data: "data/${each.customer}.csv"}
    classic:
      workspace: ws1
      webService: census
      endpoint: ${each.customer}
      apiKey: ${env:TEST_CLASSIC}
"""


def seed_census(world: World) -> None:
    """The classic census web service with endpoint acme, and data for acme and globex."""
    world.seed_classic(endpoints=("acme",))
    world.blob("acme.csv", [1, 2, 3])
    world.blob("globex.csv", [4, 5, 9])


def location(world: World, endpoint: str) -> dict[str, str]:
    view = world.fake.classic.endpoint_view("ws1", "census", endpoint)
    resource = next(r for r in view["Resources"] if r["Name"] == ASSET)
    return dict(resource["Location"])


def test_a_missing_endpoint_is_added_and_patched_then_nothing_changes(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_census(world)
    world.manifest(CLASSIC)
    plan = world.run("plan", capsys=capsys)
    assert "+ census-globex  create" in plan.out, plan.out + plan.err
    assert "~ census-acme  retrain" in plan.out
    result = world.run("apply", "--auto-approve", capsys=capsys)
    assert result.code == 0, result.err + result.out
    for customer in ("acme", "globex"):
        loc = location(world, customer)
        assert loc["RelativeLocation"].startswith("retrain/models/")
        assert "sig=" in loc["SasBlobToken"]
    world.fake.server.reset_log()
    again = world.run("apply", "--auto-approve", capsys=capsys)
    assert again.code == 0
    assert "No changes." in again.out
    assert world.writes() == []


def test_an_out_of_band_patch_of_a_classic_endpoint_is_drift(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.seed_classic(endpoints=("acme", "globex"))
    world.blob("acme.csv", [1, 2, 3])
    world.blob("globex.csv", [4, 5, 9])
    world.manifest(CLASSIC)
    assert world.run("apply", "--auto-approve", capsys=capsys).code == 0
    world.fake.classic.seed_endpoint(
        "ws1",
        "census",
        "acme",
        resources=[
            {
                "Name": ASSET,
                "Kind": "Resource",
                "Location": {
                    "BaseLocation": "https://other.example/",
                    "RelativeLocation": "m/x.ilearner",
                    "SasBlobToken": "?sig=abc",
                },
            }
        ],
    )
    plan = world.run("plan", capsys=capsys)
    assert "! census-acme  repair-drift" in plan.out, plan.out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("endpoint: ${each.customer}", "endpoint: default"),
        ("webService: census\n", "webService: bike-training\n"),
    ],
)
def test_default_endpoints_and_training_services_are_refused_at_validate_time(
    world: World, capsys: pytest.CaptureFixture[str], change: str, message: str
) -> None:
    world.seed_classic()
    world.manifest(CLASSIC.replace(change, message))
    result = world.run("validate", capsys=capsys)
    assert result.code == 1
    assert (
        "the default endpoint's trained model cannot be replaced" in result.err
        or "is the trainer's training web service" in result.err
    ), result.err


def test_an_arm_endpoint_on_the_training_service_is_refused(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.manifest("""\
  - name: oops
    webService: bike-training
    inputs: {data: data/x.csv}
""")
    result = world.run("validate", capsys=capsys)
    assert result.code == 1
    assert "'bike-training' is the trainer's training web service" in result.err
