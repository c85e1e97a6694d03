"""HTTP for the BES and classic management APIs: the only user of ``requests``.

Retries are explicit and visible: connection errors, timeouts, 429 and 5xx
are retried with exponential backoff, honouring ``Retry-After``; each retry is
reported as ``attempt #2/7 failed (HTTP 503); will retry in 1.0s``. Only a
request that is safe to send twice is retried on those: GET, PUT, DELETE, and
PATCH (every PATCH here sends the same absolute body). A POST (a BES submit
creates a job each time) is retried only on 429, which the server answers
without acting; a caller whose POST is idempotent says so. Everything
else maps through ``errors.make``. Nothing that leaves here carries a key:
messages are redacted on the way out.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from reconciler import redact
from reconciler.providers.azurecommon import errors as az_errors

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
THROTTLED = 429  # the one refusal that is retried for any method: nothing was done
# Methods that may be sent twice with the same effect (RFC 9110 §9.2.2, plus our PATCHes).
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"})
BACKOFF_BASE = 0.5  # seconds before the first retry without Retry-After
BACKOFF_CAP = 30.0  # never wait longer than this between attempts
TIMEOUT = (10.0, 60.0)  # (connect, read) seconds for one request


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError as e:
            raise az_errors.ClientError(f"expected JSON, got {self.body[:80]!r}") from e


class Client:
    """Makes requests with retries; raises the provider's own errors."""

    def __init__(
        self,
        *,
        verify: str | bool,
        retries: int,
        scrub: redact.Redactor,
        log: Callable[[str], None] = lambda _line: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.verify = verify
        self.retries = retries
        self.scrub = scrub
        self.log = log
        self.sleep = sleep
        self.session = requests.Session()

    def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        token: str,
        body: Any = None,
        ok: tuple[int, ...] = (200, 201, 202, 204),
        idempotent: bool | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """One logical call; ``what`` names it in errors and retry lines. ``idempotent``
        (default: by method) says whether it may be repeated after a failure; ``headers``
        are sent besides the bearer token (say, to route a request to one deployment)."""
        safe = method.upper() in IDEMPOTENT if idempotent is None else idempotent
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            outcome = self._once(method, url, token, body, headers or {})
            if not _retriable(outcome, safe) or attempt == attempts:
                return self._finish(outcome, what, ok)
            delay = _delay(outcome, attempt)
            reason = (
                f"HTTP {outcome.status}"
                if isinstance(outcome, Response)
                else type(outcome).__name__
            )
            self.log(
                f"{what}: attempt #{attempt}/{attempts} failed ({reason}); "
                f"will retry in {delay:.1f}s"
            )
            self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(
        self, method: str, url: str, token: str, body: Any, extra: Mapping[str, str]
    ) -> Response | Exception:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", **extra}
        try:
            r = self.session.request(
                method,
                url,
                headers=headers,
                json=body,
                timeout=TIMEOUT,
                # Per request: REQUESTS_CA_BUNDLE would silently override Session.verify.
                verify=self.verify,
            )
        except requests.RequestException as e:
            return e
        return Response(r.status_code, dict(r.headers), r.content)

    def _finish(self, outcome: Response | Exception, what: str, ok: tuple[int, ...]) -> Response:
        if isinstance(outcome, Exception):
            text = self.scrub(str(outcome))[: az_errors.MESSAGE_MAX]
            raise az_errors.ConnectionFailed(f"{what}: {type(outcome).__name__}: {text}")
        if outcome.status not in ok:
            raise az_errors.make(outcome.status, what, outcome.body, self.scrub)
        return outcome


def _retriable(outcome: Response | Exception, safe: bool) -> bool:
    """A failure worth another attempt: any for a safe request; a 429 for any request."""
    if isinstance(outcome, Response) and outcome.status == THROTTLED:
        return True
    if not safe:
        return False
    return isinstance(outcome, Exception) or outcome.status in RETRY_STATUSES


def _delay(outcome: Response | Exception, attempt: int) -> float:
    """``Retry-After`` when the server gave one, else exponential backoff."""
    if isinstance(outcome, Response):
        after = retry_after(outcome.headers)
        if after is not None:
            return min(after, BACKOFF_CAP)
    return float(min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_CAP))


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``Retry-After`` (delta-seconds or HTTP-date), or None."""
    lowered = {k.lower(): v for k, v in headers.items()}
    value = lowered.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, float(when.timestamp()) - time.time())
