"""What the start-up, local-plan and digest benchmarks share: a command timed as a whole
process (wall clock, and its peak resident memory from the kernel's accounting), medians
of several runs, the machine's load, and a results file.

These are figures to read, not tests to pass: the machine is shared, so each results file
says how loaded it was while measuring (the 1-minute load average before and after), and
quotes medians.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parents[1]
KIB = 1024  # ru_maxrss is in KiB on Linux


@dataclass(frozen=True, slots=True)
class Run:
    wall: float  # seconds
    peak_mib: float  # the process's peak resident set
    code: int


def timed(
    args: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None, check: bool = True
) -> Run:
    """Run ``args`` to completion, its output discarded; its wall time and peak memory."""
    began = time.perf_counter()
    child = subprocess.Popen(
        list(args),
        cwd=cwd,
        env=dict(os.environ if env is None else env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert child.stderr is not None
    err = child.stderr.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - began
    child.returncode = os.waitstatus_to_exitcode(status)
    if check and child.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {child.returncode}: {err.decode()[-2000:]}")
    return Run(wall, usage.ru_maxrss / KIB, child.returncode)


def median_of(runs: Sequence[Run]) -> Run:
    return Run(
        statistics.median(r.wall for r in runs),
        statistics.median(r.peak_mib for r in runs),
        max(r.code for r in runs),
    )


def repeat(
    args: Sequence[str],
    *,
    cwd: Path,
    runs: int,
    warmup: int = 1,
    env: Mapping[str, str] | None = None,
) -> Run:
    """The median of ``runs`` runs after ``warmup`` uncounted ones."""
    for _ in range(warmup):
        timed(args, cwd=cwd, env=env)
    return median_of([timed(args, cwd=cwd, env=env) for _ in range(runs)])


def retrain(*args: str) -> list[str]:
    """The CLI as a user runs it (the venv's console script when there is one)."""
    script = Path(sys.executable).parent / "retrain"
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "reconciler", *args]


def load() -> str:
    """The machine's 1-minute load average, for the results file."""
    return f"{os.getloadavg()[0]:.2f}"


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def verdict(figure: float, target: float, unit: str) -> str:
    """``0.08 s (target <= 0.10 s, ratio 0.80: meets it)``."""
    ratio = figure / target
    met = "meets it" if ratio <= 1 else "misses it"
    return f"{figure:.3f} {unit} (target <= {target:g} {unit}, ratio {ratio:.2f}: {met})"


def write(name: str, lines: Sequence[str]) -> Path:
    """Write ``bench/results/NAME.md``."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
