"""Backends, by name. An explicit registry: adding a backend is one line here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from reconciler import errors, model, redact
from reconciler.providers import base

Log = Callable[[str], None]


def _local(
    backend: model.Backend,
    *,
    manifest_dir: Path,
    state_dir: Path | None,
    env: Mapping[str, str],
    scrub: redact.Redactor,
    log: Log,
    workers: int | None,
) -> base.Provider:
    from reconciler.providers.local import provider

    options = backend.options.get("local") or {}
    root = state_dir or (manifest_dir / options.get("stateDir", ".retrain"))
    return provider.LocalProvider(state_dir=root.resolve(), workdir=manifest_dir, env=env)


def _azure(
    backend: model.Backend,
    *,
    manifest_dir: Path,
    state_dir: Path | None,
    env: Mapping[str, str],
    scrub: redact.Redactor,
    log: Log,
    workers: int | None,
) -> base.Provider:
    if state_dir is not None:
        raise errors.ReconcilerError(
            "--state-dir is for the local backend; the azure backend "
            "keeps its state in blob storage"
        )
    from reconciler.providers.azure import provider

    return provider.create(
        backend.options, manifest_dir=manifest_dir, env=env, scrub=scrub, log=log, workers=workers
    )


Factory = Callable[..., base.Provider]
REGISTRY: dict[str, Factory] = {"local": _local, "azure": _azure}


def create(
    backend: model.Backend,
    *,
    manifest_dir: Path,
    state_dir: Path | None,
    env: Mapping[str, str],
    scrub: redact.Redactor | None = None,
    log: Log = lambda _line: None,
    workers: int | None = None,
) -> base.Provider:
    """The provider the manifest's ``backend`` names."""
    factory = REGISTRY.get(backend.kind)
    if factory is None:
        raise errors.ReconcilerError(f"unknown backend {backend.kind!r}")
    return factory(
        backend,
        manifest_dir=manifest_dir,
        state_dir=state_dir,
        env=env,
        scrub=scrub or redact.Redactor(),
        log=log,
        workers=workers,
    )
