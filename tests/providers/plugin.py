"""Install the in-test memory backend as a plug-in: a distribution on a temporary
``sys.path`` entry whose ``entry_points.txt`` registers it in ``retrain.providers``,
exactly as ``pip install`` of a package with that entry point would."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

DIST = "retrain_memory_backend-0.1.dist-info"


def install(root: Path, monkeypatch: pytest.MonkeyPatch, *, target: str) -> None:
    """Register ``memory = target`` in ``retrain.providers`` for this test only."""
    info = root / DIST
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: retrain-memory-backend\nVersion: 0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        f"[retrain.providers]\nmemory = {target}\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()


def install_memory(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The memory backend of ``tests/providers/memory.py``."""
    install(root, monkeypatch, target="tests.providers.memory:BACKEND")
