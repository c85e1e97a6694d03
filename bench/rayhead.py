"""Start and stop a local Ray head (``ray start --head --block``), for the benchmark and tests.

The head runs in its own session (process group) and is stopped by its process id:
SIGTERM (``--block`` then stops the processes it started), then SIGKILL to its group
for anything left. Every port is chosen free on 127.0.0.1, so the head never meets
another process's, and ``temp`` holds everything Ray writes (logs, uploaded packages).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 180.0  # seconds for the Jobs API to answer (~10 s idle; 2 shared cores)
STOP_WAIT = 30.0  # seconds for --block to stop what it started after SIGTERM
CPUS = 2  # the head's CPUs: two jobs at once, as this 2-core machine has


@dataclass
class Head:
    address: str  # the Jobs API (dashboard): http://127.0.0.1:PORT
    process: subprocess.Popen[bytes]
    started_in: float  # seconds from `ray start` to the Jobs API answering
    log: Path


class StartError(Exception):
    """The head did not come up; the message ends with its log's tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(temp: Path, cpus: int = CPUS) -> Head:
    temp.mkdir(parents=True, exist_ok=True)
    dashboard = free_port()
    bin_dir = Path(sys.executable).parent
    command = [
        str(bin_dir / "ray"), "start", "--head", "--block",
        "--num-cpus", str(cpus),
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
    log = temp / "ray-start.log"
    began = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    head = Head(f"http://127.0.0.1:{dashboard}", process, 0.0, log)
    try:
        _await(head)
    except BaseException:
        stop(head)
        raise
    head.started_in = time.monotonic() - began
    return head


def _await(head: Head) -> None:
    from ray import job_submission

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if head.process.poll() is not None:
            tail = head.log.read_text(errors="replace")[-2000:]
            raise StartError(f"ray start exited {head.process.returncode}: {tail}")
        with contextlib.suppress(Exception):
            job_submission.JobSubmissionClient(head.address).list_jobs()
            return
        if time.monotonic() > deadline:
            raise StartError(f"the Ray head did not answer within {START_TIMEOUT:g}s")
        time.sleep(0.5)


def stop(head: Head) -> None:
    with contextlib.suppress(ProcessLookupError):
        head.process.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        head.process.wait(timeout=STOP_WAIT)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(head.process.pid, signal.SIGKILL)  # its group: what it started and left
    head.process.wait()
