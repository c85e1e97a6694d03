"""The core names no backend: a new backend is a folder under ``reconciler/providers/``
and one registry line (issue 8). Every module outside ``providers/`` — and the core
part of the manifest schema — is scanned for the built-in backends' words."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2] / "reconciler"
# The built-in backends' names and concepts: Studio's classic endpoints, BES training,
# Resource Manager groups, .ilearner models, the local backend's state directory.
BACKEND_WORDS = re.compile(
    r"azure|classic|\bbes\b|resource.?group|ilearner|studio|statedir|local backend"
    r"|[\"'](local|azure)[\"']",
    re.IGNORECASE,
)
ALLOWED: dict[str, str] = {}  # "path:line text" → why; none needed so far


def core_files() -> list[Path]:
    """Every core module, and the core schema part, but nothing under providers/."""
    found = [*ROOT.rglob("*.py"), ROOT / "manifest.schema.json"]
    return sorted(p for p in found if "providers" not in p.relative_to(ROOT).parts)


def hits(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    rel = path.relative_to(ROOT.parent)
    out = [f"{rel}:{n}: {line.strip()}" for n, line in enumerate(lines, 1)]
    return [h for h in out if BACKEND_WORDS.search(h.split(": ", 1)[1]) and h not in ALLOWED]


def test_the_scan_covers_the_core_and_finds_a_backend_word_where_there_is_one() -> None:
    files = core_files()
    assert ROOT / "manifest.py" in files and ROOT / "engine.py" in files
    assert all("providers" not in p.parts[-2:] for p in files)
    assert BACKEND_WORDS.search('if kind == "azure":')
    assert BACKEND_WORDS.search("spec.get('resourceGroup')")


@pytest.mark.parametrize("path", core_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_core_module_names_a_backend(path: Path) -> None:
    assert hits(path) == []
