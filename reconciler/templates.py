"""Endpoint templates: ``defaults`` merged into each entry, ``forEach`` expanded.

Many endpoints from one training pipeline without copy-paste. Expanding keeps each
value's origin: every assembled endpoint comes with the ``problems.Site`` of the
layers it was assembled from, so a problem is reported where the value was written.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler import problems
from reconciler.problems import Problems, Rel, Site

EACH_REF = problems.EACH_REF


def declared_at(site: Site, rel: Rel) -> str:
    """Where the value at ``rel`` of ``site`` is declared: its forEach item if templated."""
    ptr, _, raw = site.origin(rel)
    if site.item is not None and EACH_REF.search(str(raw)):
        return f"{site.ptr}/forEach/{site.item}"
    return ptr


def expand(
    ptr: str, entry: Mapping[str, Any], defaults: Mapping[str, Any], problems: Problems
) -> list[tuple[Site, dict[str, Any]]]:
    """The endpoints of one entry: ``defaults`` merged in, ``forEach`` expanded."""
    merged = template(entry, defaults)
    layers = ((ptr, entry), ("/defaults", defaults))
    refs = list(dict.fromkeys(_each_refs(merged)))  # once each, in document order
    items = entry.get("forEach")
    if items is None:
        if refs:
            problems.add(ptr, f"${{each.{refs[0]}}} used without forEach")
            return []
        return [(Site(problems, layers), merged)]
    unknown = [ref for ref in refs if not any(ref in item for item in items)]
    for ref in unknown:  # a key no item has: a typo in the template, said once where used
        Site(problems, layers).add(_first_use(merged, ref), f"no forEach item has a key {ref!r}")
    out = []
    substitution = Substitution(merged)
    origins: dict[Rel, tuple[str, str, Any]] = {}  # shared: every item has these layers
    needed = frozenset(refs)
    for j, item in enumerate(items):
        if not needed.issubset(item):
            missing = sorted(needed - set(item))
            if not set(missing) <= set(unknown):
                key = next(m for m in missing if m not in unknown)
                problems.add(
                    f"{ptr}/forEach/{j}", f"item has no key {key!r} used as ${{each.{key}}}"
                )
            continue
        values = {k: v if isinstance(v, str) else str(v) for k, v in item.items()}
        out.append((Site(problems, layers, j, origins=origins), substitution.instance(values)))
    return out


class Substitution:
    """A template's ``${each.KEY}`` strings, found once, so each endpoint of a ``forEach``
    entry is the template with only those strings substituted (at 10,000 endpoints,
    copying every value of the template once per endpoint was a tenth of a plan).
    The containers on the way to a templated string are copied; every other value is
    shared by the entry's endpoints, which is safe because nothing changes an assembled
    endpoint: checking reads it, and resolving references builds new containers."""

    def __init__(self, template: Any) -> None:
        self.template = template
        self.tree = _templated_tree(template)  # None: nothing templated

    def instance(self, item: Mapping[str, str]) -> Any:
        """The template with ``item``'s values in place of its ``${each.KEY}``."""
        if self.tree is None:
            return copy.deepcopy(self.template)
        return _fill(self.template, self.tree, item)


# Per key, the subtree holding templated strings; at one, its text split at each reference
# (``EACH_REF.split``: literal text, a key, literal text...), so filling it is a join.
_Tree = dict[Any, Any] | list[str]


def _templated_tree(value: Any) -> _Tree | None:
    """Where in ``value`` the strings with ``${each.KEY}`` are (None: nowhere)."""
    if isinstance(value, str):
        return EACH_REF.split(value) if "${" in value and EACH_REF.search(value) else None
    if isinstance(value, dict):
        children: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    else:
        return None
    tree = {key: sub for key, child in children if (sub := _templated_tree(child)) is not None}
    return tree or None


_ONE_REFERENCE = 3  # the split of a string with one reference: before, the key, after


def _fill(value: Any, tree: _Tree, item: Mapping[str, str]) -> Any:
    if isinstance(tree, list):  # a templated string: literal, key, literal, ...
        if len(tree) == _ONE_REFERENCE:
            return tree[0] + item[tree[1]] + tree[2]
        return "".join(part if i % 2 == 0 else item[part] for i, part in enumerate(tree))
    out = dict(value) if isinstance(value, dict) else list(value)
    for key, sub in tree.items():
        out[key] = _fill(value[key], sub, item)
    return out


def template(entry: Mapping[str, Any], defaults: Mapping[str, Any]) -> Any:
    """An entry with ``defaults`` merged in, before ``${each.KEY}`` is substituted: what
    every endpoint of the entry shares (see ``templatecheck``)."""
    return _merge(defaults, {k: v for k, v in entry.items() if k != "forEach"})


def _first_use(value: Any, ref: str, rel: Rel = ()) -> Rel:
    """The path of the first string in ``value`` that uses ``${each.REF}`` (``()`` if none)."""
    if isinstance(value, str):
        return rel if f"${{each.{ref}}}" in value else ()
    if not isinstance(value, dict | list):
        return ()
    for key, child in value.items() if isinstance(value, dict) else enumerate(value):
        found = _first_use(child, ref, (*rel, key))
        if found:
            return found
    return ()


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        merged = copy.deepcopy(base)
        for key, value in over.items():
            merged[key] = _merge(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    return copy.deepcopy(over)


def _each_refs(value: Any) -> list[str]:
    if isinstance(value, str):
        return EACH_REF.findall(value)
    if isinstance(value, dict):
        return [ref for v in value.values() for ref in _each_refs(v)]
    if isinstance(value, list):
        return [ref for v in value for ref in _each_refs(v)]
    return []


def _substitute(value: Any, item: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return EACH_REF.sub(lambda m: item[m.group(1)], value) if "${" in value else value
    if isinstance(value, dict):
        return {k: _substitute(v, item) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, item) for v in value]
    return value
