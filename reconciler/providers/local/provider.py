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
import operator
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from reconciler import errors, fingerprint, gcpause, model
from reconciler.providers import base, common, digests, statcache, webservice
from reconciler.providers.local import (
    backend,
    filelock,
    observed,
    runner,
    safefs,
    store,
    subprocess_runner,
)

SERVICE_NAME = backend.SERVICE_NAME
LOCAL_SCOPE = "/subscriptions/local/resourceGroups/local"
CACHE = "cache"  # the folder of the state directory that holds caches: never state


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
        # Input and code digests, kept while each file is unchanged (see statcache).
        self.digests = statcache.StatCache(state_dir / CACHE / "digests.json")
        # The owned parts of definitions, kept while each file is unchanged (see observe).
        self.observed = statcache.RowCache(state_dir / CACHE / "observed.json")
        # What the last observe found, per file name, for managed(): only the file's
        # identity and its owned tags (10,000 whole definitions would triple a plan's memory).
        self._observed: dict[str, observed.Seen] = {}
        self.runner = training or subprocess_runner.SubprocessRunner(workdir=workdir, env=self.env)

    # -- content digests -------------------------------------------------
    def trainer_digest(self, trainer: model.Trainer) -> str:
        spec = backend.program(trainer)
        return _digest(lambda: digests.files_digest(spec.code, self.digests), spec.entrypoint)

    def input_digest(self, location: str) -> str:
        return _digest(lambda: digests.file_digest(location, self.digests), location)

    # -- observe ---------------------------------------------------------
    def observe(
        self, endpoints: Sequence[model.Endpoint]
    ) -> Mapping[str, model.ServiceState | None]:
        """Each endpoint's definition file, the folder checked and opened once: read, or,
        while the file is unchanged since a run read it (its key, see ``statcache``),
        the state that run derived from it (``<stateDir>/cache/observed.json``, see
        ``observed``: at 10,000 services, parsing 60 MB of definitions was most of a
        plan, and re-deriving their states the rest). What was seen is kept for
        ``managed``, which then reads no file again."""
        out: dict[str, model.ServiceState | None] = {}
        seen: dict[str, observed.Seen] = {}
        with (
            gcpause.paused(),  # 10,000 states and the cache's entries: no garbage
            safefs.Folder(self.services, root=self.state_dir, what=WHAT) as files,
        ):
            for ep in endpoints:
                name = _file_name(ep.web_service)  # refused in order
                found = self._observe_one(files, name, ep)
                if found is None:
                    out[ep.name] = None
                    continue
                state, seen[name] = found
                out[ep.name] = state
        self._observed = seen
        return out

    def _observe_one(
        self, files: safefs.Folder, name: str, ep: model.Endpoint
    ) -> tuple[model.ServiceState, observed.Seen] | None:
        """``ep``'s service from its definition file ``name``: from the cache when the
        file is unchanged, else read (and kept); None when there is no such file."""
        info = files.regular(name)
        kept = None
        if info is not None:
            row = self.observed.get(name, statcache.key_of(info))
            kept = None if row is None else observed.of_row(row, ep, uri_for=store.uri_for)
        if kept is None or info is None:
            checked = statcache.now_ns()
            data, info = files.read(name, safefs.DEFINITION_LIMIT)
            if data is None or info is None:
                return None
            where = f"{self.services}/{name}"
            definition = _parse(data, where)
            state, row = observed.of_definition(definition, ep, uri_for=store.uri_for, where=where)
            self.observed.put(name, statcache.key_of(info), checked, row)
            kept = state, row[-1]
        state, endpoint = kept
        return state, observed.Seen(info, endpoint, state.tags)

    def models(self, fingerprints: Iterable[str]) -> Mapping[str, model.ModelRecord]:
        return self.store.get_many(fingerprints)

    def managed(self, endpoints: Sequence[model.Endpoint]) -> Sequence[model.Managed]:
        """The definitions in ``webservices/`` tagged as retrain's: one directory listing,
        and a read of each definition file the last ``observe`` did not read. Files whose
        names no service could have are not definitions and are passed over.

        A file observe read is taken as observe read it while its name still lists the
        same file (the listing's inode, free on Linux: no ``stat``). Within one plan,
        observe's reading is the snapshot the plan is made of: a definition rewritten as
        retrain and editors write (a new file renamed over it) has a new inode and is
        read again, one removed is not listed, and one edited in place since is reported
        as observe saw it, as every other field of the plan is (a saved plan's stale
        check reads the files again). A listing whose inode differs from ``stat``'s (some
        union file systems) falls back to comparing the whole identity, as before."""
        if not self.services.is_dir():
            return ()
        with os.scandir(self.services) as listing:  # names, inodes and link-ness: no stat
            entries = sorted((e for e in listing if e.name.endswith(".json")), key=_BY_NAME)
        with gcpause.paused():  # 10,000 listed services: no garbage
            return tuple(self._listed(entries))

    def _listed(self, entries: Iterable[os.DirEntry[str]]) -> Iterator[model.Managed]:
        """The services of ``entries`` tagged as retrain's (see ``managed``)."""
        folder = self.services.name
        for entry in entries:
            kept = self._observed.get(entry.name)  # observe refused a name no service has
            stem = entry.name.removesuffix(".json")
            if entry.is_symlink() or (kept is None and not SERVICE_NAME.match(stem)):
                continue
            if kept is not None and _same_file(entry, kept.info):
                if kept.endpoint is not None:
                    where = f"{folder}/{entry.name}"
                    yield model.Managed(kept.endpoint, stem, where, kept.tags, stem)
                continue
            where = f"{folder}/{entry.name}"
            definition = self._read(stem)
            tags = webservice.get(definition, "tags") if definition else None
            listed = model.managed_from_tags(stem, tags or {}, where, stem)
            if listed is not None:
                yield listed

    def scoring(
        self, endpoints: Sequence[model.Endpoint], log: base.Log, scrub: Callable[[str], str]
    ) -> base.Scoring:
        """The web services as ``retrain serve`` scores them (``serving``)."""
        from reconciler.providers.local import serving

        return serving.LocalScoring(self, endpoints, log=log, scrub=scrub)

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
        for folder in (self.services, self.state_dir, self.state_dir / CACHE):
            removed += [str(p.relative_to(self.state_dir)) for p in safefs.sweep_temporary(folder)]
        return removed

    # -- files -----------------------------------------------------------
    def _path(self, web_service: str) -> Path:
        return self.services / _file_name(web_service)

    def _read(self, web_service: str) -> dict[str, Any] | None:
        path = self._path(web_service)
        data = safefs.read_bytes(
            path, root=self.state_dir, limit=safefs.DEFINITION_LIMIT, what=WHAT
        )
        return None if data is None else _parse(data, path)

    def _write(self, web_service: str, definition: Mapping[str, Any]) -> None:
        data = (json.dumps(definition, indent=2) + "\n").encode()
        safefs.write_atomic(self._path(web_service), data, root=self.state_dir, what=WHAT)


WHAT = "web service definition"  # what errors call a definition file
_BY_NAME = operator.attrgetter("name")  # a listing's entries in name order, at C speed


def _identity(info: os.stat_result) -> tuple[int, ...]:
    """What tells a file's content has not changed since it was read: a rename-replace
    gives a new inode, an edit in place a new change time (which no one can set back)."""
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _same_file(entry: os.DirEntry[str], info: os.stat_result) -> bool:
    """Whether ``entry`` lists the file whose ``stat`` was ``info``."""
    if entry.inode() == info.st_ino:
        return True
    try:
        return _identity(entry.stat(follow_symlinks=False)) == _identity(info)
    except OSError:
        return False  # gone or unreadable since: the read says how


def _file_name(web_service: str) -> str:
    """The definition file's name of ``web_service`` (refused when it could not name one)."""
    if not SERVICE_NAME.match(web_service):
        raise errors.ProviderError(
            f"web service name {web_service[:80]!r} is not usable as a local file name"
        )
    return f"{web_service}.json"


def _parse(data: bytes, path: Path | str) -> dict[str, Any]:
    """A definition file's bytes as its JSON object; anything else is a located error."""
    text = safefs.decode(data, path, WHAT)
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
        raise errors.ProviderError("web service definition is not a JSON object", where=str(path))
    return loaded


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
