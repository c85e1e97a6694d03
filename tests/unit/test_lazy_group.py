"""The lazy group (``reconciler.cli.group``): ``retrain --help`` lists every command from
the group's table without importing the commands, and that listing is the one the real
commands give, at every width; an unknown command still gets click's suggestion."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.exceptions import NoSuchCommand

import reconciler.cli
from reconciler.cli import group

ROOT = Path(__file__).resolve().parents[2]


def real_commands() -> dict[str, click.Command]:
    """Every command, imported from where the table says it is."""
    return {
        name: getattr(importlib.import_module(entry.module), entry.attribute)
        for name, entry in group.COMMANDS.items()
    }


def listing(command: click.Group, width: int) -> str:
    """The "Commands:" section of ``command``'s help at a terminal ``width``."""
    ctx = click.Context(command, info_name="retrain", terminal_width=width)
    formatter = ctx.make_formatter()
    command.format_commands(ctx, formatter)
    return formatter.getvalue()


@pytest.mark.parametrize("width", [20, 50, 72, 80, 100, 200])
def test_the_listing_from_the_table_is_the_real_commands_listing(width: int) -> None:
    unloaded = group.LazyGroup("retrain", lazy=group.COMMANDS)
    eager = click.Group("retrain", commands=real_commands())
    assert listing(unloaded, width) == listing(eager, width)
    assert unloaded.commands == {}  # the listing loaded nothing
    assert "validate" in listing(unloaded, width)


def test_each_summary_is_its_commands_first_paragraph() -> None:
    for name, command in real_commands().items():
        assert isinstance(command, click.Command), name
        assert command.name == name
        assert command.short_help is None, f"{name}: the table holds help, not short_help"
        assert not command.hidden and not command.deprecated, name
        first = " ".join((command.help or "").partition("\n\n")[0].split())
        assert group.COMMANDS[name].summary == first, name


def test_every_command_of_the_cli_modules_is_in_the_table() -> None:
    """A command defined in a ``reconciler.cli`` module but missing from the table would
    never be found: every top-level click command there is in the table."""
    defined = set()
    for info in pkgutil.iter_modules(reconciler.cli.__path__, "reconciler.cli."):
        if info.name == "reconciler.cli.live":
            continue  # it defines no command (and needs rich)
        module = importlib.import_module(info.name)
        for attribute, value in vars(module).items():
            if isinstance(value, click.Command) and value is not group.cli:
                defined.add((info.name, attribute, value.name or ""))
    subcommands = {
        (c.name or "")
        for g in real_commands().values()
        if isinstance(g, click.Group)
        for c in g.commands.values()
    }
    table = {(e.module, e.attribute, name) for name, e in group.COMMANDS.items()}
    assert {d for d in defined if d[2] not in subcommands} == table


def test_a_command_is_imported_when_looked_up_and_listed_with_the_rest() -> None:
    fresh = group.LazyGroup("retrain", lazy=group.COMMANDS)
    ctx = click.Context(fresh)
    assert fresh.list_commands(ctx) == sorted(group.COMMANDS)
    found = fresh.get_command(ctx, "plan")
    assert found is real_commands()["plan"]
    assert fresh.get_command(ctx, "no-such") is None
    assert list(fresh.commands) == ["plan"]


@pytest.mark.parametrize(
    ("typed", "suggested"), [("plna", ["plan"]), ("forceunlock", ["force-unlock"])]
)
def test_an_unknown_command_gets_a_suggestion_from_commands_not_loaded(
    typed: str, suggested: list[str]
) -> None:
    fresh = group.LazyGroup("retrain", lazy=group.COMMANDS)
    with pytest.raises(NoSuchCommand) as raised:
        fresh.main([typed], prog_name="retrain", standalone_mode=False)
    assert raised.value.possibilities == suggested
    assert raised.value.format_message() == (
        f"No such command {typed!r}. Did you mean {suggested[0]!r}?"
    )


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m reconciler ARGS`` in a fresh interpreter (nothing loaded before)."""
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,  # seconds: a cold interpreter on a loaded machine takes ~1
        check=False,
    )


def test_the_process_says_no_such_command_with_the_suggestion() -> None:
    done = run("forceunlock")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "Error: No such command 'forceunlock'. Did you mean 'force-unlock'?\n"
