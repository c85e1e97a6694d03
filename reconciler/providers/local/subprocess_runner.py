"""The default runner: each job in a supervised subprocess on this machine.

The supervisor (``runner.py``) trains, checks and publishes; this side starts it, hands
it the job over stdin (secret parameters included: never in a file) and the trainer's
secrets in its environment, waits with the trainer's timeout, and kills the whole
process group on a timeout or ``cancel``. See ``runner.py`` for the crash rules.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from reconciler import errors, redact
from reconciler.providers.local import runner

KILL_WAIT = 10  # seconds to reap a killed trainer
STDERR_TAIL = 2000  # characters of a failed trainer's stderr kept for the error message
SUPERVISOR = runner.__file__  # run by path with -P: no package import before it watches


class SubprocessRunner:
    """Trainers in subprocesses run in ``workdir`` (the manifest's folder) with ``env``
    (this process's environment) plus their secrets (see ``runner.Runner``)."""

    def __init__(self, *, workdir: Path, env: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.env = dict(env)
        self._children: set[subprocess.Popen[str]] = set()
        self._children_lock = threading.Lock()
        self._cancelled = False  # set by cancel(): the run was interrupted

    def run(self, launch: runner.Launch) -> None:
        secrets = dict(launch.secrets)
        env = {"OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0", **self.env, **secrets}
        # The job goes over stdin (it holds secret parameters: never in a file). The runner
        # holds the read end of ``alive``; we hold the only write end, so our death, however
        # it comes, is its end-of-file, and it kills the trainer. Its own process group, so a
        # timeout or a cancelled apply stops the trainer *and* everything it started.
        with self._children_lock:
            if self._cancelled:  # interrupted before this job started: start nothing
                raise errors.StoppedError("the run was interrupted before it started")
        alive_r, alive_w = os.pipe()
        try:
            child = subprocess.Popen(
                [sys.executable, "-P", SUPERVISOR, str(alive_r)],
                cwd=self.workdir,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                process_group=0,
                pass_fds=(alive_r,),
            )
        except BaseException:
            os.close(alive_w)
            raise
        finally:
            os.close(alive_r)
        with self._children_lock:
            self._children.add(child)
            late = self._cancelled  # cancel() ran while it started: it did not see it
        if late:
            _kill(child)
        try:
            _out, err = child.communicate(json.dumps(dict(launch.spec)), timeout=launch.timeout)
        except subprocess.TimeoutExpired as e:
            _kill(child)
            child.communicate(timeout=KILL_WAIT)
            raise errors.TrainingError(
                f"trainer {launch.trainer!r} timed out after {launch.timeout:g}s"
            ) from e
        finally:
            os.close(alive_w)
            with self._children_lock:
                self._children.discard(child)
        if self._cancelled:  # we killed it: the trainer did not fail, the run was stopped
            raise errors.StoppedError("the run was interrupted")
        scrub = redact.Redactor(secrets.values())
        if child.returncode == runner.OUTPUT_INVALID:
            raise errors.TrainingError(last_error(scrub(err)))
        if child.returncode != 0:
            raise errors.TrainingError(
                f"trainer {launch.trainer!r} failed: {last_error(scrub(err))}"
            )

    def cancel(self) -> None:
        """Stop every running trainer (and what it started): the apply was interrupted."""
        with self._children_lock:
            self._cancelled = True
            children = list(self._children)
        for child in children:
            _kill(child)


def _kill(child: subprocess.Popen[str]) -> None:
    """SIGKILL the child's whole process group. (The thread running it reaps it: only one
    thread may read a child's pipes.)"""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)


def last_error(output: str) -> str:
    """The last non-empty line of a trainer's stderr (the exception, for Python)."""
    lines = [line.strip() for line in output[-STDERR_TAIL:].splitlines() if line.strip()]
    return lines[-1] if lines else "exited with an error and printed nothing"
