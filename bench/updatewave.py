"""Benchmark: Resource Manager requests per update, and time against the token buckets.

Issue 11's rows for the azure backend's "new" web services, each one command:

1. steady state: N services already serving their models; ``plan`` reads each once
   (plus one paged list of the resource group, for orphans) and writes nothing;
2. the update wave: N services switching to a model already trained; ``apply``
   sends, per service, the plan's GET, one PATCH built from it, the operation polls
   the service asks for, and one read-back (the operation's final GET);
3. the same wave at the defaults: no ``pollSeconds`` and no ``networkParallelism`` in
   the manifest (polls back off from 0.5 s to 5 s; 25 requests at once).

Everything runs for real: the CLI's engine and the azure provider, over HTTPS, against
the fake Resource Manager (which enforces Azure's token buckets per subscription: reads
250 burst refilling 25/s, writes 200 / 10 per s, and answers every request; its log is
what is counted) and the Azurite blob emulator (models, history, lock).

The *two-bucket bound* for a run is the least time Azure's buckets allow for the
requests it made: max((reads - 250) / 25, (writes - 200) / 10, 0) seconds. Targets:
at most 3 reads and 1 PATCH per service besides the polls; a wave within 1.10x the
bound for its count (1.5x at the defaults).

Usage (from the project root, after ``make install-test``, which installs Azurite):
    .venv/bin/python -m bench.updatewave [--services 200] [--steady 600] [--latency 0]
        [--parallelism N] [--poll-seconds 0.05] [--retry-after 0]
Prints each figure, its target and the ratio, and writes bench/results/updatewave.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import fleet
from reconciler import apply, engine, plan, settings
from reconciler.providers.azurecommon import throttle
from tests.azure.conftest import RG, SUB, TRAINING_DEFINITION
from tests.azure.trainers import mean_trainer
from tests.fakes.azurite import Azurite
from tests.fakes.server import FakeAzure

RESULTS = Path(__file__).parent / "results"
READS, WRITES = throttle.LIMITS["reads"], throttle.LIMITS["writes"]
READS_PER_SERVICE = 3  # target: at most this many reads per service, polls aside
RATIO_TUNED = 1.10  # target: a wave within 10% of the buckets' bound
RATIO_DEFAULTS = 1.5  # target at the default pollSeconds and networkParallelism
OTHER_MODEL = "0" * 64  # the fingerprint the services serve before the wave


@dataclass(frozen=True)
class Knobs:
    """What a scenario's manifest says (None: the key is left out, the default holds)."""

    poll_seconds: float | None
    parallelism: int | None


def manifest(root: Path, fake: FakeAzure, bes_url: str, n: int, knobs: Knobs) -> Path:
    """The fleet benchmark's manifest with this scenario's knobs (left out: the defaults)."""
    lines = (
        f"pollSeconds: {knobs.poll_seconds}" if knobs.poll_seconds is not None else "",
        f"networkParallelism: {knobs.parallelism}" if knobs.parallelism is not None else "",
    )
    return fleet.manifest(root, fake, bes_url, n, "".join(f"    {x}\n" for x in lines if x))


def tally(fake: FakeAzure, n: int) -> dict[str, Any]:
    """The Resource Manager requests in the fake's log, by kind, and per service."""
    kinds: Counter[str] = Counter()
    throttled = 0
    for r in fake.server.requests():
        if not r.path.startswith("/subscriptions"):
            continue
        throttled += r.status == 429
        path = r.path.split("?")[0]
        if "/operationsStatus/" in path:
            kinds["poll"] += 1
        elif r.method == "GET" and path.lower().endswith("/webservices"):
            kinds["list"] += 1
        else:
            kinds[r.method] += 1
    reads = kinds["GET"] + kinds["list"] + kinds["poll"]
    writes = kinds["PATCH"] + kinds["PUT"] + kinds["POST"]
    bound = max(0.0, (reads - READS[0]) / READS[1], (writes - WRITES[0]) / WRITES[1])
    return {
        "requests": dict(sorted(kinds.items())),
        "reads_per_service": round((kinds["GET"] + kinds["list"]) / n, 3),
        "patches_per_service": round(kinds["PATCH"] / n, 3),
        "polls_per_service": round(kinds["poll"] / n, 3),
        "bound_seconds": round(bound, 2),
        "throttled_429": throttled,
    }


def open_fleet(fake: FakeAzure, emulator: Azurite, n: int, knobs: Knobs, label: str) -> Path:
    bes_url = fake.seed_arm_training_service(
        SUB,
        RG,
        "training",
        TRAINING_DEFINITION,
        mean_trainer,
        model_outputs={"output1"},
        keys={"primary": fleet.BES_KEY, "secondary": fleet.BES_KEY},
    )
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-updatewave-{label}"
    root.mkdir(exist_ok=True)
    fleet._upload(emulator, b"y\n5\n6\n9\n")
    return manifest(root, fake, bes_url, n, knobs)


def train_once(sess: engine.Session) -> None:
    """Store the manifest's model beforehand, so the wave is updates only."""
    wanted = sess.desired()[0]
    change = plan.Change(
        plan.Action.RETRAIN, wanted.name, "", "", None, None, train=wanted.fingerprint
    )
    job = apply.training_jobs(plan.Plan((change,)), {wanted.name: wanted})[0]
    sess.provider.train(job)


def scenario(
    emulator: Azurite,
    env: dict[str, str],
    n: int,
    knobs: Knobs,
    args: argparse.Namespace,
    *,
    label: str,
    wave: bool,
) -> dict[str, Any]:
    options: dict[str, Any] = {"lro_polls": 1, "retry_after": args.retry_after}
    with FakeAzure(blob_connection_string=emulator.connection_string, arm_options=options) as fake:
        path = open_fleet(fake, emulator, n, knobs, label)
        sess = engine.open_session(settings.Settings(manifest=path), env=env)
        if wave:
            train_once(sess)
        fp = OTHER_MODEL if wave else sess.desired()[0].fingerprint
        fleet.seed_in_sync(fake, sess, fp_override=fp)
        if args.latency:
            fake.server.add_latency(args.latency, path="/subscriptions/.*")
        fake.server.reset_log()
        began = time.monotonic()
        run: Callable[[], Any] = (
            (lambda: engine.run_apply(sess, confirm=lambda _p: True))
            if wave
            else (lambda: engine.plan_now(sess))
        )
        outcome = run()
        seconds = time.monotonic() - began
        if wave:
            _plan, report = outcome
            assert report is not None and report.ok, report
            assert report.count(apply.Status.APPLIED) == n, report
        else:
            assert outcome.is_empty(), "steady state: the plan must change nothing"
        found = tally(fake, n)
        bound = found["bound_seconds"]
        return {
            "services": n,
            "seconds": round(seconds, 2),
            "ratio": round(seconds / bound, 3) if bound else None,
            "network_parallelism": sess.network_parallelism,
            "poll_seconds": knobs.poll_seconds if knobs.poll_seconds is not None else 5.0,
            **found,
        }


def figures(results: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(figure, measured, target, ratio or verdict) rows."""
    rows = []
    for label, target in (("wave", RATIO_TUNED), ("wave_defaults", RATIO_DEFAULTS)):
        r = results[label]
        reads = r["reads_per_service"]
        rows.append(
            (
                f"{label}: reads + PATCHes per service (polls aside)",
                f"{reads:g} + {r['patches_per_service']:g} (+ {r['polls_per_service']:g} polls)",
                f"<= {READS_PER_SERVICE} + 1",
                f"{reads / READS_PER_SERVICE:.2f}",
            )
        )
        ratio = r["ratio"]
        rows.append(
            (
                f"{label}: seconds against the two-bucket bound",
                f"{r['seconds']} s (bound {r['bound_seconds']} s)",
                f"<= {target:.2f}x",
                "—" if ratio is None else f"{ratio:.3f}x ({ratio / target:.2f} of target)",
            )
        )
    steady = results["steady"]
    rows.append(
        (
            "steady: reads per service (one list per plan included)",
            f"{steady['reads_per_service']:g} in {steady['seconds']} s "
            f"(bound {steady['bound_seconds']} s)",
            "1 + 1 list",
            "—" if steady["ratio"] is None else f"{steady['ratio']:.3f}x of the bound",
        )
    )
    return rows


def render(meta: dict[str, str], results: dict[str, dict[str, Any]]) -> str:
    table = [
        "| figure | measured | target | ratio |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in figures(results)),
    ]
    runs = [
        "| run | services | seconds | bound (s) | network parallelism | pollSeconds "
        "| Resource Manager requests | 429s |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for label, r in results.items():
        req = ", ".join(f"{k} {v}" for k, v in r["requests"].items())
        runs.append(
            f"| {label} | {r['services']} | {r['seconds']} | {r['bound_seconds']} | "
            f"{r['network_parallelism']} | {r['poll_seconds']} | {req} | {r['throttled_429']} |"
        )
    return "\n".join(
        [
            "# Update wave and steady state: Resource Manager requests and time",
            "",
            f"Measured {meta['date']} on {meta['machine']}; {meta['load']}.",
            f"Reproduce: `{meta['command']}` from the project root after `make install-test`",
            "(which installs the Azurite blob emulator the benchmark starts).",
            "",
            "What runs: the engine and the azure provider against the fake Resource Manager",
            "over HTTPS (Azure's token buckets per subscription: reads 250 burst, 25/s; writes",
            "200, 10/s) and Azurite. Requests are counted from the fake's log. The two-bucket",
            "bound is the least time those buckets allow for the requests the run made:",
            "max((reads - 250) / 25, (writes - 200) / 10) s, polls included in the reads.",
            "`wave` is the manifest with the flags' pollSeconds and networkParallelism,",
            "`wave_defaults` leaves both out (polls back off 0.5 s to 5 s; 25 at once).",
            "",
            *table,
            "",
            *runs,
            "",
            "Per service, an update is the plan's GET, one PATCH built from that definition",
            "(the apply holds the lock), the operation polls the fake asks for (it answers",
            "`InProgress` once, then `Succeeded`), and the operation's final GET, which is",
            "also the read-back. Before issue 11 it was 6 reads and 1 PATCH (a second GET",
            "before the PATCH and a separate read-back GET), polled every pollSeconds.",
            "",
            "At the defaults each update also waits 0.5 s before its second poll (the fake",
            "sends `Retry-After: 0`, which counts as none), so a worker's update takes longer",
            "and 25 workers keep the read bucket busy only while each request is quick: on a",
            "loaded machine (the fake runs in the benchmark's own process) that run is the one",
            "that moves most between runs.",
            "",
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--services", type=int, default=200, help="services in the update wave")
    ap.add_argument("--steady", type=int, default=600, help="services in the steady state")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to each request")
    ap.add_argument("--parallelism", type=int, default=None, help="networkParallelism")
    ap.add_argument("--poll-seconds", type=float, default=0.05, help="pollSeconds")
    ap.add_argument("--retry-after", type=int, default=0, help="the fake's Retry-After")
    ap.add_argument("--load", default="load not recorded", help="what else ran meanwhile")
    args = ap.parse_args()
    tuned = Knobs(args.poll_seconds, args.parallelism)
    results: dict[str, dict[str, Any]] = {}
    with Azurite() as emulator:
        env = dict(os.environ) | {
            "BENCH_TOKEN": "bench-arm-token",
            "BENCH_KEY": fleet.BES_KEY,
            "BENCH_STORAGE": emulator.connection_string,
        }
        for label, n, knobs, wave in (
            ("steady", args.steady, tuned, False),
            ("wave", args.services, tuned, True),
            ("wave_defaults", args.services, Knobs(None, None), True),
        ):
            results[label] = scenario(emulator, env, n, knobs, args, label=label, wave=wave)
            print(label, results[label], flush=True)
    flags = (
        f"--services {args.services} --steady {args.steady} --latency {args.latency} "
        f"--poll-seconds {args.poll_seconds} --retry-after {args.retry_after}"
        + (f" --parallelism {args.parallelism}" if args.parallelism else "")
    )
    meta = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
        "load": args.load,
        "command": f".venv/bin/python -m bench.updatewave {flags}",
    }
    RESULTS.mkdir(exist_ok=True)
    text = render(meta, results)
    (RESULTS / "updatewave.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
