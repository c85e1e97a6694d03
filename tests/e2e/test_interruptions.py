"""A training job past its timeout, and an apply cancelled by SIGTERM (what CI sends),
leave no process behind and no lock held; the next apply converges."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent

SLOW_TRAINER = """
import os
import subprocess
import time
from pathlib import Path


def train(*, inputs, parameters, model_path, evaluation_path):
    child = subprocess.Popen(["sleep", "60"])
    Path(parameters["pids"]).write_text(f"{os.getpid()} {child.pid}")
    time.sleep(60)
"""

MANIFEST = """\
apiVersion: retrain/v1
backend: {kind: local}
trainers:
  slow:
    entrypoint: slow.py:train
    parameters: {pids: pids.txt}
    timeout: TIMEOUT
endpoints:
  - name: solo
    webService: ws-solo
    asset: Bike Demand [trained model]
    version: "1"
    trainer: slow
    inputs: {data: data.csv}
    definition: webservice.json
"""


def project(tmp_path: Path, timeout: float) -> Path:
    (tmp_path / "slow.py").write_text(SLOW_TRAINER)
    (tmp_path / "data.csv").write_text("y\n1\n")
    shutil.copy(
        HERE.parents[1] / "examples" / "bike_rental" / "webservice.json",
        tmp_path / "webservice.json",
    )
    (tmp_path / "retrain.yaml").write_text(MANIFEST.replace("TIMEOUT", str(timeout)))
    return tmp_path


def alive(pid: int) -> bool:
    """Running or sleeping; a zombie waiting for init to reap it counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_for(path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def retrain(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_timed_out_trainer_is_stopped_with_everything_it_started(tmp_path: Path) -> None:
    root = project(tmp_path, timeout=2)
    run = retrain(root, "apply", "--auto-approve")
    out, _err = run.communicate(timeout=60)
    assert run.returncode == 1
    assert "training failed: trainer 'slow' timed out after 2s" in out
    pids = [int(p) for p in (root / "pids.txt").read_text().split()]
    time.sleep(0.5)
    assert not any(alive(pid) for pid in pids)
    assert not list((root / ".retrain" / "models").glob(".job-*"))


def test_sigterm_stops_the_apply_its_trainers_and_releases_the_lock(tmp_path: Path) -> None:
    root = project(tmp_path, timeout=120)
    run = retrain(root, "apply", "--auto-approve")
    wait_for(root / "pids.txt")
    assert (root / ".retrain" / "lock").exists()
    run.send_signal(signal.SIGTERM)
    _out, err = run.communicate(timeout=30)
    assert run.returncode == 143, err
    # the last words name the job stopped; it is not reported as failed (issue 10)
    assert err.rstrip().splitlines()[-2:][0] == "Terminated."
    assert "  stopped: model " in err.rstrip().splitlines()[-1]
    assert "failed" not in err and "printed nothing" not in err
    pids = [int(p) for p in (root / "pids.txt").read_text().split()]
    time.sleep(0.5)
    assert not any(alive(pid) for pid in pids)
    assert not (root / ".retrain" / "lock").exists()
    assert not list((root / ".retrain" / "models").glob(".job-*"))
    assert not (root / ".retrain" / "webservices").exists()  # nothing half-applied
    assert os.environ["RETRAIN_TEST_SECRET"] not in err


def test_sigkill_of_apply_kills_its_trainer_and_everything_the_trainer_started(
    tmp_path: Path,
) -> None:
    root = project(tmp_path, timeout=120)
    run = retrain(root, "apply", "--auto-approve")
    wait_for(root / "pids.txt")
    run.kill()  # as the OOM killer would: no handler runs, no cleanup in this process
    run.communicate(timeout=30)
    pids = [int(p) for p in (root / "pids.txt").read_text().split()]
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids)


SECRET_TRAINER = """
import os
import time
from pathlib import Path


def train(*, inputs, parameters, model_path, evaluation_path):
    Path("started.txt").write_text("yes")
    time.sleep(60)
"""

SECRET_MANIFEST = MANIFEST.replace(
    "    parameters: {pids: pids.txt}\n    timeout: TIMEOUT\n",
    '    secretParameters: {db_password: "${env:RETRAIN_TEST_SECRET}"}\n',
)


def test_no_file_of_a_running_or_killed_trainer_holds_a_secret_and_the_next_run_sweeps_it(
    tmp_path: Path,
) -> None:
    root = project(tmp_path, timeout=120)
    (root / "slow.py").write_text(SECRET_TRAINER)
    (root / "retrain.yaml").write_text(SECRET_MANIFEST)
    run = retrain(root, "apply", "--auto-approve")
    wait_for(root / "started.txt")
    secret = os.environ["RETRAIN_TEST_SECRET"].encode()
    state = root / ".retrain"
    scratch = list((state / "models").glob(".job-*"))
    assert len(scratch) == 1  # training is running in it now
    assert not [p for p in state.rglob("*") if p.is_file() and secret in p.read_bytes()]
    run.kill()
    run.communicate(timeout=30)
    assert scratch[0].exists()  # a dead run's scratch stays until the next run
    (root / "slow.py").write_text(SLOW_TRAINER.replace("time.sleep(60)", "raise SystemExit(3)"))
    rerun = retrain(root, "apply", "--auto-approve")
    _out, err = rerun.communicate(timeout=60)
    assert not list((state / "models").glob(".job-*")), err
    assert not [p for p in state.rglob("*") if p.is_file() and secret in p.read_bytes()]
