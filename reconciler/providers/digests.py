"""Digests of file content, for the backends whose trainers and inputs are files.

A fingerprint is built from content digests (``reconciler.fingerprint.combine``,
pure); reading the bytes is I/O, so it lives here, with the providers. A backend that
hashes files keeps their digests in a ``statcache.StatCache`` (the local backend: in
``<stateDir>/cache/digests.json``), so an unchanged input is not read again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from reconciler.providers import statcache

CHUNK = 1 << 20  # read files 1 MiB at a time: flat memory for any size


def file_digest(path: str | Path, cache: statcache.StatCache | None = None) -> str:
    """sha256 of a file's bytes, streamed; with ``cache``, kept there and taken from
    there while the file's key is unchanged (see ``statcache``)."""
    if cache is None:
        return _sha256(path)
    name = os.path.abspath(path)
    key = statcache.key_of(os.stat(path))  # before reading: a change while reading shows
    found = cache.get(name, key)
    if isinstance(found, str):
        return found
    checked = statcache.now_ns()
    digest = _sha256(path)
    cache.put(name, key, checked, digest)
    return digest


def _sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def files_digest(paths: Iterable[str | Path], cache: statcache.StatCache | None = None) -> str:
    """One digest over several files' contents, in the order given (names excluded)."""
    h = hashlib.sha256()
    for path in paths:
        h.update(file_digest(path, cache).encode())
    return h.hexdigest()
