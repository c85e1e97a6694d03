"""libyaml's parser under PyYAML's composer, and the document built straight from
libyaml's events (``yamlsrc._direct``), read every document exactly as the pure-Python
loader does: the same values, lines and YAML 1.1 conversions, and the same errors (which
are always the pure-Python loader's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import yamlsrc

ROOT = Path(__file__).resolve().parents[2]
EDGES = [
    "a: [[[[1]]]]",
    "a: !!python/object x",
    "a: 1\na: 2",
    "a:\n\t- b",
    "x: 0777\ny: no\nz: 2026.10\nd: 2020-01-01\nq: 'no'\nt: 1:30",
    "- &a [*a]",
    "k: 'unterminated",
    "a: b: c",
    "? [1]\n: 2",
    "<<: {a: 1}",
    "a: 1\n---\nb: 2",
    "",
    "# only a comment",
    "a: " + "[" * 100 + "]" * 100,
    "a: *unknown",
    "a: |\n  two\n  lines\nb: >\n  folded\n  text\n",
    "a: 99999999999999999999999999",
    "a: 2001-13-45",
    "- {name: x, webService: 'y', version: 2026.10}\n- [1, 2.50, yes, ~, null]",
    "a: &x 1\nb: *x",
    "a: &x 1",
    "---\n",
    "a: !!str 1\nb: !custom {c: 1}\nc: ! 2",
    "'<<': 1\n\"a/b~c\": 2\n1: x\n~: y\n? z\n",
    "a: {}\nb: []\nc: [{}, [], '']\nd:\ne: ''",
    "a: " + "x" * (yamlsrc.MAX_STRING + 1),
    "a: [" + "[" * 70 + "]" * 70 + "]",
    "{a: 1, a: 2}",
    "- 1\n- -2\n- 0o17\n- 0x1F\n- 1_000\n- .inf\n- -.Inf\n- .nan\n- 1e3\n- 12:30:00",
    "a: 2026-12-01T10:00:00Z\nb: 2026-12-01 10:00:00.5 +01:00",
]


def _files() -> list[Path]:
    found = [
        *ROOT.glob("*.yaml*"),
        *(ROOT / "examples").rglob("*.yaml"),
        *(ROOT / "tests").rglob("*.yaml"),
    ]
    return sorted(p for p in found if "node_modules" not in p.parts)


def _read(text: str, *, fast: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(yamlsrc, "_CParser", None)
        try:
            located = yamlsrc.load(text)
        except yamlsrc.YamlError as e:
            return ("error", str(e), e.line)
    return (located.data, located.lines, located.converted)


def test_libyaml_is_used_where_pyyaml_has_it() -> None:
    assert yamlsrc._CParser is not None


@pytest.mark.parametrize("text", EDGES)
def test_an_edge_case_reads_the_same_both_ways(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _read(text, fast=True, monkeypatch=monkeypatch) == _read(
        text, fast=False, monkeypatch=monkeypatch
    )


def test_every_yaml_file_of_the_repository_reads_the_same_both_ways(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = _files()
    assert len(files) > 20  # the examples, the plan cases, the golden manifests
    for path in files:
        text = path.read_text(encoding="utf-8")
        fast, slow = (_read(text, fast=f, monkeypatch=monkeypatch) for f in (True, False))
        assert fast == slow, path


def test_unquoted_yaml11_values_are_noted_by_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    data, _lines, converted = _read(
        "x: 0777\ny: no\nz: '2026.10'", fast=True, monkeypatch=monkeypatch
    )
    assert converted == {"/x": "0777", "/y": "no"}
    assert data == {"x": 511, "y": False, "z": "2026.10"}


_SCALARS = st.sampled_from(
    [
        *("x", "'x'", '"x"', "yes", "no", "on", "Off", "~", "null", "true", "0777", "0o7"),
        *("2026.10", "2026.1", "1:30", "12", "-3", "1e3", "'1'", "2020-01-01", "''", "<<"),
        *("a/b", "t~x", '"q\\nr"', "!!str 5", "&a 1", "*a", "99999999999999999999999"),
    ]
)


def _document(draw: st.DrawFn, depth: int = 0) -> str:
    """A small YAML text: flow mappings and sequences of the scalars above (some
    documents invalid, with duplicate keys, aliases, tags and merge keys among them)."""
    kind = draw(st.integers(0, 2 if depth < 4 else 0))
    if kind == 0:
        return draw(_SCALARS)
    if kind == 1:
        items = draw(st.integers(0, 4))
        return "[" + ", ".join(_document(draw, depth + 1) for _ in range(items)) + "]"
    keys = draw(st.lists(_SCALARS, max_size=4))
    return "{" + ", ".join(f"{k}: {_document(draw, depth + 1)}" for k in keys) + "}"


@st.composite
def _documents(draw: st.DrawFn) -> str:
    keys = draw(st.lists(_SCALARS, min_size=1, max_size=4))
    return "\n".join(f"{key}: {_document(draw)}" for key in keys)


@settings(max_examples=300, deadline=None)
@given(_documents())
def test_a_generated_document_reads_the_same_both_ways(text: str) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert _read(text, fast=True, monkeypatch=monkeypatch) == _read(
            text, fast=False, monkeypatch=monkeypatch
        ), text


def test_the_repository_manifests_are_built_straight_from_events() -> None:
    """The direct build is what reads every manifest written plainly (no anchor, alias
    or explicit tag), so the comparisons above test it, not only the composer."""
    built = [p for p in _files() if yamlsrc._direct(p.read_text(encoding="utf-8")) is not None]
    assert len(built) > 20
    assert yamlsrc._direct("a: &x 1\nb: *x") is None  # left to the composer
    assert yamlsrc._direct("a: 1\na: 2") is None  # its error is the composer's
