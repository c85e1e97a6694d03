"""Lifecycle end to end through the CLI (issue 10, point 4): endpoints retrain manages that
the manifest no longer lists are shown as orphaned by plan and status.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.e2e.test_cli_local import snapshot

pytestmark = pytest.mark.slow

BOSTON = "      - {location: boston}\n"


def drop_boston(project: Path) -> None:
    """Remove the boston endpoint from the manifest (its web service stays)."""
    manifest = project / "retrain.yaml"
    text = manifest.read_text()
    assert text.count(BOSTON) == 1
    manifest.write_text(text.replace(BOSTON, ""))


def test_an_endpoint_removed_from_the_manifest_is_shown_orphaned_by_plan_and_status(
    retrain: Callable[..., Run], applied: Path
) -> None:
    drop_boston(applied)
    before = snapshot(applied)
    plan = retrain("plan", "--detailed-exitcode")
    assert plan.code == 0, plan.err  # an orphan is not a change: apply alone leaves it
    assert plan.out.startswith("No changes. 2 endpoints serving their desired models.\n")
    assert "? bike-boston  orphaned  (web service bike-demand-boston" in plan.out
    assert "'retrain apply --prune' removes retrain's ownership tags" in plan.out
    status = retrain("status")
    assert status.code == 0
    row = next(line for line in status.out.splitlines() if line.startswith("bike-boston"))
    assert row.split()[:4] == ["bike-boston", "bike-demand-boston", "orphaned", "2026.11"]
    as_json = json.loads(retrain("status", "--json").out)
    assert [e["state"] for e in as_json["endpoints"]] == ["in sync", "in sync", "orphaned"]
    markdown = retrain("plan", "--format", "markdown").out
    assert "| ❔ | `bike-boston` | `bike-demand-boston` |" in markdown
    assert snapshot(applied) == before  # plan and status only read


def test_orphans_are_not_shown_when_the_plan_covers_part_of_the_manifest(
    retrain: Callable[..., Run], applied: Path
) -> None:
    drop_boston(applied)
    plan = retrain("plan", "--target", "bike-seattle")
    assert plan.code == 0
    assert "orphaned" not in plan.out
    assert "orphaned" not in retrain("status", "--exclude", "bike-portland").out


def test_a_service_someone_else_owns_is_never_an_orphan(
    retrain: Callable[..., Run], applied: Path
) -> None:
    path = applied / ".retrain" / "webservices" / "bike-demand-boston.json"
    doc = json.loads(path.read_text())
    doc["tags"] = {"team": "bikes"}  # not retrain's
    path.write_text(json.dumps(doc))
    drop_boston(applied)
    assert "orphaned" not in retrain("plan").out


def test_apply_prune_removes_only_retrains_ownership_and_records_it(
    retrain: Callable[..., Run], applied: Path
) -> None:
    path = applied / ".retrain" / "webservices" / "bike-demand-boston.json"
    served = json.loads(path.read_text())
    drop_boston(applied)
    result = retrain("apply", "--auto-approve", "--prune")
    assert result.code == 0, result.err
    assert "With --prune: 1 orphaned endpoint will lose retrain's ownership tags." in result.out
    assert "✓ bike-boston: applied: pruned: removed retrain's ownership tags" in result.out
    after = json.loads(path.read_text())
    assert after["tags"] == {}  # the example's tags were all retrain's
    assert after["properties"] == served["properties"]  # still serving, byte for byte
    history = retrain("history", "bike-boston", "--json")
    assert json.loads(history.out)["entries"][-1]["action"] == "prune"
    again = retrain("plan")
    assert "orphaned" not in again.out and again.code == 0


def test_prune_delete_deletes_a_local_definition_and_prune_is_refused_where_orphans_are_unknown(
    retrain: Callable[..., Run], applied: Path
) -> None:
    drop_boston(applied)
    path = applied / ".retrain" / "webservices" / "bike-demand-boston.json"
    refused = retrain("apply", "--auto-approve", "--prune", "--target", "bike-seattle")
    assert refused.code != 0 and "--prune needs the whole manifest" in refused.err
    assert retrain("apply", "--auto-approve", "--prune-delete").code != 0
    assert path.exists()
    result = retrain("apply", "--auto-approve", "--prune", "--prune-delete")
    assert result.code == 0, result.err
    assert "will be deleted" in result.out and not path.exists()
    assert json.loads(retrain("history", "--json").out)["entries"][-1]["action"] == "delete"


# -- retrain init -----------------------------------------------------------------------


def test_init_writes_a_local_project_that_validates_applies_and_then_has_no_changes(
    retrain: Callable[..., Run], project: Path
) -> None:
    made = retrain("init", "--dir", "fresh")
    assert made.code == 0, made.err
    new = project / "fresh"
    assert sorted(str(p.relative_to(new)) for p in new.rglob("*") if p.is_file()) == [
        "data/example.csv",
        "retrain.yaml",
        "trainer/train.py",
        "webservice.json",
    ]
    manifest = str(new / "retrain.yaml")
    assert retrain("validate", "-f", manifest).code == 0
    applied = retrain("apply", "--auto-approve", "-f", manifest)
    assert applied.code == 0, applied.err + applied.out
    assert "✓ example: applied: serving model" in applied.out
    again = retrain("plan", "--detailed-exitcode", "-f", manifest)
    assert (again.code, again.out) == (0, "No changes. 1 endpoint serving their desired models.\n")


def test_init_refuses_to_overwrite_and_writes_nothing(
    retrain: Callable[..., Run], project: Path
) -> None:
    before = (project / "retrain.yaml").read_bytes()
    result = retrain("init")
    assert result.code == 1
    assert result.err.startswith("Error: retrain.yaml exists; retrain init never overwrites")
    assert result.err.count("\n") == 1
    assert (project / "retrain.yaml").read_bytes() == before
    assert not (project / "trainer").exists() and not (project / "data").exists()
    unknown = retrain("init", "--backend", "nosuch", "--dir", "x")
    assert unknown.code != 0 and "no starter for backend 'nosuch'" in unknown.err


@pytest.mark.parametrize("kind", ["azure", "azureml"])
def test_init_for_an_azure_backend_writes_a_manifest_validate_accepts(
    retrain: Callable[..., Run], project: Path, kind: str
) -> None:
    assert retrain("init", "--backend", kind, "--dir", kind).code == 0
    env = {
        "RETRAIN_STORAGE": "DefaultEndpointsProtocol=https;AccountName=starter;"
        "AccountKey=c3RhcnRlcg==;EndpointSuffix=core.windows.net",
        "RETRAIN_BES_KEY": "starter-bes-key",
    }
    checked = retrain("validate", "-f", str(project / kind / "retrain.yaml"), env=env)
    assert checked.code == 0, checked.err
    assert "1 endpoint" in checked.out


def test_the_azureml_starter_job_script_trains_on_the_starter_data(
    retrain: Callable[..., Run], project: Path, tmp_path: Path
) -> None:
    assert retrain("init", "--backend", "azureml", "--dir", "aml").code == 0
    assert retrain("init", "--dir", "loc").code == 0
    out = tmp_path / "out"
    subprocess.run(
        [
            sys.executable,
            str(project / "aml" / "trainer" / "train_job.py"),
            "--data",
            str(project / "loc" / "data" / "example.csv"),
            "--model",
            str(out / "model"),
            "--evaluation",
            str(out / "evaluation"),
        ],
        check=True,
    )
    header, values = (out / "evaluation" / "evaluation.csv").read_text().splitlines()
    assert header == "Coefficient of Determination,Mean Absolute Error"
    assert float(values.split(",")[0]) > 0.5  # the gate's minimum in the starter
    assert json.loads((out / "model" / "model.json").read_text()).keys() == {"a", "b"}


# -- retrain models list|gc -------------------------------------------------------------


def retrain_seattle_on_new_data(retrain: Callable[..., Run], project: Path) -> None:
    """Append a copy of seattle's last row (new content: a new model) and apply."""
    data = project / "examples" / "bike_rental" / "data" / "seattle.csv"
    lines = data.read_text().splitlines()
    data.write_text("\n".join([*lines, lines[-1]]) + "\n")
    result = retrain("apply", "--auto-approve")
    assert result.code == 0, result.err + result.out


def rows(listing: str) -> dict[str, list[str]]:
    """``models list`` rows by short fingerprint, each the columns after TRAINED."""
    out = {}
    for line in listing.splitlines()[1:]:
        cells = [c for c in line.split("  ") if c.strip()]
        out[cells[0]] = [c.strip() for c in cells[2:]]
    return out


def test_models_list_shows_metrics_and_references_and_gc_removes_only_unreferenced_beyond_keep(
    retrain: Callable[..., Run], applied: Path
) -> None:
    first = rows(retrain("models", "list").out)
    assert len(first) == 3
    assert all(r[1] == r[2] == r[3] and r[1].startswith("bike-") for r in first.values())
    assert all(r[0].startswith("Coefficient of Determination 0.") for r in first.values())
    retrain_seattle_on_new_data(retrain, applied)
    retrain_seattle_on_new_data(retrain, applied)
    listed = rows(retrain("models", "list").out)
    assert len(listed) == 5
    old = [fp for fp, r in listed.items() if r[1:4] == ["-", "-", "bike-seattle"]]
    assert len(old) == 2  # served seattle once, referenced by nothing now
    before = snapshot(applied)
    dry = retrain("models", "gc", "--keep", "1")
    assert dry.code == 0 and dry.out.startswith("Would remove 1 model:\n")
    assert snapshot(applied) == before  # a dry run
    newest_old, oldest_old = sorted(old, key=lambda fp: list(listed).index(fp))
    assert oldest_old in dry.out and newest_old not in dry.out
    done = retrain("models", "gc", "--keep", "1", "--yes")
    assert done.code == 0, done.err
    assert f"✓ {oldest_old}: removed models/" in done.out
    assert set(rows(retrain("models", "list").out)) == set(listed) - {oldest_old}
    assert retrain("plan", "--detailed-exitcode").code == 0  # every endpoint still served
    again = retrain("models", "gc", "--keep", "1", "--yes")
    assert again.out.startswith("Nothing to remove")


def test_gc_never_removes_a_model_a_pruned_service_still_serves(
    retrain: Callable[..., Run], applied: Path
) -> None:
    drop_boston(applied)
    assert retrain("apply", "--auto-approve", "--prune").code == 0
    boston = json.loads(
        (applied / ".retrain" / "webservices" / "bike-demand-boston.json").read_text()
    )
    assert "retrain.fingerprint" not in boston["tags"]
    result = retrain("models", "gc", "--keep", "0", "--yes")
    assert result.out.startswith("Nothing to remove"), result.out
    pruned = [r for r in rows(retrain("models", "list").out).values() if r[-1] == "bike-boston"]
    assert len(pruned) == 1 and pruned[0][1] == "-"  # not listed as serving: pruned


def test_a_saved_plan_keeps_its_orphans_for_show_and_refuses_prune(
    retrain: Callable[..., Run], applied: Path
) -> None:
    drop_boston(applied)
    assert retrain("plan", "-out", "plan.json").code == 0
    saved = json.loads((applied / "plan.json").read_text())
    assert [o["endpoint"] for o in saved["orphans"]] == ["bike-boston"]
    shown = retrain("show", "plan.json")
    assert shown.code == 0 and "? bike-boston  orphaned" in shown.out
    refused = retrain("apply", "plan.json", "--prune")
    assert refused.code != 0 and "--prune cannot be combined with a saved plan" in refused.err
    assert retrain("apply", "plan.json").code == 0  # applying it leaves the orphan alone
    assert "? bike-boston  orphaned" in retrain("plan").out
