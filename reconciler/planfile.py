"""The versioned JSON form of a plan: the source of truth that renderings derive from.

Shaped after Terraform's JSON plan: ``format_version``, the manifest digest
the plan was made from, and per endpoint its ``address``, ``action``,
``reason``, ``before``/``after``, the live-state ``revision`` it was planned
against, and ``after_unknown`` for values known only after training.
"""

from __future__ import annotations

from typing import Any

from reconciler import fingerprint, plan


def to_dict(the_plan: plan.Plan) -> dict[str, Any]:
    """The plan as JSON-ready data (secrets never reach a plan: it holds no secret fields)."""
    changes = [_change(c) for c in the_plan.changes]
    return {
        "format_version": the_plan.format_version,
        "backend": the_plan.backend,
        "manifest_digest": the_plan.manifest_digest,
        "targets": list(the_plan.targets),
        "summary": summary(the_plan),
        "training_jobs": list(the_plan.to_train()),
        "changes": changes,
    }


def summary(the_plan: plan.Plan) -> dict[str, int]:
    """How many endpoints per action, every action listed."""
    counts = {str(a): 0 for a in plan.Action}
    for change in the_plan.changes:
        counts[str(change.action)] += 1
    return counts


def _change(change: plan.Change) -> dict[str, Any]:
    after = dict(change.after) if change.after is not None else None
    unknown = [k for k, v in (after or {}).items() if v is None and change.train]
    verdict = change.verdict
    return {
        "address": change.endpoint,
        "web_service": change.web_service,
        "action": str(change.action),
        "reason": change.reason,
        "before": dict(change.before) if change.before is not None else None,
        "after": after,
        "after_unknown": unknown,
        "diff": [list(d) for d in change.diff],
        "train": change.train,
        "train_short": fingerprint.short(change.train) if change.train else None,
        "prior_revision": change.revision,
        "gate": None
        if verdict is None
        else {
            "passed": verdict.passed,
            "reason": verdict.reason,
            "metric": verdict.metric,
            "challenger": verdict.challenger,
            "champion": verdict.champion,
        },
        "challenger_metrics": None if change.challenger is None else dict(change.challenger),
        "champion_metrics": None if change.champion is None else dict(change.champion),
    }
