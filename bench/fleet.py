"""Benchmark: a fleet of Resource Manager web services under Azure's throttling.

Runs the real provider against the fake Resource Manager (which enforces the
documented token buckets: reads 250 burst / 25 per s, writes 200 / 10 per s)
and real blob storage (Azurite):

1. steady state: N managed services already serving their models; `plan`
   must read each once, write nothing, and finish near the bucket's limit
   (the first 250 reads are free, then 25 per second) with no 429 (the pacer
   keeps a reserve of 10% of the burst and refills 2% slower than the bucket,
   so its floor is (N - 225) / 24.5 s);
2. the same with client-side pacing switched off, for comparison;
3. a shared subscription: the same plan just after another client emptied the
   read bucket, with the pacer, and with the pacer as it was before its margin
   and shared pause (each worker then draws its own 429s);
4. an update wave: M services switching to an already-trained model (the
   issue 11 figures for it, against targets, are ``bench.updatewave``'s).

Usage (from the project root, after `make install-test`, which also installs Azurite):
    .venv/bin/python -m bench.fleet [--services 600] [--updates 120]
Prints the count of 429s per scenario and writes bench/results/fleet.json and
bench/results/fleet.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from collections import Counter
from pathlib import Path
from typing import Any

from reconciler import apply, engine, model, plan, redact, settings
from reconciler.providers.azure import arm, config, provider
from reconciler.providers.azurecommon import throttle
from tests.azure.conftest import (
    ASSET,
    RG,
    SUB,
    TRAINING_DEFINITION,
    predictive_definition,
)
from tests.azure.trainers import mean_trainer
from tests.fakes.azurite import Azurite
from tests.fakes.server import FakeAzure

RESULTS = Path(__file__).parent / "results"
BES_KEY = "bench-bes-key"  # the fake training service's key (secrets must be 4+ characters)
READ_BURST, READ_RATE = throttle.LIMITS["reads"]
MARGIN = throttle.MARGIN  # of the burst, held in reserve
RATE_MARGIN = throttle.RATE_MARGIN  # of the refill rate, left unused
UNLIMITED = 1e12  # tokens and tokens per second of a pacer that never waits


FLEET_KNOBS = "    pollSeconds: 0.05\n    parallelism: 16\n"  # fast polls, the bench's 16 at once


def manifest(root: Path, fake: FakeAzure, bes_url: str, n: int, knobs: str = FLEET_KNOBS) -> Path:
    """A fleet of ``n`` Resource Manager services on one trainer; ``knobs``: more lines of
    the ``azure`` section (indented), as each benchmark sets them."""
    cities = ", ".join(f'{{i: "{i:04d}"}}' for i in range(n))  # quoted: 0001 is a name
    text = f"""\
apiVersion: retrain/v1
backend:
  kind: azure
  azure:
    subscriptionId: {SUB}
    resourceGroup: {RG}
    auth: {{tokenEnv: BENCH_TOKEN}}
    endpoints:
      resourceManager: "{fake.arm_base_url}"
      classicManagement: "{fake.classic_base_url}"
    caBundle: {fake.ca_bundle_path}
    storage: {{connectionString: "${{env:BENCH_STORAGE}}", container: bench}}
{knobs}trainers:
  mean:
    bes: {{url: "{bes_url}", apiKey: "${{env:BENCH_KEY}}"}}
defaults: {{trainer: mean, asset: "{ASSET}", version: "1"}}
endpoints:
  - forEach: [{cities}]
    name: svc-${{each.i}}
    webService: svc-${{each.i}}
    inputs: {{data: data/shared.csv}}
"""
    path = root / "retrain.yaml"
    path.write_text(text)
    return path


def session(path: Path, env: dict[str, str], *, pacer: throttle.Pacer) -> engine.Session:
    base = engine.open_session(settings.Settings(manifest=path, parallelism=16), env=env)
    cfg = config.from_section(base.manifest.backend.section, manifest_dir=path.parent, env=env)
    prov = provider.AzureProvider(
        cfg,
        env=env,
        scrub=redact.Redactor(),
        credential=arm.StaticToken("t"),
        workers=16,
        pacer=pacer,
    )
    return engine.Session(
        base.settings, base.manifest, prov, base.endpoints, parallelism=base.parallelism
    )


def counts(fake: FakeAzure) -> dict[str, Any]:
    reqs = [r for r in fake.server.requests() if not r.path.startswith("/_fake")]
    kinds = Counter(r.method for r in reqs if r.path.startswith("/subscriptions"))
    return {
        "requests": dict(kinds),
        "throttled_429": sum(r.status == 429 for r in reqs),
        "failed": sum((r.status or 0) >= 500 for r in reqs),
    }


def seed_in_sync(fake: FakeAzure, sess: engine.Session, *, fp_override: str | None = None) -> str:
    """Make every service a managed one serving the manifest's model (or another)."""
    wish = sess.desired()[0]
    fp = fp_override or wish.fingerprint
    prov = sess.provider
    assert isinstance(prov, provider.AzureProvider)
    for t in sess.desired():
        doc = predictive_definition(prov.model_uri(fp))
        doc["tags"] = {
            model.TAG_MANAGED_BY: model.MANAGED_BY,
            model.TAG_ENDPOINT: t.name,
            model.TAG_FINGERPRINT: fp,
            model.TAG_VERSION: "1",
        }
        fake.arm.seed_web_service(SUB, RG, t.endpoint.web_service, doc)
    return wish.fingerprint


def timed_plan(
    fake: FakeAzure, sess: engine.Session, *, paced: bool, burst: float = READ_BURST
) -> dict[str, Any]:
    fake.server.reset_log()
    began = time.monotonic()
    the_plan = engine.plan_now(sess)
    seconds = time.monotonic() - began
    n = len(the_plan.changes)
    floor = max(0.0, (n - burst) / READ_RATE)
    margin = max(0.0, (n - burst * (1 - MARGIN)) / (READ_RATE * (1 - RATE_MARGIN)))
    return {
        "endpoints": n,
        "seconds": round(seconds, 2),
        "bucket_floor_seconds": round(floor, 2),
        **({"margin_floor_seconds": round(margin, 2)} if paced else {}),
        "changes": sum(c.action is not plan.Action.NOOP for c in the_plan.changes),
        **counts(fake),
    }


def run(services: int, updates: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with Azurite() as emulator:
        env = dict(os.environ) | {
            "BENCH_TOKEN": "bench-arm-token",
            "BENCH_KEY": BES_KEY,
            "BENCH_STORAGE": emulator.connection_string,
        }
        for label, pacer, drained in (
            ("steady_state_paced", throttle.Pacer(), False),
            ("steady_state_unpaced", _unlimited(), False),
            ("shared_subscription_paced", throttle.Pacer(), True),
            ("shared_subscription_no_margin_no_pause", _exact(), True),
        ):
            with FakeAzure(
                blob_connection_string=emulator.connection_string, arm_options={"lro_polls": 1}
            ) as fake:
                path = fleet(fake, emulator, label, services, b"y\n1\n2\n3\n")
                sess = session(path, env, pacer=pacer)
                seed_in_sync(fake, sess)
                if drained:  # another client just used the subscription's whole read burst
                    fake.arm.drain(SUB, "reads")
                results[label] = timed_plan(
                    fake,
                    sess,
                    paced=pacer.buckets["reads"].rate < UNLIMITED,
                    burst=0.0 if drained else READ_BURST,
                )
                print(label, results[label], flush=True)
        results["update_wave"] = update_wave(emulator, env, updates)
        print("update_wave", results["update_wave"], flush=True)
    return results


def fleet(fake: FakeAzure, emulator: Azurite, label: str, n: int, data: bytes) -> Path:
    """A training service, the shared input blob, and a manifest of ``n`` endpoints."""
    bes_url = fake.seed_arm_training_service(
        SUB,
        RG,
        "training",
        TRAINING_DEFINITION,
        mean_trainer,
        model_outputs={"output1"},
        keys={"primary": BES_KEY, "secondary": BES_KEY},
    )
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-{label}"
    root.mkdir(exist_ok=True)
    _upload(emulator, data)
    return manifest(root, fake, bes_url, n)


def update_wave(emulator: Azurite, env: dict[str, str], n: int) -> dict[str, Any]:
    with FakeAzure(blob_connection_string=emulator.connection_string) as fake:
        path = fleet(fake, emulator, "update", n, b"y\n5\n6\n9\n")
        sess = session(path, env, pacer=throttle.Pacer())
        wanted = sess.desired()[0]
        job = apply.training_jobs(
            plan.Plan(
                (
                    plan.Change(
                        plan.Action.RETRAIN,
                        wanted.name,
                        "",
                        "",
                        None,
                        None,
                        train=wanted.fingerprint,
                    ),
                )
            ),
            {wanted.name: wanted},
        )[0]
        sess.provider.train(job)  # the model exists: the wave is update-only
        seed_in_sync(fake, sess, fp_override="0" * 64)
        jobs_before = len(fake.bes.job_list())
        fake.server.reset_log()
        began = time.monotonic()
        the_plan, report = engine.run_apply(sess, confirm=lambda _p: True)
        seconds = time.monotonic() - began
        assert report is not None and report.ok, report
        jobs = len(fake.bes.job_list()) - jobs_before
        return {
            "endpoints": n,
            "seconds": round(seconds, 2),
            "applied": report.count(apply.Status.APPLIED),
            "bes_jobs": jobs,
            "planned_actions": sorted({str(c.action) for c in the_plan.changes}),
            **counts(fake),
        }


def _upload(emulator: Azurite, data: bytes) -> None:
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(emulator.connection_string)
    container = client.get_container_client("data")
    if not container.exists():
        container.create_container()
    import hashlib

    from azure.storage.blob import ContentSettings

    container.upload_blob(
        "shared.csv",
        data,
        overwrite=True,
        content_settings=ContentSettings(
            content_md5=bytearray(hashlib.md5(data, usedforsecurity=False).digest())
        ),
    )


def _unlimited() -> throttle.Pacer:
    pacer = throttle.Pacer()
    for bucket in pacer.buckets.values():
        bucket.capacity = bucket.tokens = UNLIMITED
        bucket.rate = UNLIMITED
    return pacer


class _NoPause(throttle.Pacer):
    """The pacer as it was: exactly at the bucket's rate, and a 429 pauses nobody else."""

    def throttled(self, method: str, retry_after: float) -> None:
        pass


def _exact() -> throttle.Pacer:
    return _NoPause(margin=0.0, rate_margin=0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--services", type=int, default=600)
    ap.add_argument("--updates", type=int, default=120)
    args = ap.parse_args()
    results = run(args.services, args.updates)
    meta = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
        "command": f".venv/bin/python -m bench.fleet --services {args.services} "
        f"--updates {args.updates}",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fleet.json").write_text(json.dumps(meta | results, indent=2) + "\n")
    (RESULTS / "fleet.md").write_text(render(meta, results))
    print((RESULTS / "fleet.md").read_text())
    for label in SCENARIOS:
        print(f"{label}: {results[label]['throttled_429']} x 429")


SCENARIOS = (
    "steady_state_paced",
    "steady_state_unpaced",
    "shared_subscription_paced",
    "shared_subscription_no_margin_no_pause",
    "update_wave",
)


def render(meta: dict[str, Any], r: dict[str, Any]) -> str:
    rows = []
    for label in SCENARIOS:
        x = r[label]
        req = ", ".join(f"{k} {v}" for k, v in sorted(x["requests"].items()))
        rows.append(
            f"| {label} | {x['endpoints']} | {x['seconds']} | "
            f"{x.get('bucket_floor_seconds', '—')} | {x.get('margin_floor_seconds', '—')} | "
            f"{req} | {x['throttled_429']} | {x['failed']} |"
        )
    return "\n".join(
        [
            "# Fleet benchmark: Resource Manager throttling",
            "",
            f"Measured {meta['date']} on {meta['machine']}.",
            f"Reproduce: `{meta['command']}` (from the project root after `make install-test`,",
            "which installs the Azurite blob emulator the benchmark starts).",
            "",
            "The fake Resource Manager enforces Azure's token buckets per subscription (reads 250",
            "burst, 25/s; writes 200 burst, 10/s). `bucket floor` is the least time the bucket",
            "allows for one read per endpoint: (N - 250) / 25 s, or N / 25 s when another client",
            "has just emptied the bucket (shared subscription). The pacer holds",
            f"{MARGIN:.0%} of each burst in reserve and refills {RATE_MARGIN:.0%} slower than",
            "the bucket, so its own floor, `paced floor`, is "
            f"(N - {READ_BURST * (1 - MARGIN):g}) / {READ_RATE * (1 - RATE_MARGIN):g} s:",
            "that much slower, and no 429.",
            "",
            "| run | endpoints | seconds | bucket floor (s) | paced floor (s) "
            "| Resource Manager requests | 429s | 5xx |",
            "|---|---:|---:|---:|---:|---|---:|---:|",
            *rows,
            "",
            f"Update wave: {r['update_wave']['applied']} endpoints switched to an already-trained "
            f"model with {r['update_wave']['bes_jobs']} BES jobs during the wave (the model was "
            "trained once beforehand); each update is 1 PATCH and 4 reads (observe, 2 "
            "operation polls, the operation's final GET, which is the read-back; the PATCH "
            "is built from the observed definition).",
            "",
            "Shared subscription: another client has just emptied the read bucket. The first "
            "wave (about one request per worker, all sent before any answer can say the bucket "
            "is empty) is refused whatever the pacer does; after it, the paced run draws no "
            "more, and ends near the paced floor.",
            "",
        ]
    )


if __name__ == "__main__":
    main()
