"""The status page in a real headless Chromium, after real applies of the bike example.

``retrain page`` runs as a process, as a user starts it; the page it serves must load
with no console error and no failed request, show every endpoint of the example in
its table and its chart, mark the challenger the gate blocked, fetch nothing from
elsewhere, and stop with exit 0 on SIGTERM. A screenshot is kept in
``tests/artifacts/status-page.png`` (git-ignored; the path is printed).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import cli
from tests.conftest import Run, record
from tests.web import browser

pytestmark = pytest.mark.slow
ENDPOINTS = ["bike-seattle", "bike-portland", "bike-boston"]
STARTUP = 30.0  # seconds for the process to load the manifest and listen (a loaded CI box)


def drop_rows(project: Path, rows: int) -> None:
    data = project / "examples" / "bike_rental" / "data" / "boston.csv"
    data.write_text("".join(data.read_text().splitlines(keepends=True)[:-rows]))


def apply(project: Path) -> Run:
    """``retrain apply --auto-approve`` in-process, its output seen by the secret scan."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(
            ["apply", "--auto-approve", "-f", str(project / "retrain.yaml")],
            dict(os.environ),
            interactive=False,
        )
    record("status page: retrain apply", out.getvalue(), err.getvalue())
    return Run(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def with_history(applied_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example after three applies: created, boston retrained on new data, then a
    boston challenger the gate blocks (its floor raised above what the model reaches).
    One project for the module: every test reads it, and the one that edits the
    manifest puts it back."""
    project = tmp_path_factory.mktemp("page")
    shutil.copytree(applied_template, project, dirs_exist_ok=True)
    drop_rows(project, 24)
    promoted = apply(project)
    assert promoted.code == 0, promoted.err
    manifest = project / "retrain.yaml"
    manifest.write_text(manifest.read_text().replace("minimum: 0.6 ", "minimum: 0.99"))
    drop_rows(project, 24)
    blocked = apply(project)
    assert blocked.code == 1
    assert "bike-boston: gate-blocked" in blocked.out + blocked.err
    return project


@pytest.fixture(scope="module")
def served(with_history: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``retrain page --port 0`` in the project: its URL and its process."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "page", "-f", "retrain.yaml", "--port", "0"],
        cwd=with_history,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield _url(proc), proc
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate()
        record("retrain page", out, err)


def _url(proc: subprocess.Popen[str]) -> str:
    """The URL the process prints once it listens."""
    assert proc.stderr is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + STARTUP
        while time.monotonic() < deadline and sel.select(deadline - time.monotonic()):
            line = proc.stderr.readline()
            if found := re.search(r"at (http://\S+/) ", line):
                return found.group(1)
            assert line, f"retrain page exited {proc.wait()} before listening"
    raise AssertionError("retrain page printed no URL")


def get(url: str) -> tuple[int, str, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def test_the_page_shows_every_endpoint_and_the_blocked_gate_in_chromium(
    served: tuple[str, subprocess.Popen[str]],
) -> None:
    url, _proc = served
    with browser.browser() as context:
        seen = browser.watch(context)
        response = seen.page.goto(url)
        assert response is not None and response.status == 200
        rows = seen.page.locator("tr.endpoint")
        assert rows.evaluate_all("rs => rs.map(r => r.dataset.endpoint)") == ENDPOINTS
        charts = seen.page.locator("section.trend svg.chart")
        assert charts.count() == len(ENDPOINTS)
        boston = seen.page.locator('section.trend[data-endpoint="bike-boston"]')
        assert boston.locator("path.blocked").count() == 2  # the challenger and the legend
        assert boston.locator("circle.champion").count() == 3  # create, retrain, legend
        assert "1 gate-blocked" in boston.locator("h2").inner_text()
        assert boston.locator("tr.failed").count() == 1
        state = rows.nth(2).locator(".state").inner_text()
        assert state == "blocked"  # the stored challenger fails the gate the manifest has
        assert "Coefficient of Determination" in rows.nth(0).inner_text()
        shot = browser.screenshot(seen.page, "status-page.png")
        assert shot.stat().st_size > 10_000  # a real rendering, not a blank page
        assert seen.problems == []
        assert seen.dialogs == []


def test_the_page_needs_nothing_from_elsewhere_and_allows_no_script(
    served: tuple[str, subprocess.Popen[str]],
) -> None:
    url, _proc = served
    code, body, headers = get(url)
    assert code == 200
    links = re.findall(r'(?:src|href)="([^"]*)"', body)
    assert links and all(link.startswith(("/", "#")) for link in links), links
    assert "<script" not in body
    assert "script-src" not in headers["content-security-policy"]  # default-src 'none'
    assert headers["content-security-policy"].startswith("default-src 'none'")
    for link in {link for link in links if link.startswith("/static/")}:
        assert get(url.rstrip("/") + link)[0] == 200
    assert os.environ["RETRAIN_TEST_SECRET"] not in body


def test_the_json_gives_rows_and_trends(served: tuple[str, subprocess.Popen[str]]) -> None:
    url, _proc = served
    code, body, _headers = get(url + "api/status")
    assert code == 200
    doc = json.loads(body)
    assert [e["endpoint"] for e in doc["endpoints"]] == ENDPOINTS
    boston = doc["endpoints"][2]
    assert [(p["kind"], p["passed"]) for p in boston["trend"]] == [
        ("champion", True),
        ("champion", True),
        ("challenger", False),
    ]
    assert boston["last_change"]["action"] == "retrain"
    assert boston["metric"] == "Coefficient of Determination"


def test_a_manifest_broken_while_serving_is_an_error_page_until_fixed(
    served: tuple[str, subprocess.Popen[str]], with_history: Path
) -> None:
    url, _proc = served
    manifest = with_history / "retrain.yaml"
    good = manifest.read_text()
    manifest.write_text(good.replace("apiVersion: retrain/v1", "apiVersion: retrain/v0"))
    code, body, _headers = get(url)
    assert code == 503
    assert "Error: " in body and "retrain.yaml" in body
    manifest.write_text(good)
    assert get(url)[0] == 200


def test_sigterm_stops_the_page_with_exit_0(served: tuple[str, subprocess.Popen[str]]) -> None:
    """Last in the module: it ends the shared server."""
    _url, proc = served
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert proc.stderr is not None
    assert "Stopped." in proc.stderr.read()
