"""``GET /services/NAME/swagger.json``: a Swagger 2.0 (OpenAPI 2) description of one web
service's scoring call, built from its definition's input and output schemas, so a
client generator or a person knows the request and response without reading JSON files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.web import rows

TYPES = {  # definition column type → Swagger type (format kept when Swagger knows it)
    "integer": "integer",
    "number": "number",
    "string": "string",
    "boolean": "boolean",
}
FORMATS = {"int32": "int32", "int64": "int64", "double": "double", "date-time": "date-time"}


def document(
    *, name: str, title: str, inputs: rows.Table, outputs: rows.Table | None, keyed: bool
) -> dict[str, Any]:
    """The description of ``POST /services/NAME/score``; ``keyed``: it needs an API key."""
    operation: dict[str, Any] = {
        "operationId": f"score-{name}",
        "summary": f"Score rows with the model {name} serves now",
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "parameters": [
            {
                "name": "body",
                "in": "body",
                "required": True,
                "schema": {"$ref": "#/definitions/ScoringRequest"},
            }
        ],
        "responses": {
            "200": {"description": "one result row per input row",
                    "schema": {"$ref": "#/definitions/ScoringResponse"}},
            "400": {"description": "the request does not fit the input schema (the message "
                    "names the field)", "schema": {"$ref": "#/definitions/Error"}},
            "401": {"description": "a missing or wrong API key",
                    "schema": {"$ref": "#/definitions/Error"}},
            "503": {"description": "no model to score with now (the message says why)",
                    "schema": {"$ref": "#/definitions/Error"}},
        },
    }  # fmt: skip
    doc: dict[str, Any] = {
        "swagger": "2.0",
        "info": {"title": title, "version": "1.0"},
        "basePath": "/",
        "schemes": ["http"],
        "paths": {f"/services/{name}/score": {"post": operation}},
        "definitions": {
            "ScoringRequest": _request(inputs),
            "ScoringResponse": _response(outputs or inputs),
            "Error": _ERROR,
        },
    }
    if keyed:
        doc["securityDefinitions"] = {
            "bearer": {
                "type": "apiKey",
                "name": "Authorization",
                "in": "header",
                "description": "Bearer KEY",
            }
        }
        operation["security"] = [{"bearer": []}]
    return doc


def _request(inputs: rows.Table) -> dict[str, Any]:
    table = {"type": "array", "maxItems": rows.MAX_ROWS, "items": _row(inputs)}
    return {
        "type": "object",
        "required": ["Inputs"],
        "properties": {
            "Inputs": {
                "type": "object",
                "required": [inputs.name],
                "properties": {inputs.name: table},
            },
            "GlobalParameters": {"type": "object"},
        },
    }


def _response(outputs: rows.Table) -> dict[str, Any]:
    table = {"type": "array", "items": _row(outputs)}
    results = {"type": "object", "properties": {outputs.name: table}}
    return {"type": "object", "properties": {"Results": results}}


def _row(table: rows.Table) -> dict[str, Any]:
    props = {c.name: _column(c) for c in table.columns}
    required = [c.name for c in table.columns if not c.nullable]
    return {"type": "object", "properties": props, "required": required}


def _column(column: rows.Column) -> Mapping[str, Any]:
    found: dict[str, Any] = {}
    if column.type in TYPES:
        found["type"] = TYPES[column.type]
    if column.format in FORMATS:
        found["format"] = FORMATS[column.format]
    if column.nullable:
        found["x-nullable"] = True
    return found


_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
