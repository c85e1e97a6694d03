"""``FakeAzureML``: the Azure ML v2 fake assembled, mounted on a server, and seeded.

Why it mounts on :class:`tests.fakes.server.FakeAzure`'s port by default: Resource Manager is one
host in Azure whatever the provider, so the classic ``Microsoft.MachineLearning`` routes and
these ``Microsoft.MachineLearningServices`` routes share a base URL, a CA bundle and (through
``throttle``) the per-subscription token buckets. The scoring URIs live under ``/inference`` on
the same port. ``FakeAzureML.standalone()`` runs it on its own server when a test wants nothing
else.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.fakes.httpserver import FakeHTTPServer
from tests.fakes.swagger import ci_get

from . import traffic as rules
from .assets import AssetApi
from .blobs import BlobStore
from .common import PROVIDER, Gate, Operations, Throttle, system_data
from .jobs import JobApi, load_trainer
from .online_api import OnlineApi
from .runner import Trainer
from .scoring import ScoringApi
from .state import (
    Deployment,
    Endpoint,
    ModelContainerRec,
    ModelVersionRec,
    State,
    Workspace,
    new_keys,
)
from .validation import StrictValidator

JsonObj = dict[str, Any]

DEFAULT_DATASTORE = "workspaceblobstore"


class FakeAzureML:
    """Online endpoints, deployments, models, datastores, command jobs and scoring."""

    def __init__(
        self,
        *,
        blob_connection_string: str | None = None,
        lro_polls: int = 1,
        retry_after_s: int = 10,
        job_queue_polls: int = 1,
        accepted_tokens: set[str] | None = None,
        throttle: Throttle | None = None,
        get_advances_lro: bool = True,
        trainers: dict[str, Trainer] | None = None,
        default_trainer: Trainer | None = None,
        page_size: int = 100,
    ) -> None:
        self.lock = threading.RLock()
        self.blob_connection_string = blob_connection_string
        self.state = State(
            validator=StrictValidator.load(),
            ops=Operations(lro_polls=lro_polls, retry_after_s=retry_after_s),
            gate=Gate(accepted_tokens=accepted_tokens, throttle=throttle, lock=self.lock),
            blobs=BlobStore(blob_connection_string),
            lock=self.lock,
            get_advances_lro=get_advances_lro,
            page_size=page_size,
        )
        self.online = OnlineApi(self.state)
        self.assets = AssetApi(self.state)
        self.jobs = JobApi(
            self.state,
            trainers=trainers,
            default_trainer=default_trainer,
            job_queue_polls=job_queue_polls,
        )
        self.scoring = ScoringApi(self.state, self.job_output_uri)
        self._server: FakeHTTPServer | None = None

    def mount(self, server: FakeHTTPServer) -> None:
        self._server = server
        self.state.server_url = lambda: server.base_url
        self.state.ops.base_url = lambda: server.base_url
        for api in (self.online, self.assets, self.jobs):
            api.mount(server)
        self.scoring.mount(server)

    @classmethod
    @contextmanager
    def standalone(cls, **options: Any) -> Iterator[tuple[FakeAzureML, FakeHTTPServer]]:
        """Its own HTTPS server, started for a ``with`` block."""
        fake = cls(**options)
        server = FakeHTTPServer()
        fake.mount(server)
        with server:
            yield fake, server
        server.close()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("not mounted")
        return self._server.base_url

    # -- seeding ---------------------------------------------------------------------------

    def add_workspace(
        self,
        subscription: str,
        resource_group: str,
        name: str,
        *,
        location: str = "eastus",
        datastores: list[JsonObj] | None = None,
    ) -> Workspace:
        """A workspace with its blob datastores (default: ``workspaceblobstore``)."""
        ws = Workspace(subscription, resource_group, name, location)
        suffix = hashlib.sha256(ws.id.lower().encode()).hexdigest()[:12]  # container names ≤ 63
        specs = datastores or [
            {
                "name": DEFAULT_DATASTORE,
                "containerName": f"azureml-blobstore-{suffix}",
                "default": True,
            }
        ]
        with self.lock:
            self.state.workspaces[ws.key] = ws
            for spec in specs:
                self.add_datastore(ws, spec)
        return ws

    def add_datastore(self, ws: Workspace, spec: JsonObj) -> None:
        name = str(spec["name"])
        container = str(spec.get("containerName") or name)
        props: JsonObj = {
            "datastoreType": "AzureBlob",
            "accountName": "devstoreaccount1",
            "containerName": container,
            "endpoint": "core.windows.net",
            "protocol": "https",
            "credentials": {"credentialsType": "None"},
            "isDefault": bool(spec.get("default", False)),
            "description": spec.get("description"),
            "tags": {},
            "properties": {},
        }
        props = {k: v for k, v in props.items() if v is not None}
        issues = self.state.validator.validate({"properties": props}, "DatastoreResource")
        if issues:
            raise ValueError("invalid seed datastore: " + "; ".join(map(str, issues)))
        ws.datastores[name.lower()] = {
            "id": f"{ws.id}/datastores/{name}",
            "name": name,
            "type": f"{PROVIDER}/workspaces/datastores",
            "systemData": system_data(None),
            "properties": props,
        }
        self.state.blobs.ensure_container(container)

    def workspace(self, subscription: str, resource_group: str, name: str) -> Workspace:
        ws = self.state.workspace(subscription, resource_group, name)
        if ws is None:
            raise KeyError(name)
        return ws

    def _validated(self, body: JsonObj, definition: str, what: str) -> JsonObj:
        issues = self.state.validator.validate(body, definition)
        if issues:
            raise ValueError(f"invalid seed {what}: " + "; ".join(map(str, issues)))
        return copy.deepcopy(body)

    def seed_model_version(
        self, ws: Workspace, name: str, version: str, properties: JsonObj
    ) -> str:
        """Register a model version directly (no request counted). Returns its ARM id."""
        body = self._validated({"properties": properties}, "ModelVersionResource", "model version")
        with self.lock:
            c = ws.models.setdefault(
                name.lower(), ModelContainerRec(name, {"properties": {}}, system_data(None))
            )
            c.versions[version] = ModelVersionRec(version, body, system_data(None))
        return f"{ws.id}/models/{name}/versions/{version}"

    def seed_endpoint(
        self,
        ws: Workspace,
        name: str,
        definition: JsonObj,
        *,
        deployments: dict[str, JsonObj] | None = None,
        keys: dict[str, str] | None = None,
    ) -> None:
        """An endpoint and its deployments, all ``Succeeded``; traffic checked like a PUT."""
        body = self._validated(definition, "OnlineEndpointTrackedResource", "endpoint")
        ep = Endpoint(name=name, body=body, system_data=system_data(None), state="Succeeded")
        ep.keys = dict(keys) if keys else new_keys()
        for dep_name, dep_body in (deployments or {}).items():
            stored = self._validated(dep_body, "OnlineDeploymentTrackedResource", "deployment")
            ep.deployments[dep_name.lower()] = Deployment(
                name=dep_name, body=stored, system_data=system_data(None), state="Succeeded"
            )
        props = ci_get(body, "properties") or {}
        broken = rules.check(
            ci_get(props, "traffic"),
            ci_get(props, "mirrorTraffic"),
            [d.name for d in ep.deployments.values()],
        )
        if broken is not None:
            raise ValueError(f"invalid seed endpoint {name}: {broken}")
        with self.lock:
            ws.endpoints[name.lower()] = ep

    def seed(self, config: JsonObj) -> JsonObj:
        """Seed from the ``azureml`` section of a seed file; returns ids and keys."""
        out: JsonObj = {"workspaces": [], "endpoints": []}
        for spec in config.get("workspaces", []):
            ws = self.add_workspace(
                spec["subscriptionId"],
                spec["resourceGroup"],
                spec["name"],
                location=spec.get("location", "eastus"),
                datastores=spec.get("datastores"),
            )
            out["workspaces"].append(ws.id)
            for code_id, trainer in spec.get("trainers", {}).items():
                self.jobs.register_trainer(code_id, load_trainer(trainer))
            for model in spec.get("models", []):
                self.seed_model_version(
                    ws, model["name"], str(model["version"]), model["properties"]
                )
            for ep in spec.get("endpoints", []):
                self.seed_endpoint(
                    ws,
                    ep["name"],
                    ep["definition"],
                    deployments=ep.get("deployments"),
                    keys=ep.get("keys"),
                )
                view = self.online.endpoint_view(ws, ws.endpoints[ep["name"].lower()])
                out["endpoints"].append(
                    {
                        "id": view["id"],
                        "scoringUri": view["properties"]["scoringUri"],
                        "primaryKey": ws.endpoints[ep["name"].lower()].keys["primaryKey"],
                    }
                )
        return out

    # -- faults and helpers ----------------------------------------------------------------

    def fail_next_deployment(
        self,
        name: str | None = None,
        *,
        code: str = "DeploymentFailed",
        message: str = "Injected failure: the deployment's container did not become ready.",
    ) -> None:
        """The next deployment PUT (named ``name``, or any) ends ``Failed``."""
        with self.lock:
            self.state.failures.deployments.append((name, {"code": code, "message": message}))

    def fail_next_job(
        self,
        name: str | None = None,
        *,
        message: str = "Injected failure: the job's process exited with code 1.",
    ) -> None:
        """The next job created (named ``name``, or any) ends ``Failed`` without training."""
        with self.lock:
            self.state.failures.jobs.append((name, message))

    def job_not_responding(self, name: str, polls: int = 2, status: str = "NotResponding") -> None:
        """Once job ``name`` runs, its next ``polls`` GETs show ``status``, then it carries on."""
        with self.lock:
            self.state.failures.blips[name.lower()] = (status, polls)

    def job_output_uri(self, ws: Workspace, job: str, output: str) -> str | None:
        rec = ws.jobs.get(job.lower())
        if rec is None:
            return None
        props = rec.body["properties"]
        spec = (ci_get(props, "outputs") or {}).get(output)
        given = ci_get(spec, "uri") if isinstance(spec, dict) else None
        return str(given) if given else self.jobs.default_outputs(ws, rec.name, props).get(output)

    def wait_jobs_idle(self, timeout: float = 30.0) -> None:
        """Wait for running trainer threads (a test's teardown; seconds)."""
        with self.lock:
            threads = [
                j.thread
                for ws in self.state.workspaces.values()
                for j in ws.jobs.values()
                if j.thread
            ]
        for thread in threads:
            thread.join(timeout)
