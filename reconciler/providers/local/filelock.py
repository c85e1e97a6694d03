"""An inter-process lock on a file, with a visible holder.

``fcntl.flock`` is released by the kernel when the holder dies, so a crashed
apply never leaves a stale lock behind. The holder's description (who, pid,
since when) is written into the file so a blocked apply can name it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from reconciler import errors

POLL_SECONDS = 0.2  # how often a waiting apply retries the lock


def describe(path: Path) -> str:
    """Who holds the lock at ``path``, for messages: "alice (pid 42 on host) for 12s"."""
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "an unknown holder"
    since = info.get("since")
    age = ""
    if since:
        seconds = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(since)
        age = f", held for {int(seconds.total_seconds())}s since {since}"
    return f"{info.get('holder', '?')} (pid {info.get('pid', '?')} on {info.get('host', '?')}{age})"


@contextlib.contextmanager
def hold(path: Path, *, holder: str, timeout: float) -> Iterator[None]:
    """Hold the lock; wait up to ``timeout`` seconds, then raise ``LockError`` naming the holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, timeout)
        info = {
            "holder": holder,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise errors.LockError(
                    f"state is locked by {describe(path)}; waited {timeout:g}s "
                    "(raise --lock-timeout, or wait for it to finish)",
                    where=str(path),
                ) from None
            time.sleep(POLL_SECONDS)
