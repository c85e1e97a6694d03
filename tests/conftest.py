"""Shared fixtures: a private copy of the example project, and the CLI run in-process.

Secrets are checked for the whole session, not per test. A distinctive test secret
is put in the environment as ``RETRAIN_TEST_SECRET`` before any test runs; every
copy of the example project passes it to its trainer (``secrets: {API_TOKEN:
${env:RETRAIN_TEST_SECRET}}``), so every plan, apply and error of the suite runs
with a secret loaded. Everything the tests see is searched for its value: each
in-process CLI run's stdout and stderr (``record``, also for out-of-process runs),
each test's captured output and failure report, and at the end every file under
the session's temporary directories (plan files, state dirs, model stores). A hit
prints where it was found (never the value) and fails the run.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler import cli
from tests.rayhead import ray_head  # noqa: F401 - one real Ray head per session, if used

ROOT = Path(__file__).resolve().parents[1]
SECRET_ENV = "RETRAIN_TEST_SECRET"
# An outer run (the scan's own self-test) may hand down its own distinctive value.
_given = os.environ.get(SECRET_ENV, "")
SECRET = _given if _given.startswith("rt-secret-") else f"rt-secret-{secrets.token_hex(12)}"
os.environ[SECRET_ENV] = SECRET
SECRET_LINE = f'    secrets: {{API_TOKEN: "${{env:{SECRET_ENV}}}"}}\n'

_leaks: list[str] = []  # where the secret was seen (descriptions only, never the value)
_scanned_roots: list[Path] = []


def record(where: str, *texts: str) -> None:
    """Note output the tests saw; any that holds the test secret fails the session."""
    if any(SECRET in text for text in texts):
        _leaks.append(where)


def leaked_files(root: Path) -> list[Path]:
    """Files under ``root`` whose bytes contain the test secret."""
    needle = SECRET.encode()
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with contextlib.suppress(OSError):
                if needle in path.read_bytes():
                    found.append(path)
    return found


@pytest.fixture(scope="session", autouse=True)
def _secret_scan_roots(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The session's temporary directories, scanned for the secret at the end."""
    _scanned_roots.append(tmp_path_factory.getbasetemp())


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for name, text in report.sections:
        record(f"{report.nodeid}: {name}", text)
    if report.longrepr is not None:
        record(f"{report.nodeid}: {report.when} failure report", report.longreprtext)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for root in _scanned_roots:
        _leaks.extend(f"file {path}" for path in leaked_files(root))
    if _leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _leaks:
        return
    terminalreporter.write_sep("=", f"the test secret (${SECRET_ENV}) leaked", red=True)
    for where in _leaks:
        terminalreporter.write_line(f"secret value found in {where}", red=True)
    terminalreporter.write_line("Secret values must never appear in output or files: FAILED.")


@dataclass
class Run:
    code: int
    out: str
    err: str


def copy_example(dest: Path) -> Path:
    """The example project in ``dest``, its trainer given the test secret."""
    manifest = (ROOT / "retrain.yaml.example").read_text(encoding="utf-8")
    anchor = "    timeout: 600"
    assert manifest.count(anchor) == 1, "the example's trainer changed: update copy_example"
    (dest / "retrain.yaml").write_text(manifest.replace(anchor, SECRET_LINE + anchor))
    shutil.copytree(
        ROOT / "examples" / "bike_rental",
        dest / "examples" / "bike_rental",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return dest


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the example project (manifest, trainer, data, definition), as a user has it."""
    return copy_example(tmp_path)


@pytest.fixture
def retrain(
    project: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Callable[..., Run]:
    """``retrain(*args)`` runs the CLI in ``project`` and returns exit code and output."""
    monkeypatch.chdir(project)

    def run(*args: str, env: Mapping[str, str] | None = None, interactive: bool = False) -> Run:
        capsys.readouterr()
        code = cli.main(list(args), {**os.environ, **(env or {})}, interactive=interactive)
        captured = capsys.readouterr()
        record(f"{request.node.nodeid}: retrain {' '.join(args)}", captured.out, captured.err)
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def applied_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The example project after one successful apply (trained once per session)."""
    root = copy_example(tmp_path_factory.mktemp("applied"))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(
            ["apply", "--auto-approve", "-f", str(root / "retrain.yaml")],
            dict(os.environ),
            interactive=False,
        )
    record("applied_template: retrain apply", out.getvalue(), err.getvalue())
    assert code == 0, err.getvalue()
    yield root


@pytest.fixture
def applied(project: Path, applied_template: Path) -> Path:
    """``project`` with the state of one successful apply (copied, not retrained)."""
    shutil.copytree(applied_template / ".retrain", project / ".retrain")
    return project
