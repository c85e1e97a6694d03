"""The ``retrain`` process around the commands: exit codes, one-line errors, signals.

``main(args, env)`` is the whole program, so tests call it in-process with
their own environment. Expected errors print one line, ``Error: what
(where)``, and exit non-zero; anything else is a bug, reported briefly with
``--traceback`` to see it. Usage errors exit 1, keeping 2 for "plan has changes".
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from collections.abc import Mapping, Sequence

import click

from reconciler import errors
from reconciler.cli.env import Env
from reconciler.cli.group import cli


class Terminated(BaseException):
    """SIGTERM (a cancelled CI job): unwind like Ctrl-C, so locks and trainers are released."""


def _terminate(_signum: int, _frame: object) -> None:
    raise Terminated


def main(args: Sequence[str], env: Mapping[str, str], *, interactive: bool | None = None) -> int:
    """Run the program; returns the exit status instead of exiting."""
    tty = sys.stdin.isatty() and sys.stdout.isatty() if interactive is None else interactive
    state = Env(vars=dict(env), interactive=tty, colour=sys.stdout.isatty())
    state.live = sys.stderr.isatty()
    state.traceback = "--traceback" in args  # accepted anywhere on the line
    argv = [a for a in args if a != "--traceback"]
    state.log_format = _log_format(argv)  # before parsing: a usage error is logged as asked
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None
    try:
        return _run(argv, state)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _log_format(argv: Sequence[str]) -> str:
    """The ``--log-format`` on the line, wherever it is (click checks its value)."""
    for i, arg in enumerate(argv):
        if arg == "--log-format=json" or (
            arg == "--log-format" and argv[i + 1 : i + 2] == ["json"]
        ):
            return "json"
    return "text"


def _run(argv: list[str], state: Env) -> int:
    try:
        try:
            cli.main(args=argv, prog_name="retrain", obj=state, standalone_mode=False)
        finally:
            state.end_progress()  # before any last word, so it prints below the table
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    except click.exceptions.Abort as e:
        return _aborted(state, e)
    except click.ClickException as e:
        state.err(f"Error: {_one_line(e.format_message())}")
        return errors.ExitStatus.ERROR
    except errors.ManifestError as e:
        for problem in e.problems:
            state.err(f"Error: {_one_line(problem)}")
        return e.exit_code
    except errors.ReconcilerError as e:
        state.err(f"Error: {_one_line(str(e))}")
        return e.exit_code
    except KeyboardInterrupt:
        return _stopped(state, "Interrupted.", errors.ExitStatus.INTERRUPTED)
    except Terminated:
        return _stopped(state, "Terminated.", errors.ExitStatus.TERMINATED)
    except OSError as e:
        if not e.filename:
            return _bug(state, e)
        # The machine's answer about a path (permissions, a full disk...), not a bug.
        state.err(f"Error: {e.strerror or type(e).__name__} ({e.filename})")
        return errors.ExitStatus.ERROR
    except Exception as e:
        return _bug(state, e)
    return errors.ExitStatus.OK


def _aborted(state: Env, e: click.exceptions.Abort) -> int:
    """Click turns Ctrl-C (and end of input at a prompt) into ``Abort``."""
    if isinstance(e.__cause__, KeyboardInterrupt):
        return _stopped(state, "Interrupted.", errors.ExitStatus.INTERRUPTED)
    state.err("Aborted.")
    return errors.ExitStatus.INTERRUPTED


def _stopped(state: Env, word: str, status: errors.ExitStatus) -> int:
    """Ctrl-C or SIGTERM: say so, then what finished and what was stopped (nothing
    stopped is reported as failed: the jobs did not fail, the run was ended)."""
    state.err(word)
    for line in state.display.interrupted() if state.display is not None else []:
        state.err(f"  {line}")
    return status


def _bug(state: Env, e: BaseException) -> int:
    """An error retrain did not expect: say so briefly; the traceback on request."""
    if state.traceback:
        import traceback  # here, not at the top: only a bug report needs it (not --help)

        state.err(traceback.format_exc())
    state.err(
        f"Error: unexpected {type(e).__name__}: {_one_line(str(e))[:300]} "
        "(this is a bug in retrain; rerun with --traceback for details)"
    )
    return errors.ExitStatus.ERROR


# Characters that end a line somewhere (Python's splitlines, log viewers, terminals) or
# steer a terminal: escaped in error lines, so an error is one line whatever a manifest key
# or a server's message holds, and nobody can forge a log line through one.
LINE_BREAKING = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _one_line(text: str) -> str:
    flat = " ".join(text.split("\n")).strip()
    return LINE_BREAKING.sub(lambda m: m.group().encode("unicode_escape").decode(), flat)


def entrypoint() -> None:
    """The ``retrain`` console script."""
    sys.exit(main(sys.argv[1:], os.environ))
