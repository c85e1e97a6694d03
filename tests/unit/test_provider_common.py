"""The steps every backend shares (``providers/common.py``), tested once, apart from any backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler import errors, model
from reconciler.providers import common
from reconciler.providers.local import store

ROOT = Path(__file__).resolve().parents[2]
DEFINITION = ROOT / "examples" / "bike_rental" / "webservice.json"
ASSET = "Bike Demand [trained model]"
FP = "ab" * 32  # a well-formed fingerprint: 64 lower-case hex digits


def endpoint(*, definition: str | None = str(DEFINITION), asset: str = ASSET) -> model.Endpoint:
    return model.Endpoint(
        name="seattle",
        web_service="bike-seattle",
        asset=asset,
        version="1",
        trainer=model.Trainer("bike"),
        inputs=model.frozen_map(),
        parameters=model.frozen_map(),
        gate=None,
        definition=definition,
        source=model.Source("retrain.yaml", "/endpoints/0", 1),
    )


def definition() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DEFINITION.read_text())
    return loaded


# -- model metadata ----------------------------------------------------------------


def test_model_metadata_becomes_a_record_at_the_backends_uri() -> None:
    data = {"metrics": {"r2": "0.8"}, "trained_at": "2026-12-01T00:00:00Z", "lineage": {"a": 1}}
    record = common.model_record(FP, data, uri="store://x", where="meta.json")
    assert (record.fingerprint, record.uri, record.trained_at) == (
        FP,
        "store://x",
        data["trained_at"],
    )
    assert (dict(record.metrics), dict(record.lineage)) == ({"r2": 0.8}, {"a": 1})


@pytest.mark.parametrize(
    "data",
    [{}, {"metrics": {"r2": 0.8}}, {"metrics": [], "trained_at": "t"}, [], "text", None],
)
def test_malformed_model_metadata_is_a_located_error(data: Any) -> None:
    with pytest.raises(errors.ProviderError, match="model metadata is malformed") as caught:
        common.model_record(FP, data, uri="store://x", where="models/meta.json")
    assert caught.value.where == "models/meta.json"


def test_model_metadata_that_is_not_json_is_malformed_too() -> None:
    with pytest.raises(errors.ProviderError, match="model metadata is malformed"):
        common.model_record_from_text(FP, "{torn", uri="store://x", where="meta.json")


# -- canonical model URIs ------------------------------------------------------------


def test_the_canonical_uri_names_its_fingerprint() -> None:
    assert common.canonical_fingerprint(store.uri_for(FP), store.uri_for) == FP


@pytest.mark.parametrize(
    "uri",
    [
        f"local://models/{FP.upper()}/model.ilearner",
        f"local://models/{FP}\n/model.ilearner",
        f"local://models/{FP[:-1]}/model.ilearner",
        f"local://models/../{FP}/model.ilearner",
        f"local://models/{FP}/model.ilearner?x=1",
        f"local://other/{FP}/model.ilearner",
        f"https://host/models/{FP}/model.ilearner",
        "local://models//model.ilearner",
        "",
    ],
)
def test_anything_but_the_canonical_uri_names_no_fingerprint(uri: str) -> None:
    assert common.canonical_fingerprint(uri, store.uri_for) is None


# -- definitions ---------------------------------------------------------------------


def test_an_endpoint_without_a_definition_cannot_be_created() -> None:
    with pytest.raises(errors.ProviderError, match="no definition to create 'bike-seattle'"):
        common.definition_path(endpoint(definition=None))


def test_an_exported_body_serves_the_model_without_the_identity_keys(tmp_path: Path) -> None:
    doc = definition() | {"ID": "/subscriptions/x", "Name": "old", "type": "t"}
    path = tmp_path / "webservice.json"
    path.write_text(json.dumps(doc))
    body = common.exported_body(str(path), endpoint(), "store://new", {"t": "v"})
    assert not {"id", "name", "type"} & {k.lower() for k in body}
    assert common.service_state(body, endpoint(), uri_for=str, where="w").model_uri == "store://new"
    assert body["tags"]["t"] == "v"


def test_an_unreadable_exported_definition_is_located(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.json")
    with pytest.raises(errors.ProviderError, match="cannot read definition") as caught:
        common.exported_body(missing, endpoint(), "store://new", {})
    assert caught.value.where == missing


def test_an_update_of_a_vanished_service_is_not_found() -> None:
    with pytest.raises(errors.NotFound, match="web service 'bike-seattle' does not exist"):
        common.with_model(None, endpoint(), "store://new", {}, where="w")


def test_an_update_of_a_definition_without_the_asset_is_located() -> None:
    with pytest.raises(errors.ProviderError, match="no asset named 'gone'") as caught:
        common.with_model(definition(), endpoint(asset="gone"), "store://new", {}, where="w")
    assert caught.value.where == "w"


def test_a_definition_without_assets_has_no_essence_and_says_where() -> None:
    with pytest.raises(errors.ProviderError, match=r"no properties\.assets") as caught:
        common.service_state({"properties": {}}, endpoint(), uri_for=str, where="services/w.json")
    assert caught.value.where == "services/w.json"


def test_the_local_store_refuses_a_fingerprint_followed_by_a_newline() -> None:
    from reconciler.providers.local import store

    fp = "a" * 64
    assert store.fingerprint_of(store.uri_for(fp)) == fp
    assert store.fingerprint_of(f"local://models/{fp}\n/model.ilearner") is None
