"""Fake Batch Execution Service (BES) 2.0 for Azure ML Studio *training* web services.

Why: retraining in Studio is "submit a BES job to the training web service, start it, poll it,
read the outputs named in Results" (reference §3). The reconciler's fingerprinting, dedup
("N endpoints, one job"), crash-safety and gate logic only mean something if jobs really run
and really write blobs. So a job here really trains: after a configurable delay a registered
Python ``trainer(inputs, global_parameters) -> outputs`` runs in a background thread, reading
each input blob from (and writing each output blob to) real blob storage, normally Azurite,
through ``azure-storage-blob``. Results carry a real read SAS made by ``generate_blob_sas``.

Wire behaviour (reference §3, §4.5):

* ``POST {base}/jobs?api-version=2.0`` → 200 with the job id as a JSON *string*.
* ``POST {base}/jobs/{id}/start?api-version=2.0`` → 204; a second start → 400
  ``InvalidOperation`` / ``CannotStartJob``.
* ``GET {base}/jobs/{id}?api-version=2.0`` → ``{"StatusCode", "Results", "Details"}``;
  StatusCode as a string (default) or the integer 0-4 (``status_code_format="int"``).
* ``DELETE {base}/jobs/{id}?api-version=2.0`` → 204; a running job ends ``Cancelled``.
* Auth: ``Authorization: Bearer <api key>`` of that service (primary or secondary), else 401.
* Validation errors use the documented codes inside the ``BadArgument`` envelope:
  ``DuplicateInputInBatchCall``, ``BatchJobInputsNotSpecified``, ``InvalidBlobConnectionString``,
  ``InvalidOutputOverrideName``, ``InvalidBlobExtension`` (an output configured as the *model
  output* must end in ``.ilearner``), ``MissingRequiredGlobalParameters``, ``BlobNotFound``,
  ``RequestBodyInvalid``, ``MissingJobId``.

Safety: blob endpoints must be loopback; a connection string or BaseLocation for any other host
is refused with ``InvalidBlobConnectionString`` so a test can never reach the internet.
Output containers are created when missing (the real service's behaviour is undocumented).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .httpserver import FakeHTTPServer, Request, Response

log = logging.getLogger(__name__)

JsonObj = dict[str, Any]
Trainer = Callable[[dict[str, bytes], dict[str, Any]], dict[str, bytes]]

BES_API_VERSION = "2.0"
STATUS_CODES = ("NotStarted", "Running", "Failed", "Cancelled", "Finished")  # index = int code
# How long a Results SAS stays valid: long enough to update an endpoint, short like the real one.
DEFAULT_SAS_TTL = dt.timedelta(hours=1)
# Start the SAS a little in the past so clock skew between fake and emulator never rejects it.
SAS_CLOCK_SKEW = dt.timedelta(minutes=5)
# Seconds a blob round-trip to the emulator may take before the job fails.
BLOB_TIMEOUT_S = 30


@dataclass
class TrainingService:
    """A training web service as BES sees it."""

    path: str  # e.g. "workspaces/ws/services/svc" (no leading slash, no /jobs)
    api_keys: tuple[str, ...]
    trainer: Trainer
    model_outputs: frozenset[str] = frozenset()
    input_names: frozenset[str] | None = None  # None: any input names accepted
    output_names: frozenset[str] | None = None  # None: any output names accepted
    required_global_parameters: frozenset[str] = frozenset()


@dataclass
class Job:
    """One submitted job; ``status`` follows NotStarted → Running → Finished/Failed/Cancelled."""

    id: str
    service: str
    request: JsonObj
    status: str = "NotStarted"
    details: str | None = None
    results: JsonObj | None = None
    submitted_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class BesError(Exception):
    """A documented BES error: HTTP status, top-level code, details code, message."""

    def __init__(self, status: int, code: str, detail_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail_code = detail_code
        self.message = message

    def response(self) -> Response:
        return Response.json(
            self.status,
            {
                "error": {
                    "code": self.code,
                    "message": self.message,
                    "details": [{"code": self.detail_code, "message": self.message}],
                }
            },
        )


def _bad(detail_code: str, message: str) -> BesError:
    return BesError(400, "BadArgument", detail_code, message)


def parse_connection_string(conn: str) -> dict[str, str]:
    """``k=v;k=v`` → dict (keys as written; values may contain '=')."""
    out: dict[str, str] = {}
    for part in conn.split(";"):
        if not part.strip():
            continue
        k, sep, v = part.partition("=")
        if not sep:
            raise ValueError(f"malformed connection string segment {part!r}")
        out[k.strip()] = v.strip()
    return out


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class BlobTarget:
    """Where one data reference points, resolved to something azure-storage-blob can use."""

    container: str
    blob: str
    blob_endpoint: str  # e.g. http://127.0.0.1:10000/devstoreaccount1
    account_name: str | None
    account_key: str | None
    sas: str | None  # with leading '?', when given by BaseLocation+SasBlobToken

    @property
    def url(self) -> str:
        return f"{self.blob_endpoint.rstrip('/')}/{self.container}/{self.blob}"

    def shared_key(self) -> dict[str, str] | None:
        """The account-key credential for azure-storage-blob, when the reference had one."""
        if self.account_key is None or self.account_name is None:
            return None
        return {"account_name": self.account_name, "account_key": self.account_key}

    def client(self) -> Any:
        from azure.storage.blob import BlobClient

        key = self.shared_key()
        if key is not None:
            return BlobClient(
                self.blob_endpoint,
                self.container,
                self.blob,
                credential=key,
                connection_timeout=BLOB_TIMEOUT_S,
                read_timeout=BLOB_TIMEOUT_S,
            )
        return BlobClient.from_blob_url(
            self.url + (self.sas or ""),
            connection_timeout=BLOB_TIMEOUT_S,
            read_timeout=BLOB_TIMEOUT_S,
        )


class FakeBatchExecution:
    """The BES side of the fake. Register training services, then :meth:`mount`."""

    def __init__(
        self,
        *,
        run_delay_s: float = 0.05,
        status_code_format: str = "string",
        sas_ttl: dt.timedelta = DEFAULT_SAS_TTL,
        development_storage_connection_string: str | None = None,
    ) -> None:
        if status_code_format not in ("string", "int"):
            raise ValueError("status_code_format must be 'string' or 'int'")
        self.run_delay_s = run_delay_s
        self.status_code_format = status_code_format
        self.sas_ttl = sas_ttl
        # What "UseDevelopmentStorage=true" means here (the running Azurite), if anything.
        self.development_storage_connection_string = development_storage_connection_string
        self.services: dict[str, TrainingService] = {}
        self.jobs: dict[str, Job] = {}
        self._failures: list[tuple[str | None, str]] = []
        self._lock = threading.RLock()
        self._server: FakeHTTPServer | None = None
        self._prefix = ""

    # -- setup ----------------------------------------------------------------------------

    def mount(self, server: FakeHTTPServer, prefix: str = "/bes") -> None:
        self._server = server
        self._prefix = prefix.rstrip("/")
        p = re.escape(self._prefix)
        svc = r"(?P<svc>(?:workspaces|subscriptions)/[^/]+/services/[^/]+)"
        server.add_route("POST", rf"(?i){p}/{svc}/jobs", self._submit, "bes.submit")
        server.add_route(
            "POST", rf"(?i){p}/{svc}/jobs/(?P<job>[^/]+)/start", self._start, "bes.start"
        )
        server.add_route("GET", rf"(?i){p}/{svc}/jobs/(?P<job>[^/]+)", self._status, "bes.status")
        server.add_route(
            "DELETE", rf"(?i){p}/{svc}/jobs/(?P<job>[^/]+)", self._cancel, "bes.delete"
        )

    @property
    def mounted(self) -> bool:
        return self._server is not None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("not mounted")
        return self._server.base_url + self._prefix

    def service_url(self, path: str) -> str:
        """The BES base URL (``ApiLocation``) of a registered service path."""
        return f"{self.base_url}/{path.strip('/')}"

    def register_training_service(
        self,
        path: str,
        api_key: str | tuple[str, ...],
        trainer: Trainer,
        *,
        model_outputs: set[str] | frozenset[str] = frozenset(),
        input_names: set[str] | None = None,
        output_names: set[str] | None = None,
        required_global_parameters: set[str] | frozenset[str] = frozenset(),
    ) -> str:
        """Register a training service at ``path`` ("workspaces/{ws}/services/{id}" or
        "subscriptions/{sub}/services/{id}"); returns its BES base URL once mounted."""
        keys = (api_key,) if isinstance(api_key, str) else tuple(api_key)
        service = TrainingService(
            path=path.strip("/"),
            api_keys=keys,
            trainer=trainer,
            model_outputs=frozenset(model_outputs),
            input_names=None if input_names is None else frozenset(input_names),
            output_names=None if output_names is None else frozenset(output_names),
            required_global_parameters=frozenset(required_global_parameters),
        )
        with self._lock:
            self.services[service.path.lower()] = service
        return self.service_url(service.path) if self.mounted else service.path

    def fail_next_job(
        self,
        details: str = "Module execution encountered an internal error.",
        *,
        service: str | None = None,
    ) -> None:
        """The next job started (on ``service`` path, or any) ends Failed with ``details``."""
        with self._lock:
            self._failures.append((service.strip("/").lower() if service else None, details))

    def job_list(self, service: str | None = None) -> list[Job]:
        """Submitted jobs in submission order, optionally for one service path."""
        with self._lock:
            jobs = sorted(self.jobs.values(), key=lambda j: j.submitted_at)
        if service is None:
            return jobs
        return [j for j in jobs if j.service == service.strip("/").lower()]

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Block until no job thread is running (bounded by ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        for job in self.job_list():
            if job.thread is not None:
                job.thread.join(max(0.0, deadline - time.monotonic()))

    # -- helpers --------------------------------------------------------------------------

    def _auth(self, req: Request) -> TrainingService:
        assert req.match is not None
        with self._lock:
            service = self.services.get(req.match["svc"].lower())
        if service is None:
            raise BesError(
                404,
                "NotFound",
                "WebServiceNotFound",
                "Web service not found. Check the web service ID and URL.",
            )
        token = req.bearer_token()
        if token is None or token not in service.api_keys:
            raise BesError(
                401, "Unauthorized", "ScoreRequestUnauthorized", "Invalid credentials provided."
            )
        version = req.query1("api-version")
        if version != BES_API_VERSION:
            raise _bad(
                "RequestBodyInvalid", f"api-version must be '{BES_API_VERSION}', got {version!r}."
            )
        return service

    def _job(self, req: Request, service: TrainingService) -> Job:
        assert req.match is not None
        job_id = req.match["job"]
        with self._lock:
            job = self.jobs.get(job_id)
        if job is None or job.service != service.path.lower():
            raise _bad("MissingJobId", f"No job with id '{job_id}' exists for this service.")
        return job

    def resolve(self, ref: Any, what: str) -> BlobTarget:
        """Resolve an AzureBlobDataReference to a loopback blob (raises BesError)."""
        if not isinstance(ref, dict):
            raise _bad("RequestBodyInvalid", f"{what} must be an AzureBlobDataReference object.")
        rel = ref.get("RelativeLocation")
        if not isinstance(rel, str) or "/" not in rel.strip("/"):
            raise _bad(
                "InvalidBlob", f"{what}: RelativeLocation must be 'container/blob', got {rel!r}."
            )
        container, _, blob = rel.strip("/").partition("/")
        conn = ref.get("ConnectionString")
        if conn:
            if conn.strip().lower().rstrip(";") == "usedevelopmentstorage=true":
                conn = self.development_storage_connection_string or ""
            try:
                parts = {k.lower(): v for k, v in parse_connection_string(conn).items()}
            except ValueError as exc:
                raise _bad("InvalidBlobConnectionString", f"{what}: {exc}") from None
            name, key = parts.get("accountname"), parts.get("accountkey")
            endpoint = parts.get("blobendpoint") or (
                f"{parts.get('defaultendpointsprotocol', 'https')}://{name}.blob."
                f"{parts.get('endpointsuffix', 'core.windows.net')}"
            )
            if not name or not key:
                raise _bad(
                    "InvalidBlobConnectionString",
                    f"{what}: the connection string needs AccountName and AccountKey.",
                )
            sas = None
        else:
            base, sas = ref.get("BaseLocation"), ref.get("SasBlobToken")
            if not base or not sas:
                raise _bad(
                    "InvalidBlobConnectionString",
                    f"{what}: give ConnectionString, or BaseLocation and SasBlobToken.",
                )
            endpoint, name, key = str(base).rstrip("/"), None, None
            sas = sas if str(sas).startswith("?") else f"?{sas}"
        if not is_loopback_url(endpoint):
            raise _bad(
                "InvalidBlobConnectionString",
                f"{what}: blob endpoint {endpoint!r} is not on loopback; this fake only "
                f"talks to a local emulator such as Azurite.",
            )
        return BlobTarget(container, blob, endpoint, name, key, sas)

    def _validate(
        self, service: TrainingService, body: Any
    ) -> tuple[dict[str, BlobTarget], dict[str, BlobTarget], dict[str, Any]]:
        if not isinstance(body, dict):
            raise _bad(
                "RequestBodyInvalid",
                "The request body must be a BatchExecutionRequest JSON object.",
            )
        if "Input" in body and "Inputs" in body:
            raise _bad(
                "DuplicateInputInBatchCall",
                "Cannot specify both single and multiple input at the same time.",
            )
        raw_inputs = body.get("Inputs") or {}
        if body.get("Input") is not None:
            raw_inputs = {"input1": body["Input"]}
        raw_outputs = body.get("Outputs") or {}
        params = body.get("GlobalParameters") or {}
        if (
            not isinstance(raw_inputs, dict)
            or not isinstance(raw_outputs, dict)
            or not isinstance(params, dict)
        ):
            raise _bad(
                "RequestBodyInvalid", "Inputs, Outputs and GlobalParameters must be JSON objects."
            )
        self._check_names(service, raw_inputs, raw_outputs, params)
        inputs = {n: self.resolve(r, f"Inputs.{n}") for n, r in raw_inputs.items()}
        outputs = {n: self.resolve(r, f"Outputs.{n}") for n, r in raw_outputs.items()}
        for name, target in outputs.items():
            if name in service.model_outputs and not target.blob.lower().endswith(".ilearner"):
                raise _bad(
                    "InvalidBlobExtension",
                    f"Invalid blob extension for output '{name}': the trained model "
                    f"output must be an '.ilearner' blob, got '{target.blob}'.",
                )
        for name, target in inputs.items():
            if not self._exists(target):
                raise _bad(
                    "BlobNotFound",
                    f"Input blob '{target.container}/{target.blob}' for '{name}' was not found.",
                )
        return inputs, outputs, params

    @staticmethod
    def _check_names(
        service: TrainingService, raw_inputs: JsonObj, raw_outputs: JsonObj, params: JsonObj
    ) -> None:
        if service.input_names and not raw_inputs:
            raise _bad(
                "BatchJobInputsNotSpecified",
                f"The following required input(s) were not specified with the request: "
                f"{', '.join(sorted(service.input_names))}.",
            )
        if service.input_names is not None:
            unknown = set(raw_inputs) - service.input_names
            if unknown:
                raise _bad("RequestBodyInvalid", f"Unknown input name(s): {sorted(unknown)}.")
        if service.output_names is not None:
            unknown = set(raw_outputs) - service.output_names
            if unknown:
                raise _bad(
                    "InvalidOutputOverrideName",
                    f"Invalid output override name(s) {sorted(unknown)}; this web "
                    f"service has outputs {sorted(service.output_names)}.",
                )
        missing = service.required_global_parameters - set(params)
        if missing:
            raise _bad(
                "MissingRequiredGlobalParameters",
                f"Required global parameter(s) not provided: {sorted(missing)}.",
            )

    @staticmethod
    def _exists(target: BlobTarget) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            target.client().get_blob_properties()
        except ResourceNotFoundError:
            return False
        return True

    def _status_code(self, status: str) -> str | int:
        return STATUS_CODES.index(status) if self.status_code_format == "int" else status

    # -- handlers -------------------------------------------------------------------------

    def _submit(self, req: Request) -> Response:
        try:
            service = self._auth(req)
            try:
                body = req.json()
            except ValueError as exc:
                raise _bad("RequestBodyInvalid", f"The request body is not JSON: {exc}") from None
            self._validate(service, body)
        except BesError as err:
            return err.response()
        job = Job(id=uuid.uuid4().hex, service=service.path.lower(), request=body)
        with self._lock:
            self.jobs[job.id] = job
        return Response.json(200, job.id)

    def _start(self, req: Request) -> Response:
        try:
            service = self._auth(req)
            job = self._job(req, service)
            with self._lock:
                if job.status != "NotStarted":
                    raise BesError(
                        400,
                        "InvalidOperation",
                        "CannotStartJob",
                        f"The job cannot be started because it is in {job.status} state.",
                    )
                job.status, job.started_at = "Running", time.time()
                failure = self._take_failure(service)
                job.thread = threading.Thread(
                    target=self._run,
                    args=(job, service, failure),
                    name=f"bes-job-{job.id[:8]}",
                    daemon=True,
                )
            job.thread.start()
        except BesError as err:
            return err.response()
        return Response.empty(204)

    def _take_failure(self, service: TrainingService) -> str | None:
        for entry in self._failures:
            if entry[0] is None or entry[0] == service.path.lower():
                self._failures.remove(entry)
                return entry[1]
        return None

    def _status(self, req: Request) -> Response:
        try:
            service = self._auth(req)
            job = self._job(req, service)
        except BesError as err:
            return err.response()
        with self._lock:
            body = {
                "StatusCode": self._status_code(job.status),
                "Results": job.results,
                "Details": job.details,
            }
        return Response.json(200, body)

    def _cancel(self, req: Request) -> Response:
        try:
            service = self._auth(req)
            job = self._job(req, service)
        except BesError as err:
            return err.response()
        with self._lock:
            job.cancel.set()
            if job.status in ("NotStarted", "Running"):
                job.status, job.finished_at = "Cancelled", time.time()
        return Response.empty(204)

    # -- the job itself -------------------------------------------------------------------

    def _run(self, job: Job, service: TrainingService, failure: str | None) -> None:
        if job.cancel.wait(self.run_delay_s):
            return
        try:
            if failure is not None:
                raise RuntimeError(failure)
            inputs, outputs, params = self._validate(service, job.request)
            data = {name: t.client().download_blob().readall() for name, t in inputs.items()}
            produced = service.trainer(data, dict(params))
            missing = set(outputs) - set(produced)
            if missing:
                raise RuntimeError(
                    f"the experiment produced no data for output(s) {sorted(missing)}"
                )
            results: JsonObj = {}
            for name, target in outputs.items():
                if job.cancel.is_set():
                    return
                self._write(target, produced[name])
                results[name] = self._result_reference(target)
        except BesError as err:
            self._finish(job, "Failed", f"{err.detail_code}: {err.message}", None)
        except Exception as exc:  # the trainer is user code: any failure fails the job
            log.debug("BES job %s failed", job.id, exc_info=True)
            self._finish(job, "Failed", f"ModuleExecutionError: {exc}", None)
        else:
            self._finish(job, "Finished", None, results)

    def _finish(self, job: Job, status: str, details: str | None, results: JsonObj | None) -> None:
        with self._lock:
            if job.cancel.is_set():
                return
            job.status, job.details, job.results = status, details, results
            job.finished_at = time.time()

    @staticmethod
    def _write(target: BlobTarget, data: bytes) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import ContainerClient

        key = target.shared_key()
        if key is not None:
            container = ContainerClient(
                target.blob_endpoint,
                target.container,
                credential=key,
                connection_timeout=BLOB_TIMEOUT_S,
                read_timeout=BLOB_TIMEOUT_S,
            )
            with contextlib.suppress(ResourceExistsError):
                container.create_container()
        target.client().upload_blob(data, overwrite=True)

    def _result_reference(self, target: BlobTarget) -> JsonObj:
        """The Results entry: BaseLocation + RelativeLocation + SasBlobToken = readable URL."""
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        if target.account_key is not None and target.account_name is not None:
            now = dt.datetime.now(dt.UTC)
            sas = "?" + generate_blob_sas(
                account_name=target.account_name,
                container_name=target.container,
                blob_name=target.blob,
                account_key=target.account_key,
                permission=BlobSasPermissions(read=True),
                start=now - SAS_CLOCK_SKEW,
                expiry=now + self.sas_ttl,
            )
        else:
            sas = target.sas or ""
        return {
            "ConnectionString": None,
            "RelativeLocation": f"{target.container}/{target.blob}",
            "BaseLocation": target.blob_endpoint.rstrip("/") + "/",
            "SasBlobToken": sas,
        }
