"""The fuzzing harness: a small real project, the CLI run in-process, and the oracles.

Shared by the bounded fuzz tests (``tests/fuzz/test_fuzz.py``) and the long campaign
(``bench/fuzz.py``). Real models are trained once, in a template project (a tiny real
trainer: a subprocess that fits a mean), and each example runs on a copy of it: copying
a state directory takes milliseconds, training takes a subprocess.

The oracle, for every input: the command either behaves or fails with exit 1, at most
``MAX_STDERR_LINES`` lines on stderr, no traceback and no "this is a bug" line; a refused
command leaves the state directory byte-identical (every path and every file's bytes),
and read-only commands never change it at all. Each input runs under a deadline; one
that takes longer is a hang.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler import cli
from reconciler.providers import webservice

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "providers" / "trainers" / "tiny.py"
DEFINITION = ROOT / "examples" / "bike_rental" / "webservice.json"
ASSET = "Bike Demand [trained model]"
SECRET_ENV = "RETRAIN_TEST_SECRET"
# The bar: an error is one line; a warning or two may precede it. More lines pass
# only when each is a different problem (a manifest reports all its problems at once).
MAX_STDERR_LINES = 3
DEADLINE = 10.0  # seconds per command before an input counts as a hang (normal: ~10 ms)
READ_ONLY = ("validate", "plan", "status", "history")
BUG_MARKERS = ("Traceback (most recent call last)", "this is a bug in retrain")

MANIFEST = """\
apiVersion: retrain/v1
backend:
  kind: local
  local:
    stateDir: .retrain
trainers:
  tiny:
    entrypoint: tiny.py:train
    parameters: {shift: 0}
    secrets: {API_TOKEN: "${env:RETRAIN_TEST_SECRET}"}
    timeout: 60
defaults:
  trainer: tiny
  asset: Bike Demand [trained model]
  definition: webservice.json
  version: "1"
  gate: {metric: Score, minimum: 0.01, maxRegression: 0.9}
endpoints:
  - forEach: [{loc: a}, {loc: b}]
    name: ep-${each.loc}
    webService: ws-${each.loc}
    inputs: {data: "data/${each.loc}.csv"}
  - name: ep-c
    webService: ws-c
    inputs: {data: data/a.csv}
    parameters: {shift: 1}
"""
SERVICES = ("ws-a", "ws-b", "ws-c")


class Hang(BaseException):
    """Raised by the deadline alarm; a BaseException so the CLI's handlers let it through."""


@dataclass
class Result:
    args: tuple[str, ...]
    code: int | None  # None: hung
    out: str
    err: str
    seconds: float


@dataclass
class Verdict:
    """What one input did, and what in it broke the oracle (empty: it held)."""

    accepted: bool = True
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # counted, not failures
    results: list[Result] = field(default_factory=list)

    def add(self, problem: str) -> None:
        self.problems.append(problem)


# -- the project -----------------------------------------------------------------------------


def make_project(dest: Path, manifest: str = MANIFEST) -> Path:
    """The small project (manifest, tiny trainer, data, definition) in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "retrain.yaml").write_text(manifest, encoding="utf-8")
    shutil.copy(TINY, dest / "tiny.py")
    shutil.copy(DEFINITION, dest / "webservice.json")
    (dest / "data").mkdir(exist_ok=True)
    (dest / "data" / "a.csv").write_text("y\n1\n2\n3\n4\n")
    (dest / "data" / "b.csv").write_text("y\n10\n12\n9\n11\n13\n")
    return dest


def converged(dest: Path, env: Mapping[str, str]) -> Path:
    """The small project after one real apply (trains three models)."""
    make_project(dest)
    result = run(dest, ("apply", "--auto-approve"), env)
    if result.code != 0:
        raise RuntimeError(f"template apply failed: {result.err}")
    return dest


def pending(dest: Path, source: Path, env: Mapping[str, str]) -> tuple[Path, str]:
    """A copy of a converged project with changes to make that need no training (ws-a
    drifted to ep-c's model, ws-b deleted), and its saved plan's text."""
    clone(source, dest)
    services = dest / ".retrain" / "webservices"
    set_uri(services / "ws-a.json", serving(services / "ws-c.json"))
    (services / "ws-b.json").unlink()
    result = run(dest, ("plan", "-out", "saved.plan"), env)
    if result.code != 0:
        raise RuntimeError(f"template plan failed: {result.err}")
    return dest, (dest / "saved.plan").read_text(encoding="utf-8")


def clone(source: Path, dest: Path) -> Path:
    """A copy of a project (state included; symlinks copied as links)."""
    shutil.copytree(source, dest, symlinks=True)
    return dest


def serving(path: Path) -> str:
    definition = json.loads(path.read_text(encoding="utf-8"))
    asset_id = webservice.find_asset(definition, ASSET)
    assert asset_id is not None
    return str(definition["properties"]["assets"][asset_id]["locationInfo"]["uri"])


def set_uri(path: Path, uri: str) -> None:
    definition = json.loads(path.read_text(encoding="utf-8"))
    asset_id = webservice.find_asset(definition, ASSET)
    assert asset_id is not None
    definition["properties"]["assets"][asset_id]["locationInfo"]["uri"] = uri
    path.write_text(json.dumps(definition, indent=2), encoding="utf-8")


def served(project: Path) -> dict[str, str]:
    """Each web service's model URI (what it serves), by web service name."""
    services = project / ".retrain" / "webservices"
    return {ws: serving(services / f"{ws}.json") for ws in SERVICES}


# -- running the CLI -------------------------------------------------------------------------


def run(project: Path, args: tuple[str, ...], env: Mapping[str, str]) -> Result:
    """``retrain ARGS`` in ``project``, in-process, under the deadline."""
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    code: int | None
    with _cwd(project), _deadline(DEADLINE):
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = int(cli.main(list(args), dict(env), interactive=False))
        except Hang:
            code = None
    return Result(args, code, out.getvalue(), err.getvalue(), time.perf_counter() - started)


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    def expire(_signum: int, _frame: object) -> None:
        raise Hang

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- the oracle ------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple[str, bytes]]:
    """Every path under ``root`` with its kind and content (bytes of a regular file, the
    target of a link), never following a link or opening a FIFO."""
    found: dict[str, tuple[str, bytes]] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not _is_cache(Path(folder) / d)]
        for name in dirs + files:
            path = Path(folder) / name
            mode = os.lstat(path).st_mode
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(mode):
                found[rel] = ("link", os.readlink(path).encode())
            elif stat.S_ISREG(mode):
                found[rel] = ("file", path.read_bytes())
            else:
                found[rel] = ("dir" if stat.S_ISDIR(mode) else "other", b"")
    return found


def _is_cache(folder: Path) -> bool:
    """Whether ``folder`` is a state directory's ``cache`` folder: not state (a cache may
    be written by any run, see ``reconciler.providers.statcache``)."""
    return folder.name == "cache" and folder.parent.name == ".retrain"


def changed(before: Mapping[str, tuple[str, bytes]], after: Mapping[str, Any]) -> list[str]:
    """The paths that appeared, disappeared or changed."""
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


def judge(result: Result, verdict: Verdict, *, secret: str) -> None:
    """The per-command oracle: exit 0/1 (2 for plan --detailed-exitcode), short stderr,
    no traceback, no secret."""
    verdict.results.append(result)
    if result.code is None:
        verdict.add(f"hang: {' '.join(result.args)}")
        return
    if result.code != 0:
        verdict.accepted = False
    allowed = {0, 1, 2} if "--detailed-exitcode" in result.args else {0, 1}
    if result.code not in allowed:
        verdict.add(f"exit {result.code}: {' '.join(result.args)}")
    if any(marker in result.err or marker in result.out for marker in BUG_MARKERS):
        verdict.add(f"traceback: {' '.join(result.args)}: {_first_bug_line(result.err)}")
    lines = result.err.strip().splitlines()
    if len(set(lines)) < len(lines):
        verdict.add(f"repeated error: {' '.join(result.args)}")
    if result.code != 0 and len(lines) > MAX_STDERR_LINES:
        if distinct_problems(lines):
            verdict.notes.append(f"many distinct errors: {' '.join(result.args)}")
        else:
            verdict.add(f"stderr too long: {' '.join(result.args)}")
    if secret and (secret in result.out or secret in result.err):
        verdict.add(f"secret leaked: {' '.join(result.args)}")


def distinct_problems(lines: list[str]) -> bool:
    """Every line an ``Error:`` about a different problem: what "all errors at once" means
    for a manifest. A problem is its place (file, line, JSON pointer) and its message, so
    the same message at two places the user wrote (two ``forEach`` items that are not
    mappings) is two problems, while one problem printed twice (once per expanded endpoint,
    at the template) fails here. Where a problem is placed (``defaults`` at its own line,
    not per endpoint) is checked by ``tests/e2e/test_manifest_limits.py``."""
    if not all(line.startswith("Error: ") for line in lines):
        return False
    return len(set(lines)) == len(lines)


def _first_bug_line(err: str) -> str:
    lines = [line for line in err.splitlines() if any(m in line for m in BUG_MARKERS)]
    return (lines[-1] if lines else err.strip()[-200:])[:300]


def kind_of(problem: str) -> str:
    """The failure class of a problem line ("traceback", "hang", ...)."""
    return problem.split(":", 1)[0]


def re_search(pattern: str, text: str) -> bool:
    return re.search(pattern, text) is not None
