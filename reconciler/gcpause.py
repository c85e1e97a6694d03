"""Pausing Python's cyclic garbage collector while a large value is built.

Loading a 10,000-endpoint manifest (or observing 10,000 services) allocates a few
hundred thousand long-lived containers and no garbage cycles. Each allocation burst
triggers a collection, and every full one walks everything allocated so far: at
10,000 endpoints the collector was about a third of a plan's CPU time (measured: 2.8 s
with it, 1.9 s with it off; see ``bench/localplan.py``). Reference counting still frees
everything that is not in a cycle. The collector is never left off: it is switched back on when the
outermost pause ends, if it was on when that pause began.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """The collector off inside the block (pauses nest: the outermost restores it)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            _settle()
            gc.enable()


def _settle() -> None:
    """Freeze every object alive now (``gc.freeze``), so later collections do not walk
    the new value again: each full one would (with the collector simply back on, a plan
    spent as long collecting as before). Frozen objects are still freed by reference
    counting, which frees a manifest or an observation (they hold no cycles): loading
    a 10,000-endpoint manifest six times in one process keeps the frozen count and the
    resident memory flat (see ``tests/unit/test_gcpause.py``). Only a cycle alive at a
    pause waits for ``gc.unfreeze`` to be collected; collecting before each freeze
    instead cost 0.25 s of a 1.4 s plan."""
    gc.freeze()


def release() -> None:
    """Give what the pauses froze back to the collector (``gc.unfreeze``): a process
    that pauses again and again (``retrain watch``, once per round) calls it between
    rounds, so a garbage cycle alive at one pause is collected after it, not kept for
    the life of the process."""
    gc.unfreeze()
