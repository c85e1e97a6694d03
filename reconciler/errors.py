"""The error tree and exit statuses.

Expected failures (bad manifest, stale plan, unreachable backend) are
``ReconcilerError`` subclasses: the CLI prints them as one line, ``Error: what
(where)``, and exits with the class's ``exit_code``. Anything else is a bug and
is reported as such. This module imports nothing from the package.
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """Process exit codes, Terraform-compatible for ``--detailed-exitcode``."""

    OK = 0
    ERROR = 1
    CHANGES = 2  # plan --detailed-exitcode: the plan is not empty
    INTERRUPTED = 130  # 128 + SIGINT, as shells report it
    TERMINATED = 143  # 128 + SIGTERM


class ReconcilerError(Exception):
    """An expected failure, reported in one line without a traceback."""

    exit_code: ExitStatus = ExitStatus.ERROR

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.message} ({self.where})" if self.where else self.message


class ManifestError(ReconcilerError):
    """The manifest (or a file it references) is invalid; carries every problem found."""

    def __init__(self, problems: list[str]) -> None:
        first = problems[0] if problems else "invalid manifest"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(first + more)
        self.problems = problems


class PlanFileError(ReconcilerError):
    """A saved plan file is unreadable, tampered with, or from another version."""


class StalePlanError(ReconcilerError):
    """The live state or the manifest moved since the saved plan was made."""


class ProviderError(ReconcilerError):
    """A backend failed: unreachable, refused, or answered something unexpected."""


class NotFound(ProviderError):
    """The backend has no such object."""


class TrainingError(ProviderError):
    """A training job failed; ``message`` carries the trainer's own explanation."""


class StoppedError(TrainingError):
    """A training job was stopped because the run was interrupted (Ctrl-C, SIGTERM):
    not a failure of the trainer, and never reported as one."""

    exit_code = ExitStatus.INTERRUPTED


class ConfirmationError(ReconcilerError):
    """Apply needs approval and could not ask for it (no terminal, no --auto-approve)."""


class LockError(ReconcilerError):
    """Another apply holds the backend's lock."""
