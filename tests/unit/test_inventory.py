"""``inventory``: which stored models are referenced, and which gc removes. Pure."""

from __future__ import annotations

from reconciler import inventory, model
from tests.unit.test_orphans import managed


def record(fp: str, trained_at: str) -> model.ModelRecord:
    return model.ModelRecord(fp, f"m://{fp}", {"r2": 0.9}, trained_at)


def entry(endpoint: str, fp: str, action: str = "retrain") -> model.HistoryEntry:
    uri = "" if action == "prune" else f"m://{fp}"
    return model.HistoryEntry("t", endpoint, "ws", action, fp, "1", uri, None, None)


def test_serving_wanted_orphaned_and_pruned_models_are_referenced_and_gc_keeps_the_newest() -> None:
    fps = [c * 64 for c in "abcdefg"]
    stored = [record(fp, f"2026-01-0{i + 1}") for i, fp in enumerate(fps)]
    svc = model.ServiceState("ws", "m://a", {model.TAG_FINGERPRINT: fps[0]}, "m://a", "r")
    endpoint = model.Endpoint(
        "e", "ws", "asset", "1", model.Trainer("t"), {}, {}, None, None, model.Source("f")
    )
    desired = [model.Desired(endpoint, fps[1])]
    observed = model.Observed({"e": svc}, {}, (managed("gone", "svc", fps[2]),))
    history = [entry("old", fps[3]), entry("old", fps[3], "prune"), entry("e", fps[4])]
    found = inventory.inventory(stored, desired, observed, history)
    assert [s.record.fingerprint for s in found] == fps[::-1]  # newest first
    by = {s.record.fingerprint: s for s in found}
    assert by[fps[0]].serving == ("e",) and by[fps[1]].wanted == ("e",)
    assert by[fps[2]].serving == ("gone",) and by[fps[3]].disowned == ("old",)
    assert by[fps[4]].served == ("e",) and not by[fps[4]].referenced
    doomed = inventory.garbage(found, keep=1)
    assert [s.record.fingerprint for s in doomed] == [fps[5], fps[4]]  # g kept: newest
    assert inventory.garbage(found, keep=3) == ()
