"""Each endpoint's gate metric over its history: champions and the challengers that lost. Pure.

The history records what each endpoint served and when (``create``, ``retrain``,
``update``, ``repair-drift``, ``recovered``), with the metrics of the model it
pointed at: those are the champions. A model the gate turned down is not a change,
so it is not in the history; it is in the model store, which keeps every trained
model with its metrics, when it was trained and the endpoints it was trained for
(``lineage.endpoints``, written by every backend). A stored model trained for an
endpoint that never served it is a challenger; its verdict is the gate's (the same
pure ``gate.evaluate`` the planner calls) against the champion serving when it was
trained. So a failed gate is marked from what is recorded, with no log of its own.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reconciler import gate as gating
from reconciler import model

PRUNE_PREFIX = "prune"  # prune / prune-delete: the service was disowned, not repointed


class Kind(enum.StrEnum):
    CHAMPION = "champion"  # the endpoint was pointed at it (a history entry)
    CHALLENGER = "challenger"  # trained for the endpoint, never served by it


@dataclass(frozen=True, slots=True)
class Point:
    """One model on an endpoint's chart. ``value`` is None when its metrics lack the
    gate's metric; ``passed`` is the gate's verdict (always True for a champion, which
    the endpoint served); ``note`` says why, for the reader."""

    time: str
    fingerprint: str
    version: str
    kind: Kind
    value: float | None
    passed: bool
    note: str


@dataclass(frozen=True, slots=True)
class Trend:
    """The points of one endpoint, oldest first; ``metric`` None when it has no gate."""

    endpoint: str
    metric: str | None
    higher_is_better: bool
    minimum: float | None
    points: tuple[Point, ...]

    @property
    def failed(self) -> tuple[Point, ...]:
        return tuple(p for p in self.points if not p.passed)


def trend(
    endpoint: str,
    gate: model.Gate | None,
    history: Iterable[model.HistoryEntry],
    stored: Iterable[model.ModelRecord],
) -> Trend:
    """The chart's points for ``endpoint`` from every history entry and stored model."""
    records = {r.fingerprint: r for r in stored}
    entries = _served(endpoint, history)
    champions = [_champion(e, gate, records.get(e.fingerprint)) for e in entries]
    served = {e.fingerprint for e in entries}
    challengers = [
        _challenger(r, gate, _serving_at(entries, r.trained_at, records))
        for r in records.values()
        if r.fingerprint not in served and endpoint in _trained_for(r)
    ]
    points = sorted(
        [*champions, *challengers], key=lambda p: (when(p.time), p.kind != Kind.CHAMPION)
    )
    return Trend(
        endpoint=endpoint,
        metric=gate.metric if gate else None,
        higher_is_better=gate.higher_is_better if gate else True,
        minimum=gate.minimum if gate else None,
        points=tuple(points),
    )


def _served(endpoint: str, history: Iterable[model.HistoryEntry]) -> list[model.HistoryEntry]:
    """The entries that pointed ``endpoint`` at a model (not the prunes)."""
    return [
        e
        for e in history
        if e.endpoint == endpoint and e.fingerprint and not e.action.startswith(PRUNE_PREFIX)
    ]


def _trained_for(record: model.ModelRecord) -> list[str]:
    """The endpoints a stored model's lineage says it was trained for (any shape tolerated:
    lineage is a backend's free-form record)."""
    names = record.lineage.get("endpoints")
    return [n for n in names if isinstance(n, str)] if isinstance(names, list | tuple) else []


def _metrics(entry: model.HistoryEntry, record: model.ModelRecord | None) -> Mapping[str, float]:
    """What the history recorded of the model, else what the store keeps (an ``update``
    back to a stored model records the metrics too, but a ``recovered`` one may not)."""
    return entry.metrics or (record.metrics if record else {})


def _champion(
    entry: model.HistoryEntry, gate: model.Gate | None, record: model.ModelRecord | None
) -> Point:
    metrics = _metrics(entry, record)
    return Point(
        time=entry.time,
        fingerprint=entry.fingerprint,
        version=entry.version,
        kind=Kind.CHAMPION,
        value=metrics.get(gate.metric) if gate else None,
        passed=True,
        note=f"{entry.action} by {entry.actor or '?'}",
    )


def _serving_at(
    entries: list[model.HistoryEntry], time: str, records: Mapping[str, model.ModelRecord]
) -> Mapping[str, float] | None:
    """The metrics of the champion serving at ``time`` (None before the first one)."""
    before = [e for e in entries if when(e.time) <= when(time)]
    if not before:
        return None
    return _metrics(before[-1], records.get(before[-1].fingerprint))


def when(text: str) -> dt.datetime:
    """An ISO 8601 time as an aware datetime (UTC when it names no zone); a time no
    backend should write sorts first rather than breaking the page."""
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return EPOCH
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


EPOCH = dt.datetime.min.replace(tzinfo=dt.UTC)


def _challenger(
    record: model.ModelRecord, gate: model.Gate | None, champion: Mapping[str, float] | None
) -> Point:
    verdict = gating.evaluate(gate, record.metrics, champion)
    version = record.lineage.get("version")
    return Point(
        time=record.trained_at,
        fingerprint=record.fingerprint,
        version=version if isinstance(version, str) else "",
        kind=Kind.CHALLENGER,
        value=record.metrics.get(gate.metric) if gate else None,
        passed=verdict.passed,
        note=f"gate: {verdict.reason}" if verdict.passed else f"gate blocked: {verdict.reason}",
    )
