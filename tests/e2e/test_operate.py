"""Issue 12's acceptance as a user runs it: ``retrain serve`` answering a steady request loop
while ``retrain watch --auto-apply`` runs beside it; a data file edited → the controller
retrains that endpoint → the next request is scored by the new model, with zero failed
requests across the swap. Both are real processes on the example project."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest

from tests.conftest import record
from tests.e2e.test_watch import Watch
from tests.web.conftest import serving

pytest.importorskip("sklearn")
pytestmark = pytest.mark.slow

SERVICE = "bike-demand-portland"
ROW = {  # one hour of Portland weather, as a scoring client sends it
    "datetime": "2023-08-01T08:00:00",
    "season": 2,
    "holiday": 0,
    "workingday": 1,
    "weather": 1,
    "temp": 17.9,
    "humidity": 71.0,
    "windspeed": 9.4,
}
BODY = {"Inputs": {"input1": [ROW]}, "GlobalParameters": {}}


def serving_fingerprint(project: Path) -> str:
    path = project / ".retrain" / "webservices" / f"{SERVICE}.json"
    fp: str = json.loads(path.read_text())["tags"]["retrain.fingerprint"]
    return fp


def test_a_data_edit_under_watch_is_served_by_the_new_model_with_no_failed_request(
    applied: Path, request: pytest.FixtureRequest
) -> None:
    old = serving_fingerprint(applied)
    seen: list[tuple[int, str, str]] = []  # status, model header, body on failure
    stop = threading.Event()
    with serving(applied) as server:
        watch = Watch(
            applied,
            "--auto-apply",
            "--listen=off",
            "--poll=0.5s",
            "--interval=0",
            env=dict(os.environ),
        )
        try:
            watch.wait_for(lambda s: "No changes" in s, "first, no-op reconcile")

            def loop() -> None:
                while not stop.is_set():
                    answer = server.score(SERVICE, BODY)
                    failed = "" if answer.status_code == 200 else answer.text[:200]
                    seen.append(
                        (answer.status_code, answer.headers.get("x-retrain-model", ""), failed)
                    )

            client = threading.Thread(target=loop)
            client.start()
            data = applied / "examples" / "bike_rental" / "data" / "portland.csv"
            lines = data.read_text().splitlines(keepends=True)
            data.write_text("".join(lines[:-24]))  # a day less of data: a new model
            watch.wait_for(lambda s: "bike-portland: applied" in s, "retrain of bike-portland")
            new = serving_fingerprint(applied)
            after = server.score(SERVICE, BODY)
            stop.set()
            client.join(timeout=30)
            watch.proc.send_signal(signal.SIGTERM)
            assert watch.proc.wait(timeout=60) == 0
        finally:
            stop.set()
            if watch.proc.poll() is None:
                watch.proc.kill()
            watch.proc.wait()
            record(request.node.nodeid, watch.text())
    assert new != old
    assert after.status_code == 200, after.text
    assert after.headers["x-retrain-model"] == new[:12]
    assert len(seen) > 20, "the loop should have kept requests coming across the retrain"
    assert [s for s in seen if s[0] != 200] == []
    models = [m for _, m, _ in seen]
    assert models[0] == old[:12]
    switched = models.index(new[:12]) if new[:12] in models else len(models)
    assert set(models[:switched]) == {old[:12]}
    assert set(models[switched:]) <= {new[:12]}  # once swapped, never back
