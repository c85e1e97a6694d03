"""Reading and writing the owned fields of a web service definition."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from reconciler import model
from reconciler.providers import webservice

ROOT = Path(__file__).resolve().parents[2]
ASSET = "Bike Demand [trained model]"


@pytest.fixture
def definition() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (ROOT / "examples" / "bike_rental" / "webservice.json").read_text()
    )
    return loaded


def uri_for(fp: str) -> str:
    return f"store://{fp}"


def test_essence_keeps_only_owned_fields(definition: dict[str, Any]) -> None:
    definition["tags"] = {"team": "bikes", model.TAG_FINGERPRINT: "f1"}
    state = webservice.state_of_definition(
        definition, web_service="ws", asset_name=ASSET, uri_for=uri_for
    )
    assert state.model_uri == "local://models/unset"
    assert dict(state.tags) == {model.TAG_FINGERPRINT: "f1"}
    assert state.expected_uri == "store://f1"
    assert ASSET in state.assets


def test_with_model_changes_only_the_uri_and_owned_tags(definition: dict[str, Any]) -> None:
    original = copy.deepcopy(definition)
    definition["tags"] = {"team": "bikes"}
    updated = webservice.with_model(definition, ASSET, "store://f2", {model.TAG_FINGERPRINT: "f2"})
    assert definition["tags"] == {"team": "bikes"}  # the input is not mutated
    asset_id = webservice.find_asset(updated, ASSET)
    assert asset_id is not None
    assert updated["properties"]["assets"][asset_id]["locationInfo"]["uri"] == "store://f2"
    assert updated["tags"] == {"team": "bikes", model.TAG_FINGERPRINT: "f2"}
    updated["properties"]["assets"][asset_id]["locationInfo"]["uri"] = "local://models/unset"
    del updated["tags"]
    original.pop("tags", None)
    assert updated == original


def test_key_casing_is_preserved_as_received() -> None:
    definition = {
        "Tags": {},
        "Properties": {"Assets": {"a1": {"Name": "M", "LocationInfo": {"Uri": "old"}}}},
    }
    updated = webservice.with_model(definition, "M", "new", {"t": "v"})
    assert updated == {
        "Tags": {"t": "v"},
        "Properties": {"Assets": {"a1": {"Name": "M", "LocationInfo": {"Uri": "new"}}}},
    }


def test_revision_moves_only_with_owned_fields() -> None:
    assert webservice.revision("u", {"a": "1"}) == webservice.revision("u", {"a": "1"})
    assert webservice.revision("u", {"a": "1"}) != webservice.revision("v", {"a": "1"})
    assert webservice.revision("u", {"a": "1"}) != webservice.revision("u", {"a": "2"})


def test_a_document_without_assets_is_a_definition_error() -> None:
    with pytest.raises(webservice.DefinitionError):
        webservice.state_of_definition(
            {"properties": {}}, web_service="ws", asset_name="M", uri_for=uri_for
        )
