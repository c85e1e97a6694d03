"""The azureml backend's load-time checks and its essence of a live endpoint (pure parts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import cli, model
from reconciler.providers.azureml import backend, live

MANIFEST = """\
apiVersion: retrain/v1
backend:
  kind: azureml
  azureml:
    subscriptionId: s
    resourceGroup: rg
    workspace: ws
    storage: {connectionString: "${env:STORAGE}"}
trainers:
  t:
    command: {code: "azureml:c:1", command: "python t.py", environment: "azureml:e:1", compute: cpu}
    TRAINER_EXTRA
defaults: {trainer: t, asset: a, version: "1"}
endpoints:
  - name: e
    webService: endpoint-e
    inputs: {data: INPUT}
    ENDPOINT_EXTRA
"""
CONNECTION = (  # well formed; never connected to: validate reads no blob
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
    "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
)
MODEL = (
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices"
    "/workspaces/ws/models/m/versions/"
)


def validate(tmp_path: Path, capsys: pytest.CaptureFixture[str], **parts: str) -> tuple[int, str]:
    text = MANIFEST.replace("INPUT", parts.get("input", "data/e.csv"))
    text = text.replace("TRAINER_EXTRA", parts.get("trainer", ""))
    text = text.replace("ENDPOINT_EXTRA", parts.get("endpoint", ""))
    (tmp_path / "retrain.yaml").write_text(text)
    capsys.readouterr()
    code = cli.main(
        ["validate", "-f", str(tmp_path / "retrain.yaml")],
        {"STORAGE": CONNECTION},
        interactive=False,
    )
    return code, capsys.readouterr().err


def test_a_valid_azureml_manifest_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rollout = "azureml: {rollout: {steps: [10, 50, 100], hold: 5m}, keep: 2}"
    assert validate(tmp_path, capsys, endpoint=rollout) == (0, "")


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        (
            "azureml: {rollout: {steps: [50, 10, 100]}}",
            "rollout steps must rise strictly: 10 follows 50",
        ),
        ("azureml: {rollout: {steps: [10, 50]}}", "rollout steps must end at 100 (the last is 50)"),
        ("azureml: {rollout: {steps: [10, 10, 100]}}", "must rise strictly"),
        ("azureml: {rollout: {hold: soon}}", "/endpoints/0/azureml/rollout/hold"),
        ('secretParameters: {pw: "${env:STORAGE}"}', "literal inputs"),
        (
            'classic: {workspace: w, webService: s, endpoint: e, apiKey: "${env:STORAGE}"}',
            "classic is not an azureml endpoint field",
        ),
    ],
)
def test_a_bad_endpoint_is_one_located_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], endpoint: str, message: str
) -> None:
    code, err = validate(tmp_path, capsys, endpoint=endpoint)
    assert code == 1 and message in err
    assert "retrain.yaml:" in err and "Traceback" not in err


def test_an_input_outside_the_datastore_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = validate(tmp_path, capsys, input="../etc/passwd")
    assert code == 1 and "input must be a path in the datastore" in err


def test_another_backends_trainer_field_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = validate(tmp_path, capsys, trainer="entrypoint: t.py:train")
    assert code == 1 and "retrain.yaml:" in err


@pytest.mark.parametrize(
    ("value", "seconds"), [("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("250ms", 0.25), (7, 7.0)]
)
def test_hold_durations(value: object, seconds: float) -> None:
    assert backend.hold_seconds(value) == seconds


def _live(traffic: dict[str, int], models: dict[str, str]) -> live.Live:
    deployments = {
        n: {"properties": {"model": m, "provisioningState": "Succeeded"}} for n, m in models.items()
    }
    return live.Live({"properties": {"traffic": traffic}, "tags": {}}, deployments)


def _essence(found: live.Live) -> model.ServiceState:
    return live.essence(found, web_service="e", uri_for=lambda fp: MODEL + fp, models={})


def test_an_absent_traffic_entry_and_zero_are_the_same_live_state() -> None:
    models = {"blue": MODEL + "1", "green": MODEL + "2"}
    absent = _essence(_live({"blue": 100}, models))
    zero = _essence(_live({"blue": 100, "green": 0}, models))
    assert absent == zero
    assert absent.model_uri == MODEL + "1"


def test_a_split_is_not_a_model_and_changes_the_revision() -> None:
    models = {"blue": MODEL + "1", "green": MODEL + "2"}
    whole = _essence(_live({"blue": 100}, models))
    split = _essence(_live({"blue": 90, "green": 10}, models))
    assert split.model_uri == "traffic split: blue 90%, green 10%"
    assert split.revision != whole.revision


def test_a_malformed_storage_connection_string_is_one_line_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found where the storage client is made: by ``plan`` (``validate`` checks the
    manifest and imports no Azure SDK, so it leaves the connection string to the run)."""
    (tmp_path / "retrain.yaml").write_text(
        MANIFEST.replace("INPUT", "data/e.csv")
        .replace("TRAINER_EXTRA", "")
        .replace("ENDPOINT_EXTRA", "")
    )
    args = ["-f", str(tmp_path / "retrain.yaml")]
    env = {"STORAGE": "not-a-conn-string"}
    assert cli.main(["validate", *args], env, interactive=False) == 0
    capsys.readouterr()
    code = cli.main(["plan", *args], env, interactive=False)
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("Error: the storage connection string is malformed")
    assert len(err.strip().splitlines()) == 1 and "bug in retrain" not in err
