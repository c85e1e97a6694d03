"""Strings are taken from their nodes without PyYAML's constructor: exactly what it makes."""

from __future__ import annotations

import pytest
import yaml

from reconciler import yamlsrc

DOCUMENTS = [
    "a: plain text\nb: 'single'\nc: \"double \\u00e9\"\nd: !!str 123\ne: !!str yes\n",
    "block: |\n  two\n  lines\nfolded: >\n  one\n  line\n",
    "mixed: [x, 'y', 1, 1.5, no, ~, 2026-01-02, '0777', 0777]\n",
    "empty: ''\nspaces: '  padded  '\nkey with spaces: v\n'quoted key': w\n",
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_strings_load_as_pyyaml_makes_them(text: str) -> None:
    assert yamlsrc.load(text).data == yaml.safe_load(text)


def test_a_string_that_yaml_11_reads_otherwise_is_still_noted() -> None:
    located = yamlsrc.load("a: 'no'\nb: no\nc: !!str no\n")
    assert located.data == {"a": "no", "b": False, "c": "no"}
    assert located.converted == {"/b": "no"}
