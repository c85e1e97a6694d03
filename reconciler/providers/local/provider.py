"""The local provider: web services as JSON files, training through a runner (subprocesses
by default, or a Ray cluster: ``runner.Runner``).

State lives in one directory (default ``.retrain`` next to the manifest):

- ``webservices/<name>.json``: definitions in Azure's ``webServices`` shape;
- ``models/<fingerprint>/``: the content-addressed model store;
- ``history.jsonl``: one line per change, append-only;
- ``lock``: held by an apply, so two never interleave.

Every write is atomic (temp file + rename), so a crash leaves either the old
definition or the new one, never a torn file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from reconciler import errors, fingerprint, model
from reconciler.providers import base, common, digests, webservice
from reconciler.providers.local import backend, filelock, runner, safefs, store, subprocess_runner

SERVICE_NAME = backend.SERVICE_NAME
LOCAL_SCOPE = "/subscriptions/local/resourceGroups/local"


class LocalProvider:
    """The embedded backend. ``workdir`` is where trainers run (the manifest's folder)."""

    name = "local"
    deletes = True  # a definition file is retrain's own copy: removing it loses nothing live

    def __init__(
        self,
        *,
        state_dir: Path,
        workdir: Path,
        env: Mapping[str, str] | None = None,
        training: runner.Runner | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.workdir = workdir
        self.env = dict(os.environ if env is None else env)
        self.services = state_dir / "webservices"
        self.store = store.ModelStore(state_dir / "models")
        self.history_path = state_dir / "history.jsonl"
        self.runner = training or subprocess_runner.SubprocessRunner(workdir=workdir, env=self.env)

    # -- content digests -------------------------------------------------
    def trainer_digest(self, trainer: model.Trainer) -> str:
        spec = backend.program(trainer)
        return _digest(lambda: digests.files_digest(spec.code), spec.entrypoint)

    def input_digest(self, location: str) -> str:
        return _digest(lambda: digests.file_digest(location), location)

    # -- observe ---------------------------------------------------------
    def observe(
        self, endpoints: Sequence[model.Endpoint]
    ) -> Mapping[str, model.ServiceState | None]:
        return {ep.name: self._observe_one(ep) for ep in endpoints}

    def _observe_one(self, ep: model.Endpoint) -> model.ServiceState | None:
        definition = self._read(ep.web_service)
        if definition is None:
            return None
        where = str(self._path(ep.web_service))
        return common.service_state(definition, ep, uri_for=store.uri_for, where=where)

    def models(self, fingerprints: Iterable[str]) -> Mapping[str, model.ModelRecord]:
        return self.store.get_many(fingerprints)

    def managed(self, endpoints: Sequence[model.Endpoint]) -> Sequence[model.Managed]:
        """The definitions in ``webservices/`` tagged as retrain's: one directory listing
        and one read per definition file (local files: no request is counted). Files
        whose names no service could have are not definitions and are passed over."""
        if not self.services.is_dir():
            return ()
        found = []
        for path in sorted(self.services.glob("*.json")):
            if not SERVICE_NAME.match(path.stem) or path.is_symlink():
                continue
            definition = self._read(path.stem)
            tags = webservice.get(definition, "tags") if definition else None
            where = f"{self.services.name}/{path.name}"
            listed = model.managed_from_tags(path.stem, tags or {}, where, path.stem)
            if listed is not None:
                found.append(listed)
        return tuple(found)

    def definition(self, web_service: str) -> dict[str, Any] | None:
        """The whole stored definition (for status and tests)."""
        return self._read(web_service)

    # -- act -------------------------------------------------------------
    def stored(self) -> Sequence[model.ModelRecord]:
        """The model folders of ``models/`` (one listing, one metadata read each)."""
        if not self.store.root.is_dir():
            return ()
        names = sorted(
            p.name for p in self.store.root.iterdir() if store.FINGERPRINT.fullmatch(p.name)
        )
        return tuple(self.store.get_many(names).values())

    def forget(self, fp: str) -> str:
        """Remove the model's folder (its model file and metadata)."""
        folder = self.store.path(fp)
        if folder.is_symlink() or not folder.is_dir():
            return f"model {fingerprint.short(fp)} is gone already"
        shutil.rmtree(folder)
        return f"removed models/{fp}"

    def disown(self, orphan: model.Managed, *, delete: bool = False) -> str:
        """Rewrite the definition without the owned tags (atomically), or delete its file."""
        name = orphan.locator or orphan.web_service
        if delete:
            self._path(name).unlink(missing_ok=True)
            return f"deleted web service definition {self.services.name}/{name}.json"
        definition = self._read(name)
        if definition is None:
            return f"web service {name} is gone already"
        key = webservice.key(definition, "tags")
        definition[key] = model.disowned(definition.get(key) or {})
        self._write(name, definition)
        return f"removed retrain's ownership tags from web service {name}"

    def train(self, job: base.TrainingJob) -> model.ModelRecord:
        """Train in a held scratch directory; the runner publishes the model into the store
        itself, so a crash of this process after training loses nothing."""
        scratch, held = self.store.scratch(job.fingerprint)
        try:
            self._run(job, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)  # gone already once published
            os.close(held)
        record = self.store.get(job.fingerprint)
        if record is None:
            raise errors.TrainingError(
                f"trainer {job.trainer.name!r} finished but model "
                f"{fingerprint.short(job.fingerprint)} is not in the store"
            )
        return record

    def _run(self, job: base.TrainingJob, scratch: Path) -> None:
        program = backend.program(job.trainer)
        entrypoint = program.entrypoint
        spec = {
            "entrypoint": entrypoint,
            "code": list(program.code),  # the files that define the trainer (for a remote runner)
            "resources": dict(program.resources),  # what a cluster reserves for the job
            "inputs": dict(job.inputs),
            "parameters": dict(job.parameters),
            "trainer": job.trainer.name,
            "fingerprint": job.fingerprint,
            "scratch": str(scratch),
            "store": str(self.store.root),
            "metadata": {
                "fingerprint": job.fingerprint,
                "lineage": {
                    "trainer": job.trainer.name,
                    "entrypoint": _relative(entrypoint, self.workdir),
                    "inputs": {k: _relative(v, self.workdir) for k, v in job.inputs.items()},
                    "recipe": dict(job.recipe),
                    "version": job.version,
                    "endpoints": list(job.endpoints),
                },
            },
        }
        secrets = {k: s.reveal() for k, s in job.trainer.secrets.items()}
        self.runner.run(runner.Launch(spec, secrets, job.trainer.timeout_seconds))

    def cancel(self) -> None:
        """Stop waiting for training (the runner says what happens to running jobs)."""
        self.runner.cancel()

    def create(self, endpoint: model.Endpoint, model_uri: str, tags: Mapping[str, str]) -> None:
        path = common.definition_path(endpoint)
        if self._path(endpoint.web_service).exists():
            raise errors.ProviderError(f"web service {endpoint.web_service!r} already exists")
        self._model_exists(model_uri)
        body = common.exported_body(path, endpoint, model_uri, tags)
        identity = {
            "id": f"{LOCAL_SCOPE}/providers/{webservice.RESOURCE_TYPE}/{endpoint.web_service}",
            "name": endpoint.web_service,
            "type": webservice.RESOURCE_TYPE,
        }
        definition = identity | body  # the service's identity first, as Azure returns it
        props = definition.setdefault("properties", {})
        now = _now()
        props.update(provisioningState="Succeeded", createdOn=now, modifiedOn=now)
        self._write(endpoint.web_service, definition)

    def update(self, endpoint: model.Endpoint, model_uri: str, tags: Mapping[str, str]) -> None:
        self._model_exists(model_uri)
        current = self._read(endpoint.web_service)
        where = str(self._path(endpoint.web_service))
        updated = common.with_model(current, endpoint, model_uri, tags, where=where)
        self._write(endpoint.web_service, updated)

    # -- history and lock ----------------------------------------------------
    def record(self, entry: base.HistoryEntry) -> None:
        line = (base.history_line(entry) + "\n").encode()
        safefs.append_line(self.history_path, line, root=self.state_dir, what="history")

    def history(self, endpoint: str | None = None) -> Iterator[base.HistoryEntry]:
        text = safefs.read_text(
            self.history_path, root=self.state_dir, limit=safefs.HISTORY_LIMIT, what="history"
        )
        if text is None:
            return iter(())
        return base.parse_history(text, where=str(self.history_path), endpoint=endpoint)

    def lock(
        self, holder: str, timeout: float, on_wait: Callable[[str], None] = lambda _m: None
    ) -> AbstractContextManager[None]:
        # Before anything is changed: an apply whose history cannot be written must not
        # start (it would update web services and then fail to record them).
        safefs.is_regular_file(self.history_path, root=self.state_dir, what="history", verb="write")
        return filelock.hold(
            self.state_dir / "lock", holder=holder, timeout=timeout, on_wait=on_wait
        )

    def force_unlock(self, lock_id: str) -> str:
        holder = filelock.force_unlock(self.state_dir / "lock", lock_id)
        return filelock.describe(holder)

    def _model_exists(self, uri: str) -> None:
        """Point a web service only at a complete model of this store, named canonically."""
        fp = store.fingerprint_of(uri)
        if fp is None:
            raise errors.ProviderError(
                f"model URI {uri[:200]} is not a location in the model store; not pointing at it"
            )
        if self.store.get(fp) is None:
            raise errors.ProviderError(f"model {uri} is not in the model store; not pointing at it")

    def model_uri(self, fp: str) -> str:
        return store.uri_for(fp)

    def recover(self) -> list[str]:
        """Remove what dead runs left: training scratch and temporary files."""
        removed = [f"models/{name}" for name in self.store.sweep()]
        for folder in (self.services, self.state_dir):
            removed += [str(p.relative_to(self.state_dir)) for p in safefs.sweep_temporary(folder)]
        return removed

    # -- files -----------------------------------------------------------
    def _path(self, web_service: str) -> Path:
        if not SERVICE_NAME.match(web_service):
            raise errors.ProviderError(
                f"web service name {web_service[:80]!r} is not usable as a local file name"
            )
        return self.services / f"{web_service}.json"

    def _read(self, web_service: str) -> dict[str, Any] | None:
        path = self._path(web_service)
        text = safefs.read_text(
            path,
            root=self.state_dir,
            limit=safefs.DEFINITION_LIMIT,
            what="web service definition",
        )
        if text is None:
            return None
        try:
            loaded = json.loads(text)
        except ValueError as e:
            raise errors.ProviderError(
                f"web service definition is unreadable: {str(e)[:200]}", where=str(path)
            ) from e
        except RecursionError:
            raise errors.ProviderError(
                "web service definition is nested too deeply", where=str(path)
            ) from None
        if not isinstance(loaded, dict):
            raise errors.ProviderError(
                "web service definition is not a JSON object", where=str(path)
            )
        return loaded

    def _write(self, web_service: str, definition: Mapping[str, Any]) -> None:
        data = (json.dumps(definition, indent=2) + "\n").encode()
        safefs.write_atomic(
            self._path(web_service), data, root=self.state_dir, what="web service definition"
        )


def _digest(compute: Any, what: str) -> str:
    try:
        result: str = compute()
    except OSError as e:
        raise errors.ProviderError(f"cannot read {what}: {e.strerror}") from e
    return result


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
