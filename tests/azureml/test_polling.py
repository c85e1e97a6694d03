"""Azure ML operations and jobs are polled as the service says: each answer's
``Retry-After`` when it has one, else a short first wait doubling up to
``pollSeconds`` (waits recorded, not slept; polls counted from the fake's log)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import model, redact
from reconciler.providers.azurecommon import http, throttle
from reconciler.providers.azureml import arm, config, provider
from tests.fakes.server import FakeAzure

SUB, RG, WS = "00000000-0000-0000-0000-0000000000cc", "rg-poll", "ws-poll"
POLL_SECONDS = 3.0  # the cap of the backoff in these tests


@pytest.fixture
def fake() -> Iterator[FakeAzure]:
    with FakeAzure(azureml_options={"lro_polls": 4, "retry_after_s": 7}) as f:
        f.azureml.add_workspace(SUB, RG, WS)
        yield f


def workspace(fake: FakeAzure, waits: list[float]) -> arm.Workspace:
    section = {
        "subscriptionId": SUB,
        "resourceGroup": RG,
        "workspace": WS,
        "endpoints": {"resourceManager": fake.arm_base_url},
        "caBundle": fake.ca_bundle_path,
        "storage": {"connectionString": model.Secret("env:S", "UseDevelopmentStorage=true")},
        "pollSeconds": POLL_SECONDS,
    }
    cfg = config.from_section(section, manifest_dir=Path("."), env={})
    client = http.Client(verify=cfg.verify, retries=0, scrub=redact.Redactor(), log=lambda _l: None)
    return arm.Workspace(
        cfg, provider.StaticToken("t"), client, pacer=throttle.Pacer(), sleep=waits.append
    )


def polls(fake: FakeAzure, kind: str) -> int:
    return sum(f"/{kind}/" in r.path for r in fake.server.requests())


def test_a_put_without_retry_after_backs_off_from_a_short_wait_to_poll_seconds(
    fake: FakeAzure,
) -> None:
    waits: list[float] = []
    ws = workspace(fake, waits)
    body = {"location": "eastus", "properties": {"authMode": "Key"}}
    final = ws.put_and_wait("/onlineEndpoints/bikes", body, "PUT endpoint bikes", 60)
    assert final["properties"]["provisioningState"] == "Succeeded"
    assert waits == [0.5, 1.0, 2.0, 3.0]  # 4 running answers; the first poll goes at once
    assert polls(fake, "mfeOperationsStatus") == 5


def test_a_delete_waits_as_long_as_each_answers_retry_after_says(fake: FakeAzure) -> None:
    waits: list[float] = []
    ws = workspace(fake, waits)
    body = {"location": "eastus", "properties": {"authMode": "Key"}}
    ws.put_and_wait("/onlineEndpoints/bikes", body, "PUT endpoint bikes", 60)
    waits.clear()
    ws.delete_and_wait("/onlineEndpoints/bikes", "DELETE endpoint bikes", 600)
    assert waits and set(waits) == {7.0}  # the fake's Retry-After on every 202
    assert len(waits) == polls(fake, "mfeOperationResults")
