"""Load a manifest: YAML → schema validation → templates → references → model.

The loader knows no backend: it is handed the registered ones (``rules.Rules``),
validates against the core schema composed with their fragments, and asks the
chosen one to check and type its parts (trainer specs, input locations, endpoint
addresses). Every problem is collected before anything is raised, so a user fixes a
manifest in one pass; each names the file, the line and the JSON pointer of
where it is written, once (see ``problems``). Secrets are only ever
``${env:NAME}`` references; a literal value in a secret field is refused without
echoing it. Every file read here is read bounded (see ``yamlsrc``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler import (
    envrefs,
    errors,
    gcpause,
    model,
    problems,
    rules,
    schedule,
    schema,
    templatecheck,
    templates,
    yamlsrc,
)
from reconciler.problems import Problems, Site

secret_values = envrefs.secret_values  # every secret a loaded manifest resolved
MAX_MANIFEST_BYTES = 4 * yamlsrc.MiB  # 10,000 endpoints spelled out one by one take ~2 MiB
MAX_BYTES_ENV = "RETRAIN_MAX_MANIFEST_BYTES"  # raises (or lowers) MAX_MANIFEST_BYTES
MAX_DEFINITION_BYTES = 16 * yamlsrc.MiB  # exported definitions embed the experiment graph


def load(
    path: str | Path, *, env: Mapping[str, str], backends: Sequence[rules.Rules]
) -> model.Manifest:
    """Load and fully check the manifest at ``path`` for one of ``backends`` (every
    registered one); ``ManifestError`` lists all problems."""
    with gcpause.paused():  # a large manifest is many long-lived containers, no garbage
        return _load(Path(path), env, backends)


def _load(path: Path, env: Mapping[str, str], backends: Sequence[rules.Rules]) -> model.Manifest:
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
    found = Problems(str(path), located, _schema(backends))
    if located.data is None:
        raise errors.ManifestError([f"{path}: the manifest is empty"])
    problems.validate(located.data, found)
    problems.yaml11(located.data, found)
    found.raise_if_any()
    doc: dict[str, Any] = located.data
    kind = doc["backend"]["kind"]
    chosen = next(b for b in backends if b.name == kind)  # the schema allows only these
    secret = envrefs.secret_fields(f for b in backends for f in b.secret_fields)
    ctx = _Context(path.resolve().parent, envrefs.Resolver(env, secret), chosen)
    ctx.trainers = _trainers(doc, ctx, found)
    backend_spec = ctx.resolver.resolve(
        doc["backend"], Site(found, (("/backend", doc["backend"]),))
    )
    endpoints = _endpoints(doc, ctx, found)
    found.raise_if_any()
    backend = model.Backend(kind, model.frozen_map(backend_spec.get(kind)))
    digest = hashlib.sha256(raw).hexdigest()
    return model.Manifest(str(path), digest, backend, model.frozen_map(ctx.trainers), endpoints)


def max_manifest_bytes(env: Mapping[str, str]) -> int:
    """The manifest size limit: ``MAX_MANIFEST_BYTES``, or ``$RETRAIN_MAX_MANIFEST_BYTES``."""
    given = env.get(MAX_BYTES_ENV, "")
    if not given:
        return MAX_MANIFEST_BYTES
    if not given.isdigit() or int(given) < 1:
        raise errors.ManifestError([f"{MAX_BYTES_ENV} must be a number of bytes, got {given!r}"])
    return int(given)


def _schema(backends: Sequence[rules.Rules]) -> schema.Schema:
    """The core schema composed with ``backends``' fragments, compiled once per set."""
    return schema.composed(tuple((b.name, json.dumps(b.schema_fragment())) for b in backends))


@dataclass
class _Context:
    """What checking needs, and what it has seen so far."""

    base: Path  # the manifest's folder: files are relative to it
    resolver: envrefs.Resolver
    backend: rules.Rules  # the chosen one
    trainers: Mapping[str, model.Trainer] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # endpoint name → where declared
    claimed: dict[tuple[str, str], str] = field(default_factory=dict)  # (service, asset) → endpoint
    definitions: dict[Path, list[str] | str] = field(default_factory=dict)  # asset names or why
    # What an endpoint's untemplated values gave without a problem, for the next endpoint
    # with the same values (a forEach entry's endpoints share them: templates.Substitution):
    checked: dict[tuple[str, str], Path] = field(default_factory=dict)  # (definition, asset)
    inputs: dict[str, str] = field(default_factory=dict)  # location → as the backend reads it
    sources: dict[str, model.Source] = field(default_factory=dict)  # by an endpoint's pointer
    last_gate: tuple[Any, Any, model.Gate] | None = None  # (gate's value, site's origins, it)
    last_parameters: tuple[Any, ...] = ()  # (trainer, parameters, secret parameters) checked


def _trainers(doc: Mapping[str, Any], ctx: _Context, found: Problems) -> dict[str, model.Trainer]:
    out = {}
    for name, raw_spec in doc["trainers"].items():
        site = Site(found, ((f"/trainers/{yamlsrc.escape(name)}", raw_spec),))
        spec = ctx.resolver.resolve(raw_spec, site)
        typed = ctx.backend.trainer(spec, site, ctx.base)
        _check_parameter_names(name, typed.declared_parameters(), spec, site)
        _check_swallowed_keys(spec, site)
        out[name] = model.Trainer(
            name=name,
            spec=typed,
            parameters=model.frozen_map(spec.get("parameters")),
            secrets=model.frozen_map(spec.get("secrets", {})),
            timeout_seconds=float(spec.get("timeout", model.TRAINER_TIMEOUT)),
            secret_parameters=model.frozen_map(spec.get("secretParameters", {})),
            schedule=_schedule(spec.get("schedule"), site),
        )
    return out


def _schedule(expr: str | None, site: Site) -> str | None:
    """The trainer's cron schedule (``retrain watch``), checked here so validate says it."""
    why = schedule.problem(expr) if expr is not None else None
    if why:
        site.add(("schedule",), why)
    return expr


def _endpoints(
    doc: Mapping[str, Any], ctx: _Context, problems: Problems
) -> tuple[model.Endpoint, ...]:
    defaults = doc.get("defaults", {})
    out: list[model.Endpoint] = []
    for i, entry in enumerate(doc["endpoints"]):
        assembled = templates.expand(f"/endpoints/{i}", entry, defaults, problems)
        template = templates.template(entry, defaults)
        check = templatecheck.EntryCheck(problems.schema, RESOLVED, template)
        inert = ctx.resolver.inert_paths(template, f"/endpoints/{i}")
        for site, raw_spec in assembled:
            endpoint = _assembled(site, raw_spec, ctx, check, inert)
            if endpoint is not None:
                out.append(endpoint)
        problems.flush(f"/endpoints/{i}", len(assembled))
    return tuple(out)


RESOLVED = "#/$defs/resolvedEndpoint"  # what an assembled endpoint is validated against


def _assembled(
    site: Site,
    raw_spec: dict[str, Any],
    ctx: _Context,
    check: templatecheck.EntryCheck,
    inert: list[problems.Rel] | None,
) -> model.Endpoint | None:
    """Check one assembled endpoint and build it (None when it has problems); ``inert``:
    its entry's ``Resolver.inert_paths``."""
    if not check.valid(site, raw_spec):
        return None
    settled = envrefs.settled(raw_spec, inert)
    spec = raw_spec if settled else ctx.resolver.resolve(raw_spec, site)
    name = spec["name"]
    if name in ctx.names:
        site.add(
            ("name",), f"duplicate endpoint name {name!r} (first declared at {ctx.names[name]})"
        )
        return None
    ctx.names[name] = templates.declared_at(site, ("name",))
    asset = (spec["webService"], spec["asset"])
    if not site.poisoned or not any(site.is_poisoned(r) for r in (("webService",), ("asset",))):
        if asset in ctx.claimed:
            site.add(
                ("webService",),
                f"endpoint {name!r} targets the same web service asset as {ctx.claimed[asset]!r}",
                uses=(("webService",), ("asset",)),
            )
        ctx.claimed[asset] = name
    return _endpoint(spec, site, ctx)


def _endpoint(spec: Mapping[str, Any], site: Site, ctx: _Context) -> model.Endpoint | None:
    trainer = ctx.trainers.get(spec["trainer"])
    if trainer is None:
        site.add(
            ("trainer",),
            f"no trainer named {spec['trainer']!r} "
            f"(declared: {', '.join(sorted(ctx.trainers)) or 'none'})",
        )
    inputs = {key: _input(key, location, site, ctx) for key, location in spec["inputs"].items()}
    address = ctx.backend.address(spec, site, trainer)
    definition = _definition(spec, site, ctx) if "definition" in spec else None
    if trainer is None or None in inputs.values() or site.poisoned:
        return None
    _check_parameters(trainer, spec, site, ctx)
    parameters = _layered(trainer.parameters, spec.get("parameters"))
    secret_parameters = _layered(trainer.secret_parameters, spec.get("secretParameters"))
    if secret_parameters:
        for clash in sorted(set(parameters) & set(secret_parameters)):
            site.add(("secretParameters",), f"{clash!r} is both a parameter and a secret parameter")
    if site.ptr not in ctx.sources:
        line = site.problems.located.line_of(site.ptr)
        ctx.sources[site.ptr] = model.Source(site.problems.file, site.ptr, line)
    return model.Endpoint(
        name=spec["name"],
        web_service=spec["webService"],
        asset=spec["asset"],
        version=str(spec["version"]),
        trainer=trainer,
        inputs=model.frozen_map(inputs),
        parameters=parameters,
        secret_parameters=secret_parameters,
        gate=_gate(spec.get("gate"), site, ctx),
        definition=None if definition is None else str(definition),
        source=ctx.sources[site.ptr],
        address=address,
    )


def _input(key: str, location: str, site: Site, ctx: _Context) -> str | None:
    """The input at ``location`` as the backend reads it: asked once per distinct
    location, when it gives one without a problem (a fleet's endpoints share a few)."""
    known = ctx.inputs.get(location)
    if known is not None and not site.poisoned:
        return known
    before = len(site.problems)
    found = ctx.backend.input(location, site, ("inputs", key), ctx.base)
    if found is not None and len(site.problems) == before and not site.poisoned:
        ctx.inputs[location] = found
    return found


def _definition(spec: Mapping[str, Any], site: Site, ctx: _Context) -> Path | None:
    """The endpoint's exported definition, checked to have its asset (each distinct pair
    checked once, when it has no problem; a problem is said at every endpoint)."""
    key = (spec["definition"], spec["asset"])
    if key in ctx.checked and not site.poisoned:
        return ctx.checked[key]
    before = len(site.problems)
    definition = problems.existing_file(ctx.base, spec["definition"], site, ("definition",))
    if definition is not None:
        _check_definition(definition, spec["asset"], site, ctx)
        if len(site.problems) == before and not site.poisoned:
            ctx.checked[key] = definition
    return definition


def _check_parameters(
    trainer: model.Trainer, spec: Mapping[str, Any], site: Site, ctx: _Context
) -> None:
    """The endpoint's parameter names, checked (once for the same values as the last
    endpoint's, when those had no problem)."""
    values = (trainer, spec.get("parameters"), spec.get("secretParameters"))
    last = ctx.last_parameters
    if last and last[0] is values[0] and last[1] is values[1] and last[2] is values[2]:
        return
    before = len(site.problems)
    _check_parameter_names(trainer.name, trainer.spec.declared_parameters(), spec, site)
    _check_swallowed_keys(spec, site)
    ctx.last_parameters = values if len(site.problems) == before else ()


def _gate(gate: Any, site: Site, ctx: _Context) -> model.Gate | None:
    """The endpoint's gate (the last one's again for the same value and layers)."""
    if gate is None:
        return None
    last = ctx.last_gate
    if last is not None and last[0] is gate and last[1] is site.origins:
        return last[2]
    before = len(site.problems)
    for key in ("minimum", "maxRegression"):
        if key in gate and not _finite(gate[key]):
            site.add(("gate", key), f"{gate[key]!r} is not a finite number")
    made = model.Gate(
        metric=gate["metric"],
        minimum=gate.get("minimum"),
        max_regression=gate.get("maxRegression"),
        higher_is_better=gate.get("higherIsBetter", True),
        source=_source_of(site, ("gate", "metric")),
    )
    ctx.last_gate = (gate, site.origins, made) if len(site.problems) == before else None
    return made


def _layered(trainer: Mapping[str, Any], endpoint: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The trainer's values with the endpoint's over them; the trainer's own read-only
    map when the endpoint sets none, so the endpoints of a fleet share it (and the
    fingerprints spell it once: ``engine.desired_state``)."""
    return model.frozen_map({**trainer, **endpoint}) if endpoint else trainer


PARAMETER_FIELDS = ("parameters", "secretParameters")
# Keys of a trainer or an endpoint that hold what is not a parameter (secrets among them).
SIBLING_KEYS = frozenset({"secrets", "secretParameters", "parameters", "timeout", "schedule"})


def _check_swallowed_keys(spec: Mapping[str, Any], site: Site) -> None:
    """A parameter named as a sibling key, with no value (``secrets:`` indented under
    ``parameters``, its entries not indented under it), is a YAML indentation mistake that
    turns what follows into plain parameters: a secret among them would be shown in every
    plan as a value. Refused at its key, before anything reads or prints the rest."""
    for name, value in (spec.get("parameters") or {}).items():
        if name in SIBLING_KEYS and value is None:
            site.add(
                ("parameters", name),
                f"{name!r} has no value and names a key, not a parameter: indent the lines "
                f"below it under {name}: (or move {name}: out of parameters)",
            )


def _check_parameter_names(
    trainer: str, declared: frozenset[str] | None, spec: Mapping[str, Any], site: Site
) -> None:
    """Each parameter the manifest gives (``spec``: a trainer's or an endpoint's) must be
    one the trainer declares, when it declares them: a misspelt name is found before any
    training, at its own key."""
    if declared is None:
        return
    for fields in PARAMETER_FIELDS:
        for name in spec.get(fields) or {}:
            if name not in declared:
                site.add(
                    (fields, name),
                    f"trainer {trainer!r} declares no parameter {name!r}"
                    f"{problems.did_you_mean(name, declared)} "
                    f"(declared: {', '.join(sorted(declared)) or 'none'})",
                )


def _source_of(site: Site, rel: problems.Rel) -> model.Source:
    """Where the value at ``rel`` of an assembled endpoint is written (its layer's line)."""
    ptr, _label, _raw = site.origin(rel)
    return model.Source(site.problems.file, ptr, site.problems.located.line_of(ptr))


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (OverflowError, ValueError, TypeError):
        return False


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
