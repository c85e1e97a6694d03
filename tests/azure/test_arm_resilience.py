"""Resource Manager under load and faults, against the fake over real HTTPS:
a fleet larger than the read burst is observed without a single 429, and writes
survive connection resets and 5xx (each retry logged, requests counted)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from reconciler import errors, model, redact
from reconciler.providers.azure import arm, config
from reconciler.providers.azurecommon import throttle
from tests.azure.conftest import RG, SUB, predictive_definition
from tests.fakes.arm import BucketSpec, ThrottleConfig
from tests.fakes.server import FakeAzure

BURST, RATE = 30, 60  # a small read bucket, so a test fleet outgrows it in a second or two
FLEET = 150  # services: five times the burst
WORKERS = 16  # the bench's parallelism


def web_services(fake: FakeAzure, log: list[str], pacer: throttle.Pacer) -> arm.WebServices:
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
        poll_seconds=0.0,
        job_timeout=60.0,
        retries=4,
    )
    return arm.WebServices(
        cfg, arm.StaticToken("t"), scrub=redact.Redactor(), log=log.append, pacer=pacer
    )


@pytest.fixture
def small_bucket() -> Iterator[FakeAzure]:
    limits = ThrottleConfig(reads=BucketSpec(BURST, RATE))
    with FakeAzure(arm_options={"throttle": limits, "lro_polls": 1}) as fake:
        for i in range(FLEET):
            fake.arm.seed_web_service(SUB, RG, f"svc-{i}", predictive_definition())
        yield fake


def test_a_fleet_larger_than_the_burst_is_read_without_a_429(small_bucket: FakeAzure) -> None:
    pacer = throttle.Pacer(limits={"reads": (BURST, RATE), "writes": (200, 10)}, in_flight=WORKERS)
    services = web_services(small_bucket, [], pacer)
    ids = [services.resource_id(f"svc-{i}") for i in range(FLEET)]
    with ThreadPoolExecutor(WORKERS) as pool:
        found = list(pool.map(services.get, ids))
    assert all(doc is not None for doc in found)
    statuses = [r.status for r in small_bucket.server.requests() if r.method == "GET"]
    assert statuses.count(429) == 0
    assert len(statuses) == FLEET  # one read per service, no retries


@pytest.fixture
def fake() -> Iterator[FakeAzure]:
    with FakeAzure(arm_options={"lro_polls": 1}) as f:
        f.arm.seed_web_service(SUB, RG, "svc", predictive_definition())
        yield f


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arm, "BACKOFF_FACTOR", 0.0, raising=False)


def patch_body(uri: str) -> dict[str, object]:
    doc = predictive_definition(uri)
    return {
        "tags": {"a": "b"},
        "properties": {"packageType": "Graph", **{"assets": doc["properties"]["assets"]}},
    }


@pytest.mark.usefixtures("no_backoff")
@pytest.mark.parametrize("after", [False, True], ids=["reset-before-handling", "answer-lost"])
def test_a_patch_survives_resets_and_5xx_with_each_retry_logged(
    fake: FakeAzure, after: bool
) -> None:
    log: list[str] = []
    services = web_services(fake, log, throttle.Pacer())
    fake.server.reset_connections(2, method="PATCH", after=after)
    fake.server.fail_with_status(502, times=1, method="PATCH")
    rid = services.resource_id("svc")
    services.patch(rid, patch_body("https://x.example/new.ilearner"))
    view = fake.arm.view(SUB, RG, "svc")
    assert view is not None and view["tags"] == {"a": "b"}
    assert len(fake.server.requests(method="PATCH")) == 4  # 2 resets, a 502, then success
    retries = [line for line in log if "will retry" in line]
    assert len(retries) == 3
    assert retries[0].startswith("Resource Manager PATCH svc: attempt #1/5 failed (")
    assert retries[2] == "Resource Manager PATCH svc: attempt #3/5 failed (HTTP 502); will retry"


@pytest.mark.usefixtures("no_backoff")
def test_a_put_survives_a_reset(fake: FakeAzure) -> None:
    log: list[str] = []
    services = web_services(fake, log, throttle.Pacer())
    fake.server.reset_connections(1, method="PUT")
    body = predictive_definition()
    body["properties"].pop("storageAccount")["name"]
    body["properties"]["storageAccount"] = {"name": "devstoreaccount1", "key": "k"}
    services.put(services.resource_id("svc-new"), body)
    assert fake.arm.view(SUB, RG, "svc-new") is not None
    assert len(fake.server.requests(method="PUT")) == 2
    assert any("attempt #1/5 failed" in line for line in log)


@pytest.mark.usefixtures("no_backoff")
def test_writes_give_up_after_the_configured_retries_with_one_clear_error(fake: FakeAzure) -> None:
    services = web_services(fake, [], throttle.Pacer())
    fake.server.reset_connections(None, method="PATCH")
    with pytest.raises(errors.ProviderError, match="PATCH web service svc"):
        services.patch(services.resource_id("svc"), patch_body("https://x.example/m.ilearner"))
    assert len(fake.server.requests(method="PATCH")) == 5  # 1 + 4 retries
