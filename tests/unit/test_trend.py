"""The metric trend of an endpoint: which history entries are points, the sparkline's
heights, and the mermaid chart's lines."""

from __future__ import annotations

import pytest

from reconciler import model, trend

R2 = "Coefficient of Determination"


def entry(endpoint: str, time: str, **metrics: float) -> model.HistoryEntry:
    return model.HistoryEntry(
        time=time,
        endpoint=endpoint,
        web_service=f"ws-{endpoint}",
        action="retrain",
        fingerprint="f" * 64,
        version="1",
        model_uri="local://m",
        previous_uri=None,
        previous_fingerprint=None,
        metrics=model.frozen_map({R2 if k == "r2" else k: v for k, v in metrics.items()}),
    )


def test_points_are_the_endpoints_entries_that_carry_the_metric_oldest_first() -> None:
    entries = [
        entry("a", "2026-01-01T03:00:00+00:00", r2=0.8),
        entry("b", "2026-01-02T03:00:00+00:00", r2=0.1),
        entry("a", "2026-01-03T03:00:00+00:00"),  # a prune: no metrics
        entry("a", "2026-01-04T03:00:00+00:00", r2=0.85),
    ]
    found = trend.of(entries, "a", R2)
    assert found.points == (
        trend.Point("2026-01-01 03:00", 0.8),
        trend.Point("2026-01-04 03:00", 0.85),
    )


def test_only_the_latest_points_are_charted() -> None:
    entries = [entry("a", f"2026-01-01T00:{i:02d}:00", r2=i / 100) for i in range(50)]
    points = trend.of(entries, "a", R2).points
    assert len(points) == trend.POINTS
    assert points[-1].value == 0.49


SPARKS: dict[str, tuple[list[float], str]] = {
    "rising": ([1, 2, 3, 4, 5, 6, 7, 8], "▁▂▃▄▅▆▇█"),
    "dip": ([0.9, 0.5, 0.9], "█▁█"),
    "flat": ([0.8, 0.8], "▅▅"),
    "one": ([0.8], "▅"),
    "none": ([], ""),
}


@pytest.mark.parametrize("case", SPARKS, ids=list(SPARKS))
def test_sparkline_heights(case: str) -> None:
    values, expected = SPARKS[case]
    assert trend.sparkline(values) == expected


def test_mermaid_chart_ends_with_the_challenger() -> None:
    points = (trend.Point("2026-01-01 03:00", 0.8), trend.Point("2026-01-01 03:00", 0.9))
    lines = trend.mermaid(trend.Trend("a", 'R "2"', points), challenger=0.7)
    assert lines == [
        "```mermaid",
        "xychart-beta",
        "    title \"a: R '2'\"",
        '    x-axis ["2026-01-01 03:00", "2026-01-01 03:00 (2)", "new"]',
        "    y-axis \"R '2'\" 0.68 --> 0.92",
        "    line [0.8, 0.9, 0.7]",
        "```",
    ]


def test_one_point_is_no_chart() -> None:
    one = trend.Trend("a", R2, (trend.Point("2026-01-01 03:00", 0.8),))
    assert trend.mermaid(one) == []
    assert trend.mermaid(one, challenger=0.9) != []
