"""Checking a ``forEach`` entry's endpoints against the schema once, not once each.

The endpoints of one ``forEach`` entry differ only in their templated strings (the
values that use ``${each.KEY}``): substitution changes strings, never keys or shapes.
So one endpoint of the entry validated whole stands for all the others except at those
strings, and each of the others needs only its templated strings checked against the
subschemas that apply at their paths: a few regular expressions and length checks per
endpoint instead of a full JSON Schema validation (which, at 10,000 endpoints, was half
of a plan's time).

It is exact, not a heuristic:

- the subschemas of a templated path are collected through ``properties``,
  ``patternProperties``, ``additionalProperties``, ``items``, ``allOf`` and local
  ``$ref`` only. A path under a keyword whose outcome could depend on a value below it
  (``anyOf``, ``oneOf``, ``not``, ``if``, ``enum``, ``const``, ``dependentSchemas``,
  ``contains``...) or under any keyword not named in ``_STRUCTURAL`` is not collected,
  and the entry's endpoints are validated whole, one by one, as before;
- a value is checked by closures compiled once (``compiled``) only for the keywords
  they implement as jsonschema does (``_OWN``: types, patterns, lengths, bounds, object
  and array structure); a subschema with any other keyword is checked by jsonschema;
- an endpoint whose strings fail a check, and every endpoint until one passes whole, is
  validated whole (``problems.validate_at``), so every problem is the one jsonschema
  reports, located exactly as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from reconciler import problems, schema, yamlsrc
from reconciler.problems import EACH_REF, Rel, Site

Check = Callable[[Any], bool]

# Keywords of a schema on the way to a templated string whose outcome depends on the keys
# and shape of the instance only (identical for every endpoint of an entry), or on nothing.
_STRUCTURAL = frozenset(
    {
        *("type", "properties", "patternProperties", "additionalProperties", "required"),
        *("items", "allOf", "$ref", "minProperties", "maxProperties", "propertyNames"),
        *("minItems", "maxItems", "unevaluatedProperties", "unevaluatedItems", "$defs"),
        *("description", "title", "$comment", "default", "examples", "deprecated"),
    }
)
# Keywords at a templated string that a predicate here checks as jsonschema does.
_ANNOTATIONS = frozenset({"description", "title", "$comment", "default", "examples", "deprecated"})
_LEAF = frozenset({"type", "pattern", "minLength", "maxLength", *_ANNOTATIONS})
_DEFS = "#/$defs/"


class EntryCheck:
    """Schema checks of the endpoints assembled from one entry (``template``: its
    defaults-merged value before substitution) against the ``$defs`` entry ``ref``."""

    def __init__(self, composed: schema.Schema, ref: str, template: Any) -> None:
        self.composed = composed
        self.ref = ref
        self.vouched = False  # an endpoint of this entry passed whole validation
        self.paths = _checks(composed, ref, template)  # None: validate each one whole
        # Per templated path, the strings that passed its checks (pure: a string passes
        # or not wherever it is): a fleet's inputs repeat a few values thousands of times.
        self.passed: list[set[str]] = [set() for _ in self.paths or ()]

    def valid(self, site: Site, instance: Any) -> bool:
        """Whether ``instance`` (an endpoint of the entry) is valid; its problems are
        added to ``site`` when it is not."""
        if self.vouched and self.paths is not None and self._strings_pass(instance):
            return True
        ok = problems.validate_at(site, instance, self.ref)
        self.vouched = self.vouched or ok
        return ok

    def _strings_pass(self, instance: Any) -> bool:
        assert self.paths is not None
        for (rel, checks), passed in zip(self.paths, self.passed, strict=True):
            value = instance
            try:
                for key in rel:
                    value = value[key]
            except (KeyError, IndexError, TypeError):
                return False
            if not isinstance(value, str):
                return False
            if value in passed:
                continue
            for check in checks:
                if not check(value):
                    return False
            passed.add(value)
        return True


def _checks(
    composed: schema.Schema, ref: str, template: Any
) -> list[tuple[Rel, list[Check]]] | None:
    """Per templated path of ``template``, the checks of the subschemas there (None when
    some path lies under a keyword that is not structural)."""
    root = {"$ref": ref}
    out = []
    for rel in _templated_paths(template):
        found = _subschemas(composed, root, rel, template, 0)
        if found is None:
            return None
        out.append((rel, [_leaf(composed, s) for s in found if not _says_nothing(s)]))
    return out


def _templated_paths(value: Any, rel: Rel = ()) -> Iterator[Rel]:
    """The paths of the strings in ``value`` that use ``${each.KEY}``."""
    if isinstance(value, str):
        if EACH_REF.search(value):
            yield rel
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from _templated_paths(child, (*rel, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _templated_paths(child, (*rel, i))


def _subschemas(
    composed: schema.Schema, node: Any, rel: Rel, instance: Any, depth: int
) -> list[Any] | None:
    """Every subschema that applies to the value at ``rel`` below ``node`` (flattened
    through ``allOf`` and ``$ref``), or None when one on the way is not structural."""
    if depth > yamlsrc.MAX_DEPTH:  # a $ref cycle: give up, validate whole
        return None
    if not isinstance(node, dict):
        return [node]  # true/false: jsonschema checks it
    found: list[Any] = []
    if "$ref" in node and not str(node["$ref"]).startswith(_DEFS):
        return None  # another document's: not followed here
    parts = [composed.definition(node["$ref"][len(_DEFS) :])] if "$ref" in node else []
    parts += node.get("allOf", [])
    if not rel:
        found.append({k: v for k, v in node.items() if k not in ("$ref", "allOf")})
    elif not set(node) <= _STRUCTURAL or not _unevaluated_plain(node):
        return None
    else:
        for child in _children(node, rel[0], instance):
            deeper = _subschemas(composed, child, rel[1:], _step(instance, rel[0]), depth + 1)
            if deeper is None:
                return None
            found += deeper
    for part in parts:
        deeper = _subschemas(composed, part, rel, instance, depth + 1)
        if deeper is None:
            return None
        found += deeper
    return found


def _unevaluated_plain(node: dict[str, Any]) -> bool:
    """``unevaluated*`` only as booleans: which keys they cover depends on the keys."""
    return all(
        isinstance(node.get(k, False), bool) for k in ("unevaluatedProperties", "unevaluatedItems")
    )


def _children(node: dict[str, Any], key: str | int, instance: Any) -> list[Any]:
    """The subschemas of ``node`` that apply to ``instance[key]``."""
    if isinstance(instance, list):
        items = node.get("items")
        return [items] if items is not None else []
    if not isinstance(instance, dict):
        return []
    out = []
    declared = node.get("properties", {})
    if key in declared:
        out.append(declared[key])
    patterns = [s for p, s in node.get("patternProperties", {}).items() if re.search(p, str(key))]
    out += patterns
    if key not in declared and not patterns and "additionalProperties" in node:
        out.append(node["additionalProperties"])
    return out


def _step(instance: Any, key: str | int) -> Any:
    try:
        return instance[key]
    except (KeyError, IndexError, TypeError):
        return None


def _says_nothing(node: Any) -> bool:
    """Whether ``node`` accepts every string (``{}``, ``true``, annotations only): no
    check for it (a templated name has four subschemas, two of them such)."""
    return node is True or (isinstance(node, dict) and set(node) <= _ANNOTATIONS)


def _leaf(composed: schema.Schema, node: Any) -> Check:
    """A check of a templated string against ``node``: one closure of a few regular
    expressions and bounds when ``node`` says only what ``_LEAF`` names."""
    if not isinstance(node, dict) or not set(node) <= _LEAF:
        return compiled(composed, node)
    kind = node.get("type", "string")
    if "string" not in (kind if isinstance(kind, list) else [kind]):
        return _never
    least, most = node.get("minLength", 0), node.get("maxLength", yamlsrc.MAX_STRING)
    if "pattern" not in node:
        return lambda value: least <= len(value) <= most
    pattern = re.compile(node["pattern"])
    return lambda value: least <= len(value) <= most and pattern.search(value) is not None


# --- checks compiled from a subschema ------------------------------------------------

# The keywords ``compiled`` checks itself, with jsonschema's meaning (each applies only to
# instances of its type, as in JSON Schema); a subschema with any other is checked by
# jsonschema (exact, and slower).
_OWN = frozenset(
    {
        *("type", "pattern", "minLength", "maxLength", "minimum", "maximum"),
        *("exclusiveMinimum", "exclusiveMaximum", "const", "enum", "uniqueItems", "oneOf"),
        *("properties", "patternProperties", "additionalProperties", "required"),
        *("propertyNames", "minProperties", "maxProperties", "items", "minItems", "maxItems"),
        *("$ref", "allOf", "unevaluatedProperties", "$defs", "$schema", "$id", *_ANNOTATIONS),
    }
)
# In-place keywords whose annotations ``unevaluatedProperties`` would have to follow (and
# ``compiled`` does not): a schema with one of them under it is left to jsonschema.
_IN_PLACE = frozenset({"anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas"})
_TYPES: dict[str, Callable[[Any], bool]] = {  # jsonschema's draft 2020-12 type checker
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
}


def compiled(composed: schema.Schema, node: Any, depth: int = 0) -> Check:
    """Whether a value is valid against the subschema ``node`` (a closure made once):
    exactly jsonschema's verdict, by its own checks where ``_OWN`` names every keyword of
    ``node`` (and of what it refers to), else by jsonschema itself (imported then)."""
    if isinstance(node, bool):
        return _always if node else _never
    if not isinstance(node, dict) or not set(node) <= _OWN or depth > yamlsrc.MAX_DEPTH:
        return _by_jsonschema(composed, node)
    if not _own_values(node):
        return _by_jsonschema(composed, node)
    parts = [_own(composed, node, depth)]
    if "$ref" in node:
        ref = str(node["$ref"])
        if not ref.startswith(_DEFS):
            return _by_jsonschema(composed, node)
        parts.append(compiled(composed, composed.definition(ref[len(_DEFS) :]), depth + 1))
    parts += [compiled(composed, part, depth + 1) for part in node.get("allOf", [])]
    if "oneOf" in node:
        parts.append(_one_of([compiled(composed, part, depth + 1) for part in node["oneOf"]]))
    if node.get("unevaluatedProperties", True) is not True:
        evaluated = _evaluated(composed, node, depth, top=True)
        if evaluated is None:
            return _by_jsonschema(composed, node)
        parts.append(_none_unevaluated(*evaluated))
    return _every(parts)


def checker(composed: schema.Schema, ref: str | None = None) -> Check:
    """The compiled check of the whole schema (or of its ``$defs`` entry ``ref``), made
    once per schema: what says a valid manifest is valid without jsonschema."""
    key = f"check {ref}"
    if key not in composed.kept:
        node = composed.document if ref is None else {"$ref": ref}
        composed.kept[key] = compiled(composed, node)
    check: Check = composed.kept[key]
    return check


def _by_jsonschema(composed: schema.Schema, node: Any) -> Check:
    """jsonschema's verdict on ``node``, its validator made on first use."""
    made: list[Any] = []

    def valid(value: Any) -> bool:
        if not made:
            made.append(composed.validator.evolve(schema=node))
        return bool(made[0].is_valid(value))

    return valid


def _own_values(node: dict[str, Any]) -> bool:
    """Whether the keywords below that ``_own`` checks have values it checks exactly:
    ``const`` and ``enum`` of strings (jsonschema's equality of a string is ``==``; of
    numbers and booleans it is not), ``unevaluatedProperties`` true or false."""
    if "const" in node and not isinstance(node["const"], str):
        return False
    enum = node.get("enum", [])
    if not isinstance(enum, list) or not all(isinstance(v, str) for v in enum):
        return False
    return node.get("unevaluatedProperties", True) in (True, False)


def _one_of(checks: list[Check]) -> Check:
    """Whether exactly one of ``checks`` passes."""

    def one_of(value: Any) -> bool:
        return sum(1 for check in checks if check(value)) == 1

    return one_of


def _evaluated(
    composed: schema.Schema, node: Any, depth: int, *, top: bool = False
) -> tuple[frozenset[str], list[re.Pattern[str]], bool] | None:
    """The property names ``node`` and the subschemas it applies in place (``$ref``,
    ``allOf``) evaluate, their patterns, and whether one evaluates every other key
    (``additionalProperties``); None where that depends on more (``_IN_PLACE``, another
    ``unevaluatedProperties`` below, a remote ``$ref``). For a valid instance these are
    what ``unevaluatedProperties`` may not go beyond (an invalid one fails anyway)."""
    if isinstance(node, bool):
        return frozenset(), [], False
    if not isinstance(node, dict) or depth > yamlsrc.MAX_DEPTH or _IN_PLACE & set(node):
        return None
    if not top and "unevaluatedProperties" in node:
        return None
    names = set(node.get("properties", {}))
    patterns = [re.compile(p) for p in node.get("patternProperties", {})]
    every = "additionalProperties" in node
    parts = list(node.get("allOf", []))
    if "$ref" in node:
        ref = str(node["$ref"])
        if not ref.startswith(_DEFS):
            return None
        parts.append(composed.definition(ref[len(_DEFS) :]))
    for part in parts:
        found = _evaluated(composed, part, depth + 1)
        if found is None:
            return None
        names |= found[0]
        patterns += found[1]
        every = every or found[2]
    return frozenset(names), patterns, every


def _none_unevaluated(names: frozenset[str], patterns: list[re.Pattern[str]], every: bool) -> Check:
    """``unevaluatedProperties: false`` for an instance whose other checks pass."""
    if every:
        return _always

    def none_unevaluated(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        for key in value:
            if key not in names and not any(p.search(key) for p in patterns):
                return False
        return True

    return none_unevaluated


def _every(checks: list[Check]) -> Check:
    """Whether a value passes every one of ``checks`` (one closure; run once per forEach
    item and templated string, so each layer of generators saved counts at 10,000)."""
    if len(checks) == 1:
        return checks[0]
    if not checks:
        return _always

    def every(value: Any) -> bool:
        for check in checks:  # noqa: SIM110 - a loop: all() and its generator cost twice
            if not check(value):
                return False
        return True

    return every


def _always(_value: Any) -> bool:
    return True


def _never(_value: Any) -> bool:
    return False


def _own(composed: schema.Schema, node: dict[str, Any], depth: int) -> Check:
    checks: list[Check] = []
    kind = node.get("type")
    if kind is not None:
        checks.append(_of_kinds(kind if isinstance(kind, list) else [kind]))
    checks += _string_checks(node)
    if "minimum" in node or "maximum" in node:
        low, high = node.get("minimum"), node.get("maximum")
        checks.append(lambda v: not _TYPES["number"](v) or _within(v, low, high))
    checks += _exact_checks(node)
    if {"properties", "patternProperties", "additionalProperties", "required"} & set(node) or {
        "propertyNames",
        "minProperties",
        "maxProperties",
    } & set(node):
        checks.append(_object_check(composed, node, depth))
    if {"items", "minItems", "maxItems"} & set(node):
        checks.append(_array_check(composed, node, depth))
    return _every(checks)


def _of_kinds(names: list[str]) -> Check:
    """Whether a value is of one of the JSON Schema types ``names``."""
    kinds = [_TYPES[k] for k in names]
    if len(kinds) == 1:
        return kinds[0]

    def of_kinds(value: Any) -> bool:
        for is_kind in kinds:  # noqa: SIM110 - as in _every
            if is_kind(value):
                return True
        return False

    return of_kinds


def _exact_checks(node: dict[str, Any]) -> list[Check]:
    """``const`` and ``enum`` (of strings: ``_own_values``), the exclusive bounds and
    ``uniqueItems``, as jsonschema checks them."""
    checks: list[Check] = []
    if "const" in node:
        const = node["const"]
        checks.append(lambda v: isinstance(v, str) and v == const)
    if "enum" in node:
        allowed = frozenset(node["enum"])
        checks.append(lambda v: isinstance(v, str) and v in allowed)
    if "exclusiveMinimum" in node:
        low = node["exclusiveMinimum"]
        checks.append(lambda v: not _TYPES["number"](v) or v > low)
    if "exclusiveMaximum" in node:
        high = node["exclusiveMaximum"]
        checks.append(lambda v: not _TYPES["number"](v) or v < high)
    if node.get("uniqueItems") is True:
        checks.append(_unique)
    return checks


def _unique(value: Any) -> bool:
    """``uniqueItems``: strings compared as themselves; any other items by jsonschema's
    own equality (``True`` is not ``1``), imported then."""
    if not isinstance(value, list):
        return True
    if all(isinstance(v, str) for v in value):
        return len(set(value)) == len(value)
    from jsonschema import _utils

    return bool(_utils.uniq(value))


def _within(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def _string_checks(node: dict[str, Any]) -> list[Check]:
    checks: list[Check] = []
    if "pattern" in node:
        pattern = re.compile(node["pattern"])
        checks.append(lambda v: not isinstance(v, str) or pattern.search(v) is not None)
    least, most = node.get("minLength", 0), node.get("maxLength")
    if least or most is not None:
        checks.append(
            lambda v: (
                not isinstance(v, str) or (least <= len(v) and (most is None or len(v) <= most))
            )
        )
    return checks


def _object_check(composed: schema.Schema, node: dict[str, Any], depth: int) -> Check:
    declared = {k: compiled(composed, s, depth + 1) for k, s in node.get("properties", {}).items()}
    patterns = [
        (re.compile(p), compiled(composed, s, depth + 1))
        for p, s in node.get("patternProperties", {}).items()
    ]
    more = node.get("additionalProperties")
    additional = None if more is None else compiled(composed, more, depth + 1)
    names = None if "propertyNames" not in node else compiled(composed, node["propertyNames"])
    required = list(node.get("required", []))
    least, most = node.get("minProperties", 0), node.get("maxProperties")

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        if len(value) < least or (most is not None and len(value) > most):
            return False
        if required and any(key not in value for key in required):
            return False
        for key, child in value.items():
            if names is not None and not names(key):
                return False
            matched = [c for p, c in patterns if p.search(key)] if patterns else []
            if key in declared:
                matched.append(declared[key])
            elif not matched and additional is not None:
                matched.append(additional)
            for c in matched:
                if not c(child):
                    return False
        return True

    return check


def _array_check(composed: schema.Schema, node: dict[str, Any], depth: int) -> Check:
    items = None if "items" not in node else compiled(composed, node["items"], depth + 1)
    least, most = node.get("minItems", 0), node.get("maxItems")

    def check(value: Any) -> bool:
        if not isinstance(value, list):
            return True
        if len(value) < least or (most is not None and len(value) > most):
            return False
        return items is None or all(items(item) for item in value)

    return check


# --- the whole document, with each forEach list cut to its first item ---------------

_LIST_KEYS = frozenset({"type", "items", "minItems", *_ANNOTATIONS})  # at a forEach list
FOR_EACH = "forEach"


def cut_document(composed: schema.Schema, document: Any) -> tuple[Any, list[Rel]] | None:
    """The manifest with each ``forEach`` list of more than one item cut to its first,
    and the paths of the lists cut, when every other item is valid by the list's
    ``items`` subschema; None when there is nothing to cut, or an item is not valid
    (then the whole document is validated, for its exact problems). Validating the cut
    document gives the whole one's problems except any at a cut list or above it (whose
    messages may quote the list): a caller seeing one of those validates whole."""
    entries = document.get("endpoints") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return None
    root = {k: v for k, v in composed.document.items() if k not in ("$schema", "$id")}
    cut_entries, cut = list(entries), []
    for i, entry in enumerate(entries):
        items = entry.get(FOR_EACH) if isinstance(entry, dict) else None
        if not isinstance(items, list) or len(items) < 2:
            continue
        rel: Rel = ("endpoints", i, FOR_EACH)
        lists = _subschemas(composed, root, rel, document, 0)
        if lists is None or not all(_plain_list(s) for s in lists):
            return None
        each = _subschemas(composed, root, (*rel, 1), document, 0)
        if each is None:
            return None
        check = _every([compiled(composed, s) for s in each])
        for item in items[1:]:
            if not check(item):
                return None
        cut_entries[i] = {**entry, FOR_EACH: items[:1]}
        cut.append(rel)
    if not cut:
        return None
    return {**document, "endpoints": cut_entries}, cut


def _plain_list(node: Any) -> bool:
    """A list schema whose outcome for the cut list is its outcome for the whole one."""
    return isinstance(node, dict) and set(node) <= _LIST_KEYS and node.get("minItems", 0) <= 1
