"""What the manifest loader asks of a backend: its schema fragment and its checks.

The loader knows no backend; it is handed the registered ones (``Rules`` each) and
asks the chosen one to check and type its parts of the manifest: a trainer's
backend fields, each input's location, each endpoint's address. A backend adds its
problems to the ``problems.Site`` it is given, so they read like every other one
(``file:line: /pointer: message``, once per place written). The full descriptor a
provider package exports (``providers.base.Backend``) is this plus its factory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reconciler import model

if TYPE_CHECKING:  # only for annotations: a training subprocess imports this, lean
    from reconciler.problems import Rel, Site


class Rules(Protocol):
    """One backend's part of the manifest."""

    @property
    def name(self) -> str:
        """The ``backend.kind`` that chooses this backend."""
        ...

    @property
    def secret_fields(self) -> tuple[str, ...]:
        """Regular expressions of the JSON pointers where this backend's fields hold
        secrets (``/backend/<kind>/...``, ``/trainers/[^/]+/...``, ``/(endpoints/\\d+|
        defaults)/...``): their values must be ``${env:NAME}`` and are masked."""
        ...

    def schema_fragment(self) -> Mapping[str, Any]:
        """This backend's schema fragment (see ``reconciler.schema``)."""
        ...

    def trainer(self, spec: Mapping[str, Any], site: Site, base: Path) -> model.TrainerSpec:
        """The trainer declared as ``spec`` (at ``site``; files relative to ``base``), as
        this backend runs it; problems, such as another backend's fields, go to ``site``."""
        ...

    def input(self, location: str, site: Site, rel: Rel, base: Path) -> str | None:
        """The input at ``location`` as this backend reads it, or None with a problem.
        A function of ``location`` and ``base``: the loader asks once per distinct
        location and keeps what it gives without a problem for the other endpoints."""
        ...

    def address(
        self, spec: Mapping[str, Any], site: Site, trainer: model.Trainer | None
    ) -> model.Address:
        """The endpoint ``spec``'s typed address; problems (a target that could never be
        updated, another backend's fields) go to ``site``. ``trainer`` is its trainer
        when it names one that exists."""
        ...
