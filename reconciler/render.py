"""Text renderings of plans, apply reports and status, for terminals.

Everything here is formatting: it decides nothing, and it receives values
already redacted or free of secrets. Colour is optional ANSI, chosen by the
caller (the CLI knows whether it is talking to a terminal).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reconciler import apply, fingerprint, model, plan, planfile, status

_COLOURS = {"green": 32, "yellow": 33, "red": 31, "cyan": 36, "bold": 1, "dim": 2}
ACTION_COLOUR = {
    plan.Action.NOOP: "dim",
    plan.Action.CREATE: "green",
    plan.Action.RETRAIN: "yellow",
    plan.Action.UPDATE: "yellow",
    plan.Action.DRIFT: "red",
    plan.Action.BLOCKED: "red",
}
STATUS_MARK = {
    apply.Status.APPLIED: ("✓", "green"),
    apply.Status.UNCHANGED: ("=", "dim"),
    apply.Status.FAILED: ("✗", "red"),
    apply.Status.GATE_BLOCKED: ("✗", "red"),
    apply.Status.BLOCKED: ("✗", "red"),
    apply.Status.SKIPPED: ("-", "dim"),
}
UNKNOWN = plan.UNKNOWN


@dataclass(frozen=True)
class Style:
    colour: bool = False

    def __call__(self, text: str, name: str) -> str:
        if not self.colour:
            return text
        return f"\x1b[{_COLOURS[name]}m{text}\x1b[0m"


def plan_text(the_plan: plan.Plan, *, style: Style = Style(), verbose: bool = False) -> str:
    """The plan for a terminal: one block per change, then a summary line."""
    if the_plan.is_empty():
        n = len(the_plan.changes)
        done = f"No changes. {n} endpoint{'s' if n != 1 else ''} serving their desired models.\n"
        return done + orphans_text(the_plan.orphans, style=style)
    lines: list[str] = []
    for change in the_plan.changes:
        if change.action is plan.Action.NOOP and not verbose:
            continue
        lines.extend(_with_training_notes(_change_lines(change, style), the_plan, change))
    lines.append(style(_summary(the_plan), "red" if the_plan.failed else "bold"))
    return "\n".join(lines) + "\n" + orphans_text(the_plan.orphans, style=style)


def orphans_text(orphans: Sequence[model.Managed], *, style: Style = Style()) -> str:
    """The services retrain manages that the manifest no longer lists, after the plan
    (nothing when there are none, so a plan without orphans reads as before)."""
    if not orphans:
        return ""
    lines = [""]
    for m in orphans:
        head = style(f"? {m.endpoint}", "yellow")
        lines.append(
            f"{head}  orphaned  (web service {m.web_service}, {m.where}): managed by retrain, "
            f"serving model {fingerprint.short(m.fingerprint)}, no longer in the manifest"
        )
    n = len(orphans)
    lines.append(
        f"{n} orphaned endpoint{'s' if n != 1 else ''}: left as they are; "
        "'retrain apply --prune' removes retrain's ownership tags."
    )
    return "\n".join(lines) + "\n"


def _change_lines(change: plan.Change, style: Style) -> list[str]:
    colour = ACTION_COLOUR[change.action]
    head = f"{change.action.symbol} {change.endpoint}"
    out = [
        f"{style(head, colour)}  {style(str(change.action), colour)}"
        f"  (web service {change.web_service})",
        f"    {change.reason}",
    ]
    out += [f"    live: {line}" for line in change.live]
    for _op, path, old, new in change.diff:
        out.append(f"    {path}: {_show(path, old)} -> {_show(path, new)}")
    if change.verdict is not None:
        word = "pass" if change.verdict.passed else "FAIL"
        out.append(f"    gate: {word}: {change.verdict.reason}")
    elif change.train and change.action is not plan.Action.BLOCKED:
        out.append(f"    gate: {UNKNOWN}")
    if change.steps:
        out.append("    steps:")
        out += [f"      {i}. {step}" for i, step in enumerate(change.steps, 1)]
    out.append("")
    return out


def _with_training_notes(lines: list[str], the_plan: plan.Plan, change: plan.Change) -> list[str]:
    """``lines`` (a change's block) saying what ``plan --train`` did for its model: trained
    for this plan, or failed (then the gate could not judge it)."""
    if the_plan.trained_now(change):
        model_fp = fingerprint.short((change.after or plan.ABSENT).fingerprint)
        return [*lines[:2], f"    trained for this plan: model {model_fp}", *lines[2:]]
    if the_plan.training_failure(change) is not None:
        unknown = f"    gate: {UNKNOWN}"
        return [
            "    gate: not judged: training FAILED" if line == unknown else line for line in lines
        ]
    return lines


def _show(path: str, value: model.JSON) -> str:
    if value is None:
        return "(none)"
    if path == "fingerprint":
        return fingerprint.short(str(value))
    return str(value)


def _summary(the_plan: plan.Plan) -> str:
    counts = the_plan.counts()
    jobs = planfile.training_jobs(the_plan)
    parts = [
        f"{counts[plan.Action.CREATE]} to create",
        f"{counts[plan.Action.RETRAIN]} to retrain",
        f"{counts[plan.Action.UPDATE]} to update",
        f"{counts[plan.Action.DRIFT]} drifted",
        f"{counts[plan.Action.BLOCKED]} blocked",
        f"{counts[plan.Action.NOOP]} unchanged",
    ]
    return f"Plan: {', '.join(parts)}. Training jobs: {jobs}."


def report_text(report: apply.Report, *, style: Style = Style()) -> str:
    """What apply did, one line per endpoint, then totals."""
    lines = []
    for result in report.results:
        mark, colour = STATUS_MARK[result.status]
        lines.append(f"{style(mark, colour)} {result.endpoint}: {result.status}: {result.message}")
    totals = ", ".join(
        f"{report.count(s)} {s}"
        for s in apply.Status
        if report.count(s) or s is apply.Status.FAILED
    )
    lines.append("")
    word = "Apply complete" if report.ok else "Apply finished with failures"
    lines.append(
        style(
            f"{word}: {totals}. Trained {len(report.trained)} model"
            f"{'s' if len(report.trained) != 1 else ''} in {report.seconds:.1f}s.",
            "bold" if report.ok else "red",
        )
    )
    return "\n".join(lines) + "\n"


def status_text(rows: Sequence[status.Row], metric_names: Iterable[str] = ()) -> str:
    """A table: per endpoint what it serves, since when, and how good it is."""
    names = list(metric_names)
    header = ["ENDPOINT", "WEB SERVICE", "STATE", "VERSION", "MODEL", *names, "DEPLOYED"]
    table = [header] + [
        [
            r.endpoint,
            r.web_service,
            r.state,
            r.version,
            fingerprint.short(r.fingerprint or None),
            *[_metric(r.metrics.get(n)) for n in names],
            r.deployed,
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return (
        "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in table
        )
        + "\n"
    )


def _metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
