"""YAML loading that remembers where every value came from.

JSON Schema reports errors as JSON paths; users fix files by line number. We
compose the YAML node graph ourselves so every JSON pointer maps to the line it
was written on, and so duplicate mapping keys (which PyYAML silently collapses)
become errors instead of last-one-wins surprises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_VALUES = 200_000  # a fleet of thousands of endpoints is far below; an alias bomb far above


class YamlError(Exception):
    """Malformed YAML or a duplicate key; ``line`` is 1-based."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class Located:
    """A loaded document plus ``lines``: JSON pointer → 1-based line."""

    data: Any
    lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, pointer: str) -> int | None:
        """The line of ``pointer``, or of its nearest ancestor that has one."""
        while True:
            if pointer in self.lines:
                return self.lines[pointer]
            if not pointer:
                return None
            pointer = pointer.rsplit("/", 1)[0]


def escape(token: str) -> str:
    """Escape one JSON-pointer token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


def pointer(parts: tuple[object, ...] | list[object]) -> str:
    """The JSON pointer of a path such as jsonschema's ``error.absolute_path``."""
    return "".join(f"/{escape(str(p))}" for p in parts)


def load(text: str) -> Located:
    """Parse one YAML document; an empty document is ``None``."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise YamlError(f"invalid YAML: {_flat(e.problem or e.context)}", line) from e
    except yaml.YAMLError as e:
        raise YamlError(f"invalid YAML: {e}", None) from e
    located = Located(None)
    if node is not None:
        try:
            located.data = _build(node, "", located.lines)
        except RecursionError:
            raise YamlError("invalid YAML: an alias refers to itself", None) from None
        except yaml.YAMLError as e:  # e.g. an unknown tag (!foo, !!python/object)
            mark = getattr(e, "problem_mark", None)
            raise YamlError(
                f"invalid YAML: {_flat(getattr(e, 'problem', None) or e)}",
                mark.line + 1 if mark else None,
            ) from e
    return located


def _flat(text: object) -> str:
    return " ".join(str(text).split())


def _build(node: yaml.Node, ptr: str, lines: dict[str, int]) -> Any:
    if len(lines) > MAX_VALUES:
        raise YamlError(
            f"the document expands to more than {MAX_VALUES} values (aliases nested too deep?)",
            node.start_mark.line + 1,
        )
    lines[ptr] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        return _build_mapping(node, ptr, lines)
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, f"{ptr}/{i}", lines) for i, item in enumerate(node.value)]
    # Scalars: let PyYAML's safe constructor resolve the tag (int, float, bool, null...).
    return yaml.SafeLoader("").construct_object(node, deep=True)


def _build_mapping(node: yaml.MappingNode, ptr: str, lines: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise YamlError("mapping keys must be plain scalars", key_node.start_mark.line + 1)
        if key_node.tag == "tag:yaml.org,2002:merge":
            raise YamlError("YAML merge keys (<<) are not supported", key_node.start_mark.line + 1)
        key = str(key_node.value)
        if key in out:
            raise YamlError(f"duplicate key {key!r}", key_node.start_mark.line + 1)
        child = f"{ptr}/{escape(key)}"
        out[key] = _build(value_node, child, lines)
        lines[child] = key_node.start_mark.line + 1
    return out
