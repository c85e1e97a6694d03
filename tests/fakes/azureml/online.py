"""Online endpoints and deployments (``OnlineEndpoints_*``, ``OnlineDeployments_*``).

Rules, each from the swagger subset unless marked:

* PUT bodies validate against ``OnlineEndpointTrackedResource`` /
  ``OnlineDeploymentTrackedResource``, names against the path pattern
  ``^[a-zA-Z0-9][a-zA-Z0-9\\-_]{0,254}$`` and azure-ai-ml's stricter rule (3 to 32 characters,
  a letter first, then letters, digits and ``-``, not ending in ``-``; inference that the
  service enforces what the SDK checks); PUT answers 201 +
  ``Azure-AsyncOperation`` for create *and* update (the SDK always begins an LRO; inference).
  While it runs the resource shows ``Creating``/``Updating``, then ``Succeeded``.
* PATCH bodies are ``PartialMinimalTrackedResourceWithIdentity`` (endpoint: tags, identity) and
  ``PartialMinimalTrackedResourceWithSku`` (deployment: tags, sku); both are closed
  (``additionalProperties: false``), so ``traffic`` or ``model`` in a PATCH is a 400 naming the
  field. PATCH replaces ``tags`` wholesale and merges ``sku`` fields; 202 + ``Location``.
* DELETE answers 202 + ``Location``; the resource shows ``Deleting`` until the operation ends;
  a missing resource is 204. Deleting an endpoint deletes its deployments (docs). A deployment
  with live traffic cannot be deleted (docs; 400); one with mirror traffic loses its mirror
  entry, and once deleted its ``0`` entry leaves ``traffic`` (inference: so a GET → PUT of the
  endpoint never names a deployment that is gone).
* ``location`` is create-only (``x-ms-mutability``), as are a deployment's ``instanceType`` and
  its ``endpointComputeType``: changing one on PUT is a 400 ``UserError`` / ``Immutable``.
* ``keys`` is create-only and "always returned as null": GET shows ``"keys": null``; use
  ``listKeys``.
* GET shows ``traffic`` and ``mirrorTraffic`` without their 0 entries (``{}`` when none): a
  deployment absent from the map has 0. Inference from azure-ai-ml, whose
  ``OnlineEndpointOperations.get`` "populate[s] deployments without traffic with zeroes" and
  whose ``begin_create_or_update`` strips zeroes before the PUT
  (``azure/ai/ml/operations/_online_endpoint_operations.py``, 1.35.2).
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
import uuid
from typing import Any

from tests.fakes.httpserver import Request, Response
from tests.fakes.swagger import ci_get, ci_lookup

from . import traffic as rules
from .common import (
    PROVIDER,
    Operation,
    arm_error,
    not_found,
    parse_json_object,
    user_error,
    validation_error,
)
from .state import Deployment, Endpoint, State, Tracked, Workspace

JsonObj = dict[str, Any]

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$")  # swagger path parameter
# Stricter, for endpoints and deployments: azure-ai-ml's EndpointConfigurations (3..32 chars,
# a letter first, letters/digits/'-', no '-' last); the service is assumed to agree (inference).
SERVICE_NAME = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
MIN_NAME, MAX_NAME = 3, 32
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


class OnlineBase:
    """Lookups, views and LRO helpers shared by the endpoint and deployment handlers."""

    def __init__(self, state: State) -> None:
        self.s = state

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
            shown = {k: v for k, v in rules.weights(ci_get(props, key)).items() if v != 0}
            for actual in ci_lookup(props, key):
                del props[actual]
            props[key] = shown
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

    @staticmethod
    def _settle(res: Tracked, ok: bool) -> None:
        res.state = "Succeeded" if ok else "Failed"

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
        if not NAME_PATTERN.fullmatch(name):
            return user_error(
                f"The name {name!r} does not match {NAME_PATTERN.pattern}.", target="name"
            )
        if not MIN_NAME <= len(name) <= MAX_NAME or not SERVICE_NAME.fullmatch(name):
            return user_error(
                f"The name {name!r} must be {MIN_NAME} to {MAX_NAME} characters long, start "
                "with a letter and consist only of letters, digits and '-' (not last).",
                target="name",
            )
        return None

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
