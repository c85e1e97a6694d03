"""Writes under faults, end to end: an apply whose PATCHes and PUTs meet connection
resets (before the server acted, and after it acted but before it answered) and 5xx
converges with exit 0, each retry logged; a BES submit (a POST that creates a job each
time) is never repeated blindly, and its failure does not block the next run."""

from __future__ import annotations

import pytest
from azure.storage.blob import BlobClient, BlobServiceClient

from reconciler.providers.azure import arm
from tests.azure.conftest import CONTAINER, World
from tests.azure.test_azure_e2e import seed_solo, seed_three
from tests.azure.test_classic import CLASSIC, seed_census

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arm, "BACKOFF_FACTOR", 0.0, raising=False)


def test_resets_and_5xx_on_resource_manager_writes_are_retried_and_apply_converges(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_three(world)
    server = world.fake.server
    server.reset_connections(1, method="PATCH", path=".*/webServices/bike-seattle")
    server.reset_connections(1, method="PATCH", path=".*/webServices/bike-portland", after=True)
    server.fail_with_status(503, times=1, method="PATCH", path=".*/webServices/bike-boston")
    server.fail_with_status(502, times=1, method="PATCH", path=".*/webServices/bike-boston")
    result = world.run("apply", "--auto-approve", capsys=capsys)
    assert result.code == 0, result.err + result.out
    retries = [line for line in result.err.splitlines() if "will retry" in line]
    assert sorted(retries) == [
        "Resource Manager PATCH bike-boston: attempt #1/5 failed (HTTP 503); will retry",
        "Resource Manager PATCH bike-boston: attempt #2/5 failed (HTTP 502); will retry",
        "Resource Manager PATCH bike-portland: attempt #1/5 failed (ServiceResponseError); "
        "will retry",
        "Resource Manager PATCH bike-seattle: attempt #1/5 failed (ServiceResponseError); "
        "will retry",
    ]
    patches = [r for r in server.requests() if r.method == "PATCH"]
    assert len(patches) == 3 + 4  # one each, plus the four failed attempts
    assert world.run("plan", "--detailed-exitcode", capsys=capsys).code == 0
    assert len(world.fake.bes.job_list()) == 3


def test_resets_and_5xx_on_classic_writes_are_retried_and_apply_converges(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_census(world)
    world.manifest(CLASSIC)
    server = world.fake.server
    server.reset_connections(1, method="PUT", path="/classic/.*", after=True)
    server.reset_connections(1, method="PATCH", path="/classic/.*")
    server.fail_with_status(500, times=1, method="PATCH", path="/classic/.*")
    result = world.run("apply", "--auto-approve", capsys=capsys)
    assert result.code == 0, result.err + result.out
    retries = [line for line in result.err.splitlines() if "will retry" in line]
    assert len(retries) == 3
    assert any(line.startswith("add endpoint ws1/census/globex: attempt #1/") for line in retries)
    assert sum("(HTTP 500)" in line for line in retries) == 1
    writes = [r for r in server.requests() if r.method in ("PUT", "PATCH")]
    assert len(writes) == 1 + 2 + 3  # 1 PUT + 2 PATCHes, plus the three failed attempts
    assert world.run("plan", "--detailed-exitcode", capsys=capsys).code == 0


def test_a_failed_bes_submit_is_not_repeated_and_the_next_run_submits_at_once(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_solo(world)
    world.fake.server.fail_with_status(503, times=1, method="POST", path="/bes/.*/jobs")
    failed = world.run("apply", "--auto-approve", capsys=capsys)
    assert failed.code == 1
    assert "submit BES job: HTTP 503" in failed.out
    posts = [r for r in world.fake.server.requests() if r.method == "POST"]
    assert len(posts) == 1  # the submit was not repeated
    again = world.run("apply", "--auto-approve", capsys=capsys)
    assert again.code == 0, again.err + again.out
    assert "being submitted by" not in again.err  # the failed claim was released
    assert len(world.fake.bes.job_list()) == 1


def test_a_claim_whose_answer_was_lost_is_recognised_as_ours(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The storage SDK retries a claim write whose answer was lost; the retry then fails
    its own create-only condition. The claim is still ours: submit, do not wait on it."""
    from reconciler.providers.azure import bes
    from reconciler.providers.azurecommon import blobs

    monkeypatch.setattr(bes, "CLAIM_TTL", 2.0)  # old code waited this long on itself
    real = blobs.BlobStore.write_text
    lost: list[str] = []

    def answer_lost(self: blobs.BlobStore, path: str, text: str, **kw: object) -> bool:
        written = real(self, path, text, **kw)  # type: ignore[arg-type]
        if kw.get("create_only") and path.endswith("/job.json") and not lost:
            lost.append(path)
            return False  # what the retried create-only write reports: "already exists"
        return written

    monkeypatch.setattr(blobs.BlobStore, "write_text", answer_lost)
    seed_solo(world)
    result = world.run("apply", "--auto-approve", capsys=capsys)
    assert result.code == 0, result.err + result.out
    assert lost, "the fault was not injected"
    assert "being submitted by" not in result.err
    assert len(world.fake.bes.job_list()) == 1


def test_a_history_append_retried_after_its_answer_was_lost_is_written_once(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The storage SDK repeats an append whose answer was lost; the line must not be
    in the history twice."""
    real = BlobClient.append_block
    repeated: list[bool] = []

    def sent_twice(self: BlobClient, *args: object, **kw: object) -> object:
        first = real(self, *args, **kw)  # type: ignore[arg-type]
        if repeated:
            return first
        repeated.append(True)
        return real(self, *args, **kw)  # type: ignore[arg-type]  # the SDK's retry

    monkeypatch.setattr(BlobClient, "append_block", sent_twice)
    seed_solo(world)
    result = world.run("apply", "--auto-approve", capsys=capsys)
    assert result.code == 0, result.err + result.out
    assert repeated, "the fault was not injected"
    blobs = BlobServiceClient.from_connection_string(world.emulator.connection_string)
    text = blobs.get_blob_client(CONTAINER, "history.jsonl").download_blob().readall().decode()
    lines = text.splitlines()
    assert lines and len(lines) == len(set(lines))  # each line once (the old code wrote 2)


def test_parallel_history_appends_from_one_apply_each_land_once(world: World) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from reconciler import redact
    from reconciler.providers.azurecommon import blobs

    store = blobs.BlobStore(
        world.emulator.connection_string,
        CONTAINER,
        verify=True,
        retries=2,
        scrub=redact.Redactor(),
    )
    path = f"parallel-{world.root.name}.jsonl"  # the emulator outlives this test
    lines = [f'{{"n": {i}}}' for i in range(48)]  # more than the threads an apply runs
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda line: store.append_line(path, line), lines))
    text = store.read_text(path) or ""
    assert sorted(text.splitlines()) == sorted(lines)
