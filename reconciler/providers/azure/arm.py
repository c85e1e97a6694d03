"""Resource Manager ``Microsoft.MachineLearning/webServices`` through azure-mgmt-resource.

Generic resources by id, api-version 2017-01-01. Bodies go out as raw JSON
bytes and come back as raw JSON, so the definition round-trips exactly as the
service holds it, key casing included (its own examples mix ``AssetId`` and
``assetId``). Updates PATCH only ``tags`` and the complete ``assets`` map
(the PATCH merge depth is undocumented; naming the whole map is safe) and
never ``storageAccount``, so the storage account can never change. Every
attempt, retries and LRO polls included, is paced by the subscription's
token buckets; a 429 pauses every worker sharing the pacer.

The fewest requests per update: the PATCH is built from the definition the plan
read (``services.ResourceManager``), operations are polled as ``Retry-After`` says,
else with a short backoff (``BackoffPolling``), and the operation's final GET is
kept as the write's read-back (``just_written``), so an update costs one PATCH, the
polls the service asks for, and one GET.

Retries are ours, not the SDK's defaults: azure-core retries a connection
reset only for GET/PUT/DELETE (never PATCH) and a 502 never on PATCH, so an
apply could fail where a retry would have succeeded. ``IdempotentRetry``
retries every idempotent request (GET, PUT, and PATCH: each PATCH here sends
the same absolute body again) on connection errors, timeouts, 429 and 5xx,
and logs each retry; a POST (not idempotent) is retried only on 429, which
the server answers without acting.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from collections.abc import Callable
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.pipeline.policies import RetryPolicy, SansIOHTTPPolicy
from azure.core.rest import HttpRequest
from azure.mgmt.core.polling.arm_polling import ARMPolling
from azure.mgmt.resource.resources import ResourceManagementClient

from reconciler import errors, redact
from reconciler.providers.azure import config
from reconciler.providers.azurecommon import http, polling, sdk, throttle

API_VERSION = "2017-01-01"
TOKEN_LIFETIME = 3600  # seconds we treat a CI-provided token as valid (it is not refreshed)
BACKOFF_MAX = 30  # seconds: never wait longer than this between attempts
BACKOFF_FACTOR = 0.8  # azure-core's: retries after 0, 1.6, 3.2, 6.4 ... seconds
# Requests that may be sent twice with the same effect. Our PATCH bodies set absolute
# values (tags, the whole assets map), so repeating one changes nothing more.
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"})
THROTTLED = 429
# Seconds a write's final answer stands in for a read-back GET: apply reads back at once,
# in the same worker; anything later (another command, a long pause) reads again.
FRESH_SECONDS = 10.0


class StaticToken:
    """A bearer token obtained elsewhere (e.g. by CI), as an azure-core credential."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + TOKEN_LIFETIME)


class PacingPolicy(SansIOHTTPPolicy[Any, Any]):
    """Per attempt: wait for a token, then learn from the remaining-count headers."""

    def __init__(self, pacer: throttle.Pacer, log: Callable[[str], None]) -> None:
        self.pacer = pacer
        self.log = log

    def on_request(self, request: Any) -> None:
        self.pacer.before(request.http_request.method)

    def on_response(self, request: Any, response: Any) -> None:
        answer = response.http_response
        headers = {k.lower(): v for k, v in answer.headers.items()}
        self.pacer.after(headers)
        method = request.http_request.method
        if answer.status_code == THROTTLED and not _bucket_left(headers, method):
            seconds = http.retry_after(headers)
            self.pacer.throttled(method, 1.0 if seconds is None else seconds)


def _bucket_left(headers: dict[str, str], method: str) -> bool:
    """A 429 that says the subscription still has tokens is about one resource (e.g.
    ``RetryableErrorDueToAnotherOperation``): it must not pause every worker."""
    value = headers.get(f"x-ms-ratelimit-remaining-subscription-{throttle.kind_of(method)}")
    return value is not None and value.strip().isdigit() and int(value) > 0


class IdempotentRetry(RetryPolicy[Any, Any]):
    """azure-core's retry loop with our retriable set, each retry logged."""

    def __init__(self, retries: int, log: Callable[[str], None]) -> None:
        super().__init__(
            retry_total=retries,
            retry_connect=retries,
            retry_read=retries,
            retry_status=retries,
            retry_backoff_max=BACKOFF_MAX,
            retry_backoff_factor=BACKOFF_FACTOR,
        )
        self._method_whitelist = IDEMPOTENT
        self.log = log

    def _is_method_retryable(self, settings: Any, request: Any, response: Any = None) -> bool:
        """Connection errors and 5xx: only a request that is safe to repeat."""
        return str(request.method).upper() in settings["methods"]

    def is_retry(self, settings: Any, response: Any) -> bool:
        status = response.http_response.status_code
        if status == THROTTLED:
            return bool(settings["total"])  # refused unprocessed: safe for any method
        if not self._is_method_retryable(settings, response.http_request):
            return False
        return bool(super().is_retry(settings, response))

    def increment(self, settings: Any, response: Any = None, error: Any = None) -> bool:
        retrying = bool(super().increment(settings, response=response, error=error))
        if retrying and response is not None:
            request = response.http_request
            if error is not None:
                reason = type(error).__name__
            else:
                reason = f"HTTP {response.http_response.status_code}"
            name = str(request.url).split("?", 1)[0].rsplit("/", 1)[-1]
            self.log(
                f"Resource Manager {request.method} {name}: attempt #{len(settings['history'])}/"
                f"{self.total_retries + 1} failed ({reason}); will retry"
            )
        return retrying


class BackoffPolling(ARMPolling):
    """azure-mgmt-core's operation polling, waiting between polls as ``polling.Backoff``
    says: the service's ``Retry-After`` when it gives one, else a short first wait
    growing to ``pollSeconds`` (azure-core would wait ``polling_interval`` every time,
    and takes ``Retry-After: 0`` for no header at all)."""

    def __init__(self, backoff: polling.Backoff, **options: Any) -> None:
        super().__init__(backoff.cap, **options)
        self.backoff = backoff

    def _extract_delay(self) -> float:
        headers = self._pipeline_response.http_response.headers
        return self.backoff.next(http.retry_after(dict(headers.items())))


class WebServices:
    """Read and write ARM web service definitions."""

    def __init__(
        self,
        cfg: config.AzureConfig,
        credential: Any,
        *,
        scrub: redact.Redactor,
        log: Callable[[str], None],
        pacer: throttle.Pacer | None = None,
    ) -> None:
        self.cfg = cfg
        self.scrub = scrub
        self.pacer = pacer or throttle.Pacer()
        # Each web service's definition as its last write's operation ended (the final
        # GET azure-mgmt-core makes), with when: the read-back of that write.
        self._written: dict[str, tuple[float, dict[str, Any]]] = {}
        self.client = ResourceManagementClient(
            credential,
            cfg.subscription_id,
            base_url=cfg.arm_url,
            credential_scopes=[cfg.scope],
            polling_interval=cfg.poll_seconds,
            connection_verify=cfg.verify,
            retry_policy=IdempotentRetry(cfg.retries, log),
            per_retry_policies=[PacingPolicy(self.pacer, log)],
        )

    def resource_id(self, name: str, resource_group: str | None = None) -> str:
        rg = resource_group or self.cfg.resource_group
        return (
            f"/subscriptions/{self.cfg.subscription_id}/resourceGroups/{rg}/providers/"
            f"Microsoft.MachineLearning/webServices/{name}"
        )

    def get(self, rid: str) -> dict[str, Any] | None:
        """The definition as the service returns it, or None when it does not exist."""
        try:
            with sdk.mapped(f"GET web service {rid.rsplit('/', 1)[-1]}", self.scrub):
                raw = self.client.resources.get_by_id(rid, api_version=API_VERSION, cls=_raw)
        except errors.NotFound:
            return None
        if not isinstance(raw, dict):
            raise errors.ProviderError(f"GET web service {rid}: not a JSON object")
        return raw

    def just_written(self, rid: str) -> dict[str, Any] | None:
        """The definition the last write to ``rid`` ended with, once, if that write ended
        within ``FRESH_SECONDS``: its operation's final GET, already a read of the live
        service after the write, so reading it back costs no second GET."""
        stamp, final = self._written.pop(rid, (0.0, None))
        return final if final is not None and time.monotonic() - stamp < FRESH_SECONDS else None

    def list(self, resource_group: str | None = None) -> list[dict[str, Any]]:
        """Every web service of a resource group (sparse: no assets, but with tags), one
        paged GET of the group's ``webServices`` collection (one request per page, each
        paced and retried like any read); empty when the group does not exist."""
        rg = resource_group or self.cfg.resource_group
        url: str | None = (
            f"/subscriptions/{self.cfg.subscription_id}/resourceGroups/{rg}/providers/"
            f"Microsoft.MachineLearning/webServices?api-version={API_VERSION}"
        )
        items: list[dict[str, Any]] = []
        while url:
            page = self._page(url, f"list web services of resource group {rg}")
            if page is None:
                return items
            items.extend(v for v in page.get("value") or [] if isinstance(v, dict))
            link = page.get("nextLink")
            url = link if isinstance(link, str) and link else None
        return items

    def _page(self, url: str, what: str) -> dict[str, Any] | None:
        """One page of a list; None when the collection's parent does not exist."""
        try:
            with sdk.mapped(what, self.scrub):
                answer = self.client.send_request(HttpRequest("GET", url))
                answer.raise_for_status()
        except errors.NotFound:
            return None
        page = json.loads(answer.text() or "null")
        if not isinstance(page, dict) or not isinstance(page.get("value", []), list):
            raise errors.ProviderError(f"{what}: the answer is not a list page")
        return page

    def set_tags(self, rid: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """GET the web service and PATCH only its tags, as ``change`` makes them."""
        current = self.get(rid)
        if current is None:
            return
        key = next((k for k in current if k.lower() == "tags"), "tags")
        self.patch(rid, {key: change(dict(current.get(key) or {}))})

    def patch(self, rid: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """PATCH and wait for the long-running operation to finish; returns the
        definition its final GET read (None if the service answered no body)."""
        return self._write("PATCH", self.client.resources.begin_update_by_id, rid, body)

    def put(self, rid: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """PUT (create) and wait for the long-running operation to finish; returns the
        definition as its final GET read (None if the service answered no body)."""
        return self._write("PUT", self.client.resources.begin_create_or_update_by_id, rid, body)

    def _write(
        self, verb: str, begin: Callable[..., Any], rid: str, body: dict[str, Any]
    ) -> dict[str, Any] | None:
        self._written.pop(rid, None)  # whatever the outcome, an older answer is stale now
        with sdk.mapped(f"{verb} web service {rid.rsplit('/', 1)[-1]}", self.scrub):
            poller = begin(
                rid,
                api_version=API_VERSION,
                parameters=_bytes(body),
                content_type="application/json",
                cls=_raw,
                polling=BackoffPolling(
                    polling.Backoff(self.cfg.poll_seconds),
                    path_format_arguments={"endpoint": self.cfg.arm_url},
                ),
            )
            final = poller.result()
        if not isinstance(final, dict):
            return None
        self._written[rid] = (time.monotonic(), final)
        return final


def _raw(pipeline_response: Any, _deserialized: Any, _headers: Any) -> Any:
    """Keep the service's JSON exactly (no model round trip that renames keys)."""
    text = pipeline_response.http_response.text()
    return json.loads(text) if text else None


def _bytes(body: dict[str, Any]) -> io.BytesIO:
    return io.BytesIO(json.dumps(body).encode("utf-8"))


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
