"""The published manifest schema is the core part composed with the built-in backends'
fragments, and stays so: ``make schema`` rewrites it, this test says when to."""

from __future__ import annotations

from reconciler import schema
from reconciler.providers import schema as published_schema


def test_the_published_schema_is_the_composition_of_the_core_and_built_in_fragments() -> None:
    text = published_schema.PUBLISHED.read_text(encoding="utf-8")
    assert text == schema.published(published_schema.built_in()), "run `make schema`"


def test_the_composed_schema_lists_the_registered_kinds_and_their_fields() -> None:
    doc = published_schema.built_in()
    backend, trainer = doc["$defs"]["backend"], doc["$defs"]["trainer"]
    assert backend["properties"]["kind"]["enum"] == ["local", "azure", "azureml"]
    assert {"local", "azure", "azureml"} <= set(backend["properties"])
    assert trainer["oneOf"] == [
        {"required": ["entrypoint"]},
        {"required": ["bes"]},
        {"required": ["command"]},
    ]
    fields = set(doc["$defs"]["endpointFields"]["properties"])
    assert {"resourceGroup", "classic", "azureml"} <= fields


def test_backends_sharing_a_trainer_field_share_one_alternative() -> None:
    twin = {"description": "a twin", "trainer": {"required": ["entrypoint"]}}
    doc = schema.compose([("a", twin), ("b", twin)])
    assert doc["$defs"]["trainer"]["oneOf"] == [{"required": ["entrypoint"]}]
    assert doc["$defs"]["backend"]["properties"]["kind"]["description"] == (
        "Which provider runs the loop: a twin, or a twin."
    )


def test_a_set_of_backends_is_compiled_once() -> None:
    key = (("a", '{"description": "a"}'),)
    assert schema.composed(key) is schema.composed(key)
