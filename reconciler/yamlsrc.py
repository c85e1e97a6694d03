"""Reading manifest sources, bounded, and YAML that remembers where every value came from.

JSON Schema reports errors as JSON paths; users fix files by line number. We
compose the YAML node graph ourselves so every JSON pointer maps to the line it
was written on, and so duplicate mapping keys (which PyYAML silently collapses)
become errors instead of last-one-wins surprises.

A manifest is input from a pull request, so nothing in it may exhaust the
machine: every file is read only if it is a regular file and only up to a limit
(a symlink to ``/dev/zero`` or a FIFO is refused, not read forever), and nesting
is counted while composing, so no depth of ``[[[[...`` or of aliases can reach
Python's recursion limit. JSON files get the same depth bound before ``json``
(which recurses) sees them.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_VALUES = 200_000  # a fleet of thousands of endpoints is far below; an alias bomb far above
MAX_DEPTH = 64  # a manifest needs 6 levels, a web service definition ~12; Python recurses ~1000
MAX_STRING = 65_536  # characters in one scalar: paths, names and URLs are far shorter
MAX_INT_BITS = 64  # what JSON readers and trainers handle; Python's int has no bound
MiB = 1024 * 1024
_CHUNK = 64 * 1024  # read size: a few pages
# A string (to its closing quote or the end, possessive: one pass however hostile), or a bracket.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\Z)|[\[\]{}]')


class SourceError(Exception):
    """A file that cannot be read as a manifest source: not regular, too large, unreadable."""


def read_bounded(path: str | Path, limit: int, what: str) -> bytes:
    """The bytes of the regular file at ``path``, refused if larger than ``limit`` bytes.

    Opened non-blocking, so a FIFO never hangs the open; checked with ``fstat`` on the
    open descriptor, so what is read is what was checked (a symlink is followed, but
    only to a regular file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise SourceError(f"cannot read {what}: {e.strerror}") from e
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SourceError(f"{what} is not a regular file")
        if info.st_size > limit:
            raise SourceError(f"{what} is larger than {_size(limit)} ({_size(info.st_size)})")
        data = _read_at_most(fd, limit + 1)  # st_size can lie (/proc, a growing file)
    except OSError as e:
        raise SourceError(f"cannot read {what}: {e.strerror}") from e
    finally:
        os.close(fd)
    if len(data) > limit:
        raise SourceError(f"{what} is larger than {_size(limit)}")
    return data


def _read_at_most(fd: int, n: int) -> bytes:
    chunks, total = [], 0
    while total < n:
        chunk = os.read(fd, min(_CHUNK, n - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _size(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n} bytes"


def json_too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON ``text`` nests arrays and objects more than ``limit`` deep
    (one linear scan; brackets inside strings do not count)."""
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return True
        elif token in "]}":
            depth -= 1
    return False


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
    converted: dict[str, str] = field(default_factory=dict)
    """JSON pointer → the text of an unquoted value YAML 1.1 turned into something a
    reader may not expect (``no`` → false, ``2026.10`` → 2026.1, ``0777`` → 511): the
    loader checks these against the schema (``problems.yaml11``)."""

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


class _Depth:
    """Refusing to compose deeper than ``MAX_DEPTH``: PyYAML's composer recurses once per
    level, so the depth is checked before each step down."""

    depth: int

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.depth >= MAX_DEPTH:
            line = self.peek_event().start_mark.line + 1  # type: ignore[attr-defined]
            raise YamlError(f"the document is nested more than {MAX_DEPTH} levels deep", line)
        self.depth += 1
        try:
            return super().compose_node(parent, index)  # type: ignore[misc,no-any-return]
        finally:
            self.depth -= 1


class _Loader(_Depth, yaml.SafeLoader):
    """PyYAML's safe loader (pure Python), with the depth bound."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.depth = 0


_CParser: Any
try:  # libyaml's parser, when PyYAML was built with it
    from yaml.cyaml import CParser as _CParser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - every wheel of PyYAML we lock has it
    _CParser = None


if _CParser is not None:

    class _FastLoader(_Depth, yaml.composer.Composer, _CParser, yaml.resolver.Resolver):  # type: ignore[misc]
        """libyaml's parser (C: 10x the pure-Python scanner's speed, which was a sixth of a
        10,000-endpoint plan) under PyYAML's own composer, so the depth bound and the
        nodes are as with ``_Loader``. Used only for documents it parses without error:
        errors are always ``_Loader``'s, so their messages do not depend on libyaml."""

        def __init__(self, text: str) -> None:
            _CParser.__init__(self, text)
            yaml.composer.Composer.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self.depth = 0


def _compose(text: str) -> yaml.Node | None:
    if _CParser is not None:
        fast = _FastLoader(text)
        try:
            return fast.get_single_node()
        except (yaml.YAMLError, YamlError):
            pass  # said again below, in _Loader's words
        finally:
            fast.dispose()
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def load(text: str) -> Located:
    """Parse one YAML document; an empty document is ``None``."""
    quick = _direct(text)
    if quick is not None:
        return quick
    try:
        node = _compose(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise YamlError(f"invalid YAML: {_flat(e.problem or e.context)}", line) from e
    except yaml.YAMLError as e:
        raise YamlError(f"invalid YAML: {e}", None) from e
    located = Located(None)
    if node is not None:
        try:
            located.data = _build(node, "", located, ())
        except yaml.YAMLError as e:  # e.g. an unknown tag (!foo, !!python/object)
            mark = getattr(e, "problem_mark", None)
            raise YamlError(
                f"invalid YAML: {_flat(getattr(e, 'problem', None) or e)}",
                mark.line + 1 if mark else None,
            ) from e
    return located


class _Unusual(Exception):
    """What ``_direct`` leaves to the composer (see there)."""


_RESOLVER = yaml.resolver.Resolver()
_MERGE = "tag:yaml.org,2002:merge"
# Frames of collections being built, below the depth bound with room to spare: a deeper
# document is left to the composer, which says where it is too deep.
_DIRECT_DEPTH = MAX_DEPTH - 2


def _direct(text: str) -> Located | None:
    """The document built straight from libyaml's events, in one pass, with no node tree
    (composing ~50,000 nodes and walking them again was a third of loading a
    10,000-endpoint manifest); None for a document it leaves to the composer and
    ``_build``: one libyaml cannot parse, or with an anchor, an alias or an explicit tag,
    or anything ``_build`` refuses or bounds (a duplicate or non-scalar key, a merge key,
    a long string, a large integer, too many values, deep nesting). So every error, and
    every document it does not build, is exactly what the composer's path makes of it."""
    if _CParser is None:  # pragma: no cover - every wheel of PyYAML we lock has libyaml
        return None
    parser = _CParser(text)
    try:
        return _from_events(parser)
    except (yaml.YAMLError, _Unusual, ValueError, OverflowError):
        return None
    finally:
        parser.dispose()


def _from_events(parser: Any) -> Located:
    get = parser.get_event
    get()  # the stream's start
    event = get()
    located = Located(None)
    if isinstance(event, yaml.StreamEndEvent):
        return located  # an empty document
    lines, scalars = located.lines, _Scalars()
    # Per open collection: [the container, its pointer, whether a mapping, its pending
    # key, that key's line, the pointer of that key's value].
    frames: list[list[Any]] = []
    top: list[Any] | None = None
    event = get()
    while True:
        if top is not None and top[2] and top[3] is None and type(event) is not _MAP_END:
            _key(event, top)  # a mapping's key
            event = get()
            continue
        if top is not None and isinstance(event, _ENDS):
            value = frames.pop()[0]
        else:
            if event.anchor is not None or len(lines) > MAX_VALUES:
                raise _Unusual
            ptr = "" if top is None else top[5] if top[2] else f"{top[1]}/{len(top[0])}"
            lines[ptr] = event.start_mark.line + 1
            if type(event) is not yaml.ScalarEvent:
                frames.append(top := _frame(event, ptr, len(frames)))
                event = get()
                continue
            value = _direct_scalar(event, scalars)
            if not event.style and surprising(event.value, value):  # plain: libyaml's ""
                located.converted[ptr] = event.value
        top = frames[-1] if frames else None
        if top is None:
            break
        if top[2]:
            top[0][top[3]] = value
            lines[top[5]] = top[4]  # a key's value: the key's line
            top[3] = None
        else:
            top[0].append(value)
        event = get()
    if not isinstance(get(), yaml.DocumentEndEvent) or not isinstance(get(), yaml.StreamEndEvent):
        raise _Unusual  # another document follows: the composer says so
    located.data = value
    return located


_MAP_END = yaml.MappingEndEvent
_ENDS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _frame(event: Any, ptr: str, depth: int) -> list[Any]:
    """The frame of the collection ``event`` starts at ``ptr`` (an alias, the stream
    ending inside a collection, a tag or deep nesting: left to the composer)."""
    mapping = type(event) is yaml.MappingStartEvent
    if not mapping and type(event) is not yaml.SequenceStartEvent:
        raise _Unusual
    if event.tag is not None or depth >= _DIRECT_DEPTH:
        raise _Unusual
    return [{} if mapping else [], ptr, mapping, None, 0, ""]


class _Scalars:
    """What building one document's scalars keeps: PyYAML's constructor (for the values
    that are not strings) and the tag each plain text resolved to."""

    def __init__(self) -> None:
        self.constructor = yaml.constructor.SafeConstructor()
        self.tags: dict[str, str] = {}


def _key(event: Any, frame: list[Any]) -> None:
    """``event`` as the key of the mapping ``frame`` is building."""
    if not isinstance(event, yaml.ScalarEvent) or event.anchor is not None:
        raise _Unusual
    if event.tag is not None or len(event.value) > MAX_STRING:
        raise _Unusual
    if event.value == "<<" and _resolved(event, {}) == _MERGE:  # the one text that resolves so
        raise _Unusual
    if event.value in frame[0]:
        raise _Unusual  # a duplicate key
    mark: Any = event.start_mark  # libyaml marks every event
    key = event.value
    frame[3], frame[4] = key, mark.line + 1
    frame[5] = f"{frame[1]}/{escape(key) if '~' in key or '/' in key else key}"


def _resolved(event: Any, memo: dict[str, str]) -> str:
    """The tag YAML resolves an untagged scalar to, as the composer resolves it: a quoted
    one is a string (only plain scalars have implicit types, with no path resolvers), a
    plain one as its text resolves (``memo``: per document, which repeats its words)."""
    if not event.implicit[0] and not _RESOLVER.yaml_path_resolvers:
        return _STR
    tag = memo.get(event.value)
    if tag is None:
        tag = memo[event.value] = _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
    return tag


def _direct_scalar(event: Any, scalars: _Scalars) -> Any:
    """As ``_scalar`` builds the scalar of ``event`` (no explicit tag: see ``_direct``)."""
    if event.tag is not None or len(event.value) > MAX_STRING:
        raise _Unusual
    tag = _resolved(event, scalars.tags)
    if tag == _STR:
        return event.value
    node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
    value = scalars.constructor.construct_object(node, deep=True)
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise _Unusual
    return value


def _flat(text: object) -> str:
    return " ".join(str(text).split())


def _build(node: yaml.Node, ptr: str, located: Located, above: tuple[int, ...]) -> Any:
    """The value of ``node``; ``above`` holds the ids of the containers it is nested in
    (aliases let a small document nest deeper than it was composed, or into itself)."""
    lines = located.lines
    line = node.start_mark.line + 1
    if len(lines) > MAX_VALUES:
        raise YamlError(
            f"the document expands to more than {MAX_VALUES} values (aliases nested too deep?)",
            line,
        )
    lines[ptr] = line
    if isinstance(node, yaml.ScalarNode):
        if len(node.value) > MAX_STRING:
            raise YamlError(f"a value is longer than {MAX_STRING} characters", line)
        value = _scalar(node, line)
        if not node.style and surprising(node.value, value):  # plain: None, or "" from libyaml
            located.converted[ptr] = node.value
        return value
    if id(node) in above:
        raise YamlError("invalid YAML: an alias refers to itself", line)
    if len(above) >= MAX_DEPTH:
        raise YamlError(f"the document is nested more than {MAX_DEPTH} levels deep", line)
    inner = (*above, id(node))
    if isinstance(node, yaml.MappingNode):
        return _build_mapping(node, ptr, located, inner)
    return [_build(item, f"{ptr}/{i}", located, inner) for i, item in enumerate(node.value)]


_STR = "tag:yaml.org,2002:str"


def _scalar(node: yaml.ScalarNode, line: int) -> Any:
    """Let PyYAML's safe constructor resolve the tag (int, float, bool, null, timestamp);
    a value it cannot build (``2001-13-45``, an int of 5,000 digits) is a YAML error."""
    if node.tag == _STR:  # what the constructor makes of a string: its text, as it is
        return node.value
    too_big = YamlError(f"invalid YAML: an integer larger than {MAX_INT_BITS} bits", line)
    try:
        value = yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    except (ValueError, OverflowError) as e:
        if str(node.tag).endswith(":int"):  # Python refuses to parse 4,300+ digits
            raise too_big from e
        raise YamlError(f"invalid YAML: {_flat(node.value)[:40]!r}: {e}", line) from e
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise too_big
    return value


# Unquoted text YAML 1.1 reads as a number YAML 1.2 (and most people) would not: a leading
# zero (octal), or base-60 "sexagesimal" digits separated by colons.
_OCTAL = re.compile(r"[-+]?0[0-7_]+")
_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_BOOLEAN_WORDS = frozenset({"true", "false"})  # the only spellings YAML 1.2 keeps


def surprising(text: str, value: Any) -> bool:
    """Whether YAML 1.1 turned the unquoted ``text`` into ``value`` in a way that loses
    or changes what was written: a boolean spelled ``yes``/``no``/``on``/``off``/``y``/``n``,
    an octal or base-60 number, a float whose digits do not read back (``2026.10``),
    or a date."""
    if isinstance(value, bool):
        return text.lower() not in _BOOLEAN_WORDS
    if isinstance(value, int):
        return bool(_OCTAL.fullmatch(text) or _SEXAGESIMAL.fullmatch(text))
    if isinstance(value, float):
        return bool(_SEXAGESIMAL.fullmatch(text)) or (
            not text.lower().lstrip("+-").startswith(".") and repr(value) != text
        )
    return isinstance(value, dt.date)


def _build_mapping(
    node: yaml.MappingNode, ptr: str, located: Located, above: tuple[int, ...]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            raise YamlError("mapping keys must be plain scalars", line)
        if key_node.tag == "tag:yaml.org,2002:merge":
            raise YamlError("YAML merge keys (<<) are not supported", line)
        key = str(key_node.value)
        if len(key) > MAX_STRING:
            raise YamlError(f"a key is longer than {MAX_STRING} characters", line)
        if key in out:
            raise YamlError(f"duplicate key {key!r}", line)
        child = f"{ptr}/{escape(key)}"
        out[key] = _build(value_node, child, located, above)
        located.lines[child] = line
    return out
