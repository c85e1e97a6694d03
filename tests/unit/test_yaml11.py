"""Which unquoted YAML values count as silently converted (``yamlsrc.surprising``), and the
"did you mean" of unknown keys: the tables behind the located errors of
``tests/e2e/test_early_validation.py``."""

from __future__ import annotations

import pytest

from reconciler import problems, yamlsrc


@pytest.mark.parametrize(
    ("text", "converted"),
    [
        ("2026.10", True),  # 2026.1: a digit lost
        ("1.50", True),
        ("no", True),
        ("Off", True),
        ("y", False),  # PyYAML, unlike the YAML 1.1 spec, keeps y and n strings
        ("0777", True),  # octal 511
        ("00", True),
        ("1:30", True),  # base 60: 90
        ("1:30:00.5", True),
        ("2026-10-01", True),  # a date
        ("true", False),
        ("False", False),
        ("0", False),
        ("12", False),
        ("1.5", False),
        ("-0.25", False),
        (".inf", False),
        ("0x1F", False),  # hexadecimal is explicit
        ("seattle", False),
        ("~", False),
    ],
)
def test_which_unquoted_values_yaml_converts_surprisingly(text: str, converted: bool) -> None:
    located = yamlsrc.load(f"key: {text}\nquoted: '{text}'\n")
    assert ("/key" in located.converted) is converted
    assert "/quoted" not in located.converted  # quoted is what was meant


def test_did_you_mean_suggests_only_close_names() -> None:
    known = {"entrypoint", "parameters", "webService"}
    assert problems.did_you_mean("entrypont", known) == " (did you mean 'entrypoint'?)"
    assert problems.did_you_mean("webservice", known) == " (did you mean 'webService'?)"
    assert problems.did_you_mean("gatekeeper", known) == ""
