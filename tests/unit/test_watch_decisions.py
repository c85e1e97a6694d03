"""The controller's pure decisions, case by case: triggers from two polls, backoff,
what one reconcile covers, cron schedules, and which notices are news."""

from __future__ import annotations

import datetime as dt

import pytest

from reconciler import apply, model, plan, schedule
from reconciler.watch import backoff, decide, notices, triggers

ALL = ("a", "b", "c")
WATCH = triggers.Watched(
    manifest="/p/retrain.yaml",
    inputs=model.frozen_map({"/p/a.csv": frozenset({"a"}), "/p/bc.csv": frozenset({"b", "c"})}),
    schedules=model.frozen_map({"nightly": ("0 3 * * *", frozenset({"c"}))}),
    endpoints=ALL,
)
T0 = dt.datetime(2026, 3, 1, 2, 59, 58, tzinfo=dt.UTC).timestamp()  # 2 s before 03:00 UTC
FILES = {"/p/retrain.yaml": (1, 10), "/p/a.csv": (1, 20), "/p/bc.csv": (1, 30)}


def poll(at: float, head: str | None = "c1", **changed: tuple[int, int] | None) -> triggers.Poll:
    files = dict(FILES) | {f"/p/{k.replace('_', '.')}": v for k, v in changed.items()}
    return triggers.Poll(at, model.frozen_map(files), head)


def kinds(found: tuple[triggers.Trigger, ...]) -> list[tuple[str, list[str] | None]]:
    return [(str(t.kind), sorted(t.endpoints) if t.endpoints is not None else None) for t in found]


TRIGGER_CASES = {
    "first poll: start, everything": (None, poll(T0), None, [("start", None)]),
    "nothing moved": (poll(T0 - 3), poll(T0 - 1), T0 - 3, []),
    "an input moved: its endpoints": (
        poll(T0 - 3),
        poll(T0 - 1, a_csv=(2, 20)),
        T0 - 3,
        [("input", ["a"])],
    ),
    "a shared input grew: both readers": (
        poll(T0 - 3),
        poll(T0 - 1, bc_csv=(1, 31)),
        T0 - 3,
        [("input", ["b", "c"])],
    ),
    "the manifest moved: everything": (
        poll(T0 - 3),
        poll(T0 - 1, retrain_yaml=(5, 10)),
        T0 - 3,
        [("manifest", None)],
    ),
    "an input deleted counts as a change": (
        poll(T0 - 3),
        poll(T0 - 1, a_csv=None),
        T0 - 3,
        [("input", ["a"])],
    ),
    "HEAD moved: everything": (poll(T0 - 3), poll(T0 - 1, head="c2"), T0 - 3, [("git", None)]),
    "not a checkout any more: no trigger": (poll(T0 - 3), poll(T0 - 1, head=None), T0 - 3, []),
    "interval elapsed": (poll(T0 - 3), poll(T0 - 1), T0 - 301, [("interval", None)]),
    "interval not yet": (poll(T0 - 3), poll(T0 - 1), T0 - 299, []),
    "03:00 passed between polls: the nightly trainer's endpoints": (
        poll(T0),
        poll(T0 + 2),
        T0,
        [("schedule", ["c"])],
    ),
    "03:00 already seen by the previous poll: once only": (poll(T0 + 2), poll(T0 + 4), T0, []),
}


@pytest.mark.parametrize("case", TRIGGER_CASES, ids=list(TRIGGER_CASES))
def test_triggers_from_two_polls(case: str) -> None:
    before, now, reconciled, expected = TRIGGER_CASES[case]
    found = triggers.fired(before, now, WATCH, interval=300.0, reconciled=reconciled)
    assert kinds(found) == expected


def test_no_interval_means_only_changes_and_schedules() -> None:
    assert triggers.fired(poll(0), poll(10_000), WATCH, interval=None, reconciled=0) == ()


POLICY = backoff.Policy(base=10, cap=60)


def test_backoff_doubles_up_to_the_cap_and_a_success_clears_it() -> None:
    state = backoff.EMPTY
    waits = []
    for now in (0, 100, 200, 300, 400):
        state = backoff.failed(state, ["a"], now=now, reason="boom", policy=POLICY)
        waits.append(state["a"].retry_at - now)
    assert waits == [10, 20, 40, 60, 60]
    assert backoff.waiting(state, 459) == {"a"}
    assert backoff.due(state, 460) == {"a"}
    assert backoff.succeeded(state, ["a"]) == {}


def failing(**retry_at: float) -> backoff.State:
    return model.frozen_map(
        {("*" if k == "manifest" else k): backoff.Failing(1, v, "x") for k, v in retry_at.items()}
    )


def T(kind: str, *endpoints: str) -> triggers.Trigger:
    return triggers.Trigger(triggers.Kind(kind), "", frozenset(endpoints) if endpoints else None)


DECIDE_CASES = {
    "nothing fired, nobody due: nothing": ([], failing(), 0, None),
    "start: the whole manifest": ([T("start")], failing(), 0, ((), ())),
    "an input for a: only a": ([T("input", "a")], failing(), 0, (("a",), ())),
    "interval while b backs off: a and c, b held": (
        [T("interval")],
        failing(b=50),
        10,
        (("a", "c"), ("b",)),
    ),
    "an input change for b clears its backoff": (
        [T("input", "b")],
        failing(b=50),
        10,
        (("b",), ()),
    ),
    "b's backoff ran out: b is retried alone": ([], failing(b=50), 50, (("b",), ())),
    "schedule for c while c backs off: nothing": ([T("schedule", "c")], failing(c=50), 10, None),
    "a broken manifest holds the interval back": ([T("interval")], failing(manifest=50), 10, None),
    "a manifest edit retries it at once": (
        [T("manifest")],
        failing(manifest=50),
        10,
        ((), ()),
    ),
    "the manifest's retry is due: everything": ([], failing(manifest=50), 60, ((), ())),
}


@pytest.mark.parametrize("case", DECIDE_CASES, ids=list(DECIDE_CASES))
def test_what_one_reconcile_covers(case: str) -> None:
    fired, state, now, expected = DECIDE_CASES[case]
    tick = decide.decide(fired, state, ALL, now)
    assert (None if tick is None else (tick.targets, tick.held)) == expected


def test_before_the_manifest_ever_loaded_a_trigger_asks_for_everything() -> None:
    tick = decide.decide([T("start")], backoff.EMPTY, (), 0)
    assert tick is not None
    assert tick.targets == ()


CRON_CASES = {
    "daily at 03:00": ("0 3 * * *", "2026-03-01T02:59:59", "2026-03-01T03:00:00", True),
    "not yet": ("0 3 * * *", "2026-03-01T02:58:00", "2026-03-01T02:59:59", False),
    "exactly at since: already fired": (
        "0 3 * * *",
        "2026-03-01T03:00:00",
        "2026-03-01T03:01",
        False,
    ),
    "every 15 minutes": ("*/15 * * * *", "2026-03-01T10:14:59", "2026-03-01T10:15:00", True),
    "mondays only, on a sunday": ("0 3 * * MON", "2026-03-01T00:00", "2026-03-01T23:59", False),
    "a long sleep still fires once": ("0 3 * * *", "2026-03-01T00:00", "2026-03-09T00:00", True),
}


@pytest.mark.parametrize("case", CRON_CASES, ids=list(CRON_CASES))
def test_cron_schedule_fires_in_the_half_open_window(case: str) -> None:
    expr, since, now, expected = CRON_CASES[case]
    assert schedule.fired(expr, _utc(since), _utc(now)) is expected


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


BAD_SCHEDULES = ["@daily", "* * *", "61 * * * *", "0 3 * * FUNDAY", "0 25 * * *", "* * * * * *"]


@pytest.mark.parametrize("bad", BAD_SCHEDULES)
def test_a_bad_cron_schedule_is_named(bad: str) -> None:
    why = schedule.problem(bad)
    assert why is not None
    assert repr(bad) in why


def test_a_good_cron_schedule_has_no_problem() -> None:
    assert schedule.problem("0 3 * * 1-5") is None


def drift(name: str, live: str) -> plan.Change:
    before = plan.Essence(live, "f" * 64, "1")
    return plan.Change(plan.Action.DRIFT, name, f"ws-{name}", "edited", before, before)


def test_drift_is_told_once_until_it_clears_then_again() -> None:
    found = notices.from_plan(plan.Plan((drift("a", "uri-x"),)))
    first, sent = notices.unsent(found, frozenset(), ["a"])
    again, sent = notices.unsent(found, sent, ["a"])
    cleared, sent = notices.unsent((), sent, ["a"])
    back, sent = notices.unsent(found, sent, ["a"])
    assert [len(first), len(again), len(cleared), len(back)] == [1, 0, 0, 1]
    assert first[0].message().startswith("🟠 retrain drift: a:")


def test_a_reconcile_of_other_endpoints_keeps_what_was_told() -> None:
    _told, sent = notices.unsent(
        notices.from_plan(plan.Plan((drift("a", "u"),))), frozenset(), ["a"]
    )
    _none, sent = notices.unsent((), sent, ["b"])
    again, _sent = notices.unsent(notices.from_plan(plan.Plan((drift("a", "u"),))), sent, ["a"])
    assert again == ()


def test_promotions_failures_and_gate_blocks_from_an_apply_report() -> None:
    report = apply.Report(
        (
            apply.Result("a", plan.Action.RETRAIN, apply.Status.APPLIED, "ok", "a" * 64),
            apply.Result("b", plan.Action.RETRAIN, apply.Status.FAILED, "trainer crashed"),
            apply.Result("c", plan.Action.RETRAIN, apply.Status.GATE_BLOCKED, "R2 0.1 < 0.6"),
            apply.Result("d", plan.Action.NOOP, apply.Status.UNCHANGED, "in sync"),
        )
    )
    found = notices.from_report(report)
    assert [(n.kind, n.endpoint) for n in found] == [
        (notices.Kind.PROMOTION, "a"),
        (notices.Kind.FAILURE, "b"),
        (notices.Kind.GATE_BLOCKED, "c"),
    ]
    assert "aaaaaaaaaaaa" in found[0].text
