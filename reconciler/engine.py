"""The stage order: load → fingerprint → observe → plan → (confirm) → apply.

``plan`` and ``apply`` share this one path; apply takes the backend's lock
before it observes, so what it applies is exactly what it planned against.
The engine knows no terminal and no particular backend.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler import (
    apply,
    errors,
    fingerprint,
    ledger,
    manifest,
    model,
    plan,
    providers,
    redact,
    settings,
    status,
    verify,
)
from reconciler.providers import base

Confirm = Callable[[plan.Plan], bool]


@dataclass
class Session:
    """A loaded manifest, its provider and the selected endpoints."""

    settings: settings.Settings
    manifest: model.Manifest
    provider: base.Provider
    endpoints: tuple[model.Endpoint, ...]
    redactor: redact.Redactor = field(default_factory=redact.Redactor)
    _targets: tuple[model.Target, ...] | None = field(default=None, repr=False)

    @property
    def parallelism(self) -> int:
        return providers.parallelism(self.manifest.backend, self.settings.parallelism)

    def targets(self) -> tuple[model.Target, ...]:
        """Each selected endpoint with its model's fingerprint (digests computed once)."""
        if self._targets is None:
            self._targets = desired(self.endpoints, self.provider)
        return self._targets


def open_session(
    config: settings.Settings,
    *,
    env: Mapping[str, str],
    provider: base.Provider | None = None,
    log: Callable[[str], None] = lambda _line: None,
) -> Session:
    """Load and check the manifest, create its provider, select endpoints."""
    loaded = manifest.load(config.manifest, env=env, backends=list(providers.registry().values()))
    scrub = redact.Redactor(manifest.secret_values(loaded))
    if provider is None:
        provider = providers.create(
            loaded.backend,
            manifest_dir=Path(loaded.path).resolve().parent,
            state_dir=config.state_dir,
            env=env,
            scrub=scrub,
            log=lambda line: log(scrub(line)),
            workers=providers.parallelism(loaded.backend, config.parallelism),
        )
    chosen = select(loaded.endpoints, config.targets, config.excludes)
    return Session(config, loaded, provider, chosen, scrub)


def select(
    endpoints: Sequence[model.Endpoint], targets: Sequence[str], excludes: Sequence[str]
) -> tuple[model.Endpoint, ...]:
    """Apply ``--target`` / ``--exclude``; a name that matches no endpoint is an error."""
    names = {ep.name for ep in endpoints}
    unknown = [n for n in [*targets, *excludes] if n not in names]
    if unknown:
        raise errors.ReconcilerError(
            f"no endpoint named {unknown[0]!r} (endpoints: {', '.join(sorted(names))})"
        )
    chosen = tuple(
        ep for ep in endpoints if (not targets or ep.name in targets) and ep.name not in excludes
    )
    if not chosen:
        raise errors.ReconcilerError("--target/--exclude leave no endpoint selected")
    return chosen


def desired(
    endpoints: Sequence[model.Endpoint], provider: base.Provider
) -> tuple[model.Target, ...]:
    """Fingerprint every endpoint's model; each trainer and input is digested once."""
    trainer_digests: dict[str, str] = {}
    input_digests: dict[str, str] = {}
    out = []
    for ep in endpoints:
        if ep.trainer.name not in trainer_digests:
            trainer_digests[ep.trainer.name] = provider.trainer_digest(ep.trainer)
        inputs = {}
        for name, location in ep.inputs.items():
            if location not in input_digests:
                input_digests[location] = provider.input_digest(location)
            inputs[name] = input_digests[location]
        trainer = trainer_digests[ep.trainer.name]
        parameters = dict(ep.parameters) | {
            name: fingerprint.secret_digest(name, secret.reveal())
            for name, secret in ep.secret_parameters.items()
        }
        recipe = {"trainer": trainer, "inputs": inputs, "parameters": parameters}
        fp = fingerprint.combine(
            trainer_digest=trainer, input_digests=inputs, parameters=parameters
        )
        out.append(model.Target(ep, fp, model.frozen_map(recipe)))
    return tuple(out)


def make_plan(session: Session) -> plan.Plan:
    """Observe the selected endpoints (one read each) and decide."""
    return decide(session, observe(session))


def observe(session: Session) -> model.Observed:
    """One read per selected endpoint, plus the stored models the planner will need."""
    services = session.provider.observe(session.endpoints)
    needed = plan.models_needed(session.targets(), services)
    models = session.provider.models(sorted(needed)) if needed else {}
    return model.Observed(model.frozen_map(services), model.frozen_map(models))


def decide(session: Session, observed: model.Observed) -> plan.Plan:
    """The plan for what was observed. Pure."""
    selected = (
        tuple(ep.name for ep in session.endpoints)
        if session.settings.targets or session.settings.excludes
        else ()
    )
    return plan.make_plan(
        session.targets(),
        observed,
        manifest_digest=session.manifest.digest,
        backend=session.manifest.backend.kind,
        selected=selected,
        manifest=Path(session.manifest.path).name,
    )


def plan_with_training(
    session: Session, *, progress: apply.Progress = lambda _line: None
) -> tuple[plan.Plan, Mapping[str, str]]:
    """``plan --train``: train what the plan needs, then plan again with the
    challengers' metrics and gate verdicts known. Models are content-addressed,
    so a later apply finds them and only updates references. Returns the plan
    and the training failures (fingerprint → reason)."""
    first = make_plan(session)
    jobs = apply.training_jobs(first, {t.name: t for t in session.targets()})
    if not jobs:
        return first, {}
    _trained, failed = apply.train_models(jobs, session.provider, session.parallelism, progress)
    replanned = make_plan(session)
    changes = tuple(
        dataclasses.replace(
            c, reason=f"{c.reason}; training failed at plan time: {failed[c.train]}"
        )
        if c.train in failed
        else c
        for c in replanned.changes
    )
    return dataclasses.replace(replanned, changes=changes), failed


def run_saved(
    session: Session,
    saved: plan.Plan,
    *,
    progress: apply.Progress = lambda _line: None,
) -> apply.Report:
    """Apply a saved plan exactly: under the lock, derive the plan again from the manifest
    and the live state, refuse the saved one if the world moved or if it says anything the
    derivation does not, then act on the derived plan (never on values read from the file)."""
    with session.provider.lock(
        session.settings.actor or "retrain", session.settings.lock_timeout, progress
    ):
        observed = _prepare(session, progress)
        now = decide(session, observed)
        findings = verify.saved_plan(
            saved,
            now,
            backend=session.manifest.backend.kind,
            manifest_digest=session.manifest.digest,
            fingerprints={t.name: t.fingerprint for t in session.targets()},
            model_uri=session.provider.model_uri,
        )
        if findings.stale:
            raise errors.StalePlanError(
                f"plan is stale, make a new one: {'; '.join(findings.stale)}",
                where=saved.manifest or None,
            )
        if findings.mismatched:
            raise errors.PlanFileError(
                "plan does not match what the manifest and the live state give (edited?); "
                f"refusing it: {'; '.join(findings.mismatched)}",
                where=saved.manifest or None,
            )
        return execute(session, now, progress)


def _prepare(session: Session, progress: apply.Progress) -> model.Observed:
    """What every apply does first, under the lock: clean up after a dead run, observe, and
    record in the history any change a dead run made but did not record."""
    for leftover in session.provider.recover():
        progress(f"removed {leftover}, left by an interrupted run")
    observed = observe(session)
    settle_history(session, observed.services, progress)
    return observed


def settle_history(
    session: Session,
    services: Mapping[str, model.ServiceState | None],
    progress: apply.Progress,
) -> None:
    """Give every endpoint whose live model the history does not name a ``recovered`` entry."""
    last = ledger.last_entries(session.provider.history())
    gaps = ledger.unrecorded(services, last)
    if not gaps:
        return
    stored = session.provider.models(sorted({svc.fingerprint or "" for _name, svc in gaps}))
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for name, svc in gaps:
        session.provider.record(
            ledger.recovered(
                svc,
                endpoint=name,
                previous=last.get(name),
                stored=stored.get(svc.fingerprint or ""),
                time=now,
                actor=session.settings.actor,
            )
        )
        progress(
            f"{name}: history had no entry for the model it serves "
            f"({fingerprint.short(svc.fingerprint)}, version {svc.version}); recorded it"
        )


def execute(session: Session, the_plan: plan.Plan, progress: apply.Progress) -> apply.Report:
    """Run ``the_plan``; the report also lists endpoints left out by selection as skipped."""
    report = apply.execute(
        the_plan,
        {t.name: t for t in session.targets()},
        session.provider,
        parallelism=session.parallelism,
        actor=session.settings.actor,
        progress=progress,
    )
    return with_skipped(report, session)


def with_skipped(report: apply.Report, session: Session) -> apply.Report:
    """List the manifest's endpoints left out by --target/--exclude as skipped."""
    chosen = {ep.name for ep in session.endpoints}
    skipped = tuple(
        apply.Result(ep.name, plan.Action.NOOP, apply.Status.SKIPPED, "not selected")
        for ep in session.manifest.endpoints
        if ep.name not in chosen
    )
    return dataclasses.replace(report, results=report.results + skipped)


def run_apply(
    session: Session,
    *,
    confirm: Confirm,
    progress: apply.Progress = lambda _line: None,
) -> tuple[plan.Plan, apply.Report | None]:
    """Lock, plan, ask, execute. The report is None when nothing was confirmed."""
    with session.provider.lock(
        session.settings.actor or "retrain", session.settings.lock_timeout, progress
    ):
        the_plan = decide(session, _prepare(session, progress))
        if the_plan.is_empty() or not confirm(the_plan):
            return the_plan, None
        return the_plan, execute(session, the_plan, progress)


def read_status(session: Session) -> tuple[tuple[status.Row, ...], list[str]]:
    """Rows for ``retrain status``, and the metric names worth showing (the gates'):
    observe, plan, read the serving models the plan did not need and the history, then
    let ``status`` decide each row."""
    observed = observe(session)
    the_plan = decide(session, observed)
    missing = status.models_to_read(observed)
    models = {**observed.models, **(session.provider.models(missing) if missing else {})}
    last = ledger.last_entries(session.provider.history())
    rows = status.rows(the_plan, observed.services, models, last)
    return rows, status.metric_names(session.endpoints)
