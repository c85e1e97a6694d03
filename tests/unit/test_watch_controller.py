"""The controller in-process on the applied example, with the clock in the test's hand:
a trainer's cron schedule, the manifest's own check of it, backoff after a failure,
and a webhook that fails."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler import settings
from reconciler.cli import options
from reconciler.watch import loop, notices, sense, webhook
from tests.conftest import Run

NIGHTLY = '    schedule: "0 3 * * *"\n'


def add_schedule(project: Path) -> None:
    manifest = project / "retrain.yaml"
    text = manifest.read_text()
    manifest.write_text(text.replace("    timeout: 600", NIGHTLY + "    timeout: 600"))


class Clock:
    def __init__(self, at: str) -> None:
        self.now = dt.datetime.fromisoformat(at).replace(tzinfo=dt.UTC).timestamp()

    def __call__(self) -> float:
        return self.now


def controller(project: Path, clock: Clock, lines: list[str], **kw: object) -> loop.Controller:
    env = options.Env(vars=dict(os.environ), interactive=False, colour=False)
    config = settings.Settings(actor="test", manifest=project / "retrain.yaml")
    return loop.Controller(
        config=config,
        options=loop.Options(interval=None, **kw),  # type: ignore[arg-type]
        open=lambda cfg: options.session_for(env, cfg, warn=False),
        log=lines.append,
        clock=clock,
    )


def test_a_trainers_schedule_reconciles_its_endpoints_once_when_its_time_comes(
    applied: Path,
) -> None:
    add_schedule(applied)
    clock, lines = Clock("2026-03-01T02:59:58"), list[str]()
    watch = controller(applied, clock, lines)
    watch.step()  # start: the whole manifest
    assert lines[0] == "Reconciling every endpoint (start)"
    for at in ("2026-03-01T02:59:59", "2026-03-01T03:00:00", "2026-03-01T03:00:01"):
        clock.now = dt.datetime.fromisoformat(at).replace(tzinfo=dt.UTC).timestamp()
        watch.step()
    runs = [line for line in lines if line.startswith("Reconciling")]
    assert runs == [
        "Reconciling every endpoint (start)",
        "Reconciling every endpoint (schedule (trainer bike-demand: 0 3 * * *))",
    ]


def test_a_schedule_changes_no_fingerprint(applied: Path, retrain: Callable[..., Run]) -> None:
    add_schedule(applied)
    result = retrain("plan", "--detailed-exitcode")
    assert result.code == 0, result.out + result.err


def test_a_bad_schedule_is_a_manifest_error_at_its_line(
    project: Path, retrain: Callable[..., Run]
) -> None:
    manifest = project / "retrain.yaml"
    manifest.write_text(
        manifest.read_text().replace(
            "    timeout: 600", '    schedule: "0 27 * * *"\n    timeout: 600'
        )
    )
    result = retrain("validate")
    assert result.code == 1
    line = next(
        n for n, text in enumerate(manifest.read_text().splitlines(), 1) if "schedule" in text
    )
    assert (
        f"retrain.yaml:{line}: /trainers/bike-demand/schedule: '0 27 * * *' is not a cron schedule"
        in result.err
    )


def test_a_failing_reconcile_backs_off_then_retries_and_the_loop_goes_on(applied: Path) -> None:
    clock, lines = Clock("2026-03-01T12:00:00"), list[str]()
    watch = controller(applied, clock, lines)
    manifest = applied / "retrain.yaml"
    good = manifest.read_text()
    manifest.write_text(good.replace("apiVersion: retrain/v1", "apiVersion: nope"))
    watch.step()
    assert any(line.startswith("Error: ") and "apiVersion" in line for line in lines)
    assert lines[-1] == "Will retry in 10s (or on a change)."
    assert not watch.health.ready
    clock.now += 5
    lines.clear()
    watch.step()
    assert lines == []  # still backing off; nothing changed
    clock.now += 6
    watch.step()
    assert lines[-1] == "Will retry in 20s (or on a change)."  # doubled
    manifest.write_text(good)
    os.utime(manifest, ns=(1, 1))  # a change of the stamp, whatever the clock's resolution
    clock.now += 1
    lines.clear()
    watch.step()  # the fix is a manifest change: retried at once, and it works
    assert lines[0].startswith("Reconciling every endpoint (manifest")
    assert "No changes: every endpoint serves its desired model." in lines
    assert watch.health.ready
    assert dict(watch.waits) == {}


class Failing(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(500)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def broken_hook() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/secret-token"
    httpd.shutdown()


def test_a_webhook_that_fails_is_a_warning_without_its_url(broken_hook: str) -> None:
    warnings: list[str] = []
    post = webhook.poster(broken_hook, warn=warnings.append)
    post(notices.Notice(notices.Kind.PROMOTION, "a", "now serves x"))
    closed = broken_hook.rsplit(":", 1)[0] + ":1/secret-token"  # port 1: nothing listens
    webhook.poster(closed, warn=warnings.append)(notices.Notice(notices.Kind.DRIFT, "a", "x"))
    assert warnings[0] == "Warning: webhook answered 500 to the promotion notice"
    assert warnings[1].startswith("Warning: webhook not reached for the drift notice")
    assert not any("secret-token" in w for w in warnings)


def test_report_only_tells_drift_once_across_intervals_and_changes_nothing(
    applied: Path,
) -> None:
    path = applied / ".retrain" / "webservices" / "bike-demand-portland.json"
    doc = json.loads(path.read_text())
    for asset in doc["properties"]["assets"].values():
        asset["locationInfo"]["uri"] = "local://models/hand-picked/model.ilearner"
    path.write_text(json.dumps(doc, indent=2))
    edited = path.read_bytes()
    clock, lines, told = Clock("2026-03-01T12:00:00"), list[str](), list[notices.Notice]()
    watch = controller(applied, clock, lines)
    watch.options = loop.Options(interval=60)
    watch.notify = told.append
    for _ in range(3):  # start, then two intervals
        watch.step()
        clock.now += 61
    assert sum(line.startswith("Reconciling every endpoint") for line in lines) == 3
    assert [(n.kind, n.endpoint) for n in told] == [(notices.Kind.DRIFT, "bike-portland")]
    assert "bike-portland: repair-drift: model reference changed outside retrain" in "\n".join(
        lines
    )
    assert path.read_bytes() == edited  # report only: nothing applied
    metrics = watch.meters.text().decode()
    assert 'retrain_drift{endpoint="bike-portland"} 1.0' in metrics
    assert 'retrain_drift{endpoint="bike-seattle"} 0.0' in metrics


def test_a_port_in_use_is_one_error_line(retrain: Callable[..., Run]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = retrain("watch", f"--listen=127.0.0.1:{port}")
    assert result.code == 1
    assert result.err.strip() == (
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


WEBHOOK_ERRORS = {
    "a literal URL": (
        "https://hooks.example/T0/B0",
        {},
        "Error: Invalid value for --webhook: give the URL by reference, as '${env:NAME}' "
        "(a webhook URL is a credential)",
    ),
    "an unset variable": (
        "${env:NO_SUCH_HOOK}",
        {},
        "Error: --webhook: environment variable NO_SUCH_HOOK is not set",
    ),
    "not a URL": (
        "${env:HOOK}",
        {"HOOK": "hooks.example/x"},
        "Error: --webhook: environment variable HOOK is not an http(s) URL",
    ),
}


@pytest.mark.parametrize("case", WEBHOOK_ERRORS, ids=list(WEBHOOK_ERRORS))
def test_a_bad_webhook_is_refused_before_the_loop_starts(
    case: str, retrain: Callable[..., Run]
) -> None:
    value, env, expected = WEBHOOK_ERRORS[case]
    result = retrain("watch", "--listen=off", f"--webhook={value}", env=env)
    assert result.code == 1
    assert result.err.strip() == expected


def test_head_of_a_git_checkout_moves_with_a_commit(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
            check=True,
            capture_output=True,
        )

    assert sense.head(tmp_path) is None  # not a checkout
    git("init", "-q")
    assert sense.head(tmp_path) is None  # a checkout with no commit yet
    git("commit", "-q", "--allow-empty", "-m", "one")
    first = sense.head(tmp_path)
    git("commit", "-q", "--allow-empty", "-m", "two")
    second = sense.head(tmp_path)
    assert first and second and first != second
    assert len(second) == 40
