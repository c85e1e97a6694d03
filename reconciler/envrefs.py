"""``${env:NAME}`` references: resolved from the environment, secrets kept masked.

Secrets are only ever references. A value in a secret field — the core's
(trainer ``secrets``, ``secretParameters``) or a backend's (``Rules.secret_fields``)
— becomes a ``model.Secret``, which never prints itself, and is remembered so a
problem message can never show it.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler import model, redact, yamlsrc
from reconciler.problems import EACH_REF, Rel, Site

ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
# Where secrets may stand whatever the backend: trainers' secrets, secret parameters.
CORE_SECRET_FIELDS = (
    r"/trainers/[^/]+/(secrets|secretParameters)/[^/]+",
    r"/(endpoints/\d+|defaults)/secretParameters/[^/]+",
)


def secret_fields(extra: Iterable[str]) -> re.Pattern[str]:
    """The pointers of secret fields: the core's and ``extra`` (each backend's)."""
    return re.compile(f"^({'|'.join([*CORE_SECRET_FIELDS, *extra])})$")


@dataclasses.dataclass(frozen=True, slots=True)
class Resolver:
    """Resolves references against ``env``; values at ``secret`` pointers become secrets."""

    env: Mapping[str, str]
    secret: re.Pattern[str]
    _secret_at: dict[tuple[str, Rel], bool] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )

    def resolve(self, value: Any, site: Site, rel: Rel = ()) -> Any:
        """Replace ``${env:NAME}`` in every string of ``value`` (at ``rel`` in ``site``). An
        unset variable is a problem, and poisons the value. Secret fields become ``Secret``."""
        if isinstance(value, dict):
            return {k: self.resolve(v, site, (*rel, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, site, (*rel, i)) for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value
        resolved = self._string(value, site, rel)
        if not self._is_secret(site.ptr, rel):
            return resolved
        site.problems.secrets.add(resolved)
        if len(resolved) < redact.MIN_SECRET_LEN and ENV_REF.fullmatch(value):
            site.add(
                rel,
                f"the value of {value} is shorter than {redact.MIN_SECRET_LEN} "
                "characters: too short to be a secret, and to be masked safely",
            )
        return model.Secret(value.strip("${}"), resolved)

    def inert_paths(self, template: Any, ptr: str) -> list[Rel] | None:
        """The paths of ``template``'s ``${each.KEY}`` strings when resolving the values
        assembled from it (at ``ptr``) changes nothing else: no other string has a
        reference and no string is in a secret field; None when resolving may change
        more. A value assembled from it whose templated strings hold no ``${`` once
        substituted resolves to an equal copy of itself, so it needs no resolving
        (``settled``): at 10,000 endpoints, walking each one was a tenth of a plan."""
        found: list[Rel] = []
        return found if self._inert(template, ptr, (), found) else None

    def _inert(self, value: Any, ptr: str, rel: Rel, found: list[Rel]) -> bool:
        if isinstance(value, dict):
            return all(self._inert(v, ptr, (*rel, k), found) for k, v in value.items())
        if isinstance(value, list):
            return all(self._inert(v, ptr, (*rel, i), found) for i, v in enumerate(value))
        if not isinstance(value, str) or "${" not in value:
            return not isinstance(value, str) or not self._is_secret(ptr, rel)
        if self._is_secret(ptr, rel) or not EACH_REF.search(value):
            return False
        found.append(rel)
        return True

    def _is_secret(self, ptr: str, rel: Rel) -> bool:
        """Whether the value at ``rel`` below ``ptr`` is a secret field: asked once per
        place (the endpoints of a forEach entry share their pointers)."""
        key = (ptr, rel)
        known = self._secret_at.get(key)
        if known is None:
            known = self._secret_at[key] = bool(self.secret.match(ptr + yamlsrc.pointer(list(rel))))
        return known

    def _string(self, value: str, site: Site, rel: Rel) -> str:
        if "${" not in value:
            return value
        unset = [name for name in ENV_REF.findall(value) if name not in self.env]
        for name in dict.fromkeys(unset):
            site.add(rel, f"environment variable {name} is not set")
        if unset:
            site.poison(rel)
        return ENV_REF.sub(lambda m: self.env.get(m.group(1), ""), value)


def settled(value: Any, inert: list[Rel] | None) -> bool:
    """Whether ``value``, assembled from a template whose ``inert_paths`` are ``inert``,
    resolves to an equal copy of itself: its templated strings hold no ``${``."""
    if inert is None:
        return False
    for rel in inert:
        at = value
        for key in rel:
            at = at[key]
        if "${" in at:
            return False
    return True


def secret_values(manifest: model.Manifest) -> list[str]:
    """Every secret the manifest resolved, for redaction. A value shared by endpoints
    (their trainer's secret parameters) is walked once: at 10,000 endpoints, walking
    each endpoint's again was most of the time between loading and observing."""
    found: list[str] = []
    seen: set[int] = set()  # the manifest holds every value walked: no id is reused
    _collect(manifest.backend.section, found, seen)
    for trainer in manifest.trainers.values():
        _collect(trainer, found, seen)
    for ep in manifest.endpoints:
        _collect(ep.address, found, seen)
        _collect(ep.secret_parameters, found, seen)
    return found


def _collect(value: Any, found: list[str], seen: set[int]) -> None:
    """The secrets in ``value``: in mappings, lists and (backends' typed) dataclasses."""
    if isinstance(value, str | int | float | bool) or value is None:
        return
    if isinstance(value, model.Secret):
        found.append(value.reveal())
        return
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, Mapping):
        for v in value.values():
            _collect(v, found, seen)
    elif isinstance(value, list | tuple):
        for v in value:
            _collect(v, found, seen)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for name in _field_names(type(value)):
            _collect(getattr(value, name), found, seen)


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))
