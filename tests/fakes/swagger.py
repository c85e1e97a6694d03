"""Validate request bodies against the Swagger 2.0 definitions of the webServices API.

Why a hand-written walker instead of ``jsonschema``: the Azure ML service is a .NET service that
deserialises JSON case-insensitively, and Microsoft's own examples mix ``assetId`` with
``AssetId`` and ``SourceNodeId`` (reference §1.4). A faithful fake must therefore match property
names case-insensitively while still reporting every missing or mistyped field, resolve ``$ref``
and ``allOf``, dispatch on the ``packageType`` discriminator, and follow AutoRest's reading of
``{"type": "object"}`` with no properties as "any JSON value". ``jsonschema`` does none of those
without rewriting the schema and the instance, which would lose the client's key casing in
error messages.

The swagger file is read at runtime so the fake tracks the spec, not a copy of it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JsonObj = dict[str, Any]

# The official swagger of Microsoft.MachineLearning/webServices 2017-01-01 (newer revision, from
# Azure/azure-rest-api-specs), vendored beside this file so a clean clone validates against it.
# RETRAIN_SWAGGER_PATH overrides.
DEFAULT_SWAGGER_PATH = Path(
    os.environ.get("RETRAIN_SWAGGER_PATH")
    or Path(__file__).resolve().parent / "webservices-2017-01-01.swagger.json"
)


@dataclass(frozen=True)
class Issue:
    """One validation failure: a dotted JSON path (client casing) and a message."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<body>'}: {self.message}"


def ci_lookup(obj: JsonObj, name: str) -> list[str]:
    """Keys of ``obj`` equal to ``name`` ignoring case (normally zero or one)."""
    low = name.lower()
    return [k for k in obj if k.lower() == low]


def ci_get(obj: JsonObj, name: str, default: Any = None) -> Any:
    """``obj[name]`` matching the key case-insensitively (first match)."""
    keys = ci_lookup(obj, name)
    return obj[keys[0]] if keys else default


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _is_any(schema: JsonObj) -> bool:
    """AutoRest maps a bare ``{"type": "object"}`` to "any value" (e.g. WebServiceParameter)."""
    return schema.get("type") in (None, "object") and not any(
        k in schema
        for k in (
            "properties",
            "additionalProperties",
            "allOf",
            "$ref",
            "items",
            "enum",
            "required",
        )
    )


class SwaggerValidator:
    """Validates instances against named definitions of one swagger document."""

    def __init__(self, swagger: JsonObj) -> None:
        self.swagger = swagger
        self.defs: dict[str, JsonObj] = swagger["definitions"]
        # base definition name -> {discriminator value (lower) -> subtype definition name}
        self.subtypes: dict[str, dict[str, str]] = {}
        for name, schema in self.defs.items():
            value = schema.get("x-ms-discriminator-value", name)
            for part in schema.get("allOf", []):
                base = self._ref_name(part)
                if base and "discriminator" in self.defs.get(base, {}):
                    self.subtypes.setdefault(base, {})[str(value).lower()] = name

    @classmethod
    def from_file(cls, path: str | Path = DEFAULT_SWAGGER_PATH) -> SwaggerValidator:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    @staticmethod
    def _ref_name(schema: JsonObj) -> str | None:
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            return None
        prefix = "#/definitions/"
        if not ref.startswith(prefix):
            raise ValueError(f"unsupported $ref {ref!r}")
        return ref[len(prefix) :]

    def validate(self, instance: Any, definition: str) -> list[Issue]:
        """All issues of ``instance`` against ``#/definitions/<definition>``."""
        issues: list[Issue] = []
        self._check_def(definition, instance, "", issues, dispatch=True)
        return issues

    # -- walking --------------------------------------------------------------------------

    def _check_def(
        self, name: str, inst: Any, path: str, issues: list[Issue], dispatch: bool
    ) -> None:
        schema = self.defs[name]
        disc = schema.get("discriminator")
        if dispatch and disc and isinstance(inst, dict):
            value = ci_get(inst, disc)
            sub = self.subtypes.get(name, {}).get(str(value).lower()) if value is not None else None
            if sub is not None and sub != name:
                # The subtype's allOf names this base, which is then checked without dispatch.
                self._check_def(sub, inst, path, issues, dispatch=False)
                return
        self._check(schema, inst, path, issues)

    def _check(self, schema: JsonObj, inst: Any, path: str, issues: list[Issue]) -> None:
        ref = self._ref_name(schema)
        if ref is not None:
            self._check_def(ref, inst, path, issues, dispatch=True)
            return
        for part in schema.get("allOf", []):
            base = self._ref_name(part)
            if base is not None:
                # allOf parents are the base of this type: never dispatch back down.
                self._check_def(base, inst, path, issues, dispatch=False)
            else:
                self._check(part, inst, path, issues)
        if _is_any(schema):
            return
        stype = schema.get("type")
        if stype == "object" or (
            stype is None and ("properties" in schema or "additionalProperties" in schema)
        ):
            self._check_object(schema, inst, path, issues)
        elif stype == "array":
            if not isinstance(inst, list):
                issues.append(Issue(path, f"expected an array, got {_kind(inst)}"))
                return
            items = schema.get("items")
            if isinstance(items, dict):
                for i, item in enumerate(inst):
                    if item is not None:
                        self._check(items, item, _join(path, i), issues)
        elif stype is not None:
            self._check_scalar(schema, stype, inst, path, issues)

    def _check_object(self, schema: JsonObj, inst: Any, path: str, issues: list[Issue]) -> None:
        if not isinstance(inst, dict):
            issues.append(Issue(path, f"expected an object, got {_kind(inst)}"))
            return
        declared: JsonObj = schema.get("properties", {})
        for req in schema.get("required", []):
            keys = ci_lookup(inst, req)
            if not keys or all(inst[k] is None for k in keys):
                issues.append(Issue(_join(path, req), "required property is missing"))
        declared_lower = {k.lower(): k for k in declared}
        seen: dict[str, str] = {}
        for key, value in inst.items():
            canonical = declared_lower.get(key.lower())
            if canonical is not None:
                if canonical in seen:
                    issues.append(
                        Issue(
                            _join(path, key),
                            f"duplicates property {seen[canonical]!r} (names are case-insensitive)",
                        )
                    )
                    continue
                seen[canonical] = key
                if value is not None:  # ARM treats null as "not specified"
                    self._check(declared[canonical], value, _join(path, key), issues)
            elif isinstance(schema.get("additionalProperties"), dict) and value is not None:
                self._check(schema["additionalProperties"], value, _join(path, key), issues)

    def _check_scalar(
        self, schema: JsonObj, stype: str, inst: Any, path: str, issues: list[Issue]
    ) -> None:
        ok = {
            "string": isinstance(inst, str),
            "boolean": isinstance(inst, bool),
            "integer": isinstance(inst, int) and not isinstance(inst, bool),
            "number": isinstance(inst, int | float) and not isinstance(inst, bool),
        }.get(stype, True)
        if not ok:
            issues.append(Issue(path, f"expected {stype}, got {_kind(inst)}"))
            return
        enum = schema.get("enum")
        if enum is not None:
            # .NET's StringEnumConverter parses enum names case-insensitively.
            allowed = {str(e).lower() for e in enum}
            if str(inst).lower() not in allowed:
                issues.append(Issue(path, f"{inst!r} is not one of {enum}"))
        if stype in ("integer", "number"):
            if "minimum" in schema and inst < schema["minimum"]:
                issues.append(Issue(path, f"{inst} is less than the minimum {schema['minimum']}"))
            if "maximum" in schema and inst > schema["maximum"]:
                issues.append(
                    Issue(path, f"{inst} is greater than the maximum {schema['maximum']}")
                )
        if stype == "string" and schema.get("format") == "date-time":
            try:
                dt.datetime.fromisoformat(inst)
            except ValueError:
                issues.append(Issue(path, f"{inst!r} is not an ISO 8601 date-time"))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
    }.get(type(value), type(value).__name__)
