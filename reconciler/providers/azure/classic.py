"""Classic (Studio) web service endpoints, through the management API.

A classic predictive web service is retrained by PATCHing a *non-default*
endpoint's ``Resources``: the trained-model resource's ``Location``
(BaseLocation + RelativeLocation + a read SAS). Endpoints carry no tags, so
the ownership record retrain keeps for them (fingerprint, version) lives in
one blob, ``state/classic.json``, read once per observation.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from reconciler import errors, model
from reconciler.providers.azure import backend
from reconciler.providers.azurecommon import blobs as blob_store
from reconciler.providers.azurecommon import http

STATE_PATH = "state/classic.json"
DEFAULT_THROTTLE = "Low"  # Studio's default; pins MaxConcurrentCalls at 4


def address(ep: model.Endpoint) -> backend.Classic:
    """The classic endpoint's address (only classic endpoints are dispatched here)."""
    found = backend.classic_address(ep)
    if found is None:
        raise errors.ProviderError(f"endpoint {ep.name} is not a classic endpoint")
    return found


def key_of(ep: model.Endpoint) -> str:
    return address(ep).key


def model_location(resource: Mapping[str, Any]) -> str | None:
    """BaseLocation + RelativeLocation, without the SAS (the identity of the blob)."""
    loc = resource.get("Location") or {}
    base, rel = loc.get("BaseLocation"), loc.get("RelativeLocation")
    if not base or not rel:
        return None
    return f"{str(base).rstrip('/')}/{str(rel).lstrip('/')}"


class Endpoints:
    def __init__(self, client: http.Client, store: blob_store.BlobStore, base_url: str) -> None:
        self.client = client
        self.store = store
        self.base_url = base_url
        self._records_lock = threading.Lock()  # one apply updates endpoints in parallel

    def _service_url(self, ep: model.Endpoint) -> str:
        a = address(ep)
        return f"{self.base_url}/workspaces/{quote(a.workspace)}/webservices/{quote(a.web_service)}"

    def _url(self, ep: model.Endpoint) -> str:
        return f"{self._service_url(ep)}/endpoints/{quote(address(ep).endpoint)}"

    @staticmethod
    def _token(ep: model.Endpoint) -> str:
        return address(ep).api_key.reveal()

    def get(self, ep: model.Endpoint) -> dict[str, Any] | None:
        try:
            answer = self.client.request(
                "GET",
                self._url(ep),
                what=f"GET endpoint {key_of(ep)}",
                token=self._token(ep),
                ok=(200,),
            )
        except errors.NotFound:
            return None
        body = answer.json()
        if not isinstance(body, dict):
            raise errors.ProviderError(f"GET endpoint {key_of(ep)}: not a JSON object")
        return body

    def add(self, ep: model.Endpoint) -> None:
        """Add the missing non-default endpoint (it starts with the default's resources)."""
        self._refuse_default(ep)
        a = address(ep)
        body = {
            "WebServiceId": a.web_service,
            "EndpointName": a.endpoint,
            "Description": f"managed by retrain ({ep.name})",
            "ThrottleLevel": DEFAULT_THROTTLE,
            "MaxConcurrentCalls": None,
        }
        self.client.request(
            "PUT",
            self._url(ep),
            what=f"add endpoint {key_of(ep)}",
            token=self._token(ep),
            body=body,
            ok=(200, 201, 204),
        )

    def patch(self, ep: model.Endpoint, path: str) -> None:
        """Point the trained-model resource at the blob ``path`` of our container."""
        self._refuse_default(ep)
        body = {
            "Resources": [
                {
                    "Name": ep.asset,
                    "Location": {
                        "BaseLocation": self.store.account_url,
                        "RelativeLocation": self.store.relative(path),
                        "SasBlobToken": self.store.sas(path),
                    },
                }
            ]
        }
        self.client.request(
            "PATCH",
            self._url(ep),
            what=f"PATCH endpoint {key_of(ep)}",
            token=self._token(ep),
            body=body,
            ok=(200, 202, 204),
        )

    def _refuse_default(self, ep: model.Endpoint) -> None:
        """The default endpoint's model cannot be replaced; never try."""
        answer = self.client.request(
            "GET",
            self._service_url(ep),
            what=f"GET web service {address(ep).web_service}",
            token=self._token(ep),
            ok=(200,),
        )
        info = answer.json()
        default = str((info or {}).get("DefaultEndpointName") or "default")
        if default.lower() == address(ep).endpoint.lower():
            raise errors.ProviderError(
                f"refusing to patch {key_of(ep)}: it is the web service's default endpoint",
                where=ep.name,
            )

    # -- ownership records ------------------------------------------------------
    def records(self) -> dict[str, dict[str, str]]:
        text = self.store.read_text(STATE_PATH)
        if text is None:
            return {}
        try:
            data = json.loads(text)
        except ValueError as e:
            raise errors.ProviderError(f"{STATE_PATH} is not JSON: {e}") from e
        return data if isinstance(data, dict) else {}

    def drop_record(self, key: str) -> None:
        """Forget the ownership record of the endpoint ``key`` names (under the lock)."""
        with self._records_lock:
            records = self.records()
            if records.pop(key, None) is not None:
                self.store.write_text(STATE_PATH, json.dumps(records, indent=2, sort_keys=True))

    def set_record(self, ep: model.Endpoint, tags: Mapping[str, str]) -> None:
        """Record ownership. Other processes are kept out by the apply lock; this
        process's parallel updates by a thread lock."""
        with self._records_lock:
            records = self.records()
            records[key_of(ep)] = dict(tags)
            self.store.write_text(STATE_PATH, json.dumps(records, indent=2, sort_keys=True))
