"""The plan as a pull-request comment.

Summary first (counts, then one row per changed endpoint), per-endpoint
details folded, challenger-vs-champion metric deltas in a table. A stable
HTML marker lets CI find and update its own comment instead of adding a new
one each push. GitHub refuses comments over 65,536 characters, so the output
is split into parts under a limit, and past the last allowed part it is
truncated with a pointer to the full plan artifact.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler import fingerprint, plan, planfile, trend

GITHUB_LIMIT = 65_536  # characters in one GitHub issue/PR comment
SAFETY = 512  # room kept for the truncation note
SELECTION_SHOWN = 20  # endpoints named in a partial plan's warning
ARTIFACT_MAX = 300  # characters of --artifact quoted in the note, so it always fits SAFETY
MARKER = "<!-- retrain-plan: {name} -->"
SPLIT = "\n<!-- retrain-plan-split -->\n"
ICONS = {
    plan.Action.NOOP: "",
    plan.Action.CREATE: "🟢",
    plan.Action.RETRAIN: "🟡",
    plan.Action.UPDATE: "🔵",
    plan.Action.DRIFT: "🟠",
    plan.Action.BLOCKED: "🔴",
}


def render(
    the_plan: plan.Plan,
    *,
    name: str = "",
    artifact: str = "the plan artifact",
    limit: int = GITHUB_LIMIT,
    max_parts: int = 1,
    trends: Mapping[str, trend.Trend] | None = None,
) -> list[str]:
    """The comment in parts, each under ``limit`` characters. ``trends``: per endpoint,
    its gate metric over its history, charted beside its metrics table."""
    marker = MARKER.format(name=name or the_plan.manifest or "retrain")
    head = [marker, _title(the_plan), "", *_failures(the_plan), _facts(the_plan), ""]
    if the_plan.is_empty():
        done = [*head, "No changes. Every endpoint serves its desired model.", ""]
        return ["\n".join([*done, *_orphans(the_plan)])]
    blocks = [_table(the_plan)] + [
        _details(c, trained=the_plan.trained_now(c), history=(trends or {}).get(c.endpoint))
        for c in the_plan.mutating_or_blocked()
    ]
    blocks += ["\n".join(_orphans(the_plan))] if the_plan.orphans else []
    return _pack(
        "\n".join(head), blocks, marker=marker, artifact=artifact, limit=limit, max_parts=max_parts
    )


def _orphans(the_plan: plan.Plan) -> list[str]:
    """A table of the services retrain manages that the manifest no longer lists (none:
    nothing, so a plan without orphans renders as before)."""
    if not the_plan.orphans:
        return []
    rows = [
        f"**Orphaned** ({len(the_plan.orphans)}): managed by retrain, no longer in the "
        "manifest; left as they are (`retrain apply --prune` removes retrain's ownership).",
        "",
        "| | endpoint | web service | model |",
        "|---|---|---|---|",
    ]
    rows += [
        f"| ❔ | `{m.endpoint}` | `{m.web_service}` | `{fingerprint.short(m.fingerprint)}` |"
        for m in the_plan.orphans
    ]
    return [*rows, ""]


def _title(the_plan: plan.Plan) -> str:
    counts = planfile.summary(the_plan)
    parts = [f"{n} {action}" for action, n in counts.items() if n and action != "no-op"]
    return f"### retrain plan: {', '.join(parts) or 'no changes'}"


def _failures(the_plan: plan.Plan) -> list[str]:
    """``plan --train``'s failed jobs, above everything else: one ❌ line each, so a reader
    sees them without opening a section (a gate failure is ❌ in the table's row)."""
    waiting: dict[str, list[str]] = {}
    for c in the_plan.changes:
        waiting.setdefault(c.train or "", []).append(f"`{c.endpoint}`")
    lines = [
        f"❌ **Training failed**: model `{fingerprint.short(fp)}` "
        f"({', '.join(waiting.get(fp, [])) or 'no endpoint'}): {_escape(_clip(why))}"
        for fp, why in the_plan.failed
    ]
    return [*lines, ""] if lines else []


REASON_SHOWN = 300  # characters of a failure's reason in the summary; <details> has it all


def _clip(text: str) -> str:
    return text if len(text) <= REASON_SHOWN else text[: REASON_SHOWN - 1] + "…"


def _facts(the_plan: plan.Plan) -> str:
    unchanged = planfile.summary(the_plan)[str(plan.Action.NOOP)]
    facts = (
        f"**Backend** `{the_plan.backend}` · **Manifest** `{the_plan.manifest}` "
        f"(`{fingerprint.short(the_plan.manifest_digest)}`) · **Training jobs** "
        f"{planfile.training_jobs(the_plan)} · **Unchanged** {unchanged}"
    )
    if the_plan.targets:  # a partial plan must not pass for a whole one
        shown = ", ".join(f"`{name}`" for name in the_plan.targets[:SELECTION_SHOWN])
        more = len(the_plan.targets) - SELECTION_SHOWN
        facts += f"\n\n⚠️ **Partial plan** (--target/--exclude): only {shown}"
        facts += f" and {more} more" if more > 0 else ""
    return facts


def _table(the_plan: plan.Plan) -> str:
    rows = ["| | endpoint | action | model | gate |", "|---|---|---|---|---|"]
    for c in the_plan.mutating_or_blocked():
        before = fingerprint.short((c.before or plan.ABSENT).fingerprint)
        after = fingerprint.short((c.after or plan.ABSENT).fingerprint)
        trained = " (trained for this plan)" if the_plan.trained_now(c) else ""
        gate_cell = "❌ training failed" if the_plan.training_failure(c) else _gate(c)
        rows.append(
            f"| {ICONS[c.action]} | `{c.endpoint}` | {c.action} | "
            f"`{before}` → `{after}`{trained} | {gate_cell} |"
        )
    return "\n".join(rows) + "\n"


def _gate(change: plan.Change) -> str:
    if change.verdict is not None:
        return "✅ pass" if change.verdict.passed else "❌ fail"
    if change.train:
        return "known after training"
    return "—"


def _details(
    change: plan.Change, *, trained: bool = False, history: trend.Trend | None = None
) -> str:
    lines = [
        f"<details><summary>{ICONS[change.action]} <code>{change.endpoint}</code>: "
        f"{change.action}</summary>",
        "",
        _escape(change.reason),
        "",
    ]
    if trained:
        lines += ["Trained for this plan: a later apply reuses the model.", ""]
    if change.verdict is not None:
        lines += [f"Gate: {_escape(change.verdict.reason)}", ""]
    if change.live:
        lines += ["Live:", "", *[f"- {_escape(line)}" for line in change.live], ""]
    if change.steps:
        numbered = [f"{i}. {_escape(step)}" for i, step in enumerate(change.steps, 1)]
        lines += ["Steps:", "", *numbered, ""]
    lines += _metrics(change.challenger, change.champion, unknown=bool(change.train))
    lines += _chart(change, history)
    if change.diff:
        lines += ["```diff"]
        lines += [f"~ {path}: {_cell(old)} -> {_cell(new)}" for _op, path, old, new in change.diff]
        lines += ["```", ""]
    lines += ["</details>", ""]
    return "\n".join(lines)


def _metrics(
    challenger: Mapping[str, float] | None, champion: Mapping[str, float] | None, *, unknown: bool
) -> list[str]:
    if challenger is None and not champion:
        return []
    names = list(dict.fromkeys([*(challenger or {}), *(champion or {})]))
    rows = ["| metric | serving (champion) | new (challenger) | Δ |", "|---|---:|---:|---:|"]
    for n in names:
        old = (champion or {}).get(n)
        new = (challenger or {}).get(n)
        delta = f"{new - old:+.4g}" if old is not None and new is not None else "—"
        new_cell = "known after training" if new is None and unknown else _num(new)
        rows.append(f"| {_escape(n)} | {_num(old)} | {new_cell} | {delta} |")
    return [*rows, ""]


def _chart(change: plan.Change, of: trend.Trend | None) -> list[str]:
    """The metric over the endpoint's history, the challenger last when it is known."""
    if of is None:
        return []
    chart = trend.mermaid(of, (change.challenger or {}).get(of.metric))
    return [*chart, ""] if chart else []


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _cell(value: object) -> str:
    return "(none)" if value is None else str(value)


def _escape(text: str) -> str:
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _fit(block: str, room: int) -> str:
    """A section larger than the room left is cut (the artifact has it all)."""
    if len(block) <= room:
        return block
    note = "\n\n*(section truncated; see the full plan)*\n"
    if block.startswith("<details>"):
        note += "\n</details>\n"
    return block[: max(0, room - len(note))] + note


def _pack(
    head: str, blocks: list[str], *, marker: str, artifact: str, limit: int, max_parts: int
) -> list[str]:
    """Sections into parts under ``limit``; past ``max_parts``, a pointer to the artifact."""
    budget = limit - SAFETY
    parts: list[str] = []
    current, filled = head, False  # filled: the part holds at least one section
    for i, block in enumerate(blocks):
        room = budget - len(current) - 1  # one newline joins a section to the part
        if len(block) > room and filled:
            parts.append(current)
            if len(parts) == max_parts:
                left = len(blocks) - i
                parts[-1] += (
                    f"\n**… {left} more section{'s' if left != 1 else ''} not shown.** "
                    f"The full plan is in {artifact[:ARTIFACT_MAX]}.\n"
                )
                return parts
            current = f"{marker}\n### retrain plan (continued, part {len(parts) + 1})\n"
            room = budget - len(current) - 1
        current += "\n" + _fit(block, room)
        filled = True
    parts.append(current)
    return parts
