"""The ``retrain`` group: it names its commands without importing them.

``retrain --help`` had to import every command's module (and what those import) to
list one line per command, which was half of its start-up. So the group is click's
documented lazy group: ``COMMANDS`` names, per command, the module and attribute that
define it and the first paragraph of its help, and a command's module is imported only
when that command is looked up (to run it, show its own help or complete it). The
listing is made from the table, through click's own shortening, so it reads as if
every command were loaded; ``tests/unit/test_lazy_group.py`` compares the two, so the
table cannot drift from the commands.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click
from click.exceptions import NoSuchCommand

from reconciler import __version__
from reconciler.cli import lazy
from reconciler.cli.env import output_options

if TYPE_CHECKING:  # the group's callback gets it; main makes it
    from reconciler.cli.env import Env


class Lazy:
    """Where a command is defined, and its summary for the group's listing."""

    __slots__ = ("attribute", "module", "summary")

    def __init__(self, module: str, attribute: str, summary: str) -> None:
        self.module = module
        self.attribute = attribute
        self.summary = summary
        """The first paragraph of the command's help: what click shortens for the listing."""


class LazyGroup(click.Group):
    """A group whose commands are imported on first look-up (click's ``LazyGroup``)."""

    def __init__(self, name: str | None = None, *, lazy: Mapping[str, Lazy], **attrs: Any) -> None:
        super().__init__(name, **attrs)  # click's own keywords (``Any`` there too)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            self.add_command(self._load(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def _load(self, name: str) -> click.Command:
        entry = self.lazy[name]
        command = getattr(importlib.import_module(entry.module), entry.attribute)
        if not isinstance(command, click.Command):  # pragma: no cover - a wrong table
            raise TypeError(f"{entry.module}.{entry.attribute} is not a click command")
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """Click suggests a near name from the loaded commands only: from all of them."""
        try:
            return super().resolve_command(ctx, args)
        except NoSuchCommand as e:
            raise NoSuchCommand(
                e.command_name,
                message=e.message,
                possibilities=self.list_commands(ctx),
                ctx=e.ctx,
            ) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Click's listing, from the table for a command not loaded (a stand-in command
        with the summary as its help, shortened by click's own rule)."""
        commands: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name) or click.Command(name, help=self.lazy[name].summary)
            if not command.hidden:
                commands.append((name, command))
        if commands:
            # click's spacing: three times the default between a name and its help
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            rows = [(name, command.get_short_help_str(limit)) for name, command in commands]
            with formatter.section("Commands"):
                formatter.write_dl(rows)


# Every command, by name: its module, its attribute there, the first paragraph of its help
# (whitespace collapsed: click shortens it to the listing's width).
COMMANDS = {
    "apply": Lazy(
        "reconciler.cli.commands",
        "apply_cmd",
        "Train what is needed, gate it, and point each web service at its model.",
    ),
    "completion": Lazy(
        "reconciler.cli.commands",
        "completion",
        "Print the shell completion script for SHELL (click's own completion).",
    ),
    "force-unlock": Lazy(
        "reconciler.cli.commands",
        "force_unlock",
        "Release the apply lock held under LOCK_ID (a blocked apply shows the ID).",
    ),
    "history": Lazy(
        "reconciler.cli.commands",
        "history",
        "Every change retrain made, oldest first: who, when, which model, its metrics.",
    ),
    "init": Lazy(
        "reconciler.cli.lifecycle",
        "init_cmd",
        "Write a starter manifest (retrain.yaml) and trainer for a backend.",
    ),
    "models": Lazy(
        "reconciler.cli.lifecycle",
        "models_group",
        "The stored models: list them, remove those nothing references (gc).",
    ),
    "page": Lazy(
        "reconciler.cli.pagecmd",
        "page_cmd",
        "Serve the status page: per endpoint its state, serving model, gate metric, "
        "last change and drift, and a chart of its gate metric over its history "
        "(champion vs each challenger, failed gates marked). Read-only: it observes, "
        "never applies.",
    ),
    "plan": Lazy(
        "reconciler.cli.commands",
        "plan",
        "Show what apply would do to each endpoint, and why. Changes no web service.",
    ),
    "serve": Lazy(
        "reconciler.cli.commands",
        "serve",
        "Answer scoring requests: POST /services/NAME/score, GET /services/NAME/swagger.json.",
    ),
    "show": Lazy(
        "reconciler.cli.commands",
        "show",
        "Render a saved plan (from 'retrain plan -out') again, as text, JSON or markdown.",
    ),
    "status": Lazy(
        "reconciler.cli.commands",
        "status",
        "Per endpoint: what it serves, its metrics, when it was deployed, whether it is in sync.",
    ),
    "validate": Lazy(
        "reconciler.cli.commands",
        "validate",
        "Check the manifest: schema, references, files. Reports every problem at once.",
    ),
    "watch": Lazy(
        "reconciler.cli.watchcmd",
        "watch_cmd",
        "Run as a controller: plan (and with --auto-apply, apply) on an interval, "
        "when the manifest, an input file or git HEAD changes, and on trainers' cron "
        "schedules.",
    ),
}

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="retrain")
@click.option(
    "--traceback",
    "show_traceback",
    is_flag=True,
    help="Show the full traceback of an unexpected error.",
)
@output_options
@click.pass_obj
def cli(env: Env, show_traceback: bool) -> None:
    """Reconcile ML models behind web services with the models a manifest declares.

    \b
    retrain init                write a starter manifest and trainer
    retrain validate            check the manifest
    retrain plan                show what would change, and why
    retrain apply [PLANFILE]    train what is needed, gate it, update web services
    retrain show PLANFILE       render a saved plan again (text, json, markdown)
    retrain status              what each endpoint serves now
    retrain history             what served what, when
    retrain models list|gc      stored models; remove those nothing references
    retrain watch               run as a controller: reconcile on changes, schedules
    retrain force-unlock ID     release a stuck apply lock
    retrain completion SHELL    shell completion script (bash, zsh, fish)

    Exit codes: 0 success, 1 error, 2 plan has changes (with --detailed-exitcode),
    130 interrupted.
    """
    lazy.load_all()  # a command runs: load the core now, in this thread (see cli.lazy)
    env.traceback = env.traceback or show_traceback
    env.colour = env.colour and "NO_COLOR" not in env.vars
