"""Load a manifest: YAML → schema validation → templates → references → model.

Every problem is collected before anything is raised, so a user fixes a
manifest in one pass; each names the file, the line and the JSON pointer.
Secrets are only ever ``${env:NAME}`` references; a literal value in a secret
field is refused without echoing it.
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
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from reconciler import errors, model, redact, yamlsrc

SCHEMA_PATH = Path(__file__).parent / "schemas" / "retrain.schema.json"
ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
EACH_REF = re.compile(r"\$\{each\.([A-Za-z_][A-Za-z0-9_]*)\}")
LOCAL_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # as the local backend
DEFAULT_TRAINER_TIMEOUT = 3600.0  # seconds; a local job that runs an hour is surely stuck


@cache
def schema() -> dict[str, Any]:
    """The manifest JSON Schema (2020-12), shipped in ``schemas/``."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


@dataclass
class _Problems:
    """Collects located problems for one manifest file."""

    file: str
    located: yamlsrc.Located
    items: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)  # values seen in secret fields

    def add(self, ptr: str, message: str) -> None:
        line = self.located.line_of(ptr)
        at = f"{self.file}:{line}" if line else self.file
        self.items.append(f"{at}: {ptr or '/'}: {message}")

    def raise_if_any(self) -> None:
        """Raise every problem at once; a secret's value never appears in one, even where
        the same variable was also used in an ordinary field."""
        if self.items:
            scrub = redact.Redactor(self.secrets)
            raise errors.ManifestError([scrub(item) for item in self.items])


def load(path: str | Path, *, env: Mapping[str, str]) -> model.Manifest:
    """Load and fully check the manifest at ``path``; ``ManifestError`` lists all problems."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise errors.ManifestError([f"{path}: cannot read manifest: {e.strerror}"]) from e
    try:
        located = yamlsrc.load(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise errors.ManifestError([f"{path}: manifest is not UTF-8 text"]) from e
    except yamlsrc.YamlError as e:
        at = f"{path}:{e.line}" if e.line else str(path)
        raise errors.ManifestError([f"{at}: {e}"]) from e
    problems = _Problems(str(path), located)
    if located.data is None:
        raise errors.ManifestError([f"{path}: the manifest is empty"])
    _validate(located.data, "", problems)
    problems.raise_if_any()
    doc: dict[str, Any] = located.data
    base = path.resolve().parent
    trainers = _trainers(doc, base, env, problems)
    backend_spec = _resolve_env(doc["backend"], "/backend", env, problems)
    _check_backend(doc["backend"]["kind"], trainers, problems)
    endpoints = _endpoints(doc, base, env, trainers, problems)
    problems.raise_if_any()
    backend = model.Backend(doc["backend"]["kind"], model.frozen_map(backend_spec))
    digest = hashlib.sha256(raw).hexdigest()
    return model.Manifest(str(path), digest, backend, model.frozen_map(trainers), endpoints)


def _validate(instance: Any, ptr: str, problems: _Problems, ref: str | None = None) -> None:
    """Add one problem per schema violation; ``ref`` picks a ``$defs`` entry to check against."""
    validator = _validator() if ref is None else _validator().evolve(schema={"$ref": ref})
    found = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    for error in found:
        leaf = _deepest(error)
        where = ptr + yamlsrc.pointer(list(leaf.absolute_path))
        problems.add(where, _message(leaf))


def _deepest(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """The most specific cause of an allOf/anyOf failure (jsonschema's best_match)."""
    return jsonschema.exceptions.best_match([error]) if error.context else error


def _message(error: jsonschema.ValidationError) -> str:
    if "secretRef" in "/".join(map(str, error.schema_path)) or _is_secret_ref(error):
        # Never echo the instance: it may be the secret itself.
        return "secret values must be written as ${env:NAME}, never literally"
    if error.validator in {"unevaluatedProperties", "additionalProperties"}:
        return f"unknown key: {error.message.split('(')[-1].rstrip(')')}"
    return str(error.message)


def _is_secret_ref(error: jsonschema.ValidationError) -> bool:
    pattern = error.schema.get("pattern") if isinstance(error.schema, dict) else None
    return bool(pattern == schema()["$defs"]["secretRef"]["pattern"])


def _trainers(
    doc: Mapping[str, Any], base: Path, env: Mapping[str, str], problems: _Problems
) -> dict[str, model.Trainer]:
    out = {}
    for name, raw_spec in doc["trainers"].items():
        ptr = f"/trainers/{yamlsrc.escape(name)}"
        spec = _resolve_env(raw_spec, ptr, env, problems)
        entrypoint, code = _code(spec, ptr, base, problems)
        out[name] = model.Trainer(
            name=name,
            entrypoint=entrypoint,
            code=code,
            parameters=model.frozen_map(spec.get("parameters")),
            secrets=model.frozen_map(spec.get("secrets", {})),
            timeout_seconds=float(spec.get("timeout", DEFAULT_TRAINER_TIMEOUT)),
            options=model.frozen_map({k: v for k, v in spec.items() if k == "bes"}),
            secret_parameters=model.frozen_map(spec.get("secretParameters", {})),
        )
    return out


def _code(
    spec: Mapping[str, Any], ptr: str, base: Path, problems: _Problems
) -> tuple[str, tuple[str, ...]]:
    """A local trainer's entrypoint (resolved) and the files that identify it."""
    if "entrypoint" not in spec:
        return "", ()
    file_part, function = spec["entrypoint"].rsplit(":", 1)
    entry = _existing_file(base, file_part, f"{ptr}/entrypoint", problems)
    if entry is not None:
        missing = _function_problem(entry, function)
        if missing:
            problems.add(f"{ptr}/entrypoint", f"{file_part} {missing}")
    deps = [
        _existing_file(base, dep, f"{ptr}/dependencies/{i}", problems)
        for i, dep in enumerate(spec.get("dependencies", []))
    ]
    code = tuple(str(p) for p in [entry, *deps] if p is not None)
    return f"{entry or file_part}:{function}", code


def _endpoints(
    doc: Mapping[str, Any],
    base: Path,
    env: Mapping[str, str],
    trainers: Mapping[str, model.Trainer],
    problems: _Problems,
) -> tuple[model.Endpoint, ...]:
    out: list[model.Endpoint] = []
    seen: dict[str, str] = {}
    targets: dict[tuple[str, str], str] = {}
    for ptr, raw_spec in _expand(doc, problems):
        before = len(problems.items)
        _validate(raw_spec, ptr, problems, "#/$defs/resolvedEndpoint")
        if len(problems.items) > before:
            continue
        spec = _resolve_env(raw_spec, ptr, env, problems)
        name = spec["name"]
        if name in seen:
            problems.add(ptr, f"duplicate endpoint name {name!r} (first declared at {seen[name]})")
            continue
        seen[name] = ptr
        target = (spec["webService"], spec["asset"])
        if target in targets:
            problems.add(
                ptr, f"endpoint {name!r} targets the same web service asset as {targets[target]!r}"
            )
        targets[target] = name
        endpoint = _endpoint(spec, ptr, base, trainers, problems)
        if endpoint is not None:
            out.append(endpoint)
    return tuple(out)


def _expand(doc: Mapping[str, Any], problems: _Problems) -> list[tuple[str, dict[str, Any]]]:
    """Merge ``defaults`` into each entry and expand ``forEach`` into one endpoint per item."""
    defaults = doc.get("defaults", {})
    out = []
    for i, entry in enumerate(doc["endpoints"]):
        ptr = f"/endpoints/{i}"
        merged = _merge(defaults, {k: v for k, v in entry.items() if k != "forEach"})
        items = entry.get("forEach")
        if items is None:
            unbound = _each_refs(merged)
            if unbound:
                problems.add(ptr, f"${{each.{unbound[0]}}} used without forEach")
                continue
            out.append((ptr, merged))
            continue
        for j, item in enumerate(items):
            missing = sorted(set(_each_refs(merged)) - set(item))
            if missing:
                problems.add(
                    f"{ptr}/forEach/{j}",
                    f"item has no key {missing[0]!r} used as ${{each.{missing[0]}}}",
                )
                continue
            out.append((ptr, _substitute(merged, {k: str(v) for k, v in item.items()})))
    return out


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
        return EACH_REF.sub(lambda m: item[m.group(1)], value)
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


def _resolve_env(value: Any, ptr: str, env: Mapping[str, str], problems: _Problems) -> Any:
    """Replace ``${env:NAME}`` in every string; a missing variable is a problem.
    Values in secret fields become ``model.Secret``."""
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                problems.add(ptr, f"environment variable {name} is not set")
                return ""
            return env[name]

        resolved = ENV_REF.sub(lookup, value)
        if not SECRET_FIELDS.match(ptr):
            return resolved
        problems.secrets.append(resolved)
        if len(resolved) < redact.MIN_SECRET_LEN and ENV_REF.fullmatch(value):
            problems.add(
                ptr,
                f"the value of {value} is shorter than {redact.MIN_SECRET_LEN} "
                "characters: too short to be a secret, and to be masked safely",
            )
        return model.Secret(value.strip("${}"), resolved)
    if isinstance(value, dict):
        return {
            k: _resolve_env(v, f"{ptr}/{yamlsrc.escape(k)}", env, problems)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_resolve_env(v, f"{ptr}/{i}", env, problems) for i, v in enumerate(value)]
    return value


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


def _endpoint(
    spec: Mapping[str, Any],
    ptr: str,
    base: Path,
    trainers: Mapping[str, model.Trainer],
    problems: _Problems,
) -> model.Endpoint | None:
    trainer = trainers.get(spec["trainer"])
    if trainer is None:
        problems.add(
            f"{ptr}/trainer",
            f"no trainer named {spec['trainer']!r} "
            f"(declared: {', '.join(sorted(trainers)) or 'none'})",
        )
    azure = problems.located.data["backend"]["kind"] == "azure"
    inputs = {
        key: _blob(rel, f"{ptr}/inputs/{yamlsrc.escape(key)}", problems)
        if azure
        else _existing_file(base, rel, f"{ptr}/inputs/{yamlsrc.escape(key)}", problems)
        for key, rel in spec["inputs"].items()
    }
    _check_target(spec, ptr, trainer, azure=azure, problems=problems)
    definition = None
    if "definition" in spec:
        definition = _existing_file(base, spec["definition"], f"{ptr}/definition", problems)
        if definition is not None:
            _check_definition(definition, spec["asset"], f"{ptr}/definition", problems)
    if trainer is None or None in inputs.values():
        return None
    parameters = {**trainer.parameters, **spec.get("parameters", {})}
    secret_parameters = {**trainer.secret_parameters, **spec.get("secretParameters", {})}
    for clash in sorted(set(parameters) & set(secret_parameters)):
        problems.add(
            f"{ptr}/secretParameters", f"{clash!r} is both a parameter and a secret parameter"
        )
    gate = spec.get("gate")
    for key in ("minimum", "maxRegression"):
        if gate is not None and key in gate and not _finite(gate[key]):
            problems.add(f"{ptr}/gate/{key}", f"{gate[key]!r} is not a finite number")
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
        source=model.Source(problems.file, ptr, problems.located.line_of(ptr)),
        options=model.frozen_map(
            {k: v for k, v in spec.items() if k in ("resourceGroup", "classic")}
        ),
    )


def _check_backend(kind: str, trainers: Mapping[str, model.Trainer], problems: _Problems) -> None:
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
    spec: Mapping[str, Any],
    ptr: str,
    trainer: model.Trainer | None,
    *,
    azure: bool,
    problems: _Problems,
) -> None:
    """Refuse targets that can never be updated: classic default endpoints, training services."""
    classic = spec.get("classic")
    if not azure and not LOCAL_SERVICE_NAME.match(spec["webService"]):
        problems.add(
            f"{ptr}/webService",
            "the local backend needs a web service name of "
            "letters, digits, '.', '_' and '-' (it names a file)",
        )
    if classic is not None and not azure:
        problems.add(f"{ptr}/classic", "classic endpoints need the azure backend")
    if classic is not None and classic["endpoint"].lower() == "default":
        problems.add(
            f"{ptr}/classic/endpoint",
            "the default endpoint's trained model cannot be replaced; name a non-default endpoint",
        )
    bes_url = str((trainer.options.get("bes") or {}).get("url", "")) if trainer else ""
    service = bes_url.rstrip("/").rsplit("/services/", 1)[-1] if "/services/" in bes_url else ""
    target = classic["webService"] if classic is not None else spec["webService"]
    if service and target == service:
        problems.add(
            ptr,
            f"{target!r} is the trainer's training web service; point the "
            "endpoint at the predictive web service",
        )


def _blob(location: str, ptr: str, problems: _Problems) -> str | None:
    """An Azure input: ``container/path/to/blob`` in the backend's storage account."""
    container, _, name = location.partition("/")
    if not container or not name or location.startswith(("http:", "https:")):
        problems.add(ptr, f"blob input must be container/path, got {location[:100]!r}")
        return None
    return location


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (OverflowError, ValueError, TypeError):
        return False


def _existing_file(base: Path, rel: str, ptr: str, problems: _Problems) -> Path | None:
    path = (base / rel).resolve()
    if not path.is_file():
        problems.add(ptr, f"not a file: {rel}" if path.exists() else f"file not found: {rel}")
        return None
    return path


def _function_problem(path: Path, function: str) -> str | None:
    """Why ``path`` cannot serve ``function`` (None when it can)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        return "is not UTF-8 text"
    except SyntaxError as e:
        return f"has a syntax error at line {e.lineno}: {e.msg}"
    if any(isinstance(n, ast.FunctionDef) and n.name == function for n in tree.body):
        return None
    return f"defines no function {function!r}"


def _check_definition(path: Path, asset: str, ptr: str, problems: _Problems) -> None:
    try:
        definition = json.loads(path.read_text(encoding="utf-8"))
        names = [a.get("name") for a in definition["properties"]["assets"].values()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        problems.add(
            ptr, f"{path.name} is not a web service definition (JSON with properties.assets)"
        )
        return
    if asset not in names:
        problems.add(ptr, f"{path.name} has no asset named {asset!r}")
