"""The two kinds of Studio web service an endpoint can be, behind one small interface.

A Resource Manager ("new") web service is a definition read and PATCHed through
``arm``; a classic endpoint is a management-API resource list (``classic``) with
its ownership record kept in a blob. The provider chooses one of these per
endpoint, once (``AzureProvider.services_for``), and observe, create and update
dispatch through it, so neither kind's details leak into the other's path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from reconciler import errors, model
from reconciler.providers import common, webservice
from reconciler.providers.azure import arm, backend, bes, classic

SERVER_PROPERTIES = ("provisioningState", "createdOn", "modifiedOn", "swaggerLocation")

Observe = Callable[[model.Endpoint], model.ServiceState | None]
CLASSIC_WHERE = "classic endpoint"  # where a listed classic endpoint lives, as shown
# Seconds an observed definition serves as the base of its PATCH: an update wave follows
# its plan within seconds; an apply that trained for longer reads the service again, so
# a hand edit made meanwhile (another asset moved, say) is merged, not overwritten.
SEEN_SECONDS = 300.0


class Services(Protocol):
    """Observe, create and update the web services of one kind. ``fp`` is the
    fingerprint of ``model_uri``, already confined to the provider's store."""

    def observer(self) -> Observe:
        """What observes this run's endpoints of this kind (one read each); reads what
        they all share, if anything, once, now."""
        ...

    def create(
        self, ep: model.Endpoint, fp: str, model_uri: str, tags: Mapping[str, str]
    ) -> None: ...

    def update(
        self, ep: model.Endpoint, fp: str, model_uri: str, tags: Mapping[str, str]
    ) -> None: ...


class ResourceManager:
    """``Microsoft.MachineLearning/webServices`` definitions, through ``arm``."""

    def __init__(self, web_services: arm.WebServices, uri_for: common.ModelUri) -> None:
        self.arm = web_services
        self.uri_for = uri_for
        self._definitions: dict[str, Mapping[str, Any]] = {}  # exported files, by path
        # The definitions this run read, by resource id: an update builds its PATCH from
        # the one its plan was decided on (the apply holds the lock; staleness is the
        # plan's check), so it needs no second GET.
        self._seen: dict[str, tuple[float, Mapping[str, Any]]] = {}

    def observer(self) -> Observe:
        return self.observe

    def observe(self, ep: model.Endpoint) -> model.ServiceState | None:
        """One GET; none for the read-back right after a write, which its operation's
        final GET answers (``arm.WebServices.just_written``)."""
        rid = self._rid(ep)
        definition = self.arm.just_written(rid) or self.arm.get(rid)
        if definition is None:
            self._seen.pop(rid, None)
            return None
        self._seen[rid] = (time.monotonic(), _trimmed(definition))
        self._same_storage_account(ep, definition)
        return common.service_state(definition, ep, uri_for=self.uri_for, where=ep.web_service)

    def create(self, ep: model.Endpoint, fp: str, model_uri: str, tags: Mapping[str, str]) -> None:
        """PUT the exported definition serving ``model_uri``, without the fields the
        service owns (its identity, provisioning state, timestamps)."""
        body = common.exported_body(common.definition_path(ep), ep, model_uri, tags)
        props = body.get(webservice.key(body, "properties")) or {}
        for name in SERVER_PROPERTIES:
            props.pop(webservice.key(props, name), None)
        self.arm.put(self._rid(ep), body)

    def update(self, ep: model.Endpoint, fp: str, model_uri: str, tags: Mapping[str, str]) -> None:
        """PATCH only the tags and the whole assets map (see ``arm``), built from the
        definition this run observed: one write and the polls the service asks for (a
        service not observed in this run, or long ago, is read first)."""
        rid = self._rid(ep)
        current = self._observed(rid) or self.arm.get(rid)
        updated = common.with_model(current, ep, model_uri, tags, where=ep.web_service)
        self.arm.patch(rid, _patch(updated))

    def _observed(self, rid: str) -> Mapping[str, Any] | None:
        """The definition this run observed, once, unless that was ``SEEN_SECONDS`` ago."""
        stamp, definition = self._seen.pop(rid, (0.0, None))
        return definition if time.monotonic() - stamp < SEEN_SECONDS else None

    def _same_storage_account(self, ep: model.Endpoint, live: Mapping[str, Any]) -> None:
        """A web service's storage account cannot change (the service answers
        ``CannotChangeStorageAccount``) and an update never sends it, so a definition file
        naming another account would be silently ignored: refuse it while planning.
        Names only: GET omits the account key."""
        if ep.definition is None:
            return
        wanted = _storage_account_name(self._exported(ep.definition))
        serving = _storage_account_name(live)
        if wanted is not None and serving is not None and wanted.lower() != serving.lower():
            raise errors.ProviderError(
                f"endpoint {ep.name}: definition storageAccount.name is {wanted!r} but the live "
                f"web service {ep.web_service!r} uses {serving!r}; a web service's storage "
                "account cannot change",
                where=ep.definition,
            )

    def _exported(self, path: str) -> Mapping[str, Any]:
        """An exported definition file, parsed once per run (many endpoints share one)."""
        found = self._definitions.get(path)
        if found is None:
            try:
                with open(path, encoding="utf-8") as f:
                    found = json.load(f)
            except (OSError, ValueError) as e:
                raise errors.ProviderError(f"cannot read definition: {e}", where=path) from e
            if not isinstance(found, dict):
                raise errors.ProviderError("definition is not a JSON object", where=path)
            self._definitions[path] = found
        return found

    def _rid(self, ep: model.Endpoint) -> str:
        found = ep.address
        group = found.resource_group if isinstance(found, backend.ResourceManager) else None
        return self.arm.resource_id(ep.web_service, group)


class Classic:
    """Classic endpoints, through the management API; ownership in one blob record."""

    def __init__(self, endpoints: classic.Endpoints, uri_for: common.ModelUri) -> None:
        self.endpoints = endpoints
        self.uri_for = uri_for

    def observer(self) -> Observe:
        """Endpoints carry no tags: their ownership records are one blob, read once."""
        records = self.endpoints.records()
        return lambda ep: self.observe(ep, records)

    def observe(
        self, ep: model.Endpoint, records: Mapping[str, Mapping[str, str]]
    ) -> model.ServiceState | None:
        found = self.endpoints.get(ep)
        if found is None:
            return None
        resources = [r for r in found.get("Resources") or [] if isinstance(r, dict)]
        match = next((r for r in resources if r.get("Name") == ep.asset), None)
        uri = classic.model_location(match) if match else None
        tags = dict(records.get(classic.key_of(ep), {}))
        names = tuple(str(r.get("Name")) for r in resources)
        return webservice.state_of_fields(ep.web_service, uri, tags, names, uri_for=self.uri_for)

    def managed(self, endpoints: Sequence[model.Endpoint]) -> list[model.Managed]:
        """The endpoints the ownership records name in the workspaces the manifest's
        classic endpoints use (one blob read; none when it has none), each under the
        manifest's name for it when an endpoint of ``endpoints`` has its address, else
        under its address (``workspace/webService/endpoint``)."""
        addresses = [(ep, at) for ep in endpoints if (at := backend.classic_address(ep))]
        if not addresses:
            return []
        names = {at.key: ep.web_service for ep, at in addresses}
        workspaces = {at.workspace for _ep, at in addresses}
        found = (
            model.managed_from_tags(names.get(key, key), tags, CLASSIC_WHERE, key)
            for key, tags in sorted(self.endpoints.records().items())
            if isinstance(tags, dict) and key.split("/", 1)[0] in workspaces
        )
        return [m for m in found if m is not None]

    def create(self, ep: model.Endpoint, fp: str, model_uri: str, tags: Mapping[str, str]) -> None:
        """Add the missing non-default endpoint, then point it like an update."""
        self.endpoints.add(ep)
        self.update(ep, fp, model_uri, tags)

    def update(self, ep: model.Endpoint, fp: str, model_uri: str, tags: Mapping[str, str]) -> None:
        self.endpoints.patch(ep, bes.model_path(fp))
        self.endpoints.set_record(ep, tags)


def _patch(updated: Mapping[str, Any]) -> dict[str, Any]:
    """The PATCH body of an updated definition: its tags and its complete assets map."""
    props = updated[webservice.key(updated, "properties")]
    return {
        webservice.key(updated, "tags"): updated[webservice.key(updated, "tags")],
        webservice.key(updated, "properties"): {
            webservice.key(props, "packageType"): webservice.get(
                updated, "properties", "packageType"
            )
            or "Graph",
            webservice.key(props, "assets"): webservice.assets(updated),
        },
    }


def _trimmed(definition: Mapping[str, Any]) -> dict[str, Any]:
    """What an update needs of an observed definition, and all ``_patch`` sends of it: its
    tags and its properties' ``packageType`` and ``assets``, key casing kept. Kept per
    observed service until its update, so not the schemas and the rest of a large fleet's
    definitions."""
    props_key = webservice.key(definition, "properties")
    props = definition.get(props_key)
    if not isinstance(props, Mapping):
        return dict(definition)  # not a definition with_model can read: it says so
    out = {k: v for k, v in definition.items() if k.lower() == "tags"}
    out[props_key] = {k: v for k, v in props.items() if k.lower() in ("packagetype", "assets")}
    return out


def _storage_account_name(definition: Mapping[str, Any]) -> str | None:
    name = webservice.get(definition, "properties", "storageAccount", "name")
    return None if name is None else str(name)
