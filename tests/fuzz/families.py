"""The three input families: manifests, saved plans and state files, each as a hypothesis
strategy and a check that runs the CLI on one input and judges it (``harness``).

Manifests start from the small project's manifest (the schema's shape) and are mutated
as data (wrong types, missing and extra keys, odd unicode, huge and deep values,
``${env:}``/``${each.}`` references) and as text (tags, anchors, aliases, duplicate keys,
tabs, binary bytes, truncation). Plans start from a real ``plan -out`` of the small
project with changes pending, mutated with the checksum left as is or recomputed the
way ``planfile._checksum`` does. State files start from a converged state directory,
with one file mutated, truncated, or replaced by junk, a symlink, a directory or a FIFO.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from reconciler import planfile
from tests.fuzz import harness

PATH_DEPTH = 40  # mutation points go no deeper: generated values nest up to thousands
SPECIAL_STRINGS = (
    "${env:RETRAIN_TEST_SECRET}",
    "${env:RETRAIN_FUZZ_UNSET}",
    "${env:}",
    "${env:A B}",
    "${each.loc}",
    "${each.missing}",
    "${each.}",
    "${",
    "$${env:X}",
    "../../outside",
    "/etc/hostname",
    ".",
    "",
    " ",
    "tiny.py:nope",
    "tiny.py:train",
    "nope.py:train",
    "data/a.csv",
    "data/missing.csv",
    "webservice.json",
    "tiny.py",
    "Score",
    "Mean Absolute Error",
    "local",
    "azure",
    "retrain/v1",
    "retrain/v2",
    "Bike Demand [trained model]",
    "local://models/../x/model.ilearner",
    "\u202egnp.\u0000",
    "\ud7ff\ufeff\U0001f600",
    "x" * 5000,
    "1e400",
    "-0",
    "NaN",
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(SPECIAL_STRINGS),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def nested(depth: int) -> Any:
    value: Any = "deep"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def big_values(max_depth: int) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(min_value=1, max_value=max_depth).map(nested),
        st.integers(min_value=1, max_value=20000).map(lambda n: ["x"] * n),
        st.integers(min_value=1, max_value=300).map(lambda n: [{"loc": f"l{i}"} for i in range(n)]),
        st.integers(min_value=1, max_value=1 << 20).map(lambda n: "y" * n),
    )


YAML_ODDITIES = (
    "!!python/object/apply:os.system ['true']",
    "!custom tagged",
    "!!binary aGVsbG8=",
    "&anchor value",
    "*undefined_alias",
    "<<: {trainer: tiny}",
    "\tkey: tab-indented",
    "apiVersion: retrain/v1",
    "endpoints: []",
    "? [complex, key]\n: value",
    "%YAML 1.1\n---",
    "---\nsecond: document",
    "key: 'unterminated",
    "key: [1, 2",
    "x: &a [*a]",
    "x: 0o777",
    "x: 2001-12-14t21:59:43.10-05:00",
    "x: .inf",
    "x: ~",
)
BINARY = (b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\x1b[31m", b"\r", b"\x85", b"\xe2\x80\xa8")


# -- manifests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestInput:
    data: bytes

    def __repr__(self) -> str:
        return f"ManifestInput({self.data[:2000]!r}{'...' if len(self.data) > 2000 else ''})"


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON-like value (the root too), down to ``PATH_DEPTH`` levels."""
    found = [prefix]
    if len(prefix) >= PATH_DEPTH:
        return found
    if isinstance(value, dict):
        for k, v in value.items():
            found += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += paths(v, (*prefix, i))
    return found


def mutate(
    doc: Any,
    draw: Callable[..., Any],
    replacement: st.SearchStrategy[Any],
    log: list[str] | None = None,
) -> Any:
    """``doc`` with one node replaced, removed, or given an extra key (noted in ``log``)."""
    where = draw(st.sampled_from(paths(doc)))
    op = draw(st.sampled_from(("replace", "delete", "extra", "wrap")))
    if log is not None:
        log.append(f"{op} /{'/'.join(map(str, where))}")
    if not where:
        return draw(replacement) if op != "wrap" else [doc]
    parent: Any = doc
    for step in where[:-1]:
        parent = parent[step]
    last = where[-1]
    if op == "replace":
        parent[last] = draw(replacement)
        if log is not None:
            log[-1] += f" = {str(parent[last])[:120]!r}"
    elif op == "delete":
        del parent[last]
    elif op == "wrap":
        parent[last] = [parent[last]]
    elif isinstance(parent[last], dict):
        parent[last][draw(st.text(min_size=1, max_size=12))] = draw(replacement)
    elif isinstance(parent[last], list):
        parent[last].append(draw(replacement))
    else:
        parent[last] = {draw(st.text(max_size=12)): parent[last]}
    return doc


@st.composite
def manifests(draw: Callable[..., Any], *, max_depth: int = 3000) -> ManifestInput:
    """Mutated manifests; ``max_depth`` bounds generated nesting (the bounded CI run keeps it
    below Python's recursion limit: deep manifests are a known manifest-area failure)."""
    doc = yaml.safe_load(harness.MANIFEST)
    big = big_values(max_depth)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        doc = mutate(doc, draw, st.one_of(values, big) if draw(st.booleans()) else values)
    try:
        text = yaml.safe_dump(doc, allow_unicode=draw(st.booleans()), sort_keys=False)
    except (yaml.YAMLError, RecursionError):
        text = harness.MANIFEST
    data = text.encode("utf-8", "surrogatepass")
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        data = _text_mutation(data, draw, max_depth)
    return ManifestInput(data)


def _text_mutation(data: bytes, draw: Callable[..., Any], max_depth: int) -> bytes:
    lines = data.split(b"\n")
    at = draw(st.integers(min_value=0, max_value=len(lines)))
    op = draw(st.sampled_from(("oddity", "binary", "truncate", "duplicate", "indent", "deep")))
    if op == "deep":
        n = draw(st.integers(min_value=1, max_value=max_depth))
        lines.insert(at, b"deep: " + b"[" * n + b"]" * n)
    elif op == "oddity":
        indent = draw(st.sampled_from((b"", b"  ", b"    ")))
        lines.insert(at, indent + draw(st.sampled_from(YAML_ODDITIES)).encode())
    elif op == "binary":
        lines.insert(
            at, draw(st.sampled_from(BINARY)) + (lines.pop(at) if at < len(lines) else b"")
        )
    elif op == "truncate":
        return data[: draw(st.integers(min_value=0, max_value=len(data)))]
    elif op == "duplicate" and at < len(lines):
        lines.insert(at, lines[at])
    elif at < len(lines):
        lines[at] = draw(st.sampled_from((b"\t", b" ", b"   "))) + lines[at]
    return b"\n".join(lines)


def check_manifest(project: Path, given: ManifestInput, env: Mapping[str, str]) -> harness.Verdict:
    """``validate`` and ``plan`` on the manifest; neither may change anything."""
    (project / "retrain.yaml").write_bytes(given.data)
    verdict = harness.Verdict()
    for args in (("validate",), ("plan",)):
        before = harness.snapshot(project)
        harness.judge(harness.run(project, args, env), verdict, secret=env[harness.SECRET_ENV])
        moved = harness.changed(before, harness.snapshot(project))
        if moved:
            verdict.add(f"partial change: {' '.join(args)} (read-only) changed {moved[:3]}")
    return verdict


# -- plan files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanInput:
    data: bytes
    rechecksummed: bool
    edit: str = ""

    def __repr__(self) -> str:
        return f"PlanInput({self.edit!r}, rechecksummed={self.rechecksummed})"


@st.composite
def plans(draw: Callable[..., Any], base: str, *, rechecksum: bool | None = None) -> PlanInput:
    doc = json.loads(base)
    if draw(st.integers(min_value=0, max_value=9)) == 0:  # a tenth: damaged bytes
        raw = base.encode()
        cut = draw(st.integers(min_value=0, max_value=len(raw)))
        tail = draw(st.binary(max_size=8))
        return PlanInput(raw[:cut] + tail, False, f"cut at byte {cut}, then {tail!r}")
    specials = st.sampled_from(_plan_specials(doc))
    plan_values = st.one_of(values, specials)
    if draw(st.integers(min_value=0, max_value=2)) == 0:  # a third: a forger's targeted edit
        change = draw(st.sampled_from(doc["changes"]))
        field_ = draw(st.sampled_from(("model_uri", "fingerprint", "train")))
        value = draw(specials)
        if field_ == "train" or change["after"] is None:
            change["train"] = value
            log = [f"{change['address']}: train = {value!r}"]
        else:
            change["after"][field_] = value
            log = [f"{change['address']}: after.{field_} = {value!r}"]
    else:
        log = []
        for _ in range(draw(st.integers(min_value=1, max_value=3))):
            doc = mutate(doc, draw, plan_values, log)
    redo = draw(st.booleans()) if rechecksum is None else rechecksum
    if redo and isinstance(doc, dict):
        doc = {k: v for k, v in doc.items() if k != "checksum"}
        try:
            doc["checksum"] = planfile._checksum(doc)
        except (TypeError, ValueError):
            redo = False
    try:
        text = json.dumps(doc, indent=2)
    except (TypeError, ValueError):
        text = base
    return PlanInput(text.encode("utf-8", "surrogatepass"), redo, "; ".join(log)[:500])


def _plan_specials(doc: Any) -> list[Any]:
    """Values a forger would try: the plan's own fingerprints and URIs, moved about."""
    text = json.dumps(doc)
    fps = sorted(set(_fingerprints(text)))
    uris = [f"local://models/{fp}/model.ilearner" for fp in fps]
    return [
        *fps,
        *uris,
        *(f"local://models/{fp}/../../../outside.txt" for fp in fps[:1]),
        "https://elsewhere.example/model.ilearner",
        "local://models/" + "0" * 64 + "/model.ilearner",
        "create",
        "update",
        "no-op",
        "blocked",
        "drift",
        "ep-a",
        "ep-b",
        "ep-c",
        "ws-a",
        "ws-b",
        "ws-c",
        "retrain/v1",
        "local",
    ]


def _fingerprints(text: str) -> list[str]:
    import re

    return re.findall(r"\b[0-9a-f]{64}\b", text)


def check_plan(
    project: Path, expected: Mapping[str, str], given: PlanInput, env: Mapping[str, str]
) -> harness.Verdict:
    """``apply PLANFILE``: refused with nothing changed, or applied and then every service
    serves its manifest fingerprint's canonical model and a new plan is empty."""
    planfile_path = project / "fuzzed.plan"
    planfile_path.write_bytes(given.data)
    return _applied(project, ("apply", "fuzzed.plan"), expected, harness.Verdict(), env)


def _check_converged(
    project: Path, expected: Mapping[str, str], verdict: harness.Verdict, env: Mapping[str, str]
) -> None:
    try:
        now = harness.served(project)
    except (OSError, ValueError, KeyError, AssertionError) as e:
        verdict.add(f"wrong model served: cannot read what is served ({type(e).__name__})")
        return
    wrong = {ws: uri for ws, uri in now.items() if uri != expected[ws]}
    if wrong:
        verdict.add(f"wrong model served: {sorted(wrong.items())[:2]}")
    again = harness.run(project, ("plan", "--detailed-exitcode"), env)
    if again.code != 0:
        verdict.add(f"not converged: plan --detailed-exitcode exits {again.code} after apply")


# -- state files -----------------------------------------------------------------------------

STATE_FILES = (
    "webservices/ws-a.json",
    "webservices/ws-c.json",
    "history.jsonl",
    "lock",
    "models/*/metadata.json",
    "models/*/evaluation.csv",
)
REPLACEMENTS = (
    "junk",
    "truncate",
    "empty",
    "json",
    "lines",
    "symlink",
    "directory",
    "fifo",
    "delete",
)


@dataclass(frozen=True)
class StateInput:
    target: str
    how: str
    payload: Any  # bytes, a JSON value, a link target or a lock record, per ``how``

    def __repr__(self) -> str:
        return f"StateInput({self.target!r}, {self.how!r}, {str(self.payload)[:1500]!r})"


@st.composite
def state_changes(draw: Callable[..., Any]) -> StateInput:
    target = draw(st.sampled_from(STATE_FILES))
    how = draw(st.sampled_from(REPLACEMENTS))
    payload: Any = None
    if how == "junk":
        payload = draw(st.one_of(st.binary(max_size=64), st.text(max_size=64).map(str.encode)))
    elif how == "truncate":
        payload = draw(st.integers(min_value=0, max_value=8000))
    elif how == "json":
        payload = draw(st.one_of(values, st.just("lock-record"), st.just("mutate")))
        if payload == "mutate":
            payload = ("mutate", draw(st.randoms(use_true_random=False)).random())
    elif how == "lines":
        payload = draw(st.lists(st.one_of(values, st.text(max_size=30)), min_size=1, max_size=4))
    elif how == "symlink":
        payload = draw(
            st.sampled_from(
                ("/dev/zero", "../outside.txt", "/nonexistent", "history.jsonl", "..", ".")
            )
        )
    if target == "lock" and how == "json" and payload == "lock-record":
        payload = draw(_lock_records())
    return StateInput(target, how, payload)


@st.composite
def _lock_records(draw: Callable[..., Any]) -> dict[str, Any]:
    return {
        "id": draw(st.sampled_from(("x1", "", "?"))),
        "holder": draw(st.sampled_from(("ci", "", "\x1b[2J"))),
        "pid": draw(st.sampled_from((1, os.getpid(), 2**22 + 1, -1, "1", None))),
        "host": draw(st.sampled_from((socket.gethostname(), "elsewhere"))),
        "since": draw(st.sampled_from(("2026-01-01T00:00:00+00:00", "garbage", None, 5))),
    }


def break_state(project: Path, given: StateInput) -> None:
    """Apply one ``StateInput`` to a copy of the converged state."""
    state = project / ".retrain"
    if "*" in given.target:
        folder, name = given.target.rsplit("/", 1)
        path = sorted(state.glob(folder))[0] / name
    else:
        path = state / given.target
    original = path.read_bytes() if path.is_file() else b""
    how, payload = given.how, given.payload
    if how in ("symlink", "directory", "fifo", "delete"):
        _remove(path)
    if how == "symlink":
        path.symlink_to(payload)
    elif how == "directory":
        path.mkdir()
    elif how == "fifo":
        os.mkfifo(path)
    elif how == "junk":
        path.write_bytes(payload)
    elif how == "truncate":
        path.write_bytes(original[:payload])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "json":
        path.write_bytes(_json_payload(original, payload))
    elif how == "lines":
        extra = "".join(json.dumps(v) + "\n" for v in payload)
        path.write_bytes(original + extra.encode("utf-8", "surrogatepass"))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _json_payload(original: bytes, payload: Any) -> bytes:
    if isinstance(payload, tuple) and payload[0] == "mutate":
        return _mutated_json(original, payload[1])
    try:
        return json.dumps(payload).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError, RecursionError):
        return b"{}"


def _mutated_json(original: bytes, knob: float) -> bytes:
    """One leaf of the original document set to a different type, chosen by ``knob``."""
    try:
        doc = json.loads(original)
    except ValueError:
        return original
    leaves = [p for p in paths(doc) if p]
    if not leaves:
        return b"[]"
    where = leaves[int(knob * len(leaves)) % len(leaves)]
    parent: Any = doc
    for step in where[:-1]:
        parent = parent[step]
    old = parent[where[-1]]
    parent[where[-1]] = (
        7 if isinstance(old, str) else "local://models/x" if not isinstance(old, dict) else []
    )
    return json.dumps(doc).encode()


def check_state(
    project: Path, expected: Mapping[str, str], given: StateInput, env: Mapping[str, str]
) -> harness.Verdict:
    """Read-only commands change nothing; apply either is refused with nothing changed, or
    succeeds and leaves every service serving its model and a new plan empty."""
    break_state(project, given)
    verdict = harness.Verdict()
    secret = env[harness.SECRET_ENV]
    for args in (("plan",), ("status",), ("history",)):
        before = harness.snapshot(project)
        harness.judge(harness.run(project, args, env), verdict, secret=secret)
        moved = harness.changed(before, harness.snapshot(project))
        if moved:
            verdict.add(f"partial change: {' '.join(args)} (read-only) changed {moved[:3]}")
    return _applied(project, ("apply", "--auto-approve"), expected, verdict, env)


def _applied(
    project: Path,
    args: tuple[str, ...],
    expected: Mapping[str, str],
    verdict: harness.Verdict,
    env: Mapping[str, str],
) -> harness.Verdict:
    """Run an apply: refused with nothing changed, or converged on the expected models."""
    before = harness.snapshot(project)
    result = harness.run(project, args, env)
    harness.judge(result, verdict, secret=env[harness.SECRET_ENV])
    if result.code == 1:
        moved = harness.changed(before, harness.snapshot(project))
        if moved:
            verdict.add(f"partial change: refused apply changed {moved[:3]}")
    elif result.code == 0:
        _check_converged(project, expected, verdict, env)
    return verdict
