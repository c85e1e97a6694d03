"""An endpoint's metric over its history, for the charts where people look: a mermaid
chart in the plan's pull-request comment (GitHub renders it) and a terminal sparkline
(``retrain history ENDPOINT --chart``). Pure: history entries in, text out.

A point is a model that served the endpoint (a history entry that carries the metric;
a prune or a delete carries none and is skipped); the plan's challenger, when trained,
is the last point.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reconciler import model

POINTS = 20  # the latest models charted: a trend, not the whole history (which --json gives)
BARS = "▁▂▃▄▅▆▇█"  # eight heights: the block elements every terminal font has


@dataclass(frozen=True, slots=True)
class Point:
    """One model's value of the metric; ``label``: when it started serving (UTC, to the minute)."""

    label: str
    value: float


@dataclass(frozen=True, slots=True)
class Trend:
    """The endpoint's ``metric`` over the models that served it, oldest first."""

    endpoint: str
    metric: str
    points: tuple[Point, ...]


def of(entries: Iterable[model.HistoryEntry], endpoint: str, metric: str) -> Trend:
    """The latest ``POINTS`` values of ``metric`` in ``endpoint``'s history."""
    found = [
        Point(e.time[:16].replace("T", " "), float(e.metrics[metric]))
        for e in entries
        if e.endpoint == endpoint and metric in e.metrics
    ]
    return Trend(endpoint, metric, tuple(found[-POINTS:]))


def sparkline(values: Sequence[float]) -> str:
    """One block per value, its height the value's place between the least and the most
    (all alike: the middle height)."""
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return BARS[len(BARS) // 2] * len(values)
    top = len(BARS) - 1
    return "".join(BARS[round((v - low) / (high - low) * top)] for v in values)


def mermaid(trend: Trend, challenger: float | None = None) -> list[str]:
    """A mermaid ``xychart-beta`` of the trend, the challenger last ("new"); no lines
    when there is nothing to chart (no point, or one point and no challenger)."""
    points = [*trend.points] + ([Point("new", challenger)] if challenger is not None else [])
    if len(points) < 2:  # one point is no trend; the table beside it has the value
        return []
    values = [p.value for p in points]
    low, high = _axis(values)
    labels = ", ".join(f'"{_quoted(label)}"' for label in _unique([p.label for p in points]))
    return [
        "```mermaid",
        "xychart-beta",
        f'    title "{_quoted(trend.endpoint)}: {_quoted(trend.metric)}"',
        f"    x-axis [{labels}]",
        f'    y-axis "{_quoted(trend.metric)}" {low:.4g} --> {high:.4g}',
        f"    line [{', '.join(f'{v:.4g}' for v in values)}]",
        "```",
    ]


def _unique(labels: Sequence[str]) -> list[str]:
    """Labels with a repeat numbered (two models in one minute would be one category)."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


PAD = 0.1  # of the values' range, above and below, so no point sits on the frame


def _axis(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    pad = (high - low) * PAD or abs(high) * PAD or 1.0
    return low - pad, high + pad


def _quoted(text: str) -> str:
    """Text inside a mermaid string: no quote or newline can end it early."""
    return " ".join(text.replace('"', "'").split())
