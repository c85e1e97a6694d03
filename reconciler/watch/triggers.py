"""What makes the controller reconcile, from two polls of the world. Pure.

A poll (``sense.observe``) stamps the manifest and every local input file (mtime and
size), reads a git checkout's ``HEAD`` and the clock. Comparing it with what the
previous poll saw gives the triggers: a change of the manifest, an input, ``HEAD``,
the interval elapsed since the last reconcile, a trainer's cron schedule naming a time
since the previous poll. Each trigger says which endpoints it is about (None: all).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler import model, schedule

Stamp = tuple[int, int]
"""A file's (mtime in ns, size): a change of either is a change of the file. A file
rewritten with equal bytes also triggers; the plan then finds nothing to do."""


class Kind(enum.StrEnum):
    START = "start"
    MANIFEST = "manifest"
    INPUT = "input"
    GIT = "git"
    INTERVAL = "interval"
    SCHEDULE = "schedule"
    RETRY = "retry"


CHANGES = frozenset({Kind.START, Kind.MANIFEST, Kind.INPUT, Kind.GIT})
"""Triggers that mean the world changed: they clear an endpoint's backoff (the change
may be the fix), where an interval or a schedule waits for the backoff to run out."""


@dataclass(frozen=True, slots=True)
class Trigger:
    kind: Kind
    detail: str = ""
    endpoints: frozenset[str] | None = None
    """The endpoints it is about; None: every endpoint."""

    def __str__(self) -> str:
        return f"{self.kind} ({self.detail})" if self.detail else str(self.kind)


@dataclass(frozen=True, slots=True)
class Watched:
    """What the manifest makes worth watching: its own file, the local input files
    (each with the endpoints that read it), the trainers' schedules (each with the
    endpoints it trains for) and every endpoint, in manifest order."""

    manifest: str
    inputs: Mapping[str, frozenset[str]] = field(default_factory=model.frozen_map)
    schedules: Mapping[str, tuple[str, frozenset[str]]] = field(default_factory=model.frozen_map)
    endpoints: tuple[str, ...] = ()

    def files(self) -> tuple[str, ...]:
        return (self.manifest, *self.inputs)


def watched(manifest: model.Manifest, *, local: frozenset[str]) -> Watched:
    """``Watched`` for a loaded manifest; ``local``: the input locations that are files
    on this machine (a blob or a datastore path is re-read by a schedule instead)."""
    inputs: dict[str, set[str]] = {}
    schedules: dict[str, tuple[str, set[str]]] = {}
    for ep in manifest.endpoints:
        for location in ep.inputs.values():
            if location in local:
                inputs.setdefault(location, set()).add(ep.name)
        if ep.trainer.schedule:
            schedules.setdefault(ep.trainer.name, (ep.trainer.schedule, set()))[1].add(ep.name)
    return Watched(
        manifest=manifest.path,
        inputs=model.frozen_map({k: frozenset(v) for k, v in inputs.items()}),
        schedules=model.frozen_map({k: (e, frozenset(v)) for k, (e, v) in schedules.items()}),
        endpoints=tuple(ep.name for ep in manifest.endpoints),
    )


@dataclass(frozen=True, slots=True)
class Poll:
    """One look at the world: ``now`` (epoch seconds), each watched file's stamp (None:
    missing) and the checkout's ``HEAD`` (None: not a git checkout)."""

    now: float
    files: Mapping[str, Stamp | None] = field(default_factory=model.frozen_map)
    head: str | None = None


def fired(
    before: Poll | None,
    now: Poll,
    watch: Watched,
    *,
    interval: float | None,
    reconciled: float | None,
) -> tuple[Trigger, ...]:
    """The triggers between the previous poll ``before`` (None: this is the first) and
    ``now``; ``reconciled``: when the last reconcile started (for ``interval``, seconds;
    None: no interval)."""
    if before is None:
        return (Trigger(Kind.START),)
    found = [*_files(before, now, watch)]
    if before.head and now.head and before.head != now.head:
        found.append(Trigger(Kind.GIT, f"HEAD {before.head[:12]} -> {now.head[:12]}"))
    if interval is not None and reconciled is not None and now.now - reconciled >= interval:
        found.append(Trigger(Kind.INTERVAL, f"every {interval:g}s"))
    found += _schedules(before.now, now.now, watch)
    return tuple(found)


def _files(before: Poll, now: Poll, watch: Watched) -> list[Trigger]:
    """A file both polls stamped whose stamp moved (a file new to the watch list came
    with a manifest change, which triggers everything anyway)."""
    found = []
    for path, stamp in now.files.items():
        if path not in before.files or before.files[path] == stamp:
            continue
        if path == watch.manifest:
            found.append(Trigger(Kind.MANIFEST, path))
        else:
            found.append(Trigger(Kind.INPUT, path, watch.inputs.get(path, frozenset())))
    return found


def _schedules(since: float, until: float, watch: Watched) -> list[Trigger]:
    start, end = _utc(since), _utc(until)
    return [
        Trigger(Kind.SCHEDULE, f"trainer {trainer}: {expr}", endpoints)
        for trainer, (expr, endpoints) in watch.schedules.items()
        if schedule.fired(expr, start, end)
    ]


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
