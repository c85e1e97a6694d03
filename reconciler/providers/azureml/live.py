"""An online endpoint as observed: the endpoint, its deployments, the traffic between them.

Pure: built from the bodies the service returned, cut down to what the reconciler
owns in one named function (``essence``), so the planner never sees ids, etags,
provisioning states or timestamps. What the endpoint serves is the model of the
deployment holding 100 % of its traffic. A split (a rollout under way, or someone's
hand) is not a model: it is shown as the split, so it never equals the model the
fingerprint tag names, and the planner acts on it (completing the rollout, or
returning traffic) rather than calling it in sync. A deployment absent from
``traffic`` has 0 %, the same as an explicit 0 (the service strips zeros; no false
drift from that).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler import fingerprint, model
from reconciler.providers import webservice

FULL = 100  # percent


@dataclass(frozen=True, slots=True)
class Live:
    """One endpoint's bodies as the service returned them (deployments by name)."""

    endpoint: Mapping[str, Any]
    deployments: Mapping[str, Mapping[str, Any]]

    @property
    def properties(self) -> Mapping[str, Any]:
        return self.endpoint.get("properties") or {}

    @property
    def traffic(self) -> dict[str, int]:
        """Every deployment's live weight, 0 where the map has none."""
        raw = self.properties.get("traffic") or {}
        by_lower = {str(k).lower(): int(v) for k, v in raw.items() if isinstance(v, int | float)}
        return {name: by_lower.get(name.lower(), 0) for name in self.deployments}

    @property
    def tags(self) -> dict[str, str]:
        return {k: str(v) for k, v in (self.endpoint.get("tags") or {}).items()}

    def model_of(self, name: str) -> str | None:
        found = (self.deployments.get(name) or {}).get("properties") or {}
        value = found.get("model")
        return None if value is None else str(value)

    def state_of(self, name: str) -> str:
        props = (self.deployments.get(name) or {}).get("properties") or {}
        return str(props.get("provisioningState", ""))

    def serving(self) -> str | None:
        """The deployment holding all live traffic, if one does."""
        return next((n for n, w in self.traffic.items() if w == FULL), None)

    def leader(self, besides: str | None = None) -> str | None:
        """The deployment with the most traffic (other than ``besides``), if any has some."""
        weighted = [(w, n) for n, w in self.traffic.items() if n != besides and w > 0]
        return min(weighted, key=lambda pair: (-pair[0], pair[1]))[1] if weighted else None

    def with_model(self, model_id: str) -> str | None:
        """A deployment serving ``model_id``: one with traffic first, then any."""
        names = [n for n in self.deployments if self.model_of(n) == model_id]
        names.sort(key=lambda n: (-self.traffic[n], self.state_of(n) != "Succeeded", n))
        return names[0] if names else None

    def split(self) -> str:
        """The traffic map in words: ``blue 90%, green 10%`` (or ``no traffic``)."""
        parts = [f"{n} {w}%" for n, w in sorted(self.traffic.items()) if w > 0]
        return ", ".join(parts) or "no traffic"


def served(live: Live) -> str:
    """What the endpoint serves: a model id, or the split that stands for none."""
    name = live.serving()
    found = live.model_of(name) if name is not None else None
    return found if found is not None else f"traffic split: {live.split()}"


def essence(
    live: Live, *, web_service: str, uri_for: Callable[[str], str], models: Mapping[str, str]
) -> model.ServiceState:
    """The owned fields (served model, ownership tags) and the lines a plan shows about
    the live endpoint; ``models`` are the fingerprint tags of the referenced versions."""
    owned = {k: v for k, v in live.tags.items() if k in model.OWNED_TAGS}
    state = webservice.state_of_fields(web_service, served(live), owned, (), uri_for=uri_for)
    return model.ServiceState(
        web_service=state.web_service,
        model_uri=state.model_uri,
        tags=state.tags,
        expected_uri=state.expected_uri,
        revision=state.revision,
        detail=detail(live, models),
    )


def detail(live: Live, models: Mapping[str, str]) -> tuple[str, ...]:
    """Per deployment: its weight, model (and that model's fingerprint tag) and state."""
    lines = [f"traffic: {live.split()}"]
    for name in sorted(live.deployments, key=lambda n: (-live.traffic[n], n)):
        ref = live.model_of(name) or "(no model)"
        tag = models.get(ref)
        tagged = f" (fingerprint {fingerprint.short(tag)})" if tag else ""
        lines.append(
            f"deployment {name}: {live.traffic[name]}%, model {short_model(ref)}{tagged}, "
            f"{live.state_of(name) or 'state unknown'}"
        )
    return tuple(lines)


def short_model(ref: str) -> str:
    """``name:version`` of a model version's ARM id (the id itself otherwise)."""
    parts = ref.rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2].lower() == "versions" and parts[-4].lower() == "models":
        return f"{parts[-3]}:{fingerprint.short(parts[-1])}"
    return ref
