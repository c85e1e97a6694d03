"""The stage order: load → fingerprint → observe → plan → (confirm) → apply.

``plan`` and ``apply`` share this one path; apply takes the backend's lock
before it observes, so what it applies is exactly what it planned against.
The engine knows no terminal and no particular backend.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler import (
    apply,
    diff,
    errors,
    fingerprint,
    manifest,
    model,
    plan,
    providers,
    redact,
    render,
    settings,
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
        options = self.manifest.backend.options.get(self.manifest.backend.kind) or {}
        return self.settings.workers(options.get("parallelism"))

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
    loaded = manifest.load(config.manifest, env=env)
    scrub = redact.Redactor(manifest.secret_values(loaded))
    if provider is None:
        provider = providers.create(
            loaded.backend,
            manifest_dir=Path(loaded.path).resolve().parent,
            state_dir=config.state_dir,
            env=env,
            scrub=scrub,
            log=lambda line: log(scrub(line)),
            workers=config.parallelism or None,
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
    """Apply a saved plan exactly, after proving the world has not moved since it was made."""
    with session.provider.lock(
        session.settings.actor or "retrain", session.settings.lock_timeout, progress
    ):
        stale = staleness(session, saved)
        if stale:
            raise errors.StalePlanError(
                f"plan is stale, make a new one: {'; '.join(stale)}",
                where=saved.manifest or None,
            )
        return execute(session, saved, progress)


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


def staleness(session: Session, saved: plan.Plan) -> list[str]:
    """Why ``saved`` no longer describes the world, one reason per endpoint (empty: fresh)."""
    if saved.backend != session.manifest.backend.kind:
        return [
            f"it is for the {saved.backend!r} backend, the manifest uses "
            f"{session.manifest.backend.kind!r}"
        ]
    if saved.manifest_digest != session.manifest.digest:
        return [
            f"the manifest changed since the plan was made (plan "
            f"{saved.manifest_digest[:12]}, now {session.manifest.digest[:12]})"
        ]
    targets = {t.name: t for t in session.targets()}
    services = session.provider.observe(session.endpoints)
    reasons = []
    for change in saved.changes:
        target = targets.get(change.endpoint)
        if target is None:
            reasons.append(f"{change.endpoint}: not in the manifest's selection")
            continue
        svc = services.get(change.endpoint)
        revision = None if svc is None else svc.revision
        if revision != change.revision and _applied(change, svc):
            reasons.append(f"{change.endpoint}: this plan was already applied")
        elif revision != change.revision:
            reasons.append(f"{change.endpoint}: live state changed ({_moved(change, svc)})")
        elif (change.after or {}).get("fingerprint") != target.fingerprint:
            reasons.append(
                f"{change.endpoint}: model inputs changed (fingerprint "
                f"{fingerprint.short(target.fingerprint)}, plan "
                f"{fingerprint.short((change.after or {}).get('fingerprint'))})"
            )
    return reasons


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
        the_plan = make_plan(session)
        if the_plan.is_empty() or not confirm(the_plan):
            return the_plan, None
        return the_plan, execute(session, the_plan, progress)


def status(session: Session) -> tuple[list[render.StatusRow], list[str]]:
    """Rows for ``retrain status``, and the metric names worth showing (the gates')."""
    observed = observe(session)
    the_plan = decide(session, observed)
    services = observed.services
    serving = {s.fingerprint for s in services.values() if s and s.fingerprint}
    missing = sorted(serving - set(observed.models))
    models = {**observed.models, **(session.provider.models(missing) if missing else {})}
    deployed: dict[str, str] = {}
    for entry in session.provider.history():
        deployed[entry.endpoint] = entry.time
    rows = []
    for change, ep in zip(the_plan.changes, session.endpoints, strict=True):
        svc = services.get(ep.name)
        record = models.get(svc.fingerprint) if svc and svc.fingerprint else None
        rows.append(
            render.StatusRow(
                endpoint=ep.name,
                web_service=ep.web_service,
                state=_state(change, svc),
                version=(svc.version if svc else None) or "-",
                fingerprint=(svc.fingerprint if svc else None) or "",
                metrics=record.metrics if record else {},
                deployed=deployed.get(ep.name, "-"),
            )
        )
    metrics = list(dict.fromkeys(ep.gate.metric for ep in session.endpoints if ep.gate))
    return rows, metrics


def _applied(change: plan.Change, svc: model.ServiceState | None) -> bool:
    """The live state is what the change would have made it."""
    return (
        svc is not None
        and change.action in plan.MUTATING
        and change.after is not None
        and plan.essence(svc) == dict(change.after)
    )


def _moved(change: plan.Change, svc: model.ServiceState | None) -> str:
    """What moved in the live state since the plan, in owned-field terms."""
    if svc is None:
        return "the web service was deleted"
    if change.before is None:
        return "the web service was created"
    moved = diff.diff(change.before, plan.essence(svc), plan.SCOPE)
    shown = [f"{path}: {old} -> {new}" for _op, path, old, new in moved]
    return "; ".join(shown) or "ownership tags changed"


def _state(change: plan.Change, svc: model.ServiceState | None) -> str:
    if svc is None:
        return "missing"
    return {
        plan.Action.NOOP: "in sync",
        plan.Action.DRIFT: "drifted",
        plan.Action.BLOCKED: "blocked",
    }.get(change.action, "out of date")
