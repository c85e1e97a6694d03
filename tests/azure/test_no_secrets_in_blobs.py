"""No blob retrain writes ever holds a secret value: not the BES claim and job record
(``models/FP/job.json``), the model metadata, the classic ownership records, the
history, nor the lock. Checked by reading back every blob of the backend's container
after an apply (Resource Manager and classic endpoints, a secret parameter, a failed
submit that leaves a failed job record, and a crash that leaves a live one)."""

from __future__ import annotations

import pytest
from azure.storage.blob import BlobServiceClient

from tests.azure.conftest import CONTAINER, SECRETS, World
from tests.azure.test_azure_e2e import THREE, Crash, crash
from tests.azure.test_classic import CLASSIC, seed_census

pytestmark = pytest.mark.slow

PARAMETER_SECRET = "param-s3cret-0004"  # the value of a secretParameters entry
SECRET_TRAINER = """\
    secretParameters: {warehouseToken: "${env:TEST_PARAM_SECRET}"}
"""


def every_blob(world: World) -> dict[str, bytes]:
    service = BlobServiceClient.from_connection_string(world.emulator.connection_string)
    container = service.get_container_client(CONTAINER)
    return {b.name: container.download_blob(b.name).readall() for b in container.list_blobs()}


def test_no_blob_retrain_writes_holds_a_secret(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.providers.azure import bes

    for i, city in enumerate(("seattle", "portland", "boston")):
        world.blob(f"{city}.csv", [1 + i, 2, 3 + i, 4])
        world.seed_arm(f"bike-{city}")
    seed_census(world)
    path = world.manifest(THREE + CLASSIC)
    shift = "    parameters: {shift: 0}\n"
    text = path.read_text().replace(shift, shift + SECRET_TRAINER)
    path.write_text(text)
    world.env["TEST_PARAM_SECRET"] = PARAMETER_SECRET

    world.fake.server.fail_with_status(503, times=1, method="POST", path="/bes/.*/jobs")
    assert world.run("apply", "--auto-approve", capsys=capsys).code == 1  # one failed submit
    with monkeypatch.context() as patch:
        patch.setattr(bes.Trainer, "_wait", crash)
        with pytest.raises(Crash):
            world.run("apply", "--auto-approve", capsys=capsys)  # dies with a job recorded
    mid_run = every_blob(world)
    assert any(name.endswith("/job.json") for name in mid_run)
    done = world.run("apply", "--auto-approve", "--lock-timeout", "70", capsys=capsys)
    assert done.code == 0, done.err + done.out
    finished = every_blob(world)
    kinds = {name.rsplit("/", 1)[-1] for name in finished}
    assert {"job.json", "metadata.json", "classic.json", "history.jsonl"} <= kinds
    secrets = [*SECRETS(world), PARAMETER_SECRET]
    leaks = [
        name
        for snapshot in (mid_run, finished)
        for name, data in snapshot.items()
        for secret in secrets
        if secret.encode() in data
    ]
    assert leaks == []
