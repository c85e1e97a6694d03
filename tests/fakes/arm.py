"""Fake Azure Resource Manager for ``Microsoft.MachineLearning/webServices`` (api 2017-01-01).

Why: "new" Azure ML Studio web services are ARM resources. The reconciler observes and updates
them through the generic resources API of ``azure-mgmt-resource``, whose behaviour hinges on
ARM details a hand-rolled mock would gloss over: long-running operations polled through
``Azure-AsyncOperation``, bodies validated against the RP's swagger, throttling by token
bucket with ``Retry-After``, and the RP's quirks (reference §1, §2, §6, §7, §10). This module
implements those on top of :mod:`tests.fakes.httpserver`.

Behaviour worth knowing when writing tests (all of it deliberate):

* Auth: ``Authorization: Bearer <token>`` is required on every call (401 otherwise). Any
  non-empty token is accepted unless ``accepted_tokens`` is given.
* ``api-version`` must be exactly ``2017-01-01`` (400 ``InvalidApiVersionParameter``).
* PUT/PATCH/DELETE are LROs: the first response carries ``Azure-AsyncOperation`` (an operation
  status URL on this fake) and ``Retry-After: 0`` (``retry_after``: another whole number of
  seconds, as ARM's generic contract allows on a 201/202 and on each running poll; None: no
  header, as the RP's own examples). Each GET of that URL while the operation runs
  is one *poll*; the first ``lro_polls`` polls answer ``status: InProgress`` /
  ``provisioningState: Provisioning`` and the next one ``Succeeded`` (both fields always
  present). A GET of the resource itself also counts as a poll when ``get_advances_lro`` is
  true (default), so clients that confirm a PATCH "by GET" as the docs say also converge.
  Until the operation ends the resource shows ``provisioningState: Provisioning``.
* DELETE removes the resource at once (GET → 404) and still returns an LRO handle;
  DELETE of a missing service is 204.
* GET never returns ``properties.keys`` nor ``storageAccount.key`` (see ``listKeys``).
  List results are "sparsely populated": no assets, package, input, output.
* Changing ``storageAccount.name`` → 400 ``BadRequest`` with details code
  ``CannotChangeStorageAccount`` (reference §2). Omitting it keeps the configured one.
* ``readOnly: true`` services refuse PUT and PATCH (400, details ``WebServiceIsReadOnly``);
  DELETE still works.
* Key casing inside ``properties`` is stored exactly as the client sent it. Read-only
  server fields (provisioningState, createdOn, modifiedOn, swaggerLocation) sent by a client
  are ignored, whatever their casing.
* PATCH merge depth is ONE level under ``properties``: each property named in the PATCH
  replaces the stored value wholesale (so ``assets`` sent in a PATCH must be the complete map,
  as reference §10 advises); a property sent as ``null`` is removed; properties not named are
  kept. ``tags``, when present, replace the tag map. ``location`` is read-only on PATCH
  (PatchedResource) and ignored.
* Concurrent writes to one service: by default the newer write supersedes the running
  operation (last writer wins, swagger declares no ETag/409); ``busy_policy="429"`` instead
  answers 429 ``RetryableErrorDueToAnotherOperation`` + ``Retry-After``.
* ``fail_next_operation()`` makes the next LRO end ``Failed``; the service is rolled back to
  its previous definition with ``provisioningState: Failed`` (a failed create stays, Failed).
* Throttling: a token bucket per subscription and per operation class (reads = GET, including
  operation polls; writes = PUT/PATCH/POST; deletes = DELETE). Every response carries the
  remaining count of its own class, as real ARM does:
  ``x-ms-ratelimit-remaining-subscription-reads`` / ``-writes`` / ``-deletes``. An empty
  bucket answers 429 ``SubscriptionRequestsThrottled`` with ``Retry-After`` in whole seconds.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .httpserver import FakeHTTPServer, Request, Response
from .swagger import DEFAULT_SWAGGER_PATH, Issue, SwaggerValidator, ci_get, ci_lookup

JsonObj = dict[str, Any]

API_VERSION = "2017-01-01"
RESOURCE_TYPE = "Microsoft.MachineLearning/webServices"
PROVIDER = "Microsoft.MachineLearning"
# Server-managed properties a client may echo back from a GET; never stored from a request.
SERVER_PROPERTIES = ("provisioningState", "createdOn", "modifiedOn", "swaggerLocation")
# Properties a list response leaves out ("sparsely populated", reference §1.1).
SPARSE_OMITTED = ("assets", "package", "input", "output")
# Placeholder BES host for swaggerLocation when no fake BES is mounted (never contacted).
DEFAULT_SERVICES_BASE = "https://ussouthcentral.services.azureml.net"

_SEG = r"[^/]+"
_WS_PATH = (
    rf"/subscriptions/(?P<sub>{_SEG})/resourceGroups/(?P<rg>{_SEG})"
    rf"/providers/Microsoft\.MachineLearning/webServices"
)


class ManualClock:
    """An injectable monotonic clock for throttling tests: time moves only when told to."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@dataclass(frozen=True)
class BucketSpec:
    """Token bucket size and refill rate (tokens per second)."""

    capacity: float
    refill_per_s: float


@dataclass(frozen=True)
class ThrottleConfig:
    """Per-subscription ARM limits (reference §6.1: the 2024 regional token bucket)."""

    reads: BucketSpec = BucketSpec(250, 25)  # 250 burst, 25/s
    writes: BucketSpec = BucketSpec(200, 10)  # 200 burst, 10/s
    deletes: BucketSpec = BucketSpec(200, 10)  # 200 burst, 10/s
    enabled: bool = True

    def spec(self, kind: str) -> BucketSpec:
        return {"reads": self.reads, "writes": self.writes, "deletes": self.deletes}[kind]


class TokenBucket:
    """Classic token bucket; ``take`` consumes one token if available."""

    def __init__(self, spec: BucketSpec, now: float) -> None:
        self.spec = spec
        self.tokens = float(spec.capacity)
        self.updated = now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.spec.capacity), self.tokens + elapsed * self.spec.refill_per_s)
        self.updated = now

    def take(self, now: float) -> tuple[bool, int, int]:
        """(allowed, remaining whole tokens, Retry-After seconds when refused)."""
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return True, int(self.tokens), 0
        wait = (1 - self.tokens) / self.spec.refill_per_s if self.spec.refill_per_s else 3600
        return False, 0, max(1, math.ceil(wait))  # Retry-After is whole seconds, at least 1


@dataclass
class StoredService:
    """One web service as the fake keeps it. ``properties`` keeps the client's key casing."""

    subscription: str
    resource_group: str
    name: str
    location: str
    tags: dict[str, str] | None
    properties: JsonObj
    keys: dict[str, str]
    storage_key: str | None
    created_on: str
    modified_on: str
    provisioning_state: str = "Succeeded"

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/{RESOURCE_TYPE}/{self.name}"
        )

    @property
    def read_only(self) -> bool:
        return ci_get(self.properties, "readOnly") is True

    @property
    def storage_account_name(self) -> str | None:
        sa = ci_get(self.properties, "storageAccount")
        if isinstance(sa, dict):
            name = ci_get(sa, "name")
            return name if isinstance(name, str) else None
        return None


@dataclass
class FailureSpec:
    code: str
    message: str
    name: str | None  # web service name (case-insensitive) or None for any


@dataclass
class Operation:
    """A long-running operation and what to do when it ends."""

    id: str
    subscription: str
    key: tuple[str, str, str]
    kind: str  # "create" | "update" | "delete"
    polls_left: int
    started: str
    previous: StoredService | None
    failure: FailureSpec | None = None
    status: str = "InProgress"
    ended: str | None = None
    polls: int = field(default=0)


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def arm_error(
    status: int,
    code: str,
    message: str,
    *,
    details: list[JsonObj] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The ARM error envelope ``{"error": {"code", "message"[, "details"]}}``."""
    err: JsonObj = {"code": code, "message": message}
    if details:
        err["details"] = details
    return Response.json(status, {"error": err}, headers)


def _replace_ci(target: JsonObj, key: str, value: Any) -> None:
    """Set ``target[key] = value`` replacing any case-variant key, keeping its position."""
    existing = ci_lookup(target, key)
    if not existing:
        target[key] = value
        return
    items = list(target.items())
    target.clear()
    for k, v in items:
        if k == existing[0]:
            target[key] = value
        elif k not in existing:
            target[k] = v


def _drop_ci(target: JsonObj, key: str) -> None:
    for k in ci_lookup(target, key):
        del target[k]


def _norm_location(loc: str) -> str:
    return re.sub(r"\s+", "", loc).lower()


class StaticTokenCredential:
    """A ``TokenCredential`` for azure-core clients that always returns one bearer token.

    Records the scopes it was asked for, so tests can check ``credential_scopes`` plumbing.
    """

    def __init__(self, token: str = "fake-arm-token") -> None:
        self.token = token
        self.scopes_requested: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.scopes_requested.append(scopes)
        # Valid for an hour from now: far beyond any test, so no refresh logic kicks in.
        return AccessToken(self.token, int(time.time()) + 3600)


class FakeResourceManager:
    """The ARM side of the fake. Mount on a :class:`FakeHTTPServer` with :meth:`mount`."""

    def __init__(
        self,
        *,
        swagger_path: str | Path = DEFAULT_SWAGGER_PATH,
        lro_polls: int = 1,
        get_advances_lro: bool = True,
        clock: Callable[[], float] = time.monotonic,
        throttle: ThrottleConfig | None = None,
        accepted_tokens: set[str] | None = None,
        services_base_url: str | None = None,
        page_size: int = 100,  # items per list page before a nextLink
        busy_policy: str = "supersede",
        retry_after: int | None = 0,  # seconds a running operation asks between polls
    ) -> None:
        self.validator = SwaggerValidator.from_file(swagger_path)
        self.lro_polls = lro_polls
        self.get_advances_lro = get_advances_lro
        self.clock = clock
        self.throttle = throttle or ThrottleConfig()
        self.accepted_tokens = accepted_tokens
        self.services_base_url = services_base_url
        self.page_size = page_size
        if busy_policy not in ("supersede", "429"):
            raise ValueError("busy_policy must be 'supersede' or '429'")
        self.busy_policy = busy_policy
        self.retry_after = retry_after
        self._lock = threading.RLock()
        self._services: dict[tuple[str, str, str], StoredService] = {}
        self.operations: dict[str, Operation] = {}
        self._pending: dict[tuple[str, str, str], str] = {}  # service key -> running op id
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._failures: list[FailureSpec] = []
        self._server: FakeHTTPServer | None = None
        self._prefix = ""

    # -- mounting -------------------------------------------------------------------------

    def mount(self, server: FakeHTTPServer, prefix: str = "") -> None:
        """Register the ARM routes on ``server`` under ``prefix`` (normally the root)."""
        self._server = server
        self._prefix = prefix.rstrip("/")
        p = re.escape(self._prefix)
        one = rf"(?i){p}{_WS_PATH}/(?P<name>{_SEG})"
        server.add_route("GET", one, self._wrap(self._get), "arm.get")
        server.add_route("HEAD", one, self._wrap(self._head), "arm.head")
        server.add_route("PUT", one, self._wrap(self._put), "arm.put")
        server.add_route("PATCH", one, self._wrap(self._patch), "arm.patch")
        server.add_route("DELETE", one, self._wrap(self._delete), "arm.delete")
        server.add_route("GET", rf"{one}/listKeys", self._wrap(self._list_keys), "arm.listKeys")
        server.add_route("GET", rf"(?i){p}{_WS_PATH}", self._wrap(self._list), "arm.list_rg")
        server.add_route(
            "GET",
            rf"(?i){p}/subscriptions/(?P<sub>{_SEG})/providers/Microsoft\.MachineLearning"
            r"/webServices",
            self._wrap(self._list),
            "arm.list_sub",
        )
        server.add_route(
            "GET",
            rf"(?i){p}/subscriptions/(?P<sub>{_SEG})/providers/Microsoft\.MachineLearning"
            rf"/operationsStatus/(?P<op>{_SEG})",
            self._wrap(self._op_status),
            "arm.operation",
        )

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("not mounted")
        return self._server.base_url + self._prefix

    # -- test helpers ---------------------------------------------------------------------

    @staticmethod
    def _key(sub: str, rg: str, name: str) -> tuple[str, str, str]:
        return sub.lower(), rg.lower(), name.lower()

    def resource_id(self, subscription: str, resource_group: str, name: str) -> str:
        return (
            f"/subscriptions/{subscription}/resourceGroups/{resource_group}"
            f"/providers/{RESOURCE_TYPE}/{name}"
        )

    def drain(self, subscription: str, kind: str = "reads") -> None:
        """Empty a subscription's bucket, as another client sharing it would."""
        now = self.clock()
        with self._lock:
            key = (subscription.lower(), kind)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self.throttle.spec(kind), now)
            bucket.tokens = 0.0
            bucket.updated = now

    def seed_web_service(
        self,
        subscription: str,
        resource_group: str,
        name: str,
        definition: JsonObj,
        *,
        keys: dict[str, str] | None = None,
        provisioning_state: str = "Succeeded",
    ) -> str:
        """Create a service directly in the store (no LRO, no throttling). Returns its id.

        ``definition`` is a WebService body as a client would PUT it; it is validated so a
        broken seed fails loudly.
        """
        issues = self.validator.validate(definition, "WebService")
        if issues:
            raise ValueError("invalid seed definition: " + "; ".join(map(str, issues)))
        svc = self._build(subscription, resource_group, name, definition, None)
        if keys:
            svc.keys = dict(keys)
        svc.provisioning_state = provisioning_state
        with self._lock:
            self._services[self._key(subscription, resource_group, name)] = svc
        return svc.id

    def stored(self, subscription: str, resource_group: str, name: str) -> StoredService | None:
        """A deep copy of the stored service (including secrets), or None."""
        with self._lock:
            svc = self._services.get(self._key(subscription, resource_group, name))
            return copy.deepcopy(svc)

    def keys_of(self, subscription: str, resource_group: str, name: str) -> dict[str, str]:
        svc = self.stored(subscription, resource_group, name)
        if svc is None:
            raise KeyError(name)
        return svc.keys

    def fail_next_operation(
        self,
        *,
        name: str | None = None,
        code: str = "InternalServerError",
        message: str = "Injected failure of the web service operation.",
    ) -> None:
        """The next LRO (on ``name``, or on any service) ends ``Failed`` and rolls back."""
        with self._lock:
            self._failures.append(FailureSpec(code, message, name))

    def view(self, subscription: str, resource_group: str, name: str) -> JsonObj | None:
        """What a GET returns now, without counting as a request."""
        with self._lock:
            svc = self._services.get(self._key(subscription, resource_group, name))
            return None if svc is None else self._view(svc)

    # -- plumbing -------------------------------------------------------------------------

    def _wrap(self, fn: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def handler(req: Request) -> Response:
            kind = {"GET": "reads", "HEAD": "reads", "DELETE": "deletes"}.get(req.method, "writes")
            header = f"x-ms-ratelimit-remaining-subscription-{kind}"
            common = {
                "x-ms-correlation-request-id": req.header("x-ms-correlation-request-id")
                or str(uuid.uuid4())
            }
            token = req.bearer_token()
            if token is None or (
                self.accepted_tokens is not None and token not in self.accepted_tokens
            ):
                missing = req.header("Authorization") is None
                code = "AuthenticationFailed" if missing else "InvalidAuthenticationToken"
                msg = (
                    "Authentication failed. The 'Authorization' header is missing."
                    if missing
                    else "The access token is invalid."
                )
                common["WWW-Authenticate"] = (
                    'Bearer authorization_uri="https://login.microsoftonline.com/common", '
                    'error="invalid_token", error_description="The access token is invalid."'
                )
                return arm_error(401, code, msg, headers=common)
            sub = req.match["sub"] if req.match else ""
            allowed, remaining, retry_after = self._take_token(sub, kind)
            common[header] = str(remaining)
            if not allowed:
                word = {"reads": "read", "writes": "write", "deletes": "delete"}[kind]
                common["Retry-After"] = str(retry_after)
                return arm_error(
                    429,
                    "SubscriptionRequestsThrottled",
                    f"Number of '{word}' requests for subscription '{sub}' exceeded. Please try "
                    f"again after '{retry_after}' seconds after additional tokens are available.",
                    headers=common,
                )
            version = req.query1("api-version")
            if version is None:
                resp = arm_error(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            elif version != API_VERSION:
                resp = arm_error(
                    400,
                    "InvalidApiVersionParameter",
                    f"The api-version '{version}' is invalid. The supported "
                    f"versions are '{API_VERSION}'.",
                )
            else:
                resp = fn(req)
            for k, v in common.items():
                resp.headers.setdefault(k, v)
            return resp

        return handler

    def take_token(self, sub: str, kind: str) -> tuple[bool, int, int]:
        """Consume one token of ``kind`` for ``sub``: (allowed, remaining, Retry-After s).
        Public so other providers' fakes on the same port share the subscription's buckets,
        as every resource provider behind real ARM does."""
        return self._take_token(sub, kind)

    def _take_token(self, sub: str, kind: str) -> tuple[bool, int, int]:
        spec = self.throttle.spec(kind)
        if not self.throttle.enabled:
            return True, int(spec.capacity), 0
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get((sub.lower(), kind))
            if bucket is None:
                bucket = self._buckets[(sub.lower(), kind)] = TokenBucket(spec, now)
            return bucket.take(now)

    def _swagger_location(self, sub: str, name: str) -> str:
        base = (self.services_base_url or DEFAULT_SERVICES_BASE).rstrip("/")
        return f"{base}/subscriptions/{sub}/services/{quote(name)}/swagger.json"

    def _view(self, svc: StoredService, sparse: bool = False) -> JsonObj:
        props = copy.deepcopy(svc.properties)
        for k in list(props):
            if k.lower() == "keys" or (sparse and k.lower() in SPARSE_OMITTED):
                del props[k]
        props["provisioningState"] = svc.provisioning_state
        props["createdOn"] = svc.created_on
        props["modifiedOn"] = svc.modified_on
        props["swaggerLocation"] = self._swagger_location(svc.subscription, svc.name)
        out: JsonObj = {
            "id": svc.id,
            "name": svc.name,
            "type": RESOURCE_TYPE,
            "location": svc.location,
        }
        if svc.tags is not None:
            out["tags"] = dict(svc.tags)
        out["properties"] = props
        return out

    @staticmethod
    def _sanitize_props(props: JsonObj) -> tuple[JsonObj, dict[str, str] | None, str | None]:
        """Split request properties into (stored properties, keys, storage key)."""
        props = copy.deepcopy(props)
        for server_field in SERVER_PROPERTIES:
            _drop_ci(props, server_field)
        keys: dict[str, str] | None = None
        for k in ci_lookup(props, "keys"):
            raw = props.pop(k)
            if isinstance(raw, dict):
                keys = {
                    "primary": ci_get(raw, "primary") or secrets.token_urlsafe(32),
                    "secondary": ci_get(raw, "secondary") or secrets.token_urlsafe(32),
                }
        storage_key: str | None = None
        sa = ci_get(props, "storageAccount")
        if isinstance(sa, dict):
            for k in ci_lookup(sa, "key"):
                storage_key = sa.pop(k)
        return props, keys, storage_key

    def _build(
        self, sub: str, rg: str, name: str, body: JsonObj, existing: StoredService | None
    ) -> StoredService:
        props, keys, storage_key = self._sanitize_props(ci_get(body, "properties") or {})
        now = _now_iso()
        if existing is not None:
            if not ci_lookup(props, "storageAccount") and existing.storage_account_name:
                props["storageAccount"] = {"name": existing.storage_account_name}
            return StoredService(
                subscription=existing.subscription,
                resource_group=existing.resource_group,
                name=existing.name,
                location=existing.location,
                tags=ci_get(body, "tags"),
                properties=props,
                keys=keys or dict(existing.keys),
                storage_key=storage_key if storage_key is not None else existing.storage_key,
                created_on=existing.created_on,
                modified_on=now,
                provisioning_state="Provisioning",
            )
        return StoredService(
            subscription=sub,
            resource_group=rg,
            name=name,
            location=str(ci_get(body, "location") or ""),
            tags=ci_get(body, "tags"),
            properties=props,
            keys=keys
            or {"primary": secrets.token_urlsafe(32), "secondary": secrets.token_urlsafe(32)},
            storage_key=storage_key,
            created_on=now,
            modified_on=now,
            provisioning_state="Provisioning",
        )

    def _parse_body(self, req: Request, definition: str) -> JsonObj | Response:
        try:
            body = req.json()
        except ValueError as exc:
            return arm_error(
                400,
                "InvalidRequestContent",
                f"The request content was invalid and could not be deserialized: {exc}",
            )
        if not isinstance(body, dict):
            return arm_error(
                400, "InvalidRequestContent", "The request content must be a JSON object."
            )
        issues = self.validator.validate(body, definition)
        if issues:
            return self._validation_error(issues)
        return body

    @staticmethod
    def _validation_error(issues: list[Issue]) -> Response:
        return arm_error(
            400,
            "InvalidRequestContent",
            f"The request content was invalid: {'; '.join(map(str, issues))}",
            details=[
                {"code": "ValidationError", "target": i.path, "message": i.message} for i in issues
            ],
        )

    def _guard_update(self, existing: StoredService, body: JsonObj) -> Response | None:
        if existing.read_only:
            return arm_error(
                400,
                "BadRequest",
                "The request is invalid.",
                details=[
                    {
                        "code": "WebServiceIsReadOnly",
                        "message": f"The web service '{existing.name}' is read-only and can "
                        f"no longer be updated or patched, only removed.",
                    }
                ],
            )
        sa = ci_get(ci_get(body, "properties") or {}, "storageAccount")
        new_name = ci_get(sa, "name") if isinstance(sa, dict) else None
        current = existing.storage_account_name
        if new_name is not None and current is not None and new_name.lower() != current.lower():
            return arm_error(
                400,
                "BadRequest",
                "The request is invalid.",
                details=[
                    {
                        "code": "CannotChangeStorageAccount",
                        "message": "The StorageAccount cannot be changed. Currently configured "
                        f"storage account name = '{current}'.",
                    }
                ],
            )
        return None

    def _busy(self, key: tuple[str, str, str]) -> Response | None:
        """Apply ``busy_policy`` when an operation is still running on ``key``."""
        op_id = self._pending.get(key)
        if op_id is None:
            return None
        if self.busy_policy == "429":
            return arm_error(
                429,
                "RetryableErrorDueToAnotherOperation",
                "Another operation is in progress on this web service; retry later.",
                headers={"Retry-After": "1"},  # seconds; ops end on the next poll or two
            )
        op = self.operations[op_id]  # supersede: the older op is done, its state overwritten
        op.status, op.ended, op.previous = "Succeeded", _now_iso(), None
        del self._pending[key]
        return None

    def _start_op(
        self,
        svc_key: tuple[str, str, str],
        sub: str,
        kind: str,
        previous: StoredService | None,
        name: str,
    ) -> tuple[Operation, dict[str, str]]:
        failure = None
        for spec in self._failures:
            if spec.name is None or spec.name.lower() == name.lower():
                failure = spec
                self._failures.remove(spec)
                break
        op = Operation(
            id=uuid.uuid4().hex,
            subscription=sub,
            key=svc_key,
            kind=kind,
            polls_left=self.lro_polls,
            started=_now_iso(),
            previous=copy.deepcopy(previous),
            failure=failure,
        )
        self.operations[op.id] = op
        self._pending[svc_key] = op.id
        url = (
            f"{self.base_url}/subscriptions/{sub}/providers/{PROVIDER}/operationsStatus/"
            f"{op.id}?api-version={API_VERSION}"
        )
        return op, {"Azure-AsyncOperation": url, **self._retry_after()}

    def _retry_after(self) -> dict[str, str]:
        """The ``Retry-After`` of an answer about a running operation (none: no header)."""
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}

    def _tick(self, op: Operation) -> None:
        """One poll of a running operation: count down, then finish it."""
        if op.status != "InProgress":
            return
        op.polls += 1
        if op.polls_left > 0:
            op.polls_left -= 1
            return
        op.ended = _now_iso()
        self._pending.pop(op.key, None)
        svc = self._services.get(op.key)
        if op.failure is None:
            op.status = "Succeeded"
            if svc is not None:
                svc.provisioning_state = "Succeeded"
            return
        op.status = "Failed"
        if op.previous is not None:  # roll back to the definition before this operation
            restored = copy.deepcopy(op.previous)
            restored.provisioning_state = "Failed"
            self._services[op.key] = restored
        elif svc is not None:  # a failed create leaves the resource in Failed state
            svc.provisioning_state = "Failed"

    # -- handlers -------------------------------------------------------------------------

    def _lookup(self, req: Request) -> tuple[tuple[str, str, str], StoredService | None]:
        assert req.match is not None
        key = self._key(req.match["sub"], req.match["rg"], req.match["name"])
        return key, self._services.get(key)

    def _not_found(self, req: Request) -> Response:
        assert req.match is not None
        return arm_error(
            404,
            "ResourceNotFound",
            f"The Resource '{RESOURCE_TYPE}/{req.match['name']}' under resource group "
            f"'{req.match['rg']}' was not found.",
        )

    def _get(self, req: Request) -> Response:
        with self._lock:
            key, svc = self._lookup(req)
            if svc is None:
                return self._not_found(req)
            if self.get_advances_lro and key in self._pending:
                self._tick(self.operations[self._pending[key]])
                svc = self._services[key]
            return Response.json(200, self._view(svc))

    def _head(self, req: Request) -> Response:
        """check_existence_by_id: 204 when the service exists, 404 otherwise (no body)."""
        with self._lock:
            _, svc = self._lookup(req)
        return Response.empty(204 if svc is not None else 404)

    def _put(self, req: Request) -> Response:
        assert req.match is not None
        parsed = self._parse_body(req, "WebService")
        if isinstance(parsed, Response):
            return parsed
        with self._lock:
            key, existing = self._lookup(req)
            if existing is not None:
                refused = self._guard_update(existing, parsed)
                if refused is not None:
                    return refused
                loc = str(ci_get(parsed, "location") or "")
                if _norm_location(loc) != _norm_location(existing.location):
                    return arm_error(
                        400,
                        "InvalidResourceLocation",
                        f"The resource '{existing.name}' already exists in location "
                        f"'{existing.location}' in resource group '{existing.resource_group}'. "
                        f"A resource with the same name cannot be created in location '{loc}'.",
                    )
            busy = self._busy(key)
            if busy is not None:
                return busy
            svc = self._build(
                req.match["sub"], req.match["rg"], req.match["name"], parsed, existing
            )
            self._services[key] = svc
            _, headers = self._start_op(
                key, svc.subscription, "update" if existing else "create", existing, svc.name
            )
            return Response.json(200 if existing else 201, self._view(svc), headers)

    def _patch(self, req: Request) -> Response:
        parsed = self._parse_body(req, "PatchedWebService")
        if isinstance(parsed, Response):
            return parsed
        with self._lock:
            key, existing = self._lookup(req)
            if existing is None:
                return self._not_found(req)
            refused = self._guard_update(existing, parsed)
            if refused is not None:
                return refused
            busy = self._busy(key)
            if busy is not None:
                return busy
            svc = copy.deepcopy(existing)
            patch_props, keys, storage_key = self._sanitize_props(
                ci_get(parsed, "properties") or {}
            )
            for k, v in patch_props.items():
                if v is None:
                    _drop_ci(svc.properties, k)
                else:
                    _replace_ci(svc.properties, k, v)
            if keys:
                svc.keys = keys
            if storage_key is not None:
                svc.storage_key = storage_key
            if ci_lookup(parsed, "tags"):
                svc.tags = ci_get(parsed, "tags")
            svc.modified_on = _now_iso()
            svc.provisioning_state = "Provisioning"
            self._services[key] = svc
            _, headers = self._start_op(key, svc.subscription, "update", existing, svc.name)
            return Response.json(200, self._view(svc), headers)

    def _delete(self, req: Request) -> Response:
        with self._lock:
            key, existing = self._lookup(req)
            if existing is None:
                return Response.empty(204)
            busy = self._busy(key)
            if busy is not None:
                return busy
            del self._services[key]
            _, headers = self._start_op(
                key, existing.subscription, "delete", existing, existing.name
            )
            return Response.empty(202, headers)

    def _list_keys(self, req: Request) -> Response:
        with self._lock:
            _, svc = self._lookup(req)
            if svc is None:
                return self._not_found(req)
            return Response.json(200, dict(svc.keys))

    def _list(self, req: Request) -> Response:
        assert req.match is not None
        sub = req.match["sub"].lower()
        rg = req.match.groupdict().get("rg")
        with self._lock:
            items = [
                self._view(s, sparse=True)
                for k, s in sorted(self._services.items())
                if k[0] == sub and (rg is None or k[1] == rg.lower())
            ]
        try:
            start = int(req.query1("$skiptoken") or 0)
        except ValueError:
            return arm_error(400, "InvalidSkipToken", "The $skiptoken is invalid.")
        page = items[start : start + self.page_size]
        body: JsonObj = {"value": page}
        if start + self.page_size < len(items):
            body["nextLink"] = (
                f"{self.base_url}{req.path}?api-version={API_VERSION}"
                f"&$skiptoken={start + self.page_size}"
            )
        return Response.json(200, body)

    def _op_status(self, req: Request) -> Response:
        assert req.match is not None
        with self._lock:
            op = self.operations.get(req.match["op"])
            if op is None or op.subscription.lower() != req.match["sub"].lower():
                return arm_error(
                    404, "OperationNotFound", f"The operation '{req.match['op']}' was not found."
                )
            self._tick(op)
            prov = {"InProgress": "Provisioning"}.get(op.status, op.status)
            body: JsonObj = {
                "id": req.path,
                "name": op.id,
                "status": op.status,
                "provisioningState": prov,
                "startTime": op.started,
                "percentComplete": 100.0 if op.status != "InProgress" else 50.0,
            }
            headers: dict[str, str] = {}
            if op.ended:
                body["endTime"] = op.ended
            else:
                headers.update(self._retry_after())
            if op.status == "Failed" and op.failure is not None:
                err = {"code": op.failure.code, "message": op.failure.message}
                body["error"] = err
                body["errorInfo"] = dict(err)
            return Response.json(200, body, headers)
