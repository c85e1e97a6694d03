"""The ``retrain`` command line: ``main`` (the process: exit codes, one-line errors,
signals), ``commands`` (one function per subcommand), ``options`` (what they share)."""

from reconciler.cli.commands import cli
from reconciler.cli.main import entrypoint, main
from reconciler.cli.options import Env

__all__ = ["Env", "cli", "entrypoint", "main"]
