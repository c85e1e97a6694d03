"""Where the status page gets its snapshot: a protocol, and the engine behind it.

``page_routes`` takes any ``Source``, so ``retrain serve``, ``retrain watch`` and
``retrain page`` mount the same page over whatever they hold, and tests can hand
it a snapshot with hostile names without a backend. ``ManifestSource`` opens a
fresh session per snapshot, so the page shows the manifest as it is on disk now
(an edit, a new endpoint) and the live services as they are: one read per
endpoint and the orphan listing, as ``retrain status``, plus the store's listing
and the history, once each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Protocol

from reconciler import engine, redact
from reconciler.web import view


class Source(Protocol):
    """Gives the page what to show; ``snapshot`` may raise ``errors.ReconcilerError``
    (shown as such). ``scrub`` masks the secrets it knows in any text the page sends."""

    def snapshot(self) -> view.Snapshot: ...

    def scrub(self, text: str) -> str: ...


class ManifestSource:
    """The status of a manifest's endpoints through the engine, for any backend."""

    def __init__(self, open_session: Callable[[], engine.Session]) -> None:
        self._open = open_session
        self._redactor = redact.Redactor()

    def scrub(self, text: str) -> str:
        """Masks the secret values of the manifest as last loaded."""
        return self._redactor(text)

    def snapshot(self) -> view.Snapshot:
        session = self._open()
        self._redactor = session.redactor
        rows, _metrics = engine.read_status(session)
        return view.snapshot(
            rows,
            session.endpoints,
            list(session.provider.history()),
            list(session.provider.stored()),
            title=session.manifest.path,
            backend=session.manifest.backend.kind,
            taken=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
