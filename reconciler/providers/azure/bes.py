"""Training through a Studio training web service's Batch Execution Service (BES 2.0).

Outputs go to locations derived from the fingerprint, and the job itself is
recorded next to them (``models/FP/job.json``) *before* it is submitted: a
claim, written only if absent. So a retry, a re-run or a crash never starts a
second job for a model that is being or has been trained: the next run finds
the record and resumes that job (starting it if the crash came between submit
and start), or waits while a live claim is being turned into a job.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from reconciler import errors, fingerprint
from reconciler.providers import base, evaluation
from reconciler.providers.azure import backend
from reconciler.providers.azurecommon import blobs as blob_store
from reconciler.providers.azurecommon import http

API = "api-version=2.0"
STATUS = ("NotStarted", "Running", "Failed", "Cancelled", "Finished")  # BES's integer codes
CLAIM_TTL = 300.0  # seconds a claim without a job id is respected before it is taken over
DEFAULT_MODEL_OUTPUT = "output1"
DEFAULT_EVALUATION_OUTPUT = "output2"


def model_path(fp: str) -> str:
    return f"models/{fp}/model.ilearner"


def evaluation_path(fp: str) -> str:
    return f"models/{fp}/evaluation.csv"


def metadata_path(fp: str) -> str:
    return f"models/{fp}/metadata.json"


def job_path(fp: str) -> str:
    return f"models/{fp}/job.json"


def status_name(code: Any) -> str:
    """BES sends StatusCode as a name or as its index."""
    if isinstance(code, int) and 0 <= code < len(STATUS):
        return STATUS[code]
    if isinstance(code, str) and code.isdigit() and int(code) < len(STATUS):
        return STATUS[int(code)]
    return str(code)


class Trainer:
    """Runs BES jobs for training jobs; one instance per provider."""

    def __init__(
        self,
        client: http.Client,
        store: blob_store.BlobStore,
        *,
        poll: float,
        log: Callable[[str], None],
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        url_for: Callable[[str], str] = lambda url: url.rstrip("/"),
    ) -> None:
        self.url_for = url_for
        self.client = client
        self.store = store
        self.poll = poll
        self.log = log
        self.sleep = sleep
        self.clock = clock

    def train(self, job: base.TrainingJob) -> dict[str, Any]:
        """Train (or finish training) ``job``; returns the metadata to store."""
        spec = backend.bes(job.trainer)
        url = self.url_for(spec.url)
        key = spec.api_key.reveal() if spec.api_key is not None else ""
        job_id = self._job_for(job, url, key)
        deadline = self.clock() + job.trainer.timeout_seconds
        details = self._wait(url, key, job_id, deadline, job)
        return self._collect(job, job_id, details)

    # -- claim, submit, start ------------------------------------------------------
    def _job_for(self, job: base.TrainingJob, url: str, key: str) -> str:
        fp = job.fingerprint
        started = self.clock()
        # Names this attempt's claim: a claim write whose answer was lost is retried by the
        # storage SDK and then fails its own condition; reading back our token shows it is ours.
        token = uuid.uuid4().hex
        while True:
            found = self.store.read_with_etag(job_path(fp))
            if found is None:
                if self.store.write_text(job_path(fp), _claim(token), create_only=True):
                    return self._submit(job, url, key, self.store.read_with_etag(job_path(fp)))
                continue  # someone claimed it a moment ago: look again
            record, etag = json.loads(found[0]), found[1]
            if record.get("claim") == token and not record.get("job_id"):
                return self._submit(job, url, key, found)  # our own claim landed after all
            if record.get("job_id") and record.get("state") != "failed":
                return self._resume(record, url, key, fp)
            if record.get("state") == "failed" or _age(record) > CLAIM_TTL:
                if self.store.write_text(job_path(fp), _claim(token), etag=etag):
                    return self._submit(job, url, key, self.store.read_with_etag(job_path(fp)))
                continue
            if self.clock() - started > CLAIM_TTL:
                raise errors.TrainingError(
                    f"model {fingerprint.short(fp)} is claimed by "
                    f"{record.get('holder', '?')} but never submitted"
                )
            self.log(
                f"model {fingerprint.short(fp)} is being submitted by "
                f"{record.get('holder', '?')}; waiting"
            )
            self.sleep(self.poll)

    def _submit(
        self, job: base.TrainingJob, url: str, key: str, claimed: tuple[str, str] | None
    ) -> str:
        fp = job.fingerprint
        spec = backend.bes(job.trainer)
        outputs = {
            spec.model_output or DEFAULT_MODEL_OUTPUT: model_path(fp),
            spec.evaluation_output or DEFAULT_EVALUATION_OUTPUT: evaluation_path(fp),
        }
        request = {
            "Inputs": {name: self.store.reference(loc) for name, loc in job.inputs.items()},
            "Outputs": {
                name: self.store.reference(self.store.relative(path))
                for name, path in outputs.items()
            },
            "GlobalParameters": dict(job.parameters),
        }
        try:
            # Not idempotent (each submit creates a job), so never retried on a 5xx or a
            # reset; on failure the claim is released so the next run submits afresh.
            answer = self.client.request(
                "POST",
                f"{url}/jobs?{API}",
                what="submit BES job",
                token=key,
                body=request,
                ok=(200, 201),
            )
        except errors.ProviderError:
            self._mark_failed(fp)
            raise
        job_id = str(answer.json())
        record = {
            "job_id": job_id,
            "state": "submitted",
            "bes_url": url,
            "submitted_at": _now(),
            "holder": _holder(),
        }
        self.store.write_text(
            job_path(fp), json.dumps(record), etag=claimed[1] if claimed else None
        )
        self.log(f"submitted BES job {job_id} for model {fingerprint.short(fp)}")
        self._start(url, key, job_id)
        self.store.write_text(job_path(fp), json.dumps(record | {"state": "started"}))
        return job_id

    def _resume(self, record: dict[str, Any], url: str, key: str, fp: str) -> str:
        job_id = str(record["job_id"])
        self.log(
            f"resuming BES job {job_id} for model {fingerprint.short(fp)} (submitted "
            f"{record.get('submitted_at', '?')})"
        )
        if record.get("state") == "submitted":
            self._start(url, key, job_id)
        return job_id

    def _start(self, url: str, key: str, job_id: str) -> None:
        try:
            self.client.request(
                "POST",
                f"{url}/jobs/{job_id}/start?{API}",
                what="start BES job",
                token=key,
                ok=(200, 202, 204),
                idempotent=True,  # a second start answers CannotStartJob, tolerated below
            )
        except errors.ProviderError as e:
            if "CannotStartJob" not in str(e):
                raise  # anything but "already started"

    # -- poll and collect ----------------------------------------------------------
    def _wait(
        self, url: str, key: str, job_id: str, deadline: float, job: base.TrainingJob
    ) -> dict[str, Any]:
        while True:
            try:
                answer = self.client.request(
                    "GET", f"{url}/jobs/{job_id}?{API}", what="BES job status", token=key
                )
            except errors.ProviderError as e:
                # 404, or BES's own 400 "MissingJobId": the job is gone (expired, deleted).
                if not isinstance(e, errors.NotFound) and "MissingJobId" not in str(e):
                    raise
                self._mark_failed(job.fingerprint)  # so the next run submits a new job
                raise errors.TrainingError(
                    f"BES job {job_id} no longer exists; the next run submits a new one"
                ) from None
            body = answer.json()
            if not isinstance(body, dict):
                raise errors.TrainingError(f"BES job {job_id}: unexpected status body")
            state = status_name(body.get("StatusCode"))
            if state == "Finished":
                return body
            if state in ("Failed", "Cancelled"):
                self._mark_failed(job.fingerprint)
                details = str(body.get("Details") or "no details")[:500]
                raise errors.TrainingError(f"BES job {job_id} {state.lower()}: {details}")
            if state not in ("NotStarted", "Running"):
                raise errors.TrainingError(f"BES job {job_id}: unknown StatusCode {state!r}")
            if self.clock() >= deadline:
                self.client.request(
                    "DELETE",
                    f"{url}/jobs/{job_id}?{API}",
                    what="delete BES job",
                    token=key,
                    ok=(200, 202, 204, 404),
                )
                self._mark_failed(job.fingerprint)
                raise errors.TrainingError(
                    f"BES job {job_id} timed out after {job.trainer.timeout_seconds:g}s; deleted"
                )
            self.sleep(self.poll)

    def _mark_failed(self, fp: str) -> None:
        found = self.store.read_with_etag(job_path(fp))
        if found is not None:
            record = json.loads(found[0]) | {"state": "failed"}
            self.store.write_text(job_path(fp), json.dumps(record), etag=found[1])

    def _collect(
        self, job: base.TrainingJob, job_id: str, _status: dict[str, Any]
    ) -> dict[str, Any]:
        fp = job.fingerprint
        if not self.store.exists(model_path(fp)):
            raise errors.TrainingError(
                f"BES job {job_id} finished but wrote no model at "
                f"{self.store.relative(model_path(fp))}"
            )
        text = self.store.read_text(evaluation_path(fp))
        if text is None:
            raise errors.TrainingError(f"BES job {job_id} finished but wrote no evaluation")
        try:
            metrics = evaluation.parse(text)
        except evaluation.EvaluationError as e:
            raise errors.TrainingError(f"BES job {job_id}: {e}") from e
        return {
            "fingerprint": fp,
            "metrics": metrics,
            "trained_at": _now(),
            "lineage": {
                "trainer": job.trainer.name,
                "bes_url": backend.bes(job.trainer).url,
                "job_id": job_id,
                "inputs": dict(job.inputs),
                "recipe": dict(job.recipe),
                "version": job.version,
                "endpoints": list(job.endpoints),
            },
        }


def _claim(token: str) -> str:
    return json.dumps(
        {"state": "claimed", "claimed_at": _now(), "holder": _holder(), "claim": token}
    )


def _holder() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _age(record: dict[str, Any]) -> float:
    stamp = record.get("claimed_at") or record.get("submitted_at")
    if not isinstance(stamp, str):
        return float("inf")
    try:
        return (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(stamp)).total_seconds()
    except ValueError:
        return float("inf")
