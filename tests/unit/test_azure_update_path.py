"""A Resource Manager update through ``services.ResourceManager`` alone (a stub in place of
``arm.WebServices``): the PATCH is built from the observed definition, with no second GET,
and is the same PATCH the whole definition would give."""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest

from reconciler import model
from reconciler.providers import common
from reconciler.providers.azure import arm, backend, services
from tests.azure.conftest import ASSET, predictive_definition

URI = "https://acct.blob.core.windows.net/retrain/models/" + "ab" * 32 + "/model.ilearner"
TAGS = {model.TAG_MANAGED_BY: model.MANAGED_BY, model.TAG_FINGERPRINT: "ab" * 32}


class CountingWebServices:
    """Stands in for ``arm.WebServices``: one definition, every call counted."""

    def __init__(self) -> None:
        self.definition = predictive_definition()
        self.calls: list[str] = []
        self.patched: list[dict[str, Any]] = []

    def resource_id(self, name: str, resource_group: str | None = None) -> str:
        return f"/rg/{resource_group}/{name}"

    def get(self, rid: str) -> dict[str, Any] | None:
        self.calls.append("GET")
        return copy.deepcopy(self.definition)

    def just_written(self, rid: str) -> dict[str, Any] | None:
        return None

    def patch(self, rid: str, body: dict[str, Any]) -> dict[str, Any] | None:
        self.calls.append("PATCH")
        self.patched.append(body)
        return None


def endpoint() -> model.Endpoint:
    return model.Endpoint(
        name="bikes",
        web_service="bikes",
        asset=ASSET,
        version="1",
        trainer=model.Trainer("mean"),
        inputs=model.frozen_map(),
        parameters=model.frozen_map(),
        gate=None,
        definition=None,
        source=model.Source("retrain.yaml", "/endpoints/0", 1),
        address=backend.ResourceManager(None),
    )


def test_an_observed_service_is_updated_with_one_patch_and_no_second_read() -> None:
    stub = CountingWebServices()
    kind = services.ResourceManager(cast(arm.WebServices, stub), lambda fp: f"https://x/{fp}")
    ep = endpoint()
    assert kind.observe(ep) is not None
    kind.update(ep, "ab" * 32, URI, TAGS)
    assert stub.calls == ["GET", "PATCH"]
    whole = common.with_model(stub.definition, ep, URI, TAGS, where="bikes")
    assert stub.patched == [services._patch(whole)]  # as if built from the whole definition


def test_a_service_not_observed_in_this_run_is_read_before_its_patch() -> None:
    stub = CountingWebServices()
    kind = services.ResourceManager(cast(arm.WebServices, stub), lambda fp: f"https://x/{fp}")
    kind.update(endpoint(), "ab" * 32, URI, TAGS)
    assert stub.calls == ["GET", "PATCH"]


def test_a_definition_observed_long_ago_is_read_again_before_its_patch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stub = CountingWebServices()
    kind = services.ResourceManager(cast(arm.WebServices, stub), lambda fp: f"https://x/{fp}")
    ep = endpoint()
    kind.observe(ep)
    monkeypatch.setattr(services, "SEEN_SECONDS", 0.0)  # as if training took long
    kind.update(ep, "ab" * 32, URI, TAGS)
    assert stub.calls == ["GET", "GET", "PATCH"]


def test_the_kept_definition_is_only_what_the_patch_sends() -> None:
    whole = predictive_definition()
    kept = services._trimmed(whole)
    assert list(kept) == ["tags", "properties"]
    assert list(kept["properties"]) == ["packageType", "assets"]  # not the schemas, package...
    assert kept["properties"]["assets"] == whole["properties"]["assets"]
