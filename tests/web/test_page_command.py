"""``retrain page`` refuses what it cannot serve with one line, before serving anything."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import ROOT, Run


def test_a_port_in_use_is_one_error_line(retrain: Callable[..., Run]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = retrain("page", "--port", str(port))
    assert result.code == 1
    assert result.err.splitlines() == [
        f"Error: cannot listen: Address already in use (127.0.0.1:{port})"
    ]


def test_a_bad_manifest_is_refused_before_listening(
    retrain: Callable[..., Run], project: Path
) -> None:
    manifest = project / "retrain.yaml"
    manifest.write_text(manifest.read_text().replace("apiVersion: retrain/v1", "apiVersion: v0"))
    result = retrain("page", "--port", "0")
    assert result.code == 1
    assert len(result.err.splitlines()) == 1
    assert result.err.startswith("Error: ")
    assert "retrain.yaml" in result.err


def test_help_says_what_the_page_shows_and_the_server_is_imported_lazily() -> None:
    """``retrain --help`` must not pay for uvicorn and starlette: only ``page`` imports them."""
    probe = (
        "import sys; from reconciler import cli; "
        "code = cli.main(['--help'], {}); "
        "print(sorted(m for m in ('uvicorn', 'starlette') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines()[-1] == "[]"
    assert "page" in out
