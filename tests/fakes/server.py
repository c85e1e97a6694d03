"""The whole fake Azure on one HTTPS port: Resource Manager, BES and classic management.

Why one port: tests and newcomers need a single thing to start, a single CA bundle to trust,
and base URLs that are configurable the same way the reconciler's Azure endpoints are (which
is also what sovereign-cloud users need). The three APIs live on different hosts in Azure;
here they are told apart by path prefix so that a client sending a call to the wrong base URL
still fails, as it would in Azure:

* Resource Manager at the root: ``https://127.0.0.1:PORT`` (what ``base_url=`` of
  ``ResourceManagementClient`` takes);
* BES under ``/bes`` (standing in for ``https://{region}.services.azureml.net``);
* classic management under ``/classic`` (standing in for ``https://management.azureml.net``);
* Azure ML v2 (``Microsoft.MachineLearningServices``, :mod:`tests.fakes.azureml`) at the root
  beside the classic RP, as in ARM (paths differ by provider namespace; the two share the
  subscription's throttling buckets), and its scoring URIs under ``/inference``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from pathlib import Path
from types import TracebackType
from typing import Any

from .arm import FakeResourceManager
from .azureml import FakeAzureML
from .bes import FakeBatchExecution, Trainer
from .classic import FakeClassicManagement
from .httpserver import FakeHTTPServer

JsonObj = dict[str, Any]

BES_PREFIX = "/bes"
CLASSIC_PREFIX = "/classic"


def load_trainer(spec: str) -> Trainer:
    """``"package.module:function"`` → the callable."""
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"trainer must be 'module:function', got {spec!r}")
    fn = getattr(importlib.import_module(module), attr)
    if not callable(fn):
        raise TypeError(f"{spec} is not callable")
    return fn  # type: ignore[no-any-return]


def _key_pair(keys: Any) -> tuple[str, str] | None:
    """A seed file's ``["primary", "secondary"]`` → tuple (None when absent)."""
    if not keys:
        return None
    primary, secondary = keys
    return str(primary), str(secondary)


class FakeAzure:
    """ARM + BES + classic on one :class:`FakeHTTPServer`. Use as a context manager."""

    def __init__(
        self,
        *,
        blob_connection_string: str | None = None,
        port: int = 0,
        arm_options: JsonObj | None = None,
        bes_options: JsonObj | None = None,
        azureml_options: JsonObj | None = None,
        verify_blobs: bool = True,
    ) -> None:
        self.blob_connection_string = blob_connection_string
        self.server = FakeHTTPServer(port=port)
        self.arm = FakeResourceManager(**(arm_options or {}))
        self.bes = FakeBatchExecution(
            development_storage_connection_string=blob_connection_string,
            **(bes_options or {}),
        )
        self.classic = FakeClassicManagement(
            bes=self.bes, verify_blobs=verify_blobs, ca_bundle=self.server.ca_bundle_path
        )
        self.azureml = FakeAzureML(
            blob_connection_string=blob_connection_string,
            throttle=self.arm.take_token,
            **(azureml_options or {}),
        )
        self.arm.mount(self.server)
        self.azureml.mount(self.server)
        self.bes.mount(self.server, BES_PREFIX)
        self.classic.mount(self.server, CLASSIC_PREFIX)
        self.server.add_route("GET", r"/_fake/stats", self._stats)

    def _stats(self, _req: Any) -> Any:
        """Request counts per API and method, and BES jobs: what a by-hand demo checks."""
        from .httpserver import Response

        counts: dict[str, int] = {}
        for r in self.server.requests():
            if r.path.startswith("/_fake/"):
                continue
            api = (
                "bes"
                if r.path.startswith(BES_PREFIX)
                else "classic"
                if r.path.startswith(CLASSIC_PREFIX)
                else "azureml"
                if "microsoft.machinelearningservices" in r.path.lower()
                or r.path.startswith("/inference/")
                else "arm"
            )
            key = f"{api} {r.method}"
            counts[key] = counts.get(key, 0) + 1
        with self.azureml.lock:
            aml_jobs = sum(len(ws.jobs) for ws in self.azureml.state.workspaces.values())
        return Response.json(
            200,
            {
                "requests": dict(sorted(counts.items())),
                "besJobs": len(self.bes.job_list()),
                "azuremlJobs": aml_jobs,
            },
        )

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeAzure:
        self.server.start()
        # swaggerLocation of ARM services points at the fake BES host (reference §1.4, §3.1).
        self.arm.services_base_url = self.bes.base_url
        return self

    def stop(self) -> None:
        self.bes.wait_idle(timeout=5)  # seconds; let a finishing job write its blobs
        self.azureml.wait_jobs_idle(timeout=5)  # seconds, likewise for command jobs
        self.server.stop()

    def close(self) -> None:
        self.stop()
        self.server.close()

    def __enter__(self) -> FakeAzure:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- addresses ------------------------------------------------------------------------

    @property
    def ca_bundle_path(self) -> str:
        return self.server.ca_bundle_path

    @property
    def arm_base_url(self) -> str:
        return self.arm.base_url

    @property
    def bes_base_url(self) -> str:
        return self.bes.base_url

    @property
    def classic_base_url(self) -> str:
        return self.classic.base_url

    # -- seeding --------------------------------------------------------------------------

    def seed_arm_training_service(
        self,
        subscription: str,
        resource_group: str,
        name: str,
        definition: JsonObj,
        trainer: Trainer,
        *,
        model_outputs: set[str] | frozenset[str] = frozenset(),
        keys: dict[str, str] | None = None,
    ) -> str:
        """Seed an ARM training web service and register its BES jobs endpoint.

        Returns the BES base URL (``.../subscriptions/{sub}/services/{name}``); the api key is
        the service's primary (or secondary) key, as returned by ``listKeys``.
        """
        self.arm.seed_web_service(subscription, resource_group, name, definition, keys=keys)
        k = self.arm.keys_of(subscription, resource_group, name)
        return self.bes.register_training_service(
            f"subscriptions/{subscription}/services/{name}",
            (k["primary"], k["secondary"]),
            trainer,
            model_outputs=model_outputs,
        )

    def seed(self, config: JsonObj, base_dir: Path | None = None) -> JsonObj:
        """Seed from a JSON document (see ``seed.example.json``). Returns the credentials."""
        base_dir = base_dir or Path.cwd()
        out: JsonObj = {"arm": [], "bes": [], "classic": []}
        for blob in config.get("blobs", []):
            self._upload_seed_blob(blob, base_dir)
        if "azureml" in config:
            out["azureml"] = self.azureml.seed(config["azureml"])
        for ws in config.get("arm", {}).get("webServices", []):
            definition = ws.get("definition")
            if definition is None:
                definition = json.loads((base_dir / ws["definitionFile"]).read_text("utf-8"))
            sub, rg, name = ws["subscriptionId"], ws["resourceGroup"], ws["name"]
            training = ws.get("training")
            if training:
                url = self.seed_arm_training_service(
                    sub,
                    rg,
                    name,
                    definition,
                    load_trainer(training["trainer"]),
                    model_outputs=set(training.get("modelOutputs", [])),
                    keys=ws.get("keys"),
                )
                out["bes"].append(
                    {"url": url, "apiKey": self.arm.keys_of(sub, rg, name)["primary"]}
                )
            else:
                self.arm.seed_web_service(sub, rg, name, definition, keys=ws.get("keys"))
            out["arm"].append(self.arm.resource_id(sub, rg, name))
        for ws in config.get("classic", {}).get("workspaces", []):
            token = self.classic.add_workspace(ws["id"], ws.get("token"))
            out["classic"].append({"workspace": ws["id"], "token": token})
            for svc in ws.get("webServices", []):
                trainer = load_trainer(svc["trainer"]) if svc.get("trainer") else None
                default = self.classic.seed_web_service(
                    ws["id"],
                    svc["id"],
                    svc.get("name", svc["id"]),
                    resources=svc.get("resources"),
                    training=bool(svc.get("training")),
                    trainer=trainer,
                    model_outputs=set(svc.get("modelOutputs", [])),
                    description=svc.get("description", ""),
                    default_endpoint_keys=_key_pair(svc.get("defaultEndpointKeys")),
                )
                if trainer is not None:
                    view = self.classic.endpoint_view(ws["id"], svc["id"], default.name)
                    out["bes"].append({"url": view["ApiLocation"], "apiKey": default.primary_key})
                for ep in svc.get("endpoints", []):
                    self.classic.seed_endpoint(
                        ws["id"],
                        svc["id"],
                        ep["name"],
                        keys=_key_pair(ep.get("keys")),
                        resources=ep.get("resources"),
                    )
        return out

    def _upload_seed_blob(self, blob: JsonObj, base_dir: Path) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        if not self.blob_connection_string:
            raise ValueError("seed has blobs but no blob storage (Azurite) is running")
        if "file" in blob:
            data = (base_dir / blob["file"]).read_bytes()
        else:
            data = str(blob.get("text", "")).encode("utf-8")
        service = BlobServiceClient.from_connection_string(self.blob_connection_string)
        with contextlib.suppress(ResourceExistsError):
            service.create_container(blob["container"])
        service.get_blob_client(blob["container"], blob["name"]).upload_blob(data, overwrite=True)
