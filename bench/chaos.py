"""Chaos campaign: kill ``retrain apply`` at random and placed points, re-run, count the damage.

retrain promises that a crash anywhere (``kill -9`` by the OOM killer, a cancelled CI runner's
SIGTERM, a Ctrl-C) ends converged on the next run: history names what each endpoint serves, no
trainer outlives its apply, no model is trained twice, nothing is left half-written or behind.
This harness measures that promise instead of hoping it. On a generated fleet on the local
backend (``forEach`` over N endpoints sharing a few fingerprints, a real test trainer,
``bench/chaos_trainer.py``), each round changes every data file (so the round trains new
models), runs the real CLI as a subprocess, sends a signal to that process alone (not its
process group), then re-runs apply and plan and checks the state directory and ``/proc``.
The checks read files directly (web service JSON, the model store, the trainer's counts file);
only history is read through the local provider, so its own reading of history is what counts.

Usage (from the project root, after ``make install``)::

    .venv/bin/python -m bench.chaos --kills 30 [--seed S] [--endpoints N] [--signals KILL,TERM,INT]

Prints a table and writes (or updates the section ``--label`` of) ``bench/results/chaos.md``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bench import chaos_report
from reconciler import errors
from reconciler.providers.local import provider as local

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "chaos.md"
ASSET = "Bike Demand [trained model]"  # the trained-model asset of the example definition
MODEL_URI = re.compile(r"^local://models/([0-9a-f]{64})/model\.ilearner$")
SECRET = "chaos-secret-3b9f1c"  # a secretParameters value no file may ever hold
SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "INT": signal.SIGINT}
SIGNAL_WEIGHTS = {"KILL": 4, "TERM": 1, "INT": 1}  # SIGKILL mostly: the OOM killer's signal
PLACEMENTS = ("random", "training", "serving", "read-back")
TRIGGERS = {  # placed kills: the first progress line (stderr) that fires each
    "training": re.compile(r"^training model [0-9a-f]+ for "),
    "serving": re.compile(r": \S+ done, serving [0-9a-f]+$"),
}
# The "training model" line is printed microseconds before its trainer is spawned, so a kill
# on the line itself lands before any trainer exists; this much later the trainers are running
# (a runner starts in ~0.1 s) and still far from done (a run takes Fleet.seconds).
TRAINING_OFFSET = 0.3  # seconds
OFFSETS = {"training": TRAINING_OFFSET}  # seconds from a placed kill's line to its signal
ORPHAN_GRACE = 1.0  # seconds after the apply died before a surviving trainer counts as orphan
EXIT_WAIT = 60.0  # seconds a signalled apply gets to exit before it is SIGKILLed (and noted)
RUN_TIMEOUT = 300.0  # seconds for a re-run or plan: far above a healthy fleet's ~5 s
POLL = 0.0002  # seconds between looks at the web service files (read-back placement)
ROWS = 40  # rows per generated data file: enough for a fit, small enough to hash instantly


@dataclass(frozen=True, slots=True)
class Fleet:
    endpoints: int = 12
    models: int = 4  # distinct fingerprints per round, each shared by endpoints/models services
    seconds: float = 2.0  # each trainer run's wall time: longer than ORPHAN_GRACE
    parallelism: int = 2  # training jobs at once (one per core on the 2-core CI machine)


@dataclass(frozen=True, slots=True)
class Kill:
    signal: str  # a key of SIGNALS
    placement: str  # one of PLACEMENTS
    delay: float = 0.0  # random placement: seconds after the apply started


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


@dataclass
class Round:
    number: int
    kill: Kill
    sent_at: float | None = None  # seconds after start; None: the apply had already exited
    last_line: str = ""  # the apply's last progress line before the signal
    exit_code: int | None = None
    hung: bool = False  # did not exit within EXIT_WAIT of a TERM/INT
    found: collections.Counter[str] = field(default_factory=collections.Counter)


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


# -- the generated project --------------------------------------------------------------
def make_project(root: Path, fleet: Fleet) -> Project:
    project = Project(root, fleet)
    shutil.copy(HERE / "chaos_trainer.py", root / "trainer.py")
    shutil.copy(ROOT / "examples" / "bike_rental" / "webservice.json", root / "webservice.json")
    items = ", ".join(f'{{i: "{i:03d}", g: "{i % fleet.models}"}}' for i in range(fleet.endpoints))
    project.manifest.write_text(
        f"""\
apiVersion: retrain/v1
backend: {{kind: local, local: {{stateDir: .retrain, parallelism: {fleet.parallelism}}}}}
trainers:
  chaos:
    entrypoint: trainer.py:train
    parameters: {{seconds: {fleet.seconds}, counts: "{project.counts}"}}
    secretParameters: {{token: "${{env:CHAOS_SECRET}}"}}
    timeout: 120
defaults: {{trainer: chaos, asset: "{ASSET}", definition: webservice.json, version: "1"}}
endpoints:
  - forEach: [{items}]
    name: ep-${{each.i}}
    webService: ws-${{each.i}}
    inputs: {{data: "data/g${{each.g}}.csv"}}
""",
        encoding="utf-8",
    )
    write_data(project, random.Random(0))
    return project


def write_data(project: Project, rng: random.Random) -> None:
    """New content for every group's data file: every fingerprint of the fleet changes."""
    (project.root / "data").mkdir(exist_ok=True)
    for group in range(project.fleet.models):
        slope = rng.uniform(0.5, 3.0)
        rows = [f"{x},{slope * x + rng.gauss(0, 1):.6f}" for x in range(ROWS)]
        (project.root / "data" / f"g{group}.csv").write_text("x,y\n" + "\n".join(rows) + "\n")


# -- running the CLI ---------------------------------------------------------------------
def environment() -> dict[str, str]:
    return dict(os.environ) | {"CHAOS_SECRET": SECRET}


def start(project: Project, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args, "-f", str(project.manifest)],
        cwd=project.root,
        env=environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(project: Project, *args: str) -> tuple[int, str]:
    """Run one command to completion; (exit code, stderr)."""
    child = start(project, *args)
    try:
        _out, err = child.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        child.kill()
        _out, err = child.communicate()
        return -1, f"timed out after {RUN_TIMEOUT:g}s\n{err}"
    return child.returncode, err


class Trigger:
    """Sends the round's signal once, from whichever watcher sees its moment first."""

    def __init__(self, child: subprocess.Popen[str], signum: int, began: float) -> None:
        self.child, self.signum, self.began = child, signum, began
        self.sent_at: float | None = None
        self.last_line = ""
        self._lock = threading.Lock()

    def saw(self, line: str) -> None:
        """Note a progress line (the last one before the signal says where it landed)."""
        with self._lock:
            if self.sent_at is None:
                self.last_line = line

    def fire(self) -> None:
        with self._lock:
            if self.sent_at is not None or self.child.poll() is not None:
                return
            self.child.send_signal(self.signum)
            self.sent_at = time.monotonic() - self.began


def wait_exit(child: subprocess.Popen[str], trigger: Trigger) -> tuple[int, bool]:
    """(exit code, hung): a signalled apply gets EXIT_WAIT seconds to exit, any apply
    RUN_TIMEOUT in all; past that it is SIGKILLed and noted as hung."""
    while True:
        try:
            return child.wait(timeout=0.1), False
        except subprocess.TimeoutExpired:
            now = time.monotonic() - trigger.began
            late = trigger.sent_at is not None and now > trigger.sent_at + EXIT_WAIT
            if late or now > RUN_TIMEOUT:
                child.kill()
                return child.wait(), True


def watch_lines(stream: IO[str], trigger: Trigger, placement: str) -> None:
    """Follow the apply's progress lines; fire the trigger on the first that matches."""
    pattern = TRIGGERS.get(placement)
    for raw in stream:
        line = raw.rstrip("\n")
        trigger.saw(line)
        if pattern is not None and pattern.search(line):
            pattern = None
            if delay := OFFSETS.get(placement, 0.0):
                threading.Timer(delay, trigger.fire).start()
            else:
                trigger.fire()


def service_mtimes(project: Project) -> dict[str, int]:
    try:
        entries = list(os.scandir(project.state / "webservices"))
    except FileNotFoundError:
        return {}
    return {e.name: e.stat().st_mtime_ns for e in entries if e.name.endswith(".json")}


def killed_apply(project: Project, kill: Kill, round_: Round) -> None:
    """Run apply and signal it at the kill's moment; wait for it to exit."""
    before = service_mtimes(project)
    child = start(project, "apply", "--auto-approve")
    trigger = Trigger(child, SIGNALS[kill.signal], time.monotonic())
    readers = [
        threading.Thread(
            target=watch_lines, args=(child.stderr, trigger, kill.placement), daemon=True
        ),
        threading.Thread(target=lambda: child.stdout and child.stdout.read(), daemon=True),
    ]
    for reader in readers:
        reader.start()
    if kill.placement == "random":
        while child.poll() is None and time.monotonic() - trigger.began < kill.delay:
            time.sleep(POLL * 50)
        trigger.fire()
    elif kill.placement == "read-back":
        while child.poll() is None and service_mtimes(project) == before:
            time.sleep(POLL)
        trigger.fire()
    round_.exit_code, round_.hung = wait_exit(child, trigger)
    for reader in readers:
        reader.join(timeout=5)
    round_.sent_at, round_.last_line = trigger.sent_at, trigger.last_line


# -- processes ----------------------------------------------------------------------------
def survivors(root: Path) -> list[int]:
    """Live processes working in the project (trainers run with the manifest's folder as cwd)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if os.readlink(f"/proc/{entry}/cwd") != str(root):
                continue
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            found.append(int(entry))
    return found


def kill_all(pids: list[int]) -> None:
    """SIGKILL leftover processes and wait until they are gone, so rounds stay independent."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + EXIT_WAIT
    while any(pid in survivors_of(pids) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def survivors_of(pids: list[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            alive.add(pid)
    return alive


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


# -- one round ----------------------------------------------------------------------------
def rerun(project: Project, round_: Round) -> None:
    """Apply again with no kill; a lock left behind is counted, released, and retried."""
    code, err = run(project, "apply", "--auto-approve")
    if code != 0 and "force-unlock" in err:
        round_.found["force_unlock"] += 1
        with contextlib.suppress(OSError, ValueError, AttributeError):
            lock = json.loads((project.state / "lock").read_text(encoding="utf-8"))
            run(project, "force-unlock", str(lock.get("id")))
        code, err = run(project, "apply", "--auto-approve")
    if code != 0:
        round_.found["rerun_failed"] += 1
        last = err.strip().splitlines()[-1:] or ["(no output)"]
        print(f"  round {round_.number}: re-run exited {code}: {last[0][:200]}", file=sys.stderr)


@dataclass
class Seen:
    """Leftovers already counted: one left by round 2 is not counted again in round 3."""

    paths: dict[str, set[Path]] = field(default_factory=lambda: collections.defaultdict(set))

    def new(self, kind: str, found: list[Path]) -> set[Path]:
        fresh = set(found) - self.paths[kind]
        self.paths[kind] |= fresh
        return fresh


def play(project: Project, number: int, kill: Kill, rng: random.Random, seen: Seen) -> Round:
    round_ = Round(number, kill)
    write_data(project, rng)
    runs_before = completed_runs(project)
    duplicates_before = history_findings(project)["history_duplicated"]
    killed_apply(project, kill, round_)
    round_.found["hung"] += round_.hung
    time.sleep(ORPHAN_GRACE)
    orphans = survivors(project.root)
    round_.found["orphans"] += len(orphans)
    kill_all(orphans)
    round_.found["missing_after_kill"] += missing_models(project)
    rerun(project, round_)
    code, _err = run(project, "plan", "--detailed-exitcode")
    round_.found["not_converged"] += code != 0
    round_.found["missing_after_rerun"] += missing_models(project)
    history = history_findings(project)
    history["history_duplicated"] -= duplicates_before
    round_.found.update(history)
    runs = completed_runs(project)
    round_.found["trained_twice"] += sum(runs[m] > 1 and runs_before[m] <= 1 for m in runs)
    round_.found["scratch_left"] += len(seen.new("scratch", scratch(project)))
    round_.found["secret_files"] += len(seen.new("secret", secret_files(project)))
    return round_


# -- the campaign -------------------------------------------------------------------------
def schedule(kills: int, signals: Sequence[str], rng: random.Random, span: float) -> list[Kill]:
    """Half random moments over the apply's measured ``span``, the rest placed, evenly
    spread over the placed points; shuffled; signals drawn SIGKILL-mostly."""
    placed = [PLACEMENTS[1 + i % (len(PLACEMENTS) - 1)] for i in range(kills - kills // 2)]
    placements = ["random"] * (kills // 2) + placed
    rng.shuffle(placements)
    weights = [SIGNAL_WEIGHTS[s] for s in signals]
    return [
        Kill(rng.choices(list(signals), weights)[0], p, round(rng.uniform(0.05, span), 3))
        if p == "random"
        else Kill(rng.choices(list(signals), weights)[0], p)
        for p in placements
    ]


@dataclass
class Campaign:
    fleet: Fleet
    seed: int
    span: float = 0.0  # seconds of a healthy apply that trains a round's models (measured)
    rounds: list[Round] = field(default_factory=list)
    seconds: float = 0.0

    def totals(self) -> collections.Counter[str]:
        total: collections.Counter[str] = collections.Counter(dict.fromkeys(COUNTS, 0))
        for round_ in self.rounds:
            total.update(round_.found)
        return total


def calibrate(project: Project, rng: random.Random) -> float:
    """Create the fleet, then time one healthy training apply; refuse a fleet that does not
    converge without any kill (the harness would be measuring itself)."""
    for _ in range(2):
        write_data(project, rng)
        began = time.monotonic()
        code, err = run(project, "apply", "--auto-approve")
        span = time.monotonic() - began
        if code != 0 or run(project, "plan", "--detailed-exitcode")[0] != 0:
            raise SystemExit(f"Error: the fleet does not converge without kills: {err[-500:]}")
    return span


def campaign(
    fleet: Fleet,
    *,
    seed: int,
    kills: int | Sequence[Kill],
    signals: Sequence[str] = ("KILL", "TERM", "INT"),
    workdir: Path | None = None,
    say: Callable[[str], None] = lambda _line: None,
) -> Campaign:
    """Run the whole campaign in a fresh project under ``workdir`` (a temp dir by default)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # so the applies we start get Ctrl-C
        signal.signal(signal.SIGINT, signal.default_int_handler)
    began = time.monotonic()
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="chaos-", dir=workdir) as tmp:
        project = make_project(Path(tmp).resolve(), fleet)
        result = Campaign(fleet, seed, span=calibrate(project, rng))
        seen = Seen()
        if isinstance(kills, int):
            kills = schedule(kills, signals, rng, result.span)
        for number, kill in enumerate(kills, 1):
            round_ = play(project, number, kill, rng, seen)
            result.rounds.append(round_)
            say(chaos_report.round_line(round_))
        kill_all(survivors(project.root))
    result.seconds = time.monotonic() - began
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--kills", type=int, default=30, help="rounds, one signal each (30)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the schedule and the data (7)")
    parser.add_argument("--endpoints", type=int, default=12, help="fleet size (12)")
    parser.add_argument("--models", type=int, default=4, help="distinct models per round (4)")
    parser.add_argument("--trainer-seconds", type=float, default=2.0, help="per trainer run (2)")
    parser.add_argument(
        "--signals", default="KILL,TERM,INT", help="comma-separated, of KILL,TERM,INT"
    )
    parser.add_argument("--label", default="latest", help="the results section to (re)write")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown results file")
    args = parser.parse_args(argv)
    signals = [s.strip().upper().removeprefix("SIG") for s in args.signals.split(",") if s.strip()]
    if not signals or any(s not in SIGNALS for s in signals):
        parser.error(f"--signals: choose from {','.join(SIGNALS)} (got {args.signals!r})")
    if args.kills < 1 or args.endpoints < 1 or not 1 <= args.models <= args.endpoints:
        parser.error("--kills and --endpoints must be >= 1, and 1 <= --models <= --endpoints")
    fleet = Fleet(args.endpoints, args.models, args.trainer_seconds)
    result = campaign(fleet, seed=args.seed, kills=args.kills, signals=signals, say=print)
    print(chaos_report.table(result))
    chaos_report.write(args.results, args.label, result, argv=sys.argv[1:])
    print(f"wrote section {args.label!r} of {args.results}")
    return 0 if not any(result.totals().values()) else 1


if __name__ == "__main__":
    sys.exit(main())
