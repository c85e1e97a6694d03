"""The Azure backend's apply lock: a lease on the ``lock`` blob of the container.

A lease is Azure's own mutual exclusion: only the holder of the lease ID can
renew or release it, and it expires by itself if its holder dies (we take
60-second leases and renew them every 20 s while the apply runs). The holder's
description is written in the blob's metadata so a blocked apply can name it;
``force-unlock LEASE_ID`` breaks the lease deliberately.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from azure.core import exceptions as core

from reconciler import errors
from reconciler.providers.azurecommon import blobs as blob_store
from reconciler.providers.azurecommon import sdk

LOCK_PATH = "lock"
LEASE_SECONDS = 60  # Azure allows 15-60 s (or infinite); finite, so a dead holder's lease lapses
RENEW_SECONDS = 20  # renew well before expiry
POLL_SECONDS = 1.0  # how often a waiting apply tries again


def _blob(store: blob_store.BlobStore) -> Any:
    store.ensure_container()
    blob = store.blob_client(LOCK_PATH)
    with (
        sdk.mapped("create lock blob", store.scrub),
        contextlib.suppress(core.ResourceExistsError, core.ResourceModifiedError),
    ):
        blob.upload_blob(b"", overwrite=False)
    return blob


def describe(metadata: dict[str, str]) -> str:
    since = metadata.get("since", "")
    age = ""
    if since:
        seconds = (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(since)).total_seconds()
        age = f", for {int(seconds)}s since {since}"
    return (
        f"{metadata.get('holder', '?')} (pid {metadata.get('pid', '?')} on "
        f"{metadata.get('host', '?')}{age}, lock ID {metadata.get('id', '?')})"
    )


@contextlib.contextmanager
def hold(
    store: blob_store.BlobStore,
    *,
    holder: str,
    timeout: float,
    on_wait: Callable[[str], None] = lambda _message: None,
) -> Iterator[None]:
    blob = _blob(store)
    deadline = time.monotonic() + timeout
    told = False
    while True:
        try:
            with sdk.mapped("acquire lock lease", store.scrub):
                try:
                    lease = blob.acquire_lease(lease_duration=LEASE_SECONDS)
                    break
                except core.HttpResponseError as e:
                    if e.status_code != 409:
                        raise
        except errors.ProviderError:
            raise
        if not told and timeout > 0:
            meta = dict(blob.get_blob_properties().metadata or {})
            on_wait(f"waiting up to {timeout:g}s for the lock held by {describe(meta)}")
            told = True
        if time.monotonic() >= deadline:
            meta = dict(blob.get_blob_properties().metadata or {})
            raise errors.LockError(
                f"state is locked by {describe(meta)}; waited {timeout:g}s (wait for it, "
                f"raise --lock-timeout, or 'retrain force-unlock {meta.get('id', '?')}')",
                where=f"{store.container}/{LOCK_PATH}",
            )
        time.sleep(POLL_SECONDS)
    info = {
        "holder": holder,
        "pid": str(os.getpid()),
        "host": socket.gethostname(),
        "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "id": lease.id,
    }
    with sdk.mapped("describe lock holder", store.scrub):
        blob.set_blob_metadata(info, lease=lease)
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(lease, stop), daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        with contextlib.suppress(core.AzureError):
            lease.release()


def _renew(lease: Any, stop: threading.Event) -> None:
    while not stop.wait(RENEW_SECONDS):
        with contextlib.suppress(core.AzureError):
            lease.renew()


def force_unlock(store: blob_store.BlobStore, lock_id: str) -> str:
    blob = _blob(store)
    with sdk.mapped("inspect lock", store.scrub):
        props = blob.get_blob_properties()
    meta = dict(props.metadata or {})
    if props.lease.state != "leased":
        raise errors.LockError("state is not locked", where=f"{store.container}/{LOCK_PATH}")
    if meta.get("id") != lock_id:
        raise errors.LockError(
            f"lock ID {lock_id} does not hold the lock; it is held by {describe(meta)}",
            where=f"{store.container}/{LOCK_PATH}",
        )
    from azure.storage.blob import BlobLeaseClient

    with sdk.mapped("break lock lease", store.scrub):
        BlobLeaseClient(blob).break_lease(lease_break_period=0)
    return describe(meta)
