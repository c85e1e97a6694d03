"""The Azure ML v2 backend's descriptor: its part of the manifest and its provider factory.

A trainer is a command job (code asset, command, environment, compute); inputs are
paths in the workspace's blob datastore; an endpoint's ``webService`` names a managed
online endpoint, and its ``azureml`` section says how a new model is rolled out there
(traffic steps and hold, deployments kept for rollback, a smoke request, and the
bodies to create the endpoint from when it is missing). The rollout schedule is
checked here, at load time: a schedule that never reaches 100 % would "succeed"
without promoting (flagger#189 is that bug).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler import errors, model, plan
from reconciler.problems import Rel, Site
from reconciler.providers import base
from reconciler.providers.azurecommon import throttle

NAME = "azureml"
SECRET_FIELDS = (r"/backend/azureml/storage/connectionString",)
SHOWN = 100  # characters of a refused input location quoted in its message
FULL = 100  # percent: where every rollout ends
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}  # seconds per unit of a hold
HOLD = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?$")
NO_SECRET_PARAMETERS = (
    "the azureml backend passes parameters as a command job's literal inputs, which the "
    "workspace shows to anyone who can read jobs: give secrets to the job another way"
)
OTHER_BACKENDS = ("entrypoint", "bes", "predict", "load")  # other built-in backends' fields


@dataclass(frozen=True, slots=True)
class Command(model.TrainerSpec):
    """A command job, as declared (``command``): what runs, where, and in what."""

    code: str
    command: str
    environment: str
    compute: str
    instance_type: str = ""
    experiment: str = "retrain"


@dataclass(frozen=True, slots=True)
class OnlineEndpoint(model.Address):
    """How a new model reaches this online endpoint: traffic ``steps`` (percent, rising,
    ending at 100) held ``hold`` seconds each, ``keep`` previous retrain deployments kept,
    an optional ``smoke`` request, an optional ``mirror`` percentage of live traffic copied to
    the new deployment for one hold before it gets any, optional ``create`` bodies for a
    missing endpoint."""

    steps: tuple[int, ...] = (FULL,)
    hold: float = 0.0
    mirror: int = 0
    keep: int = 1
    smoke: model.JSON = None
    create: Mapping[str, model.JSON] | None = field(default=None)

    @property
    def creatable(self) -> bool:
        return self.create is not None


def command(trainer: model.Trainer) -> Command:
    """The trainer's command job; the manifest's checks ensure an azureml trainer has one."""
    spec = trainer.spec
    if not isinstance(spec, Command):
        raise errors.ProviderError(f"trainer {trainer.name!r} is not a command job")
    return spec


def online(ep: model.Endpoint) -> OnlineEndpoint:
    """The endpoint's rollout settings (the defaults when it declares none)."""
    return ep.address if isinstance(ep.address, OnlineEndpoint) else OnlineEndpoint()


def hold_seconds(value: Any) -> float | None:
    """``30s``, ``5m``, ``1h``, ``250ms`` or a number of seconds; None if unreadable."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    m = HOLD.fullmatch(str(value))
    return None if m is None else float(m[1]) * UNITS[m[2] or "s"]


def steps_problem(steps: list[int]) -> str | None:
    """Why a traffic schedule is unusable, or None: each step must rise, the last be 100."""
    for before, after in itertools.pairwise(steps):
        if after <= before:
            return f"rollout steps must rise strictly: {after} follows {before}"
    if steps and steps[-1] != FULL:
        return f"rollout steps must end at 100 (the last is {steps[-1]})"
    return None


class AzureMLBackend:
    """Azure ML v2 managed online endpoints (see ``providers.base.Backend``)."""

    name = NAME
    secret_fields = SECRET_FIELDS

    def schema_fragment(self) -> Mapping[str, Any]:
        return base.fragment_beside(__file__)

    def trainer(self, spec: Mapping[str, Any], site: Site, base: Path) -> model.TrainerSpec:
        for other in OTHER_BACKENDS:
            if other in spec:
                site.add((other,), f"{other} is not an azureml trainer field; use command")
        if spec.get("secretParameters"):
            site.add(("secretParameters",), NO_SECRET_PARAMETERS)
        declared = spec.get("command")
        if declared is None:
            site.add((), "the azureml backend trains with a command job: give the trainer command")
            return Command("", "", "", "")
        return Command(
            code=str(declared.get("code", "")),
            command=str(declared.get("command", "")),
            environment=str(declared.get("environment", "")),
            compute=str(declared.get("compute", "")),
            instance_type=str(declared.get("instanceType", "")),
            experiment=str(declared.get("experiment", "retrain")),
        )

    def input(self, location: str, site: Site, rel: Rel, base: Path) -> str | None:
        """A path in the workspace's blob datastore (``data/seattle.csv``)."""
        if location.startswith(("/", "http:", "https:", "azureml:")) or ".." in location.split("/"):
            site.add(rel, f"input must be a path in the datastore, got {location[:SHOWN]!r}")
            return None
        return location

    def address(
        self, spec: Mapping[str, Any], site: Site, trainer: model.Trainer | None
    ) -> model.Address:
        for other in ("classic", "resourceGroup", "apiKey"):
            if other in spec:
                site.add((other,), f"{other} is not an azureml endpoint field")
        if spec.get("secretParameters"):
            site.add(("secretParameters",), NO_SECRET_PARAMETERS)
        section: Mapping[str, Any] = spec.get("azureml") or {}
        rollout = section.get("rollout") or {}
        steps = [int(s) for s in rollout.get("steps", [FULL])]
        problem = steps_problem(steps)
        if problem is not None:
            site.add(("azureml", "rollout", "steps"), problem)
        hold = hold_seconds(rollout.get("hold", 0))
        if hold is None:
            site.add(("azureml", "rollout", "hold"), "hold must be like 30s, 5m or 1h")
        create = section.get("create")
        return OnlineEndpoint(
            steps=tuple(steps),
            hold=hold or 0.0,
            mirror=int(rollout.get("mirror", 0)),
            keep=int(section.get("keep", 1)),
            smoke=(section.get("smoke") or {}).get("request"),
            create=None if create is None else model.frozen_map(create),
        )

    def starter(self) -> Mapping[str, Path]:
        """What ``retrain init`` writes: a starter manifest (values to fill in marked
        CHANGE) and the command job's trainer script, from ``starter/`` beside this module."""
        return base.starter_beside(
            __file__, {"retrain.yaml": "retrain.yaml", "trainer/train_job.py": "train_job.py"}
        )

    def parallelism(self, section: Mapping[str, model.JSON]) -> int | None:
        return section.get("parallelism")

    def network_parallelism(self, section: Mapping[str, model.JSON]) -> int:
        """Requests at once: ``networkParallelism``, else as many as the pacer's read
        reserve covers (``throttle.NETWORK_PARALLELISM``), not one per CPU."""
        declared = section.get("networkParallelism")
        return declared if isinstance(declared, int) else throttle.NETWORK_PARALLELISM

    def steps(
        self, endpoint: model.Endpoint, state: model.ServiceState | None, change: plan.Change
    ) -> tuple[str, ...]:
        """What apply will do for ``change`` (see ``plan.Steps``); pure."""
        from reconciler.providers.azureml import steps

        return steps.steps(endpoint, state, change)

    def create(self, backend: model.Backend, context: base.Context) -> base.Provider:
        if context.state_dir is not None:
            raise errors.ReconcilerError(
                "--state-dir is for the local backend; the azureml backend "
                "keeps its state in blob storage"
            )
        from reconciler.providers.azureml import provider

        return provider.create(backend.section, context)


BACKEND: base.Backend = AzureMLBackend()
