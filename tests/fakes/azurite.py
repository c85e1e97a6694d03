"""Start and stop the real Azurite blob emulator for tests and for ``python -m tests.fakes``.

Why real Azurite: blob storage is where trained models, evaluation results and input data live,
and SAS tokens, container semantics and the azure-storage-blob client are exactly where a
retrain pipeline breaks. A dict pretending to be storage would prove nothing about those.

Azurite comes from npm, pinned to 3.35.0 in ``tests/fakes/package.json`` (3.36+ needs
Node >= 21; these machines have Node 20). Install it with ``npm ci --prefix tests/fakes``, or
point ``RETRAIN_AZURITE_BIN`` at an ``azurite-blob`` executable. It runs on 127.0.0.1 only,
with telemetry off so it never reaches the network.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

HERE = Path(__file__).resolve().parent
ENV_BIN = "RETRAIN_AZURITE_BIN"
LOCAL_BIN = HERE / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT_NAME = "devstoreaccount1"
# Azurite's well-known development account key (public, documented by Microsoft; not a secret).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
HOST = "127.0.0.1"
# Seconds to wait for Azurite to accept connections; a cold start takes ~1-3 s on these machines.
START_TIMEOUT_S = 30.0
# Seconds to wait after SIGTERM before SIGKILL; Azurite closes in well under a second.
STOP_TIMEOUT_S = 10.0
# Attempts at picking a free port, in case another process grabs it between probe and bind.
PORT_ATTEMPTS = 3


def azurite_binary() -> str | None:
    """Path of the ``azurite-blob`` executable, or None when it is not installed."""
    env = os.environ.get(ENV_BIN)
    if env:
        return env if Path(env).is_file() and os.access(env, os.X_OK) else None
    return str(LOCAL_BIN) if LOCAL_BIN.exists() else None


def skip_reason() -> str | None:
    """Why Azurite-backed tests cannot run here, or None if they can."""
    if azurite_binary() is None:
        where = os.environ.get(ENV_BIN) or str(LOCAL_BIN)
        return (
            f"Azurite blob emulator not installed ({where} missing): run "
            f"`npm ci --prefix tests/fakes` or set {ENV_BIN}"
        )
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.2):
        return True
    return False


class AzuriteError(RuntimeError):
    pass


class Azurite:
    """A running ``azurite-blob`` process. Use as a context manager."""

    def __init__(self, *, location: str | None = None, binary: str | None = None) -> None:
        self.binary = binary or azurite_binary()
        self._own_dir: tempfile.TemporaryDirectory[str] | None = None
        if location is None:
            self._own_dir = tempfile.TemporaryDirectory(prefix="retrain-azurite-")
            location = self._own_dir.name
        self.location = location
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(location) / "azurite-process.log"

    @property
    def blob_endpoint(self) -> str:
        return f"http://{HOST}:{self.port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};"
            f"AccountKey={ACCOUNT_KEY};BlobEndpoint={self.blob_endpoint};"
        )

    account_name = ACCOUNT_NAME
    account_key = ACCOUNT_KEY

    def start(self) -> Azurite:
        if self.binary is None:
            raise AzuriteError(skip_reason() or "azurite-blob not found")
        if shutil.which("node") is None and not Path(self.binary).name.endswith(".exe"):
            raise AzuriteError("node is not on PATH; Azurite needs Node.js 20")
        last = ""
        for _ in range(PORT_ATTEMPTS):
            self.port = _free_port()
            if self._launch():
                return self
            last = self.log_path.read_text(errors="replace")[-2000:]  # tail: enough to diagnose
        raise AzuriteError(f"Azurite did not start on {HOST}: {last}")

    def _launch(self) -> bool:
        cmd = [
            str(self.binary),
            "--blobHost",
            HOST,
            "--blobPort",
            str(self.port),
            "--location",
            self.location,
            "--silent",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
        ]
        with open(self.log_path, "ab") as logf:
            self.process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal goes to us, and we stop it
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                return False
            if _accepts(self.port):
                return True
            time.sleep(0.05)  # seconds between connection probes
        self.stop()
        return False

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)

    def close(self) -> None:
        """Stop and delete the data directory if this object created it."""
        self.stop()
        if self._own_dir is not None:
            self._own_dir.cleanup()
            self._own_dir = None

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
