"""Check a saved plan against the plan derived now from the manifest and the live state. Pure.

A saved plan is re-derived, not trusted. Its checksum only catches a file that was
damaged: anyone who can edit the file can recompute a sha256. So ``apply PLANFILE``
plans again, under the lock, from the manifest and what it observes, and compares:

- **stale**: the world moved since the plan was made (the manifest, a model's inputs,
  an endpoint's live state): make a new plan;
- **mismatch**: the file says something the manifest and the live state do not give
  (a forged or hand-edited plan): a fingerprint to train that is not the endpoint's
  recipe, a model URI that is not the store's location of that fingerprint, another
  action, before, version, gate verdict or metrics. Each is named by endpoint and field.

Only when neither list has anything does apply act, and it acts on the plan derived
now, never on values read from the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from reconciler import diff, fingerprint, plan


@dataclass(frozen=True, slots=True)
class Findings:
    """Why a saved plan cannot be applied: ``stale`` and ``mismatched``, one line each."""

    stale: tuple[str, ...] = ()
    mismatched: tuple[str, ...] = field(default=())

    def __bool__(self) -> bool:
        return bool(self.stale or self.mismatched)


def saved_plan(
    saved: plan.Plan,
    now: plan.Plan,
    *,
    backend: str,
    manifest_digest: str,
    fingerprints: Mapping[str, str],
    model_uri: Callable[[str], str],
) -> Findings:
    """Compare ``saved`` with ``now`` (derived from the manifest ``manifest_digest`` and the
    live state, for endpoints whose model fingerprints are ``fingerprints``)."""
    if saved.backend != backend:
        return Findings(
            stale=(f"it is for the {saved.backend!r} backend, the manifest uses {backend!r}",)
        )
    if saved.manifest_digest != manifest_digest:
        return Findings(
            stale=(
                f"the manifest changed since the plan was made (plan "
                f"{fingerprint.short(saved.manifest_digest)}, "
                f"now {fingerprint.short(manifest_digest)})",
            )
        )
    derived = {c.endpoint: c for c in now.changes}
    stale: list[str] = []
    mismatched: list[str] = []
    seen: set[str] = set()
    for change in saved.changes:
        name = change.endpoint
        if name in seen:
            mismatched.append(f"{name}: appears twice in the plan")
            continue
        seen.add(name)
        current = derived.get(name)
        if current is None or name not in fingerprints:
            stale.append(f"{name}: not in the manifest's selection")
            continue
        why = _stale(change, current, fingerprints[name])
        if why:
            stale.append(f"{name}: {why}")
            continue
        fields = _mismatches(change, current, fingerprints[name], model_uri)
        mismatched.extend(f"{name}: {m}" for m in fields)
    mismatched.extend(
        f"{name}: the plan has no change for this endpoint" for name in derived if name not in seen
    )
    return Findings(tuple(stale), tuple(mismatched))


def _stale(saved: plan.Change, now: plan.Change, fp: str) -> str | None:
    """Why the world moved under ``saved`` (None when it did not)."""
    if saved.revision != now.revision:
        if _applied(saved, now):
            return "this plan was already applied"
        return f"live state changed ({_moved(saved, now)})"
    planned = (saved.after or plan.ABSENT).fingerprint
    if planned != fp:
        return (
            f"model inputs changed (fingerprint {fingerprint.short(fp)}, "
            f"plan {fingerprint.short(planned)})"
        )
    if saved.train is None and now.train is not None and saved.action in plan.MUTATING:
        return f"model {fingerprint.short(fp)} is no longer in the model store"
    return None


def _applied(saved: plan.Change, now: plan.Change) -> bool:
    """The live state is what the change would have made it."""
    return (
        now.before is not None
        and saved.action in plan.MUTATING
        and saved.after is not None
        and now.before == saved.after
    )


def _moved(saved: plan.Change, now: plan.Change) -> str:
    """What moved in the live state since the plan, in owned-field terms."""
    if now.before is None:
        return "the web service was deleted"
    if saved.before is None:
        return "the web service was created"
    moved = diff.diff(saved.before.as_dict(), now.before.as_dict(), plan.SCOPE)
    shown = [f"{path}: {old} -> {new}" for _op, path, old, new in moved]
    return "; ".join(shown) or "ownership tags changed"


def _mismatches(
    saved: plan.Change, now: plan.Change, fp: str, model_uri: Callable[[str], str]
) -> list[str]:
    """Each field of ``saved`` that the manifest and the live state do not give."""
    out = []
    short = fingerprint.short
    if saved.web_service != now.web_service:
        out.append(f"web_service is {saved.web_service!r}, the manifest gives {now.web_service!r}")
    if saved.train not in (None, fp):
        out.append(f"train is {short(saved.train)}, the endpoint's recipe gives {short(fp)}")
    elif saved.train is not None and saved.action not in plan.MUTATING:
        out.append(f"train is set on a {saved.action} change")
    after, derived = saved.after or plan.ABSENT, now.after or plan.ABSENT
    uri = after.model_uri
    if uri is not None and uri != model_uri(fp):
        out.append(f"after.model_uri is {uri[:200]!r}, model {short(fp)} is {model_uri(fp)!r}")
    elif uri is None and saved.train is None and saved.action in plan.MUTATING:
        out.append("after.model_uri is missing, and the change trains nothing")
    if saved.before != now.before:
        out.append("before is not the live state")
    if after.version != derived.version:
        out.append(f"after.version is {after.version!r}, the manifest gives {derived.version!r}")
    trained_since = saved.train is not None and now.train is None
    if now.action not in _allowed(saved, now, trained_since=trained_since):
        out.append(f"action is {saved.action}, the manifest and live state give {now.action}")
    if not trained_since:
        out.extend(_judged(saved, now))
        if saved.steps != now.steps:  # trained since: training's steps are done, rightly gone
            out.append("steps are not what apply would do now")
    return out


def _allowed(saved: plan.Change, now: plan.Change, *, trained_since: bool) -> set[plan.Action]:
    """The actions ``now`` may have for ``saved`` to hold: the same one, or, for a model
    trained since the plan was made, the update (or gate block) that training leads to."""
    allowed = {saved.action}
    if trained_since:
        if saved.action is plan.Action.RETRAIN:
            allowed.add(plan.Action.UPDATE)
        if now.verdict is not None and not now.verdict.passed:
            allowed.add(plan.Action.BLOCKED)
    return allowed


def _judged(saved: plan.Change, now: plan.Change) -> list[str]:
    """The gate's verdict and the metrics it judged, as stored now."""
    out = []
    if _verdict(saved) != _verdict(now):
        out.append(f"gate is {_verdict(saved)}, the stored metrics give {_verdict(now)}")
    if _metrics(saved.challenger) != _metrics(now.challenger):
        out.append("challenger_metrics are not the stored model's")
    if _metrics(saved.champion) != _metrics(now.champion):
        out.append("champion_metrics are not the serving model's")
    return out


def _verdict(change: plan.Change) -> str:
    if change.verdict is None:
        return "not judged"
    return "passed" if change.verdict.passed else "failed"


def _metrics(values: Mapping[str, float] | None) -> dict[str, float] | None:
    return None if values is None else dict(values)
