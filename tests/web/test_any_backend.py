"""The page's source reads any backend through the engine: the Azure example on the fakes.

Nothing in ``web`` names a backend; this applies ``retrain.azure.yaml.example`` against
the fake Resource Manager, BES and classic APIs and real blob storage (Azurite), then
takes the page's snapshot: every endpoint, its champion from the blob ledger's
history, and no secret of the environment in the page or its JSON.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler import cli, engine, settings
from reconciler.web import html, page, source
from reconciler.web import trend as trending
from tests.fakes.azurite import Azurite
from tests.fakes.fixtures import azurite  # noqa: F401 - the session's emulator
from tests.fakes.server import FakeAzure

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_the_page_shows_the_azure_example_after_an_apply(
    azurite: Azurite,  # noqa: F811 - the fixture imported above
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed = ROOT / "examples" / "azure" / "seed.json"
    manifest = ROOT / "retrain.azure.yaml.example"
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
        code = cli.main(["apply", "--auto-approve", "-f", str(manifest)], env, interactive=False)
        assert code == 0, capsys.readouterr().err
        config = settings.Settings(actor="test", manifest=manifest)
        src = source.ManifestSource(lambda: engine.open_session(config, env=env))
        snap = src.snapshot()
        body = src.scrub(html.page(snap)) + src.scrub(json.dumps(page.status_document(snap)))
    assert snap.backend == "azure"
    assert len(snap.endpoints) == 3
    for ev in snap.endpoints:
        assert str(ev.row.state) == "in sync"
        assert [p.kind for p in ev.trend.points] == [trending.Kind.CHAMPION]
        assert ev.value is not None and ev.value == ev.trend.points[0].value
        assert f'data-endpoint="{ev.row.endpoint}"' in body
    account_key = azurite.connection_string.split("AccountKey=")[1].split(";")[0]
    for secret in (env["RETRAIN_BES_KEY"], env["RETRAIN_CLASSIC_TOKEN"], account_key):
        assert secret not in body
