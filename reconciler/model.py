"""Frozen value types for desired and observed state.

Everything the planner reads is one of these types, so deciding can stay a
pure function: the manifest loader builds the desired side, a provider's
``observe`` builds the observed side, and neither carries I/O handles.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

JSON = Any  # a value that came from YAML/JSON: str, int, float, bool, None, list, dict

#: The ownership tags the reconciler writes on every web service it manages.
TAG_MANAGED_BY = "retrain.managed-by"
TAG_ENDPOINT = "retrain.endpoint"
TAG_FINGERPRINT = "retrain.fingerprint"
TAG_VERSION = "retrain.version"
MANAGED_BY = "retrain"
TRAINER_TIMEOUT = 3600.0  # seconds a training job may run by default: an hour is surely stuck
OWNED_TAGS = (TAG_MANAGED_BY, TAG_ENDPOINT, TAG_FINGERPRINT, TAG_VERSION)


def frozen_map(items: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only view of a copy of ``items`` (dataclasses stay immutable)."""
    return MappingProxyType(dict(items or {}))


class Secret:
    """A value resolved from ``${env:NAME}``; it never prints itself."""

    __slots__ = ("_value", "reference")

    def __init__(self, reference: str, value: str) -> None:
        self.reference = reference
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that sends it (a provider)."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.reference})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class Source:
    """Where in the manifest something was declared, for error messages."""

    file: str
    pointer: str = ""
    line: int | None = None

    def __str__(self) -> str:
        at = f"{self.file}:{self.line}" if self.line else self.file
        return f"{at} {self.pointer}" if self.pointer else at


@dataclass(frozen=True, slots=True)
class Gate:
    """Promote a challenger only if ``metric`` clears ``minimum`` and does not
    regress by more than ``max_regression`` against the serving champion.

    ``higher_is_better`` flips both comparisons for error metrics (RMSE, MAE).
    """

    metric: str
    minimum: float | None = None
    max_regression: float | None = None
    higher_is_better: bool = True
    source: Source | None = field(default=None, compare=False)
    """Where ``metric`` is written, for the plan-time check against the serving model."""


@dataclass(frozen=True, slots=True)
class TrainerSpec:
    """How a backend runs one trainer, as its manifest fields say (a function in a file,
    a remote training service...). Each backend subclasses this frozen type with its own
    fields; the base, with none, is a trainer no backend can run (the planner's tests
    need no more). Secrets in it are ``Secret``."""

    def declared_parameters(self) -> frozenset[str] | None:
        """The parameter names the trainer declares it takes, when it declares them (the
        loader then refuses any other name before training); None: not declared."""
        return None


@dataclass(frozen=True, slots=True)
class Trainer:
    """A training pipeline: its name, how its backend runs it (``spec``) and what every
    backend gives it (parameters, secrets, a time limit)."""

    name: str
    spec: TrainerSpec = field(default_factory=TrainerSpec)
    parameters: Mapping[str, JSON] = field(default_factory=frozen_map)
    secrets: Mapping[str, Secret] = field(default_factory=frozen_map)
    timeout_seconds: float = TRAINER_TIMEOUT
    secret_parameters: Mapping[str, Secret] = field(default_factory=frozen_map)
    schedule: str | None = None
    """Cron syntax, UTC: when ``retrain watch`` plans again to retrain on fresh data.
    Not part of the fingerprint: when a model is trained does not change what it is."""


@dataclass(frozen=True, slots=True)
class Address:
    """Where a backend finds an endpoint's web service beyond its ``web_service`` name
    (the group or project it lives in, a workspace and endpoint...). Each backend
    subclasses this frozen type with its own fields; the base adds nothing to the name."""

    @property
    def creatable(self) -> bool:
        """Whether a missing service at this address can be made without an exported
        definition (a backend adds, say, an endpoint to an existing service)."""
        return False


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One scoring endpoint: a web service whose trained-model asset we own."""

    name: str
    web_service: str
    asset: str
    version: str
    trainer: Trainer
    inputs: Mapping[str, str]
    parameters: Mapping[str, JSON]
    gate: Gate | None
    definition: str | None
    source: Source
    address: Address = field(default_factory=Address)
    """Where the backend finds the web service, beyond its name (its own typed fields)."""
    secret_parameters: Mapping[str, Secret] = field(default_factory=frozen_map)
    """Parameters whose values are secrets: given to the trainer, shown by name only."""

    @property
    def creatable(self) -> bool:
        """Whether a missing service can be made: from an exported definition, or in a
        way its address allows (see ``Address.creatable``)."""
        return self.definition is not None or self.address.creatable


@dataclass(frozen=True, slots=True)
class Backend:
    """Which provider runs the loop (``kind``), and its own section of the manifest,
    ``backend.<kind>``, as declared (secrets as ``Secret``)."""

    kind: str
    section: Mapping[str, JSON] = field(default_factory=frozen_map)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated manifest: every reference checked, every template expanded."""

    path: str
    digest: str  # sha256 of the manifest file's bytes: a plan made from other bytes is stale
    backend: Backend
    trainers: Mapping[str, Trainer]
    endpoints: tuple[Endpoint, ...]

    def endpoint(self, name: str) -> Endpoint:
        for ep in self.endpoints:
            if ep.name == name:
                return ep
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Desired:
    """What one endpoint should serve: the manifest's endpoint plus its model's fingerprint.

    ``recipe`` is what the fingerprint was computed from (trainer digest, input
    digests, parameters); stored with the model, it lets a plan say *why* a
    model must be retrained.
    """

    endpoint: Endpoint
    fingerprint: str
    recipe: Mapping[str, JSON] = field(default_factory=frozen_map)

    @property
    def name(self) -> str:
        return self.endpoint.name


class Tagged:
    """What a value carrying retrain's ownership tags can tell from them."""

    __slots__ = ()
    tags: Mapping[str, str]

    @property
    def fingerprint(self) -> str | None:
        return self.tags.get(TAG_FINGERPRINT)

    @property
    def version(self) -> str | None:
        return self.tags.get(TAG_VERSION)


@dataclass(frozen=True, slots=True)
class ServiceState(Tagged):
    """The essence of a live web service: only the fields the reconciler owns.

    ``model_uri`` is the trained-model asset's location (None when the asset
    named in the manifest is not in the definition; ``assets`` then lists the
    names that are). ``expected_uri`` is where the model named by the
    fingerprint tag lives, so the planner can tell drift without I/O.
    ``revision`` hashes the owned fields, so a saved plan can tell staleness.
    """

    web_service: str
    model_uri: str | None
    tags: Mapping[str, str]
    expected_uri: str | None
    revision: str
    assets: tuple[str, ...] = ()
    detail: tuple[str, ...] = field(default=(), compare=False)
    """Lines the provider gives about the live service beyond the owned fields (what
    serves, traffic), for plans to show; never compared, never part of the revision."""

    @property
    def managed(self) -> bool:
        return self.tags.get(TAG_MANAGED_BY) == MANAGED_BY


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """A trained model in the store, keyed by its content fingerprint."""

    fingerprint: str
    uri: str
    metrics: Mapping[str, float]
    trained_at: str
    lineage: Mapping[str, JSON] = field(default_factory=frozen_map)


@dataclass(frozen=True, slots=True)
class Managed(Tagged):
    """A web service carrying retrain's ownership tags, as a provider lists it: the
    endpoint it was managed for (its ``retrain.endpoint`` tag), its name, where it lives
    (for the reader: the folder, group or project it lives in) and its owned tags."""

    endpoint: str
    web_service: str
    where: str = ""
    tags: Mapping[str, str] = field(default_factory=frozen_map)
    locator: str = field(default="", compare=False)
    """The provider's own handle to find the service again (a resource id, a record key),
    for ``Provider.disown``; opaque to everything else."""


def managed_from_tags(
    web_service: str, tags: Mapping[str, Any], where: str, locator: str = ""
) -> Managed | None:
    """A listed service as ``Managed`` when its tags say retrain manages it for a named
    endpoint; None otherwise (someone else's service, or tags without an endpoint)."""
    if not isinstance(tags, Mapping) or tags.get(TAG_MANAGED_BY) != MANAGED_BY:
        return None
    endpoint = tags.get(TAG_ENDPOINT)
    if not isinstance(endpoint, str) or not endpoint:
        return None
    owned = {k: str(v) for k, v in tags.items() if k in OWNED_TAGS}
    return Managed(endpoint, web_service, where, frozen_map(owned), locator or web_service)


def disowned(tags: Mapping[str, Any]) -> dict[str, Any]:
    """``tags`` without retrain's ownership tags (what pruning leaves on a service)."""
    return {k: v for k, v in tags.items() if k not in OWNED_TAGS}


@dataclass(frozen=True, slots=True)
class Observed:
    """Everything observed for one plan: per endpoint its service (None when missing),
    and the stored models the plan may need (desired and serving fingerprints).

    ``managed`` lists every service the backend says retrain manages, when it was asked
    (a plan of the whole manifest); None when not (``--target``/``--exclude``: the
    plan then says nothing about services the manifest no longer lists)."""

    services: Mapping[str, ServiceState | None]
    models: Mapping[str, ModelRecord]
    managed: tuple[Managed, ...] | None = None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One change made to one endpoint: answers "what served what, when, and why"."""

    time: str
    endpoint: str
    web_service: str
    action: str
    fingerprint: str
    version: str
    model_uri: str
    previous_uri: str | None
    previous_fingerprint: str | None
    metrics: Mapping[str, float] = field(default_factory=frozen_map)
    actor: str = ""
    manifest_digest: str = ""
