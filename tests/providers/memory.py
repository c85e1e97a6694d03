"""A third backend, defined by the tests alone: web services in a dict, models trained
by calling a Python function in this process.

It is what a plug-in author writes: a descriptor (``BACKEND``) with its own schema
fragment, checks and typed address, and a provider passing the contract suite. It is
registered only through the ``retrain.providers`` entry-point group (see
``tests/providers/plugin.py``), never by editing the core.
"""

from __future__ import annotations

import importlib
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler import errors, fingerprint, model, problems
from reconciler.problems import Rel, Site
from reconciler.providers import base, common, digests, evaluation

NAME = "memory"
FRAGMENT: Mapping[str, Any] = {
    "description": "an in-memory test backend",
    "backend": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"parallelism": {"type": "integer", "minimum": 1, "maximum": 64}},
    },
    "trainer": {
        "properties": {
            "call": {
                "type": "string",
                "pattern": "^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$",
                "description": "module:function, imported and called in-process.",
            }
        },
        "required": ["call"],
    },
    "endpoint": {"properties": {"shelf": {"type": "string", "minLength": 1}}},
}


@dataclass(frozen=True, slots=True)
class Call(model.TrainerSpec):
    """A trainer that is a function ``module:function`` of this process."""

    function: str


@dataclass(frozen=True, slots=True)
class Shelf(model.Address):
    """Web services live on shelves; the default one unless the endpoint names another."""

    shelf: str = "default"


@dataclass
class World:
    """Everything one memory backend holds (one per manifest folder, so runs share it)."""

    services: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)
    holder: str | None = None
    lock: threading.Condition = field(default_factory=threading.Condition)


WORLDS: dict[str, World] = {}


class MemoryBackend:
    """The descriptor: its part of the manifest, and its provider factory."""

    name = NAME
    secret_fields: tuple[str, ...] = ()

    def schema_fragment(self) -> Mapping[str, Any]:
        return FRAGMENT

    def trainer(self, spec: Mapping[str, Any], site: Site, base: Path) -> model.TrainerSpec:
        if "call" not in spec:
            site.add((), "the memory backend calls a function: give the trainer call")
        return Call(str(spec.get("call", "")))

    def input(self, location: str, site: Site, rel: Rel, base: Path) -> str | None:
        found = problems.existing_file(base, location, site, rel)
        return None if found is None else str(found)

    def address(
        self, spec: Mapping[str, Any], site: Site, trainer: model.Trainer | None
    ) -> model.Address:
        return Shelf(str(spec.get("shelf", "default")))

    def parallelism(self, section: Mapping[str, model.JSON]) -> int | None:
        return section.get("parallelism")

    def create(self, backend: model.Backend, context: base.Context) -> base.Provider:
        world = WORLDS.setdefault(str(context.manifest_dir), World())
        return MemoryProvider(world, str(context.manifest_dir))


BACKEND: base.Backend = MemoryBackend()


class MemoryProvider:
    """The provider contract on dicts; every method as the protocol documents it."""

    name = NAME
    deletes = True  # a dict entry: nothing else refers to it

    def __init__(self, world: World, label: str) -> None:
        self.world = world
        self.label = label.strip("/").replace("/", "-") or "root"

    def trainer_digest(self, trainer: model.Trainer) -> str:
        return fingerprint.combine(
            trainer_digest=_call(trainer).function, input_digests={}, parameters={}
        )

    def input_digest(self, location: str) -> str:
        return digests.file_digest(location)

    def model_uri(self, fingerprint: str) -> str:
        return f"memory://{self.label}/models/{fingerprint}"

    def observe(
        self, endpoints: Sequence[model.Endpoint]
    ) -> Mapping[str, model.ServiceState | None]:
        return {ep.name: self._observe_one(ep) for ep in endpoints}

    def _observe_one(self, ep: model.Endpoint) -> model.ServiceState | None:
        found = self.world.services.get(_key(ep))
        if found is None:
            return None
        return common.service_state(found, ep, uri_for=self.model_uri, where=ep.web_service)

    def models(self, fingerprints: Iterable[str]) -> Mapping[str, model.ModelRecord]:
        return {fp: self._record(fp) for fp in fingerprints if fp in self.world.models}

    def managed(self, endpoints: Sequence[model.Endpoint]) -> Sequence[model.Managed]:
        """The services on the default shelf and every shelf an endpoint names whose tags
        say retrain manages them (one "list" per shelf)."""
        shelves = {"default"} | {_key(ep)[0] for ep in endpoints}
        found = (
            model.managed_from_tags(name, body.get("tags") or {}, f"shelf {shelf}", shelf)
            for (shelf, name), body in sorted(self.world.services.items())
            if shelf in shelves
        )
        return tuple(m for m in found if m is not None)

    def stored(self) -> Sequence[model.ModelRecord]:
        return tuple(self._record(fp) for fp in sorted(self.world.models))

    def forget(self, fp: str) -> str:
        self.world.models.pop(fp, None)
        return f"removed models/{fp}"

    def disown(self, orphan: model.Managed, *, delete: bool = False) -> str:
        key = (orphan.locator, orphan.web_service)
        if delete:
            self.world.services.pop(key, None)
            return f"deleted web service {orphan.web_service}"
        body = self.world.services[key]
        body["tags"] = model.disowned(body.get("tags") or {})
        return f"removed retrain's ownership tags from web service {orphan.web_service}"

    def _record(self, fp: str) -> model.ModelRecord:
        data = self.world.models[fp]
        return common.model_record(fp, data, uri=self.model_uri(fp), where=f"models/{fp}")

    def train(self, job: base.TrainingJob) -> model.ModelRecord:
        if job.fingerprint in self.world.models:
            return self._record(job.fingerprint)
        module, _, attribute = _call(job.trainer).function.partition(":")
        function: Callable[..., None] = getattr(importlib.import_module(module), attribute)
        parameters = dict(job.parameters) | {
            k: s.reveal() for k, s in job.trainer.secret_parameters.items()
        }
        with tempfile.TemporaryDirectory() as scratch:
            model_path, evaluation_path = Path(scratch, "model"), Path(scratch, "evaluation")
            inputs = {k: Path(v) for k, v in job.inputs.items()}
            try:
                function(
                    inputs=inputs,
                    parameters=parameters,
                    model_path=model_path,
                    evaluation_path=evaluation_path,
                )
                metrics = evaluation.parse(evaluation_path.read_text(encoding="utf-8"))
            except Exception as e:  # the trainer's own failure, reported as the contract says
                raise errors.TrainingError(f"trainer {job.trainer.name!r} failed: {e}") from e
        self.world.models[job.fingerprint] = {
            "metrics": metrics,
            "trained_at": "2026-01-01T00:00:00+00:00",
            "lineage": {"trainer": job.trainer.name, "endpoints": list(job.endpoints)},
        }
        return self._record(job.fingerprint)

    def create(self, endpoint: model.Endpoint, model_uri: str, tags: Mapping[str, str]) -> None:
        self._confined(model_uri)
        if _key(endpoint) in self.world.services:
            raise errors.ProviderError(f"web service {endpoint.web_service!r} already exists")
        body = common.exported_body(common.definition_path(endpoint), endpoint, model_uri, tags)
        self.world.services[_key(endpoint)] = {"name": endpoint.web_service} | body

    def update(self, endpoint: model.Endpoint, model_uri: str, tags: Mapping[str, str]) -> None:
        self._confined(model_uri)
        current = self.world.services.get(_key(endpoint))
        updated = common.with_model(current, endpoint, model_uri, tags, where=endpoint.web_service)
        self.world.services[_key(endpoint)] = updated

    def _confined(self, uri: str) -> None:
        fp = common.canonical_fingerprint(uri, self.model_uri)
        if fp is None or fp not in self.world.models:
            raise errors.ProviderError(f"model {uri[:100]} is not in this store; not serving it")

    def record(self, entry: base.HistoryEntry) -> None:
        self.world.history.append(base.history_line(entry))

    def history(self, endpoint: str | None = None) -> Iterator[base.HistoryEntry]:
        text = "\n".join(self.world.history)
        return base.parse_history(text, where="history", endpoint=endpoint)

    def lock(
        self, holder: str, timeout: float, on_wait: Callable[[str], None] = lambda _m: None
    ) -> AbstractContextManager[None]:
        return self._hold(holder, timeout, on_wait)

    @contextmanager
    def _hold(self, holder: str, timeout: float, on_wait: Callable[[str], None]) -> Iterator[None]:
        world = self.world
        with world.lock:
            if world.holder is not None:
                on_wait(f"locked by {world.holder}")
            if not world.lock.wait_for(lambda: world.holder is None, timeout):
                raise errors.LockError(f"locked by {world.holder}")
            world.holder = holder
        try:
            yield
        finally:
            with world.lock:
                world.holder = None
                world.lock.notify_all()

    def cancel(self) -> None:
        """Training runs in the caller's thread: nothing of its own to stop."""

    def force_unlock(self, lock_id: str) -> str:
        with self.world.lock:
            held, self.world.holder = self.world.holder, None
            self.world.lock.notify_all()
        return f"released the lock held by {held}"

    def recover(self) -> list[str]:
        return []


def _call(trainer: model.Trainer) -> Call:
    if not isinstance(trainer.spec, Call):
        raise errors.ProviderError(f"trainer {trainer.name!r} is not a memory trainer")
    return trainer.spec


def _key(ep: model.Endpoint) -> tuple[str, str]:
    shelf = ep.address.shelf if isinstance(ep.address, Shelf) else "default"
    return shelf, ep.web_service
