"""Hostile names in a real Chromium: shown as text, nothing runs, nothing breaks.

The page is served from a stub ``Source`` (the protocol ``page_routes`` takes) by a
real uvicorn on a free port, so names no manifest schema would let through reach
the browser too: an endpoint named ``<script>...``, a metric that closes an
attribute and adds an ``onerror``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette import applications

from reconciler.web import page, view
from tests.web import browser
from tests.web.test_html import HOSTILE_ENDPOINT, HOSTILE_METRIC, HOSTILE_SERVICE, hostile_snapshot

STARTUP = 10.0  # seconds for uvicorn to start in its thread


class Stub:
    """A source that gives one fixed snapshot."""

    def __init__(self, snap: view.Snapshot) -> None:
        self.snap = snap

    def snapshot(self) -> view.Snapshot:
        return self.snap

    def scrub(self, text: str) -> str:
        return text


@pytest.fixture
def hostile_url() -> Iterator[str]:
    app = applications.Starlette(routes=page.page_routes(Stub(hostile_snapshot())))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP)
        sock.close()


def test_hostile_names_show_as_text_and_run_nothing_in_chromium(hostile_url: str) -> None:
    with browser.browser() as context:
        seen = browser.watch(context)
        seen.page.goto(hostile_url)
        row = seen.page.locator("tr.endpoint")
        assert row.count() == 1
        assert row.get_attribute("data-endpoint") == HOSTILE_ENDPOINT
        assert row.locator("th a").inner_text() == HOSTILE_ENDPOINT
        assert row.locator("th .sub").inner_text() == HOSTILE_SERVICE
        assert row.locator(".metric-name").inner_text() == HOSTILE_METRIC
        assert seen.page.locator("script, img, [onerror], [onmouseover]").count() == 0
        assert seen.page.locator("section.trend svg.chart path.blocked").count() == 2
        browser.screenshot(seen.page, "status-page-hostile.png")
        assert seen.dialogs == []
        assert seen.problems == []
