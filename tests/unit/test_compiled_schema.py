"""The checks compiled from the manifest schema give exactly jsonschema's verdict, so a
valid manifest is found valid without importing jsonschema (its problems are always
jsonschema's words): on mutations of every manifest of the repository and on the
keywords' edge cases."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import manifest, providers, schema, templatecheck

ROOT = Path(__file__).resolve().parents[2]
COMPOSED = manifest._schema(list(providers.registry().values()))
RESOLVED = manifest.RESOLVED


def _documents() -> list[Any]:
    found = [
        *ROOT.glob("*.yaml*"),
        *(ROOT / "examples").rglob("*.yaml"),
        *(ROOT / "tests").rglob("*.yaml"),
        *(ROOT / "reconciler" / "providers").glob("*/starter/*.yaml"),
    ]
    docs = []
    for path in sorted(p for p in found if "node_modules" not in p.parts):
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            continue
        if isinstance(loaded, dict) and "endpoints" in loaded:
            docs.append(loaded)
    return docs + _variants(docs)


def _variants(docs: list[Any]) -> list[Any]:
    """The local manifests again with what no file of the repository spells: the Ray
    runner, a trainer's resources, timeout, dependencies and schedule, a forEach entry."""
    out = []
    for doc in docs:
        if doc.get("backend", {}).get("kind") != "local":
            continue
        more = copy.deepcopy(doc)
        more["backend"]["local"] = {
            "stateDir": ".retrain",
            "runner": {"kind": "ray", "address": "ray://head:10001", "pollSeconds": 0.5},
        }
        for trainer in more.get("trainers", {}).values():
            trainer.update(timeout=30, dependencies=["numpy"], resources={"cpus": 1})
            trainer["schedule"] = "0 3 * * *"
        first = dict(more["endpoints"][0])
        first.update(forEach=[{"i": "a"}, {"i": "b"}], name="ep-${each.i}")
        more["endpoints"] = [*more["endpoints"], first]
        out.append(more)
    return out


DOCUMENTS = _documents()
ODD = [
    *(None, True, False, 0, 1, -1, 0.0, 2.5, -0.5, "", "x", "retrain/v1", "local", "ray"),
    *("subprocess", "azure", [], ["a", "a"], ["a", "b"], [1, True], {}, {"kind": "ray"}),
]
KEYS = ["bogus", "resourceGroup", "classic", "azureml", "kind", "pollSeconds", "forEach"]
KEYS += ["timeout", "bes", "command", "entrypoint", "runner", "dependencies"]


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [at]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*at, key))
    elif isinstance(value, list):
        for i, child in enumerate(value[:3]):
            out += _paths(child, (*at, i))
    return out


@st.composite
def _mutants(draw: st.DrawFn) -> Any:
    """A repository manifest with a few places changed: a value replaced by an odd one,
    a key removed, or an unknown (or another backend's) key added."""
    doc = copy.deepcopy(draw(st.sampled_from(DOCUMENTS)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            continue
        parent: Any = doc
        for key in path[:-1]:
            parent = parent[key]
        how = draw(st.integers(0, 2))
        if how == 0:
            parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(ODD)))
        elif how == 1 and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(st.sampled_from(KEYS))] = copy.deepcopy(
                draw(st.sampled_from(ODD))
            )
    return doc


def test_the_repository_manifests_are_valid_by_both() -> None:
    assert len(DOCUMENTS) >= 8
    check = templatecheck.checker(COMPOSED)
    for doc in DOCUMENTS:
        assert check(doc) == COMPOSED.validator.is_valid(doc), json.dumps(doc)[:200]
    assert sum(map(check, DOCUMENTS)) >= 5  # the valid ones are found valid


@settings(max_examples=400, deadline=None)
@given(_mutants())
def test_a_changed_manifest_gets_jsonschemas_verdict(doc: Any) -> None:
    assert templatecheck.checker(COMPOSED)(doc) == COMPOSED.validator.is_valid(doc)


@settings(max_examples=200, deadline=None)
@given(_mutants())
def test_an_endpoint_gets_jsonschemas_verdict(doc: Any) -> None:
    """An endpoint as assembled (entry over defaults) against resolvedEndpoint."""
    entries = doc.get("endpoints") if isinstance(doc, dict) else None
    defaults = doc.get("defaults") if isinstance(doc, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        merged = {**(defaults if isinstance(defaults, dict) else {}), **entry}
        merged.pop("forEach", None)
        expected = COMPOSED.at(RESOLVED).is_valid(merged)
        assert templatecheck.checker(COMPOSED, RESOLVED)(merged) == expected, merged


EVALUATED = {"allOf": [{"$ref": "#/$defs/f"}], "properties": {"x": {}}}
EDGES: list[tuple[dict[str, Any], list[Any]]] = [
    ({"const": "a"}, ["a", "b", 1, None, ["a"]]),
    ({"enum": ["a", "b"]}, ["a", "c", True, 0]),
    ({"exclusiveMinimum": 0}, [0, 0.0, 1, -1, 1e-9, True, False, "1"]),
    ({"exclusiveMaximum": 1}, [1, 0.5, 2, True, "x"]),
    ({"uniqueItems": True}, [[1, True], [1, 1.0], ["a", "a"], [[1], [True]], [{}, {}], 3]),
    ({"oneOf": [{"type": "string"}, {"minLength": 2}]}, ["a", "ab", 3, None]),
    (
        {**EVALUATED, "unevaluatedProperties": False},
        [{"x": 1}, {"y": 1}, {"z": 1}, {"x": 1, "y": 2, "z": 3}, {"y": "s"}, [], "s"],
    ),
    ({"$ref": "#/$defs/f", "unevaluatedProperties": False}, [{"y": 1}, {"w": 1}, {}]),
    ({"$ref": "#/$defs/p", "unevaluatedProperties": False}, [{"k1": 1}, {"q": 1}]),
    ({"$ref": "#/$defs/o", "unevaluatedProperties": False}, [{"a": 1}, {"b": "x"}, {"c": 1}]),
    ({"$ref": "#/$defs/a", "unevaluatedProperties": False}, [{"a": 1}, {"zz": 1}]),
    ({"const": 1}, [1, 1.0, True]),  # not a string: left to jsonschema, still exact
]
DEFS = {
    "f": {"properties": {"y": {"type": "integer"}}},
    "p": {"patternProperties": {"^k": {}}},
    "o": {"oneOf": [{"properties": {"a": {}}}, {"properties": {"b": {"type": "string"}}}]},
    "a": {"properties": {"a": {}}, "additionalProperties": {"type": "integer"}},
}


@pytest.mark.parametrize(("node", "values"), EDGES)
def test_each_keyword_gets_jsonschemas_verdict(node: dict[str, Any], values: list[Any]) -> None:
    composed = schema.Schema({"$defs": DEFS, **node})
    check = templatecheck.checker(composed)
    for value in values:
        assert check(value) == composed.validator.is_valid(value), (node, value)


def test_a_valid_manifest_is_found_valid_without_jsonschema() -> None:
    probe = (
        "import sys; from reconciler import manifest, providers\n"
        "manifest.load(sys.argv[1], env={}, backends=list(providers.registry().values()))\n"
        "print('jsonschema' in sys.modules)"
    )
    example = ROOT / "retrain.yaml.example"
    out = subprocess.run(
        [sys.executable, "-c", probe, str(example)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert out.stdout.strip() == "False"
