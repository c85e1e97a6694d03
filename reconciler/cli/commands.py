"""The ``retrain`` commands: flags → settings → engine → a rendering and an exit code.

The group (``cli.group``) names them and imports this module when one is looked up."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from click import shell_completion

from reconciler import (
    apply,
    engine,
    errors,
    fingerprint,
    markdown,
    model,
    planfile,
    render,
    trend,
)
from reconciler import plan as planning
from reconciler.cli import jsonout, lifecycle
from reconciler.cli.group import cli
from reconciler.cli.options import (
    Env,
    manifest_option,
    output_options,
    selection_options,
    session_for,
    settings_for,
)


def rendering_options(f: Any) -> Any:
    """How a plan is shown, alike for 'plan' and 'show': -v, and the markdown comment's
    artifact name and number of parts."""
    f = click.option("-v", "--verbose", is_flag=True, help="List unchanged endpoints too.")(f)
    f = click.option(
        "--markdown-parts",
        type=click.IntRange(1, 100),
        default=1,
        show_default=True,
        help="Markdown: split into at most this many comments (each under 65,536 "
        "characters), separated by a '<!-- retrain-plan-split -->' line.",
    )(f)
    return click.option(
        "--artifact",
        default="the plan artifact",
        show_default=True,
        help="Markdown: where readers find the full plan when the comment is cut.",
    )(f)


def _print_plan(
    env: Env,
    the_plan: planning.Plan,
    fmt: str,
    *,
    verbose: bool,
    artifact: str,
    parts: int,
    name: str = "",
    trends: Mapping[str, trend.Trend] | None = None,
) -> None:
    """``the_plan`` on stdout as text, JSON or markdown comment parts (``trends``: the
    charts beside the metrics tables)."""
    if fmt == "json":
        env.out(planfile.dumps(the_plan, scrub=env.redactor))
    elif fmt == "markdown":
        comments = markdown.render(
            the_plan, name=name, artifact=artifact, max_parts=parts, trends=trends
        )
        env.out(markdown.SPLIT.join(comments))
    else:
        env.out(render.plan_text(the_plan, style=env.style(), verbose=verbose))


@click.command()
@manifest_option
@click.pass_obj
def validate(env: Env, manifest: Path | None, state_dir: Path | None) -> None:
    """Check the manifest: schema, references, files. Reports every problem at once."""
    config = settings_for(env, manifest=manifest, state_dir=state_dir)
    loaded, env.redactor = engine.check_manifest(config, env=env.vars)
    n = len(loaded.endpoints)
    env.out(
        f"{config.manifest} is valid: {n} endpoint{'s' if n != 1 else ''}, "
        f"{len(loaded.trainers)} trainer(s).\n"
    )


@click.command()
@manifest_option
@selection_options
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there are no changes, 1 on error, 2 when there are changes.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="Output format (markdown: for a pull-request comment).",
)
@click.option(
    "-o",
    "--out",
    "-out",
    "out",
    type=click.Path(path_type=Path),
    help="Save the JSON plan to this file, for 'retrain apply FILE'.",
)
@click.option(
    "--train",
    is_flag=True,
    help="Train the models the plan needs now and show their metrics and gate "
    "verdicts; a later apply reuses them.",
)
@rendering_options
@click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    default=None,
    help="Reads, and with --train training jobs, at once (default: the manifest's "
    "networkParallelism and parallelism, else the backend's API limit and CPUs).",
)
@click.pass_obj
def plan(
    env: Env,
    manifest: Path | None,
    state_dir: Path | None,
    target: tuple[str, ...],
    exclude: tuple[str, ...],
    detailed_exitcode: bool,
    fmt: str,
    out: Path | None,
    train: bool,
    artifact: str,
    markdown_parts: int,
    verbose: bool,
    parallelism: int | None,
) -> None:
    """Show what apply would do to each endpoint, and why. Changes no web service.

    With -out FILE the plan is saved for 'retrain apply FILE', which finds the manifest
    through the path the file records (relative to the file's folder).
    """
    config = settings_for(
        env,
        manifest=manifest,
        state_dir=state_dir,
        targets=target,
        excludes=exclude,
        parallelism=parallelism or 0,
    )
    session = session_for(env, config)
    if train:
        the_plan, failed = engine.plan_with_training(session, progress=env.progress)
        for fp, reason in failed.items():
            env.err(f"Warning: training model {fingerprint.short(fp)} failed: {reason}")
    else:
        the_plan = engine.plan_now(session)
    if out is not None:
        saved = dataclasses.replace(the_plan, manifest=_relative(config.manifest, out.parent))
        out.write_text(planfile.dumps(saved, scrub=env.redactor), encoding="utf-8")
    trends = _trends(session, the_plan) if fmt == "markdown" else None
    _print_plan(
        env,
        the_plan,
        fmt,
        verbose=verbose,
        artifact=artifact,
        parts=markdown_parts,
        trends=trends,
    )
    if train:
        _fail_if_training_failed(env, the_plan)
    if detailed_exitcode and not the_plan.is_empty():
        raise SystemExit(errors.ExitStatus.CHANGES)


def _trends(session: engine.Session, the_plan: planning.Plan) -> dict[str, trend.Trend]:
    """Per changed endpoint with a gate, its gate metric over its history (one read of
    the history, only for the markdown comment)."""
    gates = {ep.name: ep.gate.metric for ep in session.endpoints if ep.gate is not None}
    changed = [c.endpoint for c in the_plan.mutating_or_blocked() if c.endpoint in gates]
    if not changed:
        return {}
    entries = list(session.provider.history())
    return {name: trend.of(entries, name, gates[name]) for name in changed}


def _fail_if_training_failed(env: Env, the_plan: planning.Plan) -> None:
    """``plan --train`` whose training or gate failed exits 1, after the plan is shown
    (and saved): never 0 or 2, which CI takes for a plan that merely has changes."""
    if not the_plan.failing():
        return
    jobs, gates = len(the_plan.failed), len(the_plan.gate_failures())
    what = [f"{jobs} training job{'s' if jobs != 1 else ''} failed"] if jobs else []
    if gates:
        names = ", ".join(c.endpoint for c in the_plan.gate_failures()[:GATES_NAMED])
        what.append(f"the gate turned down the new model of {names}")
    env.err(f"Error: plan --train: {'; '.join(what)}")
    raise SystemExit(errors.ExitStatus.ERROR)


GATES_NAMED = 5  # endpoints named in the error line; the plan shows them all


def format_options(f: Any) -> Any:
    """``--format text|json`` and its shorthand ``--json``, for apply, status and history."""
    f = click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Shorthand for --format json (the schema is in schemas/, versioned).",
    )(f)
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Output format; json is one versioned document on stdout.",
    )(f)


@click.command(name="apply")
@manifest_option
@selection_options
@click.argument(
    "planfile_path", metavar="[PLANFILE]", required=False, type=click.Path(path_type=Path)
)
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    default=None,
    help="Training jobs and updates at once (default: the manifest's parallelism and "
    "networkParallelism, else CPUs and the backend's API limit).",
)
@click.option(
    "--lock-timeout",
    type=click.FloatRange(0, 86400),  # a day: beyond that, something is stuck
    callback=lambda _ctx, _param, value: _finite_seconds(value),
    default=0.0,
    show_default=True,
    help="Seconds to wait for another apply's lock.",
)
@format_options
@lifecycle.prune_options
@click.pass_obj
def apply_cmd(
    env: Env,
    manifest: Path | None,
    state_dir: Path | None,
    target: tuple[str, ...],
    exclude: tuple[str, ...],
    planfile_path: Path | None,
    auto_approve: bool,
    parallelism: int | None,
    lock_timeout: float,
    fmt: str,
    as_json: bool,
    prune: bool,
    prune_delete: bool,
) -> None:
    """Train what is needed, gate it, and point each web service at its model.

    With PLANFILE (from 'retrain plan -out'), apply exactly that reviewed plan and
    nothing else, without a prompt; it is refused if the manifest, a model's inputs
    or any endpoint's live state moved since it was made. The manifest is the one the
    plan records; -f, when given, must name that manifest.
    """
    if planfile_path is not None and (target or exclude):
        raise click.UsageError(
            "--target/--exclude cannot be combined with a saved plan; "
            "select endpoints when planning"
        )
    pruning = lifecycle.pruning(
        prune, prune_delete, saved=planfile_path is not None, selective=bool(target or exclude)
    )
    if planfile_path is None and not auto_approve and not env.interactive:
        raise errors.ConfirmationError(
            "apply needs confirmation: run it in a terminal, or pass --auto-approve"
        )
    json_out = as_json or fmt == "json"
    saved = planfile.load(planfile_path) if planfile_path is not None else None
    if saved is not None and planfile_path is not None:
        manifest = _manifest_of_plan(saved, planfile_path, given=manifest)
    config = settings_for(
        env,
        manifest=manifest,
        state_dir=state_dir,
        targets=saved.targets if saved else target,
        excludes=exclude,
        parallelism=parallelism or 0,
        lock_timeout=lock_timeout,
    )
    session = session_for(env, config, warn=saved is None)
    if saved is not None:
        report: apply.Report | None = engine.run_saved(session, saved, progress=env.progress)
        outcome = ""
    else:
        report, outcome = _apply_fresh(
            env, session, auto_approve=auto_approve, quiet=json_out, prune=pruning
        )
    if json_out:
        outcome = outcome or ("applied" if report is None or report.ok else "failed")
        env.out(jsonout.dumps(jsonout.apply_report(report, outcome=outcome)))
    elif report is not None:
        env.out("\n" + render.report_text(report, style=env.style()))
    if report is not None and not report.ok:
        raise SystemExit(errors.ExitStatus.ERROR)


def _manifest_of_plan(saved: planning.Plan, path: Path, *, given: Path | None) -> Path:
    """The manifest a saved plan is applied with: the one it records (a path relative to
    the plan file's folder), or ``given`` (-f), which must name the same manifest."""
    if given is None:
        if not saved.manifest:
            raise errors.PlanFileError("plan records no manifest; pass -f", where=str(path))
        return path.parent / saved.manifest
    if saved.manifest and Path(saved.manifest).name != given.name:
        raise errors.PlanFileError(
            f"plan was made from the manifest {saved.manifest!r}, not {str(given)!r} (-f); "
            "apply it without -f or make a new plan",
            where=str(path),
        )
    return given


def _relative(manifest: Path, folder: Path) -> str:
    """``manifest`` as a path relative to ``folder`` (where a saved plan is written)."""
    return Path(os.path.relpath(manifest.resolve(), folder.resolve())).as_posix()


def _apply_fresh(
    env: Env,
    session: engine.Session,
    *,
    auto_approve: bool,
    quiet: bool,
    prune: engine.Prune | None = None,
) -> tuple[apply.Report | None, str]:
    """Plan, confirm, act; with ``quiet`` (--json) the plan and notes go to stderr, so
    stdout holds only the JSON document. Returns the report and, when there is none,
    why (``no-changes`` or ``cancelled``)."""
    say = (lambda text: env.err(text.rstrip("\n"))) if quiet else env.out

    def confirm(the_plan: planning.Plan) -> bool:
        say(render.plan_text(the_plan, style=env.style()))
        if prune is not None and the_plan.orphans:
            say(lifecycle.prune_note(the_plan.orphans, prune))
        if auto_approve:
            return True
        answer = click.prompt(
            "\nApply these changes? Only 'yes' is accepted",
            default="",
            show_default=False,
            err=quiet,
        )
        return bool(answer.strip() == "yes")

    the_plan, report = engine.run_apply(
        session, confirm=confirm, progress=env.progress, prune=prune
    )
    if report is not None:
        return report, ""
    if the_plan.is_empty():
        say(render.plan_text(the_plan, style=env.style()))
        return None, "no-changes"
    say("Apply cancelled.\n")
    return None, "cancelled"


@click.command()
@click.argument("planfile_path", metavar="PLANFILE", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="Output format, as 'retrain plan' gives it.",
)
@rendering_options
@output_options
@click.pass_obj
def show(
    env: Env, planfile_path: Path, fmt: str, verbose: bool, artifact: str, markdown_parts: int
) -> None:
    """Render a saved plan (from 'retrain plan -out') again, as text, JSON or markdown.

    Reads only the file (checked like 'apply PLANFILE' checks it: format, schema,
    checksum); it observes nothing and needs no manifest.
    """
    saved = planfile.load(planfile_path)
    name = Path(saved.manifest).name  # the marker plan --format markdown wrote
    _print_plan(
        env, saved, fmt, verbose=verbose, artifact=artifact, parts=markdown_parts, name=name
    )


@click.command(name="force-unlock")
@manifest_option
@click.argument("lock_id")
@click.pass_obj
def force_unlock(env: Env, manifest: Path | None, state_dir: Path | None, lock_id: str) -> None:
    """Release the apply lock held under LOCK_ID (a blocked apply shows the ID).

    Only for a lock whose holder is gone or stuck: two applies at once can interleave.
    """
    session = session_for(env, settings_for(env, manifest=manifest, state_dir=state_dir))
    holder = session.provider.force_unlock(lock_id)
    env.out(f"Released the lock held by {holder}.\n")


@click.command()
@manifest_option
@selection_options
@format_options
@click.pass_obj
def status(
    env: Env,
    manifest: Path | None,
    state_dir: Path | None,
    target: tuple[str, ...],
    exclude: tuple[str, ...],
    fmt: str,
    as_json: bool,
) -> None:
    """Per endpoint: what it serves, its metrics, when it was deployed, whether it is in sync."""
    config = settings_for(
        env, manifest=manifest, state_dir=state_dir, targets=target, excludes=exclude
    )
    session = session_for(env, config)
    rows, metrics = engine.read_status(session)
    if as_json or fmt == "json":
        env.out(jsonout.dumps(jsonout.status_rows(rows, metrics)))
    else:
        env.out(render.status_text(rows, metrics))


@click.command()
@manifest_option
@click.argument("endpoint", required=False)
@format_options
@click.option(
    "--chart",
    is_flag=True,
    help="With ENDPOINT: its gate metric (else every metric) over its history, as a "
    "sparkline per metric.",
)
@click.pass_obj
def history(
    env: Env,
    manifest: Path | None,
    state_dir: Path | None,
    endpoint: str | None,
    fmt: str,
    as_json: bool,
    chart: bool,
) -> None:
    """Every change retrain made, oldest first: who, when, which model, its metrics."""
    if chart and (endpoint is None or as_json or fmt == "json"):
        raise click.UsageError("--chart needs an ENDPOINT and text output")
    session = session_for(env, settings_for(env, manifest=manifest, state_dir=state_dir))
    entries = list(session.provider.history(endpoint))
    if chart and endpoint is not None:
        env.out(_sparklines(session, entries, endpoint))
        return
    if as_json or fmt == "json":
        env.out(jsonout.dumps(jsonout.history_entries(entries)))
        return
    if not entries:
        env.out("No history yet.\n")
    for e in entries:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in e.metrics.items())
        env.out(
            f"{e.time}  {e.endpoint}  {e.action}  {fingerprint.short(e.fingerprint)}"
            f"  version {e.version}"
            f"  by {e.actor or '?'}  [{metrics}]\n"
        )


def _sparklines(session: engine.Session, entries: list[model.HistoryEntry], endpoint: str) -> str:
    """One line per metric: name, sparkline, first → last value, range, models charted."""
    gated = [ep.gate.metric for ep in session.endpoints if ep.name == endpoint and ep.gate]
    names = gated or list(dict.fromkeys(m for e in entries for m in e.metrics))
    lines = []
    for name in names:
        points = trend.of(entries, endpoint, name).points
        if not points:
            continue
        values = [p.value for p in points]
        lines.append(
            f"{name}  {trend.sparkline(values)}  {values[0]:.4g} → {values[-1]:.4g}  "
            f"(min {min(values):.4g}, max {max(values):.4g}; {len(values)} models, "
            f"{points[0].label} to {points[-1].label})"
        )
    return "\n".join(lines) + "\n" if lines else f"No metrics in the history of {endpoint}.\n"


COMPLETE_VAR = "_RETRAIN_COMPLETE"  # click's default for prog_name "retrain"


@click.command()
@manifest_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8080, show_default=True, help="Port."
)
@click.option(
    "--access-log/--no-access-log", default=True, show_default=True, help="A line per request."
)
@click.pass_obj
def serve(
    env: Env, manifest: Path | None, state_dir: Path | None, host: str, port: int, access_log: bool
) -> None:
    """Answer scoring requests: POST /services/NAME/score, GET /services/NAME/swagger.json.

    Each web service scores with the model it points at now: after an apply, the next
    request is served by the new model, with no restart. Stops on Ctrl-C or SIGTERM.
    """
    from reconciler.web import page, source  # starlette and uvicorn: only when serving
    from reconciler.web import serve as serving

    config = settings_for(env, manifest=manifest, state_dir=state_dir)
    session = session_for(env, config)
    status = source.ManifestSource(lambda: engine.open_session(config, env=env.vars))
    serving.run(
        session,
        host=host,
        port=port,
        log=env.err,
        access_log=access_log,
        extra=page.page_routes(status),  # the status page at /
    )


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@output_options
@click.pass_obj
def completion(env: Env, shell: str) -> None:
    """Print the shell completion script for SHELL (click's own completion).

    \b
    bash: eval "$(retrain completion bash)"        (e.g. in ~/.bashrc)
    zsh:  eval "$(retrain completion zsh)"         (e.g. in ~/.zshrc)
    fish: retrain completion fish > ~/.config/fish/completions/retrain.fish
    """
    complete = shell_completion.get_completion_class(shell)
    assert complete is not None  # the three choices are click's built-in shells
    env.out(complete(cli, {}, "retrain", COMPLETE_VAR).source())


def _finite_seconds(value: float) -> float:
    if not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of seconds")
    return value
