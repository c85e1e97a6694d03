"""Load a manifest: YAML → schema validation → templates → references → model.

Every problem is collected before anything is raised, so a user fixes a
manifest in one pass; each names the file, the line and the JSON pointer of
where it is written, once (see ``problems``). Secrets are only ever
``${env:NAME}`` references; a literal value in a secret field is refused without
echoing it. Every file read here is read bounded (see ``yamlsrc``).
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler import errors, model, problems, redact, yamlsrc
from reconciler.problems import Problems, Rel, Site

ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
EACH_REF = problems.EACH_REF
MAX_MANIFEST_BYTES = 4 * yamlsrc.MiB  # 10,000 endpoints spelled out one by one take ~2 MiB
MAX_BYTES_ENV = "RETRAIN_MAX_MANIFEST_BYTES"  # raises (or lowers) MAX_MANIFEST_BYTES
MAX_DEFINITION_BYTES = 16 * yamlsrc.MiB  # exported definitions embed the experiment graph
MAX_TRAINER_BYTES = 4 * yamlsrc.MiB  # a trainer's source file; real ones are kilobytes
LOCAL_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # as the local backend
SHOW_CHARS = 200  # of a value quoted in a message: enough to recognise it


def load(path: str | Path, *, env: Mapping[str, str]) -> model.Manifest:
    """Load and fully check the manifest at ``path``; ``ManifestError`` lists all problems."""
    path = Path(path)
    limit = max_manifest_bytes(env)
    try:
        raw = yamlsrc.read_bounded(path, limit, "manifest")
    except yamlsrc.SourceError as e:
        more = f"; {MAX_BYTES_ENV} raises the limit" if "larger than" in str(e) else ""
        raise errors.ManifestError([f"{path}: {e}{more}"]) from e
    try:
        located = yamlsrc.load(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise errors.ManifestError([f"{path}: manifest is not UTF-8 text"]) from e
    except yamlsrc.YamlError as e:
        at = f"{path}:{e.line}" if e.line else str(path)
        raise errors.ManifestError([f"{at}: {e}"]) from e
    found = Problems(str(path), located)
    if located.data is None:
        raise errors.ManifestError([f"{path}: the manifest is empty"])
    problems.validate(located.data, found)
    found.raise_if_any()
    doc: dict[str, Any] = located.data
    base = path.resolve().parent
    trainers = _trainers(doc, base, env, found)
    backend_spec = _resolve_env(doc["backend"], Site(found, (("/backend", doc["backend"]),)), env)
    _check_backend(doc["backend"]["kind"], trainers, found)
    endpoints = _endpoints(doc, base, env, trainers, found)
    found.raise_if_any()
    backend = model.Backend(doc["backend"]["kind"], model.frozen_map(backend_spec))
    digest = hashlib.sha256(raw).hexdigest()
    return model.Manifest(str(path), digest, backend, model.frozen_map(trainers), endpoints)


def max_manifest_bytes(env: Mapping[str, str]) -> int:
    """The manifest size limit: ``MAX_MANIFEST_BYTES``, or ``$RETRAIN_MAX_MANIFEST_BYTES``."""
    given = env.get(MAX_BYTES_ENV, "")
    if not given:
        return MAX_MANIFEST_BYTES
    if not given.isdigit() or int(given) < 1:
        raise errors.ManifestError([f"{MAX_BYTES_ENV} must be a number of bytes, got {given!r}"])
    return int(given)


def _trainers(
    doc: Mapping[str, Any], base: Path, env: Mapping[str, str], problems: Problems
) -> dict[str, model.Trainer]:
    out = {}
    for name, raw_spec in doc["trainers"].items():
        site = Site(problems, ((f"/trainers/{yamlsrc.escape(name)}", raw_spec),))
        spec = _resolve_env(raw_spec, site, env)
        entrypoint, code = _code(spec, site, base)
        out[name] = model.Trainer(
            name=name,
            entrypoint=entrypoint,
            code=code,
            parameters=model.frozen_map(spec.get("parameters")),
            secrets=model.frozen_map(spec.get("secrets", {})),
            timeout_seconds=float(spec.get("timeout", model.TRAINER_TIMEOUT)),
            options=model.frozen_map({k: v for k, v in spec.items() if k == "bes"}),
            secret_parameters=model.frozen_map(spec.get("secretParameters", {})),
        )
    return out


def _code(spec: Mapping[str, Any], site: Site, base: Path) -> tuple[str, tuple[str, ...]]:
    """A local trainer's entrypoint (resolved) and the files that identify it."""
    if "entrypoint" not in spec:
        return "", ()
    file_part, function = spec["entrypoint"].rsplit(":", 1)
    entry = _existing_file(base, file_part, site, ("entrypoint",))
    if entry is not None:
        missing = _function_problem(entry, function, _show(file_part))
        if missing:
            site.add(("entrypoint",), missing)
    deps = [
        _existing_file(base, dep, site, ("dependencies", i))
        for i, dep in enumerate(spec.get("dependencies", []))
    ]
    code = tuple(str(p) for p in [entry, *deps] if p is not None)
    return f"{entry or file_part}:{function}", code


@dataclass
class _Context:
    """What checking endpoints needs, and what it has seen so far."""

    base: Path
    env: Mapping[str, str]
    trainers: Mapping[str, model.Trainer]
    azure: bool
    names: dict[str, str] = field(default_factory=dict)  # endpoint name → where declared
    targets: dict[tuple[str, str], str] = field(default_factory=dict)  # service, asset → name
    definitions: dict[Path, list[str] | str] = field(default_factory=dict)  # asset names or why


def _endpoints(
    doc: Mapping[str, Any],
    base: Path,
    env: Mapping[str, str],
    trainers: Mapping[str, model.Trainer],
    problems: Problems,
) -> tuple[model.Endpoint, ...]:
    ctx = _Context(base, env, trainers, azure=doc["backend"]["kind"] == "azure")
    defaults = doc.get("defaults", {})
    out: list[model.Endpoint] = []
    for i, entry in enumerate(doc["endpoints"]):
        assembled = _expand(f"/endpoints/{i}", entry, defaults, problems)
        for site, raw_spec in assembled:
            endpoint = _assembled(site, raw_spec, ctx)
            if endpoint is not None:
                out.append(endpoint)
        problems.flush(f"/endpoints/{i}", len(assembled))
    return tuple(out)


def _assembled(site: Site, raw_spec: dict[str, Any], ctx: _Context) -> model.Endpoint | None:
    """Check one assembled endpoint and build it (None when it has problems)."""
    if not problems.validate_at(site, raw_spec, "#/$defs/resolvedEndpoint"):
        return None
    spec = _resolve_env(raw_spec, site, ctx.env)
    name = spec["name"]
    if name in ctx.names:
        site.add(
            ("name",), f"duplicate endpoint name {name!r} (first declared at {ctx.names[name]})"
        )
        return None
    ctx.names[name] = _declared_at(site, ("name",))
    target = (spec["webService"], spec["asset"])
    if not any(site.is_poisoned(rel) for rel in (("webService",), ("asset",))):
        if target in ctx.targets:
            site.add(
                ("webService",),
                f"endpoint {name!r} targets the same web service asset as {ctx.targets[target]!r}",
                uses=(("webService",), ("asset",)),
            )
        ctx.targets[target] = name
    return _endpoint(spec, site, ctx)


def _declared_at(site: Site, rel: Rel) -> str:
    """Where the value at ``rel`` of ``site`` is declared: its forEach item if templated."""
    ptr, _, raw = site.origin(rel)
    if site.item is not None and EACH_REF.search(str(raw)):
        return f"{site.ptr}/forEach/{site.item}"
    return ptr


def _expand(
    ptr: str, entry: Mapping[str, Any], defaults: Mapping[str, Any], problems: Problems
) -> list[tuple[Site, dict[str, Any]]]:
    """The endpoints of one entry: ``defaults`` merged in, ``forEach`` expanded."""
    merged = _merge(defaults, {k: v for k, v in entry.items() if k != "forEach"})
    layers = ((ptr, entry), ("/defaults", defaults))
    refs = list(dict.fromkeys(_each_refs(merged)))  # once each, in document order
    items = entry.get("forEach")
    if items is None:
        if refs:
            problems.add(ptr, f"${{each.{refs[0]}}} used without forEach")
            return []
        return [(Site(problems, layers), merged)]
    unknown = [ref for ref in refs if not any(ref in item for item in items)]
    for ref in unknown:  # a key no item has: a typo in the template, said once where used
        Site(problems, layers).add(_first_use(merged, ref), f"no forEach item has a key {ref!r}")
    out = []
    for j, item in enumerate(items):
        missing = sorted(set(refs) - set(item))
        if missing:
            if not set(missing) <= set(unknown):
                key = next(m for m in missing if m not in unknown)
                problems.add(
                    f"{ptr}/forEach/{j}", f"item has no key {key!r} used as ${{each.{key}}}"
                )
            continue
        values = {k: str(v) for k, v in item.items()}
        out.append((Site(problems, layers, j), _substitute(merged, values)))
    return out


def _first_use(value: Any, ref: str, rel: Rel = ()) -> Rel:
    """The path of the first string in ``value`` that uses ``${each.REF}`` (``()`` if none)."""
    if isinstance(value, str):
        return rel if f"${{each.{ref}}}" in value else ()
    if not isinstance(value, dict | list):
        return ()
    for key, child in value.items() if isinstance(value, dict) else enumerate(value):
        found = _first_use(child, ref, (*rel, key))
        if found:
            return found
    return ()


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        merged = copy.deepcopy(base)
        for key, value in over.items():
            merged[key] = _merge(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    return copy.deepcopy(over)


def _each_refs(value: Any) -> list[str]:
    if isinstance(value, str):
        return EACH_REF.findall(value)
    if isinstance(value, dict):
        return [ref for v in value.values() for ref in _each_refs(v)]
    if isinstance(value, list):
        return [ref for v in value for ref in _each_refs(v)]
    return []


def _substitute(value: Any, item: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return EACH_REF.sub(lambda m: item[m.group(1)], value) if "${" in value else value
    if isinstance(value, dict):
        return {k: _substitute(v, item) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, item) for v in value]
    return value


# Where secrets may stand: these values become ``model.Secret`` and are masked everywhere.
SECRET_FIELDS = re.compile(
    r"^(/trainers/[^/]+/(secrets|secretParameters)/[^/]+|/trainers/[^/]+/bes/apiKey"
    r"|/backend/azure/storage/connectionString"
    r"|/(endpoints/\d+|defaults)/(classic/apiKey|secretParameters/[^/]+))$"
)


def _resolve_env(value: Any, site: Site, env: Mapping[str, str], rel: Rel = ()) -> Any:
    """Replace ``${env:NAME}`` in every string of ``value`` (at ``rel`` in ``site``). An
    unset variable is a problem, and poisons the value. Secret fields become ``model.Secret``."""
    if isinstance(value, dict):
        return {k: _resolve_env(v, site, env, (*rel, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, site, env, (*rel, i)) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    resolved = _resolve_string(value, site, env, rel)
    ptr = site.ptr + yamlsrc.pointer(list(rel))
    if not SECRET_FIELDS.match(ptr):
        return resolved
    site.problems.secrets.add(resolved)
    if len(resolved) < redact.MIN_SECRET_LEN and ENV_REF.fullmatch(value):
        site.add(
            rel,
            f"the value of {value} is shorter than {redact.MIN_SECRET_LEN} "
            "characters: too short to be a secret, and to be masked safely",
        )
    return model.Secret(value.strip("${}"), resolved)


def _resolve_string(value: str, site: Site, env: Mapping[str, str], rel: Rel) -> str:
    if "${" not in value:
        return value
    unset = [name for name in ENV_REF.findall(value) if name not in env]
    for name in dict.fromkeys(unset):
        site.add(rel, f"environment variable {name} is not set")
    if unset:
        site.poison(rel)
    return ENV_REF.sub(lambda m: env.get(m.group(1), ""), value)


def secret_values(manifest: model.Manifest) -> list[str]:
    """Every secret the manifest resolved, for redaction."""
    found: list[str] = []
    _collect(manifest.backend.options, found)
    for trainer in manifest.trainers.values():
        _collect(dict(trainer.secrets), found)
        _collect(dict(trainer.secret_parameters), found)
        _collect(trainer.options, found)
    for ep in manifest.endpoints:
        _collect(ep.options, found)
        _collect(dict(ep.secret_parameters), found)
    return found


def _collect(value: Any, found: list[str]) -> None:
    if isinstance(value, model.Secret):
        found.append(value.reveal())
    elif isinstance(value, Mapping):
        for v in value.values():
            _collect(v, found)
    elif isinstance(value, list):
        for v in value:
            _collect(v, found)


def _endpoint(spec: Mapping[str, Any], site: Site, ctx: _Context) -> model.Endpoint | None:
    trainer = ctx.trainers.get(spec["trainer"])
    if trainer is None:
        site.add(
            ("trainer",),
            f"no trainer named {spec['trainer']!r} "
            f"(declared: {', '.join(sorted(ctx.trainers)) or 'none'})",
        )
    inputs = {
        key: _blob(location, site, ("inputs", key))
        if ctx.azure
        else _existing_file(ctx.base, location, site, ("inputs", key))
        for key, location in spec["inputs"].items()
    }
    _check_target(spec, site, trainer, azure=ctx.azure)
    definition = None
    if "definition" in spec:
        definition = _existing_file(ctx.base, spec["definition"], site, ("definition",))
        if definition is not None:
            _check_definition(definition, spec["asset"], site, ctx)
    if trainer is None or None in inputs.values() or site.poisoned:
        return None
    parameters = {**trainer.parameters, **spec.get("parameters", {})}
    secret_parameters = {**trainer.secret_parameters, **spec.get("secretParameters", {})}
    for clash in sorted(set(parameters) & set(secret_parameters)):
        site.add(("secretParameters",), f"{clash!r} is both a parameter and a secret parameter")
    gate = spec.get("gate")
    for key in ("minimum", "maxRegression"):
        if gate is not None and key in gate and not _finite(gate[key]):
            site.add(("gate", key), f"{gate[key]!r} is not a finite number")
    return model.Endpoint(
        name=spec["name"],
        web_service=spec["webService"],
        asset=spec["asset"],
        version=str(spec["version"]),
        trainer=trainer,
        inputs=model.frozen_map({k: str(v) for k, v in inputs.items()}),
        parameters=model.frozen_map(parameters),
        secret_parameters=model.frozen_map(secret_parameters),
        gate=None
        if gate is None
        else model.Gate(
            metric=gate["metric"],
            minimum=gate.get("minimum"),
            max_regression=gate.get("maxRegression"),
            higher_is_better=gate.get("higherIsBetter", True),
        ),
        definition=None if definition is None else str(definition),
        source=model.Source(site.problems.file, site.ptr, site.problems.located.line_of(site.ptr)),
        options=model.frozen_map(
            {k: v for k, v in spec.items() if k in ("resourceGroup", "classic")}
        ),
    )


def _check_backend(kind: str, trainers: Mapping[str, model.Trainer], problems: Problems) -> None:
    """Each backend runs its own kind of trainer: local functions, or Azure BES services."""
    for name, trainer in trainers.items():
        ptr = f"/trainers/{yamlsrc.escape(name)}"
        if kind == "local" and not trainer.entrypoint:
            problems.add(ptr, "the local backend runs trainers with an entrypoint, not bes")
        if kind == "azure" and "bes" not in trainer.options:
            problems.add(
                ptr, "the azure backend trains through BES: give the trainer bes.url and bes.apiKey"
            )


def _check_target(
    spec: Mapping[str, Any], site: Site, trainer: model.Trainer | None, *, azure: bool
) -> None:
    """Refuse targets that can never be updated: classic default endpoints, training services."""
    classic = spec.get("classic")
    if not azure and not LOCAL_SERVICE_NAME.match(spec["webService"]):
        site.add(
            ("webService",),
            "the local backend needs a web service name of "
            "letters, digits, '.', '_' and '-' (it names a file)",
        )
    if classic is not None and not azure:
        site.add(("classic",), "classic endpoints need the azure backend")
    if classic is not None and classic["endpoint"].lower() == "default":
        site.add(
            ("classic", "endpoint"),
            "the default endpoint's trained model cannot be replaced; name a non-default endpoint",
        )
    bes_url = str((trainer.options.get("bes") or {}).get("url", "")) if trainer else ""
    service = bes_url.rstrip("/").rsplit("/services/", 1)[-1] if "/services/" in bes_url else ""
    rel: Rel = ("classic", "webService") if classic is not None else ("webService",)
    target = classic["webService"] if classic is not None else spec["webService"]
    if service and target == service:
        site.add(
            rel,
            f"{target!r} is the trainer's training web service; point the "
            "endpoint at the predictive web service",
        )


def _blob(location: str, site: Site, rel: Rel) -> str | None:
    """An Azure input: ``container/path/to/blob`` in the backend's storage account."""
    container, _, name = location.partition("/")
    if not container or not name or location.startswith(("http:", "https:")):
        site.add(rel, f"blob input must be container/path, got {location[:100]!r}")
        return None
    return location


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (OverflowError, ValueError, TypeError):
        return False


def _existing_file(base: Path, rel_path: str, site: Site, rel: Rel) -> Path | None:
    """The regular file at ``rel_path`` (relative to the manifest), or None with a problem."""
    if site.is_poisoned(rel):
        return None  # what is left of an unresolved value: its problem is reported
    try:
        path = (base / rel_path).resolve()
        regular = path.is_file()
        exists = regular or path.exists()
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a name too long, a symlink loop
        site.add(rel, f"not a usable file name: {_show(rel_path)}")
        return None
    if not regular:
        site.add(
            rel,
            f"not a file: {_show(rel_path)}" if exists else f"file not found: {_show(rel_path)}",
        )
        return None
    return path


def _show(text: str) -> str:
    """``text`` cut for a message: a value can be up to ``yamlsrc.MAX_STRING`` long."""
    return text if len(text) <= SHOW_CHARS else f"{text[:SHOW_CHARS]}..."


def _function_problem(path: Path, function: str, shown: str) -> str | None:
    """Why ``path`` (``shown`` in messages) cannot serve ``function`` (None when it can)."""
    try:
        text = yamlsrc.read_bounded(path, MAX_TRAINER_BYTES, shown).decode("utf-8")
    except yamlsrc.SourceError as e:
        return str(e)
    except UnicodeDecodeError:
        return f"{shown} is not UTF-8 text"
    try:
        tree = ast.parse(text)
    except SyntaxError as e:
        return f"{shown} has a syntax error at line {e.lineno}: {e.msg}"
    except (RecursionError, MemoryError):
        # CPython's parser gives these (cleanly, its own guard) for expressions nested
        # thousands deep; the file is at most MAX_TRAINER_BYTES, so it is not real memory.
        return f"{shown} is nested too deeply to parse"
    if any(isinstance(n, ast.FunctionDef) and n.name == function for n in tree.body):
        return None
    return f"{shown} defines no function {function!r}"


def _check_definition(path: Path, asset: str, site: Site, ctx: _Context) -> None:
    """The exported definition must be a web service definition with the endpoint's asset."""
    if path not in ctx.definitions:  # read once, however many endpoints share it
        ctx.definitions[path] = _definition_assets(path)
    names = ctx.definitions[path]
    if isinstance(names, str):
        site.add(("definition",), names)
    elif asset not in names:
        site.add(
            ("definition",),
            f"{path.name} has no asset named {asset!r}",
            uses=[("definition",), ("asset",)],
        )


def _definition_assets(path: Path) -> list[str] | str:
    """The asset names of the definition at ``path``, or why it is not one."""
    not_one = f"{path.name} is not a web service definition (JSON with properties.assets)"
    try:
        text = yamlsrc.read_bounded(path, MAX_DEFINITION_BYTES, path.name).decode("utf-8")
    except yamlsrc.SourceError as e:
        return str(e)
    except UnicodeDecodeError:
        return not_one
    if yamlsrc.json_too_deep(text):
        return f"{path.name} is nested more than {yamlsrc.MAX_DEPTH} levels deep"
    try:
        definition = json.loads(text)
        return [a.get("name") for a in definition["properties"]["assets"].values()]
    except (ValueError, KeyError, TypeError, AttributeError):
        return not_one
