"""The azureml backend's settings, from the manifest's ``backend.azureml`` and the environment.

As for the classic backend, every address is configurable in the manifest and
overridable from the environment (``RETRAIN_AZUREML_*``), for sovereign clouds,
private endpoints and the local fake; the CA bundle likewise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler import errors, model

ARM_URL = "https://management.azure.com"
API_VERSION = "2025-12-01"  # the swagger subset's: mfe.json stable/2025-12-01
POLL_SECONDS = 5.0  # between job and operation polls; Azure's own Retry-After is 10 s or more
RETRIES = 6  # with exponential backoff capped at 30 s: about 1.5 minutes of patience
PROVIDER = "Microsoft.MachineLearningServices"

ENV_ARM = "RETRAIN_AZUREML_RESOURCE_MANAGER"
ENV_CA = "RETRAIN_AZUREML_CA_BUNDLE"


@dataclass(frozen=True, slots=True)
class AzureMLConfig:
    subscription_id: str
    resource_group: str
    workspace: str
    arm_url: str
    scope: str
    token_env: str | None
    verify: str | bool
    connection_string: model.Secret
    state_container: str
    datastore: str
    model_name: str
    poll_seconds: float
    retries: int

    @property
    def workspace_id(self) -> str:
        """The workspace's ARM id: every resource here lives under it."""
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{PROVIDER}/workspaces/{self.workspace}"
        )

    def url(self, suffix: str) -> str:
        """The Resource Manager URL of ``suffix`` under the workspace, api-version set."""
        sep = "&" if "?" in suffix else "?"
        return f"{self.arm_url}{self.workspace_id}{suffix}{sep}api-version={API_VERSION}"


def from_section(
    section: Mapping[str, Any], *, manifest_dir: Path, env: Mapping[str, str]
) -> AzureMLConfig:
    """The config of a manifest's ``backend.azureml``; the schema has checked shapes."""
    if not section:
        raise errors.ReconcilerError("backend azureml needs a backend.azureml section")
    endpoints = section.get("endpoints") or {}
    auth = section.get("auth") or {}
    arm_url = str(env.get(ENV_ARM) or endpoints.get("resourceManager", ARM_URL)).rstrip("/")
    storage = section["storage"]
    return AzureMLConfig(
        subscription_id=str(section["subscriptionId"]),
        resource_group=str(section["resourceGroup"]),
        workspace=str(section["workspace"]),
        arm_url=arm_url,
        scope=str(auth.get("scope", f"{arm_url}/.default")),
        token_env=auth.get("tokenEnv"),
        verify=_verify(env.get(ENV_CA) or section.get("caBundle"), manifest_dir, env),
        connection_string=storage["connectionString"],
        state_container=str(storage.get("container", "retrain")),
        datastore=str(section.get("datastore", "workspaceblobstore")),
        model_name=str(section.get("modelName", "retrain")),
        poll_seconds=float(section.get("pollSeconds", POLL_SECONDS)),
        retries=int(section.get("retries", RETRIES)),
    )


def _verify(ca_bundle: Any, manifest_dir: Path, env: Mapping[str, str]) -> str | bool:
    """What to pass as ``verify=``: a CA bundle path, or True for the system store."""
    if ca_bundle:
        path = (manifest_dir / str(ca_bundle)).resolve()
        if not path.is_file():
            raise errors.ReconcilerError(
                f"CA bundle not found: {ca_bundle}", where="backend.azureml.caBundle"
            )
        return str(path)
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        if env.get(name):
            return env[name]
    return True
