"""The trainer side of a command job: download inputs, run the trainer, upload outputs.

Why apart from :mod:`.jobs`: the wire rules (status over polls, idempotent PUT, cancel) and the
work a job does in its background thread are separate concerns; the thread runs without the
fake's lock and touches the job record only through ``outcome``, ``cancel`` and ``done``. The
trainer contract and the output layout are described in :mod:`.jobs`.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fakes.swagger import ci_get

from .blobs import BlobRef, BlobStore, parse_datastore_uri
from .state import JobRec

log = logging.getLogger(__name__)

JsonObj = dict[str, Any]
Trainer = Callable[..., Any]

FOLDER_TYPES = frozenset({"custom_model", "mlflow_model", "triton_model", "uri_folder", "mltable"})
MODEL_FILE = "model"
EVALUATION_FILE = "evaluation.csv"


class JobRunner:
    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    def run(self, job: JobRec, trainer: Trainer | None, code_id: str, plan: JsonObj) -> None:
        try:
            if trainer is None:
                raise RuntimeError(f"no trainer is registered for codeId {code_id!r}")
            with tempfile.TemporaryDirectory(prefix="retrain-aml-job-") as tmp:
                self._train(job, trainer, plan, Path(tmp))
            if job.cancel.is_set():
                job.outcome = "Canceled"
        except Exception as exc:  # the job fails with the trainer's message, as a real job would
            log.info("job %s failed: %s", job.name, exc)
            job.outcome = f"Failed:{type(exc).__name__}: {exc}"
        finally:
            job.done.set()

    def _resolve(self, plan: JsonObj, uri: str) -> tuple[str, BlobRef]:
        ref = parse_datastore_uri(uri)
        if ref is None:
            raise ValueError(f"{uri!r} is not an azureml://datastores/... path")
        container = plan["containers"].get(ref.datastore.lower())
        if container is None:
            raise ValueError(f"datastore {ref.datastore!r} does not exist in the workspace")
        return container, ref

    def _train(self, job: JobRec, trainer: Trainer, plan: JsonObj, tmp: Path) -> None:
        inputs: dict[str, Path] = {}
        parameters: dict[str, Any] = {}
        for name, spec in plan["inputs"].items():
            kind = str(ci_get(spec, "jobInputType") or "").lower()
            if kind == "literal":
                parameters[name] = ci_get(spec, "value")
                continue
            container, ref = self._resolve(plan, str(ci_get(spec, "uri")))
            folder = kind in FOLDER_TYPES
            dest = tmp / "inputs" / name / ("" if folder else Path(ref.path).name or name)
            inputs[name] = self.blobs.download(container, ref.path, dest, folder=folder)
        paths = {
            name: self._local_output(tmp, name, spec) for name, (spec, _) in plan["outputs"].items()
        }
        model = paths.get("model", tmp / "discard" / MODEL_FILE)
        evaluation = paths.get("evaluation", tmp / "discard" / EVALUATION_FILE)
        model.parent.mkdir(parents=True, exist_ok=True)
        evaluation.parent.mkdir(parents=True, exist_ok=True)
        trainer(inputs=inputs, parameters=parameters, model_path=model, evaluation_path=evaluation)
        if job.cancel.is_set():
            return
        for name, (spec, uri) in plan["outputs"].items():
            container, ref = self._resolve(plan, str(uri))
            src = paths[name]
            if self._is_folder(spec):
                self.blobs.upload_tree(container, ref.path, src.parent)
            elif src.exists():
                self.blobs.write(container, ref.path, src.read_bytes())

    @staticmethod
    def _is_folder(spec: JsonObj) -> bool:
        return str(ci_get(spec, "jobOutputType") or "").lower() in FOLDER_TYPES

    def _local_output(self, tmp: Path, name: str, spec: JsonObj) -> Path:
        base = tmp / "outputs" / name
        if self._is_folder(spec):
            return base / (EVALUATION_FILE if name == "evaluation" else MODEL_FILE)
        return base / name
