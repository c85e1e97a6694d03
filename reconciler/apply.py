"""Execute a ``Plan`` through a provider: train, gate, update, verify, record.

Each distinct fingerprint is trained once, however many endpoints wait for it,
with independent jobs in parallel. An endpoint whose training or gate fails is
left untouched while the others proceed; the report says what happened to
each. Apply executes the plan's actions; it never re-decides them.
"""

from __future__ import annotations

import datetime as dt
import enum
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from reconciler import errors, fingerprint, gate, model, plan
from reconciler.providers import base

Progress = Callable[[str], None]


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
class _Model:
    uri: str
    metrics: Mapping[str, float]
    fresh: bool  # trained by this apply: the gate has not judged it yet


def execute(
    the_plan: plan.Plan,
    targets: Mapping[str, model.Target],
    provider: base.Provider,
    *,
    parallelism: int,
    actor: str = "",
    progress: Progress = lambda _line: None,
) -> Report:
    """Apply every change of ``the_plan``; ``targets`` are the manifest's, by endpoint name."""
    started = time.monotonic()
    jobs = training_jobs(the_plan, targets)
    trained, failed = train_models(jobs, provider, parallelism, progress)
    context = _Context(the_plan, targets, provider, trained, failed, actor, progress)
    with ThreadPoolExecutor(max_workers=parallelism) as pool:
        results = tuple(pool.map(context.act, the_plan.changes))
    return Report(results, tuple(trained), time.monotonic() - started, model.frozen_map(failed))


def training_jobs(
    the_plan: plan.Plan, targets: Mapping[str, model.Target]
) -> tuple[base.TrainingJob, ...]:
    """One job per distinct fingerprint the plan needs, naming every endpoint waiting for it."""
    waiting: dict[str, list[str]] = {}
    for change in the_plan.mutating():
        if change.train:
            waiting.setdefault(change.train, []).append(change.endpoint)
    jobs = []
    for fp, names in waiting.items():
        target = targets[names[0]]
        ep = target.endpoint
        strays = [n for n in names if targets[n].fingerprint != fp]
        if strays:  # a model is stored under the fingerprint of its own recipe, or not at all
            raise errors.PlanFileError(
                f"plan trains {fingerprint.short(fp)} for {strays[0]}, whose recipe is "
                f"{fingerprint.short(targets[strays[0]].fingerprint)}"
            )
        jobs.append(
            base.TrainingJob(
                fingerprint=fp,
                trainer=ep.trainer,
                inputs=ep.inputs,
                parameters=model.frozen_map(
                    dict(ep.parameters) | {k: s.reveal() for k, s in ep.secret_parameters.items()}
                ),
                recipe=target.recipe,
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
    Returns the records by fingerprint, and the failures' reasons."""
    failed: dict[str, str] = {}
    if not jobs:
        return {}, failed
    trained = dict(provider.models([job.fingerprint for job in jobs]))
    for fp in trained:
        progress(f"model {fingerprint.short(fp)} is already trained; reusing it")
    jobs = [job for job in jobs if job.fingerprint not in trained]

    def run(numbered: tuple[int, base.TrainingJob]) -> None:
        number, job = numbered
        fp = fingerprint.short(job.fingerprint)
        progress(f"training model {fp} for {', '.join(job.endpoints)} ({number}/{len(jobs)})")
        began = time.monotonic()
        try:
            record = provider.train(job)
        except errors.ReconcilerError as e:
            failed[job.fingerprint] = str(e)
            progress(f"training model {fp} failed: {e}")
            return
        trained[job.fingerprint] = record
        shown = ", ".join(f"{k} {v:.4g}" for k, v in record.metrics.items())
        progress(f"trained model {fp} in {time.monotonic() - began:.1f}s: {shown}")

    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        try:
            list(pool.map(run, enumerate(jobs, 1)))
        except BaseException:
            provider.cancel()  # interrupted: stop the jobs so the pool can shut down
            raise
    return trained, failed


@dataclass
class _Context:
    """What acting on one change needs; ``act`` runs in worker threads."""

    the_plan: plan.Plan
    targets: Mapping[str, model.Target]
    provider: base.Provider
    trained: Mapping[str, model.ModelRecord]
    failed: Mapping[str, str]
    actor: str
    progress: Progress

    def act(self, change: plan.Change) -> Result:
        action = change.action
        if action is plan.Action.NOOP:
            return Result(change.endpoint, action, Status.UNCHANGED, change.reason)
        if action is plan.Action.BLOCKED:
            return Result(change.endpoint, action, Status.BLOCKED, change.reason)
        if change.train and change.train in self.failed:
            return Result(
                change.endpoint,
                action,
                Status.FAILED,
                f"training failed: {self.failed[change.train]}",
            )
        try:
            return self._promote(change, self._model(change))
        except errors.ReconcilerError as e:
            self.progress(f"{change.endpoint}: failed: {e}")
            return Result(change.endpoint, action, Status.FAILED, str(e))

    def _model(self, change: plan.Change) -> _Model:
        if change.train:
            record = self.trained[change.train]
            return _Model(record.uri, record.metrics, fresh=True)
        after = change.after or {}
        return _Model(str(after["model_uri"]), change.challenger or {}, fresh=False)

    def _promote(self, change: plan.Change, chosen: _Model) -> Result:
        target = self.targets[change.endpoint]
        ep = target.endpoint
        fp = target.fingerprint
        verdict = change.verdict
        if chosen.fresh:
            verdict = gate.evaluate(ep.gate, chosen.metrics, change.champion)
            if not verdict.passed:
                self.progress(f"{ep.name}: gate blocked: {verdict.reason}")
                return Result(
                    ep.name,
                    change.action,
                    Status.GATE_BLOCKED,
                    f"gate: {verdict.reason}; still serving "
                    f"{fingerprint.short((change.before or {}).get('fingerprint'))}",
                    fp,
                    chosen.metrics,
                )
        tags = {
            model.TAG_MANAGED_BY: model.MANAGED_BY,
            model.TAG_ENDPOINT: ep.name,
            model.TAG_FINGERPRINT: fp,
            model.TAG_VERSION: ep.version,
        }
        if chosen.uri != self.provider.model_uri(fp):
            raise errors.ProviderError(
                f"model {chosen.uri[:200]} is not where model {fingerprint.short(fp)} is "
                f"stored ({self.provider.model_uri(fp)}); not pointing at it",
                where=ep.web_service,
            )
        if change.action is plan.Action.CREATE:
            self.provider.create(ep, chosen.uri, tags)
        else:
            self.provider.update(ep, chosen.uri, tags)
        self._verify(ep, chosen.uri, fp)
        try:
            self._record(change, ep, chosen, fp)
        except errors.ReconcilerError as e:
            return Result(
                ep.name,
                change.action,
                Status.FAILED,
                f"now serving model {fingerprint.short(fp)}, but the change could "
                f"not be recorded in the history: {e}",
                fp,
                chosen.metrics,
            )
        self.progress(f"{ep.name}: {change.action} done, serving {fingerprint.short(fp)}")
        judged = f"; gate: {verdict.reason}" if verdict is not None and ep.gate else ""
        return Result(
            ep.name,
            change.action,
            Status.APPLIED,
            f"serving model {fingerprint.short(fp)} (version {ep.version}){judged}",
            fp,
            chosen.metrics,
        )

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

    def _record(self, change: plan.Change, ep: model.Endpoint, chosen: _Model, fp: str) -> None:
        before = change.before or {}
        self.provider.record(
            base.HistoryEntry(
                time=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                endpoint=ep.name,
                web_service=ep.web_service,
                action=str(change.action),
                fingerprint=fp,
                version=ep.version,
                model_uri=chosen.uri,
                previous_uri=before.get("model_uri"),
                previous_fingerprint=before.get("fingerprint"),
                metrics=model.frozen_map(chosen.metrics),
                actor=self.actor,
                manifest_digest=self.the_plan.manifest_digest,
            )
        )
