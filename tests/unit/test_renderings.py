"""Every rendering of a plan, pinned by golden files, and the saved plan's guarantees.

The plans here are fixed: built by the real planner from hand-made desired and
observed state, one endpoint per action (no-op, create, retrain, update,
repair-drift, blocked for want of a definition, blocked by the gate), so the
goldens change only when a rendering does. Goldens live in ``tests/golden/``;
``RETRAIN_UPDATE_GOLDEN=1`` rewrites them (review the diff), otherwise a
rendering must match its golden byte for byte.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from reconciler import apply, errors, gate, markdown, model, plan, planfile, render, trend
from reconciler.providers import webservice
from reconciler.providers.local import store

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
UPDATE = os.environ.get("RETRAIN_UPDATE_GOLDEN") == "1"
TRAINER = model.Trainer("bike-demand")
GATE = model.Gate("Coefficient of Determination", minimum=0.6, max_regression=0.05)
R2, MAE = "Coefficient of Determination", "Mean Absolute Error"
ARTIFACT = "https://ci.example/runs/42#artifacts"


def fp(name: str) -> str:
    """A real-looking fingerprint (64 hex digits), fixed per name."""
    return hashlib.sha256(name.encode()).hexdigest()


def assert_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual.encode("utf-8"))
        return
    assert path.is_file(), f"{path} is missing: run with RETRAIN_UPDATE_GOLDEN=1 to create it"
    expected = path.read_bytes().decode("utf-8")
    assert actual == expected, (
        f"rendering differs from {path}; if intended, rerun with RETRAIN_UPDATE_GOLDEN=1 "
        "and review the golden's diff"
    )


# -- a fixed plan: one endpoint per action -----------------------------------------------


def endpoint(name: str, *, definition: str | None = "webservice.json") -> model.Endpoint:
    return model.Endpoint(
        name=name,
        web_service=f"bike-demand-{name}",
        asset="Bike Demand [trained model]",
        version="2026.11",
        trainer=TRAINER,
        inputs=model.frozen_map({"rentals": f"data/{name}.csv"}),
        parameters=model.frozen_map({"n_estimators": 100}),
        gate=GATE,
        definition=definition,
        source=model.Source("retrain.yaml", "/endpoints/0", 40),
    )


def service(name: str, fingerprint: str, *, uri: str | None = None) -> model.ServiceState:
    tags = {
        model.TAG_MANAGED_BY: model.MANAGED_BY,
        model.TAG_ENDPOINT: name,
        model.TAG_FINGERPRINT: fingerprint,
        model.TAG_VERSION: "2026.11",
    }
    served = uri or store.uri_for(fingerprint)
    return model.ServiceState(
        web_service=f"bike-demand-{name}",
        model_uri=served,
        tags=model.frozen_map(tags),
        expected_uri=store.uri_for(fingerprint),
        revision=webservice.revision(served, tags),
        assets=("Bike Demand [trained model]",),
    )


def recipe(rentals: str) -> dict[str, Any]:
    return {"trainer": "t1", "inputs": {"rentals": rentals}, "parameters": {"n_estimators": 100}}


def stored(fingerprint: str, metrics: dict[str, float], rentals: str = "d1") -> model.ModelRecord:
    return model.ModelRecord(
        fingerprint=fingerprint,
        uri=store.uri_for(fingerprint),
        metrics=model.frozen_map(metrics),
        trained_at="2026-11-01T00:00:00+00:00",
        lineage=model.frozen_map({"recipe": recipe(rentals)}),
    )


def every_action_plan() -> plan.Plan:
    """seattle no-op, portland create, boston retrain (inputs changed), denver update
    (gate passes), austin repair-drift, miami blocked (no definition), chicago blocked
    (the stored challenger regresses past the gate)."""
    desired = [
        model.Desired(endpoint("seattle"), fp("seattle-1"), model.frozen_map(recipe("s1"))),
        model.Desired(endpoint("portland"), fp("portland-1"), model.frozen_map(recipe("p1"))),
        model.Desired(endpoint("boston"), fp("boston-2"), model.frozen_map(recipe("b2"))),
        model.Desired(endpoint("denver"), fp("denver-1"), model.frozen_map(recipe("d1"))),
        model.Desired(endpoint("austin"), fp("austin-1"), model.frozen_map(recipe("a1"))),
        model.Desired(endpoint("miami", definition=None), fp("miami-1")),
        model.Desired(endpoint("chicago"), fp("chicago-2"), model.frozen_map(recipe("c2"))),
    ]
    services = {
        "seattle": service("seattle", fp("seattle-1")),
        "portland": None,
        "boston": service("boston", fp("boston-1")),
        "denver": service("denver", fp("denver-2")),
        "austin": service(
            "austin", fp("austin-1"), uri="local://models/hand-picked/model.ilearner"
        ),
        "miami": None,
        "chicago": service("chicago", fp("chicago-1")),
    }
    models = {
        fp("boston-1"): stored(fp("boston-1"), {R2: 0.8553, MAE: 14.1}, rentals="b1"),
        fp("denver-1"): stored(fp("denver-1"), {R2: 0.8428, MAE: 10.79}),
        fp("denver-2"): stored(fp("denver-2"), {R2: 0.8396, MAE: 11.06}),
        fp("austin-1"): stored(fp("austin-1"), {R2: 0.81, MAE: 12.5}),
        fp("chicago-1"): stored(fp("chicago-1"), {R2: 0.9, MAE: 9.0}),
        fp("chicago-2"): stored(fp("chicago-2"), {R2: 0.7, MAE: 15.25}),
    }
    return plan.make_plan(
        desired,
        model.Observed(model.frozen_map(services), model.frozen_map(models)),
        manifest_digest=fp("manifest"),
        backend="local",
        manifest="retrain.yaml",
    )


def empty_plan() -> plan.Plan:
    desired = [model.Desired(endpoint(n), fp(f"{n}-1")) for n in ("seattle", "portland")]
    services = {n: service(n, fp(f"{n}-1")) for n in ("seattle", "portland")}
    return plan.make_plan(
        desired,
        model.Observed(model.frozen_map(services), model.frozen_map({})),
        manifest_digest=fp("manifest"),
        backend="local",
        manifest="retrain.yaml",
    )


def by_endpoint(the_plan: plan.Plan) -> dict[str, plan.Change]:
    return {c.endpoint: c for c in the_plan.changes}


def test_the_fixed_plan_has_every_action_both_gate_verdicts_and_unknown_metrics() -> None:
    changes = by_endpoint(every_action_plan())
    assert {name: str(c.action) for name, c in changes.items()} == {
        "seattle": "no-op",
        "portland": "create",
        "boston": "retrain",
        "denver": "update",
        "austin": "repair-drift",
        "miami": "blocked",
        "chicago": "blocked",
    }
    assert changes["denver"].verdict is not None and changes["denver"].verdict.passed
    assert changes["chicago"].verdict is not None and not changes["chicago"].verdict.passed
    assert changes["boston"].train == fp("boston-2") and changes["boston"].challenger is None
    assert changes["boston"].champion == {R2: 0.8553, MAE: 14.1}


# -- goldens -------------------------------------------------------------------------------


def test_text_rendering_matches_its_golden() -> None:
    assert_golden("plan.txt", render.plan_text(every_action_plan()))


def test_coloured_text_rendering_matches_its_golden() -> None:
    text = render.plan_text(every_action_plan(), style=render.Style(colour=True))
    assert "\x1b[32m+ portland\x1b[0m" in text  # create is green
    assert "\x1b[33m~ boston\x1b[0m" in text and "\x1b[33m~ denver\x1b[0m" in text  # yellow
    assert "\x1b[31m! austin\x1b[0m" in text and "\x1b[31mx chicago\x1b[0m" in text  # red
    assert_golden("plan.colour.txt", text)


def test_verbose_text_rendering_lists_unchanged_endpoints_and_matches_its_golden() -> None:
    text = render.plan_text(every_action_plan(), verbose=True)
    assert "  seattle  no-op" in text
    assert "seattle" not in render.plan_text(every_action_plan())
    assert_golden("plan.verbose.txt", text)


# The chart beside chicago's metrics table: two models served it, then the challenger.
CHICAGO_TREND = trend.Trend(
    "chicago",
    "Coefficient of Determination",
    (trend.Point("2026-10-01 03:00", 0.88), trend.Point("2026-11-01 03:00", 0.9)),
)


def test_markdown_rendering_matches_its_golden() -> None:
    parts = markdown.render(
        every_action_plan(), artifact=ARTIFACT, trends={"chicago": CHICAGO_TREND}
    )
    assert len(parts) == 1
    assert_golden("plan.md", parts[0])


def test_json_plan_matches_its_golden() -> None:
    assert_golden("plan.json", planfile.dumps(every_action_plan()))


def test_empty_plan_renders_no_changes_in_every_format() -> None:
    the_plan = empty_plan()
    text = render.plan_text(the_plan)
    assert text == "No changes. 2 endpoints serving their desired models.\n"
    (md,) = markdown.render(the_plan, artifact=ARTIFACT)
    assert md.startswith("<!-- retrain-plan: retrain.yaml -->\n")
    assert "No changes." in md
    assert json.loads(planfile.dumps(the_plan))["summary"]["no-op"] == 2
    assert_golden("empty.txt", text)
    assert_golden("empty.md", md)
    assert_golden("empty.json", planfile.dumps(the_plan))


def test_apply_report_rendering_lists_each_endpoint_result_and_matches_its_golden() -> None:
    results = (
        apply.Result("portland", plan.Action.CREATE, apply.Status.APPLIED, "serving model a"),
        apply.Result("seattle", plan.Action.NOOP, apply.Status.UNCHANGED, "serving model b"),
        apply.Result("boston", plan.Action.RETRAIN, apply.Status.FAILED, "training failed: x"),
        apply.Result(
            "chicago", plan.Action.RETRAIN, apply.Status.GATE_BLOCKED, "gate: r2 0.5 is low"
        ),
        apply.Result("miami", plan.Action.BLOCKED, apply.Status.BLOCKED, "no definition"),
        apply.Result("denver", plan.Action.NOOP, apply.Status.SKIPPED, "not selected"),
    )
    report = apply.Report(results, trained=(fp("boston-2"),), seconds=3.25)
    text = render.report_text(report)
    assert not report.ok
    assert text.endswith(
        "Apply finished with failures: 1 applied, 1 unchanged, 1 failed, 1 gate-blocked, "
        "1 blocked, 1 skipped. Trained 1 model in 3.2s.\n"
    )
    assert_golden("report.txt", text)


# -- what the renderings say ---------------------------------------------------------------


def test_markdown_puts_the_summary_first_then_folded_details_per_changed_endpoint() -> None:
    (md,) = markdown.render(every_action_plan(), artifact=ARTIFACT)
    lines = md.splitlines()
    assert lines[0] == "<!-- retrain-plan: retrain.yaml -->"
    assert lines[1] == "### retrain plan: 1 create, 1 retrain, 1 update, 1 repair-drift, 2 blocked"
    assert md.index("| | endpoint | action | model | gate |") < md.index("<details>")
    folded = re.findall(r"<details><summary>\S* <code>(\w+)</code>: ([\w-]+)</summary>", md)
    assert folded == [
        ("portland", "create"),
        ("boston", "retrain"),
        ("denver", "update"),
        ("austin", "repair-drift"),
        ("miami", "blocked"),
        ("chicago", "blocked"),
    ]
    assert md.count("<details>") == md.count("</details>") == 6


def test_markdown_shows_challenger_against_champion_with_the_delta() -> None:
    (md,) = markdown.render(every_action_plan(), artifact=ARTIFACT)
    assert "| Coefficient of Determination | 0.8396 | 0.8428 | +0.0032 |" in md
    assert "| Mean Absolute Error | 11.06 | 10.79 | -0.27 |" in md
    old, new = fp("denver-2")[:12], fp("denver-1")[:12]
    assert f"| 🔵 | `denver` | update | `{old}` → `{new}` | ✅ pass |" in md
    assert "| `chicago` | blocked |" in md and "❌ fail" in md


def test_metrics_of_a_model_not_yet_trained_are_known_after_training() -> None:
    the_plan = every_action_plan()
    (md,) = markdown.render(the_plan, artifact=ARTIFACT)
    assert "| Coefficient of Determination | 0.8553 | known after training | — |" in md
    assert re.search(r"\| `boston` \| retrain \| .* \| known after training \|", md)
    text = render.plan_text(the_plan)
    boston = text[text.index("~ boston") : text.index("~ denver")]
    assert "gate: (known after training)" in boston
    assert "model_uri: " in boston and "-> (known after training)" in boston
    saved = json.loads(planfile.dumps(the_plan))
    change = next(c for c in saved["changes"] if c["address"] == "boston")
    assert change["after_unknown"] == ["model_uri"]
    assert change["challenger_metrics"] is None and change["gate"] is None


def test_a_change_to_an_already_trained_model_still_says_what_changed() -> None:
    wish = model.Desired(endpoint("boston"), fp("boston-2"), model.frozen_map(recipe("b2")))
    observed = model.Observed(
        model.frozen_map({"boston": service("boston", fp("boston-1"))}),
        model.frozen_map(
            {
                fp("boston-1"): stored(fp("boston-1"), {R2: 0.85}, rentals="b1"),
                fp("boston-2"): stored(fp("boston-2"), {R2: 0.86}, rentals="b2"),
            }
        ),
    )
    (change,) = plan.make_plan([wish], observed).changes
    assert change.action is plan.Action.UPDATE and change.train is None
    assert "inputs changed: rentals" in change.reason


# -- the saved plan ------------------------------------------------------------------------


@pytest.mark.parametrize("make", [every_action_plan, empty_plan], ids=["every-action", "empty"])
def test_a_plan_survives_the_json_round_trip_unchanged(make: Any, tmp_path: Path) -> None:
    the_plan = make()
    assert planfile.from_dict(planfile.to_dict(the_plan)) == the_plan
    path = tmp_path / "plan.json"
    path.write_text(planfile.dumps(the_plan))
    assert planfile.load(path) == the_plan


def test_a_round_trip_keeps_selection_and_gate_verdicts() -> None:
    the_plan = dataclasses.replace(every_action_plan(), targets=("denver", "chicago"))
    back = planfile.from_dict(json.loads(json.dumps(planfile.to_dict(the_plan))))
    assert back.targets == ("denver", "chicago")
    assert by_endpoint(back)["chicago"].verdict == gate.Verdict(
        False,
        "Coefficient of Determination 0.7 regresses more than 0.05 from the serving model's 0.9",
        R2,
        0.7,
        0.9,
    )


def _saved(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    path = tmp_path / "p.json"
    path.write_text(planfile.dumps(every_action_plan()))
    return path, json.loads(path.read_text())


def _unblock(data: dict[str, Any]) -> None:
    data["changes"][6]["action"] = "update"  # chicago: blocked by the gate → forced through


def _retarget(data: dict[str, Any]) -> None:
    data["changes"][3]["after"]["fingerprint"] = fp("something else")


@pytest.mark.parametrize("edit", [_unblock, _retarget], ids=["action", "fingerprint"])
def test_a_hand_edited_plan_file_is_refused_by_its_checksum(edit: Any, tmp_path: Path) -> None:
    path, data = _saved(tmp_path)
    edit(data)
    path.write_text(json.dumps(data, indent=2))
    with pytest.raises(errors.PlanFileError) as info:
        planfile.load(path)
    assert str(info.value) == (
        f"plan file was modified after it was written (checksum mismatch); make a new plan ({path})"
    )


def test_a_truncated_plan_file_is_refused_as_not_json(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(errors.PlanFileError, match=r"plan file is not valid JSON \(truncated\?\)"):
        planfile.load(path)
    path.write_text("")
    with pytest.raises(errors.PlanFileError, match=r"not valid JSON \(truncated\?\)"):
        planfile.load(path)


def test_a_plan_of_another_format_version_is_refused_naming_both_versions(
    tmp_path: Path,
) -> None:
    path, data = _saved(tmp_path)
    path.write_text(json.dumps(data | {"format_version": "2"}))
    with pytest.raises(errors.PlanFileError) as info:
        planfile.load(path)
    assert str(info.value) == (
        f"plan format version '2' is not supported (this retrain reads '1') ({path})"
    )


def test_a_file_that_is_not_a_plan_is_refused_with_where_it_is_malformed(
    tmp_path: Path,
) -> None:
    path, data = _saved(tmp_path)
    del data["checksum"]
    path.write_text(json.dumps(data))
    with pytest.raises(errors.PlanFileError, match=r"malformed at /: 'checksum' is a required"):
        planfile.load(path)
    data = json.loads(planfile.dumps(every_action_plan()))
    data["changes"][0]["action"] = "explode"
    path.write_text(json.dumps(data))
    with pytest.raises(errors.PlanFileError, match=r"malformed at /changes/0/action: 'explode'"):
        planfile.load(path)
    path.write_text("[1, 2, 3]")
    with pytest.raises(errors.PlanFileError, match=r"malformed at /: .* is not of type 'object'"):
        planfile.load(path)


def test_a_missing_plan_file_is_a_plan_file_error(tmp_path: Path) -> None:
    with pytest.raises(errors.PlanFileError, match="cannot read plan file: No such file"):
        planfile.load(tmp_path / "absent.json")


# -- size limits of a pull-request comment --------------------------------------------------


def large_plan(n: int = 3000) -> plan.Plan:
    """``n`` endpoints retraining, each with a long reason and a metric table."""
    reason = "inputs changed: " + ", ".join(f"warehouse_extract_{i:02d}" for i in range(14))
    changes = []
    for i in range(n):
        old, new = fp(f"old-{i}"), fp(f"new-{i}")
        before = {"model_uri": store.uri_for(old), "fingerprint": old, "version": "1"}
        after = {"model_uri": store.uri_for(new), "fingerprint": new, "version": "1"}
        changes.append(
            plan.Change(
                action=plan.Action.UPDATE,
                endpoint=f"store-{i:04d}-demand-forecast",
                web_service=f"store-{i:04d}",
                reason=f"{reason}: switch to model {new[:12]}",
                before=plan.Essence(**before),
                after=plan.Essence(**after),
                diff=(("change", "fingerprint", old, new),),
                verdict=gate.Verdict(True, f"{R2} 0.85 vs serving 0.84 passes", R2, 0.85, 0.84),
                challenger=model.frozen_map({R2: 0.85, MAE: 10.5}),
                champion=model.frozen_map({R2: 0.84, MAE: 11.0}),
            )
        )
    return plan.Plan(tuple(changes), fp("manifest"), "local", manifest="retrain.yaml")


def shown_endpoints(parts: list[str]) -> list[str]:
    return [name for part in parts for name in re.findall(r"<code>(store-\d+)-demand", part)]


def test_a_large_plan_in_one_comment_stays_under_the_limit_and_points_to_the_artifact() -> None:
    parts = markdown.render(large_plan(), artifact=ARTIFACT, max_parts=1)
    assert len(parts) == 1
    (md,) = parts
    assert len(md) < markdown.GITHUB_LIMIT
    assert md.startswith("<!-- retrain-plan: retrain.yaml -->\n### retrain plan: 3000 update\n")
    assert re.search(r"\*\*… \d+ more sections not shown\.\*\* The full plan is in ", md)
    assert md.endswith(f"The full plan is in {ARTIFACT}.\n")


def test_a_large_plan_in_one_comment_still_shows_the_start_of_the_summary_table() -> None:
    (md,) = markdown.render(large_plan(), artifact=ARTIFACT, max_parts=1)
    assert "| 🔵 | `store-0000-demand-forecast` | update |" in md


def test_a_large_plan_split_into_parts_keeps_every_part_under_the_limit_and_marked() -> None:
    parts = markdown.render(large_plan(), artifact=ARTIFACT, max_parts=100)
    assert len(parts) > 1
    for number, part in enumerate(parts, 1):
        assert len(part) < markdown.GITHUB_LIMIT, number
        assert part.startswith("<!-- retrain-plan: retrain.yaml -->\n"), number
        if number > 1:
            assert f"### retrain plan (continued, part {number})" in part
    assert shown_endpoints(parts) == [f"store-{i:04d}" for i in range(3000)]  # all, in order
    assert "not shown" not in parts[-1]


def test_a_split_that_needs_more_parts_than_allowed_ends_with_the_pointer() -> None:
    parts = markdown.render(large_plan(), artifact=ARTIFACT, max_parts=3)
    assert len(parts) == 3
    assert all(len(p) < markdown.GITHUB_LIMIT for p in parts)
    assert "more sections not shown.** The full plan is in" in parts[-1]
    assert all("not shown" not in p for p in parts[:-1])


def test_one_section_larger_than_a_comment_is_cut_to_fit() -> None:
    (change,) = large_plan(1).changes
    huge = dataclasses.replace(change, reason="x" * 200_000)
    the_plan = plan.Plan((huge,), fp("manifest"), "local", manifest="retrain.yaml")
    parts = markdown.render(the_plan, artifact=ARTIFACT, max_parts=5)
    assert all(len(p) < markdown.GITHUB_LIMIT for p in parts)
    assert "*(section truncated; see the full plan)*" in "".join(parts)


def test_a_cut_summary_table_gets_no_stray_closing_details_tag() -> None:
    parts = markdown.render(large_plan(), artifact=ARTIFACT, max_parts=100)
    whole = "".join(parts)
    assert "*(section truncated; see the full plan)*" in whole  # the table was cut
    assert whole.count("</details>") == whole.count("<details>")


def test_the_empty_plans_markdown_title_says_no_changes() -> None:
    (md,) = markdown.render(empty_plan(), artifact=ARTIFACT)
    assert md.splitlines()[1] == "### retrain plan: no changes"


def test_a_partial_plans_comment_says_it_is_partial() -> None:
    the_plan = dataclasses.replace(every_action_plan(), targets=("denver", "chicago"))
    (comment,) = markdown.render(the_plan)
    assert "⚠️ **Partial plan** (--target/--exclude): only `denver`, `chicago`" in comment
    (whole,) = markdown.render(every_action_plan())
    assert "Partial plan" not in whole
