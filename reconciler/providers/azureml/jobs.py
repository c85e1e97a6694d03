"""Training as an Azure ML command job, and registering its output as a model version.

The job's name is derived from the model's fingerprint, and its outputs go to
locations derived from it too, so every run computes the same names: a retry, a
re-run or a crash after submitting finds the job by name and watches it again (a
PUT of an existing job answers it, never a second run). Only when the job of that
name ended Failed or Canceled in an *earlier* run does a new attempt start, under
``NAME-2`` (and so on, at most ``ATTEMPTS``): a failure is never resubmitted within
one run, and two live jobs never train one model.

Status is polled until Completed, Failed or Canceled; NotResponding and Unknown
(and every other status) keep polling until the trainer's timeout, which is also the
job's ``limits.timeout``. A Failed job's error is reported, masked. The model is
registered as version ``FINGERPRINT`` of the backend's model, with the fingerprint
and the job in its tags and the metrics and lineage in its properties: registering
again is the same PUT, which the service answers 200 and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from reconciler import errors, fingerprint, model, redact
from reconciler.providers import base, common, evaluation
from reconciler.providers.azurecommon import blobs, polling
from reconciler.providers.azureml import arm, backend, config, names

ATTEMPTS = 5  # jobs of one model, each after an earlier run's failure, before we give up
TERMINAL_FAILED = frozenset({"Failed", "Canceled"})
METADATA = "retrain.metadata"  # the model version property holding metrics and lineage
FULL_FINGERPRINT = re.compile(r"[0-9a-f]{64}")  # a version retrain registered is named so
JOB_TAG = "retrain.job"
GRACE = 120.0  # seconds we poll past the job's own timeout, for the service to cancel it
ERROR_PROPERTY = "azureml.error"  # where the job's error is shown (the fake; run history else)


def output_path(fp: str, output: str) -> str:
    """Where in the datastore the job writes output ``output`` of model ``fp``."""
    return f"retrain/models/{fp}/{output}/"


def evaluation_blob(fp: str) -> str:
    return f"{output_path(fp, 'evaluation')}evaluation.csv"


def duration(seconds: float) -> str:
    """ISO 8601, as ``limits.timeout`` takes it."""
    return f"PT{max(1, int(seconds))}S"  # whole seconds, at least one: PT0S is no limit


class Trainer:
    """Runs command jobs and registers their models."""

    def __init__(
        self,
        ws: arm.Workspace,
        cfg: config.AzureMLConfig,
        datastore: Callable[[], blobs.BlobStore],
        *,
        scrub: redact.Redactor,
        log: Callable[[str], None],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ws = ws
        self.cfg = cfg
        self.datastore = datastore
        self.scrub = scrub
        self.log = log
        self.sleep = sleep

    def version_suffix(self, fp: str) -> str:
        return f"/models/{self.cfg.model_name}/versions/{fp}"

    def versions_suffix(self) -> str:
        return f"/models/{self.cfg.model_name}/versions"

    # -- the model store ---------------------------------------------------------
    def record_of(
        self, item: Mapping[str, Any], uri_for: Callable[[str], str]
    ) -> model.ModelRecord | None:
        """A listed model version as a record; None for one retrain did not register
        (its name is not a fingerprint, or it carries no retrain metadata)."""
        fp = str(item.get("name", ""))
        props = (item.get("properties") or {}).get("properties") or {}
        if not FULL_FINGERPRINT.fullmatch(fp) or METADATA not in props:
            return None
        return self.record_from(fp, item, uri_for(fp))

    def record(self, fp: str, uri: str) -> model.ModelRecord | None:
        """The registered model ``fp``, or None when it is not registered."""
        found = self.ws.get(self.version_suffix(fp), f"GET model version {fingerprint.short(fp)}")
        if found is None:
            return None
        return self.record_from(fp, found, uri)

    def record_from(self, fp: str, found: Mapping[str, Any], uri: str) -> model.ModelRecord:
        props = (found.get("properties") or {}).get("properties") or {}
        where = f"model {self.cfg.model_name}:{fingerprint.short(fp)}"
        if METADATA not in props:
            raise errors.ProviderError("model version has no retrain metadata", where=where)
        return common.model_record_from_text(fp, str(props[METADATA]), uri=uri, where=where)

    # -- training ----------------------------------------------------------------
    def train(self, job: base.TrainingJob) -> str:
        """Train ``job``'s model and register it; returns its metadata document."""
        spec = backend.command(job.trainer)
        name = self._claim(job, spec)
        self._watch(name, job)
        metrics = self._metrics(job.fingerprint, name)
        metadata = {
            "metrics": metrics,
            "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "lineage": {
                "job": name,
                "trainer": job.trainer.name,
                "endpoints": list(job.endpoints),
                "recipe": dict(job.recipe),
            },
        }
        text = json.dumps(metadata, sort_keys=True)
        self._register(job.fingerprint, name, text)
        return text

    def _claim(self, job: base.TrainingJob, spec: backend.Command) -> str:
        """The job training this model: one already submitted (resumed), else a new one."""
        for attempt in range(1, ATTEMPTS + 1):
            name = names.job_name(job.fingerprint, attempt)
            what = f"job {name}"
            found = self.ws.get(f"/jobs/{name}", f"GET {what}")
            status = str(((found or {}).get("properties") or {}).get("status", ""))
            if found is not None and status in TERMINAL_FAILED:
                continue  # an earlier run's failure: this run tries afresh, under a new name
            body = self._body(job, spec, name)
            if found is None:
                self.ws.put(f"/jobs/{name}", body, f"PUT {what}")
                self.log(f"training {fingerprint.short(job.fingerprint)}: submitted job {name}")
            else:
                self.log(f"training {fingerprint.short(job.fingerprint)}: resuming job {name}")
            return name
        raise errors.TrainingError(
            f"model {fingerprint.short(job.fingerprint)}: {ATTEMPTS} jobs failed; "
            f"delete job {names.job_name(job.fingerprint, ATTEMPTS)} to try again"
        )

    def _body(self, job: base.TrainingJob, spec: backend.Command, name: str) -> dict[str, Any]:
        fp = job.fingerprint
        datastore = f"azureml://datastores/{self.cfg.datastore}/paths/"
        inputs: dict[str, Any] = {
            key: {"jobInputType": "uri_file", "uri": f"{datastore}{location}"}
            for key, location in job.inputs.items()
        }
        for key, value in job.parameters.items():
            shown = value if isinstance(value, str) else json.dumps(value)
            inputs[key] = {"jobInputType": "literal", "value": shown}
        outputs = {
            out: {"jobOutputType": "uri_folder", "mode": "Upload", "uri": datastore + path}
            for out, path in (
                ("model", output_path(fp, "model")),
                ("evaluation", output_path(fp, "evaluation")),
            )
        }
        props: dict[str, Any] = {
            "jobType": "Command",
            "codeId": spec.code,
            "command": spec.command,
            "environmentId": spec.environment,
            "computeId": self._compute(spec.compute),
            "experimentName": spec.experiment,
            "displayName": f"retrain {fingerprint.short(fp)}",
            "tags": {model.TAG_MANAGED_BY: model.MANAGED_BY, model.TAG_FINGERPRINT: fp},
            "inputs": inputs,
            "outputs": outputs,
            "limits": {
                "jobLimitsType": "Command",
                "timeout": duration(job.trainer.timeout_seconds),
            },
        }
        if spec.instance_type:
            props["resources"] = {"instanceCount": 1, "instanceType": spec.instance_type}
        return {"properties": props}

    def _compute(self, compute: str) -> str:
        return compute if compute.startswith("/") else f"{self.cfg.workspace_id}/computes/{compute}"

    def _watch(self, name: str, job: base.TrainingJob) -> None:
        """Poll to a terminal status; Failed and Canceled are the job's error, masked."""
        deadline = time.monotonic() + job.trainer.timeout_seconds + GRACE
        backoff = polling.Backoff(self.cfg.poll_seconds)
        last = ""
        while True:
            looked, retry_after = self.ws.look(f"/jobs/{name}", f"GET job {name}")
            found = looked or {}
            props = found.get("properties") or {}
            status = str(props.get("status", ""))
            if status != last:
                self.log(f"training {fingerprint.short(job.fingerprint)}: job {name} {status}")
                last = status
            if status == "Completed":
                return
            if status in TERMINAL_FAILED:
                why = (props.get("properties") or {}).get(ERROR_PROPERTY) or "see the job's logs"
                raise errors.TrainingError(self.scrub(f"job {name} {status}: {why}")[:600])
            if time.monotonic() > deadline:
                raise errors.TrainingError(f"job {name} still {status} after its timeout")
            self.sleep(backoff.next(retry_after))

    def _metrics(self, fp: str, name: str) -> Mapping[str, float]:
        text = self.datastore().read_text(evaluation_blob(fp))
        if text is None:
            raise errors.TrainingError(
                f"job {name} completed but wrote no evaluation.csv to outputs.evaluation"
            )
        try:
            return evaluation.parse(text)
        except ValueError as e:
            raise errors.TrainingError(f"job {name}: evaluation.csv: {e}") from e

    def _register(self, fp: str, name: str, metadata: str) -> None:
        body = {
            "properties": {
                "modelUri": f"azureml://datastores/{self.cfg.datastore}/paths/"
                + output_path(fp, "model"),
                "modelType": "custom_model",
                "jobName": name,
                "description": f"trained by retrain from fingerprint {fp}",
                "tags": {model.TAG_FINGERPRINT: fp, JOB_TAG: name},
                "properties": {METADATA: metadata},
            }
        }
        self.ws.put(self.version_suffix(fp), body, f"PUT model version {fingerprint.short(fp)}")
