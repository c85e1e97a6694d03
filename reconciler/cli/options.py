"""What every command shares: the program's environment (streams, terminal-ness,
redaction), the manifest and selection flags, and turning flags into settings and a
session."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler import engine, redact, render, settings
from reconciler import progress as progress_

if TYPE_CHECKING:  # imported when progress is first shown: rich is not needed for --help
    from reconciler.cli import live as live_


@dataclass
class Env:
    """What the program gets from outside: environment, streams, terminal-ness."""

    vars: Mapping[str, str]
    interactive: bool
    colour: bool
    redactor: redact.Redactor = field(default_factory=redact.Redactor)
    traceback: bool = False
    log_format: str = "text"
    """``json``: every stderr line (progress, warnings, errors) is one JSON object."""
    live: bool = False
    """stderr is a terminal a person watches: progress as a live table (cli.live)."""
    display: live_.Display | None = None

    def out(self, text: str) -> None:
        self.end_progress()  # the table's last frame stays above what follows
        click.echo(self.redactor(text), nl=False)

    def progress(self, item: str | progress_.Event) -> None:
        """The engine's progress sink: a live table or plain lines (``cli.live``)."""
        if self.display is None:
            from rich.console import Console

            from reconciler.cli import live as live_

            use_live = live_.wants_live(self.vars, tty=self.live, log_format=self.log_format)
            self.display = live_.Display(
                plain=self.err,
                scrub=self.scrub,
                console=Console(stderr=True) if use_live else None,
            )
        self.display(item)

    def scrub(self, text: str) -> str:
        """Mask secrets with the redactor of the moment (a session replaces it)."""
        return self.redactor(text)

    def end_progress(self) -> None:
        if self.display is not None:
            self.display.close()

    def err(self, text: str) -> None:
        text = self.redactor(text)
        click.echo(log_record(text) if self.log_format == "json" else text, err=True)

    def style(self) -> render.Style:
        return render.Style(self.colour)


# The prefixes that mark a stderr line's level; anything else is progress ("info").
LEVELS = (("Error: ", "error"), ("Warning: ", "warning"))


def log_record(text: str) -> str:
    """One stderr line as a JSON log record (``--log-format json``): time, level, message.
    The level comes from the line's own ``Error:``/``Warning:`` prefix, so every message
    keeps one wording whatever the format."""
    level = "info"
    for prefix, name in LEVELS:
        if text.startswith(prefix):
            level, text = name, text.removeprefix(prefix)
            break
    import json  # here, not at the top: --help, which logs nothing, starts without it

    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    return json.dumps({"time": now, "level": level, "message": text}, ensure_ascii=False)


def _no_color(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and isinstance(ctx.obj, Env):
        ctx.obj.colour = False


def _log_format(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None and isinstance(ctx.obj, Env):
        ctx.obj.log_format = value


def output_options(f: Any) -> Any:
    """``--no-color`` and ``--log-format``, accepted on the group and every subcommand
    (as Terraform takes ``-no-color`` anywhere); ``NO_COLOR`` in the environment too."""
    f = click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default=None,
        expose_value=False,
        callback=_log_format,
        help="stderr as plain lines (text, the default) or one JSON object a line.",
    )(f)
    return click.option(
        "--no-color",
        is_flag=True,
        expose_value=False,
        callback=_no_color,
        help="Plain output, no ANSI colour (also: the NO_COLOR environment variable).",
    )(f)


DEFAULT_MANIFEST = Path("retrain.yaml")


def _given_or_none(ctx: click.Context, param: click.Parameter, value: Path) -> Path | None:
    """The manifest flag as given, None when defaulted (``apply PLANFILE`` then takes the
    plan's own; ``settings_for`` the default)."""
    source = ctx.get_parameter_source(param.name or "")
    return None if source is click.core.ParameterSource.DEFAULT else value


def manifest_option(f: Any) -> Any:
    """``-f/--file`` (None when not given: ``apply PLANFILE`` then uses the plan's own)
    and ``--state-dir``, plus the output options every command takes."""
    f = click.option(
        "--state-dir",
        type=click.Path(path_type=Path),
        help="The backend's state directory, for a backend that keeps one in a folder; "
        "a relative one is relative to the manifest's folder, like every path in it "
        "(default: what the manifest's backend section says).",
    )(f)
    f = click.option(
        "-f",
        "--file",
        "manifest",
        default=DEFAULT_MANIFEST,
        show_default=True,
        callback=_given_or_none,
        type=click.Path(path_type=Path),
        help="The manifest.",
    )(f)
    return output_options(f)


def selection_options(f: Any) -> Any:
    f = click.option(
        "--exclude", multiple=True, metavar="NAME", help="Leave this endpoint out (repeatable)."
    )(f)
    return click.option(
        "--target", multiple=True, metavar="NAME", help="Only this endpoint (repeatable)."
    )(f)


def settings_for(
    env: Env, *, manifest: Path | None, state_dir: Path | None = None, **kw: Any
) -> settings.Settings:
    """Settings from flags; no -f means ``retrain.yaml``. A relative ``--state-dir`` is
    relative to the manifest's folder, like every path the manifest holds, so a command
    run from another folder reads the same state."""
    actor = env.vars.get("RETRAIN_ACTOR") or env.vars.get("GITHUB_ACTOR") or _user()
    manifest = manifest or DEFAULT_MANIFEST
    if state_dir is not None and not state_dir.is_absolute():
        state_dir = manifest.parent / state_dir
    return settings.Settings(actor=actor, manifest=manifest, state_dir=state_dir, **kw)


def _user() -> str:
    import getpass  # here, not at the top: --help runs no command and needs no user

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def session_for(env: Env, config: settings.Settings, *, warn: bool = True) -> engine.Session:
    session = engine.open_session(config, env=env.vars, log=env.progress)
    env.redactor = session.redactor
    if warn and (config.targets or config.excludes):
        env.err(
            "Warning: --target/--exclude in effect: the plan covers only "
            f"{', '.join(ep.name for ep in session.endpoints) or 'no endpoints'}."
        )
    return session
