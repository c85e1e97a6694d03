"""Fast start: ``retrain --help`` imports none of the heavy libraries (deepdiff and the
numpy it pulls in, jsonschema, rich, the Azure SDKs), and ``validate`` imports no Azure
SDK whatever the backend. Each check runs in a fresh interpreter, so nothing this test
process imported hides an import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli import group

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("deepdiff", "numpy", "jsonschema", "rich", "azure", "requests", "yaml")
SDKS = ("azure", "requests", "msal")
SHOW = "import json, sys; print(json.dumps(sorted(sys.modules)))"
ENV = {  # what the Azure examples reference; validate never connects with them
    "RETRAIN_STORAGE": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=a2V5;"
    "EndpointSuffix=core.windows.net",
    "RETRAIN_BES_KEY": "not-a-real-key",
    "RETRAIN_CLASSIC_TOKEN": "not-a-real-token",
}


def imported(code: str) -> tuple[set[str], str]:
    """The top-level packages imported by running ``code`` and then ``SHOW``, and what
    ``code`` printed before that."""
    modules, printed = imported_modules(code)
    return {name.split(".")[0] for name in modules}, printed


def imported_modules(code: str) -> tuple[set[str], str]:
    """Every module (full names) imported by running ``code``, and what it printed."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\n{SHOW}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,  # seconds: a cold interpreter on a loaded machine takes ~1
        check=True,
    )
    *printed, modules = done.stdout.splitlines()
    return set(json.loads(modules)), "\n".join(printed)


def test_importing_the_cli_imports_no_heavy_library() -> None:
    found, _ = imported("import reconciler.cli")
    assert not found & set(HEAVY)
    assert "click" in found  # the check sees imports at all


def test_help_imports_no_heavy_library() -> None:
    found, printed = imported("from reconciler import cli; cli.main(['--help'], {})")
    assert "retrain validate" in printed
    assert not found & set(HEAVY)


def test_help_imports_no_command_module() -> None:
    """The group lists the commands from its table (``cli.group``): ``--help`` imports
    no module that defines a command, nor what only those import (issue 11, point 4)."""
    found, printed = imported_modules("from reconciler import cli; cli.main(['--help'], {})")
    assert "force-unlock" in printed
    assert "reconciler.cli.group" in found  # the check sees our modules at all
    defining = {entry.module for entry in group.COMMANDS.values()}
    assert not found & (defining | {"reconciler.cli.jsonout", "reconciler.trend"})
    # The command flags (cli.options) import pathlib, and it urllib.parse and ipaddress:
    # --help needs only the environment and the output flags (cli.env).
    assert not found & {"reconciler.cli.options", "pathlib", "urllib.parse"}


def test_a_subcommands_help_imports_no_heavy_library() -> None:
    found, printed = imported("from reconciler import cli; cli.main(['plan', '--help'], {})")
    assert "--detailed-exitcode" in printed
    assert not found & {"deepdiff", "numpy", "rich", "azure", "requests"}


@pytest.mark.parametrize(
    "example",
    ["retrain.yaml.example", "retrain.azure.yaml.example", "retrain.azureml.yaml.example"],
)
def test_validate_imports_no_azure_sdk(example: str) -> None:
    code = (
        "import os; from reconciler import cli\n"
        f"code = cli.main(['validate', '-f', {example!r}], {ENV!r})\n"
        "print('exit', code)"
    )
    found, printed = imported(code)
    assert printed.splitlines()[-1] == "exit 0", printed
    assert not found & set(SDKS)
    # It did validate (exit 0), by the checks compiled from the schema: a valid manifest
    # needs no jsonschema (tests/unit/test_compiled_schema.py).
    assert "jsonschema" not in found


def test_a_command_loads_the_deferred_core_before_it_runs() -> None:
    code = (
        "import sys; from reconciler import cli\n"
        "cli.main(['validate', '-f', 'retrain.yaml.example'], {})\n"
        "from reconciler.cli import lazy\n"
        "print(sorted(n for n in lazy.DEFERRED if type(sys.modules[n]).__name__ != 'module'))"
    )
    _found, printed = imported(code)
    assert printed.splitlines()[-1] == "[]"
