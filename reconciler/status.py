"""What each endpoint serves now, as ``retrain status`` shows it. Pure.

Beside the planner because it is a decision, not a rendering: from the plan,
the observed services, the stored models and the last history entry per
endpoint, it says per endpoint whether it is in sync, which version and model
it serves, how good that model is and since when. The engine only gathers those
inputs; ``render`` only lays the rows out as a table.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reconciler import model, plan

NONE = "-"  # shown for a version or deployment time nobody recorded


class State(enum.StrEnum):
    """How an endpoint's live state stands against the manifest."""

    IN_SYNC = "in sync"
    DRIFTED = "drifted"
    BLOCKED = "blocked"
    OUT_OF_DATE = "out of date"  # a change is planned: create, retrain or update
    MISSING = "missing"  # no web service to serve the model
    ORPHANED = "orphaned"  # managed by retrain, no longer in the manifest


_STATES = {
    plan.Action.NOOP: State.IN_SYNC,
    plan.Action.DRIFT: State.DRIFTED,
    plan.Action.BLOCKED: State.BLOCKED,
}


@dataclass(frozen=True, slots=True)
class Row:
    """One endpoint in ``retrain status``; ``fingerprint`` is full ("" when none)."""

    endpoint: str
    web_service: str
    state: State
    version: str
    fingerprint: str
    metrics: Mapping[str, float]
    deployed: str


def rows(
    the_plan: plan.Plan,
    services: Mapping[str, model.ServiceState | None],
    models: Mapping[str, model.ModelRecord],
    last: Mapping[str, model.HistoryEntry],
) -> tuple[Row, ...]:
    """One row per change of ``the_plan``, in its order. ``models`` must hold every serving
    fingerprint that is stored (see ``models_to_read``); ``last`` is the newest history
    entry per endpoint."""
    return tuple(
        _row(c, services.get(c.endpoint), models, last.get(c.endpoint)) for c in the_plan.changes
    )


def _row(
    change: plan.Change,
    svc: model.ServiceState | None,
    models: Mapping[str, model.ModelRecord],
    entry: model.HistoryEntry | None,
) -> Row:
    fp = svc.fingerprint if svc else None
    record = models.get(fp) if fp else None
    return Row(
        endpoint=change.endpoint,
        web_service=change.web_service,
        state=state(change, svc),
        version=(svc.version if svc else None) or NONE,
        fingerprint=fp or "",
        metrics=record.metrics if record else {},
        deployed=entry.time if entry else NONE,
    )


def orphan_rows(
    orphans: Iterable[model.Managed], last: Mapping[str, model.HistoryEntry]
) -> tuple[Row, ...]:
    """One ``orphaned`` row per service retrain manages that the manifest no longer lists:
    what its tags say it serves, since when the history says (no metrics: its model is
    not read, the manifest no longer cares how good it is)."""
    return tuple(
        Row(
            endpoint=m.endpoint,
            web_service=m.web_service,
            state=State.ORPHANED,
            version=m.version or NONE,
            fingerprint=m.fingerprint or "",
            metrics={},
            deployed=entry.time if (entry := last.get(m.endpoint)) else NONE,
        )
        for m in orphans
    )


def state(change: plan.Change, svc: model.ServiceState | None) -> State:
    """The word for where an endpoint stands: the planned action, or ``missing``."""
    if svc is None:
        return State.MISSING
    return _STATES.get(change.action, State.OUT_OF_DATE)


def models_to_read(observed: model.Observed) -> list[str]:
    """Serving fingerprints the planner did not need, so ``observed`` lacks their
    metrics: the status table shows every serving model's, so read these too."""
    serving = {s.fingerprint for s in observed.services.values() if s and s.fingerprint}
    return sorted(serving - set(observed.models))


def metric_names(endpoints: Iterable[model.Endpoint]) -> list[str]:
    """The metrics worth a column: those the endpoints' gates judge, in first-seen order."""
    return list(dict.fromkeys(ep.gate.metric for ep in endpoints if ep.gate))
