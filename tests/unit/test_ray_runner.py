"""The Ray runner's parts that need no cluster: the one-shot channel, its settings, and
that nothing imports ``ray`` until a job runs. (Against a real head: tests/e2e/test_ray.py
and the provider contract suite's ``ray`` harness.)"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from reconciler import errors, manifest, providers, redact
from reconciler.providers.local import ray_channel, ray_runner, runner
from reconciler.providers.local import retrain_ray_job as job_side
from tests.conftest import ROOT


def fetch(url: str, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture
def channel() -> Iterator[ray_channel.Channel]:
    made = ray_channel.Channel("127.0.0.1")
    yield made
    made.close()


def test_a_ticket_gives_its_job_once_then_its_inputs_until_ready(
    channel: ray_channel.Channel, tmp_path: Path
) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("y\n1\n")
    ticket = channel.offer({"env": {"TOKEN": "value-1234"}}, {"data": str(data)})
    base = channel.url()
    assert fetch(f"{base}/input/{ticket}/data")[0] == 409  # not before the job is taken
    status, body = fetch(f"{base}/job/{ticket}")
    assert (status, json.loads(body)) == (200, {"env": {"TOKEN": "value-1234"}})
    assert fetch(f"{base}/job/{ticket}")[0] == 410  # a second taker gets nothing
    assert fetch(f"{base}/input/{ticket}/data") == (200, b"y\n1\n")
    assert fetch(f"{base}/input/{ticket}/other")[0] == 404  # only the job's own inputs
    assert not channel.ready(ticket)
    assert fetch(f"{base}/ready/{ticket}", "POST")[0] == 200
    assert channel.ready(ticket)
    assert fetch(f"{base}/input/{ticket}/data")[0] == 409  # void once ready


def test_an_unknown_or_withdrawn_ticket_gets_nothing(channel: ray_channel.Channel) -> None:
    ticket = channel.offer({"secret": "x"}, {})
    channel.withdraw(ticket)
    assert fetch(f"{channel.url()}/job/{ticket}")[0] == 404
    assert fetch(f"{channel.url()}/job/guess")[0] == 404


def test_submission_ids_follow_fingerprint_attempt_and_store() -> None:
    fp = "a" * 64
    first = ray_runner.submission_id(fp, 1, "/state/models")
    assert first == ray_runner.submission_id(fp, 1, "/state/models")  # a re-run finds it
    assert first.endswith(f"-{fp}-1") and first.startswith("retrain-")
    assert first != ray_runner.submission_id(fp, 2, "/state/models")
    assert first != ray_runner.submission_id(fp, 1, "/elsewhere/models")


@pytest.mark.parametrize(
    ("given", "expected"), [(512, 512), ("2Gi", 2 * 2**30), ("300Mi", 300 * 2**20), ("7", 7)]
)
def test_memory_is_bytes_or_a_binary_unit(given: int | str, expected: int) -> None:
    assert ray_runner.memory_bytes(given) == expected


def test_settings_default_the_storage_into_the_state_directory(tmp_path: Path) -> None:
    found = ray_runner.settings(
        {"kind": "ray", "address": "http://127.0.0.1:8265/"},
        manifest_dir=tmp_path,
        state_dir=tmp_path / ".retrain",
    )
    assert found.address == "http://127.0.0.1:8265"
    assert found.storage == (tmp_path / ".retrain" / ray_runner.OUTPUTS).resolve()
    assert found.callback_host == "127.0.0.1"


MANIFEST = """\
apiVersion: retrain/v1
backend:
  kind: local
  local:
    runner: {runner}
trainers:
  t:
    entrypoint: train.py:train
    resources: {resources}
endpoints:
  - name: a
    webService: ws-a
    trainer: t
    asset: A
    version: "1"
    inputs: {{data: data.csv}}
"""


def load(tmp_path: Path, runner: str, resources: str = "{cpus: 2}") -> list[str]:
    (tmp_path / "train.py").write_text("def train(**kw):\n    pass\n")
    (tmp_path / "data.csv").write_text("y\n1\n")
    path = tmp_path / "retrain.yaml"
    path.write_text(MANIFEST.format(runner=runner, resources=resources))
    try:
        manifest.load(path, env={}, backends=list(providers.registry().values()))
    except errors.ManifestError as e:
        return [str(p) for p in e.problems]
    return []


def test_a_ray_runner_with_an_address_and_resources_is_a_valid_manifest(tmp_path: Path) -> None:
    runner = "{kind: ray, address: 'http://10.0.0.5:8265', storage: /mnt/shared}"
    assert load(tmp_path, runner, "{cpus: 2, gpus: 1, memory: 4Gi}") == []


@pytest.mark.parametrize(
    ("runner", "resources"),
    [
        ("{kind: ray}", "{cpus: 1}"),  # no address
        ("{kind: ray, address: '10.0.0.5:8265'}", "{cpus: 1}"),  # not a URL
        ("{kind: dask, address: 'http://h:1'}", "{cpus: 1}"),  # no such runner
        ("{kind: subprocess}", "{cpus: 0}"),  # no CPUs
        ("{kind: subprocess}", "{memory: 4GB}"),  # not a binary unit
    ],
)
def test_a_bad_runner_or_resources_is_a_located_problem(
    tmp_path: Path, runner: str, resources: str
) -> None:
    found = load(tmp_path, runner, resources)
    assert found, "the manifest was accepted"
    assert all("retrain.yaml:" in p for p in found)


def test_neither_help_nor_the_subprocess_path_imports_ray() -> None:
    """Ray takes seconds to import and is an optional extra: only a Ray job loads it."""
    code = (
        "import sys\n"
        "from reconciler import cli\n"
        "from reconciler.providers.local import backend, provider, ray_runner\n"
        "cli.main(['--help'], {}, interactive=False)\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# -- the claim/follow logic against a scripted Jobs API (the real one: tests/e2e/test_ray.py)
class FakeJobs:
    """A JobSubmissionClient whose jobs end as ``outcome`` says: ``SUCCEEDED`` (outputs
    written to storage), ``FAILED`` (exit 1, ``logs``), ``GONE`` (the channel was gone),
    ``RUNNING`` (never ends)."""

    def __init__(self, storage: Path, outcome: str = "SUCCEEDED", logs: str = "") -> None:
        self.storage = storage
        self.outcome = outcome
        self.logs = logs
        self.jobs: dict[str, SimpleNamespace] = {}
        self.submitted: list[str] = []
        self.stopped: list[str] = []
        self.entrypoints: list[str] = []
        self.runtime_envs: list[dict[str, Any]] = []

    def add(self, sid: str, status: str, exit_code: int | None = None) -> None:
        now = time.time() * 1000
        self.jobs[sid] = SimpleNamespace(
            status=status, start_time=now, end_time=now, message="", driver_exit_code=exit_code
        )

    def submit_job(self, **kw: Any) -> str:
        sid = kw["submission_id"]
        if sid in self.jobs:
            raise RuntimeError(f"Job with submission_id {sid} already exists.")
        self.submitted.append(sid)
        self.entrypoints.append(kw["entrypoint"])
        self.runtime_envs.append(kw["runtime_env"])
        if self.outcome == "SUCCEEDED":
            (self.storage / sid).mkdir(parents=True)
            (self.storage / sid / "model.ilearner").write_text("m")
            (self.storage / sid / "evaluation.csv").write_text("metric,value\nR2,0.9\n")
        codes = {"FAILED": 1, "GONE": job_side.CHANNEL_GONE}
        status = "FAILED" if self.outcome == "GONE" else self.outcome
        self.add(sid, status, codes.get(self.outcome, 0))
        return str(sid)

    def get_job_info(self, sid: str) -> SimpleNamespace:
        if sid not in self.jobs:
            raise RuntimeError(f"Request failed with status code 404: Job {sid} does not exist.")
        return self.jobs[sid]

    def get_job_logs(self, sid: str) -> str:
        return self.logs

    def stop_job(self, sid: str) -> bool:
        self.stopped.append(sid)
        self.jobs[sid].status = "STOPPED"
        return True


@dataclass
class Rig:
    ray: ray_runner.RayRunner
    jobs: FakeJobs
    store: Path
    scratch: Path
    lines: list[str]

    def launch(self, timeout: float = 60, secrets: dict[str, str] | None = None) -> runner.Launch:
        self.scratch.mkdir(parents=True, exist_ok=True)
        spec = {
            "entrypoint": f"{self.store.parent.parent / 'train.py'}:train",
            "code": [str(self.store.parent.parent / "train.py")],
            "inputs": {},
            "parameters": {},
            "trainer": "t",
            "fingerprint": FP,
            "scratch": str(self.scratch),
            "store": str(self.store),
            "metadata": {"fingerprint": FP},
        }
        return runner.Launch(spec, secrets or {}, timeout)

    def sid(self, attempt: int) -> str:
        return ray_runner.submission_id(FP, attempt, str(self.store))


FP = "b" * 64


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    config = ray_runner.settings(
        {"address": "http://127.0.0.1:1"}, manifest_dir=tmp_path, state_dir=tmp_path / "state"
    )
    jobs = FakeJobs(config.storage)
    lines: list[str] = []
    made = ray_runner.RayRunner(config, log=lines.append, client=jobs, sleep=lambda _s: None)
    (tmp_path / "train.py").write_text("def train(**kw): ...\n")
    store = tmp_path / "state" / "models"
    yield Rig(made, jobs, store, store / ".job-x", lines)
    made._channel.close()


def test_a_new_model_is_one_submitted_job_collected_into_the_store(rig: Rig) -> None:
    rig.ray.run(rig.launch())
    assert rig.jobs.submitted == [rig.sid(1)]
    assert (rig.store / FP / "model.ilearner").read_text() == "m"
    assert not (rig.ray.config.storage / rig.sid(1)).exists()  # collected, then removed
    env = rig.jobs.runtime_envs[0]
    assert "env_vars" not in env and env["working_dir"] == str(rig.store.parent.parent)
    assert "/state/" in env["excludes"]  # the state directory is never uploaded


def test_a_running_job_of_a_dead_apply_is_followed_not_submitted_again(rig: Rig) -> None:
    rig.jobs.add(rig.sid(1), "RUNNING")
    rig.jobs.outcome = "RUNNING"
    follow = rig.ray._follow

    def finish(sid: str, launch: runner.Launch) -> Any:
        rig.jobs.jobs[sid].status = "SUCCEEDED"
        (rig.jobs.storage / sid).mkdir(parents=True)
        (rig.jobs.storage / sid / "model.ilearner").write_text("m")
        (rig.jobs.storage / sid / "evaluation.csv").write_text("metric,value\nR2,0.9\n")
        return follow(sid, launch)

    rig.ray._follow = finish  # type: ignore[method-assign]
    rig.ray.run(rig.launch())
    assert rig.jobs.submitted == []
    assert f"following Ray job {rig.sid(1)} (RUNNING)" in "\n".join(rig.lines)
    assert (rig.store / FP / "model.ilearner").is_file()


def test_an_earlier_failure_makes_the_next_attempt(rig: Rig) -> None:
    rig.jobs.add(rig.sid(1), "FAILED", 1)
    rig.jobs.add(rig.sid(2), "STOPPED")
    rig.ray.run(rig.launch())
    assert rig.jobs.submitted == [rig.sid(3)]


def test_a_job_that_found_its_apply_gone_is_submitted_again_once(rig: Rig) -> None:
    rig.jobs.add(rig.sid(1), "PENDING")
    follow = rig.ray._follow

    def gone_then_real(sid: str, launch: runner.Launch) -> Any:
        if sid == rig.sid(1):
            rig.jobs.jobs[sid].status = "FAILED"
            rig.jobs.jobs[sid].driver_exit_code = job_side.CHANNEL_GONE
        return follow(sid, launch)

    rig.ray._follow = gone_then_real  # type: ignore[method-assign]
    rig.ray.run(rig.launch())
    assert rig.jobs.submitted == [rig.sid(2)]
    assert (rig.store / FP / "model.ilearner").is_file()


def test_a_failed_job_reports_its_last_log_line_masked(rig: Rig) -> None:
    rig.jobs.outcome = "FAILED"
    rig.jobs.logs = "Traceback...\nRuntimeError: token tok-12345678 refused\n"
    with pytest.raises(errors.TrainingError) as caught:
        rig.ray.run(rig.launch(secrets={"TOKEN": "tok-12345678"}))
    assert "RuntimeError: token (sensitive) refused" in str(caught.value)
    assert "tok-12345678" not in str(caught.value)
    assert not (rig.store / FP).exists()


def test_a_job_past_its_timeout_is_stopped(rig: Rig) -> None:
    rig.jobs.outcome = "RUNNING"
    launch = rig.launch(timeout=-1)  # already past it
    with pytest.raises(errors.TrainingError, match="timed out"):
        rig.ray.run(launch)
    assert rig.jobs.stopped == [rig.sid(1)]


def test_a_submit_racing_another_follows_the_winner(rig: Rig) -> None:
    real = rig.jobs.submit_job

    def lose(**kw: Any) -> str:
        real(**kw)  # the other apply's submit, just before ours
        return real(**kw)

    rig.jobs.submit_job = lose  # type: ignore[method-assign]
    rig.ray.run(rig.launch())
    assert rig.jobs.submitted == [rig.sid(1)]
    assert "submitted meanwhile" in "\n".join(rig.lines)


def test_the_entrypoint_names_a_ticket_and_no_secret(rig: Rig) -> None:
    rig.ray.run(rig.launch(secrets={"TOKEN": "tok-12345678"}))
    (entrypoint,) = rig.jobs.entrypoints
    assert entrypoint.startswith("python -m retrain_ray_job http://127.0.0.1:")
    assert "tok-12345678" not in entrypoint and "TOKEN" not in entrypoint


def test_cancel_stops_following_and_leaves_the_job(rig: Rig) -> None:
    rig.jobs.add(rig.sid(1), "RUNNING")
    rig.ray.cancel()
    with pytest.raises(errors.StoppedError, match="the next apply follows it"):
        rig.ray.run(rig.launch())
    assert rig.jobs.stopped == []


def test_a_dependency_outside_the_trainers_folder_is_refused(rig: Rig, tmp_path: Path) -> None:
    launch = rig.launch()
    spec = dict(launch.spec) | {"code": [*launch.spec["code"], "/elsewhere/helpers.py"]}
    with pytest.raises(errors.ProviderError, match="must be in the trainer's folder"):
        rig.ray.run(runner.Launch(spec, {}, 60))
    assert rig.jobs.submitted == []


def test_secret_parameters_are_masked_by_the_job_too(rig: Rig) -> None:
    rig.ray.scrub = redact.Redactor(["param-secret-99"])
    launch = rig.launch(secrets={"TOKEN": "tok-12345678"})
    spec = dict(launch.spec) | {"parameters": {"token": "param-secret-99", "n": 3, "k": "v"}}
    found = rig.ray._secret_values(runner.Launch(spec, launch.secrets, 60))
    assert found == ["tok-12345678", "param-secret-99"]


def test_a_jobs_instructions_leave_memory_when_it_ends(rig: Rig) -> None:
    rig.ray.run(rig.launch(secrets={"TOKEN": "tok-12345678"}))
    (entrypoint,) = rig.jobs.entrypoints
    url, ticket = entrypoint.split()[-2:]
    assert fetch(f"{url}/job/{ticket}")[0] == 404
