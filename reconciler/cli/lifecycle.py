"""The lifecycle flags and commands: ``apply --prune`` and ``--prune-delete`` (orphans:
services retrain manages that the manifest no longer lists), and ``retrain init`` (a
starter project from a backend's ``starter``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler import apply, engine, errors, fingerprint, inventory, model
from reconciler.cli import options

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_KEEP = 3  # unreferenced models gc keeps: the last few rollback targets


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


@click.group(name="models")
def models_group() -> None:
    """The stored models: list them, remove those nothing references (gc)."""


@models_group.command(name="list")
@options.manifest_option
@click.pass_obj
def models_list(env: options.Env, manifest: Path | None, state_dir: Path | None) -> None:
    """Every stored model, newest first: its metrics, which endpoints serve it now, which
    the manifest wants on it, and which served it (from the history)."""
    session = _session(env, manifest, state_dir)
    found = engine.models_inventory(session)
    if not found:
        env.out("No stored models.\n")
        return
    env.out(models_table(found, _gate_metrics(session)))


@models_group.command(name="gc")
@options.manifest_option
@click.option(
    "--keep",
    type=click.IntRange(0, 10_000),  # a bound only so a typo cannot ask for billions
    default=DEFAULT_KEEP,
    show_default=True,
    help="Unreferenced models kept anyway, newest first (rollback targets).",
)
@click.option("--yes", "remove", is_flag=True, help="Remove them (default: a dry run).")
@click.option(
    "--lock-timeout",
    type=click.FloatRange(0, 86400),  # a day: beyond that, something is stuck
    default=0.0,
    show_default=True,
    help="Seconds to wait for another apply's lock.",
)
@click.pass_obj
def models_gc(
    env: options.Env,
    manifest: Path | None,
    state_dir: Path | None,
    keep: int,
    remove: bool,
    lock_timeout: float,
) -> None:
    """Remove stored models nothing references (no listed service serves it, the manifest
    does not want it) beyond the --keep newest of them, under the apply lock. A dry run
    unless --yes."""
    session = _session(env, manifest, state_dir, lock_timeout=lock_timeout)
    doomed, results = engine.collect_garbage(
        session, keep=keep, remove=remove, progress=env.progress
    )
    if not doomed:
        env.out(f"Nothing to remove (keeping up to {keep} unreferenced models).\n")
        return
    if not remove:
        env.out(f"Would remove {len(doomed)} model{'s' if len(doomed) != 1 else ''}:\n")
        env.out(models_table(doomed, _gate_metrics(session)))
        env.out("Run 'retrain models gc --yes' to remove them.\n")
        return
    failed = [r for r in results if r.status is apply.Status.FAILED]
    for result in results:
        env.out(f"{'✗' if result in failed else '✓'} {result.endpoint}: {result.message}\n")
    env.out(f"Removed {len(results) - len(failed)} model(s), {len(failed)} failed.\n")
    if failed:
        raise SystemExit(errors.ExitStatus.ERROR)


def _gate_metrics(session: engine.Session) -> list[str]:
    return [ep.gate.metric for ep in session.endpoints if ep.gate]


def _session(
    env: options.Env, manifest: Path | None, state_dir: Path | None, **kw: Any
) -> engine.Session:
    config = options.settings_for(env, manifest=manifest, state_dir=state_dir, **kw)
    return options.session_for(env, config)


def models_table(found: Sequence[inventory.Stored], metrics: Sequence[str]) -> str:
    """One row per model: fingerprint, when trained, metrics, its references."""
    names = list(dict.fromkeys(metrics))
    header = ["MODEL", "TRAINED", "METRICS", "SERVING", "WANTED BY", "SERVED", "PRUNED"]
    table = [header] + [
        [
            fingerprint.short(m.record.fingerprint),
            m.record.trained_at or "-",
            inventory.metric_line(m.record.metrics, names),
            ", ".join(m.serving) or "-",
            ", ".join(m.wanted) or "-",
            ", ".join(m.served) or "-",
            ", ".join(m.disowned) or "-",
        ]
        for m in found
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = (
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    )
    return "\n".join(lines) + "\n"
