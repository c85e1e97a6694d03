"""Parse the Evaluate Model output a training job writes: metric name → value.

Azure ML Studio writes it "wide": one header row of metric names and one row of
values. Hand-written trainers often write it "long": ``metric,value`` rows.
Both are accepted; anything else is an error naming the problem.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable


class EvaluationError(ValueError):
    """The evaluation output is not a table of named numeric metrics."""


def parse(text: str) -> dict[str, float]:
    """Metrics from CSV text, in either layout."""
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        raise EvaluationError("evaluation output is empty")
    if _is_long(rows):
        body = rows[1:] if _is_header(rows[0]) else rows
        return _metrics((r[0], r[1]) for r in body)
    if len(rows) != 2 or len(rows[0]) != len(rows[1]):
        raise EvaluationError(
            "evaluation output must be one header row and one value row, "
            "or two columns of metric,value"
        )
    return _metrics(zip(rows[0], rows[1], strict=True))


def _is_long(rows: list[list[str]]) -> bool:
    return all(len(row) == 2 for row in rows) and not (len(rows) == 2 and _numeric(rows[1][0]))


def _is_header(row: list[str]) -> bool:
    return [c.strip().lower() for c in row] in (["metric", "value"], ["name", "value"])


def _numeric(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _metrics(pairs: Iterable[tuple[str, str]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, raw in pairs:
        key = str(name).strip()
        if not key:
            raise EvaluationError("evaluation output has a metric without a name")
        try:
            value = float(raw)
        except ValueError:
            raise EvaluationError(f"metric {key!r} is not a number: {str(raw)[:40]!r}") from None
        if math.isnan(value):
            raise EvaluationError(f"metric {key!r} is NaN")
        if key in out:
            raise EvaluationError(f"metric {key!r} appears twice")
        out[key] = value
    return out
