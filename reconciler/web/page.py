"""The status page's routes, to mount in any Starlette app (``serve``, ``watch``, ``page``).

``page_routes(source)`` gives ``/`` (the page), ``/api/status`` (the same facts as
JSON, for scripts and for the next version of the page) and the two static files
the page links to. Each request takes a fresh snapshot from ``source``, so what
the page shows is what ``retrain status`` would print now. Endpoints are plain
functions, which Starlette runs in its thread pool: a snapshot observes the
backend, and must not hold up the event loop that also answers scoring requests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette import requests, responses, routing

from reconciler import errors, status
from reconciler.web import html, source, view
from reconciler.web import trend as trending

STATIC = Path(__file__).resolve().parent / "static"
# The page runs no script and takes styles only from the stylesheet below; nothing may
# frame it or be loaded from elsewhere (the page works offline, with no CDN).
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",  # always the state of now
}
FILES = {"page.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"}
FORMAT_VERSION = "1"


def page_routes(src: source.Source) -> list[routing.BaseRoute]:
    """The page at ``/``, its JSON at ``/api/status`` and its files under ``/static/``."""

    def index(_request: requests.Request) -> responses.Response:
        try:
            body, code = html.page(src.snapshot()), 200
        except errors.ReconcilerError as e:
            body, code = html.error_page(str(e)), 503  # 503: try again once it is fixed
        return responses.HTMLResponse(src.scrub(body), status_code=code, headers=HEADERS)

    def api_status(_request: requests.Request) -> responses.Response:
        try:
            doc, code = status_document(src.snapshot()), 200
        except errors.ReconcilerError as e:
            doc, code = {"format_version": FORMAT_VERSION, "error": str(e)}, 503
        body = src.scrub(json.dumps(doc, ensure_ascii=False))
        return responses.Response(body, code, HEADERS, media_type="application/json")

    return [
        routing.Route("/", index, methods=["GET"], name="status-page"),
        routing.Route("/api/status", api_status, methods=["GET"], name="status-api"),
        *(_static(name, kind) for name, kind in FILES.items()),
    ]


def _static(name: str, kind: str) -> routing.Route:
    """One of the page's own files, read once (they ship with the package)."""
    content = (STATIC / name).read_bytes()

    def serve(_request: requests.Request) -> responses.Response:
        return responses.Response(
            content, media_type=kind, headers={"Cache-Control": "max-age=300"}
        )

    return routing.Route(f"/static/{name}", serve, methods=["GET"], name=f"status-{name}")


def status_document(snap: view.Snapshot) -> dict[str, Any]:
    """What ``/api/status`` answers: every row and every trend point."""
    return {
        "format_version": FORMAT_VERSION,
        "kind": "status-page",
        "manifest": snap.title,
        "backend": snap.backend,
        "taken": snap.taken,
        "endpoints": [_endpoint(ev) for ev in snap.endpoints],
    }


def _endpoint(ev: view.EndpointView) -> dict[str, Any]:
    r = ev.row
    return {
        "endpoint": r.endpoint,
        "web_service": r.web_service,
        "state": str(r.state),
        "version": r.version,
        "fingerprint": r.fingerprint or None,
        "metric": ev.metric,
        "value": ev.value,
        "last_change": {
            "time": None if r.deployed == status.NONE else r.deployed,
            "action": ev.last_action or None,
        },
        "drifted": ev.drifted,
        "trend": [_point(p) for p in ev.trend.points],
    }


def _point(p: trending.Point) -> dict[str, Any]:
    return {
        "time": p.time,
        "kind": str(p.kind),
        "fingerprint": p.fingerprint,
        "version": p.version,
        "value": p.value,
        "passed": p.passed,
        "note": p.note,
    }
