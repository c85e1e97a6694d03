"""Plumbing shared by the Azure ML v2 fake: errors, ids, the request wrapper and LROs.

Why one module: every Resource Manager call of ``Microsoft.MachineLearningServices`` goes through
the same gate (bearer token, ``api-version``, optional per-subscription throttling shared with the
classic ARM fake) and every long-running write follows the same swagger contract
(``ml-services-2025-12-01.subset.md``):

* PUT (``final-state-via: original-uri``) answers 201 with ``Azure-AsyncOperation`` and
  ``x-ms-async-operation-timeout``; the status URL answers ``{"status": "InProgress"}`` for
  ``lro_polls`` polls, then ``Succeeded`` (or ``Failed`` with an ``error``); the client then GETs
  the original URI for the final state.
* PATCH and DELETE (no ``final-state-via`` / ``location``) answer 202 with ``Location``,
  ``Retry-After`` and ``x-ms-async-operation-timeout``; the Location URL answers 202 (+ the
  same headers) while running and then 200 with the resource (PATCH) or 204 (DELETE).

Operation URLs follow the real service's shape
``/subscriptions/{sub}/providers/Microsoft.MachineLearningServices/locations/{loc}/
mfeOperationsStatus/{id}`` and ``.../mfeOperationResults/{id}`` (inference: recalled from live
traffic, not from the swagger, which leaves them opaque).
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.httpserver import Request, Response
from tests.fakes.swagger import Issue

JsonObj = dict[str, Any]
Throttle = Callable[[str, str], tuple[bool, int, int]]

PROVIDER = "Microsoft.MachineLearningServices"
# The swagger subset's version, plus the earlier stables whose bodies are the same for these
# resources (reference §1.1: 2024-04-01 is the .NET default; 2025-06/09 checked equal).
API_VERSIONS = frozenset({"2024-04-01", "2024-10-01", "2025-06-01", "2025-09-01", "2025-12-01"})
DEFAULT_API_VERSION = "2025-12-01"
# Declared on every 201/202 of an LRO (an ISO 8601 duration); the real service sends hours.
ASYNC_TIMEOUT = "PT1H"
SEG = r"[^/]+"
WS_PATH = (
    rf"/subscriptions/(?P<sub>{SEG})/resourceGroups/(?P<rg>{SEG})"
    rf"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>{SEG})"
)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def arm_error(
    status: int,
    code: str,
    message: str,
    *,
    target: str | None = None,
    details: list[JsonObj] | None = None,
    inner: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """``common.ErrorResponse``; ``inner`` adds MFE's ``innerError.code`` (e.g. ``Immutable``)."""
    err: JsonObj = {"code": code, "message": message}
    if target is not None:
        err["target"] = target
    err["details"] = details or []
    err["additionalInfo"] = []
    if inner is not None:
        err["innerError"] = {"code": inner}
    return Response.json(status, {"error": err}, headers)


def user_error(message: str, *, target: str | None = None, inner: str = "BadArgument") -> Response:
    """MFE's 400 shape: top-level ``UserError`` with the specific reason in ``innerError``."""
    return arm_error(400, "UserError", message, target=target, inner=inner)


def validation_error(issues: list[Issue]) -> Response:
    first = issues[0]
    return arm_error(
        400,
        "UserError",
        f"The request is invalid: {'; '.join(map(str, issues))}",
        target=first.path or None,
        inner="BadArgument",
        details=[
            {"code": "ValidationError", "target": i.path, "message": i.message, "details": []}
            for i in issues
        ],
    )


def page(req: Request, items: list[JsonObj], size: int, base_url: str) -> Response:
    """One page of a pageable list (``{"value", "nextLink"}``); ``$skip`` carries the offset.
    The real continuation token is opaque; clients must follow ``nextLink`` as given."""
    try:
        start = int(req.query1("$skip") or 0)
    except ValueError:
        return user_error("The $skip continuation token is invalid.", target="$skip")
    body: JsonObj = {"value": items[start : start + size]}
    if start + size < len(items):
        query = "&".join(f"{k}={v}" for k, vs in req.query.items() if k != "$skip" for v in vs)
        body["nextLink"] = f"{base_url}{req.path}?{query}&$skip={start + size}"
    return Response.json(200, body)


def not_found(kind: str, name: str) -> Response:
    return arm_error(404, "UserError", f"{kind} {name!r} was not found.", inner="NotFound")


def system_data(existing: JsonObj | None, who: str = "retrain-fake@example.com") -> JsonObj:
    now = now_iso()
    created = existing or {"createdAt": now, "createdBy": who, "createdByType": "User"}
    return {
        "createdAt": created["createdAt"],
        "createdBy": created["createdBy"],
        "createdByType": created["createdByType"],
        "lastModifiedAt": now,
        "lastModifiedBy": who,
        "lastModifiedByType": "User",
    }


def parse_json_object(req: Request) -> JsonObj | Response:
    try:
        body = req.json()
    except ValueError as exc:
        return user_error(f"The request content could not be deserialized: {exc}")
    if not isinstance(body, dict):
        return user_error("The request content must be a JSON object.")
    return body


@dataclass
class Operation:
    """One long-running operation; ``finish(ok)`` applies its outcome to the store."""

    id: str
    subscription: str
    location: str
    kind: str  # "put" | "patch" | "delete"
    resource_key: tuple[str, ...]
    finish: Callable[[bool], None]
    result: Callable[[], Response]
    polls_left: int
    failure: JsonObj | None = None
    status: str = "InProgress"
    started: str = field(default_factory=now_iso)
    ended: str | None = None


class Operations:
    """The LRO table. All methods expect the fake's lock to be held by the caller."""

    def __init__(self, *, lro_polls: int, retry_after_s: int) -> None:
        self.lro_polls = lro_polls
        self.retry_after_s = retry_after_s
        self.ops: dict[str, Operation] = {}
        self.pending: dict[tuple[str, ...], str] = {}
        self.base_url: Callable[[], str] = lambda: ""  # set when mounted on a server

    def busy(self, key: tuple[str, ...]) -> bool:
        return key in self.pending

    def start(self, op: Operation) -> dict[str, str]:
        """Register ``op``; returns the headers of its first (201/202) answer."""
        self.ops[op.id] = op
        self.pending[op.resource_key] = op.id
        return self.start_headers_again(op)

    def start_headers_again(self, op: Operation) -> dict[str, str]:
        """The LRO headers of ``op`` (also repeated on each 202 of its Location URL)."""
        prefix = (
            f"{self.base_url()}/subscriptions/{op.subscription}/providers/{PROVIDER}"
            f"/locations/{op.location}"
        )
        query = f"?api-version={DEFAULT_API_VERSION}"
        headers = {"x-ms-async-operation-timeout": ASYNC_TIMEOUT}
        if op.kind == "put":
            headers["Azure-AsyncOperation"] = f"{prefix}/mfeOperationsStatus/{op.id}{query}"
        else:
            headers["Location"] = f"{prefix}/mfeOperationResults/{op.id}{query}"
            headers["Retry-After"] = str(self.retry_after_s)
        return headers

    def tick(self, op: Operation) -> None:
        """One poll: count down, then end the operation and apply its outcome."""
        if op.status != "InProgress":
            return
        if op.polls_left > 0:
            op.polls_left -= 1
            return
        op.status = "Succeeded" if op.failure is None else "Failed"
        op.ended = now_iso()
        self.pending.pop(op.resource_key, None)
        op.finish(op.failure is None)

    def tick_resource(self, key: tuple[str, ...]) -> None:
        op_id = self.pending.get(key)
        if op_id is not None:
            self.tick(self.ops[op_id])

    def status_body(self, op: Operation) -> JsonObj:
        body: JsonObj = {"id": op.id, "name": op.id, "status": op.status, "startTime": op.started}
        if op.ended:
            body["endTime"] = op.ended
        if op.status == "Failed" and op.failure is not None:
            body["error"] = op.failure
        return body


class Gate:
    """Auth, ``api-version`` and throttling in front of every Resource Manager handler."""

    def __init__(
        self, *, accepted_tokens: set[str] | None, throttle: Throttle | None, lock: threading.RLock
    ) -> None:
        self.accepted_tokens = accepted_tokens
        self.throttle = throttle
        self.lock = lock

    def wrap(self, fn: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def handler(req: Request) -> Response:
            common = {
                "x-ms-correlation-request-id": req.header("x-ms-correlation-request-id")
                or str(uuid.uuid4())
            }
            token = req.bearer_token()
            if token is None or (
                self.accepted_tokens is not None and token not in self.accepted_tokens
            ):
                missing = req.header("Authorization") is None
                return arm_error(
                    401,
                    "AuthenticationFailed" if missing else "InvalidAuthenticationToken",
                    "Authentication failed. The 'Authorization' header is missing."
                    if missing
                    else "The access token is invalid.",
                    headers=common,
                )
            refused = self._throttled(req, common)
            if refused is not None:
                return refused
            version = req.query1("api-version")
            if version is None:
                resp = arm_error(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            elif version not in API_VERSIONS:
                resp = arm_error(
                    400,
                    "InvalidApiVersionParameter",
                    f"The api-version '{version}' is invalid. The supported versions are "
                    f"'{', '.join(sorted(API_VERSIONS))}'.",
                )
            else:
                with self.lock:
                    resp = fn(req)
            for k, v in common.items():
                resp.headers.setdefault(k, v)
            return resp

        return handler

    def _throttled(self, req: Request, common: dict[str, str]) -> Response | None:
        if self.throttle is None or req.match is None:
            return None
        kind = {"GET": "reads", "HEAD": "reads", "DELETE": "deletes"}.get(req.method, "writes")
        allowed, remaining, retry_after = self.throttle(req.match["sub"], kind)
        common[f"x-ms-ratelimit-remaining-subscription-{kind}"] = str(remaining)
        if allowed:
            return None
        common["Retry-After"] = str(retry_after)
        return arm_error(
            429,
            "SubscriptionRequestsThrottled",
            f"Number of {kind} requests for subscription '{req.match['sub']}' exceeded. "
            f"Please try again after '{retry_after}' seconds.",
            headers=common,
        )
