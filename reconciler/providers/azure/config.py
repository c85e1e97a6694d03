"""The Azure backend's settings, from the manifest's ``backend.azure`` and the environment.

Every service URL is configurable (sovereign clouds, private endpoints, a local
fake) in the manifest, and overridable from the environment (``RETRAIN_AZURE_*``
below) so one manifest serves several clouds. So is the CA bundle:
``RETRAIN_AZURE_CA_BUNDLE``, else the manifest's ``caBundle``, else the standard
``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE`` variables, else the system store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reconciler import errors, model

ARM_URL = "https://management.azure.com"
CLASSIC_URL = "https://management.azureml.net"
POLL_SECONDS = 5.0  # BES samples poll once a second; 5 s is gentler on a fleet
JOB_TIMEOUT = 3600.0  # an hour: Studio training jobs are minutes, rarely more
RETRIES = 6  # with exponential backoff capped at 30 s: about 1.5 minutes of patience

# Environment overrides, for sovereign clouds, private endpoints and local fakes:
ENV_ARM = "RETRAIN_AZURE_RESOURCE_MANAGER"
ENV_CLASSIC = "RETRAIN_AZURE_CLASSIC_MANAGEMENT"
ENV_BES_HOST = "RETRAIN_AZURE_BES_HOST"  # replaces scheme://host of every BES URL
ENV_CA = "RETRAIN_AZURE_CA_BUNDLE"


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
    bes_host: str | None = None

    def bes_url(self, declared: str) -> str:
        """A trainer's BES URL, with its host replaced when ``RETRAIN_AZURE_BES_HOST`` says."""
        if not self.bes_host:
            return declared.rstrip("/")
        parts = urlsplit(declared)
        return f"{self.bes_host.rstrip('/')}{parts.path}".rstrip("/")


def from_section(
    azure: Mapping[str, Any], *, manifest_dir: Path, env: Mapping[str, str]
) -> AzureConfig:
    """Build the config from the manifest's ``backend.azure`` section; the manifest schema
    has already checked shapes."""
    if not azure:
        raise errors.ReconcilerError("backend azure needs a backend.azure section")
    endpoints = azure.get("endpoints") or {}
    auth = azure.get("auth") or {}
    arm_url = str(env.get(ENV_ARM) or endpoints.get("resourceManager", ARM_URL)).rstrip("/")
    classic_url = env.get(ENV_CLASSIC) or endpoints.get("classicManagement", CLASSIC_URL)
    storage = azure["storage"]
    return AzureConfig(
        subscription_id=str(azure["subscriptionId"]),
        resource_group=str(azure["resourceGroup"]),
        arm_url=arm_url,
        classic_url=str(classic_url).rstrip("/"),
        scope=str(auth.get("scope", f"{arm_url}/.default")),
        token_env=auth.get("tokenEnv"),
        verify=_verify(env.get(ENV_CA) or azure.get("caBundle"), manifest_dir, env),
        connection_string=storage["connectionString"],
        container=str(storage["container"]),
        poll_seconds=float(azure.get("pollSeconds", POLL_SECONDS)),
        job_timeout=float(azure.get("jobTimeout", JOB_TIMEOUT)),
        retries=int(azure.get("retries", RETRIES)),
        bes_host=env.get(ENV_BES_HOST) or None,
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
