"""The ``retrain`` command line: ``main`` (the process: exit codes, one-line errors,
signals), ``commands`` (one function per subcommand), ``options`` (what they share)."""

from reconciler.cli import lazy

lazy.defer()  # before the commands import the core: --help loads none of it (see lazy)

from reconciler.cli.env import Env  # noqa: E402
from reconciler.cli.group import cli  # noqa: E402
from reconciler.cli.main import entrypoint, main  # noqa: E402

__all__ = ["Env", "cli", "entrypoint", "main"]
