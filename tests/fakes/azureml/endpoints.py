"""Online endpoint handlers: PUT/PATCH/DELETE/GET, listKeys, regenerateKeys, token.

The rules are listed in :mod:`.online`; this module only splits the handlers by resource.
"""

from __future__ import annotations

import copy
import re
import secrets
import time
from typing import Any

from tests.fakes.httpserver import Request, Response
from tests.fakes.swagger import ci_get, ci_lookup

from . import traffic as rules
from .common import arm_error, not_found, page, system_data, user_error
from .online import EP_READONLY, OnlineBase, strip
from .state import Endpoint, Workspace, new_keys

JsonObj = dict[str, Any]


class EndpointHandlers(OnlineBase):
    # -- endpoints -------------------------------------------------------------------------

    def _list_endpoints(self, req: Request) -> Response:
        ws = self._ws(req)
        if isinstance(ws, Response):
            return ws
        items = [self.endpoint_view(ws, e) for _, e in sorted(ws.endpoints.items())]
        return page(req, items, self.s.page_size, self.s.base_url)

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
