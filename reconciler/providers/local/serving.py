"""``retrain serve``'s half in the local backend: which model each web service points at
now, that model loaded once per change, and the trainer's way of scoring with it.

A web service scores with the model its definition's trained-model asset names *now*:
each request costs one ``stat`` of the definition file; when it changed (an apply
replaces it atomically, after the model is in the store), the definition is read again
and, before that request is answered, the new model is loaded. So the request after an
apply is scored by the new model, no request ever sees a half-loaded one, and nothing
restarts. Models are cached by (fingerprint, predict, load): services sharing a model
share one copy, and a model no service points at any more is dropped.

The trainer's ``predict`` (and ``load``) run in the server process, imported from their
file as it is when the model is loaded (a new module per file content, so a swap after
a code change uses the new code). That is a choice: it is the project's own code, which
``apply`` already runs to train, and in-process scoring costs no serialisation or process
hop per request. Isolation (a crash in user code taking the server down) is the price;
a trainer's ``predict`` raising is contained to its request (500, scrubbed reason).
The model file itself is never unpickled: the default loader is skops with an explicit
list of trusted types (the predict module's ``TRUSTED_TYPES``), which refuses any other.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from reconciler import errors, fingerprint, model
from reconciler.providers import base, common, webservice
from reconciler.providers.local import backend, store

if TYPE_CHECKING:
    from reconciler.providers.local.provider import LocalProvider

TRUSTED = "TRUSTED_TYPES"  # the module-level list of types the default (skops) loader trusts
MODULE_PREFIX = "retrain_serve_"  # names of the modules imported for scoring
Stamp = tuple[int, int, int, int] | None  # inode, mtime, ctime, size; None: no file
ModelKey = tuple[str, str, str]  # fingerprint, predict, load


@dataclass(frozen=True, slots=True)
class Loaded:
    """A loaded model with its scoring function, or why it could not be loaded."""

    score: Callable[[base.Rows], Sequence[Any]] | None
    why: str = ""


class LocalScoring:
    """The local web services as ``retrain serve`` scores them (``base.Scoring``)."""

    def __init__(
        self,
        provider: LocalProvider,
        endpoints: Sequence[model.Endpoint],
        *,
        log: base.Log,
        scrub: Callable[[str], str],
    ) -> None:
        self._provider = provider
        self._endpoints: dict[str, list[model.Endpoint]] = {}
        for ep in endpoints:
            self._endpoints.setdefault(ep.web_service, []).append(ep)
        self._log = log
        self._scrub = scrub
        self._lock = threading.Lock()  # held while a changed service is read and loaded
        self._seen: dict[str, tuple[Stamp, base.Scorable | None, ModelKey | None]] = {}
        self._models: dict[ModelKey, Loaded] = {}
        self._modules: dict[tuple[str, str], ModuleType] = {}

    def names(self) -> Sequence[str]:
        folder = self._provider.services
        on_disk = {p.stem for p in folder.glob("*.json")} if folder.is_dir() else set()
        found = {n for n in on_disk if backend.SERVICE_NAME.match(n)} | set(self._endpoints)
        return sorted(found)

    def current(self, web_service: str) -> base.Scorable | None:
        if not backend.SERVICE_NAME.match(web_service):
            return None
        seen = self._seen.get(web_service)
        if seen is not None and seen[0] == self._stamp(web_service):
            return seen[1]  # the fast path: one stat, no lock
        with self._lock:
            stamp = self._stamp(web_service)  # before reading: a later change is seen later
            seen = self._seen.get(web_service)
            if seen is not None and seen[0] == stamp:
                return seen[1]  # another request loaded it meanwhile
            view, key = self._read(web_service)
            if view is None:  # no such service: nothing kept (any name may be asked for)
                self._seen.pop(web_service, None)
                self._forget_unused()
                return None
            self._seen[web_service] = (stamp, view, key)
            self._forget_unused()
            self._tell(web_service, view, changed=seen is not None)
            return view

    # -- reading a changed service --------------------------------------------------
    def _stamp(self, web_service: str) -> Stamp:
        try:
            st = os.stat(self._provider.services / f"{web_service}.json")
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)

    def _read(self, name: str) -> tuple[base.Scorable | None, ModelKey | None]:
        eps = self._endpoints.get(name, [])
        try:
            definition = self._provider.definition(name)
        except errors.ProviderError as e:
            return _unavailable(name, eps, self._scrub(str(e))), None
        if definition is None:
            if not eps:
                return None, None
            why = f"web service {name!r} does not exist yet (retrain apply creates it)"
            return _unavailable(name, eps, why), None
        shell = _described(name, eps, definition)
        if len(eps) != 1:
            return _with(shell, why=_why_no_endpoint(name, eps)), None
        return self._scorable(shell, eps[0], definition)

    def _scorable(
        self, shell: base.Scorable, ep: model.Endpoint, definition: Mapping[str, Any]
    ) -> tuple[base.Scorable, ModelKey | None]:
        where = str(self._provider.services / f"{ep.web_service}.json")
        try:
            state = common.service_state(definition, ep, uri_for=store.uri_for, where=where)
        except errors.ProviderError as e:
            return _with(shell, why=self._scrub(str(e))), None
        uri = state.model_uri
        fp = store.fingerprint_of(uri) if uri is not None else None
        if fp is None:
            shown = "no trained-model asset" if uri is None else f"model {uri[:200]}"
            return _with(shell, why=f"web service points at {shown}, not a model of the "
                         "store: retrain apply points it at one"), None  # fmt: skip
        version = state.version if state.fingerprint == fp else None
        shell = _with(shell, fingerprint=fp, version=version)
        if self._provider.store.get(fp) is None:
            why = f"model {fingerprint.short(fp)} is not in the model store (removed?)"
            return _with(shell, why=f"{why}; retrain apply trains it again"), None
        program = backend.program(ep.trainer)
        if not program.predict:
            why = f"trainer {ep.trainer.name!r} declares no predict (file.py:function)"
            return _with(shell, why=why), None
        key = (fp, program.predict, program.load)
        loaded = self._models.get(key) or self._load(key)
        self._models[key] = loaded
        return _with(shell, score=loaded.score, why=loaded.why), key

    def _load(self, key: ModelKey) -> Loaded:
        """The model file of ``key``'s fingerprint read (by ``load``, else skops with the
        predict module's trusted types) and bound to ``predict``; any failure, user code's
        included, becomes the service's reason for 503."""
        fp, predict_at, load_at = key
        path = self._provider.store.path(fp) / store.MODEL_FILE
        try:
            predict = self._function(predict_at)
            if load_at:
                loaded_model = self._function(load_at)(path)
            else:
                loaded_model = _skops(path, self._trusted(predict_at))
        except Exception as e:  # user code may raise anything: it is the reason shown
            first = (str(e).splitlines() or [""])[0][:300]
            why = f"model {fingerprint.short(fp)} cannot be loaded: {type(e).__name__}: {first}"
            return Loaded(None, self._scrub(why))
        return Loaded(lambda rows: predict(loaded_model, rows))

    def _function(self, entry: str) -> Callable[..., Any]:
        file_part, _, name = entry.rpartition(":")
        found = getattr(self._module(Path(file_part)), name, None)
        if not callable(found):
            raise errors.ProviderError(f"{Path(file_part).name} defines no function {name!r}")
        return found  # type: ignore[no-any-return]

    def _trusted(self, entry: str) -> list[str]:
        listed = getattr(self._module(Path(entry.rpartition(":")[0])), TRUSTED, [])
        if not isinstance(listed, list | tuple) or not all(isinstance(t, str) for t in listed):
            raise errors.ProviderError(f"{TRUSTED} must be a list of type names")
        return list(listed)

    def _module(self, path: Path) -> ModuleType:
        """``path`` imported as it is now: one module per content, so a model loaded after
        the file changed uses the new code while the old model keeps the old."""
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        cached = self._modules.get((str(path), digest))
        if cached is not None:
            return cached
        name = f"{MODULE_PREFIX}{path.stem}_{digest[:12]}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise errors.ProviderError(f"cannot import {path.name}")
        module = importlib.util.module_from_spec(spec)
        if str(path.parent) not in sys.path:
            sys.path.append(str(path.parent))  # its sibling helpers, as the runner allows
        sys.modules[name] = module  # dataclasses look their module up while it executes
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        self._modules[(str(path), digest)] = module
        return module

    def _forget_unused(self) -> None:
        used = {key for _stamp, _view, key in self._seen.values() if key is not None}
        for key in [k for k in self._models if k not in used]:
            del self._models[key]

    def _tell(self, name: str, view: base.Scorable | None, *, changed: bool) -> None:
        if view is None:
            return
        verb = "now serving" if changed else "serving"
        if view.score is not None:
            label = f" (version {view.version})" if view.version else ""
            self._log(f"{name}: {verb} model {fingerprint.short(view.fingerprint)}{label}")
        else:
            self._log(f"{name}: unavailable: {view.unavailable}")


def _skops(path: Path, trusted: list[str]) -> Any:
    """The model in ``path`` loaded by skops, trusting its defaults and ``trusted`` only."""
    try:
        import skops.io
    except ImportError as e:
        raise errors.ProviderError(
            "the default model loader needs skops (pip install skops), or declare load"
        ) from e
    return skops.io.load(path, trusted=trusted)


def _described(
    name: str, eps: Sequence[model.Endpoint], definition: Mapping[str, Any]
) -> base.Scorable:
    """What the definition says of requests and responses, before any model is looked at."""
    props = webservice.get(definition, "properties") or {}
    key = backend.service_of(eps[0]).api_key if len(eps) == 1 else None
    return base.Scorable(
        web_service=name,
        endpoint=eps[0].name if len(eps) == 1 else "",
        title=str(webservice.get(props, "title") or name),
        input_schema=_mapping(webservice.get(props, "input")),
        output_schema=_mapping(webservice.get(props, "output")),
        parameters=_mapping(webservice.get(props, "parameters")),
        fingerprint=None,
        version=None,
        api_key=key,
        score=None,
    )


def _unavailable(name: str, eps: Sequence[model.Endpoint], why: str) -> base.Scorable:
    key = backend.service_of(eps[0]).api_key if len(eps) == 1 else None
    return base.Scorable(
        web_service=name,
        endpoint=eps[0].name if len(eps) == 1 else "",
        title=name,
        input_schema={},
        output_schema={},
        parameters={},
        fingerprint=None,
        version=None,
        api_key=key,
        score=None,
        unavailable=why,
    )


def _with(view: base.Scorable, *, why: str = "", **changes: Any) -> base.Scorable:
    return dataclasses.replace(view, unavailable=why, **changes)


def _why_no_endpoint(name: str, eps: Sequence[model.Endpoint]) -> str:
    if not eps:
        return (
            f"web service {name!r} is not an endpoint of the manifest, so no trainer says "
            "how its model scores"
        )
    names = ", ".join(ep.name for ep in eps)
    return f"web service {name!r} holds the models of several endpoints ({names}); serve scores one"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
