"""The stored world of the Azure ML v2 fake: workspaces and what lives in them.

Why a separate module: the API modules (online endpoints, assets, jobs, scoring) each own their
wire rules, but they share one store under one lock, as one real workspace would. Resource names
are case-insensitive (ARM), so every map is keyed by the lower-cased name and keeps the name as
first written.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .blobs import BlobStore
from .common import PROVIDER, Gate, Operations
from .validation import StrictValidator

JsonObj = dict[str, Any]


@dataclass
class Tracked:
    """A tracked ARM resource: the request body as stored plus server-owned fields."""

    name: str
    body: JsonObj  # location, tags, identity, kind, sku, properties (client casing)
    system_data: JsonObj
    state: str = "Creating"


@dataclass
class Deployment(Tracked):
    pass


@dataclass
class Endpoint(Tracked):
    deployments: dict[str, Deployment] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    rr: dict[str, int] = field(default_factory=dict)  # smooth weighted round-robin credit


@dataclass
class ModelVersionRec:
    version: str
    body: JsonObj
    system_data: JsonObj


@dataclass
class ModelContainerRec:
    name: str
    body: JsonObj
    system_data: JsonObj
    versions: dict[str, ModelVersionRec] = field(default_factory=dict)


@dataclass
class JobRec:
    name: str
    body: JsonObj
    system_data: JsonObj
    status: str = "NotStarted"
    error: str | None = None
    polls: int = 0
    started: float | None = None  # time.monotonic() when it began Running
    thread: threading.Thread | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    outcome: str | None = None  # what the trainer thread ended with, shown on the next poll


@dataclass
class Workspace:
    subscription: str
    resource_group: str
    name: str
    location: str
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    models: dict[str, ModelContainerRec] = field(default_factory=dict)
    jobs: dict[str, JobRec] = field(default_factory=dict)
    datastores: dict[str, JsonObj] = field(default_factory=dict)  # name.lower() -> resource

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/{PROVIDER}/workspaces/{self.name}"
        )

    @property
    def key(self) -> tuple[str, str, str]:
        return self.subscription.lower(), self.resource_group.lower(), self.name.lower()


def new_keys() -> dict[str, str]:
    return {"primaryKey": secrets.token_urlsafe(32), "secondaryKey": secrets.token_urlsafe(32)}


@dataclass
class Failures:
    """Injected outcomes: the next matching deployment / job ends Failed."""

    deployments: list[tuple[str | None, JsonObj]] = field(default_factory=list)
    jobs: list[tuple[str | None, str]] = field(default_factory=list)
    blips: dict[str, tuple[str, int]] = field(default_factory=dict)  # job -> (status, polls)

    def take_deployment(self, name: str) -> JsonObj | None:
        for i, (target, err) in enumerate(self.deployments):
            if target is None or target.lower() == name.lower():
                del self.deployments[i]
                return err
        return None

    def take_job(self, name: str) -> str | None:
        for i, (target, message) in enumerate(self.jobs):
            if target is None or target.lower() == name.lower():
                del self.jobs[i]
                return message
        return None


@dataclass
class State:
    """Everything the API modules share."""

    validator: StrictValidator
    ops: Operations
    gate: Gate
    blobs: BlobStore
    lock: threading.RLock
    get_advances_lro: bool = True
    page_size: int = 100  # items per list page before nextLink (inference: undocumented)
    workspaces: dict[tuple[str, str, str], Workspace] = field(default_factory=dict)
    failures: Failures = field(default_factory=Failures)
    server_url: Callable[[], str] = field(default=lambda: "")

    @property
    def base_url(self) -> str:
        return self.server_url()

    def workspace(self, sub: str, rg: str, ws: str) -> Workspace | None:
        return self.workspaces.get((sub.lower(), rg.lower(), ws.lower()))
