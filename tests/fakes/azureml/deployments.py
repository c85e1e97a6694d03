"""Online deployment handlers: PUT/PATCH/DELETE/GET, list, getLogs.

The rules are listed in :mod:`.online`; this module only splits the handlers by resource.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.fakes.httpserver import Request, Response
from tests.fakes.swagger import ci_get, ci_lookup

from . import traffic as rules
from .common import not_found, page, system_data, user_error
from .online import DEP_READONLY, OnlineBase, model_ref, strip
from .state import Deployment, Endpoint, Workspace

JsonObj = dict[str, Any]


class DeploymentHandlers(OnlineBase):
    # -- deployments -----------------------------------------------------------------------

    def _list_deployments(self, req: Request) -> Response:
        found = self._endpoint(req)
        if isinstance(found, Response):
            return found
        ws, ep = found
        items = [self.deployment_view(ws, ep, d) for _, d in sorted(ep.deployments.items())]
        return page(req, items, self.s.page_size, self.s.base_url)

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
            # Its 0 entry leaves the live map too, so the endpoint's next GET → PUT round-trip
            # does not name a deployment that no longer exists (inference).
            live = ci_get(ci_get(ep.body, "properties") or {}, "traffic")
            if isinstance(live, dict):
                for k in [k for k in live if k.lower() == dep.name.lower()]:
                    del live[k]

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
