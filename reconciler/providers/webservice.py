"""The shape of a ``Microsoft.MachineLearning/webServices`` definition, shared by backends.

Azure and the local backend store the same JSON, so reading the owned fields
(the trained-model asset's ``locationInfo.uri`` and the ownership tags) and
writing them back — changing nothing else, preserving key casing as found —
lives here, once. These are pure functions on parsed JSON.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from reconciler import fingerprint, model

RESOURCE_TYPE = "Microsoft.MachineLearning/webServices"


class DefinitionError(ValueError):
    """The document is not a web service definition we can read."""


def key(obj: Mapping[str, Any], name: str) -> str:
    """The key of ``obj`` equal to ``name`` ignoring case (the service echoes client casing)."""
    if name in obj:
        return name
    for k in obj:
        if k.lower() == name.lower():
            return k
    return name


def get(obj: Mapping[str, Any], *path: str) -> Any:
    """``obj[a][b]...`` with case-insensitive keys; None when any step is missing."""
    cur: Any = obj
    for name in path:
        if type(cur) is dict and name in cur:  # the common case, at a dict lookup's cost
            cur = cur[name]
            continue
        if not isinstance(cur, dict | Mapping):  # dict first: an ABC check costs 10x
            return None
        cur = cur.get(key(cur, name))
    return cur


def assets(definition: Mapping[str, Any]) -> Mapping[str, Any]:
    found = get(definition, "properties", "assets")
    if not isinstance(found, Mapping):
        raise DefinitionError("definition has no properties.assets map")
    return found


def find_asset(definition: Mapping[str, Any], asset_name: str) -> str | None:
    """The assets-map key of the asset whose ``name`` is ``asset_name``."""
    return _find(assets(definition), asset_name)


def _find(found: Mapping[str, Any], asset_name: str) -> str | None:
    for asset_id, asset in found.items():
        if isinstance(asset, dict | Mapping) and get(asset, "name") == asset_name:
            return str(asset_id)
    return None


def owned_tags(definition: Mapping[str, Any]) -> dict[str, str]:
    tags = get(definition, "tags") or {}
    if not isinstance(tags, Mapping):
        raise DefinitionError("definition's tags is not a map")
    return {k: str(v) for k, v in tags.items() if k in model.OWNED_TAGS}


def revision(model_uri: str | None, tags: Mapping[str, str]) -> str:
    """A digest of the owned fields: changes exactly when something we own changes."""
    owned = {"model_uri": model_uri, "tags": dict(tags)}
    return hashlib.sha256(fingerprint.canonical_json(owned).encode()).hexdigest()[:16]


_revision = revision  # for state_of_fields, whose parameter of that name shadows it


def state_of_definition(
    definition: Mapping[str, Any],
    *,
    web_service: str,
    asset_name: str,
    uri_for: Callable[[str], str],
) -> model.ServiceState:
    """Cut a definition down to what the reconciler owns (ids, timestamps,
    provisioning state, keys and everything else are dropped here, once)."""
    found = assets(definition)  # once: 10,000 services are observed in one plan
    asset_id = _find(found, asset_name)
    uri = None
    if asset_id is not None:
        raw = get(found[asset_id], "locationInfo", "uri")
        uri = str(raw) if raw is not None else None
    names = tuple(str(get(a, "name")) for a in found.values())
    return state_of_fields(web_service, uri, owned_tags(definition), names, uri_for=uri_for)


def state_of_fields(
    web_service: str,
    model_uri: str | None,
    tags: Mapping[str, str],
    asset_names: tuple[str, ...],
    *,
    uri_for: Callable[[str], str],
    revision: str | None = None,
) -> model.ServiceState:
    """The essence of a web service from its owned fields, however the backend read them
    (a definition, or a classic endpoint and its ownership record): the expected URI and
    the revision are derived here, once. A backend that kept the revision of these very
    fields from an earlier read (a cache keyed by the file they came from) passes it."""
    fp = tags.get(model.TAG_FINGERPRINT)
    return model.ServiceState(
        web_service=web_service,
        model_uri=model_uri,
        tags=model.frozen_map(tags),
        expected_uri=uri_for(fp) if fp else None,
        revision=_revision(model_uri, tags) if revision is None else revision,
        assets=asset_names,
    )


def with_model(
    definition: Mapping[str, Any], asset_name: str, uri: str, tags: Mapping[str, str]
) -> dict[str, Any]:
    """A copy of ``definition`` serving ``uri`` with owned ``tags`` set; nothing else differs."""
    out: dict[str, Any] = copy.deepcopy(dict(definition))
    asset_id = find_asset(out, asset_name)
    if asset_id is None:
        raise DefinitionError(f"definition has no asset named {asset_name!r}")
    asset = assets(out)[asset_id]
    location = asset.setdefault(key(asset, "locationInfo"), {})
    location[key(location, "uri")] = uri
    tag_map = out.setdefault(key(out, "tags"), {})
    if tag_map is None:
        tag_map = out[key(out, "tags")] = {}
    tag_map.update(tags)
    return out


def load_exported(path: str, asset_name: str, uri: str, tags: Mapping[str, str]) -> dict[str, Any]:
    """An exported definition file, serving ``uri`` with ``tags``: what creating a missing
    web service starts from."""
    with open(path, encoding="utf-8") as f:
        exported = json.load(f)
    if not isinstance(exported, dict):
        raise DefinitionError(f"{path} is not a JSON object")
    return with_model(exported, asset_name, uri, tags)
