"""Apply's one path, through the engine with a provider that logs every call: observe
once, decide, train what the plan needs, decide again with the new models known (the
gate is the planner's), act on that plan. ``plan --train`` takes the same first half.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from reconciler import apply, engine, errors, model, plan
from reconciler.providers import base
from reconciler.providers.local import store
from tests.unit.test_plan_cases import endpoint, record, service
from tests.unit.test_status_cases import FakeProvider, history, session

GATE = {"metric": "r2", "minimum": 0.5}


class TrainingProvider(FakeProvider):
    """``FakeProvider`` that also trains (metrics by fingerprint), writes and records."""

    def __init__(self, case: dict[str, Any], metrics: Mapping[str, float | None]) -> None:
        services = {name: service(name, spec) for name, spec in case["services"].items()}
        stored = {fp: record(fp, spec) for fp, spec in case.get("models", {}).items()}
        served = [
            {"time": "t0", "endpoint": name, "fingerprint": spec["fingerprint"], "version": 1}
            for name, spec in case["services"].items()
        ]
        self.log = history(served)
        super().__init__(services, stored, self.log)
        self.metrics = metrics  # a fingerprint whose metric is None fails to train
        self.trained: list[str] = []
        self.writes: list[tuple[str, str, str]] = []

    def train(self, job: base.TrainingJob) -> model.ModelRecord:
        self.trained.append(job.fingerprint)
        r2 = self.metrics[job.fingerprint]
        if r2 is None:
            raise errors.TrainingError("trainer exited with 1")
        self.store = {
            **self.store,
            job.fingerprint: record(job.fingerprint, {"metrics": {"r2": r2}}),
        }
        return self.store[job.fingerprint]

    def update(self, endpoint: model.Endpoint, model_uri: str, tags: Mapping[str, str]) -> None:
        self.writes.append(("update", endpoint.name, model_uri))
        spec = {"fingerprint": tags[model.TAG_FINGERPRINT], "version": tags[model.TAG_VERSION]}
        self.services = {**self.services, endpoint.name: service(endpoint.name, spec)}

    def record(self, entry: model.HistoryEntry) -> None:
        self.log.append(entry)

    def model_uri(self, fingerprint: str) -> str:
        return store.uri_for(fingerprint)

    def recover(self) -> list[str]:
        return []

    @contextlib.contextmanager
    def lock(
        self, holder: str, timeout: float, on_wait: Callable[[str], None] = print
    ) -> Iterator[None]:
        yield

    def observations(self) -> list[tuple[str, ...]]:
        return [names for kind, names in self.reads if kind == "observe"]


def fleet(
    desired: dict[str, str], case: dict[str, Any], metrics: Mapping[str, float | None]
) -> tuple[engine.Session, TrainingProvider]:
    """Endpoints (name → desired fingerprint, all gated on r2 ≥ 0.5) and their provider."""
    wishes = [
        model.Desired(endpoint({"endpoint": name, "fingerprint": fp, "gate": GATE}), fp)
        for name, fp in desired.items()
    ]
    provider = TrainingProvider(case, metrics)
    return session(wishes, provider), provider


SERVING_OLD: dict[str, Any] = {
    "services": {"a": {"fingerprint": "fp-old", "version": 1}},
    "models": {"fp-old": {"metrics": {"r2": 0.8}}},
}


def apply_all(the_session: engine.Session) -> tuple[plan.Plan, apply.Report]:
    the_plan, report = engine.run_apply(the_session, confirm=lambda _plan: True)
    assert report is not None
    return the_plan, report


def test_apply_trains_then_acts_on_the_plan_made_with_the_new_model_reading_services_once() -> None:
    the_session, provider = fleet({"a": "fp-new"}, SERVING_OLD, {"fp-new": 0.85})
    the_plan, report = apply_all(the_session)
    assert [c.action for c in the_plan.changes] == [plan.Action.RETRAIN]
    assert provider.trained == ["fp-new"]
    assert provider.observations() == [("a",), ("a",)]  # the plan's read, then the read-back
    assert provider.writes == [("update", "a", store.uri_for("fp-new"))]
    (result,) = report.results
    assert (result.status, result.message) == (
        apply.Status.APPLIED,
        "serving model fp-new (version 1); gate: r2 0.85 vs serving 0.8 passes",
    )
    assert provider.log[-1].action == "retrain"  # the change that asked for the model


def test_a_gate_block_after_training_is_reported_as_gate_blocked_and_changes_nothing() -> None:
    the_session, provider = fleet({"a": "fp-new"}, SERVING_OLD, {"fp-new": 0.3})
    entries = len(provider.log)
    _plan, report = apply_all(the_session)
    (result,) = report.results
    assert (result.status, result.message, result.fingerprint) == (
        apply.Status.GATE_BLOCKED,
        "gate: r2 0.3 is below the floor 0.5; still serving fp-old",
        "fp-new",
    )
    assert not report.ok
    assert provider.writes == [] and len(provider.log) == entries


def test_a_gate_block_known_before_training_stays_a_plain_block() -> None:
    case = SERVING_OLD | {"models": {**SERVING_OLD["models"], "fp-new": {"metrics": {"r2": 0.3}}}}
    the_session, provider = fleet({"a": "fp-new"}, case, {})
    _plan, report = apply_all(the_session)
    (result,) = report.results
    assert (result.status, result.message) == (
        apply.Status.BLOCKED,
        "gate: r2 0.3 is below the floor 0.5",
    )
    assert provider.trained == []


def test_a_failed_training_leaves_its_endpoint_untouched_while_others_proceed() -> None:
    case = {
        "services": {
            "a": {"fingerprint": "fp-old", "version": 1},
            "b": {"fingerprint": "fp-old", "version": 1},
        },
        "models": {"fp-old": {"metrics": {"r2": 0.8}}},
    }
    the_session, provider = fleet({"a": "fp-x", "b": "fp-y"}, case, {"fp-x": None, "fp-y": 0.9})
    _plan, report = apply_all(the_session)
    got = {r.endpoint: (r.status, r.message) for r in report.results}
    assert got["a"] == (apply.Status.FAILED, "training failed: trainer exited with 1")
    assert got["b"][0] is apply.Status.APPLIED
    assert provider.writes == [("update", "b", store.uri_for("fp-y"))]
    assert dict(report.training_failures) == {"fp-x": "trainer exited with 1"}


def test_plan_with_training_reads_services_once_and_shows_what_a_later_apply_derives() -> None:
    the_session, provider = fleet({"a": "fp-new"}, SERVING_OLD, {"fp-new": 0.85})
    the_plan, failed = engine.plan_with_training(the_session)
    (change,) = the_plan.changes
    assert (change.action, change.train, change.fresh, failed) == (
        plan.Action.UPDATE,
        None,
        False,
        {},
    )
    assert change.verdict is not None and change.verdict.passed
    assert provider.observations() == [("a",)]
    assert engine.plan_now(the_session).changes == the_plan.changes
