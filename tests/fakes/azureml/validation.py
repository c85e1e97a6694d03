"""Swagger validation for the Azure ML v2 subset: the classic walker plus what this spec adds.

Why a subclass of :class:`tests.fakes.swagger.SwaggerValidator`: the walker (case-insensitive
names, ``$ref``/``allOf``, discriminators) fits this .NET service as it fits Studio's, but
``mfe.json`` also says things the 2017 webServices swagger never did, and a faithful fake must
enforce them:

* ``additionalProperties: false`` on most definitions (e.g. the PATCH bodies
  ``PartialMinimalTrackedResourceWithSku`` = tags + sku only): a member the definition (with its
  ``allOf`` ancestors) does not declare is refused, so a PATCH that tries to change
  ``properties.model`` or ``properties.traffic`` fails loudly, naming the field;
* ``minLength`` and ``pattern`` on strings (``command``, ``environmentId``, input ``uri``...).

The closed-world check is made once per *concrete* type (after discriminator dispatch) against
the flattened property set, because a mixin such as ``AssetJobInput`` is itself closed but does
not declare the ``jobInputType`` its sibling base ``JobInput`` adds.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.fakes.swagger import Issue, SwaggerValidator, ci_get

JsonObj = dict[str, Any]

# Microsoft's swagger subset (Azure/azure-rest-api-specs mfe.json 2025-12-01, external $refs
# inlined), vendored beside the other fakes so a clean clone validates against it.
SWAGGER_PATH = Path(__file__).resolve().parent.parent / "ml-services-2025-12-01.subset.swagger.json"


class StrictValidator(SwaggerValidator):
    """Adds ``additionalProperties: false``, ``minLength`` and ``pattern`` to the walker."""

    def __init__(self, swagger: JsonObj) -> None:
        super().__init__(swagger)
        self._flat: dict[str, tuple[set[str], bool]] = {}

    @classmethod
    def load(cls, path: Path = SWAGGER_PATH) -> StrictValidator:
        import json

        return cls(json.loads(path.read_text(encoding="utf-8")))

    def _flatten(self, name: str) -> tuple[set[str], bool]:
        """(lower-cased declared property names incl. ancestors, closed?) of a definition."""
        if name in self._flat:
            return self._flat[name]
        schema = self.defs[name]
        names = {k.lower() for k in schema.get("properties", {})}
        closed = schema.get("additionalProperties") is False
        for part in schema.get("allOf", []):
            base = self._ref_name(part)
            if base is not None:
                more, base_closed = self._flatten(base)
                names |= more
                closed = closed or base_closed
        self._flat[name] = (names, closed)
        return names, closed

    def _concrete(self, name: str, inst: Any) -> str:
        disc = self.defs[name].get("discriminator")
        if disc and isinstance(inst, dict):
            value = ci_get(inst, disc)
            if value is not None:
                return self.subtypes.get(name, {}).get(str(value).lower(), name)
        return name

    def _check_def(
        self, name: str, inst: Any, path: str, issues: list[Issue], dispatch: bool
    ) -> None:
        if dispatch and isinstance(inst, dict):
            names, closed = self._flatten(self._concrete(name, inst))
            if closed:
                for key, value in inst.items():
                    if key.lower() not in names and value is not None:  # null = not given
                        where = f"{path}.{key}" if path else key
                        issues.append(Issue(where, "is not a property of this definition"))
        super()._check_def(name, inst, path, issues, dispatch)

    def _check_scalar(
        self, schema: JsonObj, stype: str, inst: Any, path: str, issues: list[Issue]
    ) -> None:
        super()._check_scalar(schema, stype, inst, path, issues)
        if stype != "string" or not isinstance(inst, str):
            return
        if "minLength" in schema and len(inst) < int(schema["minLength"]):
            issues.append(Issue(path, f"is shorter than the minimum length {schema['minLength']}"))
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and re.search(pattern, inst) is None:
            issues.append(Issue(path, f"{inst!r} does not match the pattern {pattern!r}"))
