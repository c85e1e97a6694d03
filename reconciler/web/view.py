"""What the status page shows, as values: one view per endpoint. Pure.

The rows are ``retrain status``'s (``status.Row``: state, version, fingerprint,
metrics, when deployed), so the page and the command never disagree; this module
adds what a page needs beside them: the endpoint's gate metric and its value, the
last change the history records, whether it drifted, and its trend
(``web.trend``). The renderers (``web.html``, ``web.svg``) only lay views out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from reconciler import ledger, model, status
from reconciler.web import trend as trending


@dataclass(frozen=True, slots=True)
class EndpointView:
    """One endpoint on the page. ``metric`` is its gate's (None without a gate, and for
    an orphan, which the manifest no longer gates); ``last_action`` the action of its
    newest history entry ("" when none)."""

    row: status.Row
    metric: str | None
    last_action: str
    trend: trending.Trend

    @property
    def value(self) -> float | None:
        """The serving model's gate metric (None when unknown)."""
        return self.row.metrics.get(self.metric) if self.metric else None

    @property
    def drifted(self) -> bool:
        return self.row.state is status.State.DRIFTED


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The whole page at one moment: ``title`` names the manifest, ``backend`` its kind,
    ``taken`` when it was read (ISO 8601, UTC)."""

    title: str
    backend: str
    taken: str
    endpoints: tuple[EndpointView, ...]


def snapshot(
    rows: Sequence[status.Row],
    endpoints: Iterable[model.Endpoint],
    history: Sequence[model.HistoryEntry],
    stored: Sequence[model.ModelRecord],
    *,
    title: str,
    backend: str,
    taken: str,
) -> Snapshot:
    """One view per status row, in the rows' order (the manifest's, then orphans)."""
    gates: Mapping[str, model.Gate | None] = {ep.name: ep.gate for ep in endpoints}
    last = ledger.last_entries(history)
    views = []
    for row in rows:
        gate = gates.get(row.endpoint)
        entry = last.get(row.endpoint)
        views.append(
            EndpointView(
                row=row,
                metric=gate.metric if gate else None,
                last_action=entry.action if entry else "",
                trend=trending.trend(row.endpoint, gate, history, stored),
            )
        )
    return Snapshot(title=title, backend=backend, taken=taken, endpoints=tuple(views))
