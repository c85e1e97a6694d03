"""What the webhook is told: drift, failure, gate block, promotion. Pure.

A drift or a gate block stays true from one reconcile to the next (a report-only
controller sees it every interval), so each is told once, until it clears; a failure
is told at the start of a failing streak (the loop knows the streak, see ``loop``);
a promotion is news each time.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler import apply, fingerprint, plan


class Kind(enum.StrEnum):
    DRIFT = "drift"
    FAILURE = "failure"
    GATE_BLOCKED = "gate-blocked"
    PROMOTION = "promotion"


ICONS = {Kind.DRIFT: "🟠", Kind.FAILURE: "❌", Kind.GATE_BLOCKED: "🔴", Kind.PROMOTION: "✅"}


@dataclass(frozen=True, slots=True)
class Notice:
    kind: Kind
    endpoint: str
    text: str
    key: str = ""
    """What makes it the same notice again (empty: always news)."""

    def message(self) -> str:
        """The Slack-compatible body's ``text``."""
        return f"{ICONS[self.kind]} retrain {self.kind}: {self.endpoint}: {self.text}"


def from_plan(the_plan: plan.Plan) -> tuple[Notice, ...]:
    """Drift, and a gate that turned down a model already trained (plan time)."""
    out = []
    for c in the_plan.changes:
        if c.action is plan.Action.DRIFT:
            live = (c.before or plan.ABSENT).model_uri or "no model"
            out.append(Notice(Kind.DRIFT, c.endpoint, c.reason, f"drift:{c.endpoint}:{live}"))
        elif c.action is plan.Action.BLOCKED and c.verdict is not None and not c.verdict.passed:
            fp = (c.after or plan.ABSENT).fingerprint or ""
            out.append(
                Notice(Kind.GATE_BLOCKED, c.endpoint, c.verdict.reason, f"gate:{c.endpoint}:{fp}")
            )
    return tuple(out)


def from_report(report: apply.Report) -> tuple[Notice, ...]:
    """Promotions, failed endpoints and gates that turned a new model down, from apply."""
    out = []
    for r in report.results:
        if r.status is apply.Status.APPLIED and r.action in plan.MUTATING:
            what = f"now serves model {fingerprint.short(r.fingerprint)} ({r.action}): {r.message}"
            out.append(Notice(Kind.PROMOTION, r.endpoint, what))
        elif r.status is apply.Status.FAILED:
            out.append(Notice(Kind.FAILURE, r.endpoint, r.message))
        elif r.status is apply.Status.GATE_BLOCKED:
            key = f"gate:{r.endpoint}:{r.fingerprint or ''}"
            out.append(Notice(Kind.GATE_BLOCKED, r.endpoint, r.message, key))
    return tuple(out)


def unsent(
    found: Iterable[Notice], sent: frozenset[str], covered: Iterable[str]
) -> tuple[tuple[Notice, ...], frozenset[str]]:
    """The notices not told yet, and the keys told after this reconcile: those of the
    endpoints it ``covered`` are what it found now (a drift that cleared can be told
    again), the others' are kept."""
    found = tuple(found)
    seen = set(covered)
    kept = {k for k in sent if k.split(":", 2)[1] not in seen}
    fresh = tuple(n for n in found if not n.key or n.key not in sent)
    keys = kept | {n.key for n in found if n.key}
    unique = tuple({(n.kind, n.endpoint, n.key or n.text): n for n in fresh}.values())
    return unique, frozenset(keys)
