"""A content-addressed model store on disk.

``models/<fingerprint>/`` holds the trained model (``model.ilearner``, opaque
bytes: the store never deserialises it), the evaluation output and
``metadata.json`` (metrics, lineage, time). Entries appear atomically — a job
trains in a scratch directory that is renamed into place — so a crash never
leaves a half-written model that a later run would trust.

A scratch directory (``.job-<fp12>-<random>``) is held with a shared ``flock`` by
every process working in it (the apply and its trainer's supervisor); the kernel
drops the lock when they die, however they die. ``sweep`` removes exactly the
scratch directories nobody holds: those of dead runs.

A model is named only by its canonical URI, ``local://models/<fp>/model.ilearner``:
``resolve`` refuses anything else (another scheme or host, ``..``, an absolute
path, another file name), so no URI can lead outside the store.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reconciler import errors, fingerprint, model
from reconciler.providers import common
from reconciler.providers.local import safefs

URI_PREFIX = "local://models/"
MODEL_FILE = "model.ilearner"
EVALUATION_FILE = "evaluation.csv"
METADATA_FILE = "metadata.json"
FINGERPRINT = common.FINGERPRINT  # matched whole (fullmatch): "$" would admit a newline
SCRATCH_PREFIX = ".job-"


def uri_for(fp: str) -> str:
    """Where the model with fingerprint ``fp`` lives, as web service definitions name it."""
    return f"{URI_PREFIX}{fp}/{MODEL_FILE}"


class ModelStore:
    """Models by fingerprint under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, fp: str) -> Path:
        if not FINGERPRINT.fullmatch(fp):
            raise errors.ProviderError(f"not a model fingerprint: {fp[:80]!r}")
        return self.root / fp

    def resolve(self, uri: str) -> Path:
        """The model file behind a canonical ``local://models/<fp>/model.ilearner`` URI."""
        fp = fingerprint_of(uri)
        if fp is None:
            raise errors.ProviderError(
                f"not a model location of this store: {uri[:200]} "
                f"(models are named {URI_PREFIX}<fingerprint>/{MODEL_FILE})"
            )
        return self.path(fp) / MODEL_FILE

    def get(self, fp: str) -> model.ModelRecord | None:
        """The stored model, or None: not a fingerprint, never stored, or its files gone.
        Its files are read as state files (``safefs``): bounded, no symlinks, nothing
        reached through a link out of the store."""
        if not FINGERPRINT.fullmatch(fp):
            return None  # e.g. a hand-edited tag: the planner then sees drift
        entry = self.path(fp)
        # The store's own folder must not lead out of the state directory it sits in.
        safefs.inside(self.root / fp, root=self.root.parent, what="model store")
        if not safefs.is_regular_file(entry / MODEL_FILE, root=self.root, what="model file"):
            return None
        meta = entry / METADATA_FILE
        text = safefs.read_text(
            meta, root=self.root, limit=safefs.METADATA_LIMIT, what="model metadata"
        )
        if text is None:
            return None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise errors.ProviderError(
                f"model store entry is unreadable: {str(e)[:200] or type(e).__name__}",
                where=str(meta),
            ) from e
        return common.model_record(fp, data, uri=uri_for(fp), where=str(meta))

    def get_many(self, fps: Iterable[str]) -> dict[str, model.ModelRecord]:
        found = {fp: self.get(fp) for fp in fps}
        return {fp: rec for fp, rec in found.items() if rec is not None}

    def scratch(self, fp: str) -> tuple[Path, int]:
        """A fresh directory for training model ``fp``, inside the store's filesystem, and
        the descriptor that holds it (close it when done; ``sweep`` keeps it until then)."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{fp[:12]}-", dir=self.root))
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_SH)
        return path, fd

    def sweep(self) -> list[str]:
        """Remove the scratch directories of dead runs; returns their names."""
        removed: list[str] = []
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return removed
        for entry in entries:
            if entry.name.startswith(SCRATCH_PREFIX) and _unheld(Path(entry.path)):
                removed.append(entry.name)
        return removed

    def commit(self, fp: str, scratch: Path, metadata: Mapping[str, Any]) -> model.ModelRecord:
        """Publish a finished job's directory as the model ``fp`` (atomic rename)."""
        (scratch / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))
        target = self.path(fp)
        if target.exists() and self.get(fp) is None:
            # A damaged entry (files deleted by hand): set it aside, atomically, first.
            os.rename(target, target.with_name(f".broken-{fp}-{os.getpid()}-{id(scratch)}"))
        try:
            os.rename(scratch, target)
        except OSError:
            if self.get(fp) is None:
                raise
            shutil.rmtree(scratch, ignore_errors=True)  # a concurrent run stored it first
        record = self.get(fp)
        if record is None:
            raise errors.ProviderError(
                f"model {fingerprint.short(fp)} vanished right after it was stored",
                where=str(target),
            )
        return record


def fingerprint_of(uri: str) -> str | None:
    """The fingerprint a canonical model URI names; None for any other string."""
    return common.canonical_fingerprint(uri, uri_for)


def _unheld(path: Path) -> bool:
    """Remove ``path`` if no live process holds it (a symlink or file is just removed)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()  # not a directory of ours (a symlink, a stray file)
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        shutil.rmtree(path, ignore_errors=True)
        return True
    except BlockingIOError:
        return False  # a live run's
    finally:
        os.close(fd)
