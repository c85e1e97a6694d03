"""A forEach entry is schema-checked once, not once per endpoint, with exactly the same
problems, at the same lines, as when every endpoint is validated whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler import errors, manifest, problems, providers, schema, templatecheck

TRAINER = "def train(*, inputs, parameters, model_path, evaluation_path):\n    pass\n"
HEAD = """\
apiVersion: retrain/v1
backend: {kind: local}
trainers:
  t: {entrypoint: train.py:train}
defaults: {trainer: t, asset: "M [trained model]", version: "1", gate: {metric: r2}}
endpoints:
"""
ENTRY = """\
  - forEach: [ITEMS]
    name: NAME
    webService: SERVICE
    inputs: {data: "INPUT"}
    gate: {metric: "METRIC"}
"""


def manifest_text(items: list[dict[str, str]], **fields: str) -> str:
    entry = ENTRY.replace("ITEMS", ", ".join(_flow(item) for item in items))
    defaults = {"NAME": "ep-${each.i}", "SERVICE": "ws-${each.i}", "INPUT": "a.csv"}
    for key, value in (defaults | {"METRIC": "r2"} | fields).items():
        entry = entry.replace(key, value)
    return HEAD + entry + "  - {name: solo, webService: ws-solo, inputs: {data: a.csv}}\n"


def _flow(item: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}: "{v}"' for k, v in item.items()) + "}"


def outcome(tmp_path: Path, text: str) -> Any:
    """The endpoints' names, or the problems, of loading ``text``."""
    (tmp_path / "train.py").write_text(TRAINER)
    (tmp_path / "a.csv").write_text("x\n1\n")
    path = tmp_path / "retrain.yaml"
    path.write_text(text)
    try:
        loaded = manifest.load(path, env={}, backends=list(providers.registry().values()))
    except errors.ManifestError as e:
        return e.problems
    return [ep.name for ep in loaded.endpoints]


def both_ways(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``outcome`` with the once-per-entry check, asserting it equals validating whole."""
    fast = outcome(tmp_path, text)
    with monkeypatch.context() as m:
        m.setattr(templatecheck, "_checks", lambda *_args: None)  # validate each one whole
        whole = outcome(tmp_path, text)
    assert fast == whole
    return fast


ITEMS = [{"i": "a"}, {"i": "b"}, {"i": "c"}, {"i": "d"}]


@pytest.mark.parametrize(
    ("items", "fields", "expected"),
    [
        (ITEMS, {}, None),
        ([{"i": "a"}, {"i": "b"}, {"i": "C"}, {"i": "d"}], {}, "/endpoints/0/forEach/2"),
        ([{"i": "A"}, {"i": "b"}, {"i": "c"}], {}, "/endpoints/0/forEach/0"),
        ([{"i": "a"}, {"i": "b" * 70}], {}, "/endpoints/0/forEach/1"),
        (ITEMS, {"NAME": "EP-${each.i}"}, "/endpoints/0/name"),
        ([{"i": "a", "w": "x"}, {"i": "b", "w": ""}], {"SERVICE": "${each.w}"}, "forEach/1"),
        ([{"i": "a", "m": "r2"}, {"i": "b", "m": ""}], {"METRIC": "${each.m}"}, "forEach/1"),
        ([{"i": "a", "f": "a"}, {"i": "b", "f": "nope"}], {"INPUT": "${each.f}.csv"}, "nope"),
        ([{"i": "a", "w": "x y"}, {"i": "b", "w": "z"}], {"SERVICE": "${each.w}"}, "forEach/0"),
    ],
)
def test_problems_are_the_same_as_validating_each_endpoint_whole(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    items: list[dict[str, str]],
    fields: dict[str, str],
    expected: str | None,
) -> None:
    found = both_ways(tmp_path, manifest_text(items, **fields), monkeypatch)
    if expected is None:
        assert found == ["ep-a", "ep-b", "ep-c", "ep-d", "solo"]
    else:
        assert any(expected in line for line in found), found


def counting(calls: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Count whole validations (``problems.validate_at``) in ``calls``."""
    whole = problems.validate_at

    def count(site: problems.Site, value: Any, ref: str) -> bool:
        calls.append(ref)
        return whole(site, value, ref)

    monkeypatch.setattr(problems, "validate_at", count)


def test_a_valid_entry_is_validated_whole_once_however_many_items(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    counting(calls, monkeypatch)
    items = [{"i": f"n{j}"} for j in range(200)]
    assert len(outcome(tmp_path, manifest_text(items))) == 201
    assert len(calls) == 2  # the forEach entry's first endpoint, and "solo"


def test_an_endpoint_failing_its_strings_is_validated_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    counting(calls, monkeypatch)
    items = [{"i": "a"}, {"i": "B"}, {"i": "c"}, {"i": "D"}, {"i": "e"}]
    found = outcome(tmp_path, manifest_text(items))
    where = {line.split(": ")[1] for line in found}
    assert where == {"/endpoints/0/forEach/1", "/endpoints/0/forEach/3"}
    assert all("does not match" in line for line in found)
    assert len(calls) == 1 + 2 + 1  # the first, the two failing, "solo"


def test_a_path_under_a_keyword_that_reads_values_is_validated_whole() -> None:
    composed = schema.composed(())
    odd = {"$ref": "#/$defs/name"}
    check = templatecheck.EntryCheck(composed, "#/$defs/resolvedEndpoint", {"name": "x-${each.i}"})
    assert check.paths is not None and check.paths[0][0] == ("name",)
    assert (
        templatecheck._subschemas(composed, {"anyOf": [odd]}, ("name",), {"name": "x"}, 0) is None
    )
    assert templatecheck._subschemas(composed, {"not": odd}, ("a",), {"a": "x"}, 0) is None


@pytest.mark.parametrize(
    "items",
    [
        '{i: "a"}, {i: "b"}, {i: "c"}',
        '{i: "a"}, {i: "b"}, {"bad key": "c"}',
        '{i: "a"}, {i: [1, 2]}, {i: "c"}',
        '{i: "a"}, {}, {i: "c"}',
        '{i: "a"}, "not a map", {i: "c"}',
        '{i: "a"}, {i: "b", j: {deep: 1}}',
        '{i: "A"}, {i: "b"}',
    ],
)
def test_the_document_check_of_for_each_items_is_the_same_as_validating_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, items: str
) -> None:
    text = HEAD + ENTRY.replace("[ITEMS]", f"[{items}]").replace("NAME", "ep-${each.i}")
    text = text.replace("SERVICE", "ws-${each.i}").replace("INPUT", "a.csv").replace("METRIC", "r2")
    text += "  - {name: solo, webService: ws-solo, inputs: {data: a.csv}, extra: 1}\n"
    fast = outcome(tmp_path, text)
    with monkeypatch.context() as m:
        m.setattr(templatecheck, "cut_document", lambda *_args: None)
        whole = outcome(tmp_path, text)
    assert fast == whole
    assert any("unknown key: 'extra'" in line for line in fast)


def test_a_valid_for_each_list_is_validated_as_its_first_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backends = providers.registry().values()
    composed = schema.composed(tuple((b.name, json.dumps(b.schema_fragment())) for b in backends))
    items: list[dict[str, str]] = [{"i": str(j)} for j in range(50)]
    entry = {"forEach": items, "name": "e-${each.i}"}
    document = {"endpoints": [entry, {"name": "solo"}]}
    cut = templatecheck.cut_document(composed, document)
    assert cut is not None
    cut_doc, lists = cut
    assert cut_doc["endpoints"][0]["forEach"] == [{"i": "0"}]
    assert cut_doc["endpoints"][1] == {"name": "solo"}
    assert lists == [("endpoints", 0, "forEach")]
    items.append({"bad key": "x"})
    assert templatecheck.cut_document(composed, document) is None
