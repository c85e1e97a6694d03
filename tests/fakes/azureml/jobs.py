"""Command jobs that really train (``Jobs_CreateOrUpdate``, ``Jobs_Get``, ``Jobs_Cancel``...).

Why a Python trainer rather than the job's ``command`` in a subprocess: the real service runs
the command in the job's *environment* (a Docker image) on its *compute*, from a code asset
uploaded beforehand. The fake has neither images nor code assets (the swagger subset has no
``codes`` paths), and running a shell command received over HTTP would make the fake a remote
shell for anything on loopback. So, as :mod:`tests.fakes.bes` does, a job runs a registered
Python trainer, chosen by the job's ``codeId`` (the code asset is what names the program in the
real service) or the fake's default trainer, with the local backend's contract::

    trainer(inputs={name: Path}, parameters={name: value}, model_path=Path, evaluation_path=Path)

``uri_file``/``uri_folder`` inputs are downloaded from the workspace's datastores (real Azurite
blobs) to local paths, ``literal`` inputs become ``parameters``; the output named ``model`` (a
folder for ``custom_model``/``mlflow_model``/``uri_folder``: the file is ``model`` in it; the
file itself for ``uri_file``) and the output named ``evaluation`` (``evaluation.csv`` in a
folder, or the file) are uploaded back. The command's ``${{inputs.X}}`` / ``${{outputs.X}}``
bindings must name declared inputs and outputs (400 otherwise; inference: the service validates
bindings at submission).

Wire behaviour:

* PUT is synchronous: 201 with ``status: NotStarted`` (the example ``Job/CommandJob/
  createOrUpdate.json``). Only ``jobType: Command`` runs; other types are refused.
* Each GET is a poll: ``NotStarted`` → ``Queued`` (for ``job_queue_polls`` polls) →
  ``Running`` (the trainer starts) → ``Completed`` / ``Failed`` / ``Canceled`` once it ended.
* A PUT of an existing job name returns that job (200) and never starts a second run; it may
  change only ``description``, ``tags`` (merged: keys are added or updated, never removed),
  ``displayName``, ``properties`` and ``isArchived``. Any other difference is 400 ``UserError``
  with ``innerError.code`` ``Immutable``, as the real service answers (message quoted in
  MicrosoftDocs/azure-docs#122250; tag merging seen in Azure/azure-sdk-for-python#30671).
* ``POST .../cancel`` → 202 + ``Location`` + ``Retry-After``; the job shows ``CancelRequested``
  and then ``Canceled``; its outputs are not written. Cancelling a finished job is 200, no-op.
* Outputs without ``uri`` go to ``azureml://datastores/<default>/paths/azureml/<job>/<output>/``
  and GET does *not* report that location (the output shows as submitted, ``uri`` absent):
  azure-ai-ml's ``JobOperations._get_named_output_uri`` says "A job's output is not always
  reported in the outputs dict" and probes ``azureml/{job_name}/{name}/`` on the default
  datastore first (``azure/ai/ml/operations/_job_operations.py``, 1.35.2). A client that needs
  the location gives ``uri`` itself, or names the output as ``azureml://jobs/<job>/outputs/<o>``.
* ``FakeAzureML.job_not_responding(name, polls, status)`` makes a running job show
  ``NotResponding`` (or ``Unknown``) for that many polls before it carries on: the statuses a
  client must keep polling through (the swagger: NotResponding "is the only state that is exempt
  from strict transition orders").
* ``limits.timeout`` (ISO 8601) is enforced: a job still running after it shows ``Canceled``
  on the next poll and writes no outputs (swagger: "after which the job will be cancelled").
* A failed job's message is in ``properties.properties["azureml.error"]`` (a fake-only
  convenience: the swagger's ``JobBase`` has no error field; the real message lives in run
  history).
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import logging
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from tests.fakes.httpserver import FakeHTTPServer, Request, Response
from tests.fakes.swagger import ci_get, ci_lookup

from .common import (
    PROVIDER,
    SEG,
    WS_PATH,
    Operation,
    arm_error,
    not_found,
    page,
    parse_json_object,
    system_data,
    user_error,
    validation_error,
)
from .runner import JobRunner, Trainer
from .state import JobRec, State, Workspace

log = logging.getLogger(__name__)

JsonObj = dict[str, Any]

TERMINAL = frozenset({"Completed", "Failed", "Canceled"})
MUTABLE_FIELDS = frozenset({"description", "tags", "displayname", "properties", "isarchived"})
BINDING = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z0-9_]+)\s*\}\}")
ERROR_PROPERTY = "azureml.error"


def load_trainer(spec: str) -> Trainer:
    """``path/to/file.py:function`` or ``package.module:function`` → the callable."""
    where, _, attr = spec.rpartition(":")
    if not where or not attr:
        raise ValueError(f"trainer must be 'file.py:function' or 'module:function', got {spec!r}")
    if where.endswith(".py"):
        path = Path(where).resolve()
        mod_spec = importlib.util.spec_from_file_location(f"_aml_trainer_{path.stem}", path)
        if mod_spec is None or mod_spec.loader is None:
            raise ValueError(f"cannot load {path}")
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    fn = getattr(module, attr)
    if not callable(fn):
        raise TypeError(f"{spec} is not callable")
    return fn  # type: ignore[no-any-return]


_DURATION = re.compile(
    r"P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?",
    re.I,
)


def parse_duration(value: Any) -> float | None:
    """ISO 8601 ``PnDTnHnMnS`` → seconds (None when absent or unparsable)."""
    m = _DURATION.fullmatch(str(value or ""))
    if not value or m is None:
        return None
    days, hours, minutes, seconds = (float(m[k] or 0) for k in ("d", "h", "m", "s"))
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _canonical(props: JsonObj, defaults: dict[str, str]) -> JsonObj:
    """The immutable part of a job body, for comparing a re-PUT with the stored one."""
    out = {k.lower(): v for k, v in props.items() if k.lower() not in MUTABLE_FIELDS}
    for name in ("status", "parameters", "services"):
        out.pop(name, None)
    out.setdefault("experimentname", "Default")
    outputs = copy.deepcopy(out.get("outputs") or {})
    for name, spec in outputs.items():
        if isinstance(spec, dict) and ci_get(spec, "uri") in (None, defaults.get(name)):
            for k in ci_lookup(spec, "uri"):
                del spec[k]
    out["outputs"] = outputs
    return {k: v for k, v in out.items() if v is not None}


class JobApi:
    def __init__(
        self,
        state: State,
        *,
        trainers: dict[str, Trainer] | None = None,
        default_trainer: Trainer | None = None,
        job_queue_polls: int = 1,
    ) -> None:
        self.s = state
        self.trainers = {k.lower(): v for k, v in (trainers or {}).items()}
        self.default_trainer = default_trainer
        self.job_queue_polls = job_queue_polls
        self.runner = JobRunner(state.blobs)

    def mount(self, server: FakeHTTPServer, prefix: str = "") -> None:
        jobs = rf"(?i){prefix}{WS_PATH}/jobs"
        one = rf"{jobs}/(?P<job>{SEG})"
        w = self.s.gate.wrap
        for method, pattern, fn, name in [
            ("GET", jobs, self._list, "aml.jobs.list"),
            ("GET", one, self._get, "aml.job.get"),
            ("PUT", one, self._put, "aml.job.put"),
            ("DELETE", one, self._delete, "aml.job.delete"),
            ("POST", rf"{one}/cancel", self._cancel, "aml.job.cancel"),
        ]:
            server.add_route(method, pattern, w(fn), name)

    def register_trainer(self, code_id: str, trainer: Trainer) -> None:
        self.trainers[code_id.lower()] = trainer

    # -- views -----------------------------------------------------------------------------

    def default_outputs(self, ws: Workspace, job: str, props: JsonObj) -> dict[str, str]:
        store = self.default_datastore(ws)
        outputs = ci_get(props, "outputs") or {}
        return {
            name: f"azureml://datastores/{store}/paths/azureml/{job}/{name}/" for name in outputs
        }

    @staticmethod
    def default_datastore(ws: Workspace) -> str:
        for name, rec in ws.datastores.items():
            if ci_get(rec.get("properties", {}), "isDefault"):
                return str(rec.get("name", name))
        return "workspaceblobstore"

    def view(self, ws: Workspace, job: JobRec) -> JsonObj:
        props = copy.deepcopy(job.body["properties"])
        if not ci_lookup(props, "experimentName"):
            props["experimentName"] = "Default"
        if job.error is not None:
            extra = dict(ci_get(props, "properties") or {})
            extra[ERROR_PROPERTY] = job.error
            for k in ci_lookup(props, "properties"):
                del props[k]
            props["properties"] = extra
        props["status"] = job.status
        return {
            "id": f"{ws.id}/jobs/{job.name}",
            "name": job.name,
            "type": f"{PROVIDER}/workspaces/jobs",
            "systemData": dict(job.system_data),
            "properties": props,
        }

    # -- handlers --------------------------------------------------------------------------

    def _ws(self, req: Request) -> Workspace | Response:
        assert req.match is not None
        ws = self.s.workspace(req.match["sub"], req.match["rg"], req.match["ws"])
        if ws is None:
            return arm_error(
                404, "ResourceNotFound", f"Workspace {req.match['ws']!r} was not found."
            )
        return ws

    def _job(self, req: Request) -> tuple[Workspace, JobRec] | Response:
        ws = self._ws(req)
        if isinstance(ws, Response):
            return ws
        assert req.match is not None
        job = ws.jobs.get(req.match["job"].lower())
        return (ws, job) if job is not None else not_found("Job", req.match["job"])

    def _list(self, req: Request) -> Response:
        ws = self._ws(req)
        if isinstance(ws, Response):
            return ws
        tag = req.query1("tag")
        items = [
            self.view(ws, j)
            for _, j in sorted(ws.jobs.items())
            if not tag or tag.split("=")[0] in (ci_get(j.body["properties"], "tags") or {})
        ]
        return page(req, items, self.s.page_size, self.s.base_url)

    def _get(self, req: Request) -> Response:
        found = self._job(req)
        if isinstance(found, Response):
            return found
        ws, job = found
        self.advance(ws, job)
        return Response.json(200, self.view(ws, job))

    def _put(self, req: Request) -> Response:
        body = parse_json_object(req)
        if isinstance(body, Response):
            return body
        issues = self.s.validator.validate(body, "JobBaseResource")
        if issues:
            return validation_error(issues)
        ws = self._ws(req)
        if isinstance(ws, Response):
            return ws
        assert req.match is not None
        name = req.match["job"]
        props = copy.deepcopy(ci_get(body, "properties") or {})
        for k in ci_lookup(props, "status"):
            del props[k]
        existing = ws.jobs.get(name.lower())
        if existing is not None:
            return self._update(ws, existing, props)
        refused = self._check_new(props)
        if refused is not None:
            return refused
        job = JobRec(name=name, body={"properties": props}, system_data=system_data(None))
        failure = self.s.failures.take_job(name)
        if failure is not None:
            job.outcome = f"Failed:{failure}"
        ws.jobs[name.lower()] = job
        return Response.json(201, self.view(ws, job))

    @staticmethod
    def _check_new(props: JsonObj) -> Response | None:
        job_type = str(ci_get(props, "jobType") or "")
        if job_type.lower() != "command":
            return user_error(
                f"The fake runs command jobs only (jobType {job_type!r}).",
                target="properties.jobType",
            )
        declared = {
            "inputs": {k.lower() for k in (ci_get(props, "inputs") or {})},
            "outputs": {k.lower() for k in (ci_get(props, "outputs") or {})},
        }
        for kind, name in BINDING.findall(str(ci_get(props, "command") or "")):
            if name.lower() not in declared[kind]:
                return user_error(
                    f"The command binds ${{{{{kind}.{name}}}}}, but the job declares no such "
                    f"{kind[:-1]}.",
                    target="properties.command",
                )
        return None

    def _update(self, ws: Workspace, job: JobRec, props: JsonObj) -> Response:
        old = job.body["properties"]
        defaults = self.default_outputs(ws, job.name, old)
        before, after = _canonical(old, defaults), _canonical(props, defaults)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        if changed:
            return arm_error(
                400,
                "UserError",
                "A job with this name already exists. If you are trying to create a new job, use "
                "a different name. If you are trying to update an existing job, the existing "
                f"job's {', '.join(changed)} cannot be changed. Only description, tags, "
                "displayName, properties, and isArchived can be updated.",
                target="properties",
                inner="Immutable",
            )
        for key in ("description", "displayName", "isArchived"):
            if ci_get(props, key) is not None:
                for k in ci_lookup(old, key):
                    del old[k]
                old[key] = ci_get(props, key)
        for key in ("tags", "properties"):
            merged = dict(ci_get(old, key) or {})
            merged.update(ci_get(props, key) or {})
            for k in ci_lookup(old, key):
                del old[k]
            old[key] = merged
        job.system_data = system_data(job.system_data)
        return Response.json(200, self.view(ws, job))

    def _cancel(self, req: Request) -> Response:
        found = self._job(req)
        if isinstance(found, Response):
            return found
        ws, job = found
        if job.status in TERMINAL:
            return Response.empty(200)
        job.status = "CancelRequested"
        job.cancel.set()

        def finish(ok: bool) -> None:
            if job.status not in TERMINAL:
                job.status = "Canceled"

        op = Operation(
            id=uuid.uuid4().hex,
            subscription=ws.subscription,
            location=re.sub(r"\s+", "", ws.location).lower(),
            kind="post",
            resource_key=(*ws.key, "jobs", job.name.lower(), "cancel"),
            finish=finish,
            result=lambda: Response.empty(200),
            polls_left=self.s.ops.lro_polls,
        )
        return Response.empty(202, self.s.ops.start(op))

    def _delete(self, req: Request) -> Response:
        found = self._job(req)
        if isinstance(found, Response):
            return Response.empty(204) if found.status == 404 else found
        ws, job = found
        job.cancel.set()

        def finish(ok: bool) -> None:
            ws.jobs.pop(job.name.lower(), None)

        op = Operation(
            id=uuid.uuid4().hex,
            subscription=ws.subscription,
            location=re.sub(r"\s+", "", ws.location).lower(),
            kind="delete",
            resource_key=(*ws.key, "jobs", job.name.lower()),
            finish=finish,
            result=lambda: Response.empty(204),
            polls_left=self.s.ops.lro_polls,
        )
        return Response.empty(202, self.s.ops.start(op))

    # -- the state machine -----------------------------------------------------------------

    def advance(self, ws: Workspace, job: JobRec) -> None:
        """One poll's worth of progress (called with the lock held)."""
        if job.status == "CancelRequested":
            job.status = "Canceled"
        elif job.status == "NotStarted":
            job.status = "Queued"
        elif job.status == "Queued":
            job.polls += 1
            if job.polls >= self.job_queue_polls:
                job.status = "Running"
                job.started = time.monotonic()
                self._launch(ws, job)
        elif job.status in ("Running", "NotResponding", "Unknown") and self._blip(job):
            return
        elif job.status == "Running" and self._timed_out(job):
            job.cancel.set()
            job.status = "Canceled"
            job.error = "The job exceeded limits.timeout and was cancelled."
        elif job.status == "Running" and job.done.is_set():
            outcome = job.outcome or "Completed"
            job.status, _, message = outcome.partition(":")
            job.error = message or None

    @staticmethod
    def _timed_out(job: JobRec) -> bool:
        limit = parse_duration(ci_get(ci_get(job.body["properties"], "limits") or {}, "timeout"))
        return (
            limit is not None
            and job.started is not None
            and not job.done.is_set()
            and time.monotonic() - job.started > limit
        )

    def _blip(self, job: JobRec) -> bool:
        """An injected ``NotResponding``/``Unknown`` spell: shown for N polls, then Running."""
        spell = self.s.failures.blips.get(job.name.lower())
        if spell is None:
            return False
        status, polls = spell
        if polls <= 0:
            del self.s.failures.blips[job.name.lower()]
            job.status = "Running"
            return True
        self.s.failures.blips[job.name.lower()] = (status, polls - 1)
        job.status = status
        return True

    def _launch(self, ws: Workspace, job: JobRec) -> None:
        if job.outcome is not None:  # an injected failure: no training at all
            job.done.set()
            return
        code_id = str(ci_get(job.body["properties"], "codeId") or "")
        trainer = self.trainers.get(code_id.lower(), self.default_trainer)
        plan = self._plan(ws, job)
        job.thread = threading.Thread(
            target=self.runner.run,
            args=(job, trainer, code_id, plan),
            daemon=True,
            name=f"aml-job-{job.name}",
        )
        job.thread.start()

    def _plan(self, ws: Workspace, job: JobRec) -> JsonObj:
        """Inputs and outputs resolved to containers and blob paths, read under the lock."""
        props = job.body["properties"]
        defaults = self.default_outputs(ws, job.name, props)
        containers = {
            name: str(ci_get(rec["properties"], "containerName") or name)
            for name, rec in ws.datastores.items()
        }
        return {
            "inputs": copy.deepcopy(ci_get(props, "inputs") or {}),
            "outputs": {
                name: (spec, ci_get(spec, "uri") or defaults[name])
                for name, spec in (ci_get(props, "outputs") or {}).items()
                if isinstance(spec, dict)
            },
            "containers": containers,
        }
