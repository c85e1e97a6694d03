"""Cron schedules (``schedule: "0 3 * * *"`` on a trainer): checked when the manifest
loads, evaluated by ``retrain watch`` to retrain on fresh data from the same location.

The five-field syntax is cronsim's (the parser Healthchecks.io runs on millions of
checks; maintained, typed, no dependencies, day-of-month/day-of-week "or" semantics
as in Vixie cron). A small parser of our own would have to get those corners right
again. Times are UTC, so a controller's schedule does not move with its host's zone
or with daylight saving. Pure: the clock is always passed in.
"""

from __future__ import annotations

import datetime as dt

import cronsim

FIELDS = 5  # minute hour day month weekday, as in crontab(5)
CHECKED_FROM = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # any instant: only parsing is checked


def problem(expr: str) -> str | None:
    """Why ``expr`` is not a schedule cronsim can run, or None when it is. Five fields
    only: cronsim also takes a sixth, seconds, which a controller polling every few
    seconds cannot honour (and which no crontab has)."""
    if len(expr.split()) != FIELDS:
        return f"{expr!r} is not a cron schedule (minute hour day month weekday): {FIELDS} fields"
    try:
        cronsim.CronSim(expr, CHECKED_FROM)
    except cronsim.CronSimError as e:
        return f"{expr!r} is not a cron schedule (minute hour day month weekday): {e}"
    return None


def next_after(expr: str, after: dt.datetime) -> dt.datetime:
    """The first time strictly after ``after`` (aware, UTC) that ``expr`` names."""
    return next(iter(cronsim.CronSim(expr, after.astimezone(dt.UTC))))


def fired(expr: str, since: dt.datetime, now: dt.datetime) -> bool:
    """Whether ``expr`` named a time in ``(since, now]``: checked at each poll with the
    previous poll's time as ``since``, each scheduled time fires exactly once."""
    return next_after(expr, since) <= now
