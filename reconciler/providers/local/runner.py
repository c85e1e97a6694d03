"""Run one trainer under a supervisor: ``python -m reconciler.providers.local.runner ALIVE_FD``.

A separate process per job keeps a trainer's imports, threads, memory and crashes
away from the reconciler, lets jobs run in parallel on separate cores, and lets a
timeout kill a stuck job. Three rules make it crash-safe:

- **No secret in a file.** The job (entrypoint, inputs, parameters — secret ones
  included — and where the model goes) arrives as JSON on standard input; the
  trainer's own secrets arrive in its environment. Nothing the runner writes holds them.
- **No trainer outlives its apply.** ``ALIVE_FD`` is the read end of a pipe whose
  only write end the apply holds. The kernel closes it when the apply dies, SIGKILL
  included; the supervisor then reads end-of-file and kills its whole process group
  (the trainer and anything it started). The worker also asks the kernel to kill it
  if the supervisor itself dies (``PR_SET_PDEATHSIG``).
- **A finished run is never lost.** The worker — a fork of the supervisor, which
  runs no trainer code and so stays responsive — trains, checks the outputs and then
  publishes the model into the store itself (an atomic rename), so a crash of the
  apply after training costs nothing: the next run finds the model stored. Once the
  worker has said it is publishing, the supervisor lets it finish (at most
  ``PUBLISH_WAIT``) even when the apply is gone.

This module is also **the runner seam**: ``Runner`` is what the local provider hands a
job to. ``subprocess_runner.SubprocessRunner`` (the default) starts this supervisor per
job; ``ray_runner.RayRunner`` submits the job to a Ray cluster instead. Both publish
into the same content-addressed store, so nothing above the seam knows which ran.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import fcntl
import importlib.util
import json
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# No import of ``reconciler`` here: the supervisor runs this file by path (``python -P``,
# see SubprocessRunner) with the standard library only, so it watches ``ALIVE_FD`` within
# milliseconds of starting. Importing the package (its registry, deepdiff...) takes a few
# hundred ms, several times that on a loaded machine: an apply killed meanwhile left its
# trainer running past the chaos harness's grace. The worker imports it after the fork.

OUTPUT_INVALID = 3  # exit status: the trainer ran but its outputs are unusable (message on stderr)
POLL_SECONDS = 0.1  # how often the supervisor looks at its worker between pipe events
PUBLISH_WAIT = 30.0  # seconds a publishing worker may finish after the apply died
PUBLISHING = b"p"  # the worker's word to the supervisor: outputs checked, now storing them
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
STRAGGLER_ROUNDS = 20  # passes over /proc killing leftovers (a straggler may fork meanwhile)


@dataclass(frozen=True, slots=True)
class Launch:
    """One training job as a runner gets it. ``spec`` is the job this supervisor reads
    on stdin (entrypoint, inputs, parameters, trainer, fingerprint, scratch, store,
    metadata); ``secrets`` the trainer's environment secrets (revealed: a runner hands
    them to the trainer and masks them in what it reports, never writes them down)."""

    spec: Mapping[str, Any]
    secrets: Mapping[str, str]
    timeout: float

    @property
    def trainer(self) -> str:
        return str(self.spec["trainer"])

    @property
    def fingerprint(self) -> str:
        return str(self.spec["fingerprint"])


class Runner(Protocol):
    """Where training runs. ``run`` returns once the model is published into the store
    named in ``launch.spec`` (the caller then reads it back), or raises
    ``errors.TrainingError`` with the trainer's reason (masked), or
    ``errors.StoppedError`` after ``cancel``."""

    def run(self, launch: Launch) -> None: ...

    def cancel(self) -> None:
        """The apply was interrupted: stop waiting (and, for local jobs, stop them)."""
        ...


def load_function(entrypoint: str) -> Any:
    """Import ``/path/to/file.py:function`` without touching ``sys.path`` globally."""
    file_part, _, name = entrypoint.rpartition(":")
    path = Path(file_part)
    spec = importlib.util.spec_from_file_location(f"retrain_trainer_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # so the trainer can import its sibling helpers
    spec.loader.exec_module(module)
    return getattr(module, name)


def main(argv: list[str]) -> int:
    alive = int(argv[1])
    sys.path.insert(0, os.getcwd())  # as ``python -m`` had it: the manifest's folder first
    job = json.loads(sys.stdin.buffer.read())
    scratch = os.open(job["scratch"], os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(scratch, fcntl.LOCK_SH)  # a live run's scratch: the next run's sweep keeps it
    phase_r, phase_w = os.pipe()
    supervisor = os.getpid()
    worker = os.fork()
    if worker == 0:  # pragma: no cover - runs in the forked child; measured by its effects
        os.close(phase_r)
        os.close(alive)
        _die_with(supervisor)
        os._exit(_work(job, phase_w))
    os.close(phase_w)
    return _supervise(worker, alive, phase_r)


def _supervise(worker: int, alive: int, phase: int) -> int:
    """Wait for the worker; kill the process group if the apply dies first."""
    watched = [alive, phase]
    publishing = False
    while True:
        ready, _, _ = select.select(watched, [], [], POLL_SECONDS)
        if phase in ready:
            word = os.read(phase, 1)
            publishing = publishing or word == PUBLISHING
            if not word:
                watched.remove(phase)
        done, status = os.waitpid(worker, os.WNOHANG)
        if done:
            _kill_stragglers()
            return os.waitstatus_to_exitcode(status)
        if alive in ready and not os.read(alive, 1):  # end-of-file: the apply is gone
            if publishing:
                _await(worker, PUBLISH_WAIT)
            os.killpg(0, signal.SIGKILL)  # the trainer, what it started, and this supervisor


def _await(worker: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, _status = os.waitpid(worker, os.WNOHANG)
        if done:
            return
        select.select([], [], [], POLL_SECONDS)


def _kill_stragglers() -> None:
    """SIGKILL what the trainer started and left running (they would hold the apply's
    pipes open), sparing this supervisor. Linux: members are found in /proc."""
    me, group = os.getpid(), os.getpgrp()
    for _attempt in range(STRAGGLER_ROUNDS):
        others = [pid for pid in _live_pids() if pid != me and _group_of(pid) == group]
        if not others:
            return
        for pid in others:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(POLL_SECONDS)


def _live_pids() -> list[int]:
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    return [int(n) for n in names if n.isdigit() and _state(int(n)) not in ("Z", "X", "")]


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return ""


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _die_with(parent: int) -> None:
    """Ask Linux to SIGKILL this process when ``parent`` dies; exit if it already has."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _work(job: dict[str, Any], phase: int) -> int:
    """Train, check the outputs, publish the model. Returns the exit status."""
    from reconciler import errors
    from reconciler.providers.local import store

    scratch = Path(job["scratch"])
    model_path = scratch / store.MODEL_FILE
    evaluation_path = scratch / store.EVALUATION_FILE
    started = dt.datetime.now(dt.UTC)
    try:
        function = load_function(job["entrypoint"])
        function(
            inputs={k: Path(v) for k, v in job["inputs"].items()},
            parameters=dict(job["parameters"]),
            model_path=model_path,
            evaluation_path=evaluation_path,
        )
    except SystemExit as e:  # a trainer that calls sys.exit(): non-zero is a failure
        if e.code not in (None, 0):
            _flush()
            return e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
        _flush()
        return 1
    try:
        metrics = output_metrics(job["trainer"], model_path, evaluation_path)
        os.write(phase, PUBLISHING)
        for path in (model_path, evaluation_path):
            fsync(path)
        metadata = dict(job["metadata"]) | {
            "metrics": metrics,
            "trained_at": started.isoformat(timespec="seconds"),
            "duration_seconds": round((dt.datetime.now(dt.UTC) - started).total_seconds(), 3),
        }
        store.ModelStore(Path(job["store"])).commit(job["fingerprint"], scratch, metadata)
    except errors.ReconcilerError as e:
        print(e, file=sys.stderr)
        _flush()
        return OUTPUT_INVALID
    _flush()
    return 0


def output_metrics(trainer: str, model_file: Path, evaluation_file: Path) -> dict[str, float]:
    """The metrics of a finished job's outputs; ``errors.TrainingError`` when they are
    unusable (no model, no or bad evaluation). Every runner checks outputs with this."""
    from reconciler import errors
    from reconciler.providers import evaluation

    if not model_file.is_file() or model_file.stat().st_size == 0:
        raise errors.TrainingError(f"trainer {trainer!r} wrote no model")
    try:
        return evaluation.parse(evaluation_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise errors.TrainingError(f"trainer {trainer!r} wrote no evaluation output") from None
    except UnicodeDecodeError:
        raise errors.TrainingError(
            f"trainer {trainer!r}: evaluation output is not UTF-8 text"
        ) from None
    except evaluation.EvaluationError as e:
        raise errors.TrainingError(f"trainer {trainer!r}: {e}") from e


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _flush() -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
