"""An endpoint's gate metric trend as an inline SVG chart. Pure.

Drawn on the server, so the page needs no script and no charting library from a
CDN. Points are spaced by their order in the history rather than by time: an
apply trains and promotes within seconds and the next change may come weeks later,
so a time axis would pile each apply's points onto one spot. The times are in each
point's tooltip and in the table under the chart. Champions (what the endpoint
served) are joined by a line; a challenger that passed the gate is a hollow dot,
one the gate blocked a cross. Every text is escaped (``esc``): endpoint and
metric names come from a manifest and an evaluation file, not from us.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from reconciler import fingerprint
from reconciler.web import trend as trending

WIDTH, HEIGHT = 640, 220  # the viewBox; the stylesheet scales it to the column's width
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 44  # margins: y labels left, legend below
MARK = 5  # radius of a dot and half the width of a cross, in viewBox units
PAD = 0.1  # headroom above and below the values, as a fraction of their range
SPAN = 0.05  # the range drawn around a single value (or equal ones)


def esc(text: object) -> str:
    """Text safe in HTML and SVG content and in quoted attribute values."""
    return html.escape(str(text), quote=True)


def chart(t: trending.Trend, *, ident: str) -> str:
    """The SVG for ``t``; "" when there is nothing to plot (no gate, or no value)."""
    plotted = [(i, p) for i, p in enumerate(t.points) if p.value is not None]
    if t.metric is None or not plotted:
        return ""
    lo, hi = _range([p.value for _, p in plotted if p.value is not None], t.minimum)
    axes = Axes(len(t.points), lo, hi)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}"'
        f' role="img" aria-labelledby="{ident}-title">',
        f'<title id="{ident}-title">{esc(t.metric)} of {esc(t.endpoint)}, oldest first</title>',
        *_grid(axes),
        *_floor(axes, t.minimum),
        _champion_line(axes, plotted),
        *(_mark(axes, i, p) for i, p in plotted),
        *_legend(),
        "</svg>",
    ]
    return "".join(parts)


class Axes:
    """Maps a point's index and value into the viewBox."""

    def __init__(self, count: int, lo: float, hi: float) -> None:
        self.count, self.lo, self.hi = count, lo, hi

    def x(self, index: int) -> float:
        inner = WIDTH - LEFT - RIGHT
        if self.count <= 1:
            return LEFT + inner / 2
        return LEFT + inner * index / (self.count - 1)

    def y(self, value: float) -> float:
        inner = HEIGHT - TOP - BOTTOM
        return TOP + inner * (self.hi - value) / (self.hi - self.lo)


def _range(values: Sequence[float], floor: float | None) -> tuple[float, float]:
    """The value range drawn: every value and the floor, with headroom."""
    seen = [*values, *([floor] if floor is not None else [])]
    lo, hi = min(seen), max(seen)
    if hi - lo < 1e-12:  # one value (or equal ones): draw a band around it
        half = abs(hi) * SPAN or SPAN
        return lo - half, hi + half
    pad = (hi - lo) * PAD
    return lo - pad, hi + pad


def _grid(axes: Axes) -> list[str]:
    """Three horizontal lines (bottom, middle, top) labelled with their values."""
    out = []
    for value in (axes.lo, (axes.lo + axes.hi) / 2, axes.hi):
        y = axes.y(value)
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        out.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}">{value:.4g}</text>')
    return out


def _floor(axes: Axes, floor: float | None) -> list[str]:
    if floor is None:
        return []
    y = axes.y(floor)
    return [
        f'<line class="floor" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>',
        f'<text class="floor-label" x="{WIDTH - RIGHT}" y="{y - 4:.1f}">floor {floor:.4g}</text>',
    ]


def _champion_line(axes: Axes, plotted: Sequence[tuple[int, trending.Point]]) -> str:
    """What the endpoint served, as steps: each champion's level holds until the next one
    and the last one's to the right edge, so each challenger sits against the model it
    was judged against."""
    champions = [(i, p.value) for i, p in plotted if p.kind is trending.Kind.CHAMPION]
    coords: list[str] = []
    for n, (i, value) in enumerate(champions):
        assert value is not None  # plotted points have values
        y = axes.y(value)
        end = champions[n + 1][0] if n + 1 < len(champions) else axes.count - 1
        coords += [f"{axes.x(i):.1f},{y:.1f}", f"{axes.x(end):.1f},{y:.1f}"]
    return f'<polyline class="champion-line" points="{" ".join(coords)}"/>' if coords else ""


def _mark(axes: Axes, index: int, p: trending.Point) -> str:
    assert p.value is not None  # only plotted points are marked
    x, y = axes.x(index), axes.y(p.value)
    tip = f"<title>{esc(_tooltip(p))}</title>"
    if p.kind is trending.Kind.CHAMPION:
        return f'<circle class="champion" cx="{x:.1f}" cy="{y:.1f}" r="{MARK}">{tip}</circle>'
    if p.passed:
        return f'<circle class="challenger" cx="{x:.1f}" cy="{y:.1f}" r="{MARK}">{tip}</circle>'
    return f'<path class="blocked" d="{_cross(x, y)}">{tip}</path>'


def _cross(x: float, y: float) -> str:
    """An X centred on (x, y), two strokes of a path."""
    m = MARK
    down = f"M{x - m:.1f},{y - m:.1f}L{x + m:.1f},{y + m:.1f}"
    up = f"M{x - m:.1f},{y + m:.1f}L{x + m:.1f},{y - m:.1f}"
    return down + up


def _tooltip(p: trending.Point) -> str:
    value = f"{p.value:.4g}" if p.value is not None else "-"
    return f"{p.kind} {fingerprint.short(p.fingerprint)} {value} at {p.time}: {p.note}"


def _legend() -> list[str]:
    """What each mark means, along the bottom edge."""
    y = HEIGHT - 12  # the legend's baseline, below the plot area
    m = MARK
    x = LEFT  # entries 150 and 160 units apart: room for the longest label at 12px
    return [
        f'<circle class="champion" cx="{x}" cy="{y - 4}" r="{m}"/>',
        f'<text class="legend" x="{x + 10}" y="{y}">champion (served)</text>',
        f'<circle class="challenger" cx="{x + 150}" cy="{y - 4}" r="{m}"/>',
        f'<text class="legend" x="{x + 160}" y="{y}">challenger (passed)</text>',
        f'<path class="blocked" d="{_cross(x + 310, y - 4)}"/>',
        f'<text class="legend" x="{x + 320}" y="{y}">gate blocked</text>',
    ]
