"""Train what a ``Plan`` needs, then act on the plan decided after training: update,
verify, record.

Each distinct fingerprint is trained once, however many endpoints wait for it,
with independent jobs in parallel. The gate is the planner's: the engine plans
again with the new models known (``plan.make_plan(..., fresh=...)``), and apply
acts on that plan. An endpoint whose training failed or whose new model the gate
turned down is left untouched while the others proceed; the report says what
happened to each. Apply executes the plan's actions; it never re-decides them.
"""

from __future__ import annotations

import datetime as dt
import enum
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reconciler import errors, fingerprint, model, plan
from reconciler import progress as progress_
from reconciler.providers import base

if TYPE_CHECKING:  # imported where a pool is made (see _pool)
    import concurrent.futures

Progress = progress_.Sink


class Status(enum.StrEnum):
    """What happened to one endpoint."""

    APPLIED = "applied"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    GATE_BLOCKED = "gate-blocked"
    BLOCKED = "blocked"
    SKIPPED = "skipped"


FAILURES = frozenset({Status.FAILED, Status.GATE_BLOCKED, Status.BLOCKED})


@dataclass(frozen=True, slots=True)
class Result:
    endpoint: str
    action: plan.Action
    status: Status
    message: str
    fingerprint: str | None = None
    metrics: Mapping[str, float] | None = None


@dataclass(frozen=True, slots=True)
class Report:
    results: tuple[Result, ...]
    trained: tuple[str, ...] = ()
    seconds: float = 0.0
    training_failures: Mapping[str, str] = field(default_factory=model.frozen_map)

    @property
    def ok(self) -> bool:
        return not any(r.status in FAILURES for r in self.results)

    def count(self, status: Status) -> int:
        return sum(r.status is status for r in self.results)


@dataclass(frozen=True, slots=True)
class Training:
    """What training a plan's models gave: the records by fingerprint (models found
    already trained included), each failure's reason, and how long it took."""

    models: Mapping[str, model.ModelRecord] = field(default_factory=model.frozen_map)
    failed: Mapping[str, str] = field(default_factory=model.frozen_map)
    seconds: float = 0.0


def execute(
    the_plan: plan.Plan,
    endpoints: Mapping[str, model.Endpoint],
    provider: base.Provider,
    *,
    training: Training = Training(),
    parallelism: int,
    actor: str = "",
    progress: Progress = lambda _line: None,
) -> Report:
    """Act on every change of ``the_plan``, the plan decided after ``training``:
    each change says which model to serve; ``endpoints`` (the manifest's, by name)
    say how to reach each web service."""
    started = time.monotonic()
    context = _Context(the_plan, endpoints, provider, training.failed, actor, progress)
    with _pool(parallelism) as pool:
        results = tuple(pool.map(context.act, the_plan.changes))
    return Report(
        results,
        tuple(training.models),
        training.seconds + time.monotonic() - started,
        model.frozen_map(training.failed),
    )


def train(
    the_plan: plan.Plan,
    desired: Mapping[str, model.Desired],
    provider: base.Provider,
    *,
    parallelism: int,
    progress: Progress = lambda _line: None,
) -> Training:
    """Train every model ``the_plan`` needs, once each; ``desired`` by endpoint name."""
    started = time.monotonic()
    jobs = training_jobs(the_plan, desired)
    trained, failed = train_models(jobs, provider, parallelism, progress)
    return Training(model.frozen_map(trained), model.frozen_map(failed), time.monotonic() - started)


def training_jobs(
    the_plan: plan.Plan, desired: Mapping[str, model.Desired]
) -> tuple[base.TrainingJob, ...]:
    """One job per distinct fingerprint the plan needs, naming every endpoint waiting for it."""
    waiting: dict[str, list[str]] = {}
    for change in the_plan.mutating():
        if change.train:
            waiting.setdefault(change.train, []).append(change.endpoint)
    jobs = []
    for fp, names in waiting.items():
        wish = desired[names[0]]
        ep = wish.endpoint
        strays = [n for n in names if desired[n].fingerprint != fp]
        if strays:  # a model is stored under the fingerprint of its own recipe, or not at all
            raise errors.PlanFileError(
                f"plan trains {fingerprint.short(fp)} for {strays[0]}, whose recipe is "
                f"{fingerprint.short(desired[strays[0]].fingerprint)}"
            )
        jobs.append(
            base.TrainingJob(
                fingerprint=fp,
                trainer=ep.trainer,
                inputs=ep.inputs,
                parameters=model.frozen_map(
                    dict(ep.parameters) | {k: s.reveal() for k, s in ep.secret_parameters.items()}
                ),
                recipe=wish.recipe,
                endpoints=tuple(names),
                version=ep.version,
            )
        )
    return tuple(jobs)


def train_models(
    jobs: Sequence[base.TrainingJob], provider: base.Provider, parallelism: int, progress: Progress
) -> tuple[dict[str, model.ModelRecord], dict[str, str]]:
    """Run the jobs, independent ones in parallel; a model already stored is reused, not
    retrained (a plan made before another run trained it, or ``plan --train``).
    Returns the records by fingerprint, and the failures' reasons. Interrupted (Ctrl-C,
    SIGTERM), it stops the running jobs, starts no queued one, and re-raises."""
    failed: dict[str, str] = {}
    if not jobs:
        return {}, failed
    trained = dict(provider.models([job.fingerprint for job in jobs]))
    for fp in trained:
        progress(f"model {fingerprint.short(fp)} is already trained; reusing it")
    jobs = [job for job in jobs if job.fingerprint not in trained]
    for job in jobs:
        progress(_event(progress_.Kind.QUEUED, job, detail=", ".join(job.endpoints)))
    beat = _Heartbeat(progress)

    def run(numbered: tuple[int, base.TrainingJob]) -> None:
        number, job = numbered
        fp = fingerprint.short(job.fingerprint)
        line = f"training model {fp} for {', '.join(job.endpoints)} ({number}/{len(jobs)})"
        progress(_event(progress_.Kind.RUNNING, job, line))
        began = time.monotonic()
        beat.start(job)
        try:
            record = provider.train(job)
        except errors.StoppedError as e:
            progress(_event(progress_.Kind.STOPPED, job, f"training model {fp} stopped: {e}"))
            return
        except errors.ReconcilerError as e:
            failed[job.fingerprint] = str(e)
            progress(_event(progress_.Kind.FAILED, job, f"training model {fp} failed: {e}", str(e)))
            return
        finally:
            beat.stop(job)
        trained[job.fingerprint] = record
        shown = ", ".join(f"{k} {v:.4g}" for k, v in record.metrics.items())
        line = f"trained model {fp} in {time.monotonic() - began:.1f}s: {shown}"
        progress(_event(progress_.Kind.DONE, job, line, shown))

    with beat, _pool(max(1, parallelism)) as pool:
        try:
            list(pool.map(run, enumerate(jobs, 1)))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # start no queued job
            provider.cancel()  # interrupted: stop the jobs so the pool can shut down
            raise
    return trained, failed


def _event(
    kind: progress_.Kind, job: base.TrainingJob, line: str = "", detail: str = ""
) -> progress_.Event:
    subject = progress_.model_subject(fingerprint.short(job.fingerprint))
    return progress_.Event(kind, subject, line, detail)


HEARTBEAT_SECONDS = 30.0  # a running job says it is alive this often: CI kills silent steps


class _Heartbeat:
    """While jobs run, a line every ``HEARTBEAT_SECONDS`` per job: a long remote job
    (a remote batch or command job) is visibly alive in a plain CI log."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.running: dict[str, tuple[base.TrainingJob, float]] = {}
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="retrain-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.done.set()
        self.thread.join()

    def start(self, job: base.TrainingJob) -> None:
        with self.lock:
            self.running[job.fingerprint] = (job, time.monotonic())

    def stop(self, job: base.TrainingJob) -> None:
        with self.lock:
            self.running.pop(job.fingerprint, None)

    def _beat(self) -> None:
        while not self.done.wait(HEARTBEAT_SECONDS):
            with self.lock:
                running = list(self.running.values())
            for job, began in running:
                took = time.monotonic() - began
                fp = fingerprint.short(job.fingerprint)
                line = f"training model {fp}: still running, {took:.0f}s"
                self.progress(_event(progress_.Kind.HEARTBEAT, job, line))


@dataclass
class _Context:
    """What acting on one change needs; ``act`` runs in worker threads."""

    the_plan: plan.Plan
    endpoints: Mapping[str, model.Endpoint]
    provider: base.Provider
    failed: Mapping[str, str]
    actor: str
    progress: Progress

    def act(self, change: plan.Change) -> Result:
        action = change.action
        if action is plan.Action.NOOP:
            return Result(change.endpoint, action, Status.UNCHANGED, change.reason)
        if action is plan.Action.BLOCKED:
            return self._gate_blocked(change) if change.fresh else self._blocked(change)
        if change.train and change.train in self.failed:
            return Result(
                change.endpoint,
                action,
                Status.FAILED,
                f"training failed: {self.failed[change.train]}",
            )
        try:
            return self._promote(change, self.endpoints[change.endpoint])
        except errors.ReconcilerError as e:
            self.progress(
                progress_.Event(
                    progress_.Kind.FAILED,
                    change.endpoint,
                    f"{change.endpoint}: failed: {e}",
                    str(e),
                )
            )
            return Result(change.endpoint, action, Status.FAILED, str(e))

    @staticmethod
    def _blocked(change: plan.Change) -> Result:
        return Result(change.endpoint, change.action, Status.BLOCKED, change.reason)

    def _gate_blocked(self, change: plan.Change) -> Result:
        """The planner's gate turned down the model this run trained: say so, as such."""
        why = change.verdict.reason if change.verdict else change.reason
        serving = fingerprint.short((change.before or plan.ABSENT).fingerprint)
        self.progress(
            progress_.Event(
                progress_.Kind.FAILED,
                change.endpoint,
                f"{change.endpoint}: gate blocked: {why}",
                f"gate blocked: {why}",
            )
        )
        return Result(
            change.endpoint,
            change.action,
            Status.GATE_BLOCKED,
            f"gate: {why}; still serving {serving}",
            (change.after or plan.ABSENT).fingerprint,
            change.challenger,
        )

    def _promote(self, change: plan.Change, ep: model.Endpoint) -> Result:
        fp, uri, version = self._served(change, ep)
        metrics = change.challenger or {}
        tags = {
            model.TAG_MANAGED_BY: model.MANAGED_BY,
            model.TAG_ENDPOINT: change.endpoint,
            model.TAG_FINGERPRINT: fp,
            model.TAG_VERSION: version,
        }
        self.progress(
            progress_.Event(
                progress_.Kind.ROLLOUT,
                change.endpoint,
                detail=f"{change.action}: {ep.web_service} to model {fingerprint.short(fp)}",
            )
        )
        if change.action is plan.Action.CREATE:
            self.provider.create(ep, uri, tags)
        else:
            self.provider.update(ep, uri, tags)
        self._verify(ep, uri, fp)
        try:
            self._record(change, fp, uri, version, metrics)
        except errors.ReconcilerError as e:
            return Result(
                change.endpoint,
                change.action,
                Status.FAILED,
                f"now serving model {fingerprint.short(fp)}, but the change could "
                f"not be recorded in the history: {e}",
                fp,
                metrics,
            )
        done = f"{change.action} done, serving {fingerprint.short(fp)}"
        self.progress(
            progress_.Event(
                progress_.Kind.DONE, change.endpoint, f"{change.endpoint}: {done}", done
            )
        )
        verdict = change.verdict
        judged = f"; gate: {verdict.reason}" if verdict is not None and ep.gate else ""
        return Result(
            change.endpoint,
            change.action,
            Status.APPLIED,
            f"serving model {fingerprint.short(fp)} (version {version}){judged}",
            fp,
            metrics,
        )

    def _served(self, change: plan.Change, ep: model.Endpoint) -> tuple[str, str, str]:
        """The fingerprint, model URI and version the change points the service at,
        refused unless the URI is where the store keeps that fingerprint."""
        after = change.after or plan.ABSENT
        fp, uri, version = after.fingerprint, after.model_uri, after.version
        if fp is None or uri is None or version is None:  # only a change that trained nothing
            raise errors.ReconcilerError(
                f"model {fingerprint.short(fp)} is not trained; not pointing at it",
                where=ep.web_service,
            )
        if uri != self.provider.model_uri(fp):
            raise errors.ProviderError(
                f"model {uri[:200]} is not where model {fingerprint.short(fp)} is "
                f"stored ({self.provider.model_uri(fp)}); not pointing at it",
                where=ep.web_service,
            )
        return fp, uri, version

    def _verify(self, ep: model.Endpoint, uri: str, fp: str) -> None:
        """Read back: the write is done only when the live service says so."""
        state = self.provider.observe([ep]).get(ep.name)
        if state is None or state.model_uri != uri or state.fingerprint != fp:
            seen = (
                "no web service"
                if state is None
                else (f"{state.model_uri} tagged {fingerprint.short(state.fingerprint)}")
            )
            raise errors.ProviderError(
                f"read-back after update shows {seen}, expected {uri} tagged "
                f"{fingerprint.short(fp)}",
                where=ep.web_service,
            )

    def _record(
        self, change: plan.Change, fp: str, uri: str, version: str, metrics: Mapping[str, float]
    ) -> None:
        before = change.before or plan.ABSENT
        self.provider.record(
            base.HistoryEntry(
                time=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                endpoint=change.endpoint,
                web_service=change.web_service,
                action=str(change.action),
                fingerprint=fp,
                version=version,
                model_uri=uri,
                previous_uri=before.model_uri,
                previous_fingerprint=before.fingerprint,
                metrics=model.frozen_map(metrics),
                actor=self.actor,
                manifest_digest=self.the_plan.manifest_digest,
            )
        )


def _pool(workers: int) -> concurrent.futures.ThreadPoolExecutor:
    """A pool of ``workers`` threads. concurrent.futures (and the logging it imports) is
    imported here, by an apply: a plan, which runs none, starts without it."""
    import concurrent.futures

    return concurrent.futures.ThreadPoolExecutor(max_workers=workers)
