"""The one-shot handover that gives a Ray job its secrets and inputs.

A Ray job's submission (entrypoint, ``runtime_env`` with its ``env_vars``, metadata) is
kept by the cluster and shown to anyone with the dashboard, and a ``working_dir`` is an
uploaded zip: none of them may hold a secret. So a job's entrypoint names only this
channel and a random ticket; the job, once it starts, fetches its instructions (secret
parameters and the trainer's environment secrets included) and its input files here,
then says it is ready, and the ticket is void. The values exist only in this process's
memory, the HTTP response, and the job's own memory and environment.

Why a short-lived HTTP endpoint and not a Ray object put by a driver: an object needs a
Ray Client connection (another port, and a client whose Ray *and Python* versions must
equal the cluster's) and dies with its owner just the same; the Jobs API already needs
only HTTP. The channel's cost: the nodes must reach this machine (``callbackHost``).

A ticket is single use: its first ``GET /job`` takes the instructions and a second one
is refused (410), so a person who copied the entrypoint from the dashboard gets nothing
once the job has started, and if they were first, the job fails loudly instead of
training without its secrets. A ticket also dies when its job ends or retrain exits.
The traffic is plain HTTP, like Ray's own by default: across machines, keep the cluster
and retrain on a network you trust.
"""

from __future__ import annotations

import http.server
import json
import secrets
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TICKET_BYTES = 32  # 256 random bits: not guessable
TAKEN, READY = "taken", "ready"


@dataclass
class _Ticket:
    payload: bytes
    inputs: Mapping[str, str]
    state: str = ""


class Channel:
    """An HTTP server on ``host`` (port chosen by the kernel), started on first use."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._tickets: dict[str, _Ticket] = {}
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None

    def url(self) -> str:
        server = self._start()
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{server.server_address[1]}"

    def offer(self, payload: Mapping[str, Any], inputs: Mapping[str, str]) -> str:
        """Register one job's instructions and input files; returns its ticket."""
        ticket = secrets.token_urlsafe(TICKET_BYTES)
        with self._lock:
            self._tickets[ticket] = _Ticket(json.dumps(dict(payload)).encode(), dict(inputs))
        return ticket

    def ready(self, ticket: str) -> bool:
        """Whether the job has taken everything it needs (the ticket is void)."""
        with self._lock:
            found = self._tickets.get(ticket)
        return found is None or found.state == READY

    def withdraw(self, ticket: str) -> None:
        with self._lock:
            self._tickets.pop(ticket, None)

    def close(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            self._tickets.clear()
        if server is not None:
            server.shutdown()
            server.server_close()

    # -- the server side ---------------------------------------------------
    def _start(self) -> http.server.ThreadingHTTPServer:
        with self._lock:
            if self._server is None:
                self._server = _Server((self.host, 0), _Handler, self)
                thread = threading.Thread(
                    target=self._server.serve_forever, name="retrain-ray-channel", daemon=True
                )
                thread.start()
            return self._server

    def answer(self, method: str, path: str) -> tuple[int, bytes | Path]:
        """(status, body or file to send) for one request: ``GET /job/T``,
        ``GET /input/T/NAME``, ``POST /ready/T``."""
        parts = path.strip("/").split("/")
        if len(parts) < 2:
            return 404, b"no such route"
        route, ticket = parts[0], parts[1]
        with self._lock:
            found = self._tickets.get(ticket)
            if found is None:
                return 404, b"no such ticket (the job ended or retrain restarted)"
            return self._step(found, method, route, parts[2:])

    @staticmethod
    def _step(
        ticket: _Ticket, method: str, route: str, rest: list[str]
    ) -> tuple[int, bytes | Path]:
        if method == "GET" and route == "job" and not rest:
            if ticket.state:
                return 410, b"this ticket was used already"
            ticket.state = TAKEN
            return 200, ticket.payload
        if ticket.state != TAKEN:
            return 409, b"take the job first; a ready ticket serves nothing"
        if method == "GET" and route == "input" and len(rest) == 1 and rest[0] in ticket.inputs:
            return 200, Path(ticket.inputs[rest[0]])
        if method == "POST" and route == "ready" and not rest:
            ticket.state = READY
            ticket.payload = b""
            return 200, b"ok"
        return 404, b"no such route"


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any, channel: Channel) -> None:
        self.channel = channel
        super().__init__(address, handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        status, body = self.server.channel.answer(method, self.path)
        try:
            if isinstance(body, Path):
                self._send_file(body)
            else:
                self._send(status, body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the job went away mid-answer: it fails and says so itself

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_file(self, path: Path) -> None:
        try:
            f = path.open("rb")
        except OSError as e:
            self._send(500, f"cannot read input {path.name}: {e.strerror}".encode())
            return
        with f:
            self.send_response(200)
            self.send_header("Content-Length", str(path.stat().st_size))
            self.end_headers()
            shutil.copyfileobj(f, self.wfile)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request line holds a ticket, and retrain's output is its own."""
