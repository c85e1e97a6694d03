"""The local backend's apply lock: a lock file with a visible holder and an ID.

The lock is a JSON file naming its holder (who, pid, host, since, lock ID).
Checking and taking it happens under a short ``flock`` on a guard file, so two
processes never both take it. A lock whose holder process has died on this
host is stale and is taken over; any other lock can be released deliberately
with ``retrain force-unlock LOCK_ID`` (the ID keeps a careless unlock from
releasing someone else's newer lock).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from reconciler import errors
from reconciler.providers.local import safefs

POLL_SECONDS = 0.2  # how often a waiting apply looks at the lock again


@contextlib.contextmanager
def _guard(path: Path) -> Iterator[None]:
    """Serialise lock-file inspection between processes (held for microseconds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    guard = path.with_name(path.name + ".guard")
    try:
        fd = os.open(guard, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as e:
        raise errors.ProviderError(
            f"cannot open the lock guard: {e.strerror or type(e).__name__}"
            f"{' (it is a symbolic link)' if os.path.islink(guard) else ''}",
            where=str(guard),
        ) from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def read(path: Path) -> dict[str, Any] | None:
    """The current holder's record, or None when unlocked. A lock that is a symlink, not
    a regular file or too large is refused (``ProviderError``); one whose content is not
    a lock record is shown as held by "an unreadable lock file"."""
    data = safefs.read_bytes(path, root=path.parent, limit=safefs.LOCK_LIMIT, what="lock")
    if data is None:
        return None
    try:
        info = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return {"id": "?", "holder": "an unreadable lock file"}
    return info if isinstance(info, dict) else {"id": "?", "holder": "an unreadable lock file"}


def describe(info: dict[str, Any]) -> str:
    """ "alice (pid 42 on host, for 12s since ..., lock ID ...)"."""
    age = ""
    since = info.get("since")
    if isinstance(since, str):
        try:
            taken = dt.datetime.fromisoformat(since)
            seconds = (dt.datetime.now(dt.UTC) - taken.astimezone(dt.UTC)).total_seconds()
            age = f", for {int(seconds)}s since {since}"
        except (ValueError, TypeError, OverflowError):
            age = f", since {since[:40]!r}"
    return (
        f"{info.get('holder', '?')} (pid {info.get('pid', '?')} on {info.get('host', '?')}"
        f"{age}, lock ID {info.get('id', '?')})"
    )


def _stale(info: dict[str, Any]) -> bool:
    """Held by a process on this host that no longer exists."""
    pid = info.get("pid")
    if info.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _try_take(path: Path, holder: str) -> tuple[str | None, dict[str, Any] | None]:
    """(my lock ID, None) when taken; (None, holder's record) when someone else holds it."""
    with _guard(path):
        current = read(path)
        if current is not None and not _stale(current):
            return None, current
        lock_id = str(uuid.uuid4())
        info = {
            "id": lock_id,
            "holder": holder,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        data = json.dumps(info).encode()
        safefs.write_atomic(path, data, root=path.parent, what="lock")
        return lock_id, None


@contextlib.contextmanager
def hold(
    path: Path,
    *,
    holder: str,
    timeout: float,
    on_wait: Callable[[str], None] = lambda _message: None,
) -> Iterator[None]:
    """Hold the lock; wait up to ``timeout`` seconds (saying so, once, through ``on_wait``),
    then raise ``LockError`` naming the holder."""
    deadline = time.monotonic() + timeout
    told = False
    while True:
        lock_id, current = _try_take(path, holder)
        if lock_id is not None:
            break
        if not told and timeout > 0:
            on_wait(f"waiting up to {timeout:g}s for the lock held by {describe(current or {})}")
            told = True
        if time.monotonic() >= deadline:
            raise errors.LockError(
                f"state is locked by {describe(current or {})}; waited {timeout:g}s "
                "(wait for it, raise --lock-timeout, or release it with "
                f"'retrain force-unlock {(current or {}).get('id', '?')}')",
                where=str(path),
            )
        time.sleep(POLL_SECONDS)
    try:
        yield
    finally:
        release(path, lock_id)


def release(path: Path, lock_id: str) -> bool:
    """Remove the lock if ``lock_id`` holds it; False when it does not."""
    with _guard(path):
        current = read(path)
        if current is None or current.get("id") != lock_id:
            return False
        path.unlink()
        return True


def force_unlock(path: Path, lock_id: str) -> dict[str, Any]:
    """Release the lock held under ``lock_id`` whoever holds it; returns the holder's record."""
    current = read(path)
    if current is None:
        raise errors.LockError("state is not locked", where=str(path))
    if not release(path, lock_id):
        raise errors.LockError(
            f"lock ID {lock_id} does not hold the lock; it is held by {describe(current)}",
            where=str(path),
        )
    return current
