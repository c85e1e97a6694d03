"""What observing a definition file derives, as it is kept in ``cache/observed.json``.

At 10,000 services a no-change plan re-derived, for every unchanged definition, what it
had derived the run before: its owned fields cut out of the JSON, the revision (a sha256
of a canonical JSON), the asset names. So a file's row in the observed cache (a
``statcache.RowCache``, used only while the file's key matches and it is not racily
clean) keeps the derived values themselves, and a hit costs a few type checks:

    [asset, model_uri, revision, asset_names, owned_tags, endpoint]

``asset`` is the asset name the model URI was looked up for (a manifest naming another
asset reads the file again), ``owned_tags`` are the ownership tags as strings (what
``ServiceState.tags`` and ``Managed.tags`` hold alike), and ``endpoint`` is what
``model.managed_from_tags`` found the service managed for (None: not retrain's). A row
of any other shape is not used: the file is read again, never an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from reconciler import model
from reconciler.providers import common, webservice

ROW_FIELDS = 6  # asset, model_uri, revision, asset_names, owned_tags, endpoint


class Seen(NamedTuple):
    """One service as observe found it, for ``managed``: the ``stat`` of the file it
    read and what it is managed for (``endpoint`` None: not retrain's)."""

    info: os.stat_result
    endpoint: str | None
    tags: Mapping[str, str]


def of_definition(
    definition: Mapping[str, Any], ep: model.Endpoint, *, uri_for: common.ModelUri, where: str
) -> tuple[model.ServiceState, list[Any]]:
    """The service state of a definition just read, and its row for the cache (the
    state's own values: a hit gives back an equal state); a definition observing cannot
    read is the located error ``common.service_state`` raises."""
    state = common.service_state(definition, ep, uri_for=uri_for, where=where)
    listed = model.managed_from_tags(ep.web_service, webservice.get(definition, "tags") or {}, "")
    endpoint = listed.endpoint if listed is not None else None
    row = [ep.asset, state.model_uri, state.revision, list(state.assets), dict(state.tags)]
    return state, [*row, endpoint]


def of_row(
    row: Any, ep: model.Endpoint, *, uri_for: common.ModelUri
) -> tuple[model.ServiceState, str | None] | None:
    """The service state kept in ``row`` for ``ep`` and the endpoint it is managed for;
    None when the row is not one of ``ep``'s asset or not well-formed."""
    if type(row) is not list or len(row) != ROW_FIELDS:
        return None
    asset, uri, revision, names, tags, endpoint = row
    if asset != ep.asset or not _strings(uri, revision, names, tags, endpoint):
        return None
    state = webservice.state_of_fields(
        ep.web_service, uri, tags, tuple(names), uri_for=uri_for, revision=revision
    )
    return state, endpoint


def _strings(uri: Any, revision: Any, names: Any, tags: Any, endpoint: Any) -> bool:
    """Whether a row's values have the types of a state's fields (``type() is``: a
    bool is no string)."""
    return (
        type(revision) is str
        and (uri is None or type(uri) is str)
        and (endpoint is None or type(endpoint) is str)
        and type(names) is list
        and type(tags) is dict
        and _all_str(names)
        and _all_str(tags.values())
    )


def _all_str(values: Iterable[Any]) -> bool:
    """Whether every one of ``values`` (parsed JSON) is a string: joining them fails
    exactly when one is not (JSON makes no subclass of ``str``), at a third of the
    cost of testing each in Python."""
    try:
        "".join(values)
    except TypeError:
        return False
    return True
