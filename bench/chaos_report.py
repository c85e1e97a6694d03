"""Renderings of a chaos campaign: a line per round, the totals table, ``bench/results/chaos.md``.

Kept apart from ``bench.chaos`` so the harness reads as what it does. The results file holds
one section per ``--label`` ("before the fixes", "after the fixes", ...): a run rewrites its
own section and keeps the others, so figures from different commits sit side by side.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bench import chaos_checks as checks

if TYPE_CHECKING:
    from bench.chaos import Campaign, Round

TITLE = "# Chaos campaign: killed applies on the local backend"
INTRO = """\
`bench/chaos.py` kills `retrain apply` (the process only, as the OOM killer or a cancelled CI
runner does, never its process group) at random moments and at placed ones, re-runs apply,
then checks. Placements: `random` (uniform over a healthy training apply's measured duration),
`training` (right after the first `training model` line), `serving` (right after the first
`... done, serving` line), `read-back` (right after the first web service file changes: the
update is written, its read-back and history line are not yet). Every count must be 0.
Orphans are counted 1 s after the apply died and then killed, so rounds stay independent
(a model whose orphaned trainer was killed is therefore not also counted as trained twice;
"trained twice" counts completed runs, from the test trainer's receipts). Leftovers (scratch,
files holding the secret) are counted in the round that left them, once.
"""


def round_line(round_: Round) -> str:
    """``round 3/KILL/serving at 2.41s (exit -9): history_missing=1`` for progress output."""
    kill = round_.kill
    when = f"at {round_.sent_at:.2f}s" if round_.sent_at is not None else "missed (apply done)"
    found = ", ".join(f"{k}={v}" for k, v in sorted(round_.found.items()) if v) or "clean"
    return (
        f"round {round_.number:>2} {kill.signal:<4} {kill.placement:<9} {when} "
        f"(exit {round_.exit_code}): {found}"
    )


def table(result: Campaign) -> str:
    totals = result.totals()
    hit = collections.Counter(k for r in result.rounds for k, v in r.found.items() if v)
    lines = ["| count | total | rounds hit |", "|---|---:|---:|"]
    lines += [
        f"| {label} | {totals[name]} | {hit[name]} |" for name, label in checks.COUNTS.items()
    ]
    return "\n".join(lines)


def kill_summary(result: Campaign) -> str:
    """Per placement x signal: kills sent, kills that landed, and rounds with any finding."""
    groups: dict[tuple[str, str], list[Round]] = collections.defaultdict(list)
    for r in result.rounds:
        groups[(r.kill.placement, r.kill.signal)].append(r)
    lines = [
        "| placement | signal | kills | landed (apply still running) | rounds with a finding |",
        "|---|---|---:|---:|---:|",
    ]
    for (placement, sig), rounds in sorted(groups.items()):
        landed = sum(r.sent_at is not None for r in rounds)
        bad = sum(any(r.found.values()) for r in rounds)
        lines.append(f"| {placement} | SIG{sig} | {len(rounds)} | {landed} | {bad} |")
    return "\n".join(lines)


def rounds_table(result: Campaign) -> str:
    lines = ["| round | signal | placement | sent at (s) | exit | last line seen | found |"]
    lines.append("|---:|---|---|---:|---:|---|---|")
    for r in result.rounds:
        sent = f"{r.sent_at:.2f}" if r.sent_at is not None else "missed"
        found = ", ".join(f"{k} {v}" for k, v in sorted(r.found.items()) if v) or "—"
        last = r.last_line.replace("|", "\\|")[:70]
        lines.append(
            f"| {r.number} | {r.kill.signal} | {r.kill.placement} | {sent} | {r.exit_code} "
            f"| `{last}` | {found} |"
        )
    return "\n".join(lines)


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout.strip()


def commit() -> str:
    """The code under test: the last commit that changed ``reconciler/`` (and if that code
    has uncommitted changes, say so), then the checkout's own commit."""
    try:
        tested = git("log", "-1", "--format=%h %s", "--", "reconciler")
        head = git("log", "-1", "--format=%h")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "reconciler")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"`{tested}`" + (" plus uncommitted changes" if dirty else "") + f" (checkout {head})"


def section(label: str, result: Campaign, argv: list[str]) -> str:
    fleet = result.fleet
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f}"
        f" at the end), Python {sys.version.split()[0]}"
    )
    command = shlex.join(["python", "-m", "bench.chaos", *argv])
    return f"""\
## {label}

Code under test: {commit()}; measured {when} on {machine}.
Fleet: {fleet.endpoints} endpoints sharing {fleet.models} models (every round changes the data,
so each round trains {fleet.models} new ones); trainer {fleet.seconds:g} s; parallelism
{fleet.parallelism}. {len(result.rounds)} kills, seed {result.seed}. A healthy training apply
took {result.span:.2f} s; the whole campaign {result.seconds:.0f} s.
Reproduce: `{command}` (from the project root after `make install`).

{table(result)}

Kill schedule:

{kill_summary(result)}

<details><summary>Every round</summary>

{rounds_table(result)}

</details>
"""


def write(path: Path, label: str, result: Campaign, *, argv: list[str]) -> None:
    """(Re)write the section ``label`` of the results file, keeping every other section."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    sections = re.split(r"(?m)^(?=## )", text)[1:]
    head = f"{TITLE}\n\n{INTRO}"  # generated, so always the current explanation
    new = section(label, result, argv)
    heading = f"## {label}\n"
    replaced = [new if s.startswith(heading) else s for s in sections]
    if new not in replaced:
        replaced.append(new)
    body = head.rstrip("\n") + "\n\n" + "\n".join(s.rstrip("\n") + "\n" for s in replaced)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
