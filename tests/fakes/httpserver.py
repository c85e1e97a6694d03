"""A small, real HTTPS server for faking Azure APIs in tests.

Why not a mocking library: the Azure provider must be exercised through its real HTTP stack
(``requests``, ``azure-core`` pipelines, TLS verification, retries, connection pooling), so the
fake has to be a real server on a real socket. This module is the transport half of the fake:

* routes registered by decorator as (method, regex over the path);
* TLS from a throw-away ``trustme`` CA, whose bundle is written to ``ca_bundle_path`` so clients
  pass ``verify=`` / ``connection_verify=`` exactly as they would for a private CA;
* a request log and per-route counters, so tests can assert "one read per endpoint";
* switchable faults (latency, N x 429 with Retry-After, N x 5xx, connection reset), each
  targeted by method and path regexes, to test retry and recovery behaviour.

It binds to 127.0.0.1 only and never makes an outbound connection.
"""

from __future__ import annotations

import contextlib
import email.message
import json
import logging
import re
import socket
import ssl
import struct
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import trustme

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
# Seconds an idle keep-alive connection may sit before its handler thread gives up; long enough
# for any test step, short enough that a leaked client never pins a thread for the whole run.
HANDLER_IDLE_TIMEOUT_S = 30.0
# Upper bound on a request body we are willing to buffer (64 MiB); the fakes never need more and
# a runaway client must not exhaust memory.
MAX_BODY_BYTES = 64 * 1024 * 1024

JsonObj = dict[str, Any]


@dataclass
class Request:
    """One parsed request, handed to a route handler."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: email.message.Message
    body: bytes
    match: re.Match[str] | None = None
    route_name: str = ""

    def query1(self, name: str) -> str | None:
        """The first value of query parameter ``name`` (exact, case-sensitive), or None."""
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        """A request header by case-insensitive name."""
        value = self.headers.get(name)
        return None if value is None else str(value)

    def bearer_token(self) -> str | None:
        """The token of an ``Authorization: Bearer <token>`` header, else None."""
        auth = self.header("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()

    def json(self) -> Any:
        """The body parsed as JSON; raises ``ValueError`` when it is not JSON."""
        if not self.body:
            raise ValueError("request body is empty")
        return json.loads(self.body.decode("utf-8-sig"))


@dataclass
class Response:
    """What a handler returns. ``body`` None means no body (e.g. 204)."""

    status: int
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> Response:
        """A JSON response with the right Content-Type."""
        hdrs = {"Content-Type": "application/json; charset=utf-8"}
        hdrs.update(headers or {})
        return cls(status, json.dumps(obj).encode("utf-8"), hdrs)

    @classmethod
    def empty(cls, status: int, headers: Mapping[str, str] | None = None) -> Response:
        """A response without a body."""
        return cls(status, None, dict(headers or {}))


Handler = Callable[[Request], Response]


@dataclass
class Route:
    """A registered route: method + full-match regex over the URL path."""

    method: str
    pattern: re.Pattern[str]
    handler: Handler
    name: str


@dataclass
class LoggedRequest:
    """A request as recorded in the log (Authorization header removed)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    json: Any
    route: str | None
    status: int | None
    fault: str | None
    time: float


@dataclass
class Fault:
    """A switchable fault. ``remaining`` None means "every matching request, forever"."""

    kind: str  # "latency" | "status" | "reset" | "reset-after" (handled, answer lost)
    method: re.Pattern[str]
    path: re.Pattern[str]
    remaining: int | None
    status: int = 0
    retry_after: str | None = None
    delay_s: float = 0.0
    body: Any = None

    def matches(self, method: str, path: str) -> bool:
        return bool(self.method.fullmatch(method)) and bool(self.path.fullmatch(path))


def default_error_body(status: int) -> JsonObj:
    """An ARM-style error envelope for an injected fault."""
    code = {429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable"}.get(
        status, f"Http{status}"
    )
    return {"error": {"code": code, "message": f"Injected fault: HTTP {status}."}}


class _TLSThreadingServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that does the TLS handshake in the per-connection thread.

    Wrapping the listening socket would handshake inside ``accept()`` on the serving thread,
    so a single slow or non-TLS client would stall every other connection.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        ssl_context: ssl.SSLContext | None,
        owner: FakeHTTPServer,
    ) -> None:
        self.ssl_context = ssl_context
        self.owner = owner
        self.open_sockets: set[socket.socket] = set()
        self.open_lock = threading.Lock()
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Client disconnects, failed handshakes and resets are normal in fault tests; keep the
        # test output clean and leave a debug trace.
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _TLSThreadingServer
    protocol_version = "HTTP/1.1"  # keep-alive, as Azure clients use pooled connections
    timeout = HANDLER_IDLE_TIMEOUT_S
    _reset = False

    def setup(self) -> None:
        ctx = self.server.ssl_context
        raw: socket.socket = self.request
        # Small request/response exchanges: without NODELAY, Nagle + delayed ACK add ~40 ms.
        with contextlib.suppress(OSError):
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ctx is not None:
            raw.settimeout(self.timeout)
            self.request = ctx.wrap_socket(raw, server_side=True)
        with self.server.open_lock:
            self.server.open_sockets.add(self.request)
        super().setup()

    def finish(self) -> None:
        with self.server.open_lock:
            self.server.open_sockets.discard(self.request)
        if not self._reset:
            with contextlib.suppress(OSError):
                super().finish()
        # The server only closes the raw socket it accepted; wrap_socket() moved that file
        # descriptor into this SSLSocket, so close it here or it leaks until GC.
        with contextlib.suppress(OSError):
            self.request.close()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Trailer section ends with an empty line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    raise ValueError("request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._send(
                Response.json(
                    400, {"error": {"code": "BadRequest", "message": "Unreadable request body."}}
                )
            )
            return
        parts = urlsplit(self.path)
        req = Request(
            method=self.command,
            path=unquote(parts.path),  # route on decoded names, as the real services do
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
        )
        resp = self.server.owner.handle(req, self._reset_connection)
        if resp is not None:
            self._send(resp)

    def _reset_connection(self) -> None:
        """Close the socket without any response, with RST rather than FIN where possible."""
        self._reset = True
        self.close_connection = True
        with contextlib.suppress(OSError):
            # SO_LINGER on, timeout 0 => the kernel sends RST on close.
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.request.close()

    def _send(self, resp: Response) -> None:
        self.log_request(resp.status)
        phrase = self.responses.get(resp.status, ("",))[0]
        headers = {"Server": "retrain-fake-azure", "Date": self.date_time_string()}
        headers.update(resp.headers)
        headers.setdefault("x-ms-request-id", str(uuid.uuid4()))
        payload = resp.body or b""
        headers["Content-Length"] = str(len(payload))
        if self.close_connection:
            headers["Connection"] = "close"
        head = f"{self.protocol_version} {resp.status} {phrase}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        )
        # Headers and body in one write (one TLS record, one segment) rather than two: a split
        # write meets the client's delayed ACK and costs ~40 ms per request.
        body = payload if self.command != "HEAD" else b""
        self.wfile.write(head.encode("latin-1") + b"\r\n" + body)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


class FakeHTTPServer:
    """A threaded HTTPS (or HTTP) server on 127.0.0.1 with regex routes, a log and faults.

    Use as a context manager::

        srv = FakeHTTPServer()

        @srv.route("GET", r"/hello/(?P<name>[^/]+)")
        def hello(req: Request) -> Response:
            return Response.json(200, {"hi": req.match["name"]})

        with srv:
            requests.get(srv.base_url + "/hello/x", verify=srv.ca_bundle_path)
    """

    def __init__(self, *, tls: bool = True, port: int = 0, ca: trustme.CA | None = None) -> None:
        self.tls = tls
        self._requested_port = port
        self._routes: list[Route] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.log: list[LoggedRequest] = []
        self.counts: Counter[str] = Counter()
        self._server: _TLSThreadingServer | None = None
        self._thread: threading.Thread | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="retrain-fake-tls-")
        self.ca = ca or trustme.CA()
        self.ca_bundle_path = str(Path(self._tmp.name) / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_bundle_path)
        self._ssl_context: ssl.SSLContext | None = None
        if tls:
            cert = self.ca.issue_cert(LOOPBACK, "localhost")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            cert.configure_cert(ctx)
            self._ssl_context = ctx

    # -- routes -----------------------------------------------------------------------------

    def add_route(
        self, method: str, pattern: str, handler: Handler, name: str | None = None
    ) -> None:
        """Register ``handler`` for ``method`` and a regex that must match the whole path."""
        route = Route(method.upper(), re.compile(pattern), handler, name or f"{method} {pattern}")
        with self._lock:
            self._routes.append(route)

    def route(
        self, method: str, pattern: str, name: str | None = None
    ) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add_route`."""

        def deco(fn: Handler) -> Handler:
            self.add_route(method, pattern, fn, name)
            return fn

        return deco

    # -- faults ---------------------------------------------------------------------------

    def _add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def add_latency(
        self, seconds: float, *, method: str = ".*", path: str = ".*", times: int | None = None
    ) -> Fault:
        """Delay matching requests by ``seconds`` before handling them."""
        return self._add_fault(
            Fault("latency", re.compile(method), re.compile(path), times, delay_s=seconds)
        )

    def fail_with_status(
        self,
        status: int,
        *,
        times: int | None = 1,
        method: str = ".*",
        path: str = ".*",
        retry_after: float | str | None = None,
        body: Any = None,
    ) -> Fault:
        """Answer the next ``times`` matching requests with ``status`` (None = forever)."""
        ra = None if retry_after is None else str(retry_after)
        return self._add_fault(
            Fault(
                "status",
                re.compile(method),
                re.compile(path),
                times,
                status=status,
                retry_after=ra,
                body=body,
            )
        )

    def throttle(
        self, times: int = 1, *, retry_after: float | str = 1, method: str = ".*", path: str = ".*"
    ) -> Fault:
        """The next ``times`` matching requests get 429 with ``Retry-After``."""
        return self.fail_with_status(
            429, times=times, method=method, path=path, retry_after=retry_after
        )

    def reset_connections(
        self, times: int | None = 1, *, method: str = ".*", path: str = ".*", after: bool = False
    ) -> Fault:
        """Close the connection without a response for the next ``times`` matching requests.
        With ``after``, the request is handled first (a write takes effect) and only the
        answer is lost: what a client cannot tell from a reset before handling."""
        kind = "reset-after" if after else "reset"
        return self._add_fault(Fault(kind, re.compile(method), re.compile(path), times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_faults(self, method: str, path: str) -> list[Fault]:
        """Faults that fire for this request, decrementing their counters atomically."""
        fired: list[Fault] = []
        with self._lock:
            for fault in list(self._faults):
                if not fault.matches(method, path):
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                fired.append(fault)
                if fault.kind != "latency":
                    break  # one terminal fault per request
        return fired

    # -- request handling -----------------------------------------------------------------

    def handle(self, req: Request, reset: Callable[[], None]) -> Response | None:
        """Route one request (called from the connection thread)."""
        route = self._find_route(req)
        fault_name: str | None = None
        resp: Response | None = None
        for fault in self._take_faults(req.method, req.path):
            if fault.kind == "latency":
                time.sleep(fault.delay_s)
                continue
            fault_name = f"{fault.kind}:{fault.status}" if fault.kind == "status" else fault.kind
            if fault.kind == "reset":
                self._record(req, route, None, fault_name)
                reset()
                return None
            if fault.kind == "reset-after":
                break  # handled below as usual; only the answer is lost
            headers = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
            body = fault.body if fault.body is not None else default_error_body(fault.status)
            resp = Response.json(fault.status, body, headers)
        if resp is None:
            if route is None and req.route_name == "method-not-allowed":
                resp = Response.json(
                    405,
                    {
                        "error": {
                            "code": "MethodNotAllowed",
                            "message": f"{req.method} is not allowed on {req.path}",
                        }
                    },
                )
            elif route is None:
                resp = Response.json(
                    404, {"error": {"code": "NotFound", "message": f"No route for {req.path}"}}
                )
            else:
                try:
                    resp = route.handler(req)
                except Exception as exc:  # a bug in a fake must surface as a 500, not a hang
                    log.exception("fake handler %s failed", route.name)
                    resp = Response.json(
                        500,
                        {
                            "error": {
                                "code": "InternalServerError",
                                "message": f"fake crashed: {exc!r}",
                            }
                        },
                    )
        if fault_name == "reset-after":
            self._record(req, route, None, fault_name)
            reset()
            return None
        self._record(req, route, resp.status, fault_name)
        return resp

    def _find_route(self, req: Request) -> Route | None:
        with self._lock:
            routes = list(self._routes)
        path_matched = False
        for route in routes:
            m = route.pattern.fullmatch(req.path)
            if m is None:
                continue
            path_matched = True
            if route.method == req.method:
                req.match = m
                req.route_name = route.name
                return route
        if path_matched:
            req.route_name = "method-not-allowed"
        return None

    def _record(
        self, req: Request, route: Route | None, status: int | None, fault: str | None
    ) -> None:
        try:
            body: Any = req.json() if req.body else None
        except ValueError:
            body = None
        entry = LoggedRequest(
            method=req.method,
            path=req.path,
            query=req.query,
            headers={k: v for k, v in req.headers.items() if k.lower() != "authorization"},
            json=body,
            route=route.name if route else None,
            status=status,
            fault=fault,
            time=time.time(),
        )
        with self._lock:
            self.log.append(entry)
            self.counts[route.name if route else "<unrouted>"] += 1

    def requests(self, method: str | None = None, path: str | None = None) -> list[LoggedRequest]:
        """Logged requests, optionally filtered by exact method and path regex (full match)."""
        with self._lock:
            entries = list(self.log)
        pat = re.compile(path) if path else None
        return [
            e
            for e in entries
            if (method is None or e.method == method.upper())
            and (pat is None or pat.fullmatch(e.path))
        ]

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()
            self.counts.clear()

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{LOOPBACK}:{self.port}"

    def start(self) -> FakeHTTPServer:
        if self._server is not None:
            return self
        self._server = _TLSThreadingServer(
            (LOOPBACK, self._requested_port), _Handler, self._ssl_context, self
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # seconds; makes stop() prompt
            name=f"fake-https-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with server.open_lock:
            conns = list(server.open_sockets)
        for conn in conns:  # wake keep-alive handler threads blocked in recv
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)  # seconds; serve_forever exits within one poll
        self._thread = None

    def close(self) -> None:
        """Stop and remove the CA bundle directory."""
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> FakeHTTPServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def serving(server: FakeHTTPServer) -> Iterator[FakeHTTPServer]:
    """Start ``server`` for the duration of a ``with`` block and clean up its files after."""
    try:
        yield server.start()
    finally:
        server.close()
