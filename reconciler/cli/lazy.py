"""Start fast: the core modules a command runs are loaded when it runs, not for ``--help``.

The commands' modules import the engine, the planner and the renderers at their top (as
the house style asks: modules, not names), and executing those modules' bodies (some
hundred frozen dataclasses and enums, compiled patterns) was most of ``retrain --help``'s
time once the heavy libraries (deepdiff and numpy, jsonschema, rich, the cloud SDKs) were
imported only where they are used. So before the commands are imported, each module
named in ``DEFERRED`` is put in ``sys.modules`` as a lazy module (the standard library's
``importlib.util.LazyLoader``): the ``import`` statements bind it at once, and its body
runs the first time one of its names is used.

Python 3.11's lazy modules are not safe to load from two threads at once, so a command
loads every deferred module before it starts (``load_all``, in the group's callback):
laziness serves ``--help``, ``--version`` and usage errors, which need none of them.
"""

from __future__ import annotations

import importlib.util
import sys

# The modules only a command's body uses (the commands' decorators need none of them).
DEFERRED = (
    "reconciler.apply",
    "reconciler.engine",
    "reconciler.fingerprint",
    "reconciler.inventory",
    "reconciler.manifest",
    "reconciler.markdown",
    "reconciler.model",
    "reconciler.plan",
    "reconciler.planfile",
    "reconciler.progress",
    "reconciler.render",
    "reconciler.settings",
    "reconciler.status",
)


def defer() -> None:
    """Put each module of ``DEFERRED`` not imported yet in ``sys.modules``, lazily."""
    for name in DEFERRED:
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:  # pragma: no cover - they are ours
            continue
        loader = importlib.util.LazyLoader(spec.loader)
        spec.loader = loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loader.exec_module(module)
        parent, _, child = name.rpartition(".")
        setattr(sys.modules[parent], child, module)


def load_all() -> None:
    """Run every deferred module's body now (in this thread, before a command starts)."""
    for name in DEFERRED:
        module = sys.modules.get(name)
        if module is not None:
            hasattr(module, "__file__")  # any attribute looked up loads a lazy module
