"""The Azure backend's settings, from the manifest's ``backend.azure`` and the environment.

Every service URL is configurable (sovereign clouds, private endpoints, a local
fake), and so is the CA bundle: the manifest's ``caBundle``, else the standard
``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE`` variables, else the system store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler import errors, model

ARM_URL = "https://management.azure.com"
CLASSIC_URL = "https://management.azureml.net"
POLL_SECONDS = 5.0  # BES samples poll once a second; 5 s is gentler on a fleet
JOB_TIMEOUT = 3600.0  # an hour: Studio training jobs are minutes, rarely more
RETRIES = 6  # with exponential backoff capped at 30 s: about 1.5 minutes of patience


@dataclass(frozen=True, slots=True)
class AzureConfig:
    subscription_id: str
    resource_group: str
    arm_url: str
    classic_url: str
    scope: str
    token_env: str | None
    verify: str | bool
    connection_string: model.Secret
    container: str
    poll_seconds: float
    job_timeout: float
    retries: int


def from_options(
    options: Mapping[str, Any], *, manifest_dir: Path, env: Mapping[str, str]
) -> AzureConfig:
    """Build the config; the manifest schema has already checked shapes."""
    azure = options.get("azure")
    if not isinstance(azure, Mapping):
        raise errors.ReconcilerError("backend azure needs a backend.azure section")
    endpoints = azure.get("endpoints") or {}
    auth = azure.get("auth") or {}
    arm_url = str(endpoints.get("resourceManager", ARM_URL)).rstrip("/")
    storage = azure["storage"]
    return AzureConfig(
        subscription_id=str(azure["subscriptionId"]),
        resource_group=str(azure["resourceGroup"]),
        arm_url=arm_url,
        classic_url=str(endpoints.get("classicManagement", CLASSIC_URL)).rstrip("/"),
        scope=str(auth.get("scope", f"{arm_url}/.default")),
        token_env=auth.get("tokenEnv"),
        verify=_verify(azure.get("caBundle"), manifest_dir, env),
        connection_string=storage["connectionString"],
        container=str(storage["container"]),
        poll_seconds=float(azure.get("pollSeconds", POLL_SECONDS)),
        job_timeout=float(azure.get("jobTimeout", JOB_TIMEOUT)),
        retries=int(azure.get("retries", RETRIES)),
    )


def _verify(ca_bundle: Any, manifest_dir: Path, env: Mapping[str, str]) -> str | bool:
    """What to pass as ``verify=``: a CA bundle path, or True for the system store."""
    if ca_bundle:
        path = (manifest_dir / str(ca_bundle)).resolve()
        if not path.is_file():
            raise errors.ReconcilerError(
                f"CA bundle not found: {ca_bundle}", where="backend.azure.caBundle"
            )
        return str(path)
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        if env.get(name):
            return env[name]
    return True
