"""The stage order: load → fingerprint → observe → plan → (confirm) → train →
plan again → act.

``plan`` and ``apply`` share this one path; apply takes the backend's lock
before it observes, so what it applies is exactly what it planned against.
Training is followed by a second decision over the same observation plus the
new models, so the gate is decided by the planner alone and apply only acts.
The engine knows no terminal and no particular backend.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler import (
    apply,
    errors,
    fingerprint,
    gate,
    gcpause,
    inventory,
    ledger,
    manifest,
    model,
    plan,
    progress,
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
    """A loaded manifest, its provider and the selected endpoints; ``parallelism`` (training
    jobs at once) and ``network_parallelism`` (updates at once; 0: as ``parallelism``) are
    resolved once, when the session opens (``providers.parallelism`` and
    ``providers.network_parallelism``)."""

    settings: settings.Settings
    manifest: model.Manifest
    provider: base.Provider
    endpoints: tuple[model.Endpoint, ...]
    redactor: redact.Redactor = field(default_factory=redact.Redactor)
    parallelism: int = 1
    network_parallelism: int = 0
    _desired: tuple[model.Desired, ...] | None = field(default=None, repr=False)

    def desired(self) -> tuple[model.Desired, ...]:
        """Each selected endpoint with its model's fingerprint (digests computed once)."""
        if self._desired is None:
            self._desired = desired_state(self.endpoints, self.provider)
        return self._desired


def check_manifest(
    config: settings.Settings, *, env: Mapping[str, str]
) -> tuple[model.Manifest, redact.Redactor]:
    """Load and check the manifest alone, as ``validate`` does: no provider is made, so no
    backend's client libraries are imported (a cloud SDK was most of the start-up of a
    ``validate``) and no credential is looked up."""
    loaded = manifest.load(config.manifest, env=env, backends=list(providers.registry().values()))
    providers.parallelism(loaded.backend, config.parallelism)
    return loaded, redact.Redactor(manifest.secret_values(loaded))


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
    parallelism = providers.parallelism(loaded.backend, config.parallelism)
    network = providers.network_parallelism(loaded.backend, config.parallelism)
    if provider is None:
        provider = providers.create(
            loaded.backend,
            manifest_dir=Path(loaded.path).resolve().parent,
            state_dir=config.state_dir,
            env=env,
            scrub=scrub,
            log=lambda line: log(scrub(line)),
            workers=parallelism,
            network_workers=network,
        )
    chosen = select(loaded.endpoints, config.targets, config.excludes)
    return Session(config, loaded, provider, chosen, scrub, parallelism, network)


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


def desired_state(
    endpoints: Sequence[model.Endpoint], provider: base.Provider
) -> tuple[model.Desired, ...]:
    """Fingerprint every endpoint's model; each trainer and input is digested once, and
    each distinct recipe combined once (a fleet of 10,000 endpoints has a few models:
    spelling and hashing each endpoint's recipe again was a tenth of a plan)."""
    trainer_digests: dict[str, str] = {}
    input_digests: dict[str, str] = {}
    spelt = _Spelt()
    recipes: dict[tuple[object, ...], tuple[str, Mapping[str, model.JSON]]] = {}
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
        key = (trainer, spelt(ep.parameters), tuple(inputs.items()))
        found = None if ep.secret_parameters else recipes.get(key)
        if found is None:
            found = _recipe(trainer, inputs, ep)
            if not ep.secret_parameters:  # a secret's digest is never kept beyond its use
                recipes[key] = found
        out.append(model.Desired(ep, *found))
    return tuple(out)


def _recipe(
    trainer: str, inputs: Mapping[str, str], ep: model.Endpoint
) -> tuple[str, Mapping[str, model.JSON]]:
    """The fingerprint of ``ep``'s model and the recipe it is computed from."""
    parameters = dict(ep.parameters) | {
        name: fingerprint.secret_digest(name, secret.reveal())
        for name, secret in ep.secret_parameters.items()
    }
    recipe = {"trainer": trainer, "inputs": dict(inputs), "parameters": parameters}
    fp = fingerprint.combine(trainer_digest=trainer, input_digests=inputs, parameters=parameters)
    return fp, model.frozen_map(recipe)


class _Spelt:
    """Parameter maps in their canonical JSON, each map object spelt once: the endpoints
    that set no parameters of their own share their trainer's map (``manifest``). Each
    map is kept with its spelling, so its ``id`` is never another's while it is here."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[Mapping[str, model.JSON], str]] = {}

    def __call__(self, parameters: Mapping[str, model.JSON]) -> str:
        kept = self._seen.get(id(parameters))
        if kept is None or kept[0] is not parameters:
            kept = self._seen[id(parameters)] = (
                parameters,
                fingerprint.canonical_json(dict(parameters)),
            )
        return kept[1]


def plan_now(session: Session) -> plan.Plan:
    """Observe the selected endpoints (one read each) and decide. The collector is
    paused meanwhile: a plan builds a few values per endpoint and no garbage cycles, and
    at 10,000 endpoints its collections were a third of observing and deciding."""
    with gcpause.paused():
        return decide(session, checked(session, observe(session)))


def checked(session: Session, observed: model.Observed) -> model.Observed:
    """``observed``, once every gate can judge against its endpoint's serving model: a
    gate metric the serving model's stored metrics lack is a manifest error, at the
    metric's line, before anything is trained. Only models the plan reads anyway are
    consulted (none for an endpoint in sync), so this costs no request."""
    found: dict[str, str] = {}
    for ep in session.endpoints:
        svc = observed.services.get(ep.name)
        champion = observed.models.get(svc.fingerprint or "") if svc else None
        why = gate.metric_missing(ep.gate, champion.metrics if champion else None)
        if why and ep.gate is not None:
            at = ep.gate.source or ep.source
            where = f"{at.file}:{at.line}" if at.line else at.file
            found.setdefault(
                f"{where}: {at.pointer or '/'}", f"the serving model of {ep.name!r} {why}"
            )
    if found:
        raise errors.ManifestError([f"{where}: {why}" for where, why in found.items()])
    return observed


def observe(session: Session) -> model.Observed:
    """One read per selected endpoint, plus the stored models the planner will need, plus
    (for the whole manifest only) the provider's list of the services retrain manages, so
    the plan can name orphans: that list costs what ``Provider.managed`` says (one paged
    list call per place the manifest's services live)."""
    services = session.provider.observe(session.endpoints)
    needed = plan.models_needed(session.desired(), services)
    models = session.provider.models(sorted(needed)) if needed else {}
    managed = None if _selective(session) else tuple(session.provider.managed(session.endpoints))
    return model.Observed(model.frozen_map(services), model.frozen_map(models), managed)


def _selective(session: Session) -> bool:
    """Whether ``--target``/``--exclude`` chose part of the manifest."""
    return bool(session.settings.targets or session.settings.excludes)


def decide(session: Session, observed: model.Observed, *, fresh: Collection[str] = ()) -> plan.Plan:
    """The plan for what was observed (``fresh``: models just trained, see
    ``plan.make_plan``). Pure."""
    selected = tuple(ep.name for ep in session.endpoints) if _selective(session) else ()
    return plan.make_plan(
        session.desired(),
        observed,
        manifest_digest=session.manifest.digest,
        backend=session.manifest.backend.kind,
        selected=selected,
        manifest=Path(session.manifest.path).name,
        fresh=fresh,
        steps=base.steps_of(providers.backend(session.manifest.backend.kind)),
    )


def plan_with_training(
    session: Session, *, progress: apply.Progress = lambda _line: None
) -> tuple[plan.Plan, Mapping[str, str]]:
    """``plan --train``: observe, decide, then train what the plan needs and decide
    again, as apply does, so the plan shows the challengers' metrics and gate verdicts.
    Models are content-addressed, so a later apply finds them and only updates
    references. Returns the plan, which names the models trained for it and the
    failed jobs (``Plan.trained``, ``Plan.failed``), and the training failures
    (fingerprint → reason)."""
    observed = observe(session)
    first = decide(session, checked(session, observed))
    the_plan, training = train_and_decide(
        session, observed, first, progress=progress, as_asked=False
    )
    failed = training.failed
    changes = tuple(
        dataclasses.replace(c, reason=f"{c.reason}; training failed at plan time: {failed[fp]}")
        if (fp := c.train) and fp in failed
        else c
        for c in the_plan.changes
    )
    trained = tuple(fp for fp in first.to_train() if fp in training.models)
    return (
        dataclasses.replace(
            the_plan, changes=changes, trained=trained, failed=tuple(failed.items())
        ),
        failed,
    )


def train_and_decide(
    session: Session,
    observed: model.Observed,
    first: plan.Plan,
    *,
    progress: apply.Progress,
    as_asked: bool = True,
) -> tuple[plan.Plan, apply.Training]:
    """Train the models ``first`` needs, then decide again with them known: the same
    observed services (no second read), the observed models and the trained ones.

    ``as_asked``: a change served by a model trained now keeps the action that asked
    for it (apply: the history says it was a retrain). Otherwise the plan is the one
    any later derivation gives, the models being in the store (``plan --train``)."""
    if not first.to_train():
        return first, apply.Training()
    training = apply.train(
        first,
        {d.name: d for d in session.desired()},
        session.provider,
        parallelism=session.parallelism,
        progress=progress,
    )
    known = model.Observed(
        observed.services, model.frozen_map({**observed.models, **training.models})
    )
    fresh = frozenset(training.models) if as_asked else frozenset()
    decided = decide(session, known, fresh=fresh)
    _report_gates(decided, training, progress)
    return decided, training


def _report_gates(the_plan: plan.Plan, training: apply.Training, sink: apply.Progress) -> None:
    """Each endpoint whose new model the gate has judged, for the live display (the plain
    log says it at apply's next step, or the plan shows it)."""
    for c in the_plan.changes:
        fp = (c.after or plan.ABSENT).fingerprint
        if c.verdict is not None and fp in training.models:
            word = "pass" if c.verdict.passed else "FAIL"
            sink(
                progress.Event(
                    progress.Kind.GATING, c.endpoint, detail=f"gate {word}: {c.verdict.reason}"
                )
            )


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
            fingerprints={d.name: d.fingerprint for d in session.desired()},
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
        return act(session, observed, now, progress)


def _prepare(session: Session, progress: apply.Progress) -> model.Observed:
    """What every apply does first, under the lock: clean up after a dead run, observe, and
    record in the history any change a dead run made but did not record."""
    for leftover in session.provider.recover():
        progress(f"removed {leftover}, left by an interrupted run")
    observed = observe(session)
    settle_history(session, observed.services, progress)
    return checked(session, observed)


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


def act(
    session: Session, observed: model.Observed, the_plan: plan.Plan, progress: apply.Progress
) -> apply.Report:
    """Apply's one path: train what ``the_plan`` needs, decide again with the new models
    known (the gate judges them there), act on that plan. The report also lists
    endpoints left out by selection as skipped."""
    decided, training = train_and_decide(session, observed, the_plan, progress=progress)
    report = apply.execute(
        decided,
        {ep.name: ep for ep in session.endpoints},
        session.provider,
        training=training,
        parallelism=session.network_parallelism or session.parallelism,
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
    prune: Prune | None = None,
) -> tuple[plan.Plan, apply.Report | None]:
    """Lock, plan, ask, execute; with ``prune``, then disown (or delete) the plan's
    orphans. The report is None when nothing was confirmed."""
    if prune is not None and prune.delete and not session.provider.deletes:
        raise errors.ReconcilerError(
            f"the {session.provider.name} backend never deletes a web service; "
            "--prune alone removes retrain's ownership"
        )
    with session.provider.lock(
        session.settings.actor or "retrain", session.settings.lock_timeout, progress
    ):
        observed = _prepare(session, progress)
        the_plan = decide(session, observed)
        pending = the_plan.orphans if prune is not None else ()
        if (the_plan.is_empty() and not pending) or not confirm(the_plan):
            return the_plan, None
        report = act(session, observed, the_plan, progress)
        if prune is None:
            return the_plan, report
        pruned = prune_orphans(session, pending, delete=prune.delete, progress=progress)
        return the_plan, dataclasses.replace(report, results=report.results + pruned)


@dataclass(frozen=True, slots=True)
class Prune:
    """``apply --prune``: what to do with the orphans; ``delete``: ``--prune-delete``."""

    delete: bool = False


def prune_orphans(
    session: Session,
    orphans: Sequence[model.Managed],
    *,
    delete: bool,
    progress: apply.Progress,
) -> tuple[apply.Result, ...]:
    """Disown (or delete) each orphan and record it in the history (action ``prune`` or
    ``delete``; ``model_uri`` empty: it serves nothing for retrain any more). A failure
    is that orphan's failed result; the others still go ahead."""
    results = []
    for orphan in orphans:
        try:
            said = session.provider.disown(orphan, delete=delete)
        except errors.ProviderError as e:
            results.append(
                apply.Result(orphan.endpoint, plan.Action.NOOP, apply.Status.FAILED, str(e))
            )
            continue
        action = "delete" if delete else inventory.PRUNED
        session.provider.record(_pruned(session, orphan, action))
        progress(f"{orphan.endpoint}: {said}")
        results.append(
            apply.Result(
                orphan.endpoint,
                plan.Action.NOOP,
                apply.Status.APPLIED,
                f"pruned: {said}",
                orphan.fingerprint,
            )
        )
    return tuple(results)


def _pruned(session: Session, orphan: model.Managed, action: str) -> model.HistoryEntry:
    return model.HistoryEntry(
        time=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        endpoint=orphan.endpoint,
        web_service=orphan.web_service,
        action=action,
        fingerprint=orphan.fingerprint or "",
        version=orphan.version or "",
        model_uri="",
        previous_uri=None,
        previous_fingerprint=orphan.fingerprint,
        actor=session.settings.actor,
        manifest_digest=session.manifest.digest,
    )


def models_inventory(session: Session) -> tuple[inventory.Stored, ...]:
    """``retrain models list``: observe the whole manifest (one read per endpoint, the
    managed list), list the store and read the history, then let ``inventory`` decide."""
    observed = observe(session)
    stored = session.provider.stored()
    return inventory.inventory(stored, session.desired(), observed, session.provider.history())


def collect_garbage(
    session: Session, *, keep: int, remove: bool, progress: apply.Progress
) -> tuple[tuple[inventory.Stored, ...], tuple[apply.Result, ...]]:
    """``retrain models gc``: under the apply lock (nothing trains or points a service at
    a model meanwhile), the models ``inventory.garbage`` gives; removed only with
    ``remove`` (else a dry run: no result). A failed removal is that model's result."""
    with session.provider.lock(
        session.settings.actor or "retrain", session.settings.lock_timeout, progress
    ):
        doomed = inventory.garbage(models_inventory(session), keep)
        if not remove:
            return doomed, ()
        results = []
        for item in doomed:
            fp = item.record.fingerprint
            try:
                said = session.provider.forget(fp)
            except errors.ProviderError as e:
                results.append(
                    apply.Result(
                        fingerprint.short(fp), plan.Action.NOOP, apply.Status.FAILED, str(e)
                    )
                )
                continue
            progress(f"model {fingerprint.short(fp)}: {said}")
            results.append(
                apply.Result(
                    fingerprint.short(fp), plan.Action.NOOP, apply.Status.APPLIED, said, fp
                )
            )
        return doomed, tuple(results)


def starters() -> dict[str, Callable[[], Mapping[str, Path]]]:
    """The registered backends that give ``retrain init`` a starter, in registry order."""
    return {
        name: found
        for name, descriptor in providers.registry().items()
        if (found := base.starter_of(descriptor)) is not None
    }


def write_starter(files: Mapping[str, Path], folder: Path) -> list[str]:
    """Copy a starter's ``files`` (destination → source) into ``folder``; refuses, writing
    nothing, when any destination exists. Returns the destinations written."""
    taken = sorted(dest for dest in files if (folder / dest).exists())
    if taken:
        raise errors.ReconcilerError(
            f"{taken[0]} exists; retrain init never overwrites (remove it or use --dir)",
            where=str(folder / taken[0]),
        )
    for dest, source in files.items():
        target = folder / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as f:  # x: never overwrite, even a file made meanwhile
            f.write(source.read_bytes())
    return list(files)


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
    rows += status.orphan_rows(the_plan.orphans, last)
    return rows, status.metric_names(session.endpoints)
