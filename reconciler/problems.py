"""Manifest problems: each distinct one reported once, at the line where it is written.

An endpoint is assembled from up to three places (``defaults``, its entry in
``endpoints``, one ``forEach`` item), and it is checked only once assembled. A
problem found there belongs to where the offending value was written, not to the
assembled endpoint: a bad ``defaults`` value is one problem, however many
endpoints inherit it. So a :class:`Site` knows, for any field of the assembled
endpoint, the layer that wrote it; problems are keyed by that pointer and their
message, which makes repeats collapse into one.

``forEach`` adds one rule. A problem in a templated value (one that contains
``${each.KEY}``) found for *every* item of its entry is the template's problem and
is reported once, at the template; one found for some items only is reported at
each of those items. And a value that could not be resolved (an unset
``${env:NAME}``) is *poisoned*: its own problem is reported, the knock-on problems
of checking what it left (``file not found: ``) are not.

Schema violations are located here too, with the same care: an unknown key at its
own line, and only a key that no subschema declares counts as unknown.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the validator is made in schema.composed; --help needs none
    import jsonschema

from reconciler import errors, redact, schema, yamlsrc

SHOW_CHARS = 200  # of a value quoted in a message: enough to recognise it
EACH_REF = re.compile(r"\$\{each\.([A-Za-z_][A-Za-z0-9_]*)\}")
Rel = tuple[str | int, ...]  # a path inside an assembled value: keys and list indexes


@dataclass
class Problems:
    """Collects located problems for one manifest file, each distinct one once."""

    file: str
    located: yamlsrc.Located
    schema: schema.Schema = field(default_factory=lambda: schema.composed(()))
    """The manifest schema to validate against: the core with the registered backends'."""
    found: dict[tuple[str, str], int | None] = field(default_factory=dict)  # (ptr, msg) → line
    secrets: set[str] = field(default_factory=set)  # values seen in secret fields
    # Each file path checked so far: (base, as written) → (the file, or None and why).
    files: dict[tuple[Path, str], tuple[Path | None, str | None]] = field(default_factory=dict)
    # Templated problems of the forEach entry being assembled: (ptr, label, msg) → items.
    pending: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)

    def add(self, ptr: str, message: str, *, line: int | None = None) -> None:
        """One problem at ``ptr`` (at ``line``, else the line ``ptr`` was written on)."""
        self.found.setdefault((ptr, message), line or self.located.line_of(ptr))

    def __len__(self) -> int:
        return len(self.found)

    def flush(self, entry: str, items: int) -> None:
        """Place the templated problems of the ``forEach`` entry at ``entry`` (with
        ``items`` items assembled): at the template if every item has it, else per item."""
        for (ptr, label, message), where in self.pending.items():
            if len(where) == items:
                self.add(ptr, message)
                continue
            for j in where:
                self.add(f"{entry}/forEach/{j}", f"{label}: {message}" if label else message)
        self.pending.clear()

    def raise_if_any(self) -> None:
        """Raise every problem at once, in line order; a secret's value never appears in
        one, even where the same variable was also used in an ordinary field."""
        if not self.found:
            return
        scrub = redact.Redactor(self.secrets)
        ordered = sorted(self.found.items(), key=lambda kv: kv[1] or 0)  # stable: as found
        raise errors.ManifestError(
            [scrub(self._format(ptr, msg, line)) for (ptr, msg), line in ordered]
        )

    def _format(self, ptr: str, message: str, line: int | None) -> str:
        at = f"{self.file}:{line}" if line else self.file
        return f"{at}: {ptr or '/'}: {message}"


@dataclass
class Site:
    """One assembled value (an endpoint, a trainer) and the layers it was assembled from.

    ``layers`` are ``(pointer, raw value)`` pairs, most specific first: for an endpoint
    its entry in ``endpoints``, then ``defaults``. ``item`` is the ``forEach`` item's
    index when there is one."""

    problems: Problems
    layers: tuple[tuple[str, Any], ...]
    item: int | None = None
    poisoned: list[Rel] = field(default_factory=list)
    origins: dict[Rel, tuple[str, str, Any]] = field(default_factory=dict, repr=False)
    """``origin`` by path: it depends on ``layers`` alone, so the sites assembled from the
    same layers (a ``forEach`` entry's endpoints) share one (``templates.expand``): at
    10,000 endpoints, walking the layers for every endpoint was a tenth of a load."""

    @property
    def ptr(self) -> str:
        """The pointer of the most specific layer (the endpoint's entry)."""
        return self.layers[0][0]

    def add(self, rel: Rel, message: str, *, uses: Iterable[Rel] | None = None) -> None:
        """A problem with the value at ``rel`` (or one drawn from the values at ``uses``),
        dropped when one of those values is poisoned: its cause is already reported."""
        if any(self.is_poisoned(u) for u in (uses if uses is not None else (rel,))):
            return
        ptr, label, raw = self.origin(rel)
        if self.item is not None and _templated(raw):
            self.problems.pending.setdefault((ptr, label, message), []).append(self.item)
        else:
            self.problems.add(ptr, message)

    def poison(self, rel: Rel) -> None:
        """The value at ``rel`` could not be resolved; its problem is already reported."""
        self.poisoned.append(rel)

    def is_poisoned(self, rel: Rel) -> bool:
        """Whether the value at ``rel`` is (inside) a value that could not be resolved."""
        return bool(self.poisoned) and any(rel[: len(p)] == p for p in self.poisoned)

    def origin(self, rel: Rel) -> tuple[str, str, Any]:
        """Where the value at ``rel`` was written: its pointer, its path inside its layer
        (for messages), and the raw value written there. The layer that holds the
        longest part of ``rel`` wrote it; on a tie, the more specific one."""
        found = self.origins.get(rel)
        if found is None:
            found = self.origins[rel] = _origin(self.layers, rel)
        return found


def _origin(layers: tuple[tuple[str, Any], ...], rel: Rel) -> tuple[str, str, Any]:
    best_ptr, best_depth, best_raw = layers[0][0], -1, None
    for ptr, raw in layers:
        depth, value = _walk(raw, rel)
        if depth > best_depth:
            best_ptr, best_depth, best_raw = ptr, depth, value
    inside = yamlsrc.pointer(list(rel[:best_depth]))
    return best_ptr + inside, inside.lstrip("/"), best_raw


def _walk(value: Any, rel: Rel) -> tuple[int, Any]:
    """How many steps of ``rel`` exist in ``value``, and the value reached."""
    depth = 0
    for part in rel:
        in_map = isinstance(value, dict) and part in value
        in_list = isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value)
        if not (in_map or in_list):
            break
        value = value[part]
        depth += 1
    return depth, value


def _templated(value: Any) -> bool:
    """Whether ``value`` (or anything in it) uses ``${each.KEY}``."""
    if isinstance(value, str):
        return EACH_REF.search(value) is not None
    if isinstance(value, dict):
        return any(_templated(v) for v in value.values())
    if isinstance(value, list):
        return any(_templated(v) for v in value)
    return False


# --- schema violations, located -------------------------------------------------


def validate(instance: Any, problems: Problems) -> None:
    """Add one problem per schema violation of the whole document. A ``forEach`` list is
    validated item by item with compiled checks, and the document with each list cut to
    its first item (``templatecheck.cut_document``: at 10,000 items, jsonschema over the
    whole document was a third of a plan); where that could say less, or other words,
    than validating the whole document, the whole document is validated."""
    for rel, message, line in _document_violations(problems.schema, instance):
        ptr = yamlsrc.pointer(list(rel))
        problems.add(ptr, message, line=problems.located.line_of(line) if line else None)


def _document_violations(
    composed: schema.Schema, instance: Any
) -> list[tuple[Rel, str, str | None]]:
    from reconciler import templatecheck  # it builds on this module's checks

    if templatecheck.checker(composed)(instance):
        return []  # valid: jsonschema's verdict too, without importing it
    cut = templatecheck.cut_document(composed, instance)
    if cut is not None:
        document, lists = cut
        found = _violations(composed, composed.validator, document)
        if not any(rel == at[: len(rel)] for rel, _message, _line in found for at in lists):
            return found  # none at a cut list or above it: the same as the whole document's
    return _violations(composed, composed.validator, instance)


def validate_at(site: Site, instance: Any, ref: str) -> bool:
    """Check an assembled value against the ``$defs`` entry ``ref``; whether it is valid
    (jsonschema words the problems of an invalid one)."""
    from reconciler import templatecheck  # it builds on this module's checks

    composed = site.problems.schema
    if templatecheck.checker(composed, ref)(instance):
        return True
    valid = True
    for rel, message, _ in _violations(composed, composed.at(ref), instance):
        site.add(rel, message)
        valid = False
    return valid


def _violations(
    composed: schema.Schema, validator: jsonschema.Draft202012Validator, instance: Any
) -> list[tuple[Rel, str, str | None]]:
    """Each schema violation as (path, message, pointer of the line to cite or None).

    An unknown key is cited at its own line, one problem per key; and only keys that
    no subschema declares are unknown (a subschema failing for another reason, an
    invalid name, drops its annotations, which would make every key look unknown)."""
    out: list[tuple[Rel, str, str | None]] = []
    found = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    missing_at: set[Rel] = set()
    for error in found:
        leaf = _deepest(error)
        rel: Rel = tuple(leaf.absolute_path)
        if leaf.validator == "required" and isinstance(leaf.instance, dict):
            if rel not in missing_at:  # one line per place, naming every missing key
                missing_at.add(rel)
                out.append((rel, _missing(leaf.validator_value, leaf.instance), None))
            continue
        if leaf.validator not in {"unevaluatedProperties", "additionalProperties"}:
            out.append((rel, _message(composed, leaf), None))
            continue
        declared = _declared(composed, leaf.schema)
        for key in leaf.instance:
            if key not in declared:
                at = yamlsrc.pointer([*rel, key])
                out.append((rel, f"unknown key: {key!r}{did_you_mean(key, declared)}", at))
    return _unshadowed(out)


NO_BRANCH = "is not valid under any of the given schemas"  # jsonschema's oneOf/anyOf message


def _unshadowed(found: list[tuple[Rel, str, str | None]]) -> list[tuple[Rel, str, str | None]]:
    """Drop "{...the whole value...} is not valid under any of the given schemas" where an
    unknown key at the same place says why (a misspelt key matches no backend's trainer)."""
    unknown = {rel for rel, message, _ in found if message.startswith("unknown key: ")}
    return [f for f in found if not (f[0] in unknown and f[1].endswith(NO_BRANCH))]


SIMILAR = 0.75  # difflib ratio for "did you mean": catches one or two typos, not other words


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'entrypoint'?)`` when ``word`` is close to one of ``known``
    (case aside), else empty."""
    by_lower = {k.lower(): k for k in sorted(known)}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=SIMILAR)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""


def _missing(required: Any, instance: dict[str, Any]) -> str:
    """``'asset' is a required property``, or every missing key of one place in one line."""
    keys = [repr(k) for k in required if k not in instance]
    if len(keys) == 1:
        return f"{keys[0]} is a required property"
    return f"{', '.join(keys[:-1])} and {keys[-1]} are required properties"


def _declared(composed: schema.Schema, subschema: Any) -> set[str]:
    """The property names ``subschema`` declares, through ``$ref`` and ``allOf``."""
    if not isinstance(subschema, dict):
        return set()
    names = set(subschema.get("properties", {}))
    ref = subschema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        names |= _declared(composed, composed.definition(ref.removeprefix("#/$defs/")))
    for part in subschema.get("allOf", []):
        names |= _declared(composed, part)
    return names


def _deepest(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """The most specific cause of an allOf/anyOf failure (jsonschema's best_match)."""
    import jsonschema.exceptions

    return jsonschema.exceptions.best_match([error]) if error.context else error


def _message(composed: schema.Schema, error: jsonschema.ValidationError) -> str:
    if "secretRef" in "/".join(map(str, error.schema_path)) or _is_secret_ref(composed, error):
        # Never echo the instance: it may be the secret itself.
        return "secret values must be written as ${env:NAME}, never literally"
    return str(error.message)


def _is_secret_ref(composed: schema.Schema, error: jsonschema.ValidationError) -> bool:
    pattern = error.schema.get("pattern") if isinstance(error.schema, dict) else None
    return bool(pattern == composed.definition("secretRef")["pattern"])


# --- values YAML 1.1 converts silently -------------------------------------------

MAX_PROBES = 1000  # values probed, ~1 ms each (a cut-down document); real manifests have few
_TYPED = "parameters"  # values passed to the trainer as typed JSON: 0.10 there means 0.1
_CHANGES_IN_YAML12 = (bool, int)  # yes/no/on/off, 0777, 1:30 read otherwise by YAML 1.2


def yaml11(instance: Any, problems: Problems) -> None:
    """A problem for each unquoted value YAML 1.1 converted (``yamlsrc.surprising``) where
    the schema accepts the text as written, a string: ``version: 2026.10`` (read as
    2026.1), ``location: no`` (false), ``mode: 0777`` (511). The fix is to quote it. In
    trainer parameters, where numbers are meant as numbers, a float's lost trailing zero
    or a date is not a problem; a value YAML 1.2 reads differently still is."""
    for ptr, text in list(problems.located.converted.items())[:MAX_PROBES]:
        parent, rel = _container(instance, ptr)
        if parent is None:
            continue
        value = parent[rel[-1]]
        typed = _TYPED in ptr.split("/")
        if typed and not isinstance(value, _CHANGES_IN_YAML12):
            continue
        if not _accepts(problems, instance, rel, text):
            continue  # a string is no better there: the schema says what is wrong, if anything
        for found in [k for k in problems.found if k[0] == ptr]:
            del problems.found[found]  # "False is not of type 'string'": this says why
        problems.add(ptr, _converted(text, value))


def _converted(text: str, value: Any) -> str:
    """``unquoted no is read as the boolean false (YAML 1.1); quote it: "no"``, and the
    other spelling when the converted value may be what was meant."""
    if isinstance(value, bool):
        word = str(value).lower()
        read, instead = f"the boolean {word}", f", or write {word} if a boolean is meant"
    elif isinstance(value, int):
        read, instead = f"the number {value}", f", or write {value} if that number is meant"
    elif isinstance(value, float):
        read, instead = f"the number {value!r}", ""
    else:
        read, instead = f"the date {value.isoformat()}", ""
    quoted = f'"{show(text)}"'
    return f"unquoted {show(text)} is read as {read} (YAML 1.1); quote it: {quoted}{instead}"


def _container(instance: Any, ptr: str) -> tuple[Any, Rel]:
    """The mapping or list holding the value at ``ptr`` (None when there is none) and
    the path of the value."""
    parent: Any = None
    rel: Rel = ()
    value = instance
    for token in ptr.split("/")[1:]:
        parent = value
        key: str | int = token.replace("~1", "/").replace("~0", "~")
        if isinstance(parent, list) and str(key).isdigit() and int(key) < len(parent):
            key = int(key)
        elif not isinstance(parent, dict) or key not in parent:
            return None, ()
        rel = (*rel, key)
        value = parent[key]
    return parent, rel


def _accepts(problems: Problems, instance: Any, rel: Rel, text: str) -> bool:
    """Whether the schema accepts ``text`` in place of the value at ``rel``. Checked on
    the document cut down to the path there (one item of each list on it), so a probe
    costs the same for a manifest of three endpoints or of ten thousand."""
    probe, at = _with(instance, rel, text)
    found = _violations(problems.schema, problems.schema.validator, probe)
    return not any(where == at for where, _message, _line in found)


def _with(value: Any, rel: Rel, text: str) -> tuple[Any, Rel]:
    """A copy of ``value`` along ``rel`` with ``text`` at its end and, of each list on the
    way, only the item on the path; the path to ``text`` in it. Items of a list share one
    schema (``items``), and only problems at that path are looked at."""
    if not rel:
        return text, ()
    head, rest = rel[0], rel[1:]
    inner, at = _with(value[head], rest, text)
    if isinstance(value, list):
        return [inner], (0, *at)
    return {**value, head: inner}, (head, *at)


# --- checks every backend's may share ---------------------------------------------


def show(text: str) -> str:
    """``text`` cut for a message: a value can be up to ``yamlsrc.MAX_STRING`` long."""
    return text if len(text) <= SHOW_CHARS else f"{text[:SHOW_CHARS]}..."


def existing_file(base: Path, rel_path: str, site: Site, rel: Rel) -> Path | None:
    """The regular file at ``rel_path`` (relative to ``base``, the manifest's folder), or
    None with a problem at ``rel`` of ``site``. Each distinct path is resolved once per
    manifest (10,000 endpoints naming one input were 170,000 ``lstat`` calls); its
    problem, if any, is added at every site that names it, as before."""
    if site.is_poisoned(rel):
        return None  # what is left of an unresolved value: its problem is reported
    key = (base, rel_path)
    if key not in site.problems.files:
        site.problems.files[key] = _file_check(base, rel_path)
    path, problem = site.problems.files[key]
    if problem is not None:
        site.add(rel, problem)
    return path


def _file_check(base: Path, rel_path: str) -> tuple[Path | None, str | None]:
    """The regular file at ``rel_path``, or why there is none."""
    try:
        path = (base / rel_path).resolve()
        regular = path.is_file()
        exists = regular or path.exists()
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a name too long, a symlink loop
        return None, f"not a usable file name: {show(rel_path)}"
    if not regular:
        found = f"not a file: {show(rel_path)}" if exists else f"file not found: {show(rel_path)}"
        return None, found
    return path, None
