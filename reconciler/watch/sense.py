"""The controller's look at the world: file stamps, a checkout's ``HEAD``, the clock.

Polling, not inotify: it works the same on every filesystem (a bind mount, a network
share, a ConfigMap volume that Kubernetes swaps by a symlink), costs a few ``stat``
calls a poll, and a git checkout moved by ``git pull`` shows as a new ``HEAD``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from reconciler import model
from reconciler.watch import triggers

GIT_SECONDS = 5  # a `git rev-parse` that takes longer than this is a wedged disk: skip the poll


def stamp(path: str) -> triggers.Stamp | None:
    """(mtime ns, size), following symlinks; None when it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def local_files(manifest: model.Manifest) -> frozenset[str]:
    """The manifest's input locations that are files on this machine."""
    return frozenset(
        location
        for ep in manifest.endpoints
        for location in ep.inputs.values()
        if os.path.isabs(location) and os.path.isfile(location)
    )


def head(folder: Path) -> str | None:
    """The commit checked out in ``folder``'s git work tree; None when it is none, or
    git is not installed."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--verify", "-q", "HEAD"],
            capture_output=True,
            text=True,
            timeout=GIT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def poll(files: Iterable[str], *, now: float, folder: Path | None) -> triggers.Poll:
    """One look: every file's stamp, and ``HEAD`` when ``folder`` is a checkout."""
    stamps = model.frozen_map({path: stamp(path) for path in files})
    return triggers.Poll(now, stamps, head(folder) if folder is not None else None)
