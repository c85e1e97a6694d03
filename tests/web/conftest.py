"""A real ``retrain serve`` (uvicorn, a subprocess) on a free port, over a project copy.

The server is the CLI as a user runs it; requests are real HTTP. What it prints is
recorded for the session's secret scan and kept for the test to read.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.conftest import record

START_TIMEOUT = 60.0  # seconds for the server to answer (importing scikit-learn included)


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    log: Path
    session: requests.Session = field(default_factory=requests.Session)

    def score(self, name: str, body: object, **headers: str) -> requests.Response:
        return self.session.post(f"{self.url}/services/{name}/score", json=body, headers=headers)

    def get(self, path: str, **headers: str) -> requests.Response:
        return self.session.get(f"{self.url}{path}", headers=headers)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(project: Path, env: Mapping[str, str] | None = None) -> Iterator[Server]:
    """``retrain serve`` in ``project`` until the block ends (then SIGTERM)."""
    port = free_port()
    log = project / f"serve-{port}.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "serve", "-f", "retrain.yaml",
             "--port", str(port), "--no-access-log"],
            cwd=project, env={**os.environ, **(env or {})}, stdout=sink, stderr=sink, text=True,
        )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_until_up(server)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
        server.session.close()
        record(f"retrain serve in {project}", server.output())


def _wait_until_up(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"retrain serve exited: {server.output()}")
        with contextlib.suppress(requests.ConnectionError):
            if server.get("/services").status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"retrain serve did not answer in {START_TIMEOUT}s: {server.output()}")


@pytest.fixture
def serve() -> Callable[..., contextlib.AbstractContextManager[Server]]:
    return serving
