"""One table from HTTP status to the provider's own errors, for every Azure API.

The server's own message is kept (ARM ``error.message``, BES/classic
``error.message`` plus detail codes), truncated and redacted, so a user sees
why Azure refused without a wall of JSON or a leaked key.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler import errors, redact

MESSAGE_MAX = 500  # characters of a server message kept in an error


class ClientError(errors.ProviderError):
    """4xx: the request was refused; retrying will not help."""


class Unauthorized(ClientError):
    """401/403: the credential is missing, wrong, or lacks permission."""


class Conflict(ClientError):
    """409."""


class Throttled(errors.ProviderError):
    """429 after every retry."""


class ServerError(errors.ProviderError):
    """5xx after every retry."""


class ConnectionFailed(errors.ProviderError):
    """No HTTP answer: refused, reset, timed out, TLS failure."""


def for_status(status: int) -> type[errors.ProviderError]:
    if status == 404:
        return errors.NotFound
    if status in (401, 403):
        return Unauthorized
    if status == 409:
        return Conflict
    if status == 429:
        return Throttled
    if status >= 500:
        return ServerError
    return ClientError


def server_message(body: bytes | str | None) -> str:
    """The interesting part of an Azure error body, whatever its dialect."""
    if not body:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data: Any = json.loads(text)
    except ValueError:
        return text.strip()[:MESSAGE_MAX]
    err = data.get("error", data) if isinstance(data, dict) else data
    if not isinstance(err, dict):
        return str(err)[:MESSAGE_MAX]
    code = err.get("code") or err.get("Code") or ""
    message = err.get("message") or err.get("Message") or ""
    details = err.get("details") or err.get("Details") or []
    codes = [d.get("code") or d.get("Code") for d in details if isinstance(d, dict)]
    inner = [
        str(d.get("message") or d.get("Message") or "") for d in details if isinstance(d, dict)
    ]
    parts = [f"{code}: {message}" if code else str(message)]
    if any(codes):
        parts.append(f"[{', '.join(c for c in codes if c)}] {' '.join(m for m in inner if m)}")
    return " ".join(p for p in parts if p).strip()[:MESSAGE_MAX]


def make(
    status: int, what: str, body: bytes | str | None, scrub: redact.Redactor
) -> errors.ProviderError:
    """The error for an HTTP ``status`` answering ``what`` (e.g. "GET web service x")."""
    message = server_message(body)
    return for_status(status)(scrub(f"{what}: HTTP {status}" + (f": {message}" if message else "")))
