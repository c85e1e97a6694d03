"""Benchmark: how long ``retrain --help`` takes, as a whole process (issue 11, point 4).

``--help`` imports the group only: it lists the commands from its table without importing
them (``reconciler/cli/group.py``), the core modules a command runs are loaded when it runs
(``reconciler/cli/lazy.py``), and deepdiff (with numpy), jsonschema, rich and the Azure
SDKs are imported where they are used. Compared with the interpreter's own start
(``python -c pass``), the floor no program can go under.

The figure is for retrain's modules byte-compiled, as an install leaves them (pip compiles
what it installs; an editable install is compiled on first import) so the benchmark
compiles them first. It also times a start that compiles them from source every time, as
any start does where ``PYTHONDONTWRITEBYTECODE`` is set and no bytecode was ever written
(a copy of the package without ``__pycache__``, first on the path).

Usage (from the project root, after `make install`):
    .venv/bin/python -m bench.startup [--runs 20]
Prints the median wall time, the target and the ratio; writes bench/results/startup.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import timing

TARGET = 0.10  # seconds, on an idle machine (issue 11)
BEFORE = 0.234  # seconds, measured for the issue on the code before (deepdiff pulled numpy in)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="counted runs of each command")
    args = parser.parse_args()
    compile_package()
    before = timing.load()
    floor = timing.repeat([sys.executable, "-c", "pass"], cwd=timing.ROOT, runs=args.runs)
    with tempfile.TemporaryDirectory() as folder:
        help_, uncached = alternating(
            timing.retrain("--help"), [None, uncompiled_env(Path(folder))], runs=args.runs
        )
    after = timing.load()
    figure = timing.verdict(help_.wall, TARGET, "s")
    print(f"retrain --help: {figure}")
    print(f"retrain --help, compiling retrain's modules at each start: {uncached.wall:.3f} s")
    print(f"python -c pass: {floor.wall:.3f} s (the interpreter's own start)")
    timing.write(
        "startup",
        [
            "# Start-up: `retrain --help`",
            "",
            f"Median of {args.runs} runs each (after warm-up runs), whole process, on "
            f"{timing.machine()}; 1-minute load average {before} before, {after} after.",
            "",
            "| command | median wall | peak memory |",
            "|---|---|---|",
            f"| `retrain --help` | {help_.wall:.3f} s | {help_.peak_mib:.1f} MiB |",
            f"| `retrain --help`, retrain's modules compiled at each start (no bytecode) | "
            f"{uncached.wall:.3f} s | {uncached.peak_mib:.1f} MiB |",
            f"| `python -c pass` (floor) | {floor.wall:.3f} s | {floor.peak_mib:.1f} MiB |",
            "",
            f"`retrain --help`: {figure}. Before issue 11: {BEFORE} s (idle machine).",
            "",
            "The first row runs retrain's modules from bytecode, as an install leaves them",
            "(the benchmark byte-compiles the package first); the second compiles them from",
            "source at every start, as any start does with `PYTHONDONTWRITEBYTECODE` set and",
            f"no bytecode written (set here: {DONT_WRITE or 'no'}).",
            "",
            "Reproduce: `make install`, then `.venv/bin/python -m bench.startup` (an idle",
            "machine gives the figure the target is for; a loaded one, the load above).",
        ],
    )


DONT_WRITE = os.environ.get("PYTHONDONTWRITEBYTECODE", "")


WARMUP = 2  # uncounted runs of each: the first start after a change reads cold files


def alternating(
    args: list[str], envs: list[dict[str, str] | None], *, runs: int
) -> tuple[timing.Run, ...]:
    """The median run of ``args`` under each environment, the runs taken in turn, so a
    change in the machine's load weighs on each alike (the two rows are compared)."""
    for _ in range(WARMUP):
        for env in envs:
            timing.timed(args, cwd=timing.ROOT, env=env)
    done: list[list[timing.Run]] = [[] for _ in envs]
    for _ in range(runs):
        for runs_of, env in zip(done, envs, strict=True):
            runs_of.append(timing.timed(args, cwd=timing.ROOT, env=env))
    return tuple(timing.median_of(r) for r in done)


def compile_package() -> None:
    """Byte-compile retrain's modules, as installing does (pip compiles what it installs;
    an editable install's modules are compiled on first import, unless
    ``PYTHONDONTWRITEBYTECODE`` is set: then every start compiled them from source)."""
    package = timing.ROOT / "reconciler"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)


def uncompiled_env(folder: Path) -> dict[str, str]:
    """An environment whose ``retrain`` imports a copy of the package with no bytecode
    and writes none: every start compiles retrain's modules from source."""
    shutil.copytree(
        timing.ROOT / "reconciler",
        folder / "reconciler",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return {**os.environ, "PYTHONPATH": str(folder), "PYTHONDONTWRITEBYTECODE": "1"}


if __name__ == "__main__":
    main()
