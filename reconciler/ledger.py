"""History that names what each endpoint serves, however an apply died. Pure.

Apply changes a web service, reads it back, then appends a history entry. A
crash between the change and the entry (SIGKILL, a lost runner, a full disk)
leaves the service serving the new model with no entry, and the next plan is a
no-op, so nothing would ever write it. Rather than a write-ahead log that needs
its own recovery, every apply reconciles the history with the live ownership
tags: they are written in the same request as the model reference, so they are
the truth. An endpoint that serves, consistently with its tags, a model (or
version) other than the one its last history entry names gets one entry with
action ``recovered``. An endpoint whose reference was edited out of band is
drift, not a history gap: apply repairs it and records that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from reconciler import model

RECOVERED = "recovered"


def last_entries(entries: Iterable[model.HistoryEntry]) -> dict[str, model.HistoryEntry]:
    """The newest entry per endpoint (entries come oldest first)."""
    return {entry.endpoint: entry for entry in entries}


def unrecorded(
    services: Mapping[str, model.ServiceState | None], last: Mapping[str, model.HistoryEntry]
) -> tuple[tuple[str, model.ServiceState], ...]:
    """Endpoints (with their live state) whose live, self-consistent model the history does
    not name last."""
    gaps = []
    for name, svc in services.items():
        if svc is None or not svc.managed or not svc.fingerprint:
            continue
        if svc.model_uri is None or svc.model_uri != svc.expected_uri:
            continue  # drift (or no asset): the plan deals with it
        entry = last.get(name)
        if entry is None or (entry.fingerprint, entry.version) != (svc.fingerprint, svc.version):
            gaps.append((name, svc))
    return tuple(gaps)


def recovered(
    svc: model.ServiceState,
    *,
    endpoint: str,
    previous: model.HistoryEntry | None,
    stored: model.ModelRecord | None,
    time: str,
    actor: str,
) -> model.HistoryEntry:
    """The entry for a change that was made but never recorded."""
    return model.HistoryEntry(
        time=time,
        endpoint=endpoint,
        web_service=svc.web_service,
        action=RECOVERED,
        fingerprint=svc.fingerprint or "",
        version=svc.version or "",
        model_uri=svc.model_uri or "",
        previous_uri=previous.model_uri if previous else None,
        previous_fingerprint=previous.fingerprint if previous else None,
        metrics=model.frozen_map(stored.metrics if stored else {}),
        actor=actor,
    )
