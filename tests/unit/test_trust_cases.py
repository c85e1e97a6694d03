"""The trust decisions, driven by data, like the planner's cases.

``tests/cases/ledger/*.yaml``: live services and history → the endpoints whose live model
the history does not name (what a crash between an update and its entry leaves).
``tests/cases/verify/*.yaml``: a plan case, the edits made to the saved plan, optionally the
state observed at apply time (``now``) → what is stale and what does not match.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler import ledger, model, plan, verify
from reconciler.providers.local import store
from tests.unit.test_plan_cases import build, service

CASES = Path(__file__).parents[1] / "cases"
LEDGER = sorted((CASES / "ledger").glob("*.yaml"))
VERIFY = sorted((CASES / "verify").glob("*.yaml"))


def entry(spec: dict[str, Any]) -> model.HistoryEntry:
    fp = spec["fingerprint"]
    return model.HistoryEntry(
        time="2026-01-01T00:00:00+00:00",
        endpoint=spec["endpoint"],
        web_service=f"ws-{spec['endpoint']}",
        action="retrain",
        fingerprint=fp,
        version=str(spec["version"]),
        model_uri=store.uri_for(fp),
        previous_uri=None,
        previous_fingerprint=None,
    )


@pytest.mark.parametrize("path", LEDGER, ids=[p.stem for p in LEDGER])
def test_ledger_case(path: Path) -> None:
    case = yaml.safe_load(path.read_text())
    services = {name: service(name, spec) for name, spec in case["services"].items()}
    last = ledger.last_entries(entry(e) for e in case["history"])
    gaps = ledger.unrecorded(services, last)
    assert [name for name, _svc in gaps] == case["unrecorded"]
    assert all(svc is services[name] for name, svc in gaps)


def test_a_recovered_entry_names_the_live_model_and_what_came_before() -> None:
    svc = service("a", {"fingerprint": "fp-b", "version": 2})
    assert svc is not None
    previous = entry({"endpoint": "a", "fingerprint": "fp-a", "version": 1})
    stored = model.ModelRecord("fp-b", store.uri_for("fp-b"), model.frozen_map({"r2": 0.9}), "t")
    got = ledger.recovered(
        svc, endpoint="a", previous=previous, stored=stored, time="t", actor="ci"
    )
    assert (got.action, got.fingerprint, got.version, got.model_uri) == (
        "recovered",
        "fp-b",
        "2",
        store.uri_for("fp-b"),
    )
    assert (got.previous_fingerprint, dict(got.metrics), got.actor) == ("fp-a", {"r2": 0.9}, "ci")


def edited(saved: plan.Plan, case: dict[str, Any]) -> plan.Plan:
    changes = []
    for original in saved.changes:
        if original.endpoint in case.get("drop", []):
            continue
        change = original
        for edit in case.get("edits", []):
            if edit["endpoint"] == change.endpoint:
                change = dataclasses.replace(change, **_fields(change, edit))
        changes.append(change)
    return dataclasses.replace(saved, changes=tuple(changes))


def _fields(change: plan.Change, edit: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in edit.items() if k != "endpoint"}
    if "after" in fields:
        fields["after"] = dataclasses.replace(change.after or plan.ABSENT, **fields["after"])
    if "action" in fields:
        fields["action"] = plan.Action(fields["action"])
    if "challenger" in fields:
        fields["challenger"] = model.frozen_map(fields["challenger"])
    return fields


@pytest.mark.parametrize("path", VERIFY, ids=[p.stem for p in VERIFY])
def test_verify_case(path: Path) -> None:
    case = yaml.safe_load(path.read_text())
    saved = edited(build(case), case)
    now = build(case | {"observed": case.get("now", case["observed"])})
    findings = verify.saved_plan(
        saved,
        now,
        backend=saved.backend,
        manifest_digest=saved.manifest_digest,
        fingerprints={d["endpoint"]: d["fingerprint"] for d in case["desired"]},
        model_uri=store.uri_for,
    )
    for kind in ("stale", "mismatched"):
        found = getattr(findings, kind)
        assert len(found) == len(case[kind]), found
        for line, want in zip(found, case[kind], strict=True):
            assert line.startswith(want), line
    assert bool(findings) is bool(case["stale"] or case["mismatched"])


def test_a_plan_for_another_backend_or_manifest_is_stale() -> None:
    case = yaml.safe_load((CASES / "verify" / "untouched_plan_holds.yaml").read_text())
    saved = build(case)
    fps = {"a": "fp-b"}
    other = verify.saved_plan(
        saved, saved, backend="azure", manifest_digest="", fingerprints=fps, model_uri=str
    )
    assert other.stale == ("it is for the '' backend, the manifest uses 'azure'",)
    moved = verify.saved_plan(
        saved, saved, backend="", manifest_digest="abc", fingerprints=fps, model_uri=str
    )
    assert moved.stale[0].startswith("the manifest changed since the plan was made")


def test_verify_and_ledger_cases_exist() -> None:
    assert len(LEDGER) >= 5
    assert len(VERIFY) >= 9
