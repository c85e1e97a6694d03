"""The gate judges a challenger's metrics against a floor and the champion."""

from __future__ import annotations

import pytest

from reconciler import gate, model

R2 = model.Gate("r2", minimum=0.6, max_regression=0.05)
RMSE = model.Gate("rmse", minimum=20.0, max_regression=1.0, higher_is_better=False)


@pytest.mark.parametrize(
    ("rule", "challenger", "champion", "passed", "reason"),
    [
        (None, {}, None, True, "no gate configured"),
        (R2, {"r2": 0.7}, None, True, "r2 0.7 passes"),
        (R2, {"r2": 0.6}, None, True, "r2 0.6 passes"),
        (R2, {"r2": 0.59}, None, False, "r2 0.59 is below the floor 0.6"),
        (R2, {"r2": 0.76}, {"r2": 0.80}, True, "r2 0.76 vs serving 0.8 passes"),
        (
            R2,
            {"r2": 0.74},
            {"r2": 0.80},
            False,
            "regresses more than 0.05 from the serving model's 0.8",
        ),
        (R2, {"r2": 0.9}, {"rmse": 3.0}, True, "r2 0.9 passes"),
        (R2, {"rmse": 3.0}, None, False, "evaluation has no metric 'r2' (has: rmse)"),
        (RMSE, {"rmse": 19.0}, None, True, "rmse 19 passes"),
        (RMSE, {"rmse": 21.0}, None, False, "rmse 21 is above the ceiling 20"),
        (RMSE, {"rmse": 11.5}, {"rmse": 10.0}, False, "regresses more than 1"),
        (RMSE, {"rmse": 10.9}, {"rmse": 10.0}, True, "rmse 10.9 vs serving 10 passes"),
    ],
)
def test_gate_verdicts(
    rule: model.Gate | None,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    passed: bool,
    reason: str,
) -> None:
    verdict = gate.evaluate(rule, challenger, champion)
    assert verdict.passed is passed
    assert reason in verdict.reason
