"""libyaml's parser under PyYAML's composer reads every document exactly as the pure-Python
loader does: the same values, lines and YAML 1.1 conversions, and the same errors (which
are always the pure-Python loader's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

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
