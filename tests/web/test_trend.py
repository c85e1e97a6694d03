"""The chart's points: champions from the history, losing challengers from the store."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from reconciler import model
from reconciler.web import trend

METRIC = "Coefficient of Determination"
GATE = model.Gate(METRIC, minimum=0.6, max_regression=0.05)


def entry(time: str, fp: str, value: float, action: str = "retrain") -> model.HistoryEntry:
    return model.HistoryEntry(
        time=time,
        endpoint="bike-boston",
        web_service="bike-demand-boston",
        action=action,
        fingerprint=fp,
        version="2026.11",
        model_uri=f"models/{fp}",
        previous_uri=None,
        previous_fingerprint=None,
        metrics=model.frozen_map({METRIC: value}),
        actor="ci",
    )


def stored(
    fp: str, value: float, trained_at: str, endpoints: object = ("bike-boston",)
) -> model.ModelRecord:
    lineage: Mapping[str, model.JSON] = {"endpoints": endpoints, "version": "2026.12"}
    return model.ModelRecord(fp, f"models/{fp}", {METRIC: value}, trained_at, lineage)


def test_a_challenger_below_the_floor_is_a_failed_point_after_the_champion() -> None:
    history = [entry("2026-11-01T10:00:05+00:00", "a" * 64, 0.85, "create")]
    models = [
        stored("a" * 64, 0.85, "2026-11-01T10:00:00+00:00"),
        stored("b" * 64, 0.4, "2026-11-02T09:00:00+00:00"),
    ]
    t = trend.trend("bike-boston", GATE, history, models)
    assert [(p.kind, p.value, p.passed) for p in t.points] == [
        (trend.Kind.CHAMPION, 0.85, True),
        (trend.Kind.CHALLENGER, 0.4, False),
    ]
    assert (
        t.failed[0].note == "gate blocked: Coefficient of Determination 0.4 is below the floor 0.6"
    )
    assert t.failed[0].version == "2026.12"


def test_a_challenger_is_judged_against_the_champion_serving_when_it_was_trained() -> None:
    history = [
        entry("2026-11-01T10:00:00+00:00", "a" * 64, 0.70, "create"),
        entry("2026-11-05T10:00:00+00:00", "c" * 64, 0.90),
    ]
    # 0.68 is within 0.05 of the first champion (0.70) but regresses from the second (0.90)
    early = stored("b" * 64, 0.68, "2026-11-03T10:00:00+00:00")
    late = stored("d" * 64, 0.68, "2026-11-06T10:00:00+00:00")
    t = trend.trend("bike-boston", GATE, history, [early, late])
    verdicts = {p.fingerprint[0]: p.passed for p in t.points if p.kind is trend.Kind.CHALLENGER}
    assert verdicts == {"b": True, "d": False}
    assert [p.fingerprint[0] for p in t.points] == ["a", "b", "c", "d"]


def test_served_models_are_not_challengers_and_prunes_are_not_champions() -> None:
    history = [
        entry("2026-11-01T10:00:00+00:00", "a" * 64, 0.8, "create"),
        entry("2026-11-02T10:00:00+00:00", "a" * 64, 0.8, "prune"),
    ]
    t = trend.trend("bike-boston", GATE, history, [stored("a" * 64, 0.8, "2026-11-01T09:00:00")])
    assert [(p.kind, p.note) for p in t.points] == [(trend.Kind.CHAMPION, "create by ci")]


def test_models_trained_for_other_endpoints_or_with_odd_lineage_are_left_out() -> None:
    models = [
        stored("b" * 64, 0.9, "2026-11-02T10:00:00+00:00", endpoints=("bike-seattle",)),
        stored("c" * 64, 0.9, "2026-11-02T10:00:00+00:00", endpoints="bike-boston"),
        stored("d" * 64, 0.9, "not a time", endpoints=["bike-boston", 3]),
    ]
    t = trend.trend("bike-boston", GATE, [], models)
    assert [(p.fingerprint[0], p.passed) for p in t.points] == [("d", True)]


def test_an_endpoint_without_a_gate_has_points_but_no_metric() -> None:
    t = trend.trend("bike-boston", None, [entry("2026-11-01T10:00:00+00:00", "a" * 64, 0.8)], [])
    assert t.metric is None
    assert [p.value for p in t.points] == [None]


def test_a_recovered_entry_without_metrics_takes_the_stored_models() -> None:
    bare = entry("2026-11-01T10:00:00+00:00", "a" * 64, 0.0, "recovered")
    bare = dataclasses.replace(bare, metrics=model.frozen_map({}))
    t = trend.trend("bike-boston", GATE, [bare], [stored("a" * 64, 0.77, "2026-11-01T09:00:00")])
    assert [p.value for p in t.points] == [0.77]
