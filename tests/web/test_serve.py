"""``retrain serve`` end to end: a real uvicorn answering real HTTP with models the example
trained, hot-swapped by an apply under a steady request loop."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Run, copy_example
from tests.web.conftest import Server, serving

pytest.importorskip("sklearn")

SERVICES = ("bike-demand-seattle", "bike-demand-portland", "bike-demand-boston")
INTEGERS = ("season", "holiday", "workingday", "weather")
NUMBERS = ("temp", "humidity", "windspeed")
KEY_ENV = "RETRAIN_TEST_SERVE_KEY"
KEY = "serve-key-7c1d9e0a4b2f"  # a distinctive value: searched for in every output


def rows_of(project: Path, location: str, count: int) -> list[dict[str, Any]]:
    """The last ``count`` rows of a location's data, typed as a scoring client sends them."""
    with (project / "examples" / "bike_rental" / "data" / f"{location}.csv").open() as f:
        found = list(csv.DictReader(f))[-count:]
    return [
        {"datetime": r["datetime"]}
        | {c: int(r[c]) for c in INTEGERS}
        | {c: float(r[c]) for c in NUMBERS}
        for r in found
    ]


def request(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Inputs": {"input1": rows}, "GlobalParameters": {}}


def serving_fingerprint(project: Path, service: str) -> str:
    definition = json.loads((project / ".retrain" / "webservices" / f"{service}.json").read_text())
    fp: str = definition["tags"]["retrain.fingerprint"]
    return fp


def bike_predictions(project: Path, service: str, rows: list[dict[str, Any]]) -> list[float]:
    """What the example's own code predicts with the stored model: the reference."""
    path = project / "examples" / "bike_rental" / "train.py"
    spec = importlib.util.spec_from_file_location("bike_train_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fp = serving_fingerprint(project, service)
    loaded = module.load_model(project / ".retrain" / "models" / fp / "model.ilearner")
    predicted: list[float] = module.predict(loaded, rows)
    return predicted


@pytest.fixture(scope="module")
def shared(
    applied_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, Server]]:
    """One server over one applied copy, for the tests that only read."""
    root = copy_example(tmp_path_factory.mktemp("served"))
    shutil.copytree(applied_template / ".retrain", root / ".retrain")
    with serving(root) as server:
        yield root, server


def test_every_example_service_scores_rows_with_the_model_it_points_at(
    shared: tuple[Path, Server],
) -> None:
    applied, server = shared
    for service, location in zip(SERVICES, ("seattle", "portland", "boston"), strict=True):
        rows = rows_of(applied, location, 3)
        answer = server.score(service, request(rows))
        assert answer.status_code == 200, answer.text
        results = answer.json()["Results"]["output1"]
        assert [r["datetime"] for r in results] == [r["datetime"] for r in rows]
        scores = [r["Scored Labels"] for r in results]
        assert scores == pytest.approx(bike_predictions(applied, service, rows))
        assert all(s >= 0 for s in scores)  # rentals: a Poisson model's counts
        fp = serving_fingerprint(applied, service)
        assert answer.headers["x-retrain-model"] == fp[:12]
        assert answer.headers["x-retrain-version"] == "2026.11"


def test_rows_as_lists_in_column_order_score_like_objects(shared: tuple[Path, Server]) -> None:
    applied, server = shared
    rows = rows_of(applied, "seattle", 2)
    as_lists = [list(r.values()) for r in rows]
    by_name = server.score(SERVICES[0], request(rows)).json()
    by_order = server.score(SERVICES[0], {"Inputs": {"input1": as_lists}}).json()
    assert by_order == by_name


@pytest.mark.parametrize(
    ("change", "field", "why"),
    [
        ({"temp": "warm"}, "Inputs.input1[1].temp", "must be a number, got 'warm'"),
        ({"season": 2.5}, "Inputs.input1[1].season", "must be an integer"),
        ({"datetime": "noon"}, "Inputs.input1[1].datetime", "must be a date-time"),
        ({"humidity": None}, "Inputs.input1[1].humidity", "must not be null"),
        ({"temperature": 3.0}, "Inputs.input1[1].temperature", "not an input column"),
    ],
)
def test_a_request_that_does_not_fit_the_input_schema_is_a_400_naming_the_field(
    shared: tuple[Path, Server], change: dict[str, Any], field: str, why: str
) -> None:
    applied, server = shared
    rows = rows_of(applied, "seattle", 2)
    rows[1] |= change
    answer = server.score(SERVICES[0], request(rows))
    missing = server.score(SERVICES[0], request([{"temp": 1.0}]))
    not_json = server.session.post(f"{server.url}/services/{SERVICES[0]}/score", data=b"{")
    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith(f"{field}: {why}")
    assert missing.status_code == 400
    assert missing.json()["error"]["message"] == "Inputs.input1[0].datetime: missing"
    assert not_json.status_code == 400
    assert "the body is not JSON" in not_json.json()["error"]["message"]


def test_swagger_describes_the_call_from_the_definition(shared: tuple[Path, Server]) -> None:
    _root, server = shared
    doc = server.get(f"/services/{SERVICES[0]}/swagger.json").json()
    unknown = server.get("/services/no-such-service/swagger.json")
    unknown_score = server.score("no-such-service", request([]))
    assert doc["swagger"] == "2.0"
    post = doc["paths"][f"/services/{SERVICES[0]}/score"]["post"]
    assert set(post["responses"]) == {"200", "400", "401", "503"}
    row = doc["definitions"]["ScoringRequest"]["properties"]["Inputs"]["properties"]["input1"]
    columns = row["items"]["properties"]
    assert columns["temp"] == {"type": "number", "format": "double"}
    assert columns["datetime"] == {"type": "string", "format": "date-time"}
    assert row["items"]["required"] == ["datetime", *INTEGERS, *NUMBERS]
    out = doc["definitions"]["ScoringResponse"]["properties"]["Results"]["properties"]
    assert "Scored Labels" in out["output1"]["items"]["properties"]
    assert "securityDefinitions" not in doc
    assert unknown.status_code == unknown_score.status_code == 404
    assert unknown_score.json()["error"] == {
        "code": "NotFound",
        "message": "no web service named 'no-such-service'",
    }


def test_a_service_with_no_model_answers_503_with_the_reason(
    project: Path, applied_template: Path
) -> None:
    # Not applied yet: the definitions do not exist.
    with serving(project) as server:
        before = server.score(SERVICES[0], request(rows_of(project, "seattle", 1)))
    assert before.status_code == 503
    assert "does not exist yet (retrain apply creates it)" in before.json()["error"]["message"]
    # Applied, then the model removed from the store by hand.
    shutil.copytree(applied_template / ".retrain", project / ".retrain")
    fp = serving_fingerprint(project, SERVICES[0])
    shutil.rmtree(project / ".retrain" / "models" / fp)
    with serving(project) as server:
        gone = server.score(SERVICES[0], request(rows_of(project, "seattle", 1)))
        fine = server.score(SERVICES[1], request(rows_of(project, "portland", 1)))
        listed = {s["name"]: s for s in server.get("/services").json()["services"]}
    assert gone.status_code == 503
    assert gone.json()["error"]["message"] == (
        f"model {fp[:12]} is not in the model store (removed?); retrain apply trains it again"
    )
    assert fine.status_code == 200
    assert listed[SERVICES[0]]["scoring"] is False
    assert listed[SERVICES[1]]["scoring"] is True


def test_a_trainer_without_predict_cannot_score_and_says_so(applied: Path) -> None:
    manifest = applied / "retrain.yaml"
    text = manifest.read_text()
    manifest.write_text(text.replace("    predict: examples/bike_rental/train.py:predict\n", ""))
    with serving(applied) as server:
        answer = server.score(SERVICES[0], request(rows_of(applied, "seattle", 1)))
    assert answer.status_code == 503
    assert "trainer 'bike-demand' declares no predict" in answer.json()["error"]["message"]


def test_a_model_with_a_type_the_module_does_not_trust_is_refused(applied: Path) -> None:
    """skops loads only the listed types: with an empty TRUSTED_TYPES, the bike model's
    tree predictor is refused, and the service says so instead of loading it."""
    scorer = applied / "examples" / "bike_rental" / "score.py"
    scorer.write_text(
        "import train\n"
        "TRUSTED_TYPES: list[str] = []  # trusts nothing beyond skops' defaults\n"
        "def predict(model, rows):\n"
        "    return train.predict(model, rows)\n"
    )
    manifest = applied / "retrain.yaml"
    manifest.write_text(
        manifest.read_text().replace(
            "predict: examples/bike_rental/train.py:predict",
            "predict: examples/bike_rental/score.py:predict",
        )
    )
    with serving(applied) as server:
        answer = server.score(SERVICES[0], request(rows_of(applied, "seattle", 1)))
    assert answer.status_code == 503
    message = answer.json()["error"]["message"]
    assert "cannot be loaded: UntrustedTypesFoundException" in message, message
    assert "TreePredictor" in message


def test_api_keys_guard_a_service_and_never_appear_in_output(applied: Path) -> None:
    manifest = applied / "retrain.yaml"
    manifest.write_text(
        manifest.read_text().replace(
            "    webService: bike-demand-${each.location}\n",
            f"    webService: bike-demand-${{each.location}}\n    apiKey: ${{env:{KEY_ENV}}}\n",
        )
    )
    body = request(rows_of(applied, "seattle", 1))
    with serving(applied, env={KEY_ENV: KEY}) as server:
        none = server.score(SERVICES[0], body)
        wrong = server.score(SERVICES[0], body, Authorization="Bearer not-the-key")
        right = server.score(SERVICES[0], body, Authorization=f"Bearer {KEY}")
        swagger = server.get(f"/services/{SERVICES[0]}/swagger.json")
        described = server.get(
            f"/services/{SERVICES[0]}/swagger.json", Authorization=f"Bearer {KEY}"
        ).json()
        listed = server.get("/services").json()["services"]
        output = server.output()
    assert none.status_code == wrong.status_code == swagger.status_code == 401
    assert none.headers["www-authenticate"].startswith("Bearer")
    assert right.status_code == 200
    assert described["securityDefinitions"]["bearer"]["in"] == "header"
    assert listed[0] == {"name": SERVICES[2], "keyed": True}
    for text in (none.text, wrong.text, right.text, json.dumps(described), output):
        assert KEY not in text


def test_an_unset_key_variable_is_one_error_line(
    applied: Path, retrain: Callable[..., Run]
) -> None:
    manifest = applied / "retrain.yaml"
    manifest.write_text(
        manifest.read_text().replace(
            "    webService: bike-demand-${each.location}\n",
            f"    webService: bike-demand-${{each.location}}\n    apiKey: ${{env:{KEY_ENV}}}\n",
        )
    )
    run = retrain("serve", "--port", "1")
    assert run.code == 1
    assert f"environment variable {KEY_ENV} is not set" in run.err
    assert run.err.startswith("Error: ")


def test_an_apply_swaps_the_model_under_a_steady_request_loop_with_no_failed_request(
    applied: Path, retrain: Callable[..., Run]
) -> None:
    """The acceptance test: new data for one endpoint, apply while requests keep coming,
    zero failures, and the first request after apply returns is the new model's."""
    body = request(rows_of(applied, "seattle", 2))
    old = serving_fingerprint(applied, SERVICES[0])
    data = applied / "examples" / "bike_rental" / "data" / "seattle.csv"
    lines = data.read_text().splitlines(keepends=True)
    head, _, count = lines[-1].rstrip("\n").rpartition(",")
    data.write_text("".join(lines[:-1]) + f"{head},{int(count) + 7}\n")  # fresh data
    seen: list[tuple[int, str]] = []
    stop = threading.Event()
    with serving(applied) as server:

        def loop() -> None:
            while not stop.is_set():
                answer = server.score(SERVICES[0], body)
                seen.append((answer.status_code, answer.headers.get("x-retrain-model", "")))

        client = threading.Thread(target=loop)
        client.start()
        try:
            applied_run = retrain("apply", "--auto-approve")
            new = serving_fingerprint(applied, SERVICES[0])
            after = server.score(SERVICES[0], body)
        finally:
            stop.set()
            client.join(timeout=30)
    assert applied_run.code == 0, applied_run.err
    assert new != old
    assert after.status_code == 200
    assert after.headers["x-retrain-model"] == new[:12]
    assert len(seen) > 20, "the loop should have kept requests coming across the apply"
    assert all(status == 200 for status, _ in seen), {s for s, _ in seen}
    models = [m for _, m in seen]
    assert models[0] == old[:12]
    switched = models.index(new[:12]) if new[:12] in models else len(models)
    assert set(models[:switched]) == {old[:12]}
    assert set(models[switched:]) <= {new[:12]}  # once swapped, never back


def test_help_lists_serve_without_importing_the_server() -> None:
    probe = (
        "import sys; from reconciler import cli; code = cli.main(['--help'], {}); "
        "assert code == 0; print(sorted(m for m in ('starlette', 'uvicorn') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "  serve " in done.stdout
    assert done.stdout.rstrip().endswith("[]")


def test_the_status_page_is_served_beside_the_services(shared: tuple[Path, Server]) -> None:
    applied, server = shared
    page = server.get("/")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    for service, location in zip(SERVICES, ("seattle", "portland", "boston"), strict=True):
        assert f"bike-{location}" in page.text
        assert serving_fingerprint(applied, service)[:12] in page.text
    assert server.get("/api/status").json()["format_version"] == "1"
