"""Field diffs between two essences, scoped to the fields the reconciler owns.

The result is a flat, hashable tuple of ``(op, path, old, new)`` so a plan can
carry it as a value. Scoping happens before comparing: anything the server
fills in (ids, timestamps, provisioning state) is outside the scope and can
never show up as a change.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from reconciler import model

FieldChange = tuple[str, str, model.JSON, model.JSON]  # (op, dotted path, old, new)
EMPTY: tuple[FieldChange, ...] = ()

# deepdiff report types → our three operations.
_OPS = {
    "values_changed": "change",
    "type_changes": "change",
    "dictionary_item_added": "add",
    "dictionary_item_removed": "remove",
    "iterable_item_added": "add",
    "iterable_item_removed": "remove",
}


def scoped(
    essence: Mapping[str, model.JSON] | None, scope: tuple[str, ...]
) -> dict[str, model.JSON]:
    """Only the keys in ``scope``, with missing ones as None."""
    return {key: (essence or {}).get(key) for key in scope}


def diff_iter(
    before: Mapping[str, model.JSON] | None,
    after: Mapping[str, model.JSON] | None,
    scope: tuple[str, ...],
) -> Iterator[FieldChange]:
    """Yield one ``(op, path, old, new)`` per differing owned field."""
    from deepdiff import DeepDiff  # here, not above: it imports numpy (half of start-up)

    old, new = scoped(before, scope), scoped(after, scope)
    tree = DeepDiff(old, new, view="tree", ignore_order=False)
    for report, op in _OPS.items():
        for level in sorted(tree.get(report, []), key=lambda lv: lv.path()):
            path = ".".join(str(p) for p in level.path(output_format="list"))
            yield (op, path, _plain(level.t1), _plain(level.t2))


def diff(
    before: Mapping[str, model.JSON] | None,
    after: Mapping[str, model.JSON] | None,
    scope: tuple[str, ...],
) -> tuple[FieldChange, ...]:
    """All owned-field differences, ordered by path."""
    return tuple(sorted(diff_iter(before, after, scope), key=lambda c: c[1]))


def _plain(value: object) -> model.JSON:
    """deepdiff marks absent sides with a sentinel; plans want None."""
    return None if type(value).__name__ == "NotPresent" else value
