"""Benchmark: requests per endpoint for the azureml backend, against the Azure ML fake.

Runs ``retrain.azureml.yaml.example`` (seeded as ``make azureml-demo`` seeds it: two
online endpoints each serving a hand-made deployment) with the real CLI, and counts
what the fake received, by operation and by endpoint, in four phases:

1. the first plan (nothing managed yet);
2. the first apply: two command jobs, two registrations, a blue/green rollout per
   endpoint (seattle: smoke request and three traffic steps; portland: one step);
3. a steady-state plan: the target is one read per resource and zero writes;
4. a second rollout after new data for both cities, which also removes nothing yet
   (``keep: 1``), and a third which removes the oldest retrain deployment.

Usage (from the project root, after ``make install-test``):
    .venv/bin/python -m bench.azureml
Prints the tables and writes bench/results/azureml.md.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from azure.storage.blob import BlobServiceClient

from reconciler import cli
from tests.fakes.azurite import Azurite
from tests.fakes.httpserver import LoggedRequest
from tests.fakes.server import FakeAzure

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "examples" / "azureml" / "seed.json"
MANIFEST = ROOT / "retrain.azureml.yaml.example"
RESULTS = ROOT / "bench" / "results" / "azureml.md"
CITIES = ("seattle", "portland")


def operation(r: LoggedRequest) -> str:
    """A request as ``METHOD what`` (the fake's route name, else its path's kind)."""
    route = (r.route or "other").removeprefix("aml.")
    return f"{r.method} {route}"


def endpoint_of(r: LoggedRequest) -> str:
    for city in CITIES:
        if f"/onlineendpoints/bike-{city}".lower() in r.path.lower() or f"/bike-{city}/" in r.path:
            return f"bike-{city}"
    return "(shared: jobs, models, datastore)"


def table(requests: list[LoggedRequest]) -> str:
    counts = Counter((endpoint_of(r), operation(r)) for r in requests)
    rows = ["| endpoint | request | count |", "|---|---|---:|"]
    rows += [f"| {ep} | `{op}` | {n} |" for (ep, op), n in sorted(counts.items())]
    writes = sum(1 for r in requests if r.method != "GET")
    rows.append(f"| **all** | reads / writes and actions | {len(requests) - writes} / {writes} |")
    return "\n".join(rows)


def new_data(azurite: Azurite, shift: int) -> None:
    """Append a row to each city's data: a new fingerprint, so a rollout."""
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    for city in CITIES:
        blob = service.get_blob_client("data", f"bike/{city}.csv")
        text = blob.download_blob().readall().decode()
        last = text.strip().splitlines()[-1].split(",")
        last[0] = f"2030-01-01T{shift:02d}:00:00"
        grown = text.rstrip("\n") + "\n" + ",".join(last) + "\n"
        blob.upload_blob(grown.encode(), overwrite=True)


def main() -> None:
    phases: list[tuple[str, str]] = []
    with (
        Azurite() as azurite,
        FakeAzure(
            blob_connection_string=azurite.connection_string, azureml_options={"lro_polls": 1}
        ) as fake,
    ):
        fake.seed(json.loads(SEED.read_text()), base_dir=SEED.parent)
        env = dict(os.environ) | {
            "RETRAIN_AZUREML_RESOURCE_MANAGER": fake.arm_base_url,
            "RETRAIN_AZUREML_CA_BUNDLE": fake.ca_bundle_path,
            "RETRAIN_STORAGE": azurite.connection_string,
            "RETRAIN_ARM_TOKEN": "bench-arm-token",
        }

        def phase(name: str, *args: str, before: Callable[[], None] = lambda: None) -> None:
            before()
            fake.server.reset_log()
            code = cli.main([*args, "-f", str(MANIFEST)], env, interactive=False)
            if code not in (0, 2):
                raise SystemExit(f"{name}: exit {code}")
            phases.append((name, table(fake.server.requests())))

        phase("1. first plan", "plan")
        phase("2. first apply (2 jobs, 2 rollouts)", "apply", "--auto-approve")
        phase("3. steady-state plan", "plan")
        phase("4. steady-state apply", "apply", "--auto-approve")
        phase(
            "5. second rollout (new data)",
            "apply",
            "--auto-approve",
            before=lambda: new_data(azurite, 1),
        )
        phase(
            "6. third rollout (prunes the oldest retrain deployment)",
            "apply",
            "--auto-approve",
            before=lambda: new_data(azurite, 2),
        )
    report = "\n\n".join(f"### {name}\n\n{body}" for name, body in phases)
    text = f"""# azureml backend: requests per endpoint

Measured {dt.datetime.now(dt.UTC):%Y-%m-%d} on {platform.machine()} ({os.cpu_count()} CPUs),
Python {platform.python_version()}, against the Azure ML fake (`tests/fakes/azureml`, each
long-running operation taking 1 poll) and Azurite. Reproduce: `.venv/bin/python -m bench.azureml`
after `make install-test`. Manifest: `retrain.azureml.yaml.example` (bike-seattle: smoke request,
steps 10/50/100 held 1 s; bike-portland: straight to 100 %), seeded as `make azureml-demo` seeds it.

`operation.status` is a poll of an `Azure-AsyncOperation` (each PUT of an endpoint or a
deployment is a long-running operation); `score` is the smoke request, `endpoint.listKeys`
fetches the key it is sent with. The shared line holds what one fingerprint costs whatever
the number of endpoints using it (the job, its polls, the model version) and the datastore
lookup (one per run, for the input digests).

Reading: a steady-state plan (and apply) costs 3 reads per endpoint (the endpoint, its
deployments, the model version serving it) + 2 per run (the datastore, and one paged
list of online endpoints to find orphans), and 0 writes.
A rollout costs per endpoint 1 deployment PUT + 1 endpoint PUT per traffic step (each with
its operation poll and read-back), and per model 1 job PUT + its status polls + 1
registration; the remaining reads are the planner's model lookups (before and after
training), the model-version check before any write (a deployment is only pointed at a
registered version), the rollout's own read of the endpoint, the read before each traffic
PUT, and the read-back after the rollout and after pruning.

{report}
"""
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
