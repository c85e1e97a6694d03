"""The manifest's serving keys: a trainer's ``predict``/``load`` and an endpoint's
``apiKey``. Checked like every other key, and never part of a model's fingerprint."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler import engine, errors, manifest, model, providers
from reconciler.providers.local import backend
from tests.conftest import ROOT

PREDICT = "    predict: examples/bike_rental/train.py:predict\n"


def load(path: Path, env: dict[str, str] | None = None) -> model.Manifest:
    return manifest.load(path, env=env or {}, backends=list(providers.registry().values()))


def example(tmp_path: Path, text: str | None = None) -> Path:
    shutil.copytree(
        ROOT / "examples" / "bike_rental",
        tmp_path / "examples" / "bike_rental",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    path = tmp_path / "retrain.yaml"
    path.write_text(text if text is not None else (ROOT / "retrain.yaml.example").read_text())
    return path


def fingerprints(path: Path) -> list[str]:
    loaded = load(path)
    provider = providers.create(loaded.backend, manifest_dir=path.parent, state_dir=None, env={})
    return [d.fingerprint for d in engine.desired_state(loaded.endpoints, provider)]


def test_the_example_declares_predict_and_it_resolves_to_the_trainer_file(tmp_path: Path) -> None:
    loaded = load(example(tmp_path))
    spec = backend.program(loaded.trainers["bike-demand"])
    assert spec.predict == f"{tmp_path / 'examples/bike_rental/train.py'}:predict"
    assert spec.load == ""


def test_serving_keys_change_no_fingerprint(tmp_path: Path) -> None:
    """Declaring predict and load (even in another file) trains nothing new: the
    fingerprints of the example are those of the manifest without them."""
    text = (ROOT / "retrain.yaml.example").read_text()
    assert PREDICT in text
    with_keys = fingerprints(example(tmp_path / "a", text))
    without = fingerprints(example(tmp_path / "b", text.replace(PREDICT, "")))
    elsewhere = example(
        tmp_path / "c",
        text.replace(
            PREDICT,
            "    predict: examples/bike_rental/score.py:predict\n"
            "    load: examples/bike_rental/score.py:read\n",
        ),
    )
    (elsewhere.parent / "examples" / "bike_rental" / "score.py").write_text(
        "def predict(model, rows):\n    return []\n\n\ndef read(path):\n    return None\n"
    )
    assert with_keys == without == fingerprints(elsewhere)
    assert len(set(with_keys)) == 3


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (
            "    predict: examples/bike_rental/train.py:score\n",
            "/trainers/bike-demand/predict: examples/bike_rental/train.py defines no "
            "function 'score'",
        ),
        (
            "    predict: examples/bike_rental/nowhere.py:predict\n",
            "/trainers/bike-demand/predict: ",
        ),
        (
            "    load: examples/bike_rental/train.py\n" + PREDICT,
            "/trainers/bike-demand/load: ",
        ),
    ],
)
def test_a_bad_predict_or_load_is_a_located_error(tmp_path: Path, line: str, problem: str) -> None:
    text = (ROOT / "retrain.yaml.example").read_text().replace(PREDICT, line)
    with pytest.raises(errors.ManifestError) as info:
        load(example(tmp_path, text))
    found = info.value.problems
    assert len(found) == 1, found
    assert found[0].startswith("retrain.yaml:") or str(tmp_path) in found[0]
    assert problem in found[0], found


def test_an_api_key_is_a_secret_reference_never_a_literal(tmp_path: Path) -> None:
    text = (ROOT / "retrain.yaml.example").read_text()
    anchor = "    webService: bike-demand-${each.location}\n"
    literal = text.replace(anchor, anchor + "    apiKey: hunter2-hunter2-hunter2\n")
    with pytest.raises(errors.ManifestError) as info:
        load(example(tmp_path / "a", literal))
    assert any("/endpoints/0/apiKey" in p for p in info.value.problems), info.value.problems
    assert "hunter2" not in "\n".join(info.value.problems)
    referenced = text.replace(anchor, anchor + "    apiKey: ${env:BIKE_KEY}\n")
    loaded = load(example(tmp_path / "b", referenced), env={"BIKE_KEY": "k" * 24})
    key = backend.service_of(loaded.endpoints[0]).api_key
    assert key is not None and key.reveal() == "k" * 24
    assert "k" * 24 not in repr(loaded.endpoints[0])
    assert "k" * 24 in manifest.secret_values(loaded)  # so every output masks it


@pytest.mark.parametrize(
    ("example_file", "trainer_key", "service_line"),
    [
        ("retrain.azure.yaml.example", "    bes:\n", "    webService: bike-demand-${each.city}\n"),
        ("retrain.azureml.yaml.example", "    command:\n", "    webService: bike-seattle "),
    ],
)
def test_the_cloud_backends_refuse_the_local_serving_keys(
    tmp_path: Path, example_file: str, trainer_key: str, service_line: str
) -> None:
    """Their web services score in the cloud: a predict or an apiKey would be ignored."""
    import re

    text = (ROOT / example_file).read_text()
    assert text.count(trainer_key) == 1 and text.count(service_line) == 1
    text = text.replace(trainer_key, "    predict: score.py:predict\n" + trainer_key)
    at = text.index(service_line)
    indent = " " * (len(service_line) - len(service_line.lstrip()))
    text = text[:at] + f"{indent}apiKey: ${{env:BIKE_KEY}}\n" + text[at:]
    path = tmp_path / "retrain.yaml"
    path.write_text(text)
    env = dict.fromkeys(re.findall(r"\$\{env:([A-Za-z_0-9]+)\}", text), "x" * 24)
    env["RETRAIN_AZURE_STORAGE"] = "UseDevelopmentStorage=true"
    with pytest.raises(errors.ManifestError) as info:
        manifest.load(path, env=env, backends=list(providers.registry().values()))
    found = "\n".join(info.value.problems)
    assert "/trainers/bike-demand/predict: predict is " in found, found
    assert "/apiKey: apiKey is " in found, found
