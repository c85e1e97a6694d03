"""A web service is only ever pointed at this backend's own model blobs: exactly
``model_uri(fp)`` of a 64-hex fingerprint whose blob exists. Anything else (another
host, scheme, container, a ``..`` path, a query, a malformed or unknown fingerprint) is
refused with one error naming the URI (SAS redacted) and the endpoint, before any write;
for Resource Manager and classic endpoints, on update and on create."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reconciler import engine, errors, model, settings
from reconciler.providers.azure import bes, provider
from tests.azure.conftest import CONTAINER, World
from tests.azure.test_classic import CLASSIC, seed_census

pytestmark = pytest.mark.slow

FP = "ab" * 32  # a model that exists
MISSING = "cd" * 32  # a well-formed fingerprint with no model
SIG = "S3CRETSIGNATURE"
ARM_ONE = """\
  - name: bike-solo
    webService: bike-solo
    inputs: {data: data/solo.csv}
"""

Uri = Callable[[provider.AzureProvider], str]
HOSTILE: dict[str, Uri] = {
    "other host": lambda p: "https://elsewhere.example/model.ilearner",
    "dot-dot out of the store": lambda p: p.state.url(f"models/{FP}/../../outside.txt"),
    "dot-dot back in": lambda p: p.state.url(f"models/x/../{FP}/model.ilearner"),
    "a query": lambda p: p.model_uri(FP) + f"?sv=2020-10-02&sig={SIG}",
    "other container": lambda p: p.state.url(bes.model_path(FP), container="elsewhere"),
    "other scheme": lambda p: "https" + p.model_uri(FP).removeprefix("http"),
    "upper-case fingerprint": lambda p: p.model_uri(FP.upper()),
    "short fingerprint": lambda p: p.model_uri(FP[:63]),
    "other file of the model": lambda p: p.state.url(f"models/{FP}/metadata.json"),
    "a line break": lambda p: p.model_uri(FP) + "\nError: all good",
}


def session(world: World) -> tuple[provider.AzureProvider, model.Endpoint]:
    sess = engine.open_session(
        settings.Settings(manifest=world.root / "retrain.yaml"), env=world.env
    )
    assert isinstance(sess.provider, provider.AzureProvider)
    return sess.provider, sess.endpoints[0]


def tags(fp: str | None) -> dict[str, str]:
    out = {model.TAG_MANAGED_BY: model.MANAGED_BY, model.TAG_VERSION: "1"}
    return out | ({model.TAG_FINGERPRINT: fp} if fp else {})


@pytest.fixture
def arm_world(world: World) -> World:
    world.blob("solo.csv", [1, 2, 4])
    world.blob(f"models/{FP}/model.ilearner", [1], container=CONTAINER)
    world.seed_arm("bike-solo")
    world.manifest(ARM_ONE)
    return world


@pytest.mark.parametrize("verb", ["update", "create"])
@pytest.mark.parametrize("hostile", list(HOSTILE), ids=list(HOSTILE))
def test_resource_manager_services_refuse_any_model_uri_but_the_stores_own(
    arm_world: World, hostile: str, verb: str
) -> None:
    prov, ep = session(arm_world)
    uri = HOSTILE[hostile](prov)
    before = arm_world.arm_uri("bike-solo")
    arm_world.fake.server.reset_log()
    with pytest.raises(errors.ProviderError) as info:
        getattr(prov, verb)(ep, uri, tags(FP))
    message = str(info.value)
    assert message.startswith(f"refusing model URI {prov.scrub(uri)[:40]}")
    assert len(message.splitlines()) == 1
    assert "for endpoint bike-solo" in message
    assert SIG not in message
    assert arm_world.writes() == []
    assert arm_world.arm_uri("bike-solo") == before


def test_a_well_formed_fingerprint_without_a_model_blob_is_refused(arm_world: World) -> None:
    prov, ep = session(arm_world)
    with pytest.raises(errors.ProviderError, match="does not exist; not pointing at it"):
        prov.update(ep, prov.model_uri(MISSING), tags(MISSING))
    assert arm_world.writes() == []


def test_the_stores_own_model_uri_is_served(arm_world: World) -> None:
    prov, ep = session(arm_world)
    prov.update(ep, prov.model_uri(FP), tags(FP))
    assert arm_world.arm_uri("bike-solo") == prov.model_uri(FP)
    assert prov.model_uri(FP).endswith(f"/{CONTAINER}/models/{FP}/model.ilearner")


@pytest.mark.parametrize("verb", ["update", "create"])
@pytest.mark.parametrize("hostile", list(HOSTILE), ids=list(HOSTILE))
def test_classic_endpoints_refuse_any_model_uri_but_the_stores_own(
    world: World, hostile: str, verb: str
) -> None:
    seed_census(world)
    world.blob(f"models/{FP}/model.ilearner", [1], container=CONTAINER)
    world.manifest(CLASSIC)
    prov, ep = session(world)
    uri = HOSTILE[hostile](prov)
    world.fake.server.reset_log()
    with pytest.raises(errors.ProviderError, match="refusing model URI") as info:
        getattr(prov, verb)(ep, uri, tags(None))
    assert SIG not in str(info.value)
    assert world.writes() == []
