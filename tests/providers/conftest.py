"""Backends under contract test. Each harness gives a provider plus the few
backend-specific powers a test needs (an out-of-band edit, a raw read)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler import fingerprint, model, providers
from reconciler.providers import base, webservice
from reconciler.providers.local import backend as local_backend
from reconciler.providers.local import provider as local
from tests.fakes.fixtures import azurite  # noqa: F401 - the azure harness's emulator
from tests.providers import memory, plugin

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
ASSET = "Bike Demand [trained model]"


@dataclass
class Harness:
    provider: base.Provider
    workdir: Path
    raw: Callable[[str], dict[str, Any] | None]
    edit: Callable[[str, Callable[[dict[str, Any]], None]], None]
    passes_environment: bool = True

    def foreign_model(self) -> str:
        """A model location outside this backend's store that a person could point a
        service at by hand (for the contract's out-of-band edit): a Studio-style URL here;
        a backend that only serves registered models registers one elsewhere."""
        return "https://elsewhere.example/m.ilearner"

    def data(self, name: str, rows: list[float]) -> str:
        path = self.workdir / name
        path.write_text("y\n" + "".join(f"{v}\n" for v in rows))
        return str(path)

    def trainer(self, secrets: dict[str, str] | None) -> model.Trainer:
        return model.Trainer(
            "tiny",
            local_backend.Program(
                f"{self.workdir / 'tiny.py'}:train", (str(self.workdir / "tiny.py"),)
            ),
            secrets=model.frozen_map(
                {k: model.Secret(f"env:{k}", v) for k, v in (secrets or {}).items()}
            ),
            timeout_seconds=60,
        )

    def endpoint(
        self,
        name: str,
        *,
        data: str,
        parameters: dict[str, Any] | None = None,
        secrets: dict[str, str] | None = None,
    ) -> model.Endpoint:
        return model.Endpoint(
            name=name,
            web_service=f"ws-{name}",
            asset=ASSET,
            version="1",
            trainer=self.trainer(secrets),
            inputs=model.frozen_map({"data": data}),
            parameters=model.frozen_map(parameters or {}),
            gate=None,
            definition=str(self.workdir / "webservice.json"),
            source=model.Source("test"),
        )

    def job(self, ep: model.Endpoint) -> base.TrainingJob:
        digest = {"data": self.provider.input_digest(ep.inputs["data"])}
        fp = fingerprint.combine(
            trainer_digest=self.provider.trainer_digest(ep.trainer),
            input_digests=digest,
            parameters=ep.parameters,
        )
        return base.TrainingJob(
            fp, ep.trainer, ep.inputs, ep.parameters, {"inputs": digest}, (ep.name,), ep.version
        )


def _local(tmp_path: Path) -> Harness:
    state = tmp_path / "state"
    prov = local.LocalProvider(state_dir=state, workdir=tmp_path)

    def raw(ws: str) -> dict[str, Any] | None:
        return prov.definition(ws)

    def edit(ws: str, change: Callable[[dict[str, Any]], None]) -> None:
        path = state / "webservices" / f"{ws}.json"
        doc = json.loads(path.read_text())
        change(doc)
        path.write_text(json.dumps(doc, indent=2))

    return Harness(prov, tmp_path, raw, edit)


class MemoryHarness(Harness):
    """The in-test plug-in backend: its trainer is the same tiny fit, called in-process."""

    def trainer(self, secrets: dict[str, str] | None) -> model.Trainer:
        return model.Trainer("tiny", memory.Call("tests.providers.trainers.tiny:train"))


def _memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    """Found through the ``retrain.providers`` entry point, made by the registry."""
    plugin.install_memory(tmp_path / "site", monkeypatch)
    prov = providers.create(model.Backend("memory"), manifest_dir=tmp_path, state_dir=None, env={})
    assert isinstance(prov, memory.MemoryProvider)
    world = prov.world

    def raw(ws: str) -> dict[str, Any] | None:
        found = world.services.get(("default", ws))
        return None if found is None else json.loads(json.dumps(found))

    def edit(ws: str, change: Callable[[dict[str, Any]], None]) -> None:
        change(world.services[("default", ws)])

    return MemoryHarness(prov, tmp_path, raw, edit, passes_environment=False)


def _ray(tmp_path: Path, address: str) -> Harness:
    """The local backend with the Ray runner, on the session's real Ray head."""
    from reconciler.providers.local import ray_runner

    state = tmp_path / "state"
    config = ray_runner.settings({"address": address}, manifest_dir=tmp_path, state_dir=state)
    training = ray_runner.RayRunner(config, log=lambda _line: None)
    prov = local.LocalProvider(state_dir=state, workdir=tmp_path, training=training)
    made = _local(tmp_path)
    made.provider = prov
    return made


@pytest.fixture(
    params=["local", "azure", "azureml", "memory", pytest.param("ray", marks=pytest.mark.ray)]
)
def harness(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Harness]:
    """Each contract test runs once per backend: the three built-in ones, one registered
    only through the entry-point group (``memory``), and the local backend training on a
    real Ray head (``ray``)."""
    shutil.copy(HERE / "trainers" / "tiny.py", tmp_path / "tiny.py")
    shutil.copy(ROOT / "examples" / "bike_rental" / "webservice.json", tmp_path / "webservice.json")
    if request.param == "local":
        yield _local(tmp_path)
        return
    if request.param == "memory":
        yield _memory(tmp_path, monkeypatch)
        return
    if request.param == "ray":
        yield _ray(tmp_path, request.getfixturevalue("ray_head"))
        return
    if request.param == "azureml":
        from tests.providers import azureml_harness

        with azureml_harness.harness(request.getfixturevalue("azurite"), tmp_path) as made:
            yield made
        return
    from tests.providers import azure_harness

    with azure_harness.harness(request.getfixturevalue("azurite"), tmp_path) as made:
        yield made


def asset_uri(definition: dict[str, Any]) -> str:
    asset_id = webservice.find_asset(definition, ASSET)
    assert asset_id is not None
    return str(webservice.get(definition, "properties", "assets", asset_id, "locationInfo", "uri"))
