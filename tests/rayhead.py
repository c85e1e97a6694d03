"""A real local Ray head for the ``ray`` tests: one per session, shared by all of them.

``ray start --head --block`` runs in its own session (process group) and is stopped by
this fixture, by its process id: SIGTERM (``--block`` then stops the processes it
started), then SIGKILL to its group for anything left. Its temporary directory (logs,
uploaded working_dirs, job logs) lies under the session's temporary directory, so the
suite's secret scan reads every file Ray wrote too.

Ray takes some seconds to start (``bench/results/ray.md`` has the figure), which is why the
Ray tests are few and share this head. Where Ray is not installed (``pip install
'retrain[ray]'``; Ray ships no wheel for some platforms) they skip, saying so, unless
``RETRAIN_REQUIRE_RAY=1`` (CI), where a missing Ray fails them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT = 180  # seconds for the head's Jobs API to answer (~10 s idle; 2 shared cores)
STOP_WAIT = 30  # seconds for --block to stop what it started after SIGTERM
CPUS = 2  # the head's CPUs: enough for two jobs at once, as the machine has
REQUIRE = "RETRAIN_REQUIRE_RAY"


def require_ray() -> None:
    if importlib.util.find_spec("ray") is not None:
        return
    message = "Ray is not installed: pip install 'retrain[ray]' (make install-test does)"
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{message}; {REQUIRE}=1 says these tests must run")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Jobs API address (``http://127.0.0.1:PORT``) of a running local Ray head."""
    require_ray()
    temp = tmp_path_factory.mktemp("ray")  # short: Ray's socket paths must fit 107 bytes
    dashboard = free_port()
    bin_dir = Path(sys.executable).parent
    command = [
        str(bin_dir / "ray"), "start", "--head", "--block",
        "--num-cpus", str(CPUS),
        "--node-ip-address", "127.0.0.1",
        "--port", str(free_port()),
        "--include-dashboard=true", "--dashboard-host", "127.0.0.1",
        "--dashboard-port", str(dashboard),
        "--ray-client-server-port", str(free_port()),
        "--dashboard-agent-listen-port", str(free_port()),
        "--dashboard-agent-grpc-port", str(free_port()),
        "--metrics-export-port", str(free_port()),
        "--temp-dir", str(temp),
        "--disable-usage-stats",
    ]  # fmt: skip
    # The jobs' `python` is this venv's (the trainers need its packages), as on a cluster
    # whose image has the trainers' dependencies installed.
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    log = (temp / "ray-start.log").open("wb")
    head = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    address = f"http://127.0.0.1:{dashboard}"
    try:
        _await(address, head, temp / "ray-start.log")
        yield address
    finally:
        _stop(head)
        log.close()


def _await(address: str, head: subprocess.Popen[bytes], log: Path) -> None:
    from ray import job_submission

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if head.poll() is not None:
            pytest.fail(f"ray start exited {head.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(Exception):
            job_submission.JobSubmissionClient(address).list_jobs()
            return
        if time.monotonic() > deadline:
            pytest.fail(f"the Ray head did not answer within {START_TIMEOUT}s")
        time.sleep(0.5)


def _stop(head: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        head.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        head.wait(timeout=STOP_WAIT)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(head.pid, signal.SIGKILL)  # its group: what it started and left behind
    head.wait()
