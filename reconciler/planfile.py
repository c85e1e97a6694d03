"""The versioned JSON form of a plan: the source of truth that renderings derive from.

Shaped after Terraform's JSON plan: ``format_version``, the manifest digest
the plan was made from, and per endpoint its ``address``, ``action``,
``reason``, ``before``/``after``, the live-state revision it was planned
against (``prior_revision``), and ``after_unknown`` for values known only
after training. A ``checksum`` over the rest makes a hand-edited or corrupted
file fail loudly instead of applying something nobody reviewed. The format is
specified by ``schemas/plan.schema.json``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jsonschema


from reconciler import errors, fingerprint, gate, model, plan

SCHEMA_PATH = Path(__file__).parent / "schemas" / "plan.schema.json"
MAX_PLAN_BYTES = 64 << 20  # 64 MiB: far above any real fleet's plan; refuses garbage early


def to_dict(the_plan: plan.Plan, *, scrub: Callable[[str], str] = str) -> dict[str, Any]:
    """The plan as JSON-ready data, with its checksum. ``scrub`` masks secret values
    *before* the checksum is taken, so a redacted plan is still a valid plan."""
    body: dict[str, Any] = {
        "format_version": the_plan.format_version,
        "backend": the_plan.backend,
        "manifest": the_plan.manifest,
        "manifest_digest": the_plan.manifest_digest,
        "targets": list(the_plan.targets),
        "summary": summary(the_plan),
        "training_jobs": list(the_plan.to_train()),
        **_training_done(the_plan),
        "changes": [_change(c) for c in the_plan.changes],
    }
    if the_plan.orphans:  # only when there are some: a plan without is as format "1" was
        body["orphans"] = [_orphan(m) for m in the_plan.orphans]
    body = _scrubbed(body, scrub)
    return body | {"checksum": _checksum(body)}


def _training_done(the_plan: plan.Plan) -> dict[str, Any]:
    """What ``plan --train`` did, as optional keys (absent otherwise, so a plan made
    without training is byte-identical to format "1" before them)."""
    done: dict[str, Any] = {}
    if the_plan.trained:
        done["trained_for_plan"] = list(the_plan.trained)
    if the_plan.failed:
        done["training_failed"] = [{"fingerprint": fp, "reason": r} for fp, r in the_plan.failed]
    return done


def dumps(the_plan: plan.Plan, *, scrub: Callable[[str], str] = str) -> str:
    return json.dumps(to_dict(the_plan, scrub=scrub), indent=2) + "\n"


def _scrubbed(value: Any, scrub: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrubbed(v, scrub) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v, scrub) for v in value]
    return value


def summary(the_plan: plan.Plan) -> dict[str, int]:
    """How many endpoints per action, every action listed."""
    return {str(action): n for action, n in the_plan.counts().items()}


def training_jobs(the_plan: plan.Plan) -> str:
    """The plan's training jobs as a count, with what ``plan --train`` did: ``2 (1 trained
    for this plan, 1 failed)``; a failed job still counts as one to run."""
    trained, failed = len(the_plan.trained), len(the_plan.failed)
    done = [f"{trained} trained for this plan"] if trained else []
    done += [f"{failed} failed"] if failed else []
    total = len(the_plan.to_train()) + trained
    return f"{total} ({', '.join(done)})" if done else str(total)


def load(path: Path) -> plan.Plan:
    """Read a saved plan; any damage is a ``PlanFileError`` naming the file."""
    where = str(path)
    try:
        if path.stat().st_size > MAX_PLAN_BYTES:
            raise errors.PlanFileError("plan file is too large to be a plan", where=where)
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise errors.PlanFileError(f"cannot read plan file: {e.strerror}", where=where) from e
    except (ValueError, UnicodeDecodeError) as e:
        raise errors.PlanFileError(
            f"plan file is not valid JSON (truncated?): {e}", where=where
        ) from e
    return from_dict(data, where=where)


def from_dict(data: Any, *, where: str = "plan") -> plan.Plan:
    """Rebuild a ``Plan``; refuses other format versions, schema violations and bad checksums."""
    if isinstance(data, dict) and data.get("format_version") not in (None, plan.FORMAT_VERSION):
        raise errors.PlanFileError(
            f"plan format version {str(data['format_version'])[:20]!r} is not supported "
            f"(this retrain reads {plan.FORMAT_VERSION!r})",
            where=where,
        )
    import jsonschema  # here, not above: only a saved plan's reading needs it (start-up)

    problem = jsonschema.exceptions.best_match(_validator().iter_errors(data))
    if problem is not None:
        at = "/" + "/".join(str(p) for p in problem.absolute_path)
        raise errors.PlanFileError(
            f"plan file is malformed at {at}: {problem.message[:200]}", where=where
        )
    body = {k: v for k, v in data.items() if k != "checksum"}
    if _checksum(body) != data["checksum"]:
        raise errors.PlanFileError(
            "plan file was modified after it was written (checksum mismatch); make a new plan",
            where=where,
        )
    changes = tuple(_from_change(c) for c in data["changes"])
    orphans = tuple(
        model.Managed(o["endpoint"], o["web_service"], o["where"], model.frozen_map(o["tags"]))
        for o in data.get("orphans", ())
    )
    return plan.Plan(
        changes,
        data["manifest_digest"],
        data["backend"],
        targets=tuple(data["targets"]),
        manifest=data["manifest"],
        trained=tuple(data.get("trained_for_plan", ())),
        failed=tuple((f["fingerprint"], f["reason"]) for f in data.get("training_failed", ())),
        orphans=orphans,
    )


def _orphan(orphan: model.Managed) -> dict[str, Any]:
    """An orphan as the plan file holds it: shown again by ``show``, never acted on from
    the file (``--prune`` refuses a saved plan)."""
    return {
        "endpoint": orphan.endpoint,
        "web_service": orphan.web_service,
        "where": orphan.where,
        "tags": dict(orphan.tags),
    }


@cache
def _validator() -> jsonschema.Draft202012Validator:
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(fingerprint.canonical_json(body).encode()).hexdigest()


def _change(change: plan.Change) -> dict[str, Any]:
    """One change as JSON; ``live`` and ``steps`` only when the backend gave some (so a
    plan of a backend that gives none is byte-identical to format "1" before them)."""
    worded = {"live": list(change.live)} if change.live else {}
    if change.steps:
        worded["steps"] = list(change.steps)
    return _fields(change) | worded


def _fields(change: plan.Change) -> dict[str, Any]:
    after = None if change.after is None else change.after.as_dict()
    unknown = [k for k, v in (after or {}).items() if v is None and change.train]
    verdict = change.verdict
    return {
        "address": change.endpoint,
        "web_service": change.web_service,
        "action": str(change.action),
        "reason": change.reason,
        "before": None if change.before is None else change.before.as_dict(),
        "after": after,
        "after_unknown": unknown,
        "diff": [list(d) for d in change.diff],
        "train": change.train,
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


def _from_change(data: dict[str, Any]) -> plan.Change:
    verdict = data["gate"]
    return plan.Change(
        action=plan.Action(data["action"]),
        endpoint=data["address"],
        web_service=data["web_service"],
        reason=data["reason"],
        before=_essence(data["before"]),
        after=_essence(data["after"]),
        diff=tuple((str(d[0]), str(d[1]), d[2], d[3]) for d in data["diff"]),
        train=data["train"],
        revision=data["prior_revision"],
        verdict=None if verdict is None else gate.Verdict(**verdict),
        challenger=_frozen(data["challenger_metrics"]),
        champion=_frozen(data["champion_metrics"]),
        live=tuple(data.get("live", ())),
        steps=tuple(data.get("steps", ())),
    )


def _frozen(value: dict[str, Any] | None) -> Any:
    return None if value is None else model.frozen_map(value)


def _essence(value: dict[str, Any] | None) -> plan.Essence | None:
    """The schema has checked the keys (exactly ``plan.SCOPE``) and their types."""
    return None if value is None else plan.Essence(**value)
