"""A starter trainer (written by ``retrain init``): fits y = a*x + b by least squares.

retrain calls ``train`` in its own process with keyword arguments only. It must write the
trained model to ``model_path`` and an evaluation CSV to ``evaluation_path``: one header row
of metric names and one row of values, which the manifest's gate reads. Replace the fit with
your own; keep the signature and the two outputs.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PARAMETERS = ("holdout",)  # the parameter names this trainer takes (checked before training)


def train(
    *,
    inputs: Mapping[str, Path],
    parameters: Mapping[str, Any],
    model_path: Path,
    evaluation_path: Path,
) -> None:
    """Fit on all rows but the last ``holdout``, evaluate on those."""
    with open(inputs["data"], newline="", encoding="utf-8") as f:
        rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]
    holdout = int(parameters.get("holdout", 10))
    fit, test = rows[:-holdout], rows[-holdout:]
    if len(fit) < 2 or not test:
        raise ValueError(f"{inputs['data']}: need more than {holdout + 1} rows, got {len(rows)}")
    a, b = _least_squares(fit)
    errors = [y - (a * x + b) for x, y in test]
    mean = sum(y for _, y in test) / len(test)
    total = sum((y - mean) ** 2 for _, y in test) or 1.0
    r2 = 1 - sum(e * e for e in errors) / total
    mae = sum(abs(e) for e in errors) / len(errors)
    model_path.write_text(json.dumps({"a": a, "b": b}), encoding="utf-8")
    evaluation_path.write_text(
        f"Coefficient of Determination,Mean Absolute Error\n{r2},{mae}\n", encoding="utf-8"
    )


def _least_squares(rows: list[tuple[float, float]]) -> tuple[float, float]:
    n = len(rows)
    mx = sum(x for x, _ in rows) / n
    my = sum(y for _, y in rows) / n
    var = sum((x - mx) ** 2 for x, _ in rows) or 1.0
    a = sum((x - mx) * (y - my) for x, y in rows) / var
    return a, my - a * mx
