"""Digests of file content, for the backends whose trainers and inputs are files.

A fingerprint is built from content digests (``reconciler.fingerprint.combine``,
pure); reading the bytes is I/O, so it lives here, with the providers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

CHUNK = 1 << 20  # read files 1 MiB at a time: flat memory for any size


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def files_digest(paths: Iterable[str | Path]) -> str:
    """One digest over several files' contents, in the order given (names excluded)."""
    h = hashlib.sha256()
    for path in paths:
        h.update(file_digest(path).encode())
    return h.hexdigest()
