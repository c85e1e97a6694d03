"""Benchmark: how long ``retrain --help`` takes, as a whole process (issue 11, point 4).

``--help`` imports the command line only: the core modules a command runs are loaded when
it runs (``reconciler/cli/lazy.py``), and deepdiff (with numpy), jsonschema, rich and the
Azure SDKs are imported where they are used. Compared with the interpreter's own start
(``python -c pass``), the floor no program can go under.

Usage (from the project root, after `make install`):
    .venv/bin/python -m bench.startup [--runs 20]
Prints the median wall time, the target and the ratio; writes bench/results/startup.md.
"""

from __future__ import annotations

import argparse
import sys

from bench import timing

TARGET = 0.10  # seconds, on an idle machine (issue 11)
BEFORE = 0.234  # seconds, measured for the issue on the code before (deepdiff pulled numpy in)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="counted runs of each command")
    args = parser.parse_args()
    before = timing.load()
    floor = timing.repeat([sys.executable, "-c", "pass"], cwd=timing.ROOT, runs=args.runs)
    help_ = timing.repeat(timing.retrain("--help"), cwd=timing.ROOT, runs=args.runs, warmup=2)
    after = timing.load()
    figure = timing.verdict(help_.wall, TARGET, "s")
    print(f"retrain --help: {figure}")
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
            f"| `python -c pass` (floor) | {floor.wall:.3f} s | {floor.peak_mib:.1f} MiB |",
            "",
            f"`retrain --help`: {figure}. Before issue 11: {BEFORE} s (idle machine).",
            "",
            "Reproduce: `make install`, then `.venv/bin/python -m bench.startup` (an idle",
            "machine gives the figure the target is for; a loaded one, the load above).",
        ],
    )


if __name__ == "__main__":
    main()
