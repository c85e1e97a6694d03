"""The Ray runner: each training job is a Ray job, submitted through the Jobs API.

``backend.local.runner: {kind: ray, address: http://HOST:8265}``. The same manifest and
trainers as the subprocess runner, and the same guarantees, by these rules:

- **One job per model, whatever crashes.** The submission id is derived from the
  fingerprint, the model store it is for and an attempt number
  (``retrain-<store>-<fp>-<n>``). Before submitting, the runner reads the ids in order:
  a pending or running job is followed (a crashed apply's job is picked up by the next
  one, never started twice), a succeeded one's outputs are collected, and only a failed
  or stopped one (or one whose outputs are gone) makes the next attempt. Two submits of
  one id cannot both succeed: Ray refuses the second, and the loser follows the winner.
- **No secret in a file or in job metadata.** The entrypoint names only a one-shot
  channel and ticket (``ray_channel``); the job takes its instructions and secrets from
  it when it starts, and masks secrets in its output before Ray logs it.
- **Only whole models are published.** The job leaves its outputs in a shared storage
  folder, renamed into place only when it succeeded (``retrain_ray_job``); retrain checks
  them with the local runner's checks and commits them into the content-addressed store
  by the same atomic rename. A stopped job's partial folder is never read.
- **A timeout stops the job** (``stop_job``), counted from its submission, so a job
  followed after a crash keeps its original deadline.

``ray`` is imported here only, and only when a job is run: ``retrain --help`` and the
subprocess path never load it (it takes seconds and is an optional extra).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import shutil
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler import errors, fingerprint, redact
from reconciler.providers import base
from reconciler.providers.local import ray_channel, runner, store, subprocess_runner
from reconciler.providers.local import retrain_ray_job as job_side

KIND = "ray"
ATTEMPTS = 20  # jobs per model and store before asking a person (Ray keeps each one's record)
STORE_TAG = 12  # hex digits naming the store in a submission id (48 bits: no collisions)
POLL_SECONDS = 0.5  # a status read is one small GET; Ray itself takes ~2 s to start a job
STOP_WAIT = 30.0  # seconds a stopped job gets to reach STOPPED before we give up waiting
OUTPUTS = "ray-outputs"  # the default storage folder, in the state directory
PARALLELISM = 32  # jobs followed at once by default: the cluster, not this machine, runs them
DEFAULT_CPUS = 1.0  # one CPU per job unless the trainer says: as the subprocess runner
MS = 1000  # Ray's job times are epoch milliseconds
PENDING, RUNNING, SUCCEEDED = "PENDING", "RUNNING", "SUCCEEDED"
FOLLOWED = (PENDING, RUNNING)
JOB_PACKAGE = Path(job_side.__file__).parent
EXCLUDED = (".git", "__pycache__", "*.pyc")  # never part of a trainer's working_dir upload
QUIET = ("ray", "ray.dashboard.modules.dashboard_sdk", "ray.dashboard.modules.job.sdk")
UNITS = {"": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


@dataclass(frozen=True, slots=True)
class Settings:
    """The manifest's ``runner`` section for ``kind: ray``, paths resolved."""

    address: str
    storage: Path
    callback_host: str = "127.0.0.1"
    poll_seconds: float = POLL_SECONDS
    excluded: tuple[Path, ...] = ()
    """Folders never uploaded with a trainer's folder (the state directory, the storage)."""


def settings(section: Mapping[str, Any], *, manifest_dir: Path, state_dir: Path) -> Settings:
    storage = (manifest_dir / section["storage"]) if "storage" in section else state_dir / OUTPUTS
    return Settings(
        address=str(section["address"]).rstrip("/"),
        storage=storage.resolve(),
        callback_host=str(section.get("callbackHost", "127.0.0.1")),
        poll_seconds=float(section.get("pollSeconds", POLL_SECONDS)),
        excluded=(state_dir.resolve(), storage.resolve()),
    )


def submission_id(fp: str, attempt: int, store_root: str) -> str:
    """The Ray submission id of the ``attempt``-th job training model ``fp`` for the model
    store at ``store_root`` on this host. The store is part of the name because a cluster
    is shared: another project (or a fresh checkout) training the same model collects its
    own job's outputs into its own store, and must neither follow nor block this one's."""
    return f"{job_prefix(store_root)}-{fp}-{attempt}"


def job_prefix(store_root: str) -> str:
    """What the submission ids of every job for the store at ``store_root`` begin with."""
    where = f"{socket.gethostname()}:{store_root}".encode()
    return f"retrain-{hashlib.sha256(where).hexdigest()[:STORE_TAG]}"


def memory_bytes(value: int | str) -> int:
    """``2Gi`` (or a plain number of bytes) in bytes; the schema allows nothing else."""
    text = str(value)
    digits = text.rstrip("KMGTi")
    return int(digits) * UNITS[text[len(digits) :]]


class RayRunner:
    """Jobs on the Ray cluster at ``settings.address`` (see ``runner.Runner``). ``client``
    is a ``JobSubmissionClient`` (made on first use when not given)."""

    def __init__(
        self,
        config: Settings,
        *,
        log: base.Log,
        scrub: redact.Redactor | None = None,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.log = log
        self.scrub = scrub or redact.Redactor()  # the manifest's secrets (secret parameters too)
        self.sleep = sleep
        self._client = client
        self._client_lock = threading.Lock()
        self._channel = ray_channel.Channel(config.callback_host)
        self._cancelled = threading.Event()
        self._submitted: set[str] = set()  # ids this process submitted (its channel serves them)
        self._tickets: dict[str, str] = {}  # submission id -> its ticket, until the job ends

    # -- the seam ------------------------------------------------------------
    def run(self, launch: runner.Launch) -> None:
        folder = self._folder(launch)
        for _retry in range(2):  # a followed job that found a dead channel is tried once more
            sid = self._claim(launch, folder)
            try:
                info = self._follow(sid, launch)
            finally:  # an ended (or no longer followed) job's instructions go from memory
                self._channel.withdraw(self._tickets.pop(sid, ""))
            if str(_status(info)) == SUCCEEDED:
                self._publish(sid, info, launch)
                return
            if info.driver_exit_code != job_side.CHANNEL_GONE or sid in self._submitted:
                raise self._failure(sid, info, launch)
            self.log(f"training {_short(launch)}: Ray job {sid} started after its apply died")
        raise self._failure(sid, info, launch)

    def cancel(self) -> None:
        """Stop following: jobs go on running on the cluster, and the next apply follows
        them (as a crash would leave them; a job still waiting for its secrets fails and
        is submitted again then)."""
        self._cancelled.set()

    # -- claim: follow an existing job or submit one ---------------------------
    def _claim(self, launch: runner.Launch, folder: Path) -> str:
        for attempt in range(1, ATTEMPTS + 1):
            sid = submission_id(launch.fingerprint, attempt, str(launch.spec["store"]))
            info = self._info(sid)
            if info is None:
                return self._submit(sid, launch, folder)
            status = str(_status(info))
            if status in FOLLOWED or (status == SUCCEEDED and self._outputs(sid).is_dir()):
                self.log(f"training {_short(launch)}: following Ray job {sid} ({status})")
                return sid
        raise errors.TrainingError(
            f"model {_short(launch)}: {ATTEMPTS} Ray jobs ran for it and none left a model; "
            f"delete job {submission_id(launch.fingerprint, ATTEMPTS, str(launch.spec['store']))} "
            "to try again"
        )

    def _submit(self, sid: str, launch: runner.Launch, folder: Path) -> str:
        if self._cancelled.is_set():
            raise errors.StoppedError("the run was interrupted before it started")
        spec = launch.spec
        inputs = {str(k): str(v) for k, v in spec["inputs"].items()}
        entry_file, _, function = str(spec["entrypoint"]).rpartition(":")
        payload = {
            "submission_id": sid,
            "trainer": launch.trainer,
            "entrypoint": f"{Path(entry_file).relative_to(folder)}:{function}",
            "parameters": dict(spec["parameters"]),
            "inputs": {name: Path(path).name for name, path in inputs.items()},
            "env": {"OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0", **launch.secrets},
            "mask": self._secret_values(launch),
            "output": str(self.config.storage),
        }
        ticket = self._channel.offer(payload, inputs)
        self.config.storage.mkdir(parents=True, exist_ok=True)
        try:
            self._call(
                "submit a job",
                lambda c: c.submit_job(
                    entrypoint=f"python -m {JOB_PACKAGE.name} {self._channel.url()} {ticket}",
                    submission_id=sid,
                    runtime_env={
                        "working_dir": str(folder),
                        "py_modules": [str(JOB_PACKAGE)],
                        "excludes": self._excludes(folder),
                    },
                    metadata={"retrain_fingerprint": launch.fingerprint, "trainer": launch.trainer},
                    **self._resources(launch),
                ),
            )
        except errors.ProviderError as e:
            self._channel.withdraw(ticket)
            if "already exists" not in str(e):
                raise
            self.log(f"training {_short(launch)}: following Ray job {sid} (submitted meanwhile)")
            return sid
        self._submitted.add(sid)
        self._tickets[sid] = ticket
        self.log(f"training {_short(launch)}: submitted Ray job {sid}")
        return sid

    def _secret_values(self, launch: runner.Launch) -> list[str]:
        """What the job masks in its output: the trainer's secrets, and each parameter
        value that holds one of the manifest's secrets (a secret parameter)."""
        values = [str(v) for v in launch.spec["parameters"].values() if isinstance(v, str)]
        return [*launch.secrets.values(), *(v for v in values if self.scrub(v) != v)]

    def _resources(self, launch: runner.Launch) -> dict[str, Any]:
        wanted = dict(launch.spec.get("resources") or {})
        found: dict[str, Any] = {"entrypoint_num_cpus": float(wanted.get("cpus", DEFAULT_CPUS))}
        if wanted.get("gpus"):
            found["entrypoint_num_gpus"] = float(wanted["gpus"])
        if wanted.get("memory"):
            found["entrypoint_memory"] = memory_bytes(wanted["memory"])
        return found

    def _excludes(self, folder: Path) -> list[str]:
        """Ray's gitignore-style patterns, relative to the working_dir."""
        inside = [
            f"/{p.relative_to(folder)}/"
            for p in self.config.excluded
            if p.is_relative_to(folder) and p != folder  # "/./" would exclude everything
        ]
        return [*EXCLUDED, *inside]

    # -- follow --------------------------------------------------------------
    def _follow(self, sid: str, launch: runner.Launch) -> Any:
        """Poll to a terminal status; stop the job at its timeout."""
        last = ""
        while True:
            if self._cancelled.is_set():
                raise errors.StoppedError(
                    f"the run was interrupted; Ray job {sid} goes on and the next apply follows it"
                )
            info = self._info(sid)
            if info is None:
                raise errors.TrainingError(f"Ray job {sid} vanished from the cluster")
            status = str(_status(info))
            if status != last:
                self.log(f"training {_short(launch)}: Ray job {sid} {status}")
                last = status
            if status not in FOLLOWED:
                return info
            if time.time() > (info.start_time or time.time() * MS) / MS + launch.timeout:
                self._stop(sid)
                raise errors.TrainingError(
                    f"trainer {launch.trainer!r} timed out after {launch.timeout:g}s "
                    f"(Ray job {sid} stopped)"
                )
            self.sleep(self.config.poll_seconds)

    def _stop(self, sid: str) -> None:
        self._call("stop a job", lambda c: c.stop_job(sid))
        deadline = time.monotonic() + STOP_WAIT
        while time.monotonic() < deadline:
            info = self._info(sid)
            if info is None or str(_status(info)) not in FOLLOWED:
                return
            self.sleep(self.config.poll_seconds)

    def _failure(self, sid: str, info: Any, launch: runner.Launch) -> errors.ReconcilerError:
        """The job's reason, masked: its log's last line, else Ray's own message."""
        scrub = self.scrub.extend(self._secret_values(launch))
        logs = self._call("read a job's logs", lambda c: str(c.get_job_logs(sid) or ""))
        last = (
            subprocess_runner.last_error(scrub(logs)) if logs.strip() else scrub(info.message or "")
        )
        status = str(_status(info))
        if status != "FAILED":
            return errors.TrainingError(f"trainer {launch.trainer!r}: Ray job {sid} {status}")
        if info.driver_exit_code == job_side.OUTPUT_INVALID:
            return errors.TrainingError(last)
        return errors.TrainingError(f"trainer {launch.trainer!r} failed: {last} (Ray job {sid})")

    # -- publish ---------------------------------------------------------------
    def _outputs(self, sid: str) -> Path:
        return self.config.storage / sid

    def _publish(self, sid: str, info: Any, launch: runner.Launch) -> None:
        """Check the job's outputs as the local runner does and commit them to the store."""
        outputs = self._outputs(sid)
        model_file, evaluation_file = outputs / store.MODEL_FILE, outputs / store.EVALUATION_FILE
        metrics = runner.output_metrics(launch.trainer, model_file, evaluation_file)
        scratch = Path(launch.spec["scratch"])
        for source in (model_file, evaluation_file):
            shutil.copyfile(source, scratch / source.name)
            runner.fsync(scratch / source.name)
        started = (info.start_time or 0) / MS
        metadata = dict(launch.spec["metadata"]) | {
            "metrics": metrics,
            "trained_at": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="seconds"),
            "duration_seconds": round(((info.end_time or 0) / MS) - started, 3),
            "ray_job": sid,
        }
        store.ModelStore(Path(launch.spec["store"])).commit(launch.fingerprint, scratch, metadata)
        shutil.rmtree(outputs, ignore_errors=True)

    # -- the cluster -----------------------------------------------------------
    def _folder(self, launch: runner.Launch) -> Path:
        """The trainer's folder: Ray's working_dir, so every file defining it must be in it."""
        entry = Path(str(launch.spec["entrypoint"]).rpartition(":")[0])
        folder = entry.parent
        outside = [c for c in launch.spec.get("code", []) if not Path(c).is_relative_to(folder)]
        if outside:
            raise errors.ProviderError(
                f"trainer {launch.trainer!r}: with the ray runner, a dependency must be in the "
                f"trainer's folder {folder} (it is the job's working_dir): {outside[0]}"
            )
        return folder

    def _info(self, sid: str) -> Any:
        """The job's info, or None when the cluster has no job of that id."""
        try:
            return self._call("read a job", lambda c: c.get_job_info(sid))
        except errors.ProviderError as e:
            if "status code 404" in str(e) or "does not exist" in str(e):
                return None
            raise

    def _call(self, what: str, call: Callable[[Any], Any]) -> Any:
        client = self._connect()
        try:
            return call(client)
        except (RuntimeError, OSError, ValueError) as e:  # the SDK's errors for HTTP failures
            raise errors.ProviderError(
                f"Ray cluster {self.config.address}: cannot {what}: {_first_line(e)}"
            ) from e

    def _connect(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = _client(self.config.address)
            return self._client


def _client(address: str) -> Any:
    try:
        from ray import job_submission
    except ImportError as e:
        raise errors.ProviderError(
            "the ray runner needs Ray: pip install 'retrain[ray]'", where="backend.local.runner"
        ) from e
    for name in QUIET:  # the SDK's INFO lines ("Uploading package ...") are not ours to print
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return job_submission.JobSubmissionClient(address)
    except (RuntimeError, OSError, ValueError) as e:
        raise errors.ProviderError(
            f"cannot reach the Ray cluster at {address}: {_first_line(e)}",
            where="backend.local.runner.address",
        ) from e


def _status(info: Any) -> str:
    status = info.status
    return str(getattr(status, "value", status))


def _short(launch: runner.Launch) -> str:
    return fingerprint.short(launch.fingerprint)


def _first_line(error: BaseException) -> str:
    """The SDK puts the server's whole traceback in its message: keep the gist."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if "Error:" in line] or lines or [type(error).__name__]
    return useful[-1][:300]
