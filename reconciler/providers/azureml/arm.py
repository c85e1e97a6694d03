"""Resource Manager calls under one Azure ML workspace, through ``azurecommon.http``.

Why not ``azure-ai-ml``: its ``MLClient`` adds requests of its own (the endpoint GET
before every deployment PUT, workspace and datastore lookups, anonymous asset
uploads), strips and refills traffic zeros, and cannot be pointed at a CA bundle and
a base URL without reaching into private settings; each of those would blur the
request counts the bench measures and the fake checks. Why not azure-mgmt-resource's
generic client (the classic backend's): it has no list of child resources and no
POST of an action (``listKeys``), so half the calls would go round it anyway. So
every call is one ``http.Client`` request (its retries, ``Retry-After`` and
redaction), paced per subscription like the classic backend's, with the swagger's
long-running operations followed here: a PUT's ``Azure-AsyncOperation`` is polled to
its end and the resource read back from its own URI (``final-state-via:
original-uri``); a DELETE's ``Location`` is polled until it stops answering 202.
Polls wait as each answer's ``Retry-After`` says, else back off from a short first
wait up to ``pollSeconds`` (``azurecommon.polling``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from reconciler import errors
from reconciler.providers.azurecommon import errors as az_errors
from reconciler.providers.azurecommon import http, polling, throttle
from reconciler.providers.azureml import config

TOKEN_MARGIN = 300  # seconds before a token's expiry we fetch a new one
POLLS_MAX = 100_000  # a bound no operation reaches; the caller's timeout ends it first
IN_PROGRESS = frozenset({"InProgress", "Running", "Accepted", "Creating", "Updating", "Deleting"})
ACCEPTED = 202


class Workspace:
    """The workspace's resources by path suffix (``/onlineEndpoints/x``)."""

    def __init__(
        self,
        cfg: config.AzureMLConfig,
        credential: Any,
        client: http.Client,
        *,
        pacer: throttle.Pacer | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cfg = cfg
        self.credential = credential
        self.client = client
        self.pacer = pacer or throttle.Pacer()
        self.sleep = sleep
        self._token: tuple[str, float] | None = None

    def token(self) -> str:
        """A bearer token for Resource Manager, renewed shortly before it expires."""
        if self._token is None or self._token[1] - TOKEN_MARGIN < time.time():
            got = self.credential.get_token(self.cfg.scope)
            self._token = (str(got.token), float(got.expires_on))
        return self._token[0]

    def call(
        self, method: str, url: str, what: str, body: Any = None, *, idempotent: bool | None = None
    ) -> http.Response:
        """One request, paced to the subscription's buckets."""
        self.pacer.before(method)
        answer = self.client.request(
            method, url, what=what, token=self.token(), body=body, idempotent=idempotent
        )
        self.pacer.after({k.lower(): v for k, v in answer.headers.items()})
        return answer

    def get(self, suffix: str, what: str) -> dict[str, Any] | None:
        """The resource, or None when it does not exist."""
        return self.look(suffix, what)[0]

    def look(self, suffix: str, what: str) -> tuple[dict[str, Any] | None, float | None]:
        """The resource (None when it does not exist) and the answer's ``Retry-After``:
        what a poll of a job needs to know when to look again."""
        try:
            answer = self.call("GET", self.cfg.url(suffix), what)
        except errors.NotFound:
            return None, None
        found = answer.json()
        if not isinstance(found, dict):
            raise errors.ProviderError(f"{what}: the answer is not a JSON object")
        return found, http.retry_after(answer.headers)

    def list(self, suffix: str, what: str) -> list[dict[str, Any]]:
        """Every item of a collection, following ``nextLink``."""
        items: list[dict[str, Any]] = []
        url: str | None = self.cfg.url(suffix)
        while url:
            page = self.call("GET", url, what).json()
            if not isinstance(page, dict) or not isinstance(page.get("value", []), list):
                raise errors.ProviderError(f"{what}: the answer is not a list page")
            items.extend(v for v in page.get("value", []) if isinstance(v, dict))
            url = page.get("nextLink")
        return items

    def put(self, suffix: str, body: Any, what: str) -> dict[str, Any]:
        """A synchronous PUT (model versions, jobs): the resource as answered."""
        answer = self.call("PUT", self.cfg.url(suffix), what, body).json()
        if not isinstance(answer, dict):
            raise errors.ProviderError(f"{what}: the answer is not a JSON object")
        return answer

    def put_and_wait(self, suffix: str, body: Any, what: str, timeout: float) -> dict[str, Any]:
        """PUT, follow the operation to its end, then read the resource back. A failed
        operation is an error carrying the service's message."""
        answer = self.call("PUT", self.cfg.url(suffix), what, body)
        status = self._operation(answer, what, timeout)
        final = self.get(suffix, what)
        if final is None:
            raise errors.ProviderError(f"{what}: gone after the operation ({status})")
        return final

    def delete_and_wait(self, suffix: str, what: str, timeout: float) -> None:
        """DELETE and poll its ``Location`` until the operation stops answering 202."""
        answer = self.call("DELETE", self.cfg.url(suffix), what)
        deadline = time.monotonic() + timeout
        location = _header(answer, "location")
        backoff = polling.Backoff(self.cfg.poll_seconds)
        while answer.status == ACCEPTED and location:
            self._pause(answer, backoff, deadline, what)
            answer = self.call("GET", location, f"{what} (operation)")

    def _operation(self, answer: http.Response, what: str, timeout: float) -> str:
        """Poll ``Azure-AsyncOperation`` to a terminal status; "Succeeded" or an error."""
        url = _header(answer, "azure-asyncoperation")
        if not url:
            return "Succeeded"  # 200: done in the answer itself
        deadline = time.monotonic() + timeout
        backoff = polling.Backoff(self.cfg.poll_seconds)
        for _ in range(POLLS_MAX):
            answer = self.call("GET", url, f"{what} (operation)")
            body = answer.json() or {}
            status = str(body.get("status", ""))
            if status and status not in IN_PROGRESS:
                if status != "Succeeded":
                    raise az_errors.ClientError(
                        f"{what}: operation {status}: {az_errors.server_message(_error(body))}"
                    )
                return status
            self._pause(answer, backoff, deadline, what)
        raise errors.ProviderError(f"{what}: the operation never ended")

    def _pause(
        self, answer: http.Response, backoff: polling.Backoff, deadline: float, what: str
    ) -> None:
        """Wait as the last answer's ``Retry-After`` says, else as ``backoff`` does."""
        if time.monotonic() > deadline:
            raise errors.ProviderError(f"{what}: the operation did not end in time")
        self.sleep(backoff.next(http.retry_after(answer.headers)))


def _header(answer: http.Response, name: str) -> str:
    return next((v for k, v in answer.headers.items() if k.lower() == name), "")


def _error(body: dict[str, Any]) -> str:
    """The operation's ``error`` as an error body ``server_message`` reads."""
    return json.dumps({"error": body.get("error") or {}})
