"""The program's environment (streams, terminal-ness, redaction) and the output flags
every command takes: what ``main`` and the group need, so ``retrain --help`` imports this
and not ``options`` (its flags import pathlib, whose import, with the urllib.parse and
ipaddress it pulls in, was a twentieth of ``--help``'s time)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from reconciler import progress as progress_
from reconciler import redact, render

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
