"""End to end on the local backend, through the CLI, as a user runs it.

Each test works in its own copy of the example project. Most start from a
project already applied once (trained in one session fixture, then copied),
so the suite trains the example's models once rather than per test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run

pytestmark = pytest.mark.slow
ENDPOINTS = ("bike-seattle", "bike-portland", "bike-boston")


def trainings(run: Run) -> list[str]:
    """Fingerprints (short) that an apply trained, from its progress lines."""
    return re.findall(r"^training model (\w+) for", run.err, flags=re.M)


def serving(project: Path, endpoint: str) -> str:
    doc = json.loads(
        (
            project
            / ".retrain"
            / "webservices"
            / f"bike-demand-{endpoint.removeprefix('bike-')}.json"
        ).read_text()
    )
    return str(doc["tags"]["retrain.fingerprint"])


def snapshot(project: Path) -> dict[str, bytes]:
    """The state directory's files (not its lock, nor its ``cache/``, which any run may
    write: it is not state, see ``reconciler.providers.statcache``)."""
    state = project / ".retrain"
    return {
        str(p.relative_to(state)): p.read_bytes()
        for p in sorted(state.rglob("*"))
        if p.is_file() and p.name != "lock" and p.relative_to(state).parts[0] != "cache"
    }


def test_first_apply_trains_each_model_once_then_plan_is_empty(
    retrain: Callable[..., Run], project: Path
) -> None:
    first = retrain("apply", "--auto-approve")
    assert first.code == 0, first.err
    assert len(trainings(first)) == 3
    assert "Apply complete: 3 applied" in first.out
    assert all(serving(project, ep) for ep in ENDPOINTS)
    before = snapshot(project)
    again = retrain("plan", "--detailed-exitcode")
    assert (again.code, again.out) == (0, "No changes. 3 endpoints serving their desired models.\n")
    second = retrain("apply", "--auto-approve")
    assert second.code == 0 and trainings(second) == []
    assert snapshot(project) == before  # wrote nothing, not even history


def test_plan_detailed_exitcode_is_2_when_there_are_changes(retrain: Callable[..., Run]) -> None:
    result = retrain("plan", "--detailed-exitcode")
    assert result.code == 2
    assert "Plan: 3 to create" in result.out and "Training jobs: 3." in result.out


def test_new_data_for_one_location_retrains_only_that_endpoint(
    retrain: Callable[..., Run], applied: Path
) -> None:
    data = applied / "examples" / "bike_rental" / "data" / "seattle.csv"
    lines = data.read_text().splitlines(keepends=True)
    data.write_text("".join(lines[:-48]))  # two days fewer of data: new content, same path
    others = {ep: serving(applied, ep) for ep in ENDPOINTS[1:]}
    old = serving(applied, "bike-seattle")
    plan = retrain("plan")
    assert "~ bike-seattle  retrain" in plan.out
    assert "inputs changed: rentals" in plan.out
    assert (
        "Plan: 0 to create, 1 to retrain, 0 to update, 0 drifted, 0 blocked, 2 unchanged"
        in plan.out
    )
    result = retrain("apply", "--auto-approve")
    assert result.code == 0, result.err
    assert len(trainings(result)) == 1
    assert serving(applied, "bike-seattle") != old
    assert {ep: serving(applied, ep) for ep in ENDPOINTS[1:]} == others


def test_reverting_the_manifest_redeploys_the_earlier_model_without_training(
    retrain: Callable[..., Run], applied: Path
) -> None:
    manifest = applied / "retrain.yaml"
    original = manifest.read_text()
    first = {ep: serving(applied, ep) for ep in ENDPOINTS}
    manifest.write_text(original.replace("max_depth: 8", "max_depth: 4"))
    changed = retrain("apply", "--auto-approve")
    assert changed.code == 0, changed.err
    assert len(trainings(changed)) == 3
    manifest.write_text(original)
    plan = retrain("plan")
    assert plan.out.count("is already trained") == 3
    assert "Training jobs: 0." in plan.out
    reverted = retrain("apply", "--auto-approve")
    assert reverted.code == 0, reverted.err
    assert trainings(reverted) == []
    assert {ep: serving(applied, ep) for ep in ENDPOINTS} == first
    history = retrain("history", "bike-boston")
    assert [line.split()[2] for line in history.out.splitlines()] == ["create", "retrain", "update"]


def test_a_gate_failure_leaves_the_endpoint_on_its_old_model(
    retrain: Callable[..., Run], applied: Path
) -> None:
    manifest = applied / "retrain.yaml"
    manifest.write_text(manifest.read_text().replace("minimum: 0.6 ", "minimum: 0.99"))
    data = applied / "examples" / "bike_rental" / "data" / "boston.csv"
    data.write_text("".join(data.read_text().splitlines(keepends=True)[:-24]))
    old = serving(applied, "bike-boston")
    result = retrain("apply", "--auto-approve")
    assert result.code == 1
    assert len(trainings(result)) == 1
    assert re.search(
        r"bike-boston: gate-blocked: gate: Coefficient of Determination 0\.\d+ is "
        r"below the floor 0\.99; still serving " + old[:12],
        result.out,
    ), result.out
    assert serving(applied, "bike-boston") == old
    again = retrain("plan", "--detailed-exitcode")  # trained, known to fail: blocked, no training
    assert again.code == 2
    assert "x bike-boston  blocked" in again.out and "Training jobs: 0." in again.out


def test_an_out_of_band_edit_shows_as_drift_and_apply_repairs_it(
    retrain: Callable[..., Run], applied: Path
) -> None:
    path = applied / ".retrain" / "webservices" / "bike-demand-portland.json"
    doc = json.loads(path.read_text())
    for asset in doc["properties"]["assets"].values():
        if asset["name"] == "Bike Demand [trained model]":
            good = asset["locationInfo"]["uri"]
            asset["locationInfo"]["uri"] = "local://models/hand-picked/model.ilearner"
    path.write_text(json.dumps(doc, indent=2))
    plan = retrain("plan", "--detailed-exitcode")
    assert plan.code == 2
    assert "! bike-portland  repair-drift" in plan.out
    assert (
        "model reference changed outside retrain: serves "
        "local://models/hand-picked/model.ilearner" in plan.out
    )
    status = retrain("status")
    assert re.search(r"bike-portland\s+bike-demand-portland\s+drifted", status.out)
    result = retrain("apply", "--auto-approve")
    assert result.code == 0 and trainings(result) == []
    assert json.loads(path.read_text())["properties"]["assets"] == {
        **doc["properties"]["assets"],
        **{
            k: {**a, "locationInfo": {**a["locationInfo"], "uri": good}}
            for k, a in doc["properties"]["assets"].items()
            if a["name"] == "Bike Demand [trained model]"
        },
    }
    assert retrain("plan", "--detailed-exitcode").code == 0


def test_a_malformed_manifest_fails_with_a_located_error_and_changes_nothing(
    retrain: Callable[..., Run], applied: Path
) -> None:
    manifest = applied / "retrain.yaml"
    manifest.write_text(manifest.read_text().replace("    minimum: 0.6", "    minimum: lots"))
    before = snapshot(applied)
    for command in (("validate",), ("plan",), ("apply", "--auto-approve")):
        result = retrain(*command)
        assert result.code == 1
        assert result.out == ""
        assert result.err.startswith("Error: retrain.yaml:")
        assert "/defaults/gate/minimum: 'lots' is not of type 'number'" in result.err
        assert "Traceback" not in result.err
    assert snapshot(applied) == before


def test_apply_without_a_terminal_or_auto_approve_refuses(
    retrain: Callable[..., Run], project: Path
) -> None:
    result = retrain("apply")
    assert result.code == 1
    assert result.err == (
        "Error: apply needs confirmation: run it in a terminal, or pass --auto-approve\n"
    )
    assert not (project / ".retrain").exists()


def test_status_shows_version_fingerprint_metrics_and_deployment(
    retrain: Callable[..., Run], applied: Path
) -> None:
    result = retrain("status")
    assert result.code == 0
    rows = result.out.splitlines()
    assert rows[0].split()[:5] == ["ENDPOINT", "WEB", "SERVICE", "STATE", "VERSION"]
    for row, ep in zip(rows[1:], ENDPOINTS, strict=True):
        cells = row.split()
        assert cells[0] == ep and cells[2:4] == ["in", "sync"] and cells[4] == "2026.11"
        assert cells[5] == serving(applied, ep)[:12]
        assert 0.6 < float(cells[6]) < 1.0
        assert re.match(r"\d{4}-\d\d-\d\dT", cells[7])


def test_the_console_script_and_module_entry_work_as_installed(project: Path) -> None:
    for argv in (["retrain"], [sys.executable, "-m", "reconciler"]):
        exe = shutil.which(argv[0]) or str(Path(sys.executable).parent / argv[0])
        done = subprocess.run(
            [exe, *argv[1:], "validate"], cwd=project, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == "retrain.yaml is valid: 3 endpoints, 1 trainer(s).\n"


def test_usage_errors_exit_1_not_2(retrain: Callable[..., Run]) -> None:
    result = retrain("plan", "--no-such-flag")
    assert result.code == 1
    assert result.err.startswith("Error: No such option") and "--no-such-flag" in result.err
