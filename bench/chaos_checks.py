"""What the chaos campaign checks, read straight from files and ``/proc``.

Kept apart from the campaign (``bench.chaos``) so each check can be tested against damage
done by hand (``tests/e2e/test_chaos.py``): a check that cannot fail would prove nothing.
Web service definitions, the model store and the test trainer's counts file are read
directly, so a bug in retrain's own readers cannot hide damage; history alone is read
through the local provider, since what retrain itself reads as history is what must hold.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from reconciler import errors
from reconciler.providers.local import provider as local

ASSET = "Bike Demand [trained model]"  # the trained-model asset of the example definition
MODEL_URI = re.compile(r"^local://models/([0-9a-f]{64})/model\.ilearner$")
MARKER = "CHAOS_PROJECT"  # in every apply's environment: its trainers inherit it
SECRET = "chaos-secret-3b9f1c"  # a secretParameters value no file may ever hold
GONE_WAIT = 60.0  # seconds to wait for SIGKILLed leftovers to disappear
EXIT_WAIT = 60.0  # seconds a signalled apply gets to exit before it is SIGKILLed (and noted)
ORPHAN_GRACE = 1.0  # seconds after the apply died before a surviving trainer counts as orphan
COUNTS = {  # name -> what it counts (the table's row label); every one must be 0
    "not_converged": "plans not converged after the re-run",
    "missing_after_kill": "endpoints on a missing/incomplete model, after the kill",
    "missing_after_rerun": "endpoints on a missing/incomplete model, after the re-run",
    "history_missing": "history entries missing (last entry is not the served model)",
    "history_duplicated": "history entries duplicated (same model twice in a row)",
    "history_unreadable": "history unreadable after the re-run",
    "trained_twice": "models trained twice (>1 completed trainer run)",
    "orphans": f"orphan trainer processes ({ORPHAN_GRACE:g} s after the apply died)",
    "scratch_left": "scratch/temp entries left in the state dir after the re-run",
    "force_unlock": "locks needing force-unlock",
    "rerun_failed": "re-runs that did not exit 0",
    "hung": f"signalled applies still running {EXIT_WAIT:g} s later",
    "secret_files": "files holding the secret parameter's value after the re-run",
}


@dataclass(frozen=True, slots=True)
class Fleet:
    endpoints: int = 12
    models: int = 4  # distinct fingerprints per round, each shared by endpoints/models services
    seconds: float = 2.0  # each trainer run's wall time: longer than ORPHAN_GRACE
    parallelism: int = 2  # training jobs at once (one per core on the 2-core CI machine)
    ray: str = ""  # a Ray Jobs API address: train there (the Ray runner); "": subprocesses


@dataclass(frozen=True, slots=True)
class Project:
    root: Path
    fleet: Fleet

    @property
    def state(self) -> Path:
        return self.root / ".retrain"

    @property
    def counts(self) -> Path:
        return self.root / "counts.log"

    @property
    def manifest(self) -> Path:
        return self.root / "retrain.yaml"

    def names(self) -> list[tuple[str, str]]:
        """(endpoint, web service) of every endpoint in the fleet."""
        return [(f"ep-{i:03d}", f"ws-{i:03d}") for i in range(self.fleet.endpoints)]


# -- processes ----------------------------------------------------------------------------
def survivors(root: Path) -> list[int]:
    """Live processes of the project: working in it (trainers run with the manifest's folder
    as cwd) or started under an apply of it (``MARKER`` in their environment), whichever
    a trainer still has."""
    marker = f"\0{MARKER}={root}\0".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cwd = os.readlink(f"/proc/{entry}/cwd")
            environ = b"\0" + Path(f"/proc/{entry}/environ").read_bytes()
            if (cwd == str(root) or marker in environ) and live(int(entry)):
                found.append(int(entry))
    return found


def live(pid: int) -> bool:
    """Running or sleeping; a zombie waiting to be reaped counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def kill_all(pids: list[int]) -> None:
    """SIGKILL leftover processes and wait until they are gone, so rounds stay independent."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + GONE_WAIT
    while any(live(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


# -- checks -------------------------------------------------------------------------------
def served(project: Project) -> dict[str, str | None]:
    """endpoint -> the model URI its web service's trained-model asset names (None: no service)."""
    out: dict[str, str | None] = {}
    for endpoint, web_service in project.names():
        path = project.state / "webservices" / f"{web_service}.json"
        try:
            definition = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            out[endpoint] = None
            continue
        except ValueError:
            out[endpoint] = "unreadable"
            continue
        assets = definition.get("properties", {}).get("assets", {})
        uris = [
            a.get("locationInfo", {}).get("uri") for a in assets.values() if a.get("name") == ASSET
        ]
        out[endpoint] = str(uris[0]) if uris else "no asset"
    return out


def complete(project: Project, uri: str) -> bool:
    """Is ``uri`` the canonical URI of a complete model store entry?"""
    match = MODEL_URI.match(uri)
    if not match:
        return False
    entry = project.state / "models" / match.group(1)
    try:
        meta = json.loads((entry / "metadata.json").read_text(encoding="utf-8"))
        return (
            (entry / "model.ilearner").stat().st_size > 0
            and (entry / "evaluation.csv").is_file()
            and meta.get("fingerprint") == match.group(1)
            and isinstance(meta.get("metrics"), dict)
        )
    except (OSError, ValueError, AttributeError):
        return False


def missing_models(project: Project) -> int:
    """Endpoints whose service exists but names a model that is not completely stored."""
    return sum(uri is not None and not complete(project, uri) for uri in served(project).values())


def history_findings(project: Project) -> collections.Counter[str]:
    """Missing entries (per endpoint, now) and duplicated ones (in the whole history)."""
    found: collections.Counter[str] = collections.Counter()
    reader = local.LocalProvider(state_dir=project.state, workdir=project.root, env={})
    try:
        entries = list(reader.history())
    except errors.ReconcilerError:
        found["history_unreadable"] += 1
        return found
    last: dict[str, str] = {}
    for entry in entries:
        if last.get(entry.endpoint) == entry.model_uri:
            found["history_duplicated"] += 1
        last[entry.endpoint] = entry.model_uri
    for endpoint, uri in served(project).items():
        if uri is not None and last.get(endpoint) != uri:
            found["history_missing"] += 1
    return found


def completed_runs(project: Project) -> collections.Counter[str]:
    """Completed trainer runs per model identity (the test trainer's receipts)."""
    try:
        lines = project.counts.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return collections.Counter()
    return collections.Counter(line.split()[0] for line in lines if line.strip())


def scratch(project: Project) -> list[Path]:
    """Temp entries in the state dir: hidden names (``.job-*``, ``.x.json.pid.tmp``, ...) or
    ``*.tmp``; a matching directory counts once, not per file inside it."""
    found = []
    for folder, dirs, files in os.walk(project.state):
        for name in [*dirs, *files]:
            if name.startswith(".") or name.endswith(".tmp"):
                found.append(Path(folder) / name)
        dirs[:] = [d for d in dirs if not (d.startswith(".") or d.endswith(".tmp"))]
    return found


def secret_files(project: Project) -> list[Path]:
    needle = SECRET.encode()
    return [
        p
        for p in project.root.rglob("*")
        if p.is_file() and not p.is_symlink() and needle in p.read_bytes()
    ]


@dataclass
class Seen:
    """Leftovers already counted: one left by round 2 is not counted again in round 3."""

    paths: dict[str, set[Path]] = field(default_factory=lambda: collections.defaultdict(set))

    def new(self, kind: str, found: list[Path]) -> set[Path]:
        fresh = set(found) - self.paths[kind]
        self.paths[kind] |= fresh
        return fresh
