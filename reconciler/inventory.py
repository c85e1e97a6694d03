"""What ``retrain models`` shows and what ``models gc`` may remove. Pure.

From the stored models, what the manifest wants, what the live services serve (the
manifest's and the orphans') and the history, it says per model which endpoints serve
it now, which served it, and whether anything references it. A model is referenced
while a listed service serves it or the manifest wants it; garbage collection removes
unreferenced ones beyond the ``keep`` newest (the likeliest rollback targets).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from reconciler import model

PRUNED = "prune"  # the history action of an orphan disowned while it served (apply --prune)


@dataclass(frozen=True, slots=True)
class Stored:
    """One stored model and who refers to it (endpoint names, sorted)."""

    record: model.ModelRecord
    serving: tuple[str, ...]
    """Endpoints whose live service serves it now (orphans included)."""
    wanted: tuple[str, ...]
    """Endpoints the manifest wants serving it."""
    served: tuple[str, ...]
    """Endpoints the history says served it at some time."""
    disowned: tuple[str, ...] = ()
    """Endpoints pruned while serving it (their last history entry): the service still
    serves it, but carries no tag retrain could list it by, so only the history knows."""

    @property
    def referenced(self) -> bool:
        return bool(self.serving or self.wanted or self.disowned)


def inventory(
    stored: Iterable[model.ModelRecord],
    desired: Iterable[model.Desired],
    observed: model.Observed,
    history: Iterable[model.HistoryEntry],
) -> tuple[Stored, ...]:
    """Every stored model, newest first, with its references."""
    serving: dict[str, set[str]] = {}
    for name, svc in observed.services.items():
        if svc is not None and svc.fingerprint:
            serving.setdefault(svc.fingerprint, set()).add(name)
    for orphan in observed.managed or ():
        if orphan.fingerprint:
            serving.setdefault(orphan.fingerprint, set()).add(orphan.endpoint)
    wanted: dict[str, set[str]] = {}
    for wish in desired:
        wanted.setdefault(wish.fingerprint, set()).add(wish.name)
    served: dict[str, set[str]] = {}
    last: dict[str, model.HistoryEntry] = {}
    for entry in history:
        last[entry.endpoint] = entry
        if entry.model_uri:  # a prune entry records that it no longer serves
            served.setdefault(entry.fingerprint, set()).add(entry.endpoint)
    disowned: dict[str, set[str]] = {}
    for name, entry in last.items():
        if entry.action == PRUNED:
            disowned.setdefault(entry.fingerprint, set()).add(name)
    rows = [
        Stored(
            r,
            tuple(sorted(serving.get(r.fingerprint, ()))),
            tuple(sorted(wanted.get(r.fingerprint, ()))),
            tuple(sorted(served.get(r.fingerprint, ()))),
            tuple(sorted(disowned.get(r.fingerprint, ()))),
        )
        for r in stored
    ]
    return tuple(
        sorted(rows, key=lambda s: (s.record.trained_at, s.record.fingerprint), reverse=True)
    )


def garbage(models: Sequence[Stored], keep: int) -> tuple[Stored, ...]:
    """The unreferenced models beyond the ``keep`` newest unreferenced ones (``models``
    newest first, as ``inventory`` gives them)."""
    unreferenced = [m for m in models if not m.referenced]
    return tuple(unreferenced[keep:])


def metric_line(metrics: Mapping[str, float], names: Sequence[str]) -> str:
    """The named metrics (all when none are named), for a table cell."""
    shown = names or sorted(metrics)
    return ", ".join(f"{n} {metrics[n]:.4g}" for n in shown if n in metrics) or "-"
