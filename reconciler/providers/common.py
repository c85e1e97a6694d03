"""What every backend does the same way, written once.

The local and Azure backends keep models the same way (a metadata document per
fingerprint, one canonical URI per model), create missing web services from the
same exported definition files and cut definitions down to the same essence.
Those steps live here so that a backend keeps only what truly differs: where it
reads and writes, and the wording of its own refusals. Pure functions, apart
from reading an exported definition file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from reconciler import errors, model
from reconciler.providers import webservice

FINGERPRINT = re.compile(r"[0-9a-f]{64}")  # sha256, lower-case hex, as fingerprint.py makes them
MARK = "\x00fp\x00"  # a placeholder no URI contains, to split model_uri() around the fingerprint
IDENTITY = ("id", "name", "type")  # a definition's identity: the service assigns it, not the file

ModelUri = Callable[[str], str]


# -- the model store ---------------------------------------------------------------
def model_record(fp: str, data: Any, *, uri: str, where: str) -> model.ModelRecord:
    """A model's record from its parsed metadata document (``metrics``, ``trained_at``,
    optional ``lineage``); anything else is a located error, never a traceback."""
    try:
        metrics = {str(k): float(v) for k, v in data["metrics"].items()}
        return model.ModelRecord(
            fingerprint=fp,
            uri=uri,
            metrics=model.frozen_map(metrics),
            trained_at=str(data["trained_at"]),
            lineage=model.frozen_map(data.get("lineage", {})),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise errors.ProviderError(f"model metadata is malformed ({e})", where=where) from e


def model_record_from_text(fp: str, text: str, *, uri: str, where: str) -> model.ModelRecord:
    """``model_record`` of a metadata document still in its JSON text; text that is not
    JSON is malformed metadata too."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise errors.ProviderError(f"model metadata is malformed ({e})", where=where) from e
    return model_record(fp, data, uri=uri, where=where)


def canonical_fingerprint(uri: str, model_uri: ModelUri) -> str | None:
    """The fingerprint ``fp`` when ``uri`` is exactly ``model_uri(fp)`` of a 64-hex
    fingerprint, else None. Exact equality with the canonical form is the check (no
    scheme, host, ``..`` or query to parse and be fooled by): a saved plan may have
    been edited, and a web service is only ever pointed into the backend's own store."""
    head, _, tail = model_uri(MARK).partition(MARK)
    if not (uri.startswith(head) and uri.endswith(tail) and len(uri) > len(head) + len(tail)):
        return None
    fp = uri[len(head) : len(uri) - len(tail)]
    if FINGERPRINT.fullmatch(fp) is None or uri != model_uri(fp):
        return None
    return fp


# -- web service definitions -------------------------------------------------------
def definition_path(endpoint: model.Endpoint) -> str:
    """The exported definition file a missing web service is created from."""
    if endpoint.definition is None:
        raise errors.ProviderError(f"no definition to create {endpoint.web_service!r} from")
    return endpoint.definition


def exported_body(
    path: str, endpoint: model.Endpoint, model_uri: str, tags: Mapping[str, str]
) -> dict[str, Any]:
    """The exported definition at ``path``, serving ``model_uri`` with ``tags``, without
    its identity keys (``id``, ``name``, ``type``, any casing): what each backend
    completes with its own identity and server fields to create the web service."""
    try:
        body = webservice.load_exported(path, endpoint.asset, model_uri, tags)
    except (OSError, ValueError) as e:
        raise errors.ProviderError(f"cannot read definition: {e}", where=path) from e
    return {k: v for k, v in body.items() if k.lower() not in IDENTITY}


def with_model(
    current: Mapping[str, Any] | None,
    ep: model.Endpoint,
    model_uri: str,
    tags: Mapping[str, str],
    *,
    where: str,
) -> dict[str, Any]:
    """The live definition ``current`` of ``ep``'s web service, serving ``model_uri`` with
    ``tags`` and otherwise unchanged: what an update writes back. A service gone since it
    was observed is ``NotFound``; one no longer readable is an error located at ``where``."""
    if current is None:
        raise errors.NotFound(f"web service {ep.web_service!r} does not exist")
    try:
        return webservice.with_model(current, ep.asset, model_uri, tags)
    except webservice.DefinitionError as e:
        raise errors.ProviderError(str(e), where=where) from e


def service_state(
    definition: Mapping[str, Any], ep: model.Endpoint, *, uri_for: ModelUri, where: str
) -> model.ServiceState:
    """The live definition of ``ep``'s web service cut down to its essence; a definition
    that cannot be read is an error located at ``where`` (the backend's own name for it)."""
    try:
        return webservice.state_of_definition(
            definition, web_service=ep.web_service, asset_name=ep.asset, uri_for=uri_for
        )
    except webservice.DefinitionError as e:
        raise errors.ProviderError(str(e), where=where) from e
