"""Scoring requests against an input schema, responses by an output schema: the rules on
values alone (``reconciler.web.rows``)."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.web import rows

INPUT = {
    "type": "object",
    "properties": {
        "input1": {
            "type": "object",
            "properties": {
                "when": {"type": "String", "format": "Date-time", "x-ms-isnullable": False},
                "n": {"type": "Integer", "format": "Int32", "x-ms-isnullable": False},
                "x": {"type": "Number", "format": "Double", "x-ms-isnullable": False},
                "flag": {"type": "Boolean", "x-ms-isnullable": True},
            },
        }
    },
}
OUTPUT = {
    "properties": {"output1": {"properties": {"when": {"type": "String"}, "Scored Labels": {}}}}
}
TABLE = rows.table(INPUT, "input")
ROW = {"when": "2023-08-01T08:00:00", "n": 2, "x": 1.5}


def parse(body: Any, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return rows.parse(body, TABLE, parameters or {})


def problem(body: Any, parameters: dict[str, Any] | None = None) -> str:
    with pytest.raises(rows.BadRequest) as info:
        parse(body, parameters)
    return str(info.value)


def test_a_good_request_gives_every_column_with_a_missing_nullable_one_as_none() -> None:
    assert parse({"Inputs": {"input1": [ROW]}, "GlobalParameters": {}}) == [ROW | {"flag": None}]
    assert parse({"inputs": {"input1": [["2023-08-01", 1, 2, True]]}}) == [
        {"when": "2023-08-01", "n": 1, "x": 2, "flag": True}
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], 'the body must be a JSON object: {"Inputs": {...}}'),
        ({"Inputs": {"input1": [ROW]}, "Extra": 1}, "Extra: unknown field"),
        ({}, "Inputs: missing, or not an object of 'input1' rows"),
        ({"Inputs": {"input1": {}}}, "Inputs.input1: missing, or not a list of rows"),
        ({"Inputs": {"input2": []}}, "Inputs.input2: not an input of this web service (input1)"),
        ({"Inputs": {"input1": [ROW | {"n": True}]}}, "Inputs.input1[0].n: must be an integer"),
        ({"Inputs": {"input1": [ROW | {"n": 2**31}]}}, "Inputs.input1[0].n: must fit in int32"),
        ({"Inputs": {"input1": [ROW | {"x": "1"}]}}, "Inputs.input1[0].x: must be a number"),
        ({"Inputs": {"input1": [ROW | {"flag": 1}]}}, "Inputs.input1[0].flag: must be true or"),
        ({"Inputs": {"input1": [ROW, ROW | {"when": 3}]}}, "Inputs.input1[1].when: must be a str"),
        ({"Inputs": {"input1": [[1, 2]]}}, "Inputs.input1[0]: has 2 values for 4 columns"),
        ({"Inputs": {"input1": ["row"]}}, "Inputs.input1[0]: a row must be an object"),
        ({"Inputs": {"input1": [ROW]}, "GlobalParameters": {"k": 1}}, "GlobalParameters.k: not a"),
        ({"Inputs": {"input1": [ROW]}, "GlobalParameters": []}, "GlobalParameters: must be an"),
    ],
)
def test_each_bad_request_names_its_field(body: Any, message: str) -> None:
    assert problem(body).startswith(message)


def test_a_request_is_bounded_in_rows() -> None:
    found = problem({"Inputs": {"input1": [ROW] * (rows.MAX_ROWS + 1)}})
    assert (
        found == f"Inputs.input1: {rows.MAX_ROWS + 1} rows; at most {rows.MAX_ROWS} in one request"
    )


def test_declared_global_parameters_are_accepted() -> None:
    assert parse({"Inputs": {"input1": []}, "GlobalParameters": {"k": 1}}, {"k": {}}) == []


def test_results_take_scores_into_the_first_output_column_that_is_not_an_input() -> None:
    import numpy as np

    out = rows.table(OUTPUT, "output")
    checked = parse({"Inputs": {"input1": [ROW, ROW]}})
    made = rows.results(out, TABLE, checked, np.array([1.5, 2.0]))
    assert made == {
        "Results": {
            "output1": [
                {"when": ROW["when"], "Scored Labels": 1.5},
                {"when": ROW["when"], "Scored Labels": 2.0},
            ]
        }
    }
    assert rows.results(out, TABLE, checked[:1], [{"Scored Labels": 3, "when": "w"}]) == {
        "Results": {"output1": [{"when": "w", "Scored Labels": 3}]}
    }


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ([1.0], "predict returned 1 predictions for 2 rows"),
        ([1.0, float("nan")], "predict returned nan, which JSON cannot carry"),
        ([1.0, object()], "predict returned a object, not a JSON value"),
        (3.0, "predict returned float predictions for 2 rows"),
    ],
)
def test_a_prediction_that_cannot_be_an_answer_is_refused(scores: Any, message: str) -> None:
    checked = parse({"Inputs": {"input1": [ROW, ROW]}})
    with pytest.raises(rows.BadPrediction) as info:
        rows.results(rows.table(OUTPUT, "output"), TABLE, checked, scores)
    assert str(info.value) == message


def test_a_definition_with_two_input_tables_is_not_servable() -> None:
    two: dict[str, Any] = {"properties": {"a": {"properties": {}}, "b": {"properties": {}}}}
    with pytest.raises(rows.Unservable, match="declares 2 input tables; serve scores with one"):
        rows.table(two, "input")
