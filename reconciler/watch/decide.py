"""What one reconcile covers, given the triggers, the backoff and the time. Pure.

Every trigger names its endpoints (or all); an endpoint still backing off is left out
unless a change (manifest, input, ``HEAD``) is about it; an endpoint whose backoff ran
out is retried. Nothing to do: None. The result is a selection, as ``--target`` gives
one, or the whole manifest (which also lists orphans).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.watch import backoff, triggers


@dataclass(frozen=True, slots=True)
class Tick:
    """One reconcile: why (``reasons``) and over which endpoints (``targets``; empty:
    the whole manifest). ``held``: endpoints left out because they back off."""

    reasons: tuple[triggers.Trigger, ...]
    targets: tuple[str, ...] = ()
    held: tuple[str, ...] = ()


def decide(
    fired: Sequence[triggers.Trigger],
    state: backoff.State,
    endpoints: Sequence[str],
    now: float,
) -> Tick | None:
    """The reconcile to run now, or None. ``endpoints``: the manifest's, in order
    (empty when it never loaded: then only the whole manifest can be asked for)."""
    reasons = [*fired] + [
        triggers.Trigger(triggers.Kind.RETRY, name, _about(name))
        for name in sorted(backoff.due(state, now))
    ]
    if not reasons:
        return None
    changed = _covered([t for t in reasons if t.kind in triggers.CHANGES], endpoints)
    holding = backoff.waiting(state, now) - changed
    if backoff.MANIFEST in holding:
        return None  # the manifest failed to load or observe: everything waits
    wanted = _covered(reasons, endpoints)
    chosen = tuple(name for name in endpoints if name in wanted and name not in holding)
    held = tuple(name for name in endpoints if name in wanted and name in holding)
    if not endpoints:
        return Tick(tuple(reasons))
    if not chosen:
        return None
    return Tick(tuple(reasons), () if len(chosen) == len(endpoints) else chosen, held)


def _about(name: str) -> frozenset[str] | None:
    """A retry is about its endpoint; a retry of the manifest, about everything."""
    return None if name == backoff.MANIFEST else frozenset({name})


def _covered(reasons: Sequence[triggers.Trigger], endpoints: Sequence[str]) -> set[str]:
    """The endpoints ``reasons`` are about; ``MANIFEST`` stands in for "all"."""
    out: set[str] = set()
    for t in reasons:
        out |= {backoff.MANIFEST, *endpoints} if t.endpoints is None else set(t.endpoints)
    return out
