"""The planner: desired state + observed state → an immutable ``Plan``. Pure.

One ``Change`` per endpoint, each with an action and a human reason. Reasons
are for display; ``apply`` executes actions and never branches on reasons.

Before/after by action (both are essences ``{model_uri, fingerprint, version}``):

=========  =====================  ==========================================
action     before                 after
=========  =====================  ==========================================
NOOP       live essence           same as before
CREATE     None (no service)      desired; ``model_uri`` None until trained
RETRAIN    live essence           desired; ``model_uri`` None until trained
UPDATE     live essence           desired, model already in the store
DRIFT      live (changed by hand) desired; repairs the out-of-band edit
BLOCKED    live essence or None   desired; nothing will be done (see reason)
=========  =====================  ==========================================
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from reconciler import diff, fingerprint, gate, model

FORMAT_VERSION = "1"
SCOPE = ("model_uri", "fingerprint", "version")  # the owned fields, as essences name them
UNKNOWN = "(known after training)"


class Action(enum.StrEnum):
    """What apply will do to one endpoint; ``symbol`` is its mark in renderings."""

    NOOP = "no-op"
    CREATE = "create"
    RETRAIN = "retrain"
    UPDATE = "update"
    DRIFT = "repair-drift"
    BLOCKED = "blocked"

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]


_SYMBOLS = {
    Action.NOOP: " ",
    Action.CREATE: "+",
    Action.RETRAIN: "~",
    Action.UPDATE: "~",
    Action.DRIFT: "!",
    Action.BLOCKED: "x",
}
MUTATING = frozenset({Action.CREATE, Action.RETRAIN, Action.UPDATE, Action.DRIFT})


@dataclass(frozen=True, slots=True)
class Change:
    """One endpoint's planned change. ``train`` names the fingerprint to train first
    (None when the model is already in the store); ``revision`` is the live
    state's revision the change was planned against (None when missing)."""

    action: Action
    endpoint: str
    web_service: str
    reason: str
    before: Mapping[str, model.JSON] | None
    after: Mapping[str, model.JSON] | None
    diff: tuple[diff.FieldChange, ...] = diff.EMPTY
    train: str | None = None
    revision: str | None = None
    verdict: gate.Verdict | None = None
    challenger: Mapping[str, float] | None = None
    champion: Mapping[str, float] | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """Every endpoint's change, in manifest order, and what the plan was made from."""

    changes: tuple[Change, ...]
    manifest_digest: str = ""
    backend: str = ""
    format_version: str = FORMAT_VERSION
    targets: tuple[str, ...] = field(default=())
    manifest: str = ""

    def is_empty(self) -> bool:
        return not any(c.action is not Action.NOOP for c in self.changes)

    def mutating(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action in MUTATING)

    def counts(self) -> dict[Action, int]:
        """How many endpoints per action, every action listed."""
        counts = dict.fromkeys(Action, 0)
        for change in self.changes:
            counts[change.action] += 1
        return counts

    def mutating_or_blocked(self) -> tuple[Change, ...]:
        """Everything a reviewer must look at: changes, and what cannot change."""
        return tuple(c for c in self.changes if c.action is not Action.NOOP)

    def to_train(self) -> tuple[str, ...]:
        """Distinct fingerprints to train, first-needed first: one job each."""
        return tuple(dict.fromkeys(c.train for c in self.mutating() if c.train))


def models_needed(
    targets: Iterable[model.Target], services: Mapping[str, model.ServiceState | None]
) -> frozenset[str]:
    """The fingerprints whose store records the planner will read.

    Nothing for an endpoint already in sync, so a steady-state plan reads each
    web service once and the model store not at all.
    """
    needed: set[str] = set()
    for target in targets:
        svc = services.get(target.name)
        if svc is not None and _in_sync(target, svc):
            continue
        needed.add(target.fingerprint)
        if svc is not None and svc.fingerprint:
            needed.add(svc.fingerprint)
    return frozenset(needed)


def make_plan(
    targets: Sequence[model.Target],
    observed: model.Observed,
    *,
    manifest_digest: str = "",
    backend: str = "",
    selected: tuple[str, ...] = (),
    manifest: str = "",
) -> Plan:
    """Decide one change per target. No I/O."""
    changes = tuple(_decide(t, observed) for t in targets)
    return Plan(changes, manifest_digest, backend, targets=selected, manifest=manifest)


def _in_sync(target: model.Target, svc: model.ServiceState) -> bool:
    return (
        svc.managed
        and svc.fingerprint == target.fingerprint
        and svc.version == target.endpoint.version
        and svc.model_uri is not None
        and svc.model_uri == svc.expected_uri
    )


def essence(svc: model.ServiceState) -> dict[str, model.JSON]:
    return {"model_uri": svc.model_uri, "fingerprint": svc.fingerprint, "version": svc.version}


def _decide(target: model.Target, observed: model.Observed) -> Change:
    ep = target.endpoint
    svc = observed.services.get(target.name)
    wanted = observed.models.get(target.fingerprint)
    after = {
        "model_uri": wanted.uri if wanted else None,
        "fingerprint": target.fingerprint,
        "version": ep.version,
    }
    before = None if svc is None else essence(svc)
    champion = observed.models.get(svc.fingerprint) if svc and svc.fingerprint else None
    if champion is not None and champion.fingerprint == target.fingerprint:
        champion = None  # a model never competes with itself
    action, reason = _action(target, svc, wanted, champion)
    verdict = None
    if wanted is not None and action in MUTATING:
        verdict = gate.evaluate(ep.gate, wanted.metrics, champion.metrics if champion else None)
        if not verdict.passed:
            action, reason = Action.BLOCKED, f"gate: {verdict.reason}"
    return Change(
        action=action,
        endpoint=target.name,
        web_service=ep.web_service,
        reason=reason,
        before=before,
        after=before if action is Action.NOOP else after,
        diff=diff.EMPTY if action is Action.NOOP else diff.diff(before, _shown(after), SCOPE),
        train=target.fingerprint if action in MUTATING and wanted is None else None,
        revision=None if svc is None else svc.revision,
        verdict=verdict,
        challenger=None if wanted is None else wanted.metrics,
        champion=None if champion is None else champion.metrics,
    )


def _shown(after: Mapping[str, model.JSON]) -> dict[str, model.JSON]:
    """``after`` as diffs show it: a model URI not yet known is marked so."""
    return {k: UNKNOWN if k == "model_uri" and v is None else v for k, v in after.items()}


def _action(
    target: model.Target,
    svc: model.ServiceState | None,
    wanted: model.ModelRecord | None,
    champion: model.ModelRecord | None,
) -> tuple[Action, str]:
    ep = target.endpoint
    fp = fingerprint.short(target.fingerprint)
    if svc is None:
        if not ep.creatable:
            return Action.BLOCKED, (
                f"web service {ep.web_service!r} does not exist and the "
                "endpoint has no definition to create it from"
            )
        trained = "already trained" if wanted else "to be trained"
        return (
            Action.CREATE,
            f"web service {ep.web_service!r} does not exist; create it "
            f"serving model {fp} ({trained})",
        )
    if svc.model_uri is None:
        return Action.BLOCKED, (
            f"web service {ep.web_service!r} has no asset named "
            f"{ep.asset!r} (assets: {', '.join(svc.assets) or 'none'})"
        )
    if svc.managed and svc.expected_uri is not None and svc.model_uri != svc.expected_uri:
        return Action.DRIFT, (
            f"model reference changed outside retrain: serves "
            f"{svc.model_uri}, expected {svc.expected_uri}"
        )
    if _in_sync(target, svc):
        return Action.NOOP, f"serving model {fp} (version {ep.version})"
    if not svc.managed:
        return _first(wanted, fp)
    if svc.fingerprint == target.fingerprint and wanted is None:
        return Action.RETRAIN, f"model {fp} is no longer in the model store: train it again"
    if svc.fingerprint == target.fingerprint:
        return Action.UPDATE, f"version label {svc.version} -> {ep.version} (same model {fp})"
    if wanted is not None:
        why = _why(target, champion)
        prefix = "" if why == "new model" else f"{why}; "
        return Action.UPDATE, (
            f"{prefix}model {fp} is already trained: switch from "
            f"{fingerprint.short(svc.fingerprint)} without training"
        )
    return Action.RETRAIN, f"{_why(target, champion)}: train model {fp}"


def _first(wanted: model.ModelRecord | None, fp: str) -> tuple[Action, str]:
    if wanted is not None:
        return Action.UPDATE, f"not yet managed by retrain; adopt and serve model {fp}"
    return Action.RETRAIN, f"not yet managed by retrain; train and serve model {fp}"


def _why(target: model.Target, champion: model.ModelRecord | None) -> str:
    """Which ingredients differ from the serving model's, when its recipe is known."""
    if champion is None or "recipe" not in champion.lineage:
        return "new model"
    old: Mapping[str, model.JSON] = champion.lineage["recipe"]
    new = target.recipe
    parts = []
    if old.get("trainer") != new.get("trainer"):
        parts.append("trainer code changed")
    for kind in ("inputs", "parameters"):
        a, b = old.get(kind) or {}, new.get(kind) or {}
        changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if changed:
            parts.append(f"{kind} changed: {', '.join(changed)}")
    return "; ".join(parts) or "new model"
