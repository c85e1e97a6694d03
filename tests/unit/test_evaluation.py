"""Evaluate Model output: Studio's wide layout and the long metric,value layout."""

from __future__ import annotations

import pytest

from reconciler.providers import evaluation

STUDIO = (
    "Mean Absolute Error,Root Mean Squared Error,Relative Absolute Error,"
    "Relative Squared Error,Coefficient of Determination\n"
    "11.06,17.76,0.29,0.16,0.8396\n"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            STUDIO,
            {
                "Mean Absolute Error": 11.06,
                "Root Mean Squared Error": 17.76,
                "Relative Absolute Error": 0.29,
                "Relative Squared Error": 0.16,
                "Coefficient of Determination": 0.8396,
            },
        ),
        ("metric,value\nr2,0.5\nrmse,3\n", {"r2": 0.5, "rmse": 3.0}),
        ("r2,0.5\n\n", {"r2": 0.5}),
        ("rmse,r2\n3,0.5\n", {"rmse": 3.0, "r2": 0.5}),
    ],
)
def test_layouts_parse_to_named_metrics(text: str, expected: dict[str, float]) -> None:
    assert evaluation.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("a,b,c\n1,2\n", "one header row and one value row"),
        ("r2,high\n", "metric 'r2' is not a number"),
        ("r2,nan\n", "is NaN"),
        (",0.5\n", "without a name"),
        ("r2,r2\n0.9,0.1\n", "metric 'r2' appears twice"),
    ],
)
def test_malformed_output_is_rejected_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(evaluation.EvaluationError, match=message):
        evaluation.parse(text)
