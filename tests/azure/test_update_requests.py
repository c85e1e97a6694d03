"""The API minimum per Resource Manager update, counted from the fake's request log:
the plan's read, one PATCH built from it, the polls the service asks for, and one
read-back (the operation's final GET); and polls spaced as the service says
(``Retry-After``), else by a short backoff up to ``pollSeconds``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from reconciler import model, redact
from reconciler.providers.azure import arm, config
from tests.azure.conftest import RG, SUB, World, predictive_definition
from tests.fakes.server import FakeAzure

pytestmark = pytest.mark.slow

CITIES = ("seattle", "portland", "boston")


def per_service(world: World) -> dict[str, Counter[str]]:
    """Each web service's requests, by kind: GET, PATCH, and the polls of its operations."""
    found: dict[str, Counter[str]] = {}
    polls = {op_id: op.key[2] for op_id, op in world.fake.arm.operations.items()}
    for r in world.fake.server.requests():
        path = r.path.split("?")[0]
        if "/webServices/" in path:
            name = path.rsplit("/", 1)[-1]
            found.setdefault(name, Counter())[r.method] += 1
        elif "/operationsStatus/" in path:
            found.setdefault(polls[path.rsplit("/", 1)[-1]], Counter())["poll"] += 1
    return found


def test_an_update_is_one_patch_two_reads_and_the_polls_the_service_asks_for(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    for i, city in enumerate(CITIES):
        world.blob(f"{city}.csv", [1 + i, 2, 3 + i, 4])
        world.seed_arm(f"bike-{city}")
    world.manifest(
        "  - forEach: [{city: seattle}, {city: portland}, {city: boston}]\n"
        "    name: bike-${each.city}\n"
        "    webService: bike-${each.city}\n"
        '    inputs: {data: "data/${each.city}.csv"}\n'
    )
    world.fake.server.reset_log()
    result = world.run("apply", "--auto-approve", capsys=capsys)
    assert result.code == 0, result.err + result.out
    counts = per_service(world)
    demanded = world.fake.arm.lro_polls + 1  # the fake's running answers, then "Succeeded"
    for city in CITIES:
        seen = counts[f"bike-{city}"]
        assert seen["PATCH"] == 1
        assert seen["GET"] == 2, seen  # the plan's read and the operation's final GET
        assert seen["poll"] == demanded, seen
        assert set(seen) == {"GET", "PATCH", "poll"}
        assert world.arm_uri(f"bike-{city}").endswith("/model.ilearner")


def web_services(fake: FakeAzure, poll_seconds: float) -> arm.WebServices:
    cfg = config.AzureConfig(
        subscription_id=SUB,
        resource_group=RG,
        arm_url=fake.arm_base_url,
        classic_url=fake.classic_base_url,
        scope=f"{fake.arm_base_url}/.default",
        token_env=None,
        verify=fake.ca_bundle_path,
        connection_string=model.Secret("${env:S}", "UseDevelopmentStorage=true"),
        container="c",
        poll_seconds=poll_seconds,
        job_timeout=60.0,
        retries=0,
    )
    return arm.WebServices(
        cfg, arm.StaticToken("t"), scrub=redact.Redactor(), log=lambda _l: None, pacer=None
    )


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits between operation polls, recorded instead of slept."""
    waits: list[float] = []
    monkeypatch.setattr(arm.BackoffPolling, "_sleep", lambda _self, s: waits.append(s))
    return waits


def fake_with(**options: object) -> Iterator[FakeAzure]:
    with FakeAzure(arm_options=dict(options)) as fake:
        fake.arm.seed_web_service(SUB, RG, "svc", predictive_definition())
        yield fake


def patch(fake: FakeAzure, poll_seconds: float) -> dict[str, object] | None:
    services = web_services(fake, poll_seconds)
    doc = predictive_definition("https://x.example/new.ilearner")
    body = {
        "tags": {"a": "b"},
        "properties": {"packageType": "Graph", **{"assets": doc["properties"]["assets"]}},
    }
    return services.patch(services.resource_id("svc"), body)


def polls(fake: FakeAzure) -> int:
    return sum("/operationsStatus/" in r.path for r in fake.server.requests())


def test_polls_wait_as_long_as_the_services_retry_after_says(slept: list[float]) -> None:
    for fake in fake_with(lro_polls=3, retry_after=7):
        patch(fake, poll_seconds=5.0)
        assert slept == [7.0, 7.0, 7.0]  # the first poll goes at once, as azure-core does
        assert polls(fake) == 4


@pytest.mark.parametrize("header", [None, 0], ids=["no-retry-after", "retry-after-0"])
def test_without_retry_after_polls_back_off_from_a_short_first_wait_to_poll_seconds(
    slept: list[float], header: int | None
) -> None:
    for fake in fake_with(lro_polls=5, retry_after=header):
        patch(fake, poll_seconds=3.0)
        assert slept == [0.5, 1.0, 2.0, 3.0, 3.0]  # pollSeconds is the cap
        assert polls(fake) == 6


def test_the_operations_final_get_is_returned_as_the_read_back(slept: list[float]) -> None:
    for fake in fake_with(lro_polls=1):
        final = patch(fake, poll_seconds=1.0)
        assert final is not None
        assert final["tags"] == {"a": "b"}
        props = final["properties"]
        assert isinstance(props, dict) and props["provisioningState"] == "Succeeded"
        assert final == fake.arm.view(SUB, RG, "svc")
        methods = [r.method for r in fake.server.requests() if "/webServices/" in r.path]
        assert methods == ["PATCH", "GET"]  # the write, then the operation's final GET


def test_a_writes_final_answer_serves_one_read_back_and_only_while_fresh(
    slept: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    for fake in fake_with(lro_polls=1):
        services = web_services(fake, 1.0)
        rid = services.resource_id("svc")
        assert services.just_written(rid) is None  # nothing written yet
        services.patch(rid, {"tags": {"c": "d"}})
        assert services.just_written(rid) == fake.arm.view(SUB, RG, "svc")
        assert services.just_written(rid) is None  # once: a later observe reads again
        monkeypatch.setattr(arm, "FRESH_SECONDS", 0.0)
        services.patch(rid, {"tags": {"e": "f"}})
        assert services.just_written(rid) is None  # too old to stand for a read-back
