"""Trust, end to end on the local backend: a saved plan is re-derived rather than believed,
and the history names what each endpoint serves even when an apply died before writing it.

Each test is a case an attacker or a crash produced against the first version: a plan file
edited with its checksum recomputed (anyone can recompute a sha256) was applied with exit 0;
a change made just before a SIGKILL was never recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler import planfile
from tests.conftest import Run
from tests.e2e.test_cli_local import serving, snapshot
from tests.e2e.test_review_workflow import fewer_rows

pytestmark = pytest.mark.slow
ENDPOINTS = ("bike-seattle", "bike-portland", "bike-boston")


def forge(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit a saved plan and recompute its checksum, as anyone with the file can."""
    data = json.loads(path.read_text())
    edit(data)
    body = {k: v for k, v in data.items() if k != "checksum"}
    path.write_text(json.dumps(body | {"checksum": planfile._checksum(body)}, indent=2))


def bump_version(project: Path) -> None:
    manifest = project / "retrain.yaml"
    manifest.write_text(manifest.read_text().replace('version: "2026.11"', 'version: "2026.12"'))


def change(data: dict[str, Any], endpoint: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in data["changes"] if c["address"] == endpoint)
    return found


def refused(result: Run, *fragments: str) -> None:
    assert result.code == 1, result.out + result.err
    assert result.out == ""
    assert len(result.err.splitlines()) == 1, result.err
    assert "unexpected" not in result.err
    for fragment in fragments:
        assert fragment in result.err, result.err


@pytest.mark.parametrize(
    "uri",
    [
        "local://models/{fp}/../../../outside.txt",
        "https://elsewhere.example/model.ilearner",
        "local://models/{fp}/metadata.json",
    ],
    ids=["dot-dot", "other-host", "other-file"],
)
def test_a_plan_pointing_a_service_outside_the_store_is_refused_naming_endpoint_and_field(
    retrain: Callable[..., Run], applied: Path, uri: str
) -> None:
    bump_version(applied)
    assert retrain("plan", "-out", "p.json").code == 0
    fp = serving(applied, "bike-seattle")

    def edit(data: dict[str, Any]) -> None:
        change(data, "bike-seattle")["after"]["model_uri"] = uri.format(fp=fp)

    forge(applied / "p.json", edit)
    before = snapshot(applied)
    result = retrain("apply", "p.json")
    refused(result, "bike-seattle: after.model_uri is", "refusing it")
    assert snapshot(applied) == before
    assert not (applied / "outside.txt").exists()


def test_a_plan_whose_train_fingerprint_was_swapped_is_refused_and_stores_nothing(
    retrain: Callable[..., Run], applied: Path
) -> None:
    fewer_rows(applied, "seattle", 24)
    fewer_rows(applied, "portland", 48)
    assert retrain("plan", "-out", "p.json").code == 0
    data = json.loads((applied / "p.json").read_text())
    seattle, portland = change(data, "bike-seattle"), change(data, "bike-portland")
    assert seattle["train"] and portland["train"] and seattle["train"] != portland["train"]

    def edit(data: dict[str, Any]) -> None:
        change(data, "bike-seattle")["train"] = portland["train"]

    forge(applied / "p.json", edit)
    before = snapshot(applied)
    result = retrain("apply", "p.json")
    refused(result, f"bike-seattle: train is {portland['train'][:12]}", seattle["train"][:12])
    assert snapshot(applied) == before  # no model stored under another group's fingerprint


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("action", "no-op", "action is no-op"),
        ("before", None, "before is not the live state"),
        ("version", "9999", "after.version is '9999'"),
    ],
)
def test_any_other_field_the_manifest_and_live_state_do_not_give_is_refused(
    retrain: Callable[..., Run], applied: Path, field: str, value: Any, message: str
) -> None:
    bump_version(applied)
    assert retrain("plan", "-out", "p.json").code == 0

    def edit(data: dict[str, Any]) -> None:
        target = change(data, "bike-boston")
        if field == "version":
            target["after"]["version"] = value
        else:
            target[field] = value

    forge(applied / "p.json", edit)
    before = snapshot(applied)
    refused(retrain("apply", "p.json"), f"bike-boston: {message}")
    assert snapshot(applied) == before


def test_an_untouched_saved_plan_still_applies_exactly(
    retrain: Callable[..., Run], applied: Path
) -> None:
    bump_version(applied)
    assert retrain("plan", "-out", "p.json").code == 0
    result = retrain("apply", "p.json")
    assert result.code == 0, result.err
    assert result.out.count("applied") >= 3
    assert retrain("plan", "--detailed-exitcode").code == 0


def drop_history_after(project: Path, keep: int) -> list[str]:
    """The history as a crash right after the changes (before their entries) leaves it."""
    path = project / ".retrain" / "history.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:keep]))
    return lines[keep:]


def test_a_change_whose_history_entry_a_crash_lost_is_recorded_by_the_next_apply(
    retrain: Callable[..., Run], applied: Path
) -> None:
    entries = len((applied / ".retrain" / "history.jsonl").read_text().splitlines())
    bump_version(applied)
    assert retrain("apply", "--auto-approve").code == 0
    lost = drop_history_after(applied, entries)
    assert len(lost) == 3
    assert retrain("plan", "--detailed-exitcode").code == 0  # the services are up to date
    result = retrain("apply", "--auto-approve")
    assert result.code == 0, result.err
    assert result.err.count("history had no entry for the model it serves") == 3
    history = [json.loads(line) for line in (applied / ".retrain" / "history.jsonl").open()]
    for endpoint in ENDPOINTS:
        last = [e for e in history if e["endpoint"] == endpoint][-1]
        assert last["action"] == "recovered"
        assert (last["fingerprint"], last["version"]) == (serving(applied, endpoint), "2026.12")
        assert last["metrics"]  # taken from the model store
    shown = retrain("history", "bike-seattle")
    assert "recovered" in shown.out
    again = retrain("apply", "--auto-approve")  # recorded once, not on every run
    assert "history had no entry" not in again.err
    assert len((applied / ".retrain" / "history.jsonl").read_text().splitlines()) == entries + 3


def test_a_plan_does_not_write_the_missing_history_entry(
    retrain: Callable[..., Run], applied: Path
) -> None:
    drop_history_after(applied, 0)
    before = snapshot(applied)
    assert retrain("plan").code == 0
    assert retrain("status").code == 0
    assert snapshot(applied) == before
