"""History and the apply lock in blob storage: what both Azure backends keep there.

The history is JSON lines in one append blob (``HISTORY_PATH``); the apply lock is a
lease on a blob (see ``lease``). A provider mixes this in and sets ``state`` to its
``BlobStore``; every method of the ``Provider`` protocol about history and locking
is then written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

from reconciler.providers import base
from reconciler.providers.azurecommon import blobs, lease

HISTORY_PATH = "history.jsonl"


class BlobLedger:
    """``record``, ``history``, ``lock`` and ``force_unlock`` over ``self.state``."""

    state: blobs.BlobStore

    def record(self, entry: base.HistoryEntry) -> None:
        self.state.append_line(HISTORY_PATH, base.history_line(entry))

    def history(self, endpoint: str | None = None) -> Iterator[base.HistoryEntry]:
        text = self.state.read_text(HISTORY_PATH) or ""
        return base.parse_history(text, where=self.state.relative(HISTORY_PATH), endpoint=endpoint)

    def lock(
        self, holder: str, timeout: float, on_wait: Callable[[str], None] = lambda _m: None
    ) -> AbstractContextManager[None]:
        return lease.hold(self.state, holder=holder, timeout=timeout, on_wait=on_wait)

    def force_unlock(self, lock_id: str) -> str:
        return lease.force_unlock(self.state, lock_id)
