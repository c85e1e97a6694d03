"""Model containers and versions (``ModelContainers_*``, ``ModelVersions_*``) and datastores.

Rules (swagger subset unless marked):

* PUT of a container or a version is synchronous: 201 when created, 200 when it existed; bodies
  validate against ``ModelContainerResource`` / ``ModelVersionResource`` (both closed).
* A version PUT creates its container when missing (inference: the SDK never registers the
  container first).
* Idempotent: PUT of an existing version with the same content is 200 and changes nothing. Only
  ``description``, ``tags``, ``properties``, ``isArchived`` and ``stage`` may change (the
  ``x-ms-mutability`` of ``isArchived``; the others are plain metadata); a different
  ``modelUri``, ``modelType``, ``flavors``, ``jobName`` or ``isAnonymous`` is 409 ``UserError``
  / ``Immutable`` (inference: asset versions are immutable, the exact code is undocumented).
* ``modelUri`` must be an ``azureml://datastores/...`` path of a datastore of the workspace, or
  ``azureml://jobs/<job>/outputs/<output>...`` of an existing job.
* ``ModelVersions_List`` honours ``tags`` (comma-separated ``key`` or ``key=value``, all must
  match) and ``$top``; no paging (inference for the filter syntax).
* Datastores are GET/list only; ``credentials.secrets`` are never returned (``x-ms-secret``).
"""

from __future__ import annotations

import copy
from typing import Any

from tests.fakes.httpserver import FakeHTTPServer, Request, Response
from tests.fakes.swagger import ci_get, ci_lookup

from .blobs import parse_datastore_uri, parse_job_output_uri
from .common import (
    PROVIDER,
    SEG,
    WS_PATH,
    arm_error,
    not_found,
    page,
    parse_json_object,
    system_data,
    user_error,
    validation_error,
)
from .state import ModelContainerRec, ModelVersionRec, State, Workspace

JsonObj = dict[str, Any]

IMMUTABLE_VERSION_FIELDS = ("modelUri", "modelType", "flavors", "jobName", "isAnonymous")
READONLY = ("provisioningState", "latestVersion", "nextVersion")


def _props(body: JsonObj) -> JsonObj:
    props = copy.deepcopy(ci_get(body, "properties") or {})
    for name in READONLY:
        for k in ci_lookup(props, name):
            del props[k]
    return props


def tags_match(tags: Any, query: str) -> bool:
    have = {str(k).lower(): v for k, v in (tags or {}).items()}
    for item in filter(None, (q.strip() for q in query.split(","))):
        key, sep, value = item.partition("=")
        if key.lower() not in have or (sep and str(have[key.lower()]) != value):
            return False
    return True


class AssetApi:
    def __init__(self, state: State) -> None:
        self.s = state

    def mount(self, server: FakeHTTPServer, prefix: str = "") -> None:
        models = rf"(?i){prefix}{WS_PATH}/models/(?P<name>{SEG})"
        version = rf"{models}/versions/(?P<version>{SEG})"
        stores = rf"(?i){prefix}{WS_PATH}/datastores"
        w = self.s.gate.wrap
        table = [
            ("GET", models, self._get_container, "aml.model.get"),
            ("PUT", models, self._put_container, "aml.model.put"),
            ("DELETE", models, self._delete_container, "aml.model.delete"),
            ("GET", rf"{models}/versions", self._list_versions, "aml.modelVersions.list"),
            ("GET", version, self._get_version, "aml.modelVersion.get"),
            ("PUT", version, self._put_version, "aml.modelVersion.put"),
            ("DELETE", version, self._delete_version, "aml.modelVersion.delete"),
            ("GET", stores, self._list_datastores, "aml.datastores.list"),
            ("GET", rf"{stores}/(?P<ds>{SEG})", self._get_datastore, "aml.datastore.get"),
        ]
        for method, pattern, fn, name in table:
            server.add_route(method, pattern, w(fn), name)

    def _ws(self, req: Request) -> Workspace | Response:
        assert req.match is not None
        ws = self.s.workspace(req.match["sub"], req.match["rg"], req.match["ws"])
        if ws is None:
            return arm_error(
                404, "ResourceNotFound", f"Workspace {req.match['ws']!r} was not found."
            )
        return ws

    # -- views -----------------------------------------------------------------------------

    def container_view(self, ws: Workspace, c: ModelContainerRec) -> JsonObj:
        props = _props(c.body)
        versions = sorted(
            c.versions, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v)
        )
        numeric = [int(v) for v in c.versions if v.isdigit()]
        props["latestVersion"] = versions[-1] if versions else None
        props["nextVersion"] = str(max(numeric, default=0) + 1)
        props["provisioningState"] = "Succeeded"
        return {
            "id": f"{ws.id}/models/{c.name}",
            "name": c.name,
            "type": f"{PROVIDER}/workspaces/models",
            "systemData": dict(c.system_data),
            "properties": props,
        }

    def version_view(self, ws: Workspace, c: ModelContainerRec, v: ModelVersionRec) -> JsonObj:
        props = _props(v.body)
        props["provisioningState"] = "Succeeded"
        return {
            "id": f"{ws.id}/models/{c.name}/versions/{v.version}",
            "name": v.version,
            "type": f"{PROVIDER}/workspaces/models/versions",
            "systemData": dict(v.system_data),
            "properties": props,
        }

    def datastore_view(self, ws: Workspace, name: str) -> JsonObj:
        rec = copy.deepcopy(ws.datastores[name.lower()])
        creds = ci_get(rec["properties"], "credentials")
        if isinstance(creds, dict):
            for k in ci_lookup(creds, "secrets"):
                del creds[k]
        return rec

    # -- containers ------------------------------------------------------------------------

    def _parse(self, req: Request, definition: str) -> JsonObj | Response:
        body = parse_json_object(req)
        if isinstance(body, Response):
            return body
        issues = self.s.validator.validate(body, definition)
        return validation_error(issues) if issues else body

    def _get_container(self, req: Request) -> Response:
        ws = self._ws(req)
        if isinstance(ws, Response):
            return ws
        assert req.match is not None
        c = ws.models.get(req.match["name"].lower())
        if c is None:
            return not_found("Model container", req.match["name"])
        return Response.json(200, self.container_view(ws, c))

    def _put_container(self, req: Request) -> Response:
        body = self._parse(req, "ModelContainerResource")
        if isinstance(body, Response):
            return body
        ws = self._ws(req)
        if isinstance(ws, Response):
            return ws
        assert req.match is not None
        name = req.match["name"]
        c = ws.models.get(name.lower())
        created = c is None
        if c is None:
            c = ws.models[name.lower()] = ModelContainerRec(name, {}, system_data(None))
        else:
            c.system_data = system_data(c.system_data)
        c.body = {"properties": _props(body)}
        return Response.json(201 if created else 200, self.container_view(ws, c))

    def _delete_container(self, req: Request) -> Response:
        ws = self._ws(req)
        if isinstance(ws, Response):
            return ws
        assert req.match is not None
        gone = ws.models.pop(req.match["name"].lower(), None)
        return Response.empty(200 if gone else 204)

    # -- versions --------------------------------------------------------------------------

    def _container_of(self, req: Request) -> tuple[Workspace, ModelContainerRec] | Response:
        ws = self._ws(req)
        if isinstance(ws, Response):
            return ws
        assert req.match is not None
        c = ws.models.get(req.match["name"].lower())
        if c is None:
            return not_found("Model container", req.match["name"])
        return ws, c

    def _list_versions(self, req: Request) -> Response:
        found = self._container_of(req)
        if isinstance(found, Response):
            return found
        ws, c = found
        items = list(c.versions.values())
        tag_query = req.query1("tags")
        if tag_query:
            items = [
                v for v in items if tags_match(ci_get(v.body["properties"], "tags"), tag_query)
            ]
        top = req.query1("$top")
        if top and top.isdigit():
            items = items[: int(top)]
        views = [self.version_view(ws, c, v) for v in items]
        return page(req, views, self.s.page_size, self.s.base_url)

    def _get_version(self, req: Request) -> Response:
        found = self._container_of(req)
        if isinstance(found, Response):
            return found
        ws, c = found
        assert req.match is not None
        v = c.versions.get(req.match["version"])
        if v is None:
            return not_found("Model version", f"{c.name}:{req.match['version']}")
        return Response.json(200, self.version_view(ws, c, v))

    def _put_version(self, req: Request) -> Response:
        body = self._parse(req, "ModelVersionResource")
        if isinstance(body, Response):
            return body
        ws = self._ws(req)
        if isinstance(ws, Response):
            return ws
        assert req.match is not None
        name, version = req.match["name"], req.match["version"]
        props = _props(body)
        refused = self._check_uri(ws, ci_get(props, "modelUri"))
        if refused is not None:
            return refused
        c = ws.models.get(name.lower())
        if c is None:
            c = ws.models[name.lower()] = ModelContainerRec(
                name, {"properties": {}}, system_data(None)
            )
        existing = c.versions.get(version)
        if existing is None:
            c.versions[version] = ModelVersionRec(version, {"properties": props}, system_data(None))
            return Response.json(201, self.version_view(ws, c, c.versions[version]))
        old = existing.body["properties"]
        for field in IMMUTABLE_VERSION_FIELDS:
            if ci_get(old, field) != ci_get(props, field):
                return arm_error(
                    409,
                    "UserError",
                    f"Model {name}:{version} already exists and its {field} cannot be changed; "
                    "register a new version instead.",
                    target=f"properties.{field}",
                    inner="Immutable",
                )
        if props != old:
            existing.body = {"properties": props}
            existing.system_data = system_data(existing.system_data)
        return Response.json(200, self.version_view(ws, c, existing))

    def _check_uri(self, ws: Workspace, uri: Any) -> Response | None:
        if uri is None:
            return None
        ref = parse_datastore_uri(str(uri))
        if ref is not None:
            if ref.datastore.lower() not in ws.datastores:
                return user_error(
                    f"modelUri names datastore {ref.datastore!r}, which is not in the workspace.",
                    target="properties.modelUri",
                )
            return None
        job = parse_job_output_uri(str(uri))
        if job is not None:
            if job[0].lower() not in ws.jobs:
                return user_error(
                    f"modelUri names job {job[0]!r}, which does not exist.",
                    target="properties.modelUri",
                )
            return None
        return user_error(
            f"modelUri {uri!r} is not an azureml://datastores/... or azureml://jobs/... path "
            "(the fake reaches no other storage).",
            target="properties.modelUri",
        )

    def _delete_version(self, req: Request) -> Response:
        found = self._container_of(req)
        if isinstance(found, Response):
            return Response.empty(204) if found.status == 404 else found
        _, c = found
        assert req.match is not None
        gone = c.versions.pop(req.match["version"], None)
        return Response.empty(200 if gone else 204)

    # -- datastores ------------------------------------------------------------------------

    def _list_datastores(self, req: Request) -> Response:
        ws = self._ws(req)
        if isinstance(ws, Response):
            return ws
        items = [self.datastore_view(ws, name) for name in sorted(ws.datastores)]
        return page(req, items, self.s.page_size, self.s.base_url)

    def _get_datastore(self, req: Request) -> Response:
        ws = self._ws(req)
        if isinstance(ws, Response):
            return ws
        assert req.match is not None
        if req.match["ds"].lower() not in ws.datastores:
            return not_found("Datastore", req.match["ds"])
        return Response.json(200, self.datastore_view(ws, req.match["ds"]))
