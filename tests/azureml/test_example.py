"""retrain.azureml.yaml.example, against the fake seeded with examples/azureml/seed.json,
exactly as examples/azureml/try-with-fake.sh (``make azureml-demo``) runs it."""

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
ENDPOINTS = 2  # in the example
READS_PER_ENDPOINT = 3  # the endpoint, its deployments, the model version serving it


def test_the_azureml_example_plans_applies_and_then_reads_each_resource_once_writing_nothing(
    azurite: Azurite, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = ROOT / "examples" / "azureml" / "seed.json"
    with FakeAzure(
        blob_connection_string=azurite.connection_string, azureml_options={"lro_polls": 1}
    ) as fake:
        fake.seed(json.loads(seed.read_text()), base_dir=seed.parent)
        env = dict(os.environ) | {
            "RETRAIN_AZUREML_RESOURCE_MANAGER": fake.arm_base_url,
            "RETRAIN_AZUREML_CA_BUNDLE": fake.ca_bundle_path,
            "RETRAIN_STORAGE": azurite.connection_string,
            "RETRAIN_ARM_TOKEN": "demo-arm-token",
        }
        manifest = str(ROOT / "retrain.azureml.yaml.example")

        def run(*args: str) -> tuple[int, str, str]:
            capsys.readouterr()
            code = cli.main([*args, "-f", manifest], env, interactive=False)
            out = capsys.readouterr()
            return code, out.out, out.err

        code, out, err = run("plan", "--detailed-exitcode")
        assert code == 2, err
        assert "Plan: 0 to create, 2 to retrain" in out
        code, out, err = run("apply", "--auto-approve", "--parallelism", "2")
        assert code == 0, err + out
        assert "Apply complete: 2 applied" in out
        fake.server.reset_log()
        code, out, err = run("plan", "--detailed-exitcode")
        assert (code, out) == (0, "No changes. 2 endpoints serving their desired models.\n")
        methods = [r.method for r in fake.server.requests()]
        assert set(methods) == {"GET"}
        # + the datastore, once, and one list of the online endpoints, to find orphans
        assert len(methods) == 1 + ENDPOINTS * READS_PER_ENDPOINT + 1
        assert azurite.connection_string.split("AccountKey=")[1].split(";")[0] not in out + err
