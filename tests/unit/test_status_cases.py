"""``retrain status``, driven by data like the planner's cases, and pinned by a golden.

``tests/cases/status/*.yaml``: a plan case (``desired``, ``observed`` services and the
models in the store), the ``history`` (oldest first) → one ``expected`` row per endpoint,
optionally the serving models status reads beyond the planner's (``read``) and the metric columns
(``metrics``). The golden ``tests/golden/status.txt`` pins the whole stage: the engine
gathering a fixed fleet's state from a provider, the rows, and the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from reconciler import engine, ledger, model, plan, render, settings, status
from reconciler.providers import base
from tests.unit.test_plan_cases import endpoint, record, service
from tests.unit.test_renderings import assert_golden

CASES = sorted((Path(__file__).parents[1] / "cases" / "status").glob("*.yaml"))


def history(specs: Iterable[dict[str, Any]]) -> list[model.HistoryEntry]:
    return [
        model.HistoryEntry(
            time=spec["time"],
            endpoint=spec["endpoint"],
            web_service=f"ws-{spec['endpoint']}",
            action="retrain",
            fingerprint=spec["fingerprint"],
            version=str(spec["version"]),
            model_uri=f"models/{spec['fingerprint']}",
            previous_uri=None,
            previous_fingerprint=None,
        )
        for spec in specs
    ]


def fleet(case: dict[str, Any]) -> tuple[list[model.Desired], FakeProvider]:
    """The case's desired state, and a provider serving its services, store and history."""
    desired = [model.Desired(endpoint(d), d["fingerprint"]) for d in case["desired"]]
    observed = case.get("observed") or {}
    services = {
        t.name: service(t.name, (observed.get("services") or {}).get(t.name)) for t in desired
    }
    store = {fp: record(fp, spec or {}) for fp, spec in (observed.get("models") or {}).items()}
    return desired, FakeProvider(services, store, history(case.get("history", [])))


class FakeProvider:
    """Just the reads ``status`` makes, each one logged."""

    def __init__(
        self,
        services: Mapping[str, model.ServiceState | None],
        store: Mapping[str, model.ModelRecord],
        entries: Sequence[model.HistoryEntry],
    ) -> None:
        self.services, self.store, self.entries = services, store, entries
        self.reads: list[tuple[str, tuple[str, ...]]] = []
        self.listed: tuple[model.Managed, ...] = ()  # what ``managed`` lists

    def observe(self, endpoints: Iterable[model.Endpoint]) -> dict[str, model.ServiceState | None]:
        names = tuple(ep.name for ep in endpoints)
        self.reads.append(("observe", names))
        return {name: self.services.get(name) for name in names}

    def models(self, fingerprints: Iterable[str]) -> dict[str, model.ModelRecord]:
        wanted = tuple(fingerprints)
        self.reads.append(("models", wanted))
        return {fp: self.store[fp] for fp in wanted if fp in self.store}

    def managed(self, endpoints: Iterable[model.Endpoint]) -> tuple[model.Managed, ...]:
        self.reads.append(("managed", ()))
        return self.listed

    def history(self, endpoint: str | None = None) -> Iterator[model.HistoryEntry]:
        self.reads.append(("history", ()))
        return iter(self.entries)


def session(desired: Sequence[model.Desired], provider: FakeProvider) -> engine.Session:
    endpoints = tuple(t.endpoint for t in desired)
    manifest = model.Manifest("retrain.yaml", "0" * 64, model.Backend("local"), {}, endpoints)
    the_session = engine.Session(
        settings.Settings(), manifest, cast(base.Provider, provider), endpoints
    )
    the_session._desired = tuple(desired)  # fingerprints are given, not digested
    return the_session


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_status_case(path: Path) -> None:
    case = yaml.safe_load(path.read_text())
    desired, provider = fleet(case)
    services = provider.observe(t.endpoint for t in desired)
    needed = plan.models_needed(desired, services)
    observed = model.Observed(services, provider.models(sorted(needed)))
    if "read" in case:
        assert status.models_to_read(observed) == case["read"]
    stored = {**observed.models, **provider.models(status.models_to_read(observed))}
    the_plan = plan.make_plan(desired, observed)
    rows = status.rows(the_plan, services, stored, ledger.last_entries(provider.entries))
    assert len(rows) == len(case["expected"])
    for row, want in zip(rows, case["expected"], strict=True):
        got = {k: getattr(row, k) for k in want} | {"metrics": dict(row.metrics)}
        assert got == want | {"metrics": want.get("metrics", {})}
    assert status.metric_names(t.endpoint for t in desired) == case.get("metrics", [])


def change(action: plan.Action) -> plan.Change:
    return plan.Change(action, "a", "ws-a", "why", before=None, after=None)


def test_an_endpoint_without_a_service_is_missing_whatever_its_planned_action() -> None:
    assert {status.state(change(action), None) for action in plan.Action} == {status.State.MISSING}


def test_a_served_endpoint_is_named_by_its_planned_action() -> None:
    svc = service("a", {"fingerprint": "fp-a", "version": 1})
    words = {action: str(status.state(change(action), svc)) for action in plan.Action}
    assert words == {
        plan.Action.NOOP: "in sync",
        plan.Action.DRIFT: "drifted",
        plan.Action.BLOCKED: "blocked",
        plan.Action.CREATE: "out of date",
        plan.Action.RETRAIN: "out of date",
        plan.Action.UPDATE: "out of date",
    }


GOLDEN_FLEET = {
    "desired": [
        {"endpoint": "portland", "fingerprint": "f" * 64, "gate": {"metric": "r2", "minimum": 0.5}},
        {"endpoint": "denver", "fingerprint": "d" * 64, "version": 2},
        {"endpoint": "chicago", "fingerprint": "c" * 64, "definition": "webservice.json"},
        {"endpoint": "boston", "fingerprint": "b" * 64, "gate": {"metric": "r2", "minimum": 0.95}},
        {
            "endpoint": "austin",
            "fingerprint": "a" * 64,
            "gate": {"metric": "mae", "minimum": 9, "higher_is_better": False},
        },
    ],
    "observed": {
        "services": {
            "portland": {"fingerprint": "f" * 64, "version": 1},
            "denver": {"fingerprint": "e" * 64, "version": 1},
            "boston": {"fingerprint": "e" * 64, "version": 1},
            "austin": {"fingerprint": "a" * 64, "version": 1, "model_uri": "https://x.example/m"},
        },
        "models": {
            "f" * 64: {"metrics": {"r2": 0.91234, "mae": 12.5}},
            "e" * 64: {"metrics": {"r2": 0.8}},
            "b" * 64: {"metrics": {"r2": 0.9}},
            "a" * 64: {"metrics": {"mae": 8.25}},
        },
    },
    "history": [
        {
            "endpoint": "portland",
            "fingerprint": "0" * 64,
            "version": 1,
            "time": "2026-01-01T00:00:00+00:00",
        },
        {
            "endpoint": "portland",
            "fingerprint": "f" * 64,
            "version": 1,
            "time": "2026-02-01T00:00:00+00:00",
        },
        {
            "endpoint": "denver",
            "fingerprint": "e" * 64,
            "version": 1,
            "time": "2026-01-15T12:00:00+00:00",
        },
    ],
}


def test_the_status_table_matches_its_golden_and_reads_each_thing_once() -> None:
    desired, provider = fleet(GOLDEN_FLEET)
    rows, metrics = engine.read_status(session(desired, provider))
    assert_golden("status.txt", render.status_text(rows, metrics))
    assert [kind for kind, _ in provider.reads] == [
        "observe",
        "models",
        "managed",
        "models",
        "history",
    ]


def test_status_cases_exist() -> None:
    assert len(CASES) >= 6
