"""Scoring requests checked against a web service's input schema, responses shaped by its
output schema. Pure: no I/O, so every rule is tested on values alone.

The shape is the request-response one of the web service definitions retrain manages::

    POST {"Inputs": {"input1": [{"temp": 17.9, ...}, ...]}, "GlobalParameters": {}}
    200  {"Results": {"output1": [{"datetime": "...", "Scored Labels": 212.5}, ...]}}

A row is an object by column name, or a list in the schema's column order (the
definition's ``exampleRequest`` form). The definition's input schema names each table's
columns with a ``type`` (String, Integer, Number, Boolean), a ``format`` (Int32, Int64,
Double, Date-time) and ``x-ms-isnullable``. Every problem is a ``BadRequest`` naming the
field (``Inputs.input1[3].temp``) and what was wrong, so a client can fix its request
from the message alone; the first problem is reported.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_ROWS = 10_000  # rows in one request: ample for online scoring; a batch goes elsewhere
SHOWN = 60  # characters of a bad value quoted back in a message
INT_RANGES = {"int32": 2**31, "int64": 2**63}  # |value| limits of the integer formats
SCORE_COLUMN = "Scored Labels"  # the score's column when the output schema names none


class BadRequest(ValueError):
    """The request does not fit the web service's input schema; ``target`` is the field."""

    def __init__(self, target: str, message: str) -> None:
        super().__init__(f"{target}: {message}" if target else message)
        self.target = target


class Unservable(ValueError):
    """The definition's schemas are not ones serve can score with (a service problem)."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str
    format: str
    nullable: bool


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]


def table(schema: Mapping[str, Any], what: str) -> Table:
    """The one table of an input or output schema (``{"properties": {name: {...}}}``)."""
    tables = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(tables, Mapping) or len(tables) != 1:
        count = len(tables) if isinstance(tables, Mapping) else 0
        raise Unservable(f"the definition declares {count} {what} tables; serve scores with one")
    name, body = next(iter(tables.items()))
    props = body.get("properties") if isinstance(body, Mapping) else None
    if not isinstance(props, Mapping):
        raise Unservable(f"the definition's {what} table {name!r} names no columns")
    return Table(str(name), tuple(_column(str(n), c) for n, c in props.items()))


def _column(name: str, spec: Any) -> Column:
    spec = spec if isinstance(spec, Mapping) else {}
    return Column(
        name,
        str(spec.get("type", "")).lower(),
        str(spec.get("format", "")).lower(),
        bool(spec.get("x-ms-isnullable", False)),
    )


def parse(body: Any, inputs: Table, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows of a request ``body`` (parsed JSON), each checked against ``inputs``;
    ``GlobalParameters`` must be ones the definition declares."""
    if not isinstance(body, Mapping):
        raise BadRequest("", 'the body must be a JSON object: {"Inputs": {...}}')
    fields = {k.lower(): k for k in body}
    for key in body:
        if key.lower() not in ("inputs", "globalparameters"):
            raise BadRequest(key, "unknown field (expected Inputs and GlobalParameters)")
    _parameters(body.get(fields.get("globalparameters", ""), {}), parameters)
    given = body.get(fields.get("inputs", ""))
    if not isinstance(given, Mapping):
        raise BadRequest("Inputs", f"missing, or not an object of {inputs.name!r} rows")
    for name in given:
        if name != inputs.name:
            raise BadRequest(f"Inputs.{name}", f"not an input of this web service ({inputs.name})")
    rows = given.get(inputs.name)
    where = f"Inputs.{inputs.name}"
    if not isinstance(rows, list):
        raise BadRequest(where, "missing, or not a list of rows")
    if len(rows) > MAX_ROWS:
        raise BadRequest(where, f"{len(rows)} rows; at most {MAX_ROWS} in one request")
    return [_row(row, inputs.columns, f"{where}[{i}]") for i, row in enumerate(rows)]


def _parameters(given: Any, declared: Mapping[str, Any]) -> None:
    if not isinstance(given, Mapping):
        raise BadRequest("GlobalParameters", "must be an object")
    for name, value in given.items():
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise BadRequest(f"GlobalParameters.{name}", f"not a parameter ({known})")
        if isinstance(value, Mapping | list):
            raise BadRequest(f"GlobalParameters.{name}", "must be a single value")


def _row(row: Any, columns: Sequence[Column], where: str) -> dict[str, Any]:
    if isinstance(row, list):
        if len(row) != len(columns):
            raise BadRequest(where, f"has {len(row)} values for {len(columns)} columns")
        row = {c.name: v for c, v in zip(columns, row, strict=True)}
    if not isinstance(row, Mapping):
        raise BadRequest(where, "a row must be an object of column values (or a list)")
    names = {c.name for c in columns}
    for name in row:
        if name not in names:
            raise BadRequest(f"{where}.{name}", "not an input column of this web service")
    return {c.name: _value(row.get(c.name), c, f"{where}.{c.name}", c.name in row) for c in columns}


def _value(value: Any, column: Column, where: str, present: bool) -> Any:
    if value is None:
        if column.nullable:
            return None
        raise BadRequest(where, "missing" if not present else "must not be null")
    check = CHECKS.get(column.type)
    if check is not None:
        problem = check(value, column.format)
        if problem:
            raise BadRequest(where, f"{problem}, got {_shown(value)}")
    elif isinstance(value, Mapping | list):
        raise BadRequest(where, f"must be a single value, got {_shown(value)}")
    return value


def _integer(value: Any, fmt: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be an integer"
    if isinstance(value, float) and not value.is_integer():
        return "must be an integer"
    limit = INT_RANGES.get(fmt)
    if limit is not None and not -limit <= value < limit:
        return f"must fit in {fmt}"
    return ""


def _number(value: Any, _fmt: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number"
    return "" if math.isfinite(value) else "must be a finite number"


def _string(value: Any, fmt: str) -> str:
    if not isinstance(value, str):
        return "must be a string"
    if fmt == "date-time":
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            return "must be a date-time (ISO 8601, like 2023-08-01T08:00:00)"
    return ""


def _boolean(value: Any, _fmt: str) -> str:
    return "" if isinstance(value, bool) else "must be true or false"


CHECKS = {"integer": _integer, "number": _number, "string": _string, "boolean": _boolean}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN else f"{text[:SHOWN]}..."


class BadPrediction(ValueError):
    """What ``predict`` returned cannot be a response (wrong count, not JSON values)."""


def results(
    outputs: Table | None, inputs: Table, rows: Sequence[Mapping[str, Any]], scores: Any
) -> dict[str, Any]:
    """``{"Results": {output: [rows]}}``: per row, each output column from the prediction
    (a mapping by column, or one value for the score column: the first output column that
    is not an input column), else the input row's value of that column."""
    if not isinstance(scores, Sequence) or isinstance(scores, str | bytes):
        scores = list(scores) if hasattr(scores, "__iter__") else scores
    if not isinstance(scores, Sequence) or len(scores) != len(rows):
        count = len(scores) if isinstance(scores, Sequence) else type(scores).__name__
        raise BadPrediction(f"predict returned {count} predictions for {len(rows)} rows")
    inputs_named = {c.name for c in inputs.columns}
    names = [c.name for c in (outputs or inputs).columns] + ([] if outputs else [SCORE_COLUMN])
    score_column = next((n for n in names if n not in inputs_named), SCORE_COLUMN)
    out = []
    for row, score in zip(rows, scores, strict=True):
        made = dict(_plain(score)) if isinstance(score, Mapping) else {score_column: score}
        out.append({n: _plain(made[n]) if n in made else row.get(n) for n in names})
    return {"Results": {outputs.name if outputs else "output1": out}}


def _plain(value: Any) -> Any:
    """``value`` as JSON can carry it: numpy scalars become Python numbers."""
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, Mapping | list | str):
        value = item()
    if isinstance(value, float) and not math.isfinite(value):
        raise BadPrediction(f"predict returned {value!r}, which JSON cannot carry")
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise BadPrediction(f"predict returned a {type(value).__name__}, not a JSON value")
