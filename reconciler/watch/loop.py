"""The controller loop: poll, decide, reconcile, report; never stops on a failure.

One thread runs it (the process's main thread), so its own reconciles never overlap;
an apply by anyone else is kept apart by the backend's apply lock, which the loop
takes like ``retrain apply`` does. When another apply holds it, the loop waits up to
``lock_timeout``, then keeps the reconcile's triggers pending and tries again at the
next poll (it is not a failure: nothing backs off). ``stop`` (SIGTERM) is looked at
between steps only, so a reconcile under way finishes, lock released and history
written, before the loop returns.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from reconciler import apply, engine, errors, gcpause, plan, progress, settings
from reconciler.watch import backoff, decide, metrics, notices, sense, server, triggers

REASONS_SHOWN = 5  # triggers named in a reconcile's log line; the rest are counted


class Stop(Protocol):
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass(frozen=True, slots=True)
class Options:
    """``interval``: seconds between reconciles when nothing changed (None: only on
    changes and schedules); ``poll``: seconds between looks at the files."""

    auto_apply: bool = False
    interval: float | None = 300.0
    poll: float = 2.0
    policy: backoff.Policy = field(default_factory=backoff.Policy)


@dataclass
class Controller:
    """The loop's state between polls. ``open`` makes a session for settings (the CLI's,
    so errors and redaction are its own); ``log`` takes one line (``Error:``/``Warning:``
    prefixes are levels); ``notify`` posts a notice."""

    config: settings.Settings
    options: Options
    open: Callable[[settings.Settings], engine.Session]
    log: Callable[[str], None]
    notify: Callable[[notices.Notice], None] = lambda _n: None
    meters: metrics.Metrics = field(default_factory=metrics.Metrics)
    health: server.Health = field(default_factory=server.Health)
    clock: Callable[[], float] = time.time
    watch: triggers.Watched = field(init=False)
    before: triggers.Poll | None = None
    reconciled: float | None = None
    pending: tuple[triggers.Trigger, ...] = ()
    waits: backoff.State = field(default_factory=lambda: backoff.EMPTY)
    sent: frozenset[str] = frozenset()
    locked: bool = False
    folder: Path | None = None

    def __post_init__(self) -> None:
        self.watch = triggers.Watched(str(self.config.manifest))
        manifest_dir = self.config.manifest.resolve().parent
        self.folder = manifest_dir if sense.head(manifest_dir) else None

    def run(self, stop: Stop) -> None:
        """Poll and reconcile until ``stop`` is set."""
        while not stop.is_set():
            self.step()
            stop.wait(self.options.poll)

    def step(self) -> None:
        """One poll, and the reconcile it calls for, if any."""
        now = sense.poll(self.watch.files(), now=self.clock(), folder=self.folder)
        fired = triggers.fired(
            self.before,
            now,
            self.watch,
            interval=self.options.interval,
            reconciled=self.reconciled,
        )
        self.before = now
        tick = decide.decide([*self.pending, *fired], self.waits, self.watch.endpoints, now.now)
        if tick is not None:
            self.reconcile(tick)

    def reconcile(self, tick: decide.Tick) -> None:
        """Open a session for the tick's endpoints, plan (and apply), and account for it;
        then give what loading and planning froze back to the collector (``gcpause``)."""
        try:
            self._reconcile(tick)
        finally:
            gcpause.release()

    def _reconcile(self, tick: decide.Tick) -> None:
        started = self.clock()
        self.reconciled = started
        self.log(_describe(tick))
        try:
            session = self.open(dataclasses.replace(self.config, targets=tick.targets))
        except Exception as e:  # the loop never stops: a broken manifest waits for a fix
            self._failed(e, [backoff.MANIFEST])
            return
        self._rewatch(session)
        names = [ep.name for ep in session.endpoints]
        try:
            the_plan, report = self._run(session)
        except errors.LockError as e:
            self._locked(tick, e)
            return
        except Exception as e:
            self._failed(e, names)
            return
        self.locked = False
        self.pending = ()
        self._account(the_plan, report, names)
        self.meters.reconciles.labels("ok" if report is None or report.ok else "failed").inc()
        self.meters.reconcile_seconds.observe(self.clock() - started)

    def _run(self, session: engine.Session) -> tuple[plan.Plan, apply.Report | None]:
        tracker = progress.Tracker()
        sink = self._sink(tracker)
        if not self.options.auto_apply:
            the_plan = engine.plan_now(session)
            self._said(the_plan)
            return the_plan, None

        def confirm(the_plan: plan.Plan) -> bool:
            self._said(the_plan)
            return True

        return engine.run_apply(session, confirm=confirm, progress=sink)

    def _said(self, the_plan: plan.Plan) -> None:
        """The plan, one line per endpoint it would change, before anything is applied."""
        for c in the_plan.mutating_or_blocked():
            self.log(f"{c.endpoint}: {c.action}: {c.reason}")

    def _sink(self, tracker: progress.Tracker) -> progress.Sink:
        """Apply's progress: plain log lines, and training jobs' ends and gate verdicts
        counted in the metrics."""

        def sink(item: str | progress.Event) -> None:
            if isinstance(item, str):
                self.log(item)
                return
            if item.line:
                self.log(item.line)
            self._measure(tracker, item)

        return sink

    def _measure(self, tracker: progress.Tracker, event: progress.Event) -> None:
        now = time.monotonic()
        known = tracker.rows.get(event.subject)
        was_final = known is not None and known.state in progress.FINAL
        tracker.apply(event, now)
        row = tracker.rows[event.subject]
        job = event.subject.startswith(progress.model_subject(""))
        if job and row.state in progress.FINAL and not was_final:
            self.meters.training.labels(str(row.state)).inc()
            self.meters.training_seconds.observe(row.elapsed(now))
        if event.kind is progress.Kind.GATING and event.detail.startswith("gate "):
            verdict = "pass" if event.detail.startswith("gate pass") else "fail"
            self.meters.gate.labels(event.subject, verdict).inc()

    def _rewatch(self, session: engine.Session) -> None:
        """Watch what the manifest names now; a file new to the list is stamped now, so
        its next change is seen (none is missed between this load and the next poll)."""
        self.watch = triggers.watched(session.manifest, local=sense.local_files(session.manifest))
        known = set(self.watch.endpoints) | {backoff.MANIFEST}
        self.waits = backoff.succeeded(self.waits, [k for k in self.waits if k not in known])
        if self.before is not None:
            files = dict(self.before.files)
            files.update({p: sense.stamp(p) for p in self.watch.files() if p not in files})
            self.before = dataclasses.replace(self.before, files=files)

    def _account(self, the_plan: plan.Plan, report: apply.Report | None, names: list[str]) -> None:
        """Log, metrics, backoff, notices and readiness after a reconcile that ran."""
        if the_plan.is_empty():
            self.log("No changes: every endpoint serves its desired model.")
        self.meters.planned(the_plan)
        found = list(notices.from_plan(the_plan))
        failed: list[str] = []
        if report is not None:
            self.meters.applied(the_plan, report)
            found += notices.from_report(report)
            failed = [r.endpoint for r in report.results if r.status is apply.Status.FAILED]
            for r in report.results:
                if r.status is not apply.Status.SKIPPED:
                    self.log(f"{r.endpoint}: {r.status}: {r.message}")
        streak = {n for n in failed if n in self.waits}
        self._fail_backoff(failed, "apply failed")
        self.waits = backoff.succeeded(
            self.waits, [n for n in names if n not in failed] + [backoff.MANIFEST]
        )
        self._tell(
            [n for n in found if not (n.kind is notices.Kind.FAILURE and n.endpoint in streak)],
            names,
        )
        self.health.ready, self.health.why = True, ""
        if not failed:
            self.meters.last_success.set(self.clock())
        self.meters.failing(dict.fromkeys(names, 0) | self._failures())

    def _failed(self, e: Exception, names: list[str]) -> None:
        """A reconcile that ended in an error: logged, its endpoints back off, the
        webhook is told at the start of a streak."""
        text = str(e) if isinstance(e, errors.ReconcilerError) else f"unexpected {e!r}"
        lines = e.problems if isinstance(e, errors.ManifestError) else [text]
        for line in lines:
            self.log(f"Error: {' '.join(line.split())}")
        new = [n for n in names if n not in self.waits]
        self._fail_backoff(names, lines[0] if lines else text)
        self.pending = ()
        self.meters.reconciles.labels("failed").inc()
        self.meters.failing(self._failures())
        if names == [backoff.MANIFEST]:
            self.health.ready, self.health.why = False, lines[0] if lines else text
        elif not self.health.ready:
            self.health.why = f"the first reconcile failed: {text}"
        waits = min((self.waits[n].retry_at for n in names), default=self.clock())
        self.log(f"Will retry in {max(0.0, waits - self.clock()):.0f}s (or on a change).")
        whole = names == [backoff.MANIFEST]
        about = [self.watch.manifest if whole else n for n in new]
        self._tell([notices.Notice(notices.Kind.FAILURE, n, text) for n in about], [])

    def _fail_backoff(self, names: list[str], reason: str) -> None:
        if names:
            self.waits = backoff.failed(
                self.waits, names, now=self.clock(), reason=reason, policy=self.options.policy
            )

    def _failures(self) -> dict[str, int]:
        return {k: v.failures for k, v in self.waits.items() if k != backoff.MANIFEST}

    def _locked(self, tick: decide.Tick, e: errors.LockError) -> None:
        """Another apply holds the lock: keep the triggers for the next poll; say it once."""
        if not self.locked:
            self.log(f"Warning: {e}; trying again at each poll until it is released")
        self.locked = True
        self.pending = tick.reasons
        self.meters.reconciles.labels("locked").inc()

    def _tell(self, found: list[notices.Notice], covered: list[str]) -> None:
        to_send, self.sent = notices.unsent(found, self.sent, covered)
        for notice in to_send:
            self.notify(notice)


def _describe(tick: decide.Tick) -> str:
    reasons = [str(r) for r in tick.reasons]
    shown = ", ".join(reasons[:REASONS_SHOWN])
    if len(reasons) > REASONS_SHOWN:
        shown += f" and {len(reasons) - REASONS_SHOWN} more"
    which = ", ".join(tick.targets) if tick.targets else "every endpoint"
    held = f"; backing off: {', '.join(tick.held)}" if tick.held else ""
    return f"Reconciling {which} ({shown}){held}"
