"""The provider contract every backend implements, and the descriptor it is found by.

A provider is the only place I/O happens: reading live web services, hashing
input content, training, writing the owned fields, keeping history. The
engine and apply talk to this Protocol and nothing else, and the contract
tests in ``tests/providers`` run unchanged against every backend.

A backend package exports a ``Backend`` descriptor: its part of the manifest
(schema fragment, checks, typed trainer specs and addresses: ``rules.Rules``),
its declared parallelism, and the factory of its ``Provider``. The registry
(``reconciler.providers``) maps ``backend.kind`` to descriptors.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from reconciler import errors, model, plan, redact, rules

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class TrainingJob:
    """One model to train. ``endpoints`` are those waiting for it (for progress and lineage)."""

    fingerprint: str
    trainer: model.Trainer
    inputs: Mapping[str, str]
    parameters: Mapping[str, model.JSON]
    recipe: Mapping[str, model.JSON]
    endpoints: tuple[str, ...] = ()
    version: str = ""


HistoryEntry = model.HistoryEntry  # the type lives with the other value types


def history_line(entry: HistoryEntry) -> str:
    """One history entry as a JSON line (the format both backends store)."""
    fields = {f.name: getattr(entry, f.name) for f in dataclasses.fields(entry)}
    return json.dumps(fields | {"metrics": dict(entry.metrics)})


def parse_history(text: str, *, where: str, endpoint: str | None) -> Iterator[HistoryEntry]:
    """Entries from JSON lines, optionally for one endpoint; a bad line is a located error."""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = HistoryEntry(**json.loads(line))
        except ValueError:
            raise errors.ProviderError(
                "history line is not JSON (torn by a crash?)", where=f"{where}:{number}"
            ) from None
        except TypeError:
            raise errors.ProviderError(
                "history line is not a history entry", where=f"{where}:{number}"
            ) from None
        if endpoint is None or entry.endpoint == endpoint:
            yield entry


class Provider(Protocol):
    """What a backend must do. Every method may raise ``errors.ProviderError``."""

    name: str

    def trainer_digest(self, trainer: model.Trainer) -> str:
        """A digest of the trainer's identity (its code's content)."""
        ...

    def input_digest(self, location: str) -> str:
        """A digest of one input's *content* (never its name or location)."""
        ...

    def observe(
        self, endpoints: Sequence[model.Endpoint]
    ) -> Mapping[str, model.ServiceState | None]:
        """Each endpoint's live essence by endpoint name; None where the service is missing.
        One read per endpoint."""
        ...

    def models(self, fingerprints: Iterable[str]) -> Mapping[str, model.ModelRecord]:
        """The stored models among ``fingerprints`` (absent ones are left out)."""
        ...

    def managed(self, endpoints: Sequence[model.Endpoint]) -> Sequence[model.Managed]:
        """Every web service carrying retrain's ownership tags (``model.managed_from_tags``)
        in the places this backend manages for a manifest with ``endpoints`` (its default
        place and every place an endpoint names), listed or not: how a plan finds the
        services a removed endpoint left behind. Costs one list call (paged) per place;
        each backend's docstring says what that is."""
        ...

    def stored(self) -> Sequence[model.ModelRecord]:
        """Every model in this backend's store, for ``retrain models`` (one list, paged,
        plus what the records need; each backend's docstring says what)."""
        ...

    def forget(self, fp: str) -> str:
        """Delete the stored model ``fp``; says what was removed. The engine never asks for
        a model a listed service serves; a backend refuses one it knows is still in use."""
        ...

    deletes: bool
    """Whether ``disown(..., delete=True)`` can delete a web service (``--prune-delete``)."""

    def disown(self, orphan: model.Managed, *, delete: bool = False) -> str:
        """Remove retrain's ownership tags from the listed service ``orphan`` (every other
        field stays); with ``delete`` (only where ``deletes``), delete the service instead.
        Says what was done, for the report."""
        ...

    def train(self, job: TrainingJob) -> model.ModelRecord:
        """Train one model, store it under its fingerprint, return its record.
        Raises ``errors.TrainingError`` with the trainer's explanation on failure."""
        ...

    def create(self, endpoint: model.Endpoint, model_uri: str, tags: Mapping[str, str]) -> None:
        """Create the endpoint's web service from its definition, serving ``model_uri``."""
        ...

    def update(self, endpoint: model.Endpoint, model_uri: str, tags: Mapping[str, str]) -> None:
        """Point the trained-model asset at ``model_uri`` and set the owned ``tags``;
        every other field of the definition stays exactly as it was."""
        ...

    def record(self, entry: HistoryEntry) -> None:
        """Append one entry to the history."""
        ...

    def model_uri(self, fingerprint: str) -> str:
        """The one canonical location of the model ``fingerprint`` in this backend's store:
        the only URI a web service tagged with that fingerprint may point at."""
        ...

    def recover(self) -> list[str]:
        """Clean up what a dead run left (training scratch, temporary files); called under
        the apply lock before every apply. Returns what was removed, for the log."""
        ...

    def history(self, endpoint: str | None = None) -> Iterator[HistoryEntry]:
        """Entries oldest first, optionally for one endpoint."""
        ...

    def lock(
        self, holder: str, timeout: float, on_wait: Callable[[str], None] = ...
    ) -> AbstractContextManager[None]:
        """Hold the backend's apply lock; raise ``errors.LockError`` after ``timeout`` s.
        ``on_wait`` hears once, naming the holder, when the lock is busy."""
        ...

    def cancel(self) -> None:
        """Stop running training jobs now: the apply was interrupted. (Remote jobs may be
        left running: the next run resumes them.)"""
        ...

    def force_unlock(self, lock_id: str) -> str:
        """Release the lock held under ``lock_id``, whoever holds it; describe who did."""
        ...


Rows = list[dict[str, Any]]
"""Scoring rows: one mapping of column name to value per row."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Scorable:
    """One web service as a scoring server sees it now: its definition's request and
    response schemas, the model it points at (``fingerprint``, ``version``) and ``score``,
    that model's predictions for checked rows, one item per row. ``score`` is None when it
    cannot score, and ``unavailable`` says why (no model yet, the model is gone, the
    trainer declares no way to score...)."""

    web_service: str
    endpoint: str
    title: str
    input_schema: Mapping[str, Any]
    """The definition's ``properties.input`` (a JSON-schema-like object of named tables)."""
    output_schema: Mapping[str, Any]
    parameters: Mapping[str, Any]
    """The global parameters the definition declares (``properties.parameters``)."""
    fingerprint: str | None
    version: str | None
    api_key: model.Secret | None
    """What a scoring request must present as ``Authorization: Bearer``; None: no key."""
    score: Callable[[Rows], Sequence[Any]] | None
    unavailable: str = ""


class Scoring(Protocol):
    """A backend whose web services score in this process (``retrain serve``)."""

    def names(self) -> Sequence[str]:
        """Every web service it can describe: the manifest's and those on disk."""
        ...

    def current(self, web_service: str) -> Scorable | None:
        """The service as it is now (a changed definition is read, its model loaded, before
        this returns: the next request after an apply scores with the new model); None
        when no such web service exists or is declared."""
        ...


def scoring_of(
    provider: Provider,
    endpoints: Sequence[model.Endpoint],
    *,
    log: Log,
    scrub: Callable[[str], str],
) -> Scoring | None:
    """The provider's scoring for ``endpoints`` when its web services score in this
    process (optional, like ``steps``: a cloud backend's services score in the cloud).
    ``scrub`` masks the manifest's secrets in the reasons it gives."""
    found = getattr(provider, "scoring", None)
    if not callable(found):
        return None
    made: Scoring = found(endpoints, log, scrub)
    return made


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What a backend's factory is given besides the manifest's ``backend``: settings
    already resolved, once, by the registry and the engine."""

    manifest_dir: Path
    state_dir: Path | None
    """``--state-dir``: for a backend that keeps its state in a directory; others refuse it."""
    env: Mapping[str, str]
    scrub: redact.Redactor
    log: Log
    workers: int
    """How many jobs at once: the flag, else the manifest, else one per CPU."""
    network_workers: int = 0
    """How many requests at once (``providers.network_parallelism``); 0: ``workers``."""

    @property
    def requests(self) -> int:
        """How wide the provider's pool of requests is."""
        return self.network_workers or self.workers


class Backend(rules.Rules, Protocol):
    """A backend, as its package exports it (one object; the registry names it)."""

    def parallelism(self, section: Mapping[str, model.JSON]) -> int | None:
        """How many jobs at once the manifest's ``backend.<kind>`` section declares."""
        ...

    def create(self, backend: model.Backend, context: Context) -> Provider:
        """The provider for the manifest's ``backend``."""
        ...


def steps_of(descriptor: Backend) -> plan.Steps | None:
    """The descriptor's ``steps`` (what apply will do for a change, in its words), when it
    has one: optional, so a backend that says nothing more than the plan's diff needs
    nothing (the in-test plug-in has none)."""
    found = getattr(descriptor, "steps", None)
    return found if callable(found) else None


def network_parallelism_of(descriptor: Backend, section: Mapping[str, model.JSON]) -> int | None:
    """How many requests at once the descriptor's ``network_parallelism`` gives for the
    manifest's ``backend.<kind>`` (what it declares, else the backend's own default),
    when it has that hook: optional, like ``steps``; without it, requests go as wide as
    jobs (a backend whose "requests" are local file writes needs no other width)."""
    found = getattr(descriptor, "network_parallelism", None)
    if not callable(found):
        return None
    width = found(section)
    return width if isinstance(width, int) else None


def starter_of(descriptor: Backend) -> Callable[[], Mapping[str, Path]] | None:
    """The descriptor's ``starter`` (the files ``retrain init`` writes, by destination
    relative to the project folder), when it has one: optional, like ``steps``."""
    found = getattr(descriptor, "starter", None)
    return found if callable(found) else None


def starter_beside(module_file: str, files: Mapping[str, str]) -> Mapping[str, Path]:
    """``files`` (destination → name in the ``starter`` folder beside a backend's module)
    as paths: how a built-in backend supplies ``starter()``."""
    folder = Path(module_file).parent / "starter"
    return {dest: folder / name for dest, name in files.items()}


@functools.cache
def fragment_beside(module_file: str) -> Mapping[str, Any]:
    """The schema fragment ``schema.json`` beside a backend's module, read once: how a
    built-in backend supplies ``schema_fragment()``."""
    path = Path(module_file).parent / "schema.json"
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded
