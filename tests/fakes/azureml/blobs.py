"""Datastores and ``azureml://`` URIs, resolved to real blobs in Azurite.

Why: command job inputs, job outputs and registered model versions all name their bytes with
``azureml://datastores/<name>/paths/<path>`` (reference §1.4), and a workspace's datastore is an
Azure Blob container. The fake resolves those names to the container of the seeded
``AzureBlobDatastore`` in the one Azurite account it was given, so jobs read and write, and the
scoring URI loads, the same bytes a test uploaded or a job produced. Forms understood:

* ``azureml://datastores/<ds>/paths/<path>`` (short form);
* ``azureml://subscriptions/<s>/resourcegroups/<rg>/workspaces/<ws>/datastores/<ds>/paths/<p>``;
* ``azureml://jobs/<job>/outputs/<output>[/paths/<p>]`` (a job's output, as the docs' model
  path form; resolved through the job's output location).

Anything else (an ``https://`` URL to a real account, ``runs:/``) is refused: a test must never
reach the network.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JsonObj = dict[str, Any]

_SHORT = re.compile(r"azureml://datastores/(?P<ds>[^/]+)/paths/(?P<path>.*)", re.I)
_LONG = re.compile(
    r"azureml://subscriptions/[^/]+/resourcegroups/[^/]+/workspaces/[^/]+"
    r"/datastores/(?P<ds>[^/]+)/paths/(?P<path>.*)",
    re.I,
)
_JOB = re.compile(
    r"azureml://jobs/(?P<job>[^/]+)/outputs/(?P<out>[^/]+)(?:/paths/(?P<path>.*))?", re.I
)
# Seconds a blob round-trip to the emulator may take before the caller fails.
BLOB_TIMEOUT_S = 30


@dataclass(frozen=True)
class BlobRef:
    """A datastore path: a container and a blob name or prefix (no leading slash)."""

    datastore: str
    path: str


def parse_datastore_uri(uri: str) -> BlobRef | None:
    for pattern in (_SHORT, _LONG):
        m = pattern.fullmatch(uri.strip())
        if m:
            return BlobRef(m["ds"], m["path"].lstrip("/"))
    return None


def parse_job_output_uri(uri: str) -> tuple[str, str, str] | None:
    """``azureml://jobs/<job>/outputs/<out>/paths/<p>`` → (job, output, sub-path)."""
    m = _JOB.fullmatch(uri.strip())
    return None if m is None else (m["job"], m["out"], (m["path"] or "").lstrip("/"))


class BlobStore:
    """Reads and writes the blobs behind datastores (one Azurite account)."""

    def __init__(self, connection_string: str | None) -> None:
        self.connection_string = connection_string

    def _service(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        if not self.connection_string:
            raise RuntimeError("no blob storage configured (start the fake with Azurite)")
        return BlobServiceClient.from_connection_string(
            self.connection_string,
            connection_timeout=BLOB_TIMEOUT_S,
            read_timeout=BLOB_TIMEOUT_S,
        )

    def ensure_container(self, container: str) -> None:
        from azure.core.exceptions import ResourceExistsError

        if not self.connection_string:
            return
        with contextlib.suppress(ResourceExistsError):
            self._service().create_container(container)

    def read(self, container: str, name: str) -> bytes:
        return bytes(self._service().get_blob_client(container, name).download_blob().readall())

    def write(self, container: str, name: str, data: bytes) -> None:
        self.ensure_container(container)
        self._service().get_blob_client(container, name).upload_blob(data, overwrite=True)

    def list(self, container: str, prefix: str) -> list[str]:
        client = self._service().get_container_client(container)
        return sorted(b.name for b in client.list_blobs(name_starts_with=prefix))

    def exists(self, container: str, name: str) -> bool:
        return bool(self._service().get_blob_client(container, name).exists())

    def download(self, container: str, path: str, dest: Path, *, folder: bool) -> Path:
        """A blob (``folder`` False) or every blob under a prefix into ``dest``."""
        if not folder:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(self.read(container, path))
            return dest
        prefix = path.rstrip("/") + "/" if path.strip("/") else ""
        dest.mkdir(parents=True, exist_ok=True)
        for name in self.list(container, prefix):
            target = dest / name[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.read(container, name))
        return dest

    def upload_tree(self, container: str, path: str, src: Path) -> None:
        """A file to ``path``, or a folder's files under the ``path`` prefix."""
        if src.is_file():
            self.write(container, path, src.read_bytes())
            return
        prefix = path.rstrip("/")
        for file in sorted(p for p in src.rglob("*") if p.is_file()):
            rel = file.relative_to(src).as_posix()
            self.write(container, f"{prefix}/{rel}" if prefix else rel, file.read_bytes())
