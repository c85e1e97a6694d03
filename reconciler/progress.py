"""What a run is doing, as structured events, so the CLI can show it two ways.

Apply and ``plan --train`` report progress through one sink. A plain string is a log
line, as it always was; an ``Event`` also says which job or endpoint it is about and
what state it is in (queued, running, polling, gating, done, failed, stopped), so a
terminal can show a live table with each job's elapsed time while CI logs keep the
plain lines (``Event.line``; empty for events that only move the table).

``Tracker`` folds events into rows. It is pure (the clock is passed in), so the CLI's
live display, its plain fallback and its Ctrl-C summary all read the same state.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field


class Kind(enum.StrEnum):
    """A job's (or a rollout's) state; ``HEARTBEAT`` and ``NOTE`` keep the state."""

    QUEUED = "queued"
    RUNNING = "running"
    POLLING = "polling"
    GATING = "gating"
    ROLLOUT = "rollout"
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"
    HEARTBEAT = "heartbeat"
    NOTE = "note"


FINAL = frozenset({Kind.DONE, Kind.FAILED, Kind.STOPPED})
KEEPS_STATE = frozenset({Kind.HEARTBEAT, Kind.NOTE})


@dataclass(frozen=True, slots=True)
class Event:
    """``subject``: what it is about (``model 1a2b3c4d5e6f``, an endpoint name);
    ``line``: the plain log line ("" when there is none); ``detail``: a short note
    for the live table (the backend's job status, metrics, a failure)."""

    kind: Kind
    subject: str
    line: str = ""
    detail: str = ""


Sink = Callable[["str | Event"], None]
"""Where progress goes: a log line, or an event."""


def model_subject(short_fingerprint: str) -> str:
    """The subject of a training job's events, as every line names a model."""
    return f"model {short_fingerprint}"


@dataclass(slots=True)
class Row:
    """One subject's state, since when (clock seconds) and its latest detail."""

    subject: str
    state: Kind
    started: float
    ended: float | None = None
    detail: str = ""

    def elapsed(self, now: float) -> float:
        return (self.ended if self.ended is not None else now) - self.started


@dataclass
class Tracker:
    """The rows, in the order subjects first appeared."""

    rows: dict[str, Row] = field(default_factory=dict)

    def apply(self, event: Event, now: float) -> None:
        row = self.rows.get(event.subject)
        if row is None:
            state = Kind.RUNNING if event.kind in KEEPS_STATE else event.kind
            row = self.rows[event.subject] = Row(event.subject, state, now)
        elif event.kind not in KEEPS_STATE and row.state not in FINAL:
            if row.state is Kind.QUEUED and event.kind is not Kind.QUEUED:
                row.started = now  # elapsed counts from the job's start, not its queueing
            row.state = event.kind
        if event.kind in FINAL and row.ended is None:
            row.ended = now
        if event.detail:
            row.detail = event.detail

    def note(self, line: str, now: float) -> bool:
        """Attach a backend's log line to the unfinished row it names (a job's status
        while it is polled); True when one took it."""
        for row in self.rows.values():
            if row.state not in FINAL and _names(line, row.subject):
                if row.state is Kind.RUNNING:
                    row.state = Kind.POLLING
                row.detail = line
                return True
        return False

    def finished(self) -> list[Row]:
        return [r for r in self.rows.values() if r.state in (Kind.DONE, Kind.FAILED)]

    def unfinished(self) -> list[Row]:
        return [r for r in self.rows.values() if r.state not in FINAL or r.state is Kind.STOPPED]

    def interrupted(self, now: float) -> list[str]:
        """What Ctrl-C stopped and what had finished, one line each, for the last words."""
        lines = [
            f"finished: {r.subject}: {r.state} in {r.elapsed(now):.1f}s" for r in self.finished()
        ]
        lines += [
            f"stopped: {r.subject} ({_was(r)} for {r.elapsed(now):.1f}s)" for r in self.unfinished()
        ]
        return lines


def _was(row: Row) -> str:
    return "queued" if row.state is Kind.QUEUED else "running"


def _names(line: str, subject: str) -> bool:
    """Whether a log line is about ``subject``: a model by its short fingerprint
    (backends name jobs by it), an endpoint by ``name:`` at the start."""
    if subject.startswith("model "):
        return subject.removeprefix("model ") in line
    return line.startswith(f"{subject}:")
