"""Online endpoints and deployments (``OnlineEndpoints_*``, ``OnlineDeployments_*``).

Rules, each from the swagger subset unless marked:

* PUT bodies validate against ``OnlineEndpointTrackedResource`` /
  ``OnlineDeploymentTrackedResource``, names against the path pattern
  ``^[a-zA-Z0-9][a-zA-Z0-9\\-_]{0,254}$``; PUT answers 201 +
  ``Azure-AsyncOperation`` for create *and* update (the SDK always begins an LRO; inference).
  While it runs the resource shows ``Creating``/``Updating``, then ``Succeeded``.
* PATCH bodies are ``PartialMinimalTrackedResourceWithIdentity`` (endpoint: tags, identity) and
  ``PartialMinimalTrackedResourceWithSku`` (deployment: tags, sku); both are closed
  (``additionalProperties: false``), so ``traffic`` or ``model`` in a PATCH is a 400 naming the
  field. PATCH replaces ``tags`` wholesale and merges ``sku`` fields; 202 + ``Location``.
* DELETE answers 202 + ``Location``; the resource shows ``Deleting`` until the operation ends;
  a missing resource is 204. Deleting an endpoint deletes its deployments (docs). A deployment
  with live traffic cannot be deleted (docs; 400); one with mirror traffic loses its mirror
  entry (inference).
* ``location`` is create-only (``x-ms-mutability``), as are a deployment's ``instanceType`` and
  its ``endpointComputeType``: changing one on PUT is a 400 ``UserError`` / ``Immutable``.
* ``keys`` is create-only and "always returned as null": GET shows ``"keys": null``; use
  ``listKeys``.
* A deployment's ``model`` must name an existing model version of the workspace, as its ARM id
  (``/subscriptions/.../models/{name}/versions/{v}``) or ``azureml:{name}:{version}``
  (inference: the reference found only the SDK's message for these forms).
* Server-filled on GET: ``id``, ``name``, ``type``, ``systemData``, ``provisioningState``,
  ``scoringUri``, ``swaggerUri``; on deployments the swagger defaults of ``scaleSettings``,
  ``requestSettings``, probes, ``appInsightsEnabled``, ``egressPublicNetworkAccess`` (inference:
  the real service fills defaults; which ones exactly is not documented).
* A second write while an operation runs on the same resource is 409 ``Conflict`` (inference).
"""

from __future__ import annotations

import copy
import re
import secrets
import uuid
from typing import Any

from tests.fakes.httpserver import FakeHTTPServer, Request, Response
from tests.fakes.swagger import ci_get, ci_lookup

from . import traffic as rules
from .common import (
    PROVIDER,
    SEG,
    WS_PATH,
    Operation,
    arm_error,
    not_found,
    parse_json_object,
    system_data,
    user_error,
    validation_error,
)
from .state import Deployment, Endpoint, State, Tracked, Workspace, new_keys

JsonObj = dict[str, Any]

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$")  # swagger path parameter
EP_TYPE = f"{PROVIDER}/workspaces/onlineEndpoints"
DEP_TYPE = f"{EP_TYPE}/deployments"
# Properties the server owns; sent back by a client (GET → edit → PUT), they are ignored.
EP_READONLY = ("provisioningState", "scoringUri", "swaggerUri")
DEP_READONLY = ("provisioningState",)
PROBE_DEFAULTS = {
    "failureThreshold": 30,
    "successThreshold": 1,
    "period": "PT10S",
    "timeout": "PT2S",
}
DEPLOYMENT_DEFAULTS: JsonObj = {
    "scaleSettings": {"scaleType": "Default"},
    "requestSettings": {"maxConcurrentRequestsPerInstance": 1, "requestTimeout": "PT5S"},
    "livenessProbe": PROBE_DEFAULTS,
    "readinessProbe": PROBE_DEFAULTS,
    "appInsightsEnabled": False,
    "egressPublicNetworkAccess": "Enabled",
    "instanceType": "Standard_F4s_v2",
}
_MODEL_ID = re.compile(
    r"(?:azureml:)?/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)/models/(?P<name>[^/]+)"
    r"/versions/(?P<version>[^/]+)",
    re.I,
)
_MODEL_SHORT = re.compile(r"azureml:(?P<name>[^:/]+):(?P<version>[^:/]+)", re.I)


def strip(props: JsonObj, names: tuple[str, ...]) -> JsonObj:
    out = copy.deepcopy(props)
    for name in (*names, "keys"):
        for k in ci_lookup(out, name):
            del out[k]
    return out


def model_ref(ws: Workspace, ref: str) -> tuple[str, str] | None:
    """(model name, version) a deployment's ``model`` names in ``ws``, or None."""
    m = _MODEL_ID.fullmatch(ref.strip())
    if m and (m["sub"].lower(), m["rg"].lower(), m["ws"].lower()) == ws.key:
        return m["name"], m["version"]
    m = _MODEL_SHORT.fullmatch(ref.strip())
    return (m["name"], m["version"]) if m else None


class OnlineApi:
    """Handlers for endpoints, deployments, keys and the LRO status URLs."""

    def __init__(self, state: State) -> None:
        self.s = state

    def mount(self, server: FakeHTTPServer, prefix: str = "") -> None:
        ep = rf"(?i){prefix}{WS_PATH}/onlineEndpoints"
        one = rf"{ep}/(?P<ep>{SEG})"
        dep = rf"{one}/deployments/(?P<dep>{SEG})"
        loc = (
            rf"(?i){prefix}/subscriptions/(?P<sub>{SEG})/providers"
            rf"/Microsoft\.MachineLearningServices/locations/(?P<loc>{SEG})"
        )
        w = self.s.gate.wrap
        table = [
            ("GET", ep, self._list_endpoints, "aml.endpoints.list"),
            ("GET", one, self._get_endpoint, "aml.endpoint.get"),
            ("PUT", one, self._put_endpoint, "aml.endpoint.put"),
            ("PATCH", one, self._patch_endpoint, "aml.endpoint.patch"),
            ("DELETE", one, self._delete_endpoint, "aml.endpoint.delete"),
            ("POST", rf"{one}/listKeys", self._list_keys, "aml.endpoint.listKeys"),
            (
                "POST",
                rf"{one}/regenerateKeys",
                self._regenerate_keys,
                "aml.endpoint.regenerateKeys",
            ),
            ("POST", rf"{one}/token", self._token, "aml.endpoint.token"),
            ("GET", rf"{one}/deployments", self._list_deployments, "aml.deployments.list"),
            ("GET", dep, self._get_deployment, "aml.deployment.get"),
            ("PUT", dep, self._put_deployment, "aml.deployment.put"),
            ("PATCH", dep, self._patch_deployment, "aml.deployment.patch"),
            ("DELETE", dep, self._delete_deployment, "aml.deployment.delete"),
            ("POST", rf"{dep}/getLogs", self._get_logs, "aml.deployment.getLogs"),
            (
                "GET",
                rf"{loc}/mfeOperationsStatus/(?P<op>{SEG})",
                self._op_status,
                "aml.operation.status",
            ),
            (
                "GET",
                rf"{loc}/mfeOperationResults/(?P<op>{SEG})",
                self._op_result,
                "aml.operation.result",
            ),
        ]
        for method, pattern, fn, name in table:
            server.add_route(method, pattern, w(fn), name)

    # -- lookups ---------------------------------------------------------------------------

    def _ws(self, req: Request) -> Workspace | Response:
        assert req.match is not None
        ws = self.s.workspace(req.match["sub"], req.match["rg"], req.match["ws"])
        if ws is None:
            return arm_error(
                404,
                "ResourceNotFound",
                f"The Resource '{PROVIDER}/workspaces/{req.match['ws']}' under resource group "
                f"'{req.match['rg']}' was not found.",
            )
        return ws

    def _endpoint(self, req: Request) -> tuple[Workspace, Endpoint] | Response:
        ws = self._ws(req)
        if isinstance(ws, Response):
            return ws
        assert req.match is not None
        ep = ws.endpoints.get(req.match["ep"].lower())
        if ep is None:
            return not_found("Online endpoint", req.match["ep"])
        return ws, ep

    def _deployment(self, req: Request) -> tuple[Workspace, Endpoint, Deployment] | Response:
        found = self._endpoint(req)
        if isinstance(found, Response):
            return found
        ws, ep = found
        assert req.match is not None
        dep = ep.deployments.get(req.match["dep"].lower())
        if dep is None:
            return not_found("Online deployment", req.match["dep"])
        return ws, ep, dep

    # -- views -----------------------------------------------------------------------------

    def endpoint_id(self, ws: Workspace, ep: str) -> str:
        return f"{ws.id}/onlineEndpoints/{ep}"

    def scoring_base(self, ws: Workspace, ep: Endpoint) -> str:
        region = re.sub(r"\s+", "", ws.location).lower()
        return f"{self.s.base_url}/inference/{region}/{ep.name}"

    def _envelope(self, res: Tracked, rid: str, rtype: str, props: JsonObj) -> JsonObj:
        out: JsonObj = {"id": rid, "name": res.name, "type": rtype}
        for key in ("location", "tags", "kind", "sku"):
            value = ci_get(res.body, key)
            if value is not None:
                out[key] = copy.deepcopy(value)
        identity = ci_get(res.body, "identity")
        if isinstance(identity, dict):
            out["identity"] = self._identity(identity, rid)
        out["systemData"] = dict(res.system_data)
        out["properties"] = props
        return out

    @staticmethod
    def _identity(identity: JsonObj, rid: str) -> JsonObj:
        ident = copy.deepcopy(identity)
        if "systemassigned" in str(ci_get(ident, "type") or "").lower():
            seed = uuid.uuid5(uuid.NAMESPACE_URL, rid)
            ident["principalId"] = str(seed)
            ident["tenantId"] = str(uuid.uuid5(seed, "tenant"))
        return ident

    def endpoint_view(self, ws: Workspace, ep: Endpoint) -> JsonObj:
        props = strip(ci_get(ep.body, "properties") or {}, EP_READONLY)
        for key in ("traffic", "mirrorTraffic"):
            if not ci_lookup(props, key) or ci_get(props, key) is None:
                props[key] = {}
        props["keys"] = None
        props["provisioningState"] = ep.state
        base = self.scoring_base(ws, ep)
        props["scoringUri"] = f"{base}/score"
        props["swaggerUri"] = f"{base}/swagger.json"
        return self._envelope(ep, self.endpoint_id(ws, ep.name), EP_TYPE, props)

    def deployment_view(self, ws: Workspace, ep: Endpoint, dep: Deployment) -> JsonObj:
        props = strip(ci_get(dep.body, "properties") or {}, DEP_READONLY)
        for key, value in DEPLOYMENT_DEFAULTS.items():
            if not ci_lookup(props, key):
                props[key] = copy.deepcopy(value)
        props["provisioningState"] = dep.state
        rid = f"{self.endpoint_id(ws, ep.name)}/deployments/{dep.name}"
        return self._envelope(dep, rid, DEP_TYPE, props)

    # -- LRO helpers -----------------------------------------------------------------------

    def _start(
        self,
        ws: Workspace,
        kind: str,
        key: tuple[str, ...],
        finish: Any,
        result: Any,
        failure: JsonObj | None = None,
    ) -> dict[str, str]:
        op = Operation(
            id=uuid.uuid4().hex,
            subscription=ws.subscription,
            location=re.sub(r"\s+", "", ws.location).lower(),
            kind=kind,
            resource_key=key,
            finish=finish,
            result=result,
            polls_left=self.s.ops.lro_polls,
            failure=failure,
        )
        return self.s.ops.start(op)

    def _busy(self, key: tuple[str, ...], name: str) -> Response | None:
        if not self.s.ops.busy(key):
            return None
        return arm_error(
            409,
            "Conflict",
            f"An operation is already in progress on {name!r}; retry after it completes.",
        )

    def _tick_get(self, key: tuple[str, ...]) -> None:
        if self.s.get_advances_lro:
            self.s.ops.tick_resource(key)

    @staticmethod
    def _bad_name(name: str) -> Response | None:
        if NAME_PATTERN.fullmatch(name):
            return None
        return user_error(
            f"The name {name!r} does not match {NAME_PATTERN.pattern}.", target="name"
        )

    def _parse(self, req: Request, definition: str) -> JsonObj | Response:
        body = parse_json_object(req)
        if isinstance(body, Response):
            return body
        issues = self.s.validator.validate(body, definition)
        return validation_error(issues) if issues else body

    @staticmethod
    def _immutable(
        old: JsonObj, new: JsonObj, field: str, where: JsonObj | None = None
    ) -> Response | None:
        """A create-only field changed on update → 400 (x-ms-mutability create/read)."""
        before = ci_get(where if where is not None else old, field)
        after = ci_get(new, field)
        if after is None or before is None:
            return None
        if str(before).replace(" ", "").lower() == str(after).replace(" ", "").lower():
            return None
        return arm_error(
            400,
            "UserError",
            f"{field} cannot be changed on an existing resource (was {before!r}, got {after!r}).",
            target=field,
            inner="Immutable",
        )

    # -- endpoints -------------------------------------------------------------------------

    def _list_endpoints(self, req: Request) -> Response:
        ws = self._ws(req)
        if isinstance(ws, Response):
            return ws
        return Response.json(
            200, {"value": [self.endpoint_view(ws, e) for _, e in sorted(ws.endpoints.items())]}
        )

    def _get_endpoint(self, req: Request) -> Response:
        found = self._endpoint(req)
        if isinstance(found, Response):
            return found
        ws, ep = found
        self._tick_get((*ws.key, ep.name.lower()))
        if ep.name.lower() not in ws.endpoints:  # a finished delete
            return not_found("Online endpoint", ep.name)
        return Response.json(200, self.endpoint_view(ws, ep))

    def _put_endpoint(self, req: Request) -> Response:
        assert req.match is not None
        name = req.match["ep"]
        refused = self._bad_name(name)
        body = self._parse(req, "OnlineEndpointTrackedResource") if refused is None else refused
        if isinstance(body, Response):
            return body
        ws = self._ws(req)
        if isinstance(ws, Response):
            return ws
        key = (*ws.key, name.lower())
        existing = ws.endpoints.get(name.lower())
        if existing is not None:
            refused = self._busy(key, name) or self._immutable(existing.body, body, "location")
        else:
            refused = self._region_clash(ws, name)
        if refused is not None:
            return refused
        props = ci_get(body, "properties") or {}
        deployments = [d.name for d in existing.deployments.values()] if existing else []
        broken = rules.check(ci_get(props, "traffic"), ci_get(props, "mirrorTraffic"), deployments)
        if broken is not None:
            return user_error(broken, target="properties.traffic")
        ep = self._store_endpoint(ws, name, body, existing)
        headers = self._start(
            ws, "put", key, lambda ok: self._settle(ep, ok), lambda: Response.empty(200)
        )
        return Response.json(201, self.endpoint_view(ws, ep), headers)

    def _region_clash(self, ws: Workspace, name: str) -> Response | None:
        """Endpoint names are unique per Azure region (docs: "must be unique within an Azure
        region"); the fake's scoring host is keyed by region and name."""
        region = re.sub(r"\s+", "", ws.location).lower()
        for other in self.s.workspaces.values():
            same_region = re.sub(r"\s+", "", other.location).lower() == region
            if other is not ws and same_region and name.lower() in other.endpoints:
                return arm_error(
                    409,
                    "UserError",
                    f"An online endpoint named {name!r} already exists in region {region}.",
                    inner="Conflict",
                )
        return None

    def _store_endpoint(
        self, ws: Workspace, name: str, body: JsonObj, existing: Endpoint | None
    ) -> Endpoint:
        stored = copy.deepcopy(body)
        props = stored.setdefault("properties", {})
        keys = ci_get(props, "keys")
        clean = strip(props, EP_READONLY)
        for k in ci_lookup(stored, "properties"):
            stored[k] = clean
        for k in ("id", "name", "type", "systemData"):
            for actual in ci_lookup(stored, k):
                del stored[actual]
        if existing is not None:
            stored["location"] = ci_get(existing.body, "location")
            existing.body, existing.state = stored, "Updating"
            existing.system_data = system_data(existing.system_data)
            return existing
        ep = Endpoint(name=name, body=stored, system_data=system_data(None), state="Creating")
        given = {
            "primaryKey": ci_get(keys, "primaryKey") if isinstance(keys, dict) else None,
            "secondaryKey": ci_get(keys, "secondaryKey") if isinstance(keys, dict) else None,
        }
        ep.keys = {k: v or new_keys()[k] for k, v in given.items()}
        ws.endpoints[name.lower()] = ep
        return ep

    @staticmethod
    def _settle(res: Tracked, ok: bool) -> None:
        res.state = "Succeeded" if ok else "Failed"

    def _patch_endpoint(self, req: Request) -> Response:
        body = self._parse(req, "PartialMinimalTrackedResourceWithIdentity")
        if isinstance(body, Response):
            return body
        found = self._endpoint(req)
        if isinstance(found, Response):
            return found
        ws, ep = found
        key = (*ws.key, ep.name.lower())
        busy = self._busy(key, ep.name)
        if busy is not None:
            return busy
        for field in ("tags", "identity"):
            if ci_lookup(body, field):
                for k in ci_lookup(ep.body, field):
                    del ep.body[k]
                ep.body[field] = copy.deepcopy(ci_get(body, field))
        ep.state, ep.system_data = "Updating", system_data(ep.system_data)
        headers = self._start(
            ws,
            "patch",
            key,
            lambda ok: self._settle(ep, ok),
            lambda: Response.json(200, self.endpoint_view(ws, ep)),
        )
        return Response.empty(202, headers)

    def _delete_endpoint(self, req: Request) -> Response:
        found = self._endpoint(req)
        if isinstance(found, Response):
            return Response.empty(204) if found.status == 404 else found
        ws, ep = found
        key = (*ws.key, ep.name.lower())
        busy = self._busy(key, ep.name)
        if busy is not None:
            return busy
        ep.state = "Deleting"
        for dep in ep.deployments.values():
            dep.state = "Deleting"

        def finish(ok: bool) -> None:
            ws.endpoints.pop(ep.name.lower(), None)

        headers = self._start(ws, "delete", key, finish, lambda: Response.empty(204))
        return Response.empty(202, headers)

    def _list_keys(self, req: Request) -> Response:
        found = self._endpoint(req)
        if isinstance(found, Response):
            return found
        _, ep = found
        mode = str(ci_get(ci_get(ep.body, "properties") or {}, "authMode") or "")
        if mode.lower() != "key":
            return user_error(f"Keys are only available when authMode is Key (it is {mode}).")
        return Response.json(200, dict(ep.keys))

    def _regenerate_keys(self, req: Request) -> Response:
        body = self._parse(req, "RegenerateEndpointKeysRequest")
        if isinstance(body, Response):
            return body
        found = self._endpoint(req)
        if isinstance(found, Response):
            return found
        ws, ep = found
        which = (
            "primaryKey" if str(ci_get(body, "keyType")).lower() == "primary" else "secondaryKey"
        )
        value = ci_get(body, "keyValue") or secrets.token_urlsafe(32)

        def finish(ok: bool) -> None:
            ep.keys[which] = str(value)

        key = (*ws.key, ep.name.lower(), "keys")
        return Response.empty(
            202, self._start(ws, "post", key, finish, lambda: Response.empty(200))
        )

    def _token(self, req: Request) -> Response:
        found = self._endpoint(req)
        if isinstance(found, Response):
            return found
        _, ep = found
        mode = str(ci_get(ci_get(ep.body, "properties") or {}, "authMode") or "")
        if mode.lower() == "key":
            return user_error("Tokens are only available when authMode is AMLToken.")
        import time

        token = secrets.token_urlsafe(32)
        ep.tokens.add(token)
        now = int(time.time())
        hour = 3600  # seconds a token lives, as the real service's tokens
        return Response.json(
            200,
            {
                "accessToken": token,
                "tokenType": "Bearer",
                "expiryTimeUtc": now + hour,
                "refreshAfterTimeUtc": now + hour // 2,
            },
        )

    # -- deployments -----------------------------------------------------------------------

    def _list_deployments(self, req: Request) -> Response:
        found = self._endpoint(req)
        if isinstance(found, Response):
            return found
        ws, ep = found
        items = [self.deployment_view(ws, ep, d) for _, d in sorted(ep.deployments.items())]
        return Response.json(200, {"value": items})

    def _get_deployment(self, req: Request) -> Response:
        found = self._deployment(req)
        if isinstance(found, Response):
            return found
        ws, ep, dep = found
        self._tick_get((*ws.key, ep.name.lower(), dep.name.lower()))
        if dep.name.lower() not in ep.deployments:
            return not_found("Online deployment", dep.name)
        return Response.json(200, self.deployment_view(ws, ep, dep))

    def _put_deployment(self, req: Request) -> Response:
        assert req.match is not None
        name = req.match["dep"]
        refused = self._bad_name(name)
        body = self._parse(req, "OnlineDeploymentTrackedResource") if refused is None else refused
        if isinstance(body, Response):
            return body
        found = self._endpoint(req)
        if isinstance(found, Response):
            return found
        ws, ep = found
        key = (*ws.key, ep.name.lower(), name.lower())
        existing = ep.deployments.get(name.lower())
        refused = self._check_deployment(ws, body, existing, key, name)
        if refused is not None:
            return refused
        dep = self._store_deployment(ep, name, body, existing)
        failure = self.s.failures.take_deployment(name)
        headers = self._start(
            ws, "put", key, lambda ok: self._settle(dep, ok), lambda: Response.empty(200), failure
        )
        return Response.json(201, self.deployment_view(ws, ep, dep), headers)

    def _check_deployment(
        self,
        ws: Workspace,
        body: JsonObj,
        existing: Deployment | None,
        key: tuple[str, ...],
        name: str,
    ) -> Response | None:
        props = ci_get(body, "properties") or {}
        if existing is not None:
            old = ci_get(existing.body, "properties") or {}
            refused = (
                self._busy(key, name)
                or self._immutable(existing.body, body, "location")
                or self._immutable(old, props, "instanceType")
                or self._immutable(old, props, "endpointComputeType")
            )
            if refused is not None:
                return refused
        model = ci_get(props, "model")
        if model is None:
            return None
        ref = model_ref(ws, str(model))
        if ref is None:
            return user_error(
                f"properties.model {model!r} is not a model version of this workspace "
                "(use its ARM id or azureml:<name>:<version>).",
                target="properties.model",
            )
        container = ws.models.get(ref[0].lower())
        if container is None or ref[1] not in container.versions:
            return user_error(
                f"Model {ref[0]}:{ref[1]} was not found in workspace {ws.name!r}.",
                target="properties.model",
                inner="NotFound",
            )
        return None

    def _store_deployment(
        self, ep: Endpoint, name: str, body: JsonObj, existing: Deployment | None
    ) -> Deployment:
        stored = copy.deepcopy(body)
        clean = strip(ci_get(stored, "properties") or {}, DEP_READONLY)
        for k in ci_lookup(stored, "properties"):
            del stored[k]
        stored["properties"] = clean
        for k in ("id", "name", "type", "systemData"):
            for actual in ci_lookup(stored, k):
                del stored[actual]
        if existing is not None:
            existing.body, existing.state = stored, "Updating"
            existing.system_data = system_data(existing.system_data)
            return existing
        dep = Deployment(name=name, body=stored, system_data=system_data(None), state="Creating")
        ep.deployments[name.lower()] = dep
        return dep

    def _patch_deployment(self, req: Request) -> Response:
        body = self._parse(req, "PartialMinimalTrackedResourceWithSku")
        if isinstance(body, Response):
            return body
        found = self._deployment(req)
        if isinstance(found, Response):
            return found
        ws, ep, dep = found
        key = (*ws.key, ep.name.lower(), dep.name.lower())
        busy = self._busy(key, dep.name)
        if busy is not None:
            return busy
        if ci_lookup(body, "tags"):
            for k in ci_lookup(dep.body, "tags"):
                del dep.body[k]
            dep.body["tags"] = copy.deepcopy(ci_get(body, "tags"))
        sku = ci_get(body, "sku")
        if isinstance(sku, dict):
            merged = dict(ci_get(dep.body, "sku") or {})
            merged.update(sku)
            for k in ci_lookup(dep.body, "sku"):
                del dep.body[k]
            dep.body["sku"] = merged
        dep.state, dep.system_data = "Updating", system_data(dep.system_data)
        headers = self._start(
            ws,
            "patch",
            key,
            lambda ok: self._settle(dep, ok),
            lambda: Response.json(200, self.deployment_view(ws, ep, dep)),
        )
        return Response.empty(202, headers)

    def _delete_deployment(self, req: Request) -> Response:
        found = self._deployment(req)
        if isinstance(found, Response):
            return Response.empty(204) if found.status == 404 else found
        ws, ep, dep = found
        key = (*ws.key, ep.name.lower(), dep.name.lower())
        busy = self._busy(key, dep.name)
        if busy is not None:
            return busy
        props = ci_get(ep.body, "properties") or {}
        live = rules.weight_of(ci_get(props, "traffic"), dep.name)
        if live > 0:
            return user_error(
                f"Deployment {dep.name!r} has {live}% of the endpoint's live traffic; set its "
                "traffic to 0 before deleting it.",
                target="traffic",
            )
        mirror = ci_get(props, "mirrorTraffic")
        if isinstance(mirror, dict):
            for k in [k for k in mirror if k.lower() == dep.name.lower()]:
                del mirror[k]
        dep.state = "Deleting"

        def finish(ok: bool) -> None:
            ep.deployments.pop(dep.name.lower(), None)

        headers = self._start(ws, "delete", key, finish, lambda: Response.empty(204))
        return Response.empty(202, headers)

    def _get_logs(self, req: Request) -> Response:
        body = self._parse(req, "DeploymentLogsRequest")
        if isinstance(body, Response):
            return body
        found = self._deployment(req)
        if isinstance(found, Response):
            return found
        _, _, dep = found
        return Response.json(200, {"content": f"{dep.name}: provisioningState {dep.state}\n"})

    # -- operations ------------------------------------------------------------------------

    def _op(self, req: Request) -> Operation | Response:
        assert req.match is not None
        op = self.s.ops.ops.get(req.match["op"])
        if op is None or op.subscription.lower() != req.match["sub"].lower():
            return arm_error(404, "NotFound", f"Operation {req.match['op']!r} was not found.")
        self.s.ops.tick(op)
        return op

    def _op_status(self, req: Request) -> Response:
        op = self._op(req)
        if isinstance(op, Response):
            return op
        return Response.json(200, self.s.ops.status_body(op))

    def _op_result(self, req: Request) -> Response:
        op = self._op(req)
        if isinstance(op, Response):
            return op
        if op.status == "InProgress":
            headers = self.s.ops.start_headers_again(op)
            return Response.empty(202, headers)
        if op.status == "Failed":
            err = op.failure or {"code": "InternalServerError", "message": "Operation failed."}
            return arm_error(500, str(err.get("code")), str(err.get("message")))
        return op.result()
