"""``retrain watch`` as a real process on the example project: a data file edited while
it runs with ``--auto-apply`` retrains that endpoint alone; ``/metrics`` parses with
Prometheus' own text parser and names the new model; the webhook (a real local HTTP
receiver) is told of the promotion; SIGTERM exits 0."""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler import engine, settings
from tests.conftest import record

pytestmark = pytest.mark.slow
WAIT = 120  # seconds for a retrain of one example endpoint on a loaded 2-core machine


class Receiver(http.server.BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        Receiver.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    """A Slack-style receiver on loopback; yields its URL."""
    Receiver.bodies = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/hooks/T000/B000"
    httpd.shutdown()


class Watch:
    """The running controller; its stderr is collected line by line."""

    def __init__(self, cwd: Path, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "watch", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        assert self.proc.stderr is not None
        stream = self.proc.stderr
        threading.Thread(target=lambda: self.lines.extend(stream), daemon=True).start()

    def wait_for(self, found: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if found(line):
                    return line
            assert self.proc.poll() is None, f"watch exited early: {self.text()}"
            time.sleep(0.2)
        raise AssertionError(f"no {what} within {WAIT}s: {self.text()}")

    def text(self) -> str:
        return "".join(self.lines)

    def url(self) -> str:
        line = self.wait_for(lambda s: "/metrics on http://" in s, "server address")
        found = re.search(r"http://[0-9.]+:[0-9]+", line)
        assert found is not None
        return found.group()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, text = get(f"{url}/metrics")
    assert status == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_watch_retrains_the_endpoint_whose_data_changed_then_stops_on_sigterm(
    applied: Path, hook: str, request: pytest.FixtureRequest
) -> None:
    env = {**os.environ, "HOOK_URL": hook}
    watch = Watch(
        applied,
        "--auto-apply",
        "--listen=127.0.0.1:0",
        "--poll=0.5s",
        "--interval=0",
        "--webhook=${env:HOOK_URL}",
        env=env,
    )
    try:
        url = watch.url()
        watch.wait_for(lambda s: "No changes" in s, "first, no-op reconcile")
        assert get(f"{url}/healthz") == (200, "ok\n")
        assert get(f"{url}/readyz")[0] == 200
        before = serving(samples(url), "bike-portland")

        data = applied / "examples" / "bike_rental" / "data" / "portland.csv"
        lines = data.read_text().splitlines(keepends=True)
        data.write_text("".join(lines[:-24]))  # a day less of data: a new model
        watch.wait_for(lambda s: "bike-portland: applied" in s, "retrain of bike-portland")

        seen = samples(url)
        retrained = ("retrain_applies_total", _labels("bike-portland", "retrain", "applied"))
        assert seen[retrained] == 1
        assert not any(k[0] == "retrain_applies_total" and "bike-seattle" in str(k) for k in seen)
        after = serving(seen, "bike-portland")
        assert after != before
        assert seen[("retrain_training_jobs_total", frozenset({("result", "done")}))] == 1
        assert seen[("retrain_gate_verdicts_total", _verdict("bike-portland", "pass"))] == 1
        assert seen[("retrain_training_duration_seconds_count", frozenset())] == 1
        assert any("promotion: bike-portland" in b["text"] for b in Receiver.bodies)
        assert hook not in watch.text()  # the webhook URL is a credential
        status, page = get(f"{url}/")  # the status page, mounted on the controller's server
        assert status == 200
        assert all(f"bike-{city}" in page for city in ("seattle", "portland", "boston"))
        assert after[:12] in page  # the retrained model, as the page shows fingerprints

        watch.proc.send_signal(signal.SIGTERM)
        assert watch.proc.wait(timeout=30) == 0
    finally:
        if watch.proc.poll() is None:
            watch.proc.kill()
        watch.proc.wait()
        record(request.node.nodeid, watch.text())
    assert "Stopped." in watch.text()


def _labels(endpoint: str, action: str, status: str) -> frozenset[tuple[str, str]]:
    return frozenset({("endpoint", endpoint), ("action", action), ("status", status)})


def _verdict(endpoint: str, verdict: str) -> frozenset[tuple[str, str]]:
    return frozenset({("endpoint", endpoint), ("verdict", verdict)})


def serving(seen: dict[tuple[str, frozenset[tuple[str, str]]], float], endpoint: str) -> str:
    """The fingerprint label of the endpoint's one serving label set."""
    found = [
        dict(labels)["fingerprint"]
        for name, labels in seen
        if name == "retrain_serving_info" and ("endpoint", endpoint) in labels
    ]
    assert len(found) == 1, found
    return found[0]


def test_sigterm_while_idle_exits_0_a_broken_manifest_is_not_ready_logs_are_json(
    project: Path, request: pytest.FixtureRequest
) -> None:
    manifest = project / "retrain.yaml"
    manifest.write_text(manifest.read_text().replace("apiVersion: retrain/v1", "apiVersion: v0"))
    watch = Watch(
        project, "--listen=127.0.0.1:0", "--poll=0.2s", "--log-format=json", env=dict(os.environ)
    )
    try:
        url = watch.url()
        watch.wait_for(lambda s: '"level": "error"' in s and "apiVersion" in s, "manifest error")
        status, body = get(f"{url}/readyz")
        assert status == 503
        assert "apiVersion" in body
        watch.wait_for(lambda s: "Will retry in" in s, "backoff note")
        watch.proc.send_signal(signal.SIGTERM)
        assert watch.proc.wait(timeout=30) == 0
    finally:
        if watch.proc.poll() is None:
            watch.proc.kill()
        watch.proc.wait()
        record(request.node.nodeid, watch.text())
    records = [json.loads(line) for line in watch.lines]  # every line is one JSON object
    assert {"time", "level", "message"} <= set(records[0])
    assert records[-1]["message"] == "Stopped."


def test_a_change_while_another_apply_holds_the_lock_waits_for_it_then_applies(
    applied: Path, request: pytest.FixtureRequest
) -> None:
    config = settings.Settings(actor="someone-else", manifest=applied / "retrain.yaml")
    session = engine.open_session(config, env=dict(os.environ))
    watch = Watch(
        applied, "--auto-apply", "--listen=off", "--poll=0.3s", "--interval=0", env=dict(os.environ)
    )
    try:
        watch.wait_for(lambda s: "No changes" in s, "first, no-op reconcile")
        with session.provider.lock("someone-else", 0):
            data = applied / "examples" / "bike_rental" / "data" / "boston.csv"
            data.write_text("".join(data.read_text().splitlines(keepends=True)[:-24]))
            watch.wait_for(lambda s: "locked by someone-else" in s, "the lock warning")
            time.sleep(2)  # several polls while it is held: nothing applied meanwhile
            assert "bike-boston: applied" not in watch.text()
        watch.wait_for(lambda s: "bike-boston: applied" in s, "the apply after the release")
        assert watch.text().count("locked by someone-else") == 1  # said once, not each poll
        watch.proc.send_signal(signal.SIGTERM)
        assert watch.proc.wait(timeout=60) == 0
    finally:
        if watch.proc.poll() is None:
            watch.proc.kill()
        watch.proc.wait()
        record(request.node.nodeid, watch.text())
