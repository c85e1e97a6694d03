"""The Ray runner end to end, as a user runs it, against the session's real Ray head.

The guarantees of the local runner, on a cluster: applying twice trains nothing the
second time; endpoints sharing a fingerprint share one Ray job; a ``retrain`` killed with
SIGKILL while its job trains leaves the job running, and the re-run follows that same
job (no second one); a timeout stops the job and publishes nothing. Every Ray file (job
logs, uploaded working_dirs) lies under the session's temporary directory, which the
suite's secret scan reads.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench import chaos, chaos_report
from bench import chaos_checks as checks
from reconciler import cli
from reconciler.providers.local import ray_runner
from tests.conftest import ROOT, SECRET_ENV, record

pytestmark = pytest.mark.ray
TRAINER = ROOT / "tests" / "providers" / "trainers" / "tiny.py"
DEFINITION = ROOT / "examples" / "bike_rental" / "webservice.json"
WAIT = 120  # seconds for a Ray job to reach a state the test waits for (2 shared cores)

MANIFEST = """\
apiVersion: retrain/v1
backend:
  kind: local
  local:
    runner: {{kind: ray, address: "{address}", pollSeconds: 0.2}}
trainers:
  tiny:
    entrypoint: trainer/tiny.py:train
    secrets: {{API_TOKEN: "${{env:{secret}}}"}}
    resources: {{cpus: 1, memory: 64Mi}}
    parameters: {{sleep: {sleep}}}
    timeout: {timeout}
defaults:
  trainer: tiny
  asset: Bike Demand [trained model]
  definition: webservice.json
  version: "1"
endpoints:
  - forEach: [{{n: a}}, {{n: b}}, {{n: c}}]
    name: ep-${{each.n}}
    webService: ws-${{each.n}}
    inputs: {{data: data/rows.csv}}
"""


def make_project(root: Path, address: str, *, sleep: float = 0, timeout: int = 120) -> Path:
    """Three endpoints on one model (same trainer, data and parameters)."""
    (root / "trainer").mkdir(parents=True)
    shutil.copy(TRAINER, root / "trainer" / "tiny.py")
    (root / "data").mkdir()
    (root / "data" / "rows.csv").write_text(f"y\n1\n2\n{time.time()}\n")  # a model of its own
    shutil.copy(DEFINITION, root / "webservice.json")
    text = MANIFEST.format(address=address, secret=SECRET_ENV, sleep=sleep, timeout=timeout)
    (root / "retrain.yaml").write_text(text)
    return root


def apply(project: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(
        ["apply", "--auto-approve", "-f", str(project / "retrain.yaml")],
        dict(os.environ),
        interactive=False,
    )
    out, err = capsys.readouterr()
    record(f"ray apply in {project}", out, err)
    return code, out + err


def jobs_of(address: str, fp: str) -> list[Any]:
    from ray import job_submission

    client = job_submission.JobSubmissionClient(address)
    return [j for j in client.list_jobs() if fp in str(j.submission_id)]


def only_model(project: Path) -> str:
    models = [p.name for p in (project / ".retrain" / "models").iterdir()]
    assert len(models) == 1, models
    return models[0]


def test_apply_twice_trains_one_ray_job_for_three_endpoints_then_nothing(
    ray_head: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(tmp_path, ray_head)
    code, shown = apply(project, capsys)
    assert code == 0, shown
    fp = only_model(project)
    jobs = jobs_of(ray_head, fp)
    assert [str(j.status.value) for j in jobs] == ["SUCCEEDED"]
    assert str(jobs[0].submission_id).endswith(f"-{fp}-1")
    assert "INFO" not in shown  # the Ray SDK's own lines are not printed
    for name in ("a", "b", "c"):
        definition = (project / ".retrain" / "webservices" / f"ws-{name}.json").read_text()
        assert fp in definition
    job = jobs[0]
    assert "env_vars" not in (job.runtime_env or {})  # secrets never in job metadata
    assert os.environ[SECRET_ENV] not in str(job)
    code, shown = apply(project, capsys)
    assert code == 0, shown
    assert "No changes" in shown
    assert len(jobs_of(ray_head, fp)) == 1  # the second apply submitted nothing


def test_a_sigkilled_apply_leaves_its_ray_job_and_the_rerun_follows_it(
    ray_head: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(tmp_path, ray_head, sleep=6)
    killed = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "--auto-approve", "-f", "retrain.yaml"],
        cwd=project,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        sid = wait_for_training(ray_head, project)
    finally:
        killed.send_signal(signal.SIGKILL)
        out, _ = killed.communicate(timeout=30)
        record("the killed ray apply", out)
    code, shown = apply(project, capsys)
    assert code == 0, shown
    assert f"following Ray job {sid}" in shown
    fp = only_model(project)
    assert [str(j.submission_id) for j in jobs_of(ray_head, fp)] == [sid]  # no second job
    assert sid.endswith(f"-{fp}-1")


def wait_for_training(address: str, project: Path) -> str:
    """The submission id of the project's job, once its trainer runs (it printed so)."""
    from ray import job_submission

    client = job_submission.JobSubmissionClient(address)
    store = str(project / ".retrain" / "models")
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for job in client.list_jobs():
            sid = str(job.submission_id)
            if sid.startswith(
                ray_runner.job_prefix(store)
            ) and "training started" in client.get_job_logs(sid):
                return sid
        time.sleep(0.2)
    pytest.fail("the Ray job never started training")


def test_a_timeout_stops_the_ray_job_and_publishes_nothing(
    ray_head: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(tmp_path, ray_head, sleep=60, timeout=4)
    code, shown = apply(project, capsys)
    assert code == 1, shown
    assert "timed out after 4s" in shown
    sid = shown.split("(Ray job ", 1)[1].split(" ", 1)[0]
    from ray import job_submission

    status = job_submission.JobSubmissionClient(ray_head).get_job_status(sid)
    assert str(status.value) == "STOPPED"
    models = project / ".retrain" / "models"
    assert [p.name for p in models.iterdir() if not p.name.startswith(".")] == []
    outputs = project / ".retrain" / ray_runner.OUTPUTS
    assert not (outputs / sid).exists()  # only a partial folder, never published


RAY_KILLS = (  # placed, so each lands while Ray jobs are submitted or trained
    chaos.Kill("KILL", "training"),
    chaos.Kill("TERM", "training"),
    chaos.Kill("KILL", "serving"),
)


def test_a_chaos_campaign_on_the_ray_runner_ends_with_every_count_at_zero(
    ray_head: str, tmp_path: Path
) -> None:
    """bench/chaos.py's checks (converged, nothing trained twice, history whole, no
    scratch, lock or secret left) after placed kills of applies training on Ray."""
    fleet = checks.Fleet(endpoints=2, models=1, seconds=3, ray=ray_head)
    result = chaos.campaign(fleet, seed=3, kills=RAY_KILLS, workdir=tmp_path)
    assert all(r.sent_at is not None for r in result.rounds), "a kill missed the running apply"
    found = {name: n for name, n in result.totals().items() if n}
    assert found == {}, f"{chaos_report.table(result)}\n" + "\n".join(
        chaos_report.round_line(r) for r in result.rounds
    )
