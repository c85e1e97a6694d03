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

from bench import chaos_checks as checks
from bench import chaos_report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "chaos.md"
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
RUN_TIMEOUT = 300.0  # seconds for a re-run or plan: far above a healthy fleet's ~5 s
POLL = 0.0002  # seconds between looks at the web service files (read-back placement)
ROWS = 40  # rows per generated data file: enough for a fit, small enough to hash instantly


@dataclass(frozen=True, slots=True)
class Kill:
    signal: str  # a key of SIGNALS
    placement: str  # one of PLACEMENTS
    delay: float = 0.0  # random placement: seconds after the apply started


@dataclass
class Round:
    number: int
    kill: Kill
    sent_at: float | None = None  # seconds after start; None: the apply had already exited
    last_line: str = ""  # the apply's last progress line before the signal
    exit_code: int | None = None
    hung: bool = False  # did not exit within EXIT_WAIT of a TERM/INT
    found: collections.Counter[str] = field(default_factory=collections.Counter)


# -- the generated project --------------------------------------------------------------
def make_project(root: Path, fleet: checks.Fleet) -> checks.Project:
    project = checks.Project(root, fleet)
    shutil.copy(HERE / "chaos_trainer.py", root / "trainer.py")
    shutil.copy(ROOT / "examples" / "bike_rental" / "webservice.json", root / "webservice.json")
    items = ", ".join(f'{{i: "{i:03d}", g: "{i % fleet.models}"}}' for i in range(fleet.endpoints))
    runner = f', runner: {{kind: ray, address: "{fleet.ray}"}}' if fleet.ray else ""
    project.manifest.write_text(
        f"""\
apiVersion: retrain/v1
backend: {{kind: local, local: {{stateDir: .retrain, parallelism: {fleet.parallelism}{runner}}}}}
trainers:
  chaos:
    entrypoint: trainer.py:train
    parameters: {{seconds: {fleet.seconds}, counts: "{project.counts}"}}
    secretParameters: {{token: "${{env:CHAOS_SECRET}}"}}
    timeout: 120
defaults: {{trainer: chaos, asset: "{checks.ASSET}", definition: webservice.json, version: "1"}}
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


def write_data(project: checks.Project, rng: random.Random) -> None:
    """New content for every group's data file: every fingerprint of the fleet changes."""
    (project.root / "data").mkdir(exist_ok=True)
    for group in range(project.fleet.models):
        slope = rng.uniform(0.5, 3.0)
        rows = [f"{x},{slope * x + rng.gauss(0, 1):.6f}" for x in range(ROWS)]
        (project.root / "data" / f"g{group}.csv").write_text("x,y\n" + "\n".join(rows) + "\n")


# -- running the CLI ---------------------------------------------------------------------
def environment(project: checks.Project) -> dict[str, str]:
    return dict(os.environ) | {"CHAOS_SECRET": checks.SECRET, checks.MARKER: str(project.root)}


def start(project: checks.Project, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args, "-f", str(project.manifest)],
        cwd=project.root,
        env=environment(project),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(project: checks.Project, *args: str) -> tuple[int, str]:
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
            late = trigger.sent_at is not None and now > trigger.sent_at + checks.EXIT_WAIT
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


def service_mtimes(project: checks.Project) -> dict[str, int]:
    try:
        entries = list(os.scandir(project.state / "webservices"))
    except FileNotFoundError:
        return {}
    return {e.name: e.stat().st_mtime_ns for e in entries if e.name.endswith(".json")}


def killed_apply(project: checks.Project, kill: Kill, round_: Round) -> None:
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


# -- one round ----------------------------------------------------------------------------
def rerun(project: checks.Project, round_: Round) -> None:
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


def play(
    project: checks.Project, number: int, kill: Kill, rng: random.Random, seen: checks.Seen
) -> Round:
    round_ = Round(number, kill)
    write_data(project, rng)
    runs_before = checks.completed_runs(project)
    duplicates_before = checks.history_findings(project)["history_duplicated"]
    killed_apply(project, kill, round_)
    round_.found["hung"] += round_.hung
    time.sleep(checks.ORPHAN_GRACE)
    orphans = checks.survivors(project.root)
    round_.found["orphans"] += len(orphans)
    checks.kill_all(orphans)
    round_.found["missing_after_kill"] += checks.missing_models(project)
    rerun(project, round_)
    code, _err = run(project, "plan", "--detailed-exitcode")
    round_.found["not_converged"] += code != 0
    round_.found["missing_after_rerun"] += checks.missing_models(project)
    history = checks.history_findings(project)
    history["history_duplicated"] -= duplicates_before
    round_.found.update(history)
    runs = checks.completed_runs(project)
    round_.found["trained_twice"] += sum(runs[m] > 1 and runs_before[m] <= 1 for m in runs)
    round_.found["scratch_left"] += len(seen.new("scratch", checks.scratch(project)))
    round_.found["secret_files"] += len(seen.new("secret", checks.secret_files(project)))
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
    fleet: checks.Fleet
    seed: int
    span: float = 0.0  # seconds of a healthy apply that trains a round's models (measured)
    rounds: list[Round] = field(default_factory=list)
    seconds: float = 0.0

    def totals(self) -> collections.Counter[str]:
        total: collections.Counter[str] = collections.Counter(dict.fromkeys(checks.COUNTS, 0))
        for round_ in self.rounds:
            total.update(round_.found)
        return total


def calibrate(project: checks.Project, rng: random.Random, *, applies: int) -> float:
    """Create the fleet (and with ``applies`` 2, time one more healthy training apply: the span
    of the random kills); refuse a fleet that does not converge without any kill (the harness
    would be measuring itself)."""
    span = 0.0
    for _ in range(applies):
        write_data(project, rng)
        began = time.monotonic()
        code, err = run(project, "apply", "--auto-approve")
        span = time.monotonic() - began
        if code != 0 or run(project, "plan", "--detailed-exitcode")[0] != 0:
            raise SystemExit(f"Error: the fleet does not converge without kills: {err[-500:]}")
    return span


def campaign(
    fleet: checks.Fleet,
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
        span = calibrate(project, rng, applies=2 if isinstance(kills, int) else 1)
        result = Campaign(fleet, seed, span=span)
        seen = checks.Seen()
        if isinstance(kills, int):
            kills = schedule(kills, signals, rng, result.span)
        for number, kill in enumerate(kills, 1):
            round_ = play(project, number, kill, rng, seen)
            result.rounds.append(round_)
            say(chaos_report.round_line(round_))
        checks.kill_all(checks.survivors(project.root))
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
    parser.add_argument(
        "--ray", default="", help="train on the Ray cluster at this Jobs API address (Ray runner)"
    )
    parser.add_argument("--label", default="latest", help="the results section to (re)write")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown results file")
    args = parser.parse_args(argv)
    signals = [s.strip().upper().removeprefix("SIG") for s in args.signals.split(",") if s.strip()]
    if not signals or any(s not in SIGNALS for s in signals):
        parser.error(f"--signals: choose from {','.join(SIGNALS)} (got {args.signals!r})")
    if args.kills < 1 or args.endpoints < 1 or not 1 <= args.models <= args.endpoints:
        parser.error("--kills and --endpoints must be >= 1, and 1 <= --models <= --endpoints")
    fleet = checks.Fleet(args.endpoints, args.models, args.trainer_seconds, ray=args.ray)
    result = campaign(fleet, seed=args.seed, kills=args.kills, signals=signals, say=print)
    print(chaos_report.table(result))
    chaos_report.write(args.results, args.label, result, argv=sys.argv[1:])
    print(f"wrote section {args.label!r} of {args.results}")
    return 0 if not any(result.totals().values()) else 1


if __name__ == "__main__":
    sys.exit(main())
