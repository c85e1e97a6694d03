"""What every command shares: the manifest and selection flags, and turning flags into
settings and a session (the program's environment and the output flags are in ``env``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from reconciler import engine, settings
from reconciler.cli.env import Env, output_options

# Env and output_options live in cli.env (what --help needs); the commands get them here too.
__all__ = [
    "DEFAULT_MANIFEST",
    "Env",
    "manifest_option",
    "output_options",
    "selection_options",
    "session_for",
    "settings_for",
]


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
