"""Benchmark: local `plan` after a converged apply, at 100 / 1,000 / 10,000 endpoints.

Each fleet is one `forEach` entry (a real project in a temporary folder: a tiny real
trainer, ten input files shared by the endpoints, the bike example's web service
definition): `apply` once (ten models trained, every web service created), then `plan`
(which must say "No changes") is timed as a whole process, and `validate` at the largest
size. Figures: median wall time and peak resident memory per size, and the growth fit
(least squares of wall time on endpoints: milliseconds per endpoint and the fixed cost;
and the exponent between the two largest sizes, 1.0 for linear).

Usage (from the project root, after `make install`):
    .venv/bin/python -m bench.localplan [--sizes 100,1000,10000] [--runs 3]
Prints each figure, its target and the ratio; writes bench/results/localplan.md.
With ``--code DIR`` the same is measured for the retrain checked out in DIR (for
figures of an older commit: `git worktree add /tmp/old <commit>`; `--code /tmp/old`).
"""

from __future__ import annotations

import argparse
import compileall
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench import timing

PLAN_TARGET = 1.0  # seconds at 10,000 endpoints (issue 11)
RSS_TARGET = 150.0  # MiB at 10,000 endpoints
VALIDATE_TARGET = 0.8  # seconds at 10,000 endpoints
BEFORE = "6.36 s and 91 MiB for plan, 5.71 s for validate (issue 11, idle machine)"
QUIET_S = 2.1  # the statcache's TICK_NS (2 s) and a margin
GROUPS = 10  # input files (and so models) shared by the fleet's endpoints
TRAINER = timing.ROOT / "tests" / "providers" / "trainers" / "tiny.py"
DEFINITION = timing.ROOT / "examples" / "bike_rental" / "webservice.json"


def project(root: Path, n: int) -> Path:
    """A converged fleet of ``n`` endpoints in ``root``; its manifest."""
    shutil.copy(TRAINER, root / "trainer.py")
    shutil.copy(DEFINITION, root / "webservice.json")
    (root / "data").mkdir()
    for g in range(GROUPS):
        rows = "\n".join(f"{x},{(g + 1) * x}" for x in range(20))  # 20 rows: hashed at once
        (root / "data" / f"g{g}.csv").write_text(f"x,y\n{rows}\n", encoding="utf-8")
    items = ", ".join(f'{{i: "{i:05d}", g: "{i % GROUPS}"}}' for i in range(n))  # quoted: names
    manifest = root / "retrain.yaml"
    manifest.write_text(
        f"""\
apiVersion: retrain/v1
backend: {{kind: local, local: {{stateDir: .retrain}}}}
trainers:
  tiny: {{entrypoint: trainer.py:train}}
defaults:
  trainer: tiny
  asset: "Bike Demand [trained model]"
  definition: webservice.json
  version: "1"
  gate: {{metric: Score, minimum: 0.0}}
endpoints:
  - forEach: [{items}]
    name: ep-${{each.i}}
    webService: ws-${{each.i}}
    inputs: {{data: "data/g${{each.g}}.csv"}}
""",
        encoding="utf-8",
    )
    return manifest


def fit(points: list[tuple[int, float]]) -> tuple[float, float, float]:
    """(ms per endpoint, fixed seconds, exponent between the two largest sizes); with
    one size there is no growth to fit: nan for each figure (said as such, not a crash)."""
    if len(points) < 2:  # a line needs two points
        return math.nan, math.nan, math.nan
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points) or 1.0
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    (x1, y1), (x2, y2) = sorted(points)[-2:]
    exponent = math.log(y2 / y1) / math.log(x2 / x1) if x2 > x1 and y1 > 0 else float("nan")
    return slope * 1000, my - slope * mx, exponent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="endpoints per fleet")
    parser.add_argument("--runs", type=int, default=3, help="counted plan runs per size")
    parser.add_argument("--code", type=Path, help="measure the retrain checked out here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    env = dict(os.environ, CI="true")
    if args.code:
        env["PYTHONPATH"] = str(args.code.resolve())
    # As installed: retrain's bytecode written (make install does it; an edited file since
    # would otherwise be compiled again by every run, where PYTHONDONTWRITEBYTECODE is set).
    compileall.compile_dir((args.code or timing.ROOT) / "reconciler", quiet=1)
    before = timing.load()
    rows, points, validate = [], [], None
    with tempfile.TemporaryDirectory(prefix="retrain-localplan-") as tmp:
        for n in sizes:
            root = Path(tmp) / str(n)
            root.mkdir()
            manifest = str(project(root, n))
            timing.timed(
                timing.retrain("apply", "-f", manifest, "--auto-approve"), cwd=root, env=env
            )
            # The steady state: every definition the apply wrote has been quiet for the
            # statcache's tick, so the warm-up plan's cached rows are trusted (a row read
            # within 2 s of its file's change is read again, see providers/statcache.py).
            time.sleep(QUIET_S)
            plan = timing.repeat(
                timing.retrain("plan", "-f", manifest), cwd=root, runs=args.runs, env=env
            )
            rows.append((n, plan))
            points.append((n, plan.wall))
            print(f"plan at {n:>6} endpoints: {plan.wall:.3f} s, {plan.peak_mib:.1f} MiB")
            if n == max(sizes):
                validate = timing.repeat(
                    timing.retrain("validate", "-f", manifest), cwd=root, runs=args.runs, env=env
                )
    after = timing.load()
    per_endpoint, fixed, exponent = fit(points)
    largest = rows[-1][1]
    figures = [
        f"plan at {sizes[-1]:,}: {timing.verdict(largest.wall, PLAN_TARGET, 's')}",
        f"plan peak memory at {sizes[-1]:,}: {timing.verdict(largest.peak_mib, RSS_TARGET, 'MiB')}",
    ]
    if validate is not None:
        figures.append(
            f"validate at {sizes[-1]:,}: {timing.verdict(validate.wall, VALIDATE_TARGET, 's')}"
        )
    growth = (
        f"growth: {per_endpoint:.4f} ms per endpoint + {fixed:.3f} s; exponent {exponent:.2f}"
        if len(points) > 1
        else "growth: one size only (give two or more --sizes for a fit)"
    )
    for line in [*figures, growth]:
        print(line)
    timing.write(
        "localplan",
        [
            "# Local plan at 100 / 1,000 / 10,000 endpoints",
            "",
            f"One `forEach` entry, {GROUPS} shared inputs, the bike example's definition; "
            f"`plan` after a converged apply, median of {args.runs} runs (after one warm-up), "
            f"whole process, on {timing.machine()}; 1-minute load average {before} before, "
            f"{after} after.",
            "",
            "| endpoints | plan wall | plan peak memory |",
            "|---|---|---|",
            *[f"| {n:,} | {r.wall:.3f} s | {r.peak_mib:.1f} MiB |" for n, r in rows],
            "",
            *[f"- {line}" for line in figures],
            f"- {growth}",
            f"- before issue 11: {BEFORE}",
            "",
            "Reproduce: `make install`, then `.venv/bin/python -m bench.localplan` (about",
            "two minutes; most of it the 10,000-endpoint apply). An idle machine gives the",
            "figures the targets are for; a loaded one, the load above.",
        ],
    )


if __name__ == "__main__":
    main()
