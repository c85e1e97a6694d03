"""Resource Manager ``Microsoft.MachineLearning/webServices`` through azure-mgmt-resource.

Generic resources by id, api-version 2017-01-01. Bodies go out as raw JSON
bytes and come back as raw JSON, so the definition round-trips exactly as the
service holds it, key casing included (its own examples mix ``AssetId`` and
``assetId``). Updates PATCH only ``tags`` and the complete ``assets`` map
(the PATCH merge depth is undocumented; naming the whole map is safe) and
never ``storageAccount``, so the storage account can never change. Every
attempt, retries and LRO polls included, is paced by the subscription's
token buckets and logged when it fails.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from collections.abc import Callable
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.mgmt.resource.resources import ResourceManagementClient

from reconciler import errors, redact
from reconciler.providers.azure import config, sdk, throttle

API_VERSION = "2017-01-01"
TOKEN_LIFETIME = 3600  # seconds we treat a CI-provided token as valid (it is not refreshed)


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
        http = response.http_response
        self.pacer.after({k.lower(): v for k, v in http.headers.items()})
        if http.status_code == 429 or http.status_code >= 500:
            after = http.headers.get("Retry-After", "?")
            self.log(
                f"Resource Manager {request.http_request.method} answered "
                f"{http.status_code} (Retry-After {after}); will retry"
            )


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
        self.client = ResourceManagementClient(
            credential,
            cfg.subscription_id,
            base_url=cfg.arm_url,
            credential_scopes=[cfg.scope],
            polling_interval=cfg.poll_seconds,
            connection_verify=cfg.verify,
            retry_total=cfg.retries,
            retry_backoff_max=30,
            per_retry_policies=[PacingPolicy(pacer or throttle.Pacer(), log)],
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

    def patch(self, rid: str, body: dict[str, Any]) -> None:
        """PATCH and wait for the long-running operation to finish."""
        self._write("PATCH", self.client.resources.begin_update_by_id, rid, body)

    def put(self, rid: str, body: dict[str, Any]) -> None:
        """PUT (create) and wait for the long-running operation to finish."""
        self._write("PUT", self.client.resources.begin_create_or_update_by_id, rid, body)

    def _write(self, verb: str, begin: Callable[..., Any], rid: str, body: dict[str, Any]) -> None:
        with sdk.mapped(f"{verb} web service {rid.rsplit('/', 1)[-1]}", self.scrub):
            poller = begin(
                rid,
                api_version=API_VERSION,
                parameters=_bytes(body),
                content_type="application/json",
                cls=_raw,
            )
            poller.result()


def _raw(pipeline_response: Any, _deserialized: Any, _headers: Any) -> Any:
    """Keep the service's JSON exactly (no model round trip that renames keys)."""
    text = pipeline_response.http_response.text()
    return json.loads(text) if text else None


def _bytes(body: dict[str, Any]) -> io.BytesIO:
    return io.BytesIO(json.dumps(body).encode("utf-8"))


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
