"""Charts where people look, end to end on the example: ``history ENDPOINT --chart`` and
the mermaid chart in ``plan --format markdown``, from a real history of two applies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run

pytestmark = pytest.mark.slow


def shorten(project: Path, location: str, rows: int) -> None:
    data = project / "examples" / "bike_rental" / "data" / f"{location}.csv"
    data.write_text("".join(data.read_text().splitlines(keepends=True)[:-rows]))


def test_history_chart_and_plan_markdown_show_the_gate_metric_trend(
    applied: Path, retrain: Callable[..., Run]
) -> None:
    shorten(applied, "boston", 24)
    assert retrain("apply", "--auto-approve", "--target", "bike-boston").code == 0
    chart = retrain("history", "bike-boston", "--chart")
    assert chart.code == 0, chart.err
    (line,) = chart.out.splitlines()
    assert line.startswith("Coefficient of Determination  ")
    assert "2 models" in line
    assert any(c in line for c in "▁█")

    shorten(applied, "boston", 48)
    md = retrain("plan", "--format", "markdown", "--train")
    assert md.code == 0, md.err
    details = md.out.split("<code>bike-boston</code>", 1)[1]
    table = details.index("| metric | serving (champion) |")
    mermaid = details.index("```mermaid\nxychart-beta\n")
    assert table < mermaid < details.index("</details>")  # beside the table, in its section
    assert '    title "bike-boston: Coefficient of Determination"' in details
    assert '"new"]' in details  # the challenger trained for this plan is the last point


def test_history_chart_needs_an_endpoint(applied: Path, retrain: Callable[..., Run]) -> None:
    result = retrain("history", "--chart")
    assert result.code == 1
    assert result.err.strip() == "Error: --chart needs an ENDPOINT and text output"
