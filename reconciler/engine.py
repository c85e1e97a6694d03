"""The stage order: load → fingerprint → observe → plan → (confirm) → apply.

``plan`` and ``apply`` share this one path; apply takes the backend's lock
before it observes, so what it applies is exactly what it planned against.
The engine knows no terminal and no particular backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler import (
    apply,
    errors,
    fingerprint,
    manifest,
    model,
    plan,
    providers,
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
    _targets: tuple[model.Target, ...] | None = field(default=None, repr=False)

    @property
    def parallelism(self) -> int:
        local = self.manifest.backend.options.get("local") or {}
        return self.settings.workers(local.get("parallelism"))

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
) -> Session:
    """Load and check the manifest, create its provider, select endpoints."""
    loaded = manifest.load(config.manifest, env=env)
    if provider is None:
        provider = providers.create(
            loaded.backend,
            manifest_dir=Path(loaded.path).resolve().parent,
            state_dir=config.state_dir,
            env=env,
        )
    chosen = select(loaded.endpoints, config.targets, config.excludes)
    return Session(config, loaded, provider, chosen)


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
    return tuple(
        ep for ep in endpoints if (not targets or ep.name in targets) and ep.name not in excludes
    )


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
        recipe = {"trainer": trainer, "inputs": inputs, "parameters": dict(ep.parameters)}
        fp = fingerprint.combine(
            trainer_digest=trainer, input_digests=inputs, parameters=ep.parameters
        )
        out.append(model.Target(ep, fp, model.frozen_map(recipe)))
    return tuple(out)


def make_plan(session: Session) -> plan.Plan:
    """Observe the selected endpoints (one read each) and decide."""
    targets = session.targets()
    services = session.provider.observe(session.endpoints)
    needed = plan.models_needed(targets, services)
    models = session.provider.models(sorted(needed)) if needed else {}
    observed = model.Observed(model.frozen_map(services), model.frozen_map(models))
    selected = (
        tuple(ep.name for ep in session.endpoints)
        if session.settings.targets or session.settings.excludes
        else ()
    )
    return plan.make_plan(
        targets,
        observed,
        manifest_digest=session.manifest.digest,
        backend=session.manifest.backend.kind,
        selected=selected,
    )


def run_apply(
    session: Session,
    *,
    confirm: Confirm,
    progress: apply.Progress = lambda _line: None,
) -> tuple[plan.Plan, apply.Report | None]:
    """Lock, plan, ask, execute. The report is None when nothing was confirmed."""
    with session.provider.lock(session.settings.actor or "retrain", session.settings.lock_timeout):
        the_plan = make_plan(session)
        if the_plan.is_empty() or not confirm(the_plan):
            return the_plan, None
        targets = {t.name: t for t in session.targets()}
        report = apply.execute(
            the_plan,
            targets,
            session.provider,
            parallelism=session.parallelism,
            actor=session.settings.actor,
            progress=progress,
        )
        return the_plan, report


def status(session: Session) -> tuple[list[render.StatusRow], list[str]]:
    """Rows for ``retrain status``, and the metric names worth showing (the gates')."""
    the_plan = make_plan(session)
    services = session.provider.observe(session.endpoints)
    serving = {s.fingerprint for s in services.values() if s and s.fingerprint}
    models = session.provider.models(sorted(serving))
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


def _state(change: plan.Change, svc: model.ServiceState | None) -> str:
    if svc is None:
        return "missing"
    return {
        plan.Action.NOOP: "in sync",
        plan.Action.DRIFT: "drifted",
        plan.Action.BLOCKED: "blocked",
    }.get(change.action, "out of date")
