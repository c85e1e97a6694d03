"""The ``--json`` outputs of ``apply``, ``status`` and ``history``, for programs.

Each is one JSON document with a ``format_version`` and a ``kind``, specified by a
schema in ``schemas/`` (``apply.schema.json``, ``status.schema.json``,
``history.schema.json``), so a CI step can rely on it the way it relies on the plan's
JSON. Like the text renderings, this formats only: values arrive decided, and the CLI
masks secrets on the way out. A field that has no value is ``null``, never a
placeholder such as ``-``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reconciler import apply, model, status

FORMAT_VERSION = "1"


def dumps(body: Mapping[str, Any]) -> str:
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def apply_report(report: apply.Report | None, *, outcome: str) -> dict[str, Any]:
    """What ``apply --json`` prints. ``outcome``: ``applied``, ``failed``,
    ``no-changes`` or ``cancelled`` (the last two carry no results)."""
    results = report.results if report else ()
    return {
        "format_version": FORMAT_VERSION,
        "kind": "apply",
        "outcome": outcome,
        "ok": report.ok if report else True,
        "totals": {str(s): sum(r.status is s for r in results) for s in apply.Status},
        "results": [_result(r) for r in results],
        "trained": list(report.trained) if report else [],
        "training_failures": dict(report.training_failures) if report else {},
        "seconds": round(report.seconds, 3) if report else 0.0,  # ms: what a log needs
    }


def _result(result: apply.Result) -> dict[str, Any]:
    return {
        "endpoint": result.endpoint,
        "action": str(result.action),
        "status": str(result.status),
        "message": result.message,
        "fingerprint": result.fingerprint,
        "metrics": None if result.metrics is None else dict(result.metrics),
    }


def status_rows(rows: Sequence[status.Row], metric_names: Iterable[str]) -> dict[str, Any]:
    """What ``status --json`` prints: one object per endpoint, the gates' metric names."""
    return {
        "format_version": FORMAT_VERSION,
        "kind": "status",
        "metrics": list(metric_names),
        "endpoints": [
            {
                "endpoint": r.endpoint,
                "web_service": r.web_service,
                "state": str(r.state),
                "version": _known(r.version),
                "fingerprint": r.fingerprint or None,
                "metrics": dict(r.metrics),
                "deployed": _known(r.deployed),
            }
            for r in rows
        ],
    }


def _known(value: str) -> str | None:
    return None if value == status.NONE else value


def history_entries(entries: Iterable[model.HistoryEntry]) -> dict[str, Any]:
    """What ``history --json`` prints: every entry, oldest first, every field."""
    return {
        "format_version": FORMAT_VERSION,
        "kind": "history",
        "entries": [
            {
                "time": e.time,
                "endpoint": e.endpoint,
                "web_service": e.web_service,
                "action": e.action,
                "fingerprint": e.fingerprint,
                "version": e.version,
                "model_uri": e.model_uri,
                "previous_uri": e.previous_uri,
                "previous_fingerprint": e.previous_fingerprint,
                "metrics": dict(e.metrics),
                "actor": e.actor,
                "manifest_digest": e.manifest_digest,
            }
            for e in entries
        ],
    }
