"""The lifecycle flags and commands: ``apply --prune`` and ``--prune-delete`` (orphans:
services retrain manages that the manifest no longer lists), and ``retrain init`` (a
starter project from a backend's ``starter``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler import engine, model

F = TypeVar("F", bound=Callable[..., Any])


def prune_options(f: F) -> F:
    """``--prune`` and ``--prune-delete`` on apply."""
    f = click.option(
        "--prune-delete",
        is_flag=True,
        help="With --prune: delete orphaned web services instead, where the backend can "
        "(local only).",
    )(f)
    return click.option(
        "--prune",
        is_flag=True,
        help="Remove retrain's ownership tags from orphaned endpoints (managed by retrain, "
        "no longer in the manifest); never deletes a web service.",
    )(f)


def pruning(prune: bool, delete: bool, *, saved: bool, selective: bool) -> engine.Prune | None:
    """What the flags ask for; refused where orphans are not known (a saved plan records
    none; a plan of part of the manifest lists none)."""
    if delete and not prune:
        raise click.UsageError("--prune-delete needs --prune")
    if not prune:
        return None
    if saved:
        raise click.UsageError("--prune cannot be combined with a saved plan; apply without it")
    if selective:
        raise click.UsageError(
            "--prune needs the whole manifest: with --target/--exclude orphans are not known"
        )
    return engine.Prune(delete=delete)


def prune_note(orphans: Sequence[model.Managed], prune: engine.Prune) -> str:
    """What apply will do to the orphans, said before the confirmation."""
    n = len(orphans)
    what = "be deleted" if prune.delete else "lose retrain's ownership tags"
    return f"With --prune: {n} orphaned endpoint{'s' if n != 1 else ''} will {what}.\n"


@click.command(name="init")
@click.option(
    "--backend",
    "kind",
    default=None,
    help="The backend the starter manifest uses (default: the first that has a starter).",
)
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The project folder to write into.",
)
@click.pass_obj
def init_cmd(env: Any, kind: str | None, folder: Path) -> None:
    """Write a starter manifest (retrain.yaml) and trainer for a backend.

    Refuses to overwrite any file that exists. Then: 'retrain validate', 'retrain plan'.
    """
    starters = engine.starters()
    chosen = kind or next(iter(starters), "")
    if chosen not in starters:
        raise click.UsageError(
            f"no starter for backend {chosen!r} (backends with one: {', '.join(starters)})"
        )
    files = engine.write_starter(starters[chosen](), folder)
    manifest = folder / "retrain.yaml"
    env.out(
        f"Wrote {', '.join(files)} in {folder} ({chosen} backend).\n"
        f"Next: retrain validate -f {manifest}; retrain plan -f {manifest}\n"
    )
