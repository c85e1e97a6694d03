"""What each row of the page says beside ``retrain status``'s: gate metric, last change, drift."""

from __future__ import annotations

from reconciler import model, status
from reconciler.web import html, svg, trend, view
from tests.web.test_trend import GATE, METRIC, entry, stored


def row(name: str, state: status.State, value: float | None) -> status.Row:
    metrics = {METRIC: value} if value is not None else {}
    return status.Row(name, f"svc-{name}", state, "2026.11", "a" * 64, metrics, "2026-11-01")


def endpoint(name: str, gate: model.Gate | None) -> model.Endpoint:
    return model.Endpoint(
        name=name,
        web_service=f"svc-{name}",
        asset="Bike Demand [trained model]",
        version="2026.11",
        trainer=model.Trainer("bike-demand"),
        inputs=model.frozen_map({}),
        parameters=model.frozen_map({}),
        gate=gate,
        definition=None,
        source=model.Source("retrain.yaml", "/endpoints/0", 40),
    )


def test_each_row_has_its_gate_metric_last_action_and_drift() -> None:
    history = [
        entry("2026-11-01T10:00:00+00:00", "a" * 64, 0.8, "create"),
        entry("2026-11-02T10:00:00+00:00", "a" * 64, 0.8, "repair-drift"),
    ]
    snap = view.snapshot(
        [row("bike-boston", status.State.DRIFTED, 0.8), row("gone", status.State.ORPHANED, None)],
        [endpoint("bike-boston", GATE)],
        history,
        [stored("a" * 64, 0.8, "2026-11-01T09:00:00+00:00")],
        title="retrain.yaml",
        backend="memory",
        taken="2026-11-03T00:00:00+00:00",
    )
    boston, orphan = snap.endpoints
    assert (boston.metric, boston.value, boston.last_action, boston.drifted) == (
        METRIC,
        0.8,
        "repair-drift",
        True,
    )
    assert (orphan.metric, orphan.value, orphan.last_action, orphan.drifted) == (
        None,
        None,
        "",
        False,
    )
    page = html.page(snap)
    assert '<td class="drift">drifted</td>' in page
    assert "No gate: no metric to chart." in page  # the orphan: the manifest gates it no more


def test_the_champion_line_holds_each_level_until_the_next_champion() -> None:
    t = trend.trend(
        "bike-boston",
        GATE,
        [
            entry("2026-11-01T10:00:00+00:00", "a" * 64, 0.7, "create"),
            entry("2026-11-03T10:00:00+00:00", "c" * 64, 0.9),
        ],
        [stored("b" * 64, 0.2, "2026-11-02T10:00:00+00:00")],
    )
    drawn = svg.chart(t, ident="c")
    line = drawn.split('<polyline class="champion-line" points="')[1].split('"')[0]
    points = [tuple(map(float, p.split(","))) for p in line.split()]
    # (x of the 1st point, 0.7) → (x of the 3rd, 0.7), then (x of the 3rd, 0.9) → the right edge
    assert [round(x) for x, _ in points] == [64, 624, 624, 624]
    assert points[0][1] == points[1][1] > points[2][1] == points[3][1]
