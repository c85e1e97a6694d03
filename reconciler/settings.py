"""Run-time settings, built by the CLI from flags (or by tests directly)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    manifest: Path = Path("retrain.yaml")
    """The manifest to load."""
    state_dir: Path | None = None
    """Override the backend's state directory (a backend that keeps none refuses it)."""
    parallelism: int = 0
    """``--parallelism``: training jobs and requests at once; 0 means the manifest's
    settings (``parallelism``; ``networkParallelism``), else one job per CPU and as many
    requests as the backend's API allows (resolved once, by ``providers.parallelism``
    and ``providers.network_parallelism``)."""
    targets: tuple[str, ...] = ()
    """Only these endpoints (empty: all)."""
    excludes: tuple[str, ...] = ()
    """Never these endpoints."""
    lock_timeout: float = 0.0
    """Seconds an apply waits for another apply's lock."""
    actor: str = ""
    """Who is applying, for the history (the CLI fills in the user or CI actor)."""
