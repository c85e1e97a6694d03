"""``retrain page``: the status page alone, for a manifest, until stopped.

``retrain serve`` and ``retrain watch`` mount the same routes (``web.page``); this
command is for a team that only wants to look. Starlette and uvicorn are imported
inside the command, so ``retrain --help`` and every other command start as fast
as before. The socket is bound here, before serving, so ``--port 0`` (any free
port: tests) prints the port really taken, and a port in use is one error line.
A stop asked for (Ctrl-C, SIGTERM from systemd or Kubernetes) ends the server
after the requests in flight and exits 0: it is how a server's job ends.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from reconciler import engine, errors
from reconciler.cli.options import Env, manifest_option, session_for, settings_for

BACKLOG = 2048  # pending connections: uvicorn's own default
DEFAULT_PORT = 8642  # unassigned by IANA; retrain serve and watch take their own flags


@click.command(name="page")
@manifest_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on (0: any free port, printed).",
)
@click.pass_obj
def page_cmd(env: Env, manifest: Path | None, state_dir: Path | None, host: str, port: int) -> None:
    """Serve the status page: per endpoint its state, serving model, gate metric, last
    change and drift, and a chart of its gate metric over its history (champion vs each
    challenger, failed gates marked). Read-only: it observes, never applies."""
    from starlette import applications

    from reconciler.web import page, source

    config = settings_for(env, manifest=manifest, state_dir=state_dir)
    session_for(env, config)  # a bad manifest is an error now, not a page later
    src = source.ManifestSource(lambda: engine.open_session(config, env=env.vars))
    app = applications.Starlette(routes=page.page_routes(src))
    sock = _listen(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    env.err(f"Serving the status page at http://{shown}:{bound}/ (Ctrl-C to stop)")
    _serve(app, sock)
    env.err("Stopped.")


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)  # now: a client connecting before uvicorn starts waits, not refused
    except OSError as e:
        sock.close()
        raise errors.ReconcilerError(
            f"cannot listen: {e.strerror or e}", where=f"{host}:{port}"
        ) from None
    return sock


def _serve(app: Any, sock: socket.socket) -> None:
    """Run uvicorn on ``sock`` until a stop signal; a stop is success. uvicorn raises a
    stop signal again once it has shut down (for a program embedding it), which the CLI
    would turn into exit 130/143; this server restores the handlers instead."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield  # signals reach the main thread only (tests run servers in threads)
                return
            stops = (signal.SIGINT, signal.SIGTERM)
            previous = {s: signal.signal(s, self.handle_exit) for s in stops}
            try:
                yield
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    Server(config).run(sockets=[sock])
