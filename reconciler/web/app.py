"""The one server factory: routes in, an ASGI application out.

``retrain serve`` hands it the scoring routes; other parts (a status page at ``/``) add
theirs to the same list, so one process, one port and one error shape serve them all.
Errors are JSON (``{"error": {"code", "message"}}``, the shape scoring clients already
parse), never an HTML page or a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

CODES = {404: "NotFound", 405: "MethodNotAllowed", 500: "InternalError"}


def create(routes: Sequence[BaseRoute]) -> Starlette:
    """The application serving ``routes`` (in order: the first match wins)."""
    return Starlette(
        routes=list(routes),
        exception_handlers={HTTPException: _http_error, Exception: _unexpected},
    )


def error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    """The JSON error every route answers with."""
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers or None)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = CODES.get(exc.status_code, "Error")
    return error(exc.status_code, code, str(exc.detail), **dict(exc.headers or {}))


async def _unexpected(_request: Request, _exc: Exception) -> Response:
    # The traceback goes to the server's log (uvicorn's), never to the client.
    return error(500, CODES[500], "the server failed to answer this request")
