"""The planner: desired state + observed state → an immutable ``Plan``. Pure.

One ``Change`` per endpoint, each with an action and a human reason. Reasons
are for display; ``apply`` executes actions and never branches on reasons.

Before/after by action (both are ``Essence`` values: model URI, fingerprint, version):

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

A plan made after training (``make_plan(..., fresh=...)``) knows the new models:
a change served by one keeps the action and reason of the plan that asked for
it, and the gate judges the new model here, as it judges every other one.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
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
class Essence:
    """The fields of one endpoint the reconciler owns, as a plan states them: which
    model (its store location and content fingerprint) under which version label.

    Before: what the live service serves (a field None when its tag is missing).
    After: what it will serve; ``model_uri`` is None until the model is trained.
    """

    model_uri: str | None
    fingerprint: str | None
    version: str | None

    @classmethod
    def of(cls, svc: model.ServiceState) -> Essence:
        """What ``svc`` serves, as a plan's ``before`` states it."""
        return cls(svc.model_uri, svc.fingerprint, svc.version)

    def as_dict(self) -> dict[str, model.JSON]:
        """The fields by name (``SCOPE``), as diffs and plan files hold them."""
        return {
            "model_uri": self.model_uri,
            "fingerprint": self.fingerprint,
            "version": self.version,
        }


ABSENT = Essence(None, None, None)  # stands for a missing side: no service, nothing planned


@dataclass(frozen=True, slots=True)
class Change:
    """One endpoint's planned change. ``train`` names the fingerprint to train first
    (None when the model is already in the store); ``revision`` is the live
    state's revision the change was planned against (None when missing).

    ``fresh`` marks a change judged in the plan made after training: its model was
    trained by this run, so a ``BLOCKED`` change with ``fresh`` set is the gate
    turning the new model down. Never set in a plan made before training, so never
    in a saved plan."""

    action: Action
    endpoint: str
    web_service: str
    reason: str
    before: Essence | None
    after: Essence | None
    diff: tuple[diff.FieldChange, ...] = diff.EMPTY
    train: str | None = None
    revision: str | None = None
    verdict: gate.Verdict | None = None
    challenger: Mapping[str, float] | None = None
    champion: Mapping[str, float] | None = None
    fresh: bool = False
    live: tuple[str, ...] = ()
    """What the backend says about the live service beyond the owned fields (which
    deployment serves, the traffic split): for the reader, never decided on."""
    steps: tuple[str, ...] = ()
    """The steps apply will take for a mutating change, as the backend words them
    (train, register, deploy, shift traffic...); empty where it says none."""


Steps = Callable[[model.Endpoint, "model.ServiceState | None", Change], tuple[str, ...]]
"""A backend's pure account of the steps apply will take for one change."""


@dataclass(frozen=True, slots=True)
class Plan:
    """Every endpoint's change, in manifest order, and what the plan was made from."""

    changes: tuple[Change, ...]
    manifest_digest: str = ""
    backend: str = ""
    format_version: str = FORMAT_VERSION
    targets: tuple[str, ...] = field(default=())
    manifest: str = ""
    trained: tuple[str, ...] = ()
    """``plan --train``: the fingerprints trained for this plan (their changes now
    update to a stored model, so ``to_train`` no longer counts them)."""
    failed: tuple[tuple[str, str], ...] = ()
    """``plan --train``: each training job that failed, (fingerprint, reason)."""
    orphans: tuple[model.Managed, ...] = ()
    """Services retrain manages that the manifest no longer lists (``orphans``): shown,
    never acted on unless apply is asked to prune; not changes (``is_empty`` ignores
    them, so ``--detailed-exitcode`` is 0 for a plan with only orphans)."""

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

    def trained_now(self, change: Change) -> bool:
        """Whether ``change`` serves a model trained for this plan (``plan --train``)."""
        return (change.after or ABSENT).fingerprint in self.trained and change.train is None

    def training_failure(self, change: Change) -> str | None:
        """Why training ``change``'s model for this plan failed (None when it did not)."""
        return dict(self.failed).get(change.train or "")

    def gate_failures(self) -> tuple[Change, ...]:
        """The changes whose new model the gate turned down."""
        return tuple(c for c in self.changes if c.verdict is not None and not c.verdict.passed)

    def failing(self) -> bool:
        """A training job or a gate failed: CI must not pass this plan as green."""
        return bool(self.failed or self.gate_failures())


def models_needed(
    desired: Iterable[model.Desired], services: Mapping[str, model.ServiceState | None]
) -> frozenset[str]:
    """The fingerprints whose store records the planner will read.

    Nothing for an endpoint already in sync, so a steady-state plan reads each
    web service once and the model store not at all.
    """
    needed: set[str] = set()
    for wish in desired:
        svc = services.get(wish.name)
        if svc is not None and _in_sync(wish, svc):
            continue
        needed.add(wish.fingerprint)
        if svc is not None and svc.fingerprint:
            needed.add(svc.fingerprint)
    return frozenset(needed)


def make_plan(
    desired: Sequence[model.Desired],
    observed: model.Observed,
    *,
    manifest_digest: str = "",
    backend: str = "",
    selected: tuple[str, ...] = (),
    manifest: str = "",
    fresh: Collection[str] = (),
    steps: Steps | None = None,
) -> Plan:
    """Decide one change per desired endpoint. No I/O.

    ``fresh`` names the models this run has just trained (they are in
    ``observed.models``): a change served by one is decided as the plan that asked
    for the training decided it, then the gate judges the new model. ``steps``, when
    the backend gives it, words what apply will do for each mutating change.
    """
    changes = tuple(
        _described(d, observed, _decide(d, observed, d.fingerprint in fresh), steps)
        for d in desired
    )
    left = orphans(desired, observed.managed) if not selected else ()
    return Plan(
        changes, manifest_digest, backend, targets=selected, manifest=manifest, orphans=left
    )


def orphans(
    desired: Sequence[model.Desired], managed: Sequence[model.Managed] | None
) -> tuple[model.Managed, ...]:
    """The managed services whose ``retrain.endpoint`` tag names no endpoint of the
    manifest, sorted by endpoint: what a removed (or renamed) endpoint left behind. A
    service is matched by its endpoint tag alone (not its name or place), the one tag
    every backend writes the same way. Empty when nothing was listed."""
    names = {d.name for d in desired}
    left = [m for m in managed or () if m.endpoint not in names]
    return tuple(sorted(left, key=lambda m: (m.endpoint, m.web_service, m.where)))


def _described(
    wish: model.Desired, observed: model.Observed, change: Change, steps: Steps | None
) -> Change:
    """``change`` with the live service's detail and, when mutating, the backend's steps."""
    svc = observed.services.get(wish.name)
    live = svc.detail if svc is not None else ()
    worded = steps(wish.endpoint, svc, change) if steps and change.action in MUTATING else ()
    if not live and not worded:
        return change
    return dataclasses.replace(change, live=tuple(live), steps=tuple(worded))


def _in_sync(wish: model.Desired, svc: model.ServiceState) -> bool:
    return (
        svc.managed
        and svc.fingerprint == wish.fingerprint
        and svc.version == wish.endpoint.version
        and svc.model_uri is not None
        and svc.model_uri == svc.expected_uri
    )


def _decide(wish: model.Desired, observed: model.Observed, fresh: bool) -> Change:
    ep = wish.endpoint
    svc = observed.services.get(wish.name)
    wanted = observed.models.get(wish.fingerprint)
    before = None if svc is None else Essence.of(svc)
    champion = observed.models.get(svc.fingerprint) if svc and svc.fingerprint else None
    if champion is not None and champion.fingerprint == wish.fingerprint:
        champion = None  # a model never competes with itself
    action, reason = _action(wish, svc, None if fresh else wanted, champion)
    verdict = None
    if action is Action.NOOP:  # most of a fleet, most of the time: nothing more to judge
        after, changes = before, diff.EMPTY
    else:
        after = Essence(wanted.uri if wanted else None, wish.fingerprint, ep.version)
        if wanted is not None and action in MUTATING:
            verdict = gate.evaluate(ep.gate, wanted.metrics, champion.metrics if champion else None)
            if not verdict.passed:
                action, reason = Action.BLOCKED, f"gate: {verdict.reason}"
        changes = _diff(before, after)
    return Change(
        action=action,
        endpoint=wish.name,
        web_service=ep.web_service,
        reason=reason,
        before=before,
        after=after,
        diff=changes,
        train=wish.fingerprint if action in MUTATING and wanted is None else None,
        revision=None if svc is None else svc.revision,
        verdict=verdict,
        challenger=None if wanted is None else wanted.metrics,
        champion=None if champion is None else champion.metrics,
        fresh=fresh and verdict is not None,
    )


def _diff(before: Essence | None, after: Essence) -> tuple[diff.FieldChange, ...]:
    """The owned fields that change; a model URI not yet known is shown as ``UNKNOWN``."""
    shown = after.as_dict()
    if after.model_uri is None:
        shown["model_uri"] = UNKNOWN
    return diff.diff(None if before is None else before.as_dict(), shown, SCOPE)


def _action(
    wish: model.Desired,
    svc: model.ServiceState | None,
    wanted: model.ModelRecord | None,
    champion: model.ModelRecord | None,
) -> tuple[Action, str]:
    ep = wish.endpoint
    fp = fingerprint.short(wish.fingerprint)
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
    if _in_sync(wish, svc):
        return Action.NOOP, f"serving model {fp} (version {ep.version})"
    if not svc.managed:
        return _first(wanted, fp)
    if svc.fingerprint == wish.fingerprint and wanted is None:
        return Action.RETRAIN, f"model {fp} is no longer in the model store: train it again"
    if svc.fingerprint == wish.fingerprint:
        return Action.UPDATE, f"version label {svc.version} -> {ep.version} (same model {fp})"
    if wanted is not None:
        why = _why(wish, champion)
        prefix = "" if why == "new model" else f"{why}; "
        return Action.UPDATE, (
            f"{prefix}model {fp} is already trained: switch from "
            f"{fingerprint.short(svc.fingerprint)} without training"
        )
    return Action.RETRAIN, f"{_why(wish, champion)}: train model {fp}"


def _first(wanted: model.ModelRecord | None, fp: str) -> tuple[Action, str]:
    if wanted is not None:
        return Action.UPDATE, f"not yet managed by retrain; adopt and serve model {fp}"
    return Action.RETRAIN, f"not yet managed by retrain; train and serve model {fp}"


def _why(wish: model.Desired, champion: model.ModelRecord | None) -> str:
    """Which ingredients differ from the serving model's, when its recipe is known."""
    if champion is None or "recipe" not in champion.lineage:
        return "new model"
    old: Mapping[str, model.JSON] = champion.lineage["recipe"]
    new = wish.recipe
    parts = []
    if old.get("trainer") != new.get("trainer"):
        parts.append("trainer code changed")
    for kind in ("inputs", "parameters"):
        a, b = old.get(kind) or {}, new.get(kind) or {}
        changed = [
            _ingredient(k, a, b, values=kind == "parameters")
            for k in sorted(set(a) | set(b))
            if k not in a or k not in b or a[k] != b[k]
        ]
        if changed:
            parts.append(f"{kind} changed: {', '.join(changed)}")
    return "; ".join(parts) or "new model"


SHOWN_VALUE = 40  # characters of a parameter value in a reason; the manifest has it all
SECRET = "sensitive:"  # how a secret parameter's digest starts (fingerprint.secret_digest)


def _ingredient(
    name: str, old: Mapping[str, model.JSON], new: Mapping[str, model.JSON], *, values: bool
) -> str:
    """One changed ingredient as a reader wants it: ``n: 100 → 120`` for a parameter,
    a key only on one side as removed or added (a rename is both, never two bare
    names). Inputs and secret parameters are named only: their values are digests."""
    if name not in new:
        return f"{name} removed{_was(old[name]) if values else ''}"
    if name not in old:
        return f"{name} added{_value(new[name], ': ') if values else ''}"
    if not values:
        return name
    if _secret(old[name]) or _secret(new[name]):
        return f"{name} (secret)"
    return f"{name}: {_value(old[name])} → {_value(new[name])}"


def _secret(value: model.JSON) -> bool:
    return isinstance(value, str) and value.startswith(SECRET)


def _value(value: model.JSON, prefix: str = "") -> str:
    """A parameter value as the manifest would write it (JSON), cut to ``SHOWN_VALUE``;
    a secret's digest is never shown."""
    if _secret(value):
        return " (secret)"
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return prefix + (text if len(text) <= SHOWN_VALUE else text[: SHOWN_VALUE - 1] + "…")


def _was(value: model.JSON) -> str:
    shown = _value(value)
    return shown if _secret(value) else f" (was {shown})"
