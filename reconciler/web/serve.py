"""``retrain serve``: every web service of the manifest's backend answers scoring requests.

Routes (``routes``; the server factory is ``app.create``):

- ``POST /services/NAME/score``: rows checked against the input schema of the service's
  definition (400 naming the field), scored by the model the service points at *now*
  (the backend's ``Scoring.current`` reads a changed definition and loads its model
  before answering: the request after an apply is scored by the new model, with no
  restart and no failed request); 503 with the reason when there is no model to score
  with; 401 without the service's API key, when it has one.
- ``GET /services/NAME/swagger.json``: the call described (``swagger``).
- ``GET /services``: every service, the model it serves or why it cannot.

A request is read (bounded) on the event loop, then answered in one hop to a worker
thread: the model's ``predict`` is CPU work, and loading a changed model must not stall
requests to the other services.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from reconciler import errors, fingerprint
from reconciler.engine import Session
from reconciler.providers import base
from reconciler.web import app, rows, swagger

MAX_BODY = 8 << 20  # bytes of one request body: 10,000 rows of ~100 columns fit
SHOWN = 300  # characters of a failed predict's message kept in its 500 response
Log = Callable[[str], None]


class _TooLarge(Exception):
    pass


class Handlers:
    """The scoring routes over one ``base.Scoring``."""

    def __init__(self, scoring: base.Scoring, *, log: Log, scrub: Callable[[str], str]) -> None:
        self.scoring = scoring
        self.log = log
        self.scrub = scrub

    async def score(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            body = await _body(request)
        except _TooLarge:
            return app.error(413, "RequestTooLarge", f"the body is over {MAX_BODY} bytes")
        auth = request.headers.get("authorization", "")
        return await run_in_threadpool(self._score, name, auth, body)

    def _score(self, name: str, auth: str, body: bytes) -> Response:
        view = self.scoring.current(name)
        if view is None:
            return _missing(name)
        refused = _refused(view, auth)
        if refused is not None:
            return refused
        if not view.input_schema:
            return app.error(503, "ServiceUnavailable", view.unavailable or "no input schema")
        try:
            inputs = rows.table(view.input_schema, "input")
            outputs = rows.table(view.output_schema, "output") if view.output_schema else None
            checked = rows.parse(_json(body), inputs, view.parameters)
        except rows.Unservable as e:
            return app.error(503, "ServiceUnavailable", f"web service {name!r}: {e}")
        except rows.BadRequest as e:
            return app.error(400, "BadArgument", str(e))
        if view.score is None:
            return app.error(503, "ServiceUnavailable", view.unavailable)
        return self._predict(view, view.score, inputs, outputs, checked)

    def _predict(
        self,
        view: base.Scorable,
        score: Callable[[base.Rows], Sequence[Any]],
        inputs: rows.Table,
        outputs: rows.Table | None,
        checked: base.Rows,
    ) -> Response:
        try:
            answer = rows.results(outputs, inputs, checked, score(checked) if checked else [])
        except Exception as e:  # the trainer's predict may raise anything: contain it here
            first = (str(e).splitlines() or [""])[0][:SHOWN]
            why = self.scrub(f"predict failed: {type(e).__name__}: {first}")
            self.log(f"Error: {view.web_service}: {why}")
            return app.error(500, "ScoringFailed", why)
        headers = {"x-retrain-model": fingerprint.short(view.fingerprint)}
        if view.version:
            headers["x-retrain-version"] = view.version
        return JSONResponse(answer, headers=headers)

    async def swagger(self, request: Request) -> Response:
        name = request.path_params["name"]
        auth = request.headers.get("authorization", "")
        return await run_in_threadpool(self._swagger, name, auth)

    def _swagger(self, name: str, auth: str) -> Response:
        view = self.scoring.current(name)
        if view is None:
            return _missing(name)
        refused = _refused(view, auth)
        if refused is not None:
            return refused
        try:
            inputs = rows.table(view.input_schema, "input")
            outputs = rows.table(view.output_schema, "output") if view.output_schema else None
        except rows.Unservable as e:
            return app.error(503, "ServiceUnavailable", view.unavailable or str(e))
        doc = swagger.document(
            name=name, title=view.title, inputs=inputs, outputs=outputs, keyed=bool(view.api_key)
        )
        return JSONResponse(doc)

    async def index(self, _request: Request) -> Response:
        return JSONResponse({"services": await run_in_threadpool(self._index)})

    def _index(self) -> list[dict[str, Any]]:
        found = []
        for name in self.scoring.names():
            view = self.scoring.current(name)
            if view is not None:
                found.append(_listed(view))
        return found


def routes(handlers: Handlers) -> list[BaseRoute]:
    """The scoring routes, for ``app.create``."""
    return [
        Route("/services", handlers.index, methods=["GET"]),
        Route("/services/{name}/score", handlers.score, methods=["POST"]),
        Route("/services/{name}/swagger.json", handlers.swagger, methods=["GET"]),
    ]


def scoring_for(session: Session, log: Log) -> base.Scoring:
    """The session's backend's scoring; a backend whose services score elsewhere is an
    error naming it."""
    found = base.scoring_of(session.provider, session.endpoints, log=log, scrub=session.redactor)
    if found is None:
        kind = session.manifest.backend.kind
        raise errors.ReconcilerError(
            f"the {kind} backend's web services score where they are deployed; "
            "retrain serve scores web services kept on this machine"
        )
    return found


def run(
    session: Session,
    *,
    host: str,
    port: int,
    log: Log,
    access_log: bool = True,
    extra: Sequence[BaseRoute] = (),
) -> None:
    """Serve the session's web services, and the ``extra`` routes after them (the status
    page at ``/``), until SIGINT or SIGTERM."""
    import uvicorn

    _one_native_thread_per_request()
    scoring = scoring_for(session, log)
    handlers = Handlers(scoring, log=log, scrub=session.redactor)
    names = scoring.names()
    shown = f"http://{host}:{port}/services/NAME/score"
    log(f"Serving {len(names)} web services at {shown}: {', '.join(names) or 'none yet'}")
    _route_logs(log, access_log=access_log)
    config = uvicorn.Config(
        app.create([*routes(handlers), *extra]),
        host=host,
        port=port,
        log_config=None,  # uvicorn's lines go through ``log``, so --log-format applies
        access_log=access_log,
        server_header=False,
        lifespan="off",
    )
    uvicorn.Server(config).run()


# Native thread pools (OpenMP, BLAS) as the models' libraries read them when first loaded.
NATIVE_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _one_native_thread_per_request() -> None:
    """The server runs requests in parallel on worker threads; a native pool per request
    on top would oversubscribe the cores (a one-row predict of the bike model took 163 ms
    with OpenMP's default pool and 2.4 ms with one thread, on a busy 2-core machine). Set
    before any model's library is imported; a value the user set is kept."""
    for name in NATIVE_THREADS:
        os.environ.setdefault(name, "1")


class _Lines(logging.Handler):
    """uvicorn's log records as lines of ``log``."""

    def __init__(self, log: Log) -> None:
        super().__init__()
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        prefix = "Error: " if record.levelno >= logging.ERROR else ""
        self._log(f"{prefix}{record.getMessage()}")


def _route_logs(log: Log, *, access_log: bool) -> None:
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = [_Lines(log)]
        logger.setLevel(logging.INFO if access_log or name != "uvicorn.access" else logging.WARN)
        logger.propagate = False


async def _body(request: Request) -> bytes:
    """The request body, refused once it passes ``MAX_BODY`` (before reading it all)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        first = str(e).splitlines()[0][:SHOWN] if str(e) else type(e).__name__
        raise rows.BadRequest("", f"the body is not JSON: {first}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _refused(view: base.Scorable, auth: str) -> Response | None:
    """401 unless the request carries the service's key (compared in constant time);
    neither the given nor the expected key is ever part of an answer or a log line."""
    if view.api_key is None:
        return None
    scheme, _, given = auth.partition(" ")
    expected = view.api_key.reveal().encode()
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected):
        return None
    why = "a valid API key is required: send Authorization: Bearer KEY"
    return app.error(401, "Unauthorized", why, **{"www-authenticate": 'Bearer realm="retrain"'})


def _missing(name: str) -> Response:
    return app.error(404, "NotFound", f"no web service named {name[:80]!r}")


def _listed(view: base.Scorable) -> dict[str, Any]:
    """What ``GET /services`` says of a service; of one with a key, only that it has one."""
    if view.api_key is not None:
        return {"name": view.web_service, "keyed": True}
    return {
        "name": view.web_service,
        "endpoint": view.endpoint or None,
        "fingerprint": view.fingerprint,
        "version": view.version,
        "scoring": view.score is not None,
        "unavailable": view.unavailable or None,
        "keyed": view.api_key is not None,
    }
