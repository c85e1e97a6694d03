"""Fake Azure ML Studio (classic) management API: web services and their endpoints.

Why: a *classic* web service is retrained by adding a non-default endpoint and PATCHing that
endpoint's ``Resources`` to point at the new ``.ilearner`` (reference §4). The rules that make
this error-prone — the default endpoint cannot be patched, a training web service has no
updatable resources, resource names must match exactly — are exactly what the reconciler must
get right, so the fake enforces them.

Paths (relative to the mount prefix, standing in for ``https://management.azureml.net``):

* ``GET    workspaces/{ws}/webservices`` and ``.../webservices/{wsId}``
* ``GET    workspaces/{ws}/webservices/{wsId}/endpoints``          → array of endpoint objects
* ``GET    workspaces/{ws}/webservices/{wsId}/endpoints/{name}``   → endpoint object (§4.2)
* ``PUT    .../endpoints/{name}``  add (or update) a non-default endpoint → 200 endpoint object
* ``PATCH  .../endpoints/{name}``  ``{"Resources": [{Name, Location: {...}}]}`` → 204
* ``DELETE .../endpoints/{name}``  → 204 (the default endpoint cannot be deleted: 400)

Auth: ``Authorization: Bearer <workspace token>``, or the endpoint's own Primary/Secondary key
for calls on that endpoint (the retrain doc's PATCH uses the endpoint key). Status codes are
undocumented beyond "2xx"; the fake picks 200 for reads and add, 204 for PATCH and DELETE, so a
client must GET to read back. New endpoints start with the default endpoint's resources.
When ``verify_blobs`` is on, a PATCHed location on loopback must be readable with its SAS, else
400 "The retraining model URL is invalid" (the error reported in azuremlps#47); locations on
other hosts are stored unchecked (this fake never leaves loopback).
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests

from .bes import FakeBatchExecution, Trainer, is_loopback_url
from .httpserver import FakeHTTPServer, Request, Response

JsonObj = dict[str, Any]

DEFAULT_ENDPOINT = "default"
# ThrottleLevel Low pins MaxConcurrentCalls at 4 (reference §4.2); High defaults to 20 here.
LOW_THROTTLE_CONCURRENCY = 4
HIGH_THROTTLE_DEFAULT_CONCURRENCY = 20
MAX_CONCURRENT_CALLS = 200  # the service's upper bound for High throttle endpoints
# Seconds to wait for the loopback blob check of a PATCHed location.
BLOB_CHECK_TIMEOUT_S = 10
TRAINING_NOT_UPDATABLE = (
    "Sorry, but this feature is not supported or available in this context. This Web Service "
    "has no updatable resources."
)
DEFAULT_NOT_UPDATABLE = (
    "The trained model for the default endpoint cannot be replaced. To retrain the web "
    "service, you must add a new endpoint."
)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _error(status: int, code: str, message: str, detail: str | None = None) -> Response:
    err: JsonObj = {"code": code, "message": message}
    if detail:
        err["details"] = [{"code": detail, "message": message}]
    return Response.json(status, {"error": err})


@dataclass
class Endpoint:
    name: str
    description: str
    creation_time: str
    endpoint_id: str
    primary_key: str
    secondary_key: str
    throttle_level: str = "Low"
    max_concurrent_calls: int = LOW_THROTTLE_CONCURRENCY
    diagnostics_trace_level: str = "None"
    resources: list[JsonObj] = field(default_factory=list)


@dataclass
class WebService:
    id: str
    name: str
    workspace_id: str
    description: str
    training: bool
    creation_time: str
    default_endpoint: str = DEFAULT_ENDPOINT
    endpoints: dict[str, Endpoint] = field(default_factory=dict)  # lower(name) -> endpoint
    trainer: Trainer | None = None
    model_outputs: frozenset[str] = frozenset()


class FakeClassicManagement:
    """The classic management side of the fake."""

    def __init__(
        self,
        *,
        bes: FakeBatchExecution | None = None,
        verify_blobs: bool = True,
        ca_bundle: str | None = None,
    ) -> None:
        self.bes = bes
        self.verify_blobs = verify_blobs
        self.ca_bundle = ca_bundle
        self.workspace_tokens: dict[str, str] = {}  # lower(ws id) -> token
        self.services: dict[tuple[str, str], WebService] = {}
        self._lock = threading.RLock()
        self._server: FakeHTTPServer | None = None
        self._prefix = ""

    # -- setup ----------------------------------------------------------------------------

    def mount(self, server: FakeHTTPServer, prefix: str = "/classic") -> None:
        self._server = server
        self._prefix = prefix.rstrip("/")
        p = re.escape(self._prefix)
        ws = rf"(?i){p}/workspaces/(?P<ws>[^/]+)/webservices"
        one = rf"{ws}/(?P<svc>[^/]+)"
        ep = rf"{one}/endpoints/(?P<ep>[^/]+)"
        server.add_route("GET", ws, self._list_services, "classic.list_services")
        server.add_route("GET", one, self._get_service, "classic.get_service")
        server.add_route("GET", rf"{one}/endpoints", self._list_endpoints, "classic.list_endpoints")
        server.add_route("GET", ep, self._get_endpoint, "classic.get_endpoint")
        server.add_route("PUT", ep, self._add_endpoint, "classic.put_endpoint")
        server.add_route("PATCH", ep, self._patch_endpoint, "classic.patch_endpoint")
        server.add_route("DELETE", ep, self._delete_endpoint, "classic.delete_endpoint")

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("not mounted")
        return self._server.base_url + self._prefix

    def add_workspace(self, workspace_id: str, token: str | None = None) -> str:
        """Declare a workspace and its authorization token (generated if omitted)."""
        token = token or secrets.token_urlsafe(24)
        with self._lock:
            self.workspace_tokens[workspace_id.lower()] = token
        return token

    def seed_web_service(
        self,
        workspace_id: str,
        web_service_id: str,
        name: str,
        *,
        resources: list[JsonObj] | None = None,
        training: bool = False,
        trainer: Trainer | None = None,
        model_outputs: set[str] | frozenset[str] = frozenset(),
        description: str = "",
        default_endpoint_name: str = DEFAULT_ENDPOINT,
        default_endpoint_keys: tuple[str, str] | None = None,
    ) -> Endpoint:
        """Create a web service with its default endpoint; returns that endpoint.

        ``resources`` are the updatable resources ([{Name, Kind, Location}]) of a predictive
        service. A ``training`` service has none; with a ``trainer`` and a mounted BES, its
        endpoints' ApiLocation accept BES jobs with the endpoint's primary key.
        """
        if workspace_id.lower() not in self.workspace_tokens:
            self.add_workspace(workspace_id)
        svc = WebService(
            id=web_service_id,
            name=name,
            workspace_id=workspace_id,
            description=description,
            training=training,
            creation_time=_now(),
            default_endpoint=default_endpoint_name,
            trainer=trainer,
            model_outputs=frozenset(model_outputs),
        )
        with self._lock:
            self.services[(workspace_id.lower(), web_service_id.lower())] = svc
        return self.seed_endpoint(
            workspace_id,
            web_service_id,
            default_endpoint_name,
            resources=[] if training else (resources or []),
            keys=default_endpoint_keys,
        )

    def seed_endpoint(
        self,
        workspace_id: str,
        web_service_id: str,
        name: str,
        *,
        resources: list[JsonObj] | None = None,
        keys: tuple[str, str] | None = None,
        description: str = "",
        throttle_level: str = "Low",
    ) -> Endpoint:
        """Add an endpoint directly. ``resources`` None copies the default endpoint's."""
        with self._lock:
            svc = self.services[(workspace_id.lower(), web_service_id.lower())]
            if resources is None:
                default = svc.endpoints.get(svc.default_endpoint.lower())
                resources = copy.deepcopy(default.resources) if default else []
            primary, secondary = keys or (secrets.token_urlsafe(32), secrets.token_urlsafe(32))
            ep = Endpoint(
                name=name,
                description=description,
                creation_time=_now(),
                endpoint_id=uuid.uuid4().hex,
                primary_key=primary,
                secondary_key=secondary,
                throttle_level=throttle_level,
                resources=copy.deepcopy(resources),
            )
            svc.endpoints[name.lower()] = ep
            self._register_bes(svc, ep)
            return ep

    def endpoint(self, workspace_id: str, web_service_id: str, name: str) -> Endpoint:
        with self._lock:
            svc = self.services[(workspace_id.lower(), web_service_id.lower())]
            return copy.deepcopy(svc.endpoints[name.lower()])

    def endpoint_view(self, workspace_id: str, web_service_id: str, name: str) -> JsonObj:
        """The endpoint object a GET returns, without making a request."""
        with self._lock:
            svc = self.services[(workspace_id.lower(), web_service_id.lower())]
            return self._endpoint_view(svc, svc.endpoints[name.lower()])

    def _bes_path(self, svc: WebService, ep: Endpoint) -> str:
        return f"workspaces/{svc.workspace_id}/services/{ep.endpoint_id}"

    def _register_bes(self, svc: WebService, ep: Endpoint) -> None:
        if self.bes is not None and svc.training and svc.trainer is not None:
            self.bes.register_training_service(
                self._bes_path(svc, ep),
                (ep.primary_key, ep.secondary_key),
                svc.trainer,
                model_outputs=svc.model_outputs,
            )

    # -- views ----------------------------------------------------------------------------

    def _service_view(self, svc: WebService) -> JsonObj:
        return {
            "Id": svc.id,
            "Name": svc.name,
            "Description": svc.description,
            "CreationTime": svc.creation_time,
            "WorkspaceId": svc.workspace_id,
            "DefaultEndpointName": svc.default_endpoint,
            "EndpointCount": len(svc.endpoints),
        }

    def _endpoint_view(self, svc: WebService, ep: Endpoint) -> JsonObj:
        bes_base = (
            self.bes.base_url
            if self.bes is not None and self.bes.mounted
            else "https://ussouthcentral.services.azureml.net"
        )  # placeholder host
        return {
            "Name": ep.name,
            "Description": ep.description,
            "CreationTime": ep.creation_time,
            "WebServiceId": svc.id,
            "WorkspaceId": svc.workspace_id,
            "HelpLocation": (
                f"https://studio.azureml.net/apihelp/workspaces/{svc.workspace_id}"
                f"/webservices/{svc.id}/endpoints/{ep.endpoint_id}"
            ),
            "PrimaryKey": ep.primary_key,
            "SecondaryKey": ep.secondary_key,
            "ApiLocation": f"{bes_base}/{self._bes_path(svc, ep)}",
            "ExperimentLocation": (
                f"https://studio.azureml.net/Home/ViewWorkspace/"
                f"{svc.workspace_id}#Workspaces/Experiments"
            ),
            "MaxConcurrentCalls": ep.max_concurrent_calls,
            "DiagnosticsTraceLevel": ep.diagnostics_trace_level,
            "ThrottleLevel": ep.throttle_level,
            "Resources": copy.deepcopy(ep.resources),
        }

    # -- plumbing -------------------------------------------------------------------------

    def _authorize(self, req: Request, ep: Endpoint | None = None) -> Response | None:
        assert req.match is not None
        token = req.bearer_token()
        ws_token = self.workspace_tokens.get(req.match["ws"].lower())
        if ws_token is None:
            return _error(
                404, "NotFound", f"Workspace '{req.match['ws']}' not found.", "WorkspaceNotFound"
            )
        allowed = {ws_token}
        if ep is not None:
            allowed |= {ep.primary_key, ep.secondary_key}
        if token is None or token not in allowed:
            return _error(
                401,
                "Unauthorized",
                "Authorization failed for this management request.",
                "ManagementRequestUnauthorized",
            )
        return None

    def _service(self, req: Request) -> WebService | Response:
        assert req.match is not None
        svc = self.services.get((req.match["ws"].lower(), req.match["svc"].lower()))
        if svc is None:
            denied = self._authorize(req)
            return denied or _error(
                404,
                "NotFound",
                f"Web service '{req.match['svc']}' not found.",
                "WebServiceNotFound",
            )
        return svc

    def _endpoint(self, req: Request) -> tuple[WebService, Endpoint] | Response:
        assert req.match is not None
        svc = self._service(req)
        if isinstance(svc, Response):
            return svc
        ep = svc.endpoints.get(req.match["ep"].lower())
        denied = self._authorize(req, ep)
        if denied is not None:
            return denied
        if ep is None:
            return _error(
                404, "NotFound", f"Endpoint '{req.match['ep']}' not found.", "EndpointNotFound"
            )
        return svc, ep

    # -- handlers -------------------------------------------------------------------------

    def _list_services(self, req: Request) -> Response:
        assert req.match is not None
        with self._lock:
            denied = self._authorize(req)
            if denied is not None:
                return denied
            ws = req.match["ws"].lower()
            return Response.json(
                200, [self._service_view(s) for k, s in sorted(self.services.items()) if k[0] == ws]
            )

    def _get_service(self, req: Request) -> Response:
        with self._lock:
            svc = self._service(req)
            if isinstance(svc, Response):
                return svc
            denied = self._authorize(req)
            return denied or Response.json(200, self._service_view(svc))

    def _list_endpoints(self, req: Request) -> Response:
        with self._lock:
            svc = self._service(req)
            if isinstance(svc, Response):
                return svc
            denied = self._authorize(req)
            return denied or Response.json(
                200, [self._endpoint_view(svc, e) for e in svc.endpoints.values()]
            )

    def _get_endpoint(self, req: Request) -> Response:
        with self._lock:
            found = self._endpoint(req)
            if isinstance(found, Response):
                return found
            return Response.json(200, self._endpoint_view(*found))

    def _add_endpoint(self, req: Request) -> Response:
        assert req.match is not None
        with self._lock:
            svc = self._service(req)
            if isinstance(svc, Response):
                return svc
            denied = self._authorize(req)
            if denied is not None:
                return denied
            try:
                body = req.json() if req.body else {}
            except ValueError as exc:
                return _error(
                    400, "BadArgument", f"The request body is not JSON: {exc}", "RequestBodyInvalid"
                )
            if not isinstance(body, dict):
                return _error(
                    400,
                    "BadArgument",
                    "The request body must be a JSON object.",
                    "RequestBodyInvalid",
                )
            name = req.match["ep"]
            if body.get("EndpointName") not in (None, name):
                return _error(
                    400, "BadArgument", "EndpointName does not match the URL.", "RequestBodyInvalid"
                )
            level = str(body.get("ThrottleLevel") or "Low")
            if level.lower() not in ("low", "high"):
                return _error(
                    400, "BadArgument", "ThrottleLevel must be High or Low.", "RequestBodyInvalid"
                )
            calls = body.get("MaxConcurrentCalls")
            if level.lower() == "low":
                calls = LOW_THROTTLE_CONCURRENCY
            elif calls is None:
                calls = HIGH_THROTTLE_DEFAULT_CONCURRENCY
            if not isinstance(calls, int) or not 1 <= calls <= MAX_CONCURRENT_CALLS:
                return _error(
                    400, "BadArgument", "MaxConcurrentCalls must be 1-200.", "RequestBodyInvalid"
                )
            ep = svc.endpoints.get(name.lower())
            if ep is None:
                if name.lower() == svc.default_endpoint.lower():
                    return _error(400, "BadArgument", "The default endpoint already exists.")
                ep = self.seed_endpoint(svc.workspace_id, svc.id, name)
            ep.description = str(body.get("Description") or ep.description)
            ep.throttle_level = "High" if level.lower() == "high" else "Low"
            ep.max_concurrent_calls = calls
            return Response.json(200, self._endpoint_view(svc, ep))

    def _patch_endpoint(self, req: Request) -> Response:
        with self._lock:
            found = self._endpoint(req)
            if isinstance(found, Response):
                return found
            svc, ep = found
            if svc.training:
                return _error(400, "BadArgument", TRAINING_NOT_UPDATABLE)
            if ep.name.lower() == svc.default_endpoint.lower():
                return _error(400, "BadArgument", DEFAULT_NOT_UPDATABLE)
            try:
                body = req.json()
            except ValueError as exc:
                return _error(
                    400, "BadArgument", f"The request body is not JSON: {exc}", "RequestBodyInvalid"
                )
            resources = body.get("Resources") if isinstance(body, dict) else None
            if not isinstance(resources, list) or not resources:
                return _error(
                    400,
                    "BadArgument",
                    "The request body must contain a non-empty 'Resources' array.",
                    "RequestBodyInvalid",
                )
            by_name = {r["Name"]: r for r in ep.resources}
            updates: list[tuple[JsonObj, JsonObj]] = []
            for item in resources:
                if not isinstance(item, dict) or not isinstance(item.get("Name"), str):
                    return _error(
                        400, "BadArgument", "Each resource needs a 'Name'.", "RequestBodyInvalid"
                    )
                target = by_name.get(item["Name"])
                if target is None:
                    return _error(
                        400,
                        "BadArgument",
                        f"Resource '{item['Name']}' is not an updatable resource of this "
                        f"endpoint. Updatable resources: {sorted(by_name)}.",
                        "RequestBodyInvalid",
                    )
                loc = item.get("Location")
                if not isinstance(loc, dict) or not all(
                    isinstance(loc.get(k), str) and loc.get(k)
                    for k in ("BaseLocation", "RelativeLocation")
                ):
                    return _error(
                        400,
                        "BadArgument",
                        f"Resource '{item['Name']}' needs a "
                        f"Location with BaseLocation and RelativeLocation.",
                        "RequestBodyInvalid",
                    )
                problem = self._check_blob(loc)
                if problem:
                    return _error(
                        400,
                        "BadArgument",
                        f"The retraining model URL is invalid: {problem}",
                        "InvalidBlob",
                    )
                updates.append((target, loc))
            for target, loc in updates:  # all-or-nothing: validate everything first
                target["Location"] = {
                    "BaseLocation": loc["BaseLocation"],
                    "RelativeLocation": loc["RelativeLocation"],
                    "SasBlobToken": loc.get("SasBlobToken") or "",
                }
            return Response.empty(204)

    def _check_blob(self, loc: JsonObj) -> str | None:
        url = (
            str(loc["BaseLocation"])
            + str(loc["RelativeLocation"])
            + str(loc.get("SasBlobToken") or "")
        )
        if not self.verify_blobs or not is_loopback_url(url):
            return None
        try:
            resp = requests.head(url, timeout=BLOB_CHECK_TIMEOUT_S, verify=self.ca_bundle or True)
        except requests.RequestException as exc:
            return f"cannot reach the blob ({type(exc).__name__})"
        if resp.status_code != 200:
            return f"HEAD of the blob answered {resp.status_code}"
        return None

    def _delete_endpoint(self, req: Request) -> Response:
        with self._lock:
            found = self._endpoint(req)
            if isinstance(found, Response):
                return found
            svc, ep = found
            if ep.name.lower() == svc.default_endpoint.lower():
                return _error(400, "BadArgument", "The default endpoint cannot be deleted.")
            del svc.endpoints[ep.name.lower()]
            if self.bes is not None:
                self.bes.services.pop(self._bes_path(svc, ep).lower(), None)
            return Response.empty(204)
