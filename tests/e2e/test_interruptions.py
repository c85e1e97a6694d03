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
    assert err.rstrip().endswith("Terminated.")
    pids = [int(p) for p in (root / "pids.txt").read_text().split()]
    time.sleep(0.5)
    assert not any(alive(pid) for pid in pids)
    assert not (root / ".retrain" / "lock").exists()
    assert not list((root / ".retrain" / "models").glob(".job-*"))
    assert not (root / ".retrain" / "webservices").exists()  # nothing half-applied
    assert os.environ.get("RETRAIN_TEST_SECRET") not in err
