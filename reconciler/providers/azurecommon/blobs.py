"""Blob storage: training inputs, the model store, job records, history and the lock.

Layout in the backend's container (all derived from fingerprints, so every
run computes the same names):

- ``models/FP/model.ilearner`` and ``models/FP/evaluation.csv``: BES outputs;
- ``models/FP/metadata.json``: metrics and lineage, written last (its presence
  means the model is complete);
- ``models/FP/job.json``: the BES job training FP (claimed before submitting);
- ``state/classic.json``: ownership records of classic endpoints (they have no tags);
- ``history.jsonl``: an append blob, one line per change; ``lock``: leased by an apply.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import threading
from typing import Any

from azure.core import exceptions as core
from azure.storage.blob import (
    BlobSasPermissions,
    BlobServiceClient,
    ContentSettings,
    generate_blob_sas,
)

from reconciler import errors, redact
from reconciler.providers.azurecommon import sdk

SAS_HOURS = 24 * 365  # a classic endpoint reads its model via this SAS for as long as it serves
CHUNK = 4 << 20  # bytes per read when hashing a blob that has no stored MD5
APPEND_RACES = 5  # appends refused because the blob grew meanwhile, before giving up
PRECONDITION_FAILED = 412  # HTTP status of AppendPositionConditionNotMet


def parse_connection_string(text: str) -> dict[str, str]:
    parts = (p.split("=", 1) for p in text.split(";") if "=" in p)
    return {k.strip(): v.strip() for k, v in parts}


class BlobStore:
    """One container in one storage account."""

    def __init__(
        self,
        connection_string: str,
        container: str,
        *,
        verify: str | bool,
        retries: int,
        scrub: redact.Redactor,
    ) -> None:
        self.scrub = scrub
        self.container = container
        self.parts = parse_connection_string(connection_string)
        self.connection_string = connection_string
        with sdk.mapped("blob storage connection string", scrub):
            try:
                self.service = BlobServiceClient.from_connection_string(
                    connection_string,
                    connection_verify=verify,
                    retry_total=retries,
                )
            except ValueError as e:  # the SDK's word for a malformed string: ours is one line
                raise errors.ProviderError(
                    f"the storage connection string is malformed: {scrub(str(e))[:200]}"
                ) from e
        self._ready = False
        self._append_lock = threading.Lock()

    # -- names ---------------------------------------------------------------
    @property
    def account_url(self) -> str:
        return str(self.service.url).rstrip("/") + "/"

    def url(self, path: str, container: str | None = None) -> str:
        """The blob's URL without any SAS (what a web service definition names)."""
        return f"{self.account_url}{container or self.container}/{path}"

    def relative(self, path: str) -> str:
        """``container/path``: BES's RelativeLocation."""
        return f"{self.container}/{path}"

    def reference(self, relative: str) -> dict[str, Any]:
        """A BES ``AzureBlobDataReference`` (connection string included: a secret)."""
        return {"ConnectionString": self.connection_string, "RelativeLocation": relative}

    def sas(self, path: str) -> str:
        """A read-only SAS (``?sv=...&sig=...``) for one blob in our container."""
        key = self.parts.get("AccountKey")
        if not key:
            raise errors.ProviderError(
                "the storage connection string has no AccountKey, "
                "needed to sign read access for classic endpoints"
            )
        token = generate_blob_sas(
            account_name=self.parts.get("AccountName", ""),
            container_name=self.container,
            blob_name=path,
            account_key=key,
            permission=BlobSasPermissions(read=True),
            expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=SAS_HOURS),
        )
        return f"?{token}"

    # -- reads ---------------------------------------------------------------
    def digest(self, location: str) -> str:
        """The content hash of ``container/path``: its MD5 when stored, else a sha256 read."""
        container, _, name = location.partition("/")
        blob = self.service.get_blob_client(container, name)
        with sdk.mapped(f"input blob {location}", self.scrub):
            props = blob.get_blob_properties()
            md5 = props.content_settings.content_md5
            if md5:
                return f"md5:{bytes(md5).hex()}"
            h = hashlib.sha256()
            for chunk in blob.download_blob().chunks():
                h.update(chunk)
            return f"sha256:{h.hexdigest()}"

    def read_text(self, path: str) -> str | None:
        """A blob in our container as text, or None when it does not exist."""
        blob = self.service.get_blob_client(self.container, path)
        try:
            with sdk.mapped(f"read blob {self.relative(path)}", self.scrub):
                data: bytes = blob.download_blob().readall()
        except errors.NotFound:
            return None
        return data.decode("utf-8")

    def read_with_etag(self, path: str) -> tuple[str, str] | None:
        blob = self.service.get_blob_client(self.container, path)
        try:
            with sdk.mapped(f"read blob {self.relative(path)}", self.scrub):
                downloader = blob.download_blob()
                data: bytes = downloader.readall()
                etag = str(downloader.properties.etag)
        except errors.NotFound:
            return None
        return data.decode("utf-8"), etag

    def exists(self, path: str) -> bool:
        blob = self.service.get_blob_client(self.container, path)
        with sdk.mapped(f"check blob {self.relative(path)}", self.scrub):
            return bool(blob.exists())

    # -- writes --------------------------------------------------------------
    def ensure_container(self) -> None:
        if self._ready:
            return
        with (
            sdk.mapped(f"create container {self.container}", self.scrub),
            contextlib.suppress(core.ResourceExistsError),
        ):
            self.service.create_container(self.container)
        self._ready = True

    def write_text(
        self, path: str, text: str, *, etag: str | None = None, create_only: bool = False
    ) -> bool:
        """Write a blob; with ``etag`` or ``create_only``, only if nobody wrote first
        (returns False when someone did)."""
        self.ensure_container()
        blob = self.service.get_blob_client(self.container, path)
        kwargs: dict[str, Any] = {"overwrite": True}
        if create_only:
            kwargs["if_none_match"] = "*"
        elif etag is not None:
            kwargs.update(etag=etag, match_condition=_if_match())
        with sdk.mapped(f"write blob {self.relative(path)}", self.scrub):
            try:
                blob.upload_blob(
                    text.encode("utf-8"),
                    content_settings=ContentSettings(content_type="application/json"),
                    **kwargs,
                )
            except (core.ResourceExistsError, core.ResourceModifiedError):
                return False  # the condition failed: someone else wrote first
        return True

    def append_line(self, path: str, line: str) -> None:
        """Append one line, exactly once. The storage SDK retries an append whose answer
        was lost, which would write the line twice; so each append is conditional on the
        blob's length, and a refused one whose line is already there at that length is
        the earlier attempt having landed."""
        self.ensure_container()
        blob = self.service.get_blob_client(self.container, path)
        data = (line + "\n").encode("utf-8")
        # One apply records its parallel updates from several threads: take turns, so the
        # length condition only ever meets another process (kept out by the apply lock).
        with self._append_lock, sdk.mapped(f"append to {self.relative(path)}", self.scrub):
            with contextlib.suppress(core.ResourceExistsError, core.ResourceModifiedError):
                blob.create_append_blob(if_none_match="*")
            for _ in range(APPEND_RACES):
                size = int(blob.get_blob_properties().size)
                try:
                    blob.append_block(data, appendpos_condition=size)
                    return
                except core.HttpResponseError as e:
                    if e.status_code != PRECONDITION_FAILED:
                        raise
                if blob.download_blob(offset=size, length=len(data)).readall() == data:
                    return  # our own earlier attempt landed; its retry was refused
        raise errors.ProviderError(
            f"append to {self.relative(path)}: the blob kept changing under us", where=path
        )

    def names(self, prefix: str) -> list[str]:
        """The names of the container's blobs under ``prefix`` (one paged list)."""
        with sdk.mapped(f"list blobs under {prefix}", self.scrub):
            container = self.service.get_container_client(self.container)
            try:
                return [str(n) for n in container.list_blob_names(name_starts_with=prefix)]
            except core.ResourceNotFoundError:
                return []

    def delete(self, path: str) -> None:
        """Delete one blob; one already gone is fine."""
        gone = contextlib.suppress(core.ResourceNotFoundError)
        with sdk.mapped(f"delete blob {path}", self.scrub), gone:
            self.blob_client(path).delete_blob()

    def upload(self, path: str, data: bytes) -> None:
        """Upload bytes (with their MD5, so digests need no re-read)."""
        self.ensure_container()
        blob = self.service.get_blob_client(self.container, path)
        md5 = hashlib.md5(data, usedforsecurity=False).digest()
        with sdk.mapped(f"upload {self.relative(path)}", self.scrub):
            blob.upload_blob(
                data, overwrite=True, content_settings=ContentSettings(content_md5=bytearray(md5))
            )

    def blob_client(self, path: str) -> Any:
        return self.service.get_blob_client(self.container, path)


def _if_match() -> Any:
    from azure.core import MatchConditions

    return MatchConditions.IfNotModified
