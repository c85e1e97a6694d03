"""The bike-rental example pipeline: reproducible data, a real model, Studio-shaped outputs.

The reconciler fingerprints training data by content and gates on the evaluation file, so these
tests pin the properties it relies on: regenerating the data reproduces the shipped bytes, the
same inputs give the same evaluation bytes, any data change reaches the model, and a model file
only loads if every type in it is on the trainer's explicit list.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("sklearn")
skops_io = pytest.importorskip("skops.io")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bike_rental"
LOCATIONS = ("seattle", "portland", "boston")


def _load(name: str) -> ModuleType:
    """Import an example script by path: ``examples/`` is not a package, as for the runner."""
    spec = importlib.util.spec_from_file_location(f"bike_rental_{name}", EXAMPLE / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


generate_data = _load("generate_data")
trainer = _load("train")


def _train(rentals: Path, out: Path, **parameters: Any) -> tuple[Path, Path]:
    model_path, evaluation_path = out / "model.skops", out / "evaluation.csv"
    trainer.train(
        inputs={"rentals": rentals},
        parameters=parameters,
        model_path=model_path,
        evaluation_path=evaluation_path,
    )
    return model_path, evaluation_path


def _metrics(evaluation_path: Path) -> dict[str, float]:
    header, values = evaluation_path.read_text().splitlines()
    return dict(zip(header.split(","), map(float, values.split(",")), strict=True))


def _holdout_rows(location: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = trainer.read_rows(EXAMPLE / "data" / f"{location}.csv")
    return rows[-trainer.holdout_size(len(rows), trainer.PARAMETERS["test_fraction"]) :]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Each shipped location trained once with default parameters."""
    return {
        location: _train(EXAMPLE / "data" / f"{location}.csv", tmp_path_factory.mktemp(location))
        for location in LOCATIONS
    }


# --- data -----------------------------------------------------------------------------------


def test_generator_gives_the_same_text_every_time_and_differs_by_location() -> None:
    assert generate_data.generate("seattle", 7) == generate_data.generate("seattle", 7)
    assert generate_data.generate("seattle", 7) != generate_data.generate("boston", 7)
    assert generate_data.generate("anytown", 7) == generate_data.generate("anytown", 7)


@pytest.mark.parametrize("location", LOCATIONS)
def test_shipped_csv_equals_a_fresh_generation(location: str, tmp_path: Path) -> None:
    out = tmp_path / f"{location}.csv"
    generate_data.main(["--location", location, "--days", "120", "--out", str(out)])
    assert out.read_bytes() == (EXAMPLE / "data" / f"{location}.csv").read_bytes()


def test_generator_does_not_depend_on_the_process_hash_seed(tmp_path: Path) -> None:
    out = tmp_path / "seattle.csv"
    script = EXAMPLE / "generate_data.py"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    cmd = [sys.executable, str(script), "--location", "seattle", "--out", str(out)]
    subprocess.run(cmd, check=True, env=env)
    assert out.read_bytes() == (EXAMPLE / "data" / "seattle.csv").read_bytes()


@pytest.mark.parametrize("location", LOCATIONS)
def test_shipped_csv_has_the_documented_columns_and_size(location: str) -> None:
    path = EXAMPLE / "data" / f"{location}.csv"
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert list(rows[0]) == [*trainer.INPUT_COLUMNS, "count"]
    assert len(rows) == 120 * 24
    assert path.stat().st_size < 150_000
    assert all(int(row["count"]) >= 0 for row in rows)
    assert {row["weather"] for row in rows} <= {"1", "2", "3", "4"}
    assert {row["holiday"] for row in rows} == {"0", "1"}


# --- training -------------------------------------------------------------------------------


@pytest.mark.parametrize("location", LOCATIONS)
def test_train_writes_a_loadable_model_and_a_studio_evaluation(
    location: str, trained: dict[str, tuple[Path, Path]]
) -> None:
    model_path, evaluation_path = trained[location]
    lines = evaluation_path.read_text().splitlines()
    assert len(lines) == 2
    assert lines[0] == (
        "Mean Absolute Error,Root Mean Squared Error,Relative Absolute Error,"
        "Relative Squared Error,Coefficient of Determination"
    )
    metrics = _metrics(evaluation_path)
    assert metrics["Coefficient of Determination"] > 0.6
    assert metrics["Coefficient of Determination"] == pytest.approx(
        1.0 - metrics["Relative Squared Error"]
    )
    assert all(repr(value) in lines[1] for value in metrics.values())  # repr precision

    predictions = trainer.predict(trainer.load_model(model_path), _holdout_rows(location))
    assert all(math.isfinite(p) and p >= 0 for p in predictions)


def test_evaluation_matches_the_studio_definitions() -> None:
    import numpy as np

    actual, predicted = np.array([1.0, 2.0, 3.0, 6.0]), np.array([1.0, 3.0, 3.0, 4.0])
    metrics = trainer.evaluate(actual, predicted)
    assert metrics == {
        "Mean Absolute Error": 0.75,
        "Root Mean Squared Error": math.sqrt(5 / 4),
        "Relative Absolute Error": 3 / 6,  # |y - mean| with mean 3: 2 + 1 + 0 + 3
        "Relative Squared Error": 5 / 14,  # (y - mean)^2: 4 + 1 + 0 + 9
        "Coefficient of Determination": 1 - 5 / 14,
    }


def test_same_inputs_and_parameters_give_identical_evaluation_bytes(
    trained: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    model_path, evaluation_path = trained["seattle"]
    again_model, again_evaluation = _train(EXAMPLE / "data" / "seattle.csv", tmp_path)
    assert again_evaluation.read_bytes() == evaluation_path.read_bytes()
    rows = _holdout_rows("seattle")
    assert trainer.predict(trainer.load_model(again_model), rows) == trainer.predict(
        trainer.load_model(model_path), rows
    )


def test_changing_one_data_row_changes_the_model_and_metrics(
    trained: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    lines = (EXAMPLE / "data" / "seattle.csv").read_text().splitlines(keepends=True)
    fields = lines[1000].split(",")  # a training row (the holdout is the last 576)
    fields[-1] = f"{int(fields[-1]) + 150}\n"
    lines[1000] = ",".join(fields)
    changed = tmp_path / "seattle.csv"
    changed.write_text("".join(lines))

    model_path, evaluation_path = _train(changed, tmp_path)

    original_model, original_evaluation = trained["seattle"]
    assert evaluation_path.read_bytes() != original_evaluation.read_bytes()
    rows = _holdout_rows("seattle")
    assert trainer.predict(trainer.load_model(model_path), rows) != trainer.predict(
        trainer.load_model(original_model), rows
    )


def test_parameters_change_the_model(trained: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    _, evaluation_path = _train(EXAMPLE / "data" / "seattle.csv", tmp_path, n_estimators="20")
    assert evaluation_path.read_bytes() != trained["seattle"][1].read_bytes()


def test_unknown_parameter_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown parameter\(s\): depth, n_estimator\b"):
        _train(EXAMPLE / "data" / "seattle.csv", tmp_path, n_estimator=50, depth=3)
    assert not (tmp_path / "model.skops").exists()


def test_rows_out_of_time_order_are_refused(tmp_path: Path) -> None:
    lines = (EXAMPLE / "data" / "portland.csv").read_text().splitlines(keepends=True)
    lines[10], lines[11] = lines[11], lines[10]
    shuffled = tmp_path / "portland.csv"
    shuffled.write_text("".join(lines))
    with pytest.raises(ValueError, match=r"portland.csv:12: .* sort by time"):
        _train(shuffled, tmp_path)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n_estimators", 0),
        ("n_estimators", 2.5),
        ("n_estimators", "ten"),
        ("max_depth", True),
        ("learning_rate", float("nan")),
        ("test_fraction", 1.0),
        ("seed", -1),
    ],
)
def test_bad_parameter_values_are_refused(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        trainer.resolve_parameters({name: value})


def test_parameters_may_arrive_as_strings_as_bes_sends_them() -> None:
    resolved = trainer.resolve_parameters({"n_estimators": "50", "learning_rate": "0.05"})
    assert resolved == {**trainer.DEFAULTS, "n_estimators": 50, "learning_rate": 0.05}


def test_predict_accepts_json_typed_rows_like_csv_rows(
    trained: dict[str, tuple[Path, Path]],
) -> None:
    model = trainer.load_model(trained["boston"][0])
    rows = _holdout_rows("boston")[:24]
    typed = [{k: (v if k == "datetime" else float(v)) for k, v in row.items()} for row in rows]
    assert trainer.predict(model, typed) == trainer.predict(model, rows)


# --- safe model format ----------------------------------------------------------------------


def test_trusted_types_are_an_explicit_list_that_covers_a_trained_model(
    trained: dict[str, tuple[Path, Path]],
) -> None:
    assert isinstance(trainer.TRUSTED_TYPES, list)
    assert all(isinstance(name, str) for name in trainer.TRUSTED_TYPES)
    found = skops_io.get_untrusted_types(file=trained["portland"][0])
    assert set(found) <= set(trainer.TRUSTED_TYPES)


def test_load_model_refuses_a_file_with_an_untrusted_type(
    trained: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    model = trainer.load_model(trained["seattle"][0])
    booby_trapped = tmp_path / "model.skops"
    skops_io.dump({"model": model, "hook": os.system}, booby_trapped)

    with pytest.raises(skops_io.exceptions.UntrustedTypesFoundException, match="system"):
        trainer.load_model(booby_trapped)


def test_load_model_refuses_a_safe_file_that_is_not_a_model(tmp_path: Path) -> None:
    not_a_model = tmp_path / "model.skops"
    skops_io.dump({"model": None}, not_a_model)
    with pytest.raises(ValueError, match="not a bike-rental model"):
        trainer.load_model(not_a_model)


# --- web service definition -----------------------------------------------------------------


def test_webservice_definition_has_the_arm_shape_and_one_trained_model_asset() -> None:
    service = json.loads((EXAMPLE / "webservice.json").read_text())
    assert service["type"] == "Microsoft.MachineLearning/webServices"
    properties = service["properties"]
    assert properties["packageType"] == "Graph"

    assets = properties["assets"]
    assert len(assets) > 1
    trained_models = [a for a in assets.values() if a["name"].endswith("[trained model]")]
    assert trained_models == [
        {
            "name": "Bike Demand [trained model]",
            "type": "Resource",
            "locationInfo": {"uri": "local://models/unset"},
            "outputPorts": {"Results dataset": {"type": "Dataset"}},
        }
    ]

    nodes = properties["package"]["nodes"]
    assert {n["assetId"] for n in nodes.values() if "assetId" in n} == set(assets)
    for edge in properties["package"]["edges"]:
        assert {edge["sourceNodeId"], edge["targetNodeId"]} <= set(nodes)


def test_webservice_example_request_scores_with_a_trained_model(
    trained: dict[str, tuple[Path, Path]],
) -> None:
    properties = json.loads((EXAMPLE / "webservice.json").read_text())["properties"]
    columns = list(properties["input"]["properties"]["input1"]["properties"])
    assert tuple(columns) == trainer.INPUT_COLUMNS

    rows = [dict(zip(columns, values, strict=True)) for values in
            properties["exampleRequest"]["inputs"]["input1"]]  # fmt: skip
    predictions = trainer.predict(trainer.load_model(trained["seattle"][0]), rows)
    assert len(predictions) == len(rows)
    assert all(p >= 0 for p in predictions)
