"""Shared fixtures: a private copy of the example project, and the CLI run in-process."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler import cli

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the example project (manifest, trainer, data, definition), as a user has it."""
    shutil.copy(ROOT / "retrain.yaml.example", tmp_path / "retrain.yaml")
    shutil.copytree(
        ROOT / "examples" / "bike_rental",
        tmp_path / "examples" / "bike_rental",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return tmp_path


@pytest.fixture
def retrain(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Run]:
    """``retrain(*args)`` runs the CLI in ``project`` and returns exit code and output."""
    monkeypatch.chdir(project)

    def run(*args: str, env: Mapping[str, str] | None = None, interactive: bool = False) -> Run:
        capsys.readouterr()
        code = cli.main(list(args), {**os.environ, **(env or {})}, interactive=interactive)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
