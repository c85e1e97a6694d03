"""The Azure backend's descriptor: its part of the manifest and its provider factory.

An Azure trainer is a Studio training web service called through BES; inputs are
blobs in the backend's storage account; an endpoint is either a Resource Manager
web service (in the backend's resource group or its own) or a classic web
service's non-default endpoint. The types here are what the rest of the package
reads instead of the manifest's raw fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler import errors, model
from reconciler.problems import Rel, Site
from reconciler.providers import base
from reconciler.providers.azurecommon import throttle

NAME = "azure"
SECRET_FIELDS = (
    r"/trainers/[^/]+/bes/apiKey",
    r"/backend/azure/storage/connectionString",
    r"/(endpoints/\d+|defaults)/classic/apiKey",
)
SHOWN = 100  # characters of a refused input location quoted in its message
LOCAL_SERVING = ("predict", "load")  # the local backend's trainer keys for retrain serve


@dataclass(frozen=True, slots=True)
class Bes(model.TrainerSpec):
    """A training web service's Batch Execution Service, as declared (``bes``). The
    output names and ``code_version`` are "" when not declared: the trainer's identity
    is what is written, so a default spelled out does not change a fingerprint."""

    url: str
    api_key: model.Secret | None
    model_output: str = ""
    evaluation_output: str = ""
    code_version: str = ""


@dataclass(frozen=True, slots=True)
class ResourceManager(model.Address):
    """A Resource Manager ("new") web service; ``resource_group`` None: the backend's."""

    resource_group: str | None = None


@dataclass(frozen=True, slots=True)
class Classic(model.Address):
    """A classic web service's non-default endpoint; added to its web service when
    missing, so it needs no exported definition."""

    workspace: str
    web_service: str
    endpoint: str
    api_key: model.Secret

    @property
    def creatable(self) -> bool:
        return True

    @property
    def key(self) -> str:
        """``workspace/webService/endpoint``: names it in messages and ownership records."""
        return f"{self.workspace}/{self.web_service}/{self.endpoint}"


def bes(trainer: model.Trainer) -> Bes:
    """The trainer's BES spec; the manifest's checks ensure an Azure trainer has one."""
    spec = trainer.spec
    if not isinstance(spec, Bes):
        raise errors.ProviderError(f"trainer {trainer.name!r} is not a BES trainer")
    return spec


def classic_address(ep: model.Endpoint) -> Classic | None:
    """The endpoint's classic address, or None for a Resource Manager web service."""
    return ep.address if isinstance(ep.address, Classic) else None


class AzureBackend:
    """Azure ML Studio web services (see ``providers.base.Backend``)."""

    name = NAME
    secret_fields = SECRET_FIELDS

    def schema_fragment(self) -> Mapping[str, Any]:
        return base.fragment_beside(__file__)

    def trainer(self, spec: Mapping[str, Any], site: Site, base: Path) -> model.TrainerSpec:
        for other in LOCAL_SERVING:
            if other in spec:
                site.add((other,), f"{other} is for web services retrain serves locally")
        declared = spec.get("bes")
        if declared is None:
            site.add(
                (), "the azure backend trains through BES: give the trainer bes.url and bes.apiKey"
            )
            return Bes("", None)
        key = declared.get("apiKey")
        return Bes(
            url=str(declared.get("url", "")),
            api_key=key if isinstance(key, model.Secret) else None,
            model_output=str(declared.get("modelOutput", "")),
            evaluation_output=str(declared.get("evaluationOutput", "")),
            code_version=str(declared.get("codeVersion", "")),
        )

    def input(self, location: str, site: Site, rel: Rel, base: Path) -> str | None:
        """``container/path/to/blob`` in the backend's storage account."""
        container, _, name = location.partition("/")
        if not container or not name or location.startswith(("http:", "https:")):
            site.add(rel, f"blob input must be container/path, got {location[:SHOWN]!r}")
            return None
        return location

    def address(
        self, spec: Mapping[str, Any], site: Site, trainer: model.Trainer | None
    ) -> model.Address:
        classic = spec.get("classic")
        if classic is not None and classic["endpoint"].lower() == "default":
            site.add(
                ("classic", "endpoint"),
                "the default endpoint's trained model cannot be replaced; "
                "name a non-default endpoint",
            )
        if "apiKey" in spec:
            site.add(("apiKey",), "apiKey is for web services retrain serves locally")
        _refuse_training_service(spec, site, trainer)
        if classic is None:
            return ResourceManager(spec.get("resourceGroup"))
        return Classic(
            classic["workspace"], classic["webService"], classic["endpoint"], classic["apiKey"]
        )

    def starter(self) -> Mapping[str, Path]:
        """What ``retrain init`` writes: a starter manifest (values to fill in marked
        CHANGE), from ``starter/`` beside this module."""
        return base.starter_beside(__file__, {"retrain.yaml": "retrain.yaml"})

    def parallelism(self, section: Mapping[str, model.JSON]) -> int | None:
        return section.get("parallelism")

    def network_parallelism(self, section: Mapping[str, model.JSON]) -> int:
        """Requests at once: ``networkParallelism``, else as many as the pacer's read
        reserve covers (``throttle.NETWORK_PARALLELISM``), not one per CPU."""
        declared = section.get("networkParallelism")
        return declared if isinstance(declared, int) else throttle.NETWORK_PARALLELISM

    def create(self, backend: model.Backend, context: base.Context) -> base.Provider:
        if context.state_dir is not None:
            raise errors.ReconcilerError(
                "--state-dir is for the local backend; the azure backend "
                "keeps its state in blob storage"
            )
        from reconciler.providers.azure import provider

        return provider.create(backend.section, context)


BACKEND: base.Backend = AzureBackend()


def _refuse_training_service(
    spec: Mapping[str, Any], site: Site, trainer: model.Trainer | None
) -> None:
    """An endpoint pointed at its own trainer's training web service could never serve."""
    url = trainer.spec.url if trainer is not None and isinstance(trainer.spec, Bes) else ""
    service = url.rstrip("/").rsplit("/services/", 1)[-1] if "/services/" in url else ""
    classic = spec.get("classic")
    rel: Rel = ("classic", "webService") if classic is not None else ("webService",)
    target = classic["webService"] if classic is not None else spec["webService"]
    if service and target == service:
        site.add(
            rel,
            f"{target!r} is the trainer's training web service; point the "
            "endpoint at the predictive web service",
        )
