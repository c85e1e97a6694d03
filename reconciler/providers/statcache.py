"""Values derived from a file, kept while the file is unchanged: git's index, DVC's state.

Hashing a 1 GB input on every plan cost 0.74 s of a 0.93 s plan. A value computed from a
file's bytes (its digest) is kept in a cache file, under the file's path, with the file's
key: (size, mtime_ns, inode, ctime_ns) from ``stat``. It is used again only when the key
matches exactly: an edit changes the size or the times, a replacement by rename the inode,
and the change time (ctime) is set by the kernel on every change and cannot be set back by
a user, so an edit that restores the size and the modification time still shows.

One race remains, the one git calls "racily clean": a file changed again within one tick
of the file system's clock of when it was read can keep every field of its key. So each
entry remembers when its file was read (``checked``, the wall clock just before), and an
entry whose file was modified or changed less than ``TICK_NS`` before that is not trusted:
the file is read again (and, once it has been quiet for a tick, its entry is kept).

A cache is never an error: one missing, unreadable, corrupt, of another format or with
entries of the wrong shape is ignored (entry by entry) and rebuilt; one that cannot be
written (a read-only checkout, a state directory not made yet) is simply not written. It
is written atomically (temp file + rename) when the process is done with it, only if
something was added.

``RowCache`` keeps the same entries as rows (``[size, mtime_ns, inode, ctime_ns, checked,
value]``, format 2) for caches of 10,000 files read in one plan: an entry as an object
spelled its four names 10,000 times, and checking every entry when loading cost as much as
parsing them; a row is checked when it is asked for, at a list comparison's cost.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

FORMAT = 1  # of the cache file; another is ignored (and replaced)
TICK_NS = 2 * 10**9  # the coarsest timestamp granularity in use (FAT: 2 s; ext4, APFS: 1 ns)
MAX_BYTES = 64 << 20  # a larger cache file is ignored: ~200,000 entries of ~300 bytes
Key = tuple[int, int, int, int]  # (size, mtime_ns, inode, ctime_ns)
KEY_FIELDS = 4


def key_of(info: os.stat_result) -> Key:
    """A file's key from its ``stat``."""
    return (info.st_size, info.st_mtime_ns, info.st_ino, info.st_ctime_ns)


class StatCache:
    """The cache file at ``path`` (loaded on first use; saved by ``save``, else when the
    object goes or the process ends)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._state = self._new_state()
        weakref.finalize(self, _save, path, self._state)

    def _new_state(self) -> _State:
        return _State(FORMAT, _read)

    def get(self, name: str, key: Key) -> Any:
        """The value kept for ``name`` if its file still has ``key`` and was quiet for a
        tick before it was read; else None."""
        entry = self._state.entries(self.path).get(name)
        if entry is None or tuple(entry["key"]) != key:
            return None
        if _racy(key, entry["checked"]):
            return None
        return entry["value"]

    def put(self, name: str, key: Key, checked_ns: int, value: Any) -> None:
        """Keep ``value`` for ``name``, computed from its file with ``key``, read from
        ``checked_ns`` on (the wall clock just before the read began)."""
        with self._state.lock:
            self._state.entries(self.path)[name] = {
                "key": list(key),
                "checked": checked_ns,
                "value": value,
            }
            self._state.added = True

    def save(self) -> None:
        """Write the cache now, if anything was added since it was last written."""
        _save(self.path, self._state)


class RowCache(StatCache):
    """A ``StatCache`` whose entries are rows (format 2, see the module's docstring); the
    same keys, the same racily-clean rule, the same answers."""

    def _new_state(self) -> _State:
        return _State(ROWS_FORMAT, _read_rows)

    def get(self, name: str, key: Key) -> Any:
        row = self._state.entries(self.path).get(name)
        # A row of another shape, or whose numbers are not the key's, is not this file's:
        # comparing the list with the key checks both at once (``checked`` apart).
        if type(row) is not list or len(row) != ROW_FIELDS or row[:KEY_FIELDS] != [*key]:
            return None
        checked = row[KEY_FIELDS]
        if type(checked) is not int or _racy(key, checked):
            return None
        return row[-1]

    def put(self, name: str, key: Key, checked_ns: int, value: Any) -> None:
        with self._state.lock:
            self._state.entries(self.path)[name] = [*key, checked_ns, value]
            self._state.added = True


ROWS_FORMAT = 2  # of a ``RowCache`` file; another (a ``StatCache``'s too) is ignored
ROW_FIELDS = KEY_FIELDS + 2  # the key, when its file was read, the value


def _racy(key: Key, checked_ns: int) -> bool:
    """Whether the file of ``key`` was modified or changed too close to when it was read
    (``checked_ns``) for a value read from it to be trusted."""
    return max(key[1], key[3]) >= checked_ns - TICK_NS


class _State:
    """What a ``StatCache`` holds, apart from it, so saving when it goes needs no
    reference to it."""

    def __init__(self, form: int, read: Callable[[Path], dict[str, Any]]) -> None:
        self.format, self.read = form, read
        self.loaded: dict[str, Any] | None = None
        self.added = False
        self.lock = threading.Lock()  # digests may be computed in worker threads

    def entries(self, path: Path) -> dict[str, Any]:
        if self.loaded is None:
            self.loaded = self.read(path)
        return self.loaded


def now_ns() -> int:
    """The wall clock, as file times are kept."""
    return time.time_ns()


def _read(path: Path) -> dict[str, Any]:
    """The well-formed entries of the cache file at ``path`` (none when it is not one)."""
    entries = _entries(path, FORMAT)
    return {name: entry for name, entry in entries.items() if _well_formed(entry)}


def _read_rows(path: Path) -> dict[str, Any]:
    """The rows of the ``RowCache`` file at ``path``, unchecked (``RowCache.get`` checks
    the one it is asked for)."""
    return _entries(path, ROWS_FORMAT)


def _entries(path: Path, form: int) -> dict[str, Any]:
    """The ``entries`` object of the cache file at ``path`` when it is one of format
    ``form``, else none."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
        loaded = json.loads(data) if len(data) <= MAX_BYTES else None
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(loaded, dict) or loaded.get("format") != form:
        return {}
    entries = loaded.get("entries")
    return entries if isinstance(entries, dict) else {}


def _well_formed(entry: Any) -> bool:
    if not isinstance(entry, dict) or set(entry) != {"key", "checked", "value"}:
        return False
    key, checked = entry["key"], entry["checked"]
    ints = [*key, checked] if isinstance(key, list) else []
    # The key's four numbers and when it was read; ``type() is``: a bool is not one.
    return len(ints) == KEY_FIELDS + 1 and all(type(i) is int for i in ints)


def _save(path: Path, state: _State) -> None:
    """Write ``state``'s entries if any was added, atomically; a cache that cannot be
    written is left as it is."""
    with state.lock:
        if not state.added or state.loaded is None:
            return
        document = {"format": state.format, "entries": dict(state.loaded)}
        state.added = False
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        path.parent.mkdir(exist_ok=True)  # not its parents: a cache never makes a state dir
        with open(tmp, "x", encoding="utf-8") as f:
            json.dump(document, f, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
