"""Benchmark: the local provider's ``observe`` + ``managed`` in a no-change plan.

The stage of ``bench.localplan``'s plan that reads the web services: a converged fleet
(``bench.localplan.project``, applied once), every definition quiet for the statcache's
tick so its cached row is trusted, then, in each of several fresh processes (as each plan
is one), the session opened as ``plan`` opens it and ``observe`` and ``managed`` of every
endpoint timed in-process (the project byte-compiled first: this sandbox sets
``PYTHONDONTWRITEBYTECODE``, and compiling would be counted). Figures: the medians.

Usage (from the project root, after `make install`):
    .venv/bin/python -m bench.localobserve [--endpoints 10000] [--runs 7] [--project DIR]
``--project`` reuses (or, when empty, makes) a converged fleet there instead of a
temporary one, skipping the ~35 s apply on later runs. Prints the figures (a stage of
the plan ``bench.localplan`` times against its target); writes bench/results/localobserve.md.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import localplan, timing

BEFORE = "514 ms: observe 366 ms, managed 148 ms (median of 7 processes, load 0.3, at 5bf2980)"
QUIET_S = 2.1  # the statcache's TICK_NS (2 s) and a margin: rows younger are re-read


def probe(manifest: Path) -> dict[str, float]:
    """One plan's observe and managed, timed in this process (milliseconds)."""
    from reconciler import engine, settings

    session = engine.open_session(settings.Settings(actor="bench", manifest=manifest), env={})
    start = time.perf_counter()
    session.provider.observe(session.endpoints)
    middle = time.perf_counter()
    session.provider.managed(session.endpoints)
    end = time.perf_counter()
    return {"observe": (middle - start) * 1000, "managed": (end - middle) * 1000}


def converged(root: Path, n: int, env: dict[str, str]) -> Path:
    """A converged fleet of ``n`` in ``root`` (made and applied when not there yet), its
    definitions quiet for a tick and their rows cached by a plan."""
    manifest = root / "retrain.yaml"
    if not (root / ".retrain" / "webservices").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        localplan.project(root, n)
        apply = timing.retrain("apply", "-f", str(manifest), "--auto-approve")
        subprocess.run(apply, cwd=root, env=env, check=True, capture_output=True)
    time.sleep(QUIET_S)
    plan = timing.retrain("plan", "-f", str(manifest))
    subprocess.run(plan, cwd=root, env=env, check=True, capture_output=True)  # rows kept
    return manifest


def measure(manifest: Path, runs: int, env: dict[str, str]) -> list[dict[str, float]]:
    """``probe`` in ``runs`` fresh processes."""
    command = [sys.executable, "-m", "bench.localobserve", "--probe", str(manifest)]
    out = []
    for _ in range(runs):
        done = subprocess.run(command, cwd=timing.ROOT, env=env, check=True, capture_output=True)
        out.append(json.loads(done.stdout))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7, help="fresh processes measured")
    parser.add_argument("--project", type=Path, help="keep the converged fleet here")
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(args.probe)))
        return
    env = dict(os.environ, CI="true")
    compileall.compile_dir(timing.ROOT / "reconciler", quiet=1)
    with tempfile.TemporaryDirectory(prefix="retrain-localobserve-") as tmp:
        root = args.project or Path(tmp) / str(args.endpoints)
        manifest = converged(root.resolve(), args.endpoints, env)
        before = timing.load()
        runs = measure(manifest, args.runs, env)
        after = timing.load()
    observe = statistics.median(r["observe"] for r in runs)
    managed = statistics.median(r["managed"] for r in runs)
    total = statistics.median(r["observe"] + r["managed"] for r in runs)
    figure = (
        f"observe + managed at {args.endpoints:,}: {total:.1f} ms (a stage of "
        "bench.localplan's plan, which has the issue's target)"
    )
    print(f"observe {observe:.1f} ms, managed {managed:.1f} ms (medians)")
    print(figure)
    timing.write(
        "localobserve",
        [
            "# Local observe + managed in a no-change plan",
            "",
            f"{args.endpoints:,} endpoints converged (`bench.localplan`'s fleet), rows cached;",
            f"median of {args.runs} fresh processes, in-process timing, on {timing.machine()};",
            f"1-minute load average {before} before, {after} after.",
            "",
            f"- {figure}",
            f"- observe {observe:.1f} ms, managed {managed:.1f} ms (medians of each)",
            f"- before: {BEFORE}",
            "",
            "Reproduce: `make install`, then `.venv/bin/python -m bench.localobserve` (about",
            "a minute, most of it the apply; `--project DIR` keeps the fleet for later runs).",
        ],
    )


if __name__ == "__main__":
    main()
