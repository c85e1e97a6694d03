"""Benchmark: the subprocess runner vs the Ray runner on this machine.

``JOBS`` independent models (8 endpoints, each its own data, so 8 fingerprints), each job a
fixed amount of CPU work (``bench/ray_trainer.py``), trained by a real ``retrain apply``
(the CLI as a subprocess) once with the subprocess runner (``parallelism`` = the machine's
CPUs) and once with the Ray runner on a local Ray head started here with as many CPUs
(one CPU per job, so as many jobs at once). Each repeat is a fresh project; runners
alternate, so a busy neighbour slows both alike. Reported per runner: wall time of the
apply (median and range over the repeats) and the overhead per job,
``wall * slots / jobs - cost``: what each job costs beyond its own CPU work, retrain's
start-up included, where ``cost`` is the work timed in-process here first. Also: how long
``ray start`` takes to answer the Jobs API.

Usage (after ``make install-test``, which installs Ray)::

    .venv/bin/python -m bench.ray [--jobs 8] [--rounds 1000000] [--repeats 3]

Prints a table and writes ``bench/results/ray.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import ray_trainer, rayhead

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "ray.md"
SLOTS = rayhead.CPUS  # jobs at once in both runners: the machine's 2 cores
RUN_TIMEOUT = 900.0  # seconds for one apply: far above 8 jobs of a few seconds
COST_SAMPLES = 3  # in-process timings of one job's work; the median is its cost


@dataclass
class Figures:
    runner: str
    walls: list[float] = field(default_factory=list)

    def wall(self) -> float:
        return statistics.median(self.walls)

    def overhead(self, jobs: int, cost: float) -> float:
        return self.wall() * SLOTS / jobs - cost


def manifest(jobs: int, rounds: int, address: str) -> str:
    runner = f", runner: {{kind: ray, address: '{address}'}}" if address else ""
    items = ", ".join(f"{{i: '{i}'}}" for i in range(jobs))
    return f"""\
apiVersion: retrain/v1
backend: {{kind: local, local: {{parallelism: {SLOTS}{runner}}}}}
trainers:
  work:
    entrypoint: trainer/ray_trainer.py:train
    parameters: {{rounds: {rounds}}}
    timeout: {RUN_TIMEOUT:g}
defaults: {{trainer: work, asset: "Bike Demand [trained model]", definition: webservice.json,
  version: "1"}}
endpoints:
  - forEach: [{items}]
    name: ep-${{each.i}}
    webService: ws-${{each.i}}
    inputs: {{data: "data/d${{each.i}}.csv"}}
"""


def make_project(root: Path, jobs: int, rounds: int, address: str) -> Path:
    (root / "trainer").mkdir(parents=True)
    shutil.copy(HERE / "ray_trainer.py", root / "trainer" / "ray_trainer.py")
    shutil.copy(ROOT / "examples" / "bike_rental" / "webservice.json", root / "webservice.json")
    (root / "data").mkdir()
    for i in range(jobs):
        (root / "data" / f"d{i}.csv").write_text(f"y\n{i}\n{i + 1}\n")
    (root / "retrain.yaml").write_text(manifest(jobs, rounds, address))
    return root


def timed_apply(project: Path) -> float:
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "--auto-approve", "-f", "retrain.yaml"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    wall = time.monotonic() - began
    if done.returncode != 0:
        raise SystemExit(f"Error: apply failed in {project}: {done.stderr[-1000:]}")
    return wall


def job_cost(rounds: int) -> float:
    samples = []
    for _ in range(COST_SAMPLES):
        began = time.perf_counter()
        ray_trainer.work(rounds)
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


def measure(jobs: int, rounds: int, repeats: int, temp: Path) -> tuple[float, float, list[Figures]]:
    cost = job_cost(rounds)
    print(f"one job's work, in-process: {cost:.2f} s")
    head = rayhead.start(temp / "ray")
    print(f"ray start answered after {head.started_in:.1f} s")
    figures = [Figures("subprocess"), Figures("ray")]
    try:
        for repeat in range(repeats):
            for figure in figures:
                address = head.address if figure.runner == "ray" else ""
                project = make_project(temp / f"{figure.runner}-{repeat}", jobs, rounds, address)
                figure.walls.append(timed_apply(project))
                print(f"{figure.runner} #{repeat + 1}: {figure.walls[-1]:.2f} s")
    finally:
        rayhead.stop(head)
    return cost, head.started_in, figures


def report(
    jobs: int, rounds: int, cost: float, started: float, figures: Sequence[Figures], load: str
) -> str:
    ideal = jobs * cost / SLOTS
    rows = "\n".join(
        f"| {f.runner} | {f.wall():.2f} | {min(f.walls):.2f} to {max(f.walls):.2f} | "
        f"{f.overhead(jobs, cost):.2f} |"
        for f in figures
    )
    import ray  # the installed version, for the record

    return f"""# Ray runner vs subprocess runner

{jobs} independent models, each job {rounds:,} sha512 rounds of CPU work
(`bench/ray_trainer.py`), one `retrain apply` per runner and repeat (the CLI as a
subprocess, a fresh project each time), {SLOTS} jobs at once in both: the subprocess runner
with `parallelism: {SLOTS}`, the Ray runner on a local head started with `--num-cpus {SLOTS}`
(one CPU per job). One job's work alone, in-process: **{cost:.2f} s**; the ideal wall time
on {SLOTS} slots is {ideal:.2f} s. Overhead per job = wall * {SLOTS} / {jobs} - {cost:.2f} s:
what each job costs beyond its own work (retrain's start-up, plan and apply included).

| runner | wall, median (s) | range, {len(figures[0].walls)} repeats (s) | overhead per job (s) |
|---|---|---|---|
{rows}

`ray start --head` took **{started:.1f} s** until its Jobs API answered.

Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, Ray {ray.__version__};
load average {load}. Figures taken while other work shares the machine are not comparable
with those of an idle one: re-run on an idle machine for the record.

Reproduce: `make install-test && .venv/bin/python -m bench.ray --jobs {jobs} --rounds {rounds}`
(writes this file).
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ray", description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=8, help="independent models (8)")
    parser.add_argument("--rounds", type=int, default=1_000_000, help="work per job (1000000)")
    parser.add_argument("--repeats", type=int, default=3, help="applies per runner (3)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown results file")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.rounds < 1 or args.repeats < 1:
        parser.error("--jobs, --rounds and --repeats must be >= 1")
    before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="rt-bench-ray-") as tmp:
        cost, started, figures = measure(args.jobs, args.rounds, args.repeats, Path(tmp))
    after = os.getloadavg()
    load = f"{before[0]:.1f} before, {after[0]:.1f} after (1 min)"
    text = report(args.jobs, args.rounds, cost, started, figures, load)
    print(text)
    args.results.write_text(text, encoding="utf-8")
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
