"""The manifest's JSON Schema: the core part composed with each backend's fragment.

The core (``manifest.schema.json``) knows no backend. A backend's fragment says what
it adds: its own section ``backend.<kind>``, the trainer fields that make a trainer
its kind, and its endpoint fields. Composing adds each to the core, so a backend
found through an entry point is validated like a built-in one. The union is
allowed by the schema; a backend refuses another's fields in its own checks.

A fragment is JSON of this shape (every key optional but ``description``)::

    {"description": "a phrase naming the backend, for the kind's description",
     "backend":  <schema of backend.<kind>>,
     "trainer":  {"properties": {...}, "required": [fields that make a trainer ours]},
     "endpoint": {"properties": {...}},
     "$defs":    {<more definitions, referenced as #/$defs/NAME>}}
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where a validator is made: --help needs none
    import jsonschema

CORE_PATH = Path(__file__).parent / "manifest.schema.json"
Fragment = Mapping[str, Any]
GENERATED = (
    "Composed from reconciler/manifest.schema.json and each backend's fragment "
    "(reconciler/providers/<name>/schema.json) by `make schema`: edit those, not this."
)


@dataclass(frozen=True, slots=True)
class Schema:
    """A composed manifest schema, and its validator when one is asked for: jsonschema
    (with referencing and attrs, ~80 ms to import here, most of a small plan's start)
    is imported only to word the problems of an invalid manifest; a valid one is found
    valid by the checks ``templatecheck`` compiles from this schema."""

    document: dict[str, Any]
    kept: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """What is made from the schema once per process (validators, compiled checks)."""

    @property
    def validator(self) -> jsonschema.Draft202012Validator:
        """The jsonschema validator of the whole schema (made, and imported, once)."""
        made: jsonschema.Draft202012Validator | None = self.kept.get("validator")
        if made is None:
            import jsonschema

            made = self.kept["validator"] = jsonschema.Draft202012Validator(self.document)
        return made

    def at(self, ref: str) -> jsonschema.Draft202012Validator:
        """The validator of the subschema at ``ref`` (``#/$defs/NAME``), made once: making
        one per assembled endpoint cost more than validating it."""
        made: jsonschema.Draft202012Validator | None = self.kept.get(f"validator {ref}")
        if made is None:
            made = self.kept[f"validator {ref}"] = self.validator.evolve(schema={"$ref": ref})
        return made

    def definition(self, name: str) -> Any:
        """The ``$defs`` entry ``name``."""
        return self.document["$defs"][name]


@cache
def core() -> dict[str, Any]:
    """The core part (read once; callers deep-copy before changing it)."""
    loaded: dict[str, Any] = json.loads(CORE_PATH.read_text(encoding="utf-8"))
    return loaded


def compose(fragments: Sequence[tuple[str, Fragment]]) -> dict[str, Any]:
    """The core schema with each ``(kind, fragment)`` added, in order."""
    doc = copy.deepcopy(core())
    doc["$comment"] = GENERATED
    defs = doc["$defs"]
    backend, trainer = defs["backend"], defs["trainer"]
    kind = backend["properties"]["kind"]
    kind["enum"] = [name for name, _ in fragments]
    kind["description"] = _kind_description([str(f["description"]) for _, f in fragments])
    alternatives: list[dict[str, Any]] = []
    for name, fragment in fragments:
        backend["properties"][name] = copy.deepcopy(fragment.get("backend", {"type": "object"}))
        part = fragment.get("trainer", {})
        trainer["properties"].update(copy.deepcopy(part.get("properties", {})))
        required = {"required": list(part["required"])} if part.get("required") else None
        if required and required not in alternatives:  # two backends may share a field
            alternatives.append(required)
        endpoint = fragment.get("endpoint", {}).get("properties", {})
        defs["endpointFields"]["properties"].update(copy.deepcopy(endpoint))
        defs.update(copy.deepcopy(fragment.get("$defs", {})))
    if alternatives:
        trainer["oneOf"] = alternatives
    return doc


def _kind_description(names: list[str]) -> str:
    """``Which provider runs the loop: a, b, or c.``"""
    if len(names) > 1:
        names = [", ".join(names[:-1]) + ", or " + names[-1]]
    return f"Which provider runs the loop: {names[0] if names else 'none is registered'}."


@cache
def composed(fragments: tuple[tuple[str, str], ...]) -> Schema:
    """The schema for ``(kind, fragment as JSON text)`` pairs: built once per process for
    each set of backends (its validator made when first asked for)."""
    return Schema(compose([(name, json.loads(text)) for name, text in fragments]))


def published(document: Mapping[str, Any]) -> str:
    """The text of a composed schema as written to ``schemas/retrain.schema.json``."""
    return json.dumps(document, indent=2) + "\n"
