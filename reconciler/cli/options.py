"""What every command shares: the program's environment (streams, terminal-ness,
redaction), the manifest and selection flags, and turning flags into settings and a
session."""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from reconciler import engine, redact, render, settings


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


def settings_for(env: Env, **kw: Any) -> settings.Settings:
    actor = env.vars.get("RETRAIN_ACTOR") or env.vars.get("GITHUB_ACTOR") or _user()
    return settings.Settings(actor=actor, **kw)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def session_for(env: Env, config: settings.Settings, *, warn: bool = True) -> engine.Session:
    session = engine.open_session(config, env=env.vars, log=env.err)
    env.redactor = session.redactor
    if warn and (config.targets or config.excludes):
        env.err(
            "Warning: --target/--exclude in effect: the plan covers only "
            f"{', '.join(ep.name for ep in session.endpoints) or 'no endpoints'}."
        )
    return session
