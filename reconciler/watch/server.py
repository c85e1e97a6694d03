"""``/healthz``, ``/readyz`` and ``/metrics``, served by uvicorn in a thread beside the loop.

Starlette + uvicorn (the lead's choice, shared with ``retrain serve``): a small,
typed ASGI toolkit and the reference ASGI server. The socket is bound in the calling
thread before the loop starts, so a port in use is a one-line error at start-up, and
``--listen 127.0.0.1:0`` takes a free port (the log says which). ``routes`` mounts more
pages on the same app (the status page at ``/``).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from reconciler import errors

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus' text format
STOP_SECONDS = 5  # how long stopping waits for the server thread


@dataclass
class Health:
    """``ready`` once a reconcile ran to its end; ``why`` says what is wrong when not."""

    ready: bool = False
    why: str = "no reconcile has finished yet"


def app(
    health: Health, metrics: Callable[[], bytes], routes: Sequence[BaseRoute] = ()
) -> Starlette:
    """The controller's app; ``routes`` are mounted after its own."""

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(_request: Request) -> Response:
        if health.ready:
            return PlainTextResponse("ready\n")
        return PlainTextResponse(f"not ready: {health.why}\n", status_code=503)

    async def metrics_page(_request: Request) -> Response:
        return Response(metrics(), media_type=METRICS_TYPE)

    own = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_page),
    ]
    return Starlette(routes=[*own, *routes])


def bind(listen: str) -> socket.socket:
    """A listening socket for ``HOST:PORT``; a refused address is a ``ReconcilerError``."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise errors.ReconcilerError(f"--listen {listen!r} is not HOST:PORT")
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), int(port)))
    except (OSError, OverflowError) as e:
        sock.close()
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise errors.ReconcilerError(f"cannot listen on {listen}: {reason}") from e
    sock.listen()
    return sock


class Server:
    """uvicorn on ``sock`` in a daemon thread; ``stop`` ends it."""

    def __init__(self, application: Starlette, sock: socket.socket) -> None:
        config = uvicorn.Config(
            application, log_config=None, access_log=False, lifespan="off", log_level="warning"
        )
        self._server = uvicorn.Server(config)
        self._sock = sock
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="watch-http"
        )

    @property
    def address(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(STOP_SECONDS)
        self._sock.close()
