"""Backends, by name. An explicit registry: adding a backend is one line here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from reconciler import errors, model
from reconciler.providers import base


def _local(
    backend: model.Backend, *, manifest_dir: Path, state_dir: Path | None, env: Mapping[str, str]
) -> base.Provider:
    from reconciler.providers.local import provider

    options = backend.options.get("local") or {}
    root = state_dir or (manifest_dir / options.get("stateDir", ".retrain"))
    return provider.LocalProvider(state_dir=root.resolve(), workdir=manifest_dir, env=env)


Factory = Callable[..., base.Provider]
REGISTRY: dict[str, Factory] = {"local": _local}


def create(
    backend: model.Backend, *, manifest_dir: Path, state_dir: Path | None, env: Mapping[str, str]
) -> base.Provider:
    """The provider the manifest's ``backend`` names."""
    factory = REGISTRY.get(backend.kind)
    if factory is None:
        raise errors.ReconcilerError(f"unknown backend {backend.kind!r}")
    return factory(backend, manifest_dir=manifest_dir, state_dir=state_dir, env=env)
