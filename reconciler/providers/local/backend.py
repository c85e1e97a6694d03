"""The local backend's descriptor: its part of the manifest and its provider factory.

A local trainer is a Python function in a file next to the manifest, so its check
reads that file (bounded) and finds the function without running it; inputs are
files; a web service's name names a file in the state directory.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler import errors, model, problems, yamlsrc
from reconciler.problems import Rel, Site
from reconciler.providers import base

NAME = "local"
STATE_DIR = ".retrain"  # next to the manifest, unless backend.local.stateDir or --state-dir
SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # it names a file
MAX_TRAINER_BYTES = 4 * yamlsrc.MiB  # a trainer's source file; real ones are kilobytes


@dataclass(frozen=True, slots=True)
class Service(model.Address):
    """A local web service; ``api_key``: what ``retrain serve`` requires of a scoring
    request (``Authorization: Bearer``), None for none."""

    api_key: model.Secret | None = None


OPEN = Service()  # a service with no key: one value, shared (nothing in it to walk again)


def service_of(ep: model.Endpoint) -> Service:
    """The endpoint's local address (the base type for one built elsewhere, as in tests)."""
    return ep.address if isinstance(ep.address, Service) else Service()


@dataclass(frozen=True, slots=True)
class Program(model.TrainerSpec):
    """A local trainer: ``entrypoint`` is ``/abs/path/to/file.py:function``; ``code``
    lists the files whose content identifies it (the entrypoint's file first, then
    declared dependencies), as absolute paths."""

    entrypoint: str
    code: tuple[str, ...] = ()
    parameters: tuple[str, ...] | None = None
    """What the entrypoint's module declares in ``PARAMETERS`` (None: no declaration)."""
    predict: str = ""
    """``/abs/file.py:function`` scoring rows with a loaded model (``retrain serve``);
    "" when the trainer declares none. Not part of the trainer's identity: it does not
    change what trains, so declaring or editing it changes no fingerprint."""
    load: str = ""
    """``/abs/file.py:function`` reading the model file; "": skops, trusting only the
    types the predict module lists in ``TRUSTED_TYPES``."""
    resources: tuple[tuple[str, float | int | str], ...] = ()
    """The manifest's ``resources`` (cpus, gpus, memory) for a cluster runner, as pairs."""

    def declared_parameters(self) -> frozenset[str] | None:
        return None if self.parameters is None else frozenset(self.parameters)


def program(trainer: model.Trainer) -> Program:
    """The trainer's local spec; the manifest's checks ensure a local trainer has one."""
    spec = trainer.spec
    if not isinstance(spec, Program):
        raise errors.ProviderError(f"trainer {trainer.name!r} is not a local trainer")
    return spec


class LocalBackend:
    """The embedded local backend (see ``providers.base.Backend``)."""

    name = NAME
    secret_fields: tuple[str, ...] = (r"/(endpoints/\d+|defaults)/apiKey",)

    def schema_fragment(self) -> Mapping[str, Any]:
        return base.fragment_beside(__file__)

    def trainer(self, spec: Mapping[str, Any], site: Site, base: Path) -> model.TrainerSpec:
        if "entrypoint" not in spec:
            site.add((), "the local backend runs trainers with an entrypoint, not bes")
            return Program("")
        return _code(spec, site, base)

    def input(self, location: str, site: Site, rel: Rel, base: Path) -> str | None:
        found = problems.existing_file(base, location, site, rel)
        return None if found is None else str(found)

    def address(
        self, spec: Mapping[str, Any], site: Site, trainer: model.Trainer | None
    ) -> model.Address:
        if not SERVICE_NAME.match(spec["webService"]):
            site.add(
                ("webService",),
                "the local backend needs a web service name of "
                "letters, digits, '.', '_' and '-' (it names a file)",
            )
        if spec.get("classic") is not None:
            site.add(("classic",), "classic endpoints need the azure backend")
        key = spec.get("apiKey")
        return Service(key) if isinstance(key, model.Secret) else OPEN

    def starter(self) -> Mapping[str, Path]:
        """What ``retrain init`` writes: a manifest, a stdlib-only trainer, its data and
        a web service definition, from the ``starter`` folder beside this module."""
        return base.starter_beside(__file__, STARTER)

    def parallelism(self, section: Mapping[str, model.JSON]) -> int | None:
        declared = section.get("parallelism")
        if declared is None and _runner_kind(section) == "ray":
            from reconciler.providers.local import ray_runner  # imports no ray until a job runs

            return ray_runner.PARALLELISM
        return declared

    def create(self, backend: model.Backend, context: base.Context) -> base.Provider:
        from reconciler.providers.local import provider

        declared = context.manifest_dir / backend.section.get("stateDir", STATE_DIR)
        root = context.state_dir or declared
        _warn_if_elsewhere(root, [declared, context.manifest_dir / STATE_DIR], context.log)
        return provider.LocalProvider(
            state_dir=root.resolve(),
            workdir=context.manifest_dir,
            env=context.env,
            training=_runner(backend.section, context, root),
        )


BACKEND: base.Backend = LocalBackend()
STARTER = {  # what `retrain init` writes (destination: file in ``starter/``)
    "retrain.yaml": "retrain.yaml",
    "trainer/train.py": "train.py",
    "data/example.csv": "example.csv",
    "webservice.json": "webservice.json",
}
HISTORY = "history.jsonl"  # the file whose presence says a state directory has been used


def _runner_kind(section: Mapping[str, Any]) -> str:
    found = section.get("runner") or {}
    return str(found.get("kind", "subprocess")) if isinstance(found, Mapping) else "subprocess"


def _runner(section: Mapping[str, Any], context: base.Context, root: Path) -> Any:
    """The manifest's runner: None for the default (the provider makes a subprocess one)."""
    if _runner_kind(section) != "ray":
        return None
    from reconciler.providers.local import ray_runner

    config = ray_runner.settings(
        section["runner"], manifest_dir=context.manifest_dir, state_dir=root
    )
    return ray_runner.RayRunner(config, log=context.log, scrub=context.scrub)


def _warn_if_elsewhere(root: Path, others: list[Path], log: base.Log) -> None:
    """A state directory that does not exist makes every endpoint read as missing, which is
    right for a first run and wrong for a mistyped path: say so when another candidate (the
    manifest's stateDir, the default ``.retrain``) holds a history."""
    if root.exists():
        return
    found = (o for o in others if o.resolve() != root.resolve() and (o / HISTORY).is_file())
    used = next(found, None)
    if used is not None:
        log(
            f"Warning: the state directory {root.resolve()} does not exist (so every endpoint "
            f"shows as missing), but {used.resolve()} holds a history; --state-dir and "
            "stateDir are relative to the manifest"
        )


def _code(spec: Mapping[str, Any], site: Site, base: Path) -> Program:
    """The trainer's entrypoint (resolved) and the files that identify it."""
    file_part, function = spec["entrypoint"].rsplit(":", 1)
    entry = problems.existing_file(base, file_part, site, ("entrypoint",))
    declared = None
    if entry is not None:
        missing, declared = _function_problem(entry, function, problems.show(file_part))
        if missing:
            site.add(("entrypoint",), missing)
    deps = [
        problems.existing_file(base, dep, site, ("dependencies", i))
        for i, dep in enumerate(spec.get("dependencies", []))
    ]
    code = tuple(str(p) for p in [entry, *deps] if p is not None)
    serving = {key: _function(spec, key, site, base, entry) for key in SERVING}
    resources = tuple(sorted(spec.get("resources", {}).items()))
    return Program(
        f"{entry or file_part}:{function}", code, declared, resources=resources, **serving
    )


SERVING = ("predict", "load")  # trainer keys naming how its model scores (retrain serve)


def _function(spec: Mapping[str, Any], key: str, site: Site, base: Path, entry: Path | None) -> str:
    """The trainer's ``key`` (``file.py:function``) resolved, "" when not declared; a
    missing file or function is a problem at its line. A file that cannot be parsed is
    said once: when it is the entrypoint's, at the entrypoint."""
    if key not in spec:
        return ""
    file_part, function = spec[key].rsplit(":", 1)
    found = problems.existing_file(base, file_part, site, (key,))
    if found is None:
        return ""
    shown = problems.show(file_part)
    tree, unreadable = _parsed(found, shown)
    if tree is None:
        if found != entry:
            site.add((key,), unreadable)
    elif not _defines(tree, function):
        site.add((key,), f"{shown} defines no function {function!r}")
    return f"{found}:{function}"


def _function_problem(
    path: Path, function: str, shown: str
) -> tuple[str | None, tuple[str, ...] | None]:
    """Why ``path`` (``shown`` in messages) cannot serve ``function`` (None when it can),
    and the parameter names the file declares (see ``declared_parameters``)."""
    tree, unreadable = _parsed(path, shown)
    if tree is None:
        return unreadable, None
    declared = declared_parameters(tree)
    if _defines(tree, function):
        return None, declared
    return f"{shown} defines no function {function!r}", declared


def _defines(tree: ast.Module, function: str) -> bool:
    return any(isinstance(n, ast.FunctionDef) and n.name == function for n in tree.body)


def _parsed(path: Path, shown: str) -> tuple[ast.Module | None, str]:
    """The file's syntax tree, or None and why it cannot be read or parsed."""
    try:
        text = yamlsrc.read_bounded(path, MAX_TRAINER_BYTES, shown).decode("utf-8")
    except yamlsrc.SourceError as e:
        return None, str(e)
    except UnicodeDecodeError:
        return None, f"{shown} is not UTF-8 text"
    try:
        return ast.parse(text), ""
    except SyntaxError as e:
        return None, f"{shown} has a syntax error at line {e.lineno}: {e.msg}"
    except (RecursionError, MemoryError):
        # CPython's parser gives these (cleanly, its own guard) for expressions nested
        # thousands deep; the file is at most MAX_TRAINER_BYTES, so it is not real memory.
        return None, f"{shown} is nested too deeply to parse"


DECLARATION = "PARAMETERS"  # the module-level name a trainer declares its parameters with


def declared_parameters(tree: ast.Module) -> tuple[str, ...] | None:
    """The names in the trainer module's top-level ``PARAMETERS = {...}`` (a literal dict
    of defaults, or a list, tuple or set of names), read without running the file; None
    when it has no such literal (then any name is passed on, as before)."""
    for node in tree.body:
        target: ast.expr | None = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        value = getattr(node, "value", None)
        if not (isinstance(target, ast.Name) and target.id == DECLARATION and value):
            continue
        try:
            names = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return None  # not a literal: nothing retrain can read without running it
        if isinstance(names, dict | list | tuple | set | frozenset) and all(
            isinstance(n, str) for n in names
        ):
            return tuple(sorted(names))
        return None
    return None
