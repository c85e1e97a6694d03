"""The HTTP boundary: one status→error table, visible retries honouring Retry-After,
and client-side pacing to Resource Manager's token buckets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconciler import errors, redact
from reconciler.providers.azurecommon import errors as az_errors
from reconciler.providers.azurecommon import http, throttle
from tests.fakes.httpserver import FakeHTTPServer, Request, Response


@pytest.fixture
def server() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer() as srv:

        @srv.route("GET", r"/thing")
        def thing(_req: Request) -> Response:
            return Response.json(200, {"ok": True})

        @srv.route("GET", r"/missing")
        def missing(_req: Request) -> Response:
            return Response.json(
                404, {"error": {"code": "WebServiceNotFound", "message": "no such service"}}
            )

        @srv.route("POST", r"/bad")
        def bad(_req: Request) -> Response:
            return Response.json(
                400,
                {
                    "error": {
                        "code": "BadArgument",
                        "message": "nope",
                        "details": [{"code": "InvalidBlobExtension", "message": "use .ilearner"}],
                    }
                },
            )

        yield srv


def client(
    server: FakeHTTPServer, sleeps: list[float], log: list[str], retries: int = 4
) -> http.Client:
    return http.Client(
        verify=server.ca_bundle_path,
        retries=retries,
        scrub=redact.Redactor(["tok-secret"]),
        log=log.append,
        sleep=sleeps.append,
    )


def test_429_and_5xx_are_retried_honouring_retry_after(server: FakeHTTPServer) -> None:
    sleeps: list[float] = []
    log: list[str] = []
    server.throttle(1, retry_after=7, path="/thing")
    server.fail_with_status(503, times=2, path="/thing")
    answer = client(server, sleeps, log).request(
        "GET", f"{server.base_url}/thing", what="GET thing", token="tok-secret"
    )
    assert answer.json() == {"ok": True}
    assert len(server.requests(path="/thing")) == 4
    assert sleeps[0] == 7.0  # Retry-After, not backoff
    assert sleeps[1:] == [1.0, 2.0]  # exponential backoff after that
    assert log[0] == "GET thing: attempt #1/5 failed (HTTP 429); will retry in 7.0s"


def test_connection_resets_are_retried(server: FakeHTTPServer) -> None:
    sleeps: list[float] = []
    server.reset_connections(2, path="/thing")
    answer = client(server, sleeps, []).request(
        "GET", f"{server.base_url}/thing", what="GET thing", token="t"
    )
    assert answer.status == 200
    assert len(sleeps) == 2


@pytest.fixture
def writable(server: FakeHTTPServer) -> FakeHTTPServer:
    for method in ("POST", "PATCH", "PUT"):
        server.add_route(method, r"/w", lambda _req: Response.json(200, {"ok": True}))
    return server


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_idempotent_writes_are_retried_on_resets_and_5xx(
    writable: FakeHTTPServer, method: str
) -> None:
    log: list[str] = []
    writable.reset_connections(1, method=method, path="/w", after=True)
    writable.fail_with_status(502, times=1, method=method, path="/w")
    answer = client(writable, [], log).request(
        method, f"{writable.base_url}/w", what=f"{method} w", token="t", body={"a": 1}
    )
    assert answer.status == 200
    assert len(writable.requests(method=method, path="/w")) == 3
    assert [line.split(" failed ")[0] for line in log] == [
        f"{method} w: attempt #1/5",
        f"{method} w: attempt #2/5",
    ]
    assert all("; will retry in " in line for line in log)


@pytest.mark.parametrize("fault", ["reset", "503"], ids=["reset", "HTTP 503"])
def test_a_post_is_not_repeated_after_a_reset_or_a_5xx(
    writable: FakeHTTPServer, fault: str
) -> None:
    if fault == "reset":
        writable.reset_connections(1, method="POST", path="/w", after=True)
    else:
        writable.fail_with_status(503, times=1, method="POST", path="/w")
    with pytest.raises(errors.ProviderError):
        client(writable, [], []).request("POST", f"{writable.base_url}/w", what="submit", token="t")
    assert len(writable.requests(method="POST", path="/w")) == 1


def test_a_post_is_retried_on_429_and_when_its_caller_says_it_is_idempotent(
    writable: FakeHTTPServer,
) -> None:
    writable.throttle(1, retry_after=0, method="POST", path="/w")
    writable.fail_with_status(503, times=1, method="POST", path="/w")
    answer = client(writable, [], []).request(
        "POST", f"{writable.base_url}/w", what="start", token="t", idempotent=True
    )
    assert answer.status == 200
    assert len(writable.requests(method="POST", path="/w")) == 3


def test_retries_give_up_with_the_servers_message(server: FakeHTTPServer) -> None:
    server.fail_with_status(503, times=None, path="/thing")
    with pytest.raises(az_errors.ServerError, match="GET thing: HTTP 503"):
        client(server, [], [], retries=2).request(
            "GET", f"{server.base_url}/thing", what="GET thing", token="t"
        )
    assert len(server.requests(path="/thing")) == 3


@pytest.mark.parametrize(
    ("path", "method", "kind", "message"),
    [
        ("/missing", "GET", errors.NotFound, "WebServiceNotFound: no such service"),
        (
            "/bad",
            "POST",
            az_errors.ClientError,
            "BadArgument: nope [InvalidBlobExtension] use .ilearner",
        ),
    ],
)
def test_client_errors_are_not_retried_and_keep_the_server_message(
    server: FakeHTTPServer, path: str, method: str, kind: type[Exception], message: str
) -> None:
    with pytest.raises(kind, match=message.replace("[", r"\[").replace("]", r"\]")):
        client(server, [], []).request(method, f"{server.base_url}{path}", what="call", token="t")
    assert len(server.requests(path=path)) == 1


def test_errors_never_carry_the_token(server: FakeHTTPServer) -> None:
    @server.route("GET", r"/echo")
    def echo(req: Request) -> Response:
        return Response.json(
            401,
            {"error": {"code": "Unauthorized", "message": f"bad {req.header('Authorization')}"}},
        )

    with pytest.raises(az_errors.Unauthorized) as info:
        client(server, [], []).request(
            "GET", f"{server.base_url}/echo", what="call", token="tok-secret"
        )
    assert "tok-secret" not in str(info.value)
    assert "(sensitive)" in str(info.value)


@pytest.mark.parametrize(("value", "seconds"), [("3", 3.0), ("0", 0.0), ("soon", None)])
def test_retry_after_parsing(value: str, seconds: float | None) -> None:
    assert http.retry_after({"Retry-After": value}) == seconds


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_pacer_spends_the_burst_then_the_refill_rate_less_its_margin() -> None:
    """The rate margin is 2% since issue 11 (was 10%): the reserve covers bunching."""
    clock = Clock()
    pacer = throttle.Pacer(clock=clock, sleep=clock.sleep)
    for _ in range(225):
        assert pacer.before("GET") == 0.0  # the burst less its 10% reserve is free
    waited = sum(pacer.before("GET") for _ in range(45))
    assert waited == pytest.approx(45 / 24.5)  # 45 more at 98% of 25 per second
    for _ in range(180):
        pacer.before("PATCH")
    assert pacer.before("PUT") == pytest.approx(1 / 9.8)  # writes: 98% of 10 per second


def test_the_pacer_believes_the_servers_remaining_count() -> None:
    clock = Clock()
    pacer = throttle.Pacer(clock=clock, sleep=clock.sleep)
    pacer.after({"x-ms-ratelimit-remaining-subscription-reads": "100"})
    for _ in range(75):
        assert pacer.before("GET") == 0.0  # 100 left, less the reserve of 25
    assert pacer.before("GET") == pytest.approx(1 / 24.5)
