"""The ``retrain`` command line: flags → settings, prompts, exit codes.

``main(args, env)`` is the whole program, so tests call it in-process with
their own environment. Expected errors print one line, ``Error: what
(where)``, and exit non-zero; anything else is a bug, reported briefly with
``--traceback`` to see it. Usage errors exit 1, keeping 2 for "plan has changes".
"""

from __future__ import annotations

import getpass
import math
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from reconciler import (
    __version__,
    apply,
    engine,
    errors,
    fingerprint,
    markdown,
    planfile,
    redact,
    render,
    settings,
)
from reconciler import plan as planning

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@dataclass
class Env:
    """What the program gets from outside: environment, streams, terminal-ness."""

    vars: Mapping[str, str]
    interactive: bool
    colour: bool
    redactor: redact.Redactor = field(default_factory=redact.Redactor)
    traceback: bool = False

    def out(self, text: str) -> None:
        click.echo(self.redactor(text), nl=False)

    def err(self, text: str) -> None:
        click.echo(self.redactor(text), err=True)

    def style(self) -> render.Style:
        return render.Style(self.colour)


def manifest_option(f: Any) -> Any:
    f = click.option(
        "--state-dir",
        type=click.Path(path_type=Path),
        help="The backend's state directory, for a backend that keeps one in a folder "
        "(default: what the manifest's backend section says).",
    )(f)
    return click.option(
        "-f",
        "--file",
        "manifest",
        default="retrain.yaml",
        show_default=True,
        type=click.Path(path_type=Path),
        help="The manifest.",
    )(f)


def selection_options(f: Any) -> Any:
    f = click.option(
        "--exclude", multiple=True, metavar="NAME", help="Leave this endpoint out (repeatable)."
    )(f)
    return click.option(
        "--target", multiple=True, metavar="NAME", help="Only this endpoint (repeatable)."
    )(f)


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="retrain")
@click.option(
    "--traceback",
    "show_traceback",
    is_flag=True,
    help="Show the full traceback of an unexpected error.",
)
@click.option("--no-color", is_flag=True, help="Plain output, no ANSI colour.")
@click.pass_obj
def cli(env: Env, show_traceback: bool, no_color: bool) -> None:
    """Reconcile ML models behind web services with the models a manifest declares.

    \b
    retrain validate            check the manifest
    retrain plan                show what would change, and why
    retrain apply               train what is needed, gate it, update web services
    retrain status              what each endpoint serves now
    retrain history             what served what, when
    retrain force-unlock ID     release a stuck apply lock

    Exit codes: 0 success, 1 error, 2 plan has changes (with --detailed-exitcode).
    """
    env.traceback = show_traceback
    env.colour = env.colour and not no_color and "NO_COLOR" not in env.vars


def _settings(env: Env, **kw: Any) -> settings.Settings:
    actor = env.vars.get("RETRAIN_ACTOR") or env.vars.get("GITHUB_ACTOR") or _user()
    return settings.Settings(actor=actor, **kw)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _session(env: Env, config: settings.Settings, *, warn: bool = True) -> engine.Session:
    session = engine.open_session(config, env=env.vars, log=env.err)
    env.redactor = session.redactor
    if warn and (config.targets or config.excludes):
        env.err(
            "Warning: --target/--exclude in effect: the plan covers only "
            f"{', '.join(ep.name for ep in session.endpoints) or 'no endpoints'}."
        )
    return session


@cli.command()
@manifest_option
@click.pass_obj
def validate(env: Env, manifest: Path, state_dir: Path | None) -> None:
    """Check the manifest: schema, references, files. Reports every problem at once."""
    session = _session(env, _settings(env, manifest=manifest, state_dir=state_dir))
    n = len(session.endpoints)
    env.out(
        f"{manifest} is valid: {n} endpoint{'s' if n != 1 else ''}, "
        f"{len(session.manifest.trainers)} trainer(s).\n"
    )


@cli.command()
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
@click.option(
    "--artifact",
    default="the plan artifact",
    show_default=True,
    help="Markdown: where readers find the full plan when the comment is cut.",
)
@click.option(
    "--markdown-parts",
    type=click.IntRange(1, 100),
    default=1,
    show_default=True,
    help="Markdown: split into at most this many comments (each under 65,536 "
    "characters), separated by a '<!-- retrain-plan-split -->' line.",
)
@click.option("-v", "--verbose", is_flag=True, help="List unchanged endpoints too.")
@click.pass_obj
def plan(
    env: Env,
    manifest: Path,
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
) -> None:
    """Show what apply would do to each endpoint, and why. Changes no web service."""
    config = _settings(
        env, manifest=manifest, state_dir=state_dir, targets=target, excludes=exclude
    )
    session = _session(env, config)
    if train:
        the_plan, failed = engine.plan_with_training(session, progress=env.err)
        for fp, reason in failed.items():
            env.err(f"Warning: training model {fingerprint.short(fp)} failed: {reason}")
    else:
        the_plan = engine.make_plan(session)
    if out is not None:
        out.write_text(planfile.dumps(the_plan, scrub=env.redactor), encoding="utf-8")
    if fmt == "json":
        env.out(planfile.dumps(the_plan, scrub=env.redactor))
    elif fmt == "markdown":
        parts = markdown.render(the_plan, artifact=artifact, max_parts=markdown_parts)
        env.out(markdown.SPLIT.join(parts))
    else:
        env.out(render.plan_text(the_plan, style=env.style(), verbose=verbose))
    if detailed_exitcode and not the_plan.is_empty():
        raise SystemExit(errors.ExitStatus.CHANGES)


@cli.command(name="apply")
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
    help="Training jobs and updates at once (default: manifest, else CPUs).",
)
@click.option(
    "--lock-timeout",
    type=click.FloatRange(0, 86400),  # a day: beyond that, something is stuck
    callback=lambda _ctx, _param, value: _finite_seconds(value),
    default=0.0,
    show_default=True,
    help="Seconds to wait for another apply's lock.",
)
@click.pass_obj
def apply_cmd(
    env: Env,
    manifest: Path,
    state_dir: Path | None,
    target: tuple[str, ...],
    exclude: tuple[str, ...],
    planfile_path: Path | None,
    auto_approve: bool,
    parallelism: int | None,
    lock_timeout: float,
) -> None:
    """Train what is needed, gate it, and point each web service at its model.

    With PLANFILE (from 'retrain plan -out'), apply exactly that reviewed plan and
    nothing else, without a prompt; it is refused if the manifest, a model's inputs
    or any endpoint's live state moved since it was made.
    """
    if planfile_path is not None and (target or exclude):
        raise click.UsageError(
            "--target/--exclude cannot be combined with a saved plan; "
            "select endpoints when planning"
        )
    if planfile_path is None and not auto_approve and not env.interactive:
        raise errors.ConfirmationError(
            "apply needs confirmation: run it in a terminal, or pass --auto-approve"
        )
    saved = planfile.load(planfile_path) if planfile_path is not None else None
    config = _settings(
        env,
        manifest=manifest,
        state_dir=state_dir,
        targets=saved.targets if saved else target,
        excludes=exclude,
        parallelism=parallelism or 0,
        lock_timeout=lock_timeout,
    )
    session = _session(env, config, warn=saved is None)
    if saved is not None:
        report: apply.Report | None = engine.run_saved(session, saved, progress=env.err)
    else:
        report = _apply_fresh(env, session, auto_approve=auto_approve)
    if report is None:
        return
    env.out("\n" + render.report_text(report, style=env.style()))
    if not report.ok:
        raise SystemExit(errors.ExitStatus.ERROR)


def _apply_fresh(env: Env, session: engine.Session, *, auto_approve: bool) -> apply.Report | None:
    def confirm(the_plan: planning.Plan) -> bool:
        env.out(render.plan_text(the_plan, style=env.style()))
        if auto_approve:
            return True
        answer = click.prompt(
            "\nApply these changes? Only 'yes' is accepted", default="", show_default=False
        )
        return bool(answer.strip() == "yes")

    the_plan, report = engine.run_apply(session, confirm=confirm, progress=env.err)
    if report is None:
        env.out(
            render.plan_text(the_plan, style=env.style())
            if the_plan.is_empty()
            else "Apply cancelled.\n"
        )
    return report


@cli.command(name="force-unlock")
@manifest_option
@click.argument("lock_id")
@click.pass_obj
def force_unlock(env: Env, manifest: Path, state_dir: Path | None, lock_id: str) -> None:
    """Release the apply lock held under LOCK_ID (a blocked apply shows the ID).

    Only for a lock whose holder is gone or stuck: two applies at once can interleave.
    """
    session = _session(env, _settings(env, manifest=manifest, state_dir=state_dir))
    holder = session.provider.force_unlock(lock_id)
    env.out(f"Released the lock held by {holder}.\n")


@cli.command()
@manifest_option
@selection_options
@click.pass_obj
def status(
    env: Env,
    manifest: Path,
    state_dir: Path | None,
    target: tuple[str, ...],
    exclude: tuple[str, ...],
) -> None:
    """Per endpoint: what it serves, its metrics, when it was deployed, whether it is in sync."""
    config = _settings(
        env, manifest=manifest, state_dir=state_dir, targets=target, excludes=exclude
    )
    session = _session(env, config)
    rows, metrics = engine.read_status(session)
    env.out(render.status_text(rows, metrics))


@cli.command()
@manifest_option
@click.argument("endpoint", required=False)
@click.pass_obj
def history(env: Env, manifest: Path, state_dir: Path | None, endpoint: str | None) -> None:
    """Every change retrain made, oldest first: who, when, which model, its metrics."""
    session = _session(env, _settings(env, manifest=manifest, state_dir=state_dir))
    entries = list(session.provider.history(endpoint))
    if not entries:
        env.out("No history yet.\n")
    for e in entries:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in e.metrics.items())
        env.out(
            f"{e.time}  {e.endpoint}  {e.action}  {fingerprint.short(e.fingerprint)}"
            f"  version {e.version}"
            f"  by {e.actor or '?'}  [{metrics}]\n"
        )


class Terminated(BaseException):
    """SIGTERM (a cancelled CI job): unwind like Ctrl-C, so locks and trainers are released."""


def _terminate(_signum: int, _frame: object) -> None:
    raise Terminated


def main(args: Sequence[str], env: Mapping[str, str], *, interactive: bool | None = None) -> int:
    """Run the program; returns the exit status instead of exiting."""
    tty = sys.stdin.isatty() and sys.stdout.isatty() if interactive is None else interactive
    state = Env(vars=dict(env), interactive=tty, colour=sys.stdout.isatty())
    state.traceback = "--traceback" in args  # accepted anywhere on the line
    argv = [a for a in args if a != "--traceback"]
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None
    try:
        return _run(argv, state)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(argv: list[str], state: Env) -> int:
    try:
        cli.main(args=argv, prog_name="retrain", obj=state, standalone_mode=False)
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    except click.exceptions.Abort:
        state.err("Aborted.")
        return errors.ExitStatus.INTERRUPTED
    except click.ClickException as e:
        state.err(f"Error: {_one_line(e.format_message())}")
        return errors.ExitStatus.ERROR
    except errors.ManifestError as e:
        for problem in e.problems:
            state.err(f"Error: {_one_line(problem)}")
        return e.exit_code
    except errors.ReconcilerError as e:
        state.err(f"Error: {_one_line(str(e))}")
        return e.exit_code
    except KeyboardInterrupt:
        state.err("Interrupted.")
        return errors.ExitStatus.INTERRUPTED
    except Terminated:
        state.err("Terminated.")
        return errors.ExitStatus.TERMINATED
    except OSError as e:
        if not e.filename:
            return _bug(state, e)
        # The machine's answer about a path (permissions, a full disk...), not a bug.
        state.err(f"Error: {e.strerror or type(e).__name__} ({e.filename})")
        return errors.ExitStatus.ERROR
    except Exception as e:
        return _bug(state, e)
    return errors.ExitStatus.OK


def _bug(state: Env, e: BaseException) -> int:
    """An error retrain did not expect: say so briefly; the traceback on request."""
    if state.traceback:
        state.err(traceback.format_exc())
    state.err(
        f"Error: unexpected {type(e).__name__}: {_one_line(str(e))[:300]} "
        "(this is a bug in retrain; rerun with --traceback for details)"
    )
    return errors.ExitStatus.ERROR


def _finite_seconds(value: float) -> float:
    if not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of seconds")
    return value


# Characters that end a line somewhere (Python's splitlines, log viewers, terminals) or
# steer a terminal: escaped in error lines, so an error is one line whatever a manifest key
# or a server's message holds, and nobody can forge a log line through one.
LINE_BREAKING = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _one_line(text: str) -> str:
    flat = " ".join(text.split("\n")).strip()
    return LINE_BREAKING.sub(lambda m: m.group().encode("unicode_escape").decode(), flat)


def entrypoint() -> None:
    """The ``retrain`` console script."""
    sys.exit(main(sys.argv[1:], os.environ))
