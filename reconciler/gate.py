"""The promotion gate: pure judgement of a challenger's metrics.

A model is promoted only if its metric clears an absolute floor and does not
regress more than a tolerance against the champion (the model serving the
endpoint now). Only the planner calls it: for a model already stored, and, in
the plan made again after training, for one just trained; apply acts on that
plan and never judges again, so there is one decision, not two that might differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler import model


@dataclass(frozen=True, slots=True)
class Verdict:
    """The gate's answer; ``reason`` is for people, ``passed`` for the program."""

    passed: bool
    reason: str
    metric: str | None = None
    challenger: float | None = None
    champion: float | None = None


def evaluate(
    gate: model.Gate | None,
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
) -> Verdict:
    """Judge ``challenger`` metrics against the gate and the ``champion``'s metrics (if any)."""
    if gate is None:
        return Verdict(True, "no gate configured")
    value = challenger.get(gate.metric)
    if value is None:
        known = ", ".join(sorted(challenger)) or "none"
        return Verdict(
            False, f"evaluation has no metric {gate.metric!r} (has: {known})", gate.metric
        )
    best = champion.get(gate.metric) if champion else None
    failure = _floor_failure(gate, value) or _regression_failure(gate, value, best)
    if failure:
        return Verdict(False, failure, gate.metric, value, best)
    return Verdict(True, _pass_reason(gate, value, best), gate.metric, value, best)


def metric_missing(gate: model.Gate | None, champion: Mapping[str, float] | None) -> str | None:
    """Why ``gate`` cannot judge against the serving model: its metric is not among the
    ``champion``'s stored metrics (a misspelt metric name, found before any training
    instead of in every challenger's verdict after it). None when it can, or when there
    is no champion with metrics to compare with."""
    if gate is None or not champion or gate.metric in champion:
        return None
    return f"has no metric {gate.metric!r} (has: {', '.join(sorted(champion))})"


def _better_or_equal(gate: model.Gate, a: float, b: float) -> bool:
    return a >= b if gate.higher_is_better else a <= b


def _floor_failure(gate: model.Gate, value: float) -> str | None:
    if gate.minimum is None or _better_or_equal(gate, value, gate.minimum):
        return None
    word = "below the floor" if gate.higher_is_better else "above the ceiling"
    return f"{gate.metric} {value:.4g} is {word} {gate.minimum:.4g}"


def _regression_failure(gate: model.Gate, value: float, best: float | None) -> str | None:
    if gate.max_regression is None or best is None:
        return None
    allowed = best - gate.max_regression if gate.higher_is_better else best + gate.max_regression
    if _better_or_equal(gate, value, allowed):
        return None
    return (
        f"{gate.metric} {value:.4g} regresses more than {gate.max_regression:.4g} "
        f"from the serving model's {best:.4g}"
    )


def _pass_reason(gate: model.Gate, value: float, best: float | None) -> str:
    versus = f" vs serving {best:.4g}" if best is not None else ""
    return f"{gate.metric} {value:.4g}{versus} passes"
