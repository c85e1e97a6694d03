"""retrain.azure.yaml.example, against the fake seeded with examples/azure/seed.json,
exactly as examples/azure/try-with-fake.sh runs it by hand."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler import cli
from tests.fakes.azurite import Azurite
from tests.fakes.server import FakeAzure

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_the_azure_example_plans_applies_and_then_has_no_changes(
    azurite: Azurite, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = ROOT / "examples" / "azure" / "seed.json"
    with FakeAzure(blob_connection_string=azurite.connection_string) as fake:
        seeded = fake.seed(json.loads(seed.read_text()), base_dir=seed.parent)
        env = dict(os.environ) | {
            "RETRAIN_AZURE_RESOURCE_MANAGER": fake.arm_base_url,
            "RETRAIN_AZURE_CLASSIC_MANAGEMENT": fake.classic_base_url,
            "RETRAIN_AZURE_BES_HOST": fake.bes_base_url,
            "RETRAIN_AZURE_CA_BUNDLE": fake.ca_bundle_path,
            "RETRAIN_STORAGE": azurite.connection_string,
            "RETRAIN_ARM_TOKEN": "demo-arm-token",
            "RETRAIN_BES_KEY": seeded["bes"][0]["apiKey"],
            "RETRAIN_CLASSIC_TOKEN": seeded["classic"][0]["token"],
        }
        manifest = str(ROOT / "retrain.azure.yaml.example")

        def run(*args: str) -> tuple[int, str, str]:
            capsys.readouterr()
            code = cli.main([*args, "-f", manifest], env, interactive=False)
            out = capsys.readouterr()
            return code, out.out, out.err

        code, out, err = run("plan", "--detailed-exitcode")
        assert code == 2, err
        assert "Plan: 1 to create, 2 to retrain" in out
        code, out, err = run("apply", "--auto-approve")
        assert code == 0, err + out
        assert "Apply complete: 3 applied" in out
        assert len(fake.bes.job_list()) == 3
        fake.server.reset_log()
        code, out, err = run("plan", "--detailed-exitcode")
        assert (code, out) == (0, "No changes. 3 endpoints serving their desired models.\n")
        methods = [(r.method, r.path.split("/")[1]) for r in fake.server.requests()]
        lists = [r for r in fake.server.requests() if r.path.lower().endswith("/webservices")]
        assert len(lists) == 1  # one list of the resource group, to find orphans
        assert methods.count(("GET", "subscriptions")) == 2 + 1  # one read per ARM web service
        assert methods.count(("GET", "classic")) == 1  # and one per classic endpoint
        assert all(m == "GET" for m, _ in methods)
        for secret in (
            env["RETRAIN_BES_KEY"],
            env["RETRAIN_CLASSIC_TOKEN"],
            azurite.connection_string.split("AccountKey=")[1].split(";")[0],
        ):
            assert secret not in out + err
