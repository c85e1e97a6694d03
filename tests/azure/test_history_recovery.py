"""The Azure backend keeps the history crash-consistent too: a change whose history entry was
lost (the apply died between the PATCH and the append) is recorded by the next apply."""

from __future__ import annotations

import json

import pytest
from azure.storage.blob import BlobServiceClient

from tests.azure.conftest import CONTAINER, World
from tests.azure.test_azure_e2e import seed_three

pytestmark = pytest.mark.slow


OWN = "history-recovery"  # a container of this test's own: the session's Azurite is shared


def own_container(world: World) -> None:
    manifest = world.root / "retrain.yaml"
    manifest.write_text(
        manifest.read_text().replace(f"container: {CONTAINER}\n", f"container: {OWN}\n")
    )


def history(world: World) -> list[dict[str, object]]:
    service = BlobServiceClient.from_connection_string(world.emulator.connection_string)
    blob = service.get_blob_client(OWN, "history.jsonl")
    return [json.loads(line) for line in blob.download_blob().readall().decode().splitlines()]


def lose_history(world: World) -> None:
    """What an apply killed right after its updates leaves: the changes, no entries."""
    service = BlobServiceClient.from_connection_string(world.emulator.connection_string)
    service.get_blob_client(OWN, "history.jsonl").delete_blob()


def test_a_change_whose_history_entry_was_lost_is_recorded_by_the_next_apply(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_three(world)
    own_container(world)
    assert world.run("apply", "--auto-approve", capsys=capsys).code == 0
    served = {e["endpoint"]: e["fingerprint"] for e in history(world)}
    lose_history(world)
    assert world.run("plan", "--detailed-exitcode", capsys=capsys).code == 0
    world.fake.server.reset_log()
    result = world.run("apply", "--auto-approve", capsys=capsys)
    assert result.code == 0, result.err
    assert result.err.count("history had no entry for the model it serves") == 3
    assert world.writes() == []  # bookkeeping only: no web service was touched
    recovered = history(world)
    assert {e["endpoint"]: e["fingerprint"] for e in recovered} == served
    assert {e["action"] for e in recovered} == {"recovered"}
    again = world.run("apply", "--auto-approve", capsys=capsys)
    assert "history had no entry" not in again.err
    assert len(history(world)) == 3
