"""Backends, by name: the built-in ones (one line each) and the ``retrain.providers``
entry points, so a backend can live in its own package.

Each names a descriptor object (``providers.base.Backend``) as ``module:attribute``.
Nothing is imported until a backend is asked for: importing this package stays
cheap (a training subprocess imports it), and a broken plug-in breaks a run with
one line naming it, not the import of the tool.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

from reconciler import errors, model, redact
from reconciler.providers import base

GROUP = "retrain.providers"
BUILT_IN: Mapping[str, str] = {
    "local": "reconciler.providers.local.backend:BACKEND",
    "azure": "reconciler.providers.azure.backend:BACKEND",
    "azureml": "reconciler.providers.azureml.backend:BACKEND",
}

Log = Callable[[str], None]


def registry() -> dict[str, base.Backend]:
    """Every registered backend by ``backend.kind``: the built-in ones, then the entry
    points of ``retrain.providers`` in name order. Read once per ``sys.path``."""
    return dict(_registry(tuple(sys.path)))


@cache
def _registry(_path: tuple[str, ...]) -> tuple[tuple[str, base.Backend], ...]:
    found = [(name, _load(name, target, "built-in backend")) for name, target in BUILT_IN.items()]
    points = sorted(importlib.metadata.entry_points(group=GROUP), key=lambda p: p.name)
    for point in points:
        if point.name in BUILT_IN:
            raise errors.ReconcilerError(
                f"backend entry point {point.name!r} ({point.value}) "
                "clashes with a built-in backend"
            )
        found.append((point.name, _load(point.name, point.value, "backend entry point")))
    return tuple(found)


def _load(name: str, target: str, what: str) -> base.Backend:
    """The descriptor ``module:attribute`` names; a broken one is a one-line error."""
    module_name, _, attribute = target.partition(":")
    try:
        loaded: base.Backend = getattr(importlib.import_module(module_name), attribute)
    except Exception as e:  # a plug-in's import may fail in any way: name it, briefly
        first = (str(e).splitlines() or [""])[0]
        raise errors.ReconcilerError(
            f"{what} {name!r} ({target}) cannot be loaded: {type(e).__name__}: {first}"
        ) from e
    if getattr(loaded, "name", None) != name:
        raise errors.ReconcilerError(
            f"{what} {name!r} ({target}) names itself {getattr(loaded, 'name', None)!r}"
        )
    return loaded


def backend(kind: str) -> base.Backend:
    """The backend ``kind``; an unknown one is an error listing the known ones."""
    known = registry()
    if kind not in known:
        raise errors.ReconcilerError(f"unknown backend {kind!r} (known: {', '.join(known)})")
    return known[kind]


def parallelism(chosen: model.Backend, flag: int = 0) -> int:
    """How many training jobs at once, resolved in this one place: ``--parallelism``,
    else what the manifest's ``backend.<kind>`` declares, else one per CPU."""
    declared = backend(chosen.kind).parallelism(chosen.section)
    return flag or declared or os.cpu_count() or 1


def network_parallelism(chosen: model.Backend, flag: int = 0) -> int:
    """How many requests (reads, updates) at once, resolved in this one place:
    ``--parallelism``, else the backend's ``network_parallelism`` (its manifest's
    ``networkParallelism``, else what its API's throttling allows), else as many as
    ``parallelism()``. Not the CPU count: requests wait on the network, not a core."""
    declared = base.network_parallelism_of(backend(chosen.kind), chosen.section)
    return flag or declared or parallelism(chosen)


def create(
    chosen: model.Backend,
    *,
    manifest_dir: Path,
    state_dir: Path | None,
    env: Mapping[str, str],
    scrub: redact.Redactor | None = None,
    log: Log = lambda _line: None,
    workers: int | None = None,
    network_workers: int | None = None,
) -> base.Provider:
    """The provider the manifest's ``backend`` names; ``workers`` and ``network_workers``
    default to what ``parallelism()`` and ``network_parallelism()`` resolve."""
    context = base.Context(
        manifest_dir=manifest_dir,
        state_dir=state_dir,
        env=env,
        scrub=scrub or redact.Redactor(),
        log=log,
        workers=workers or parallelism(chosen),
        network_workers=network_workers or network_parallelism(chosen),
    )
    return backend(chosen.kind).create(chosen, context)
