"""Validation that catches mistakes early, end to end through the CLI (issue 10, point 5):
values YAML 1.1 converts silently, misspelt keys and parameter names, a gate metric the
serving model never reported, paths relative to the manifest, errors naming their file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.e2e.test_cli_local import snapshot, trainings

pytestmark = pytest.mark.slow


def edit(project: Path, old: str, new: str) -> int:
    """Replace ``old`` (once) in the manifest; the 1-based line it was on."""
    manifest = project / "retrain.yaml"
    text = manifest.read_text()
    assert text.count(old) == 1, old
    manifest.write_text(text.replace(old, new))
    return text[: text.index(old)].count("\n") + 1


# -- YAML 1.1 conversions ------------------------------------------------------------------


def test_an_unquoted_version_that_yaml_turns_into_a_number_is_refused_with_the_fix(
    retrain: Callable[..., Run], project: Path
) -> None:
    line = edit(project, 'version: "2026.11"', "version: 2026.10")
    result = retrain("validate")
    assert result.code == 1
    assert result.err == (
        f"Error: retrain.yaml:{line}: /defaults/version: unquoted 2026.10 is read as the "
        'number 2026.1 (YAML 1.1); quote it: "2026.10"\n'
    )
    edit(project, "version: 2026.10", 'version: "2026.10"')
    assert retrain("validate").code == 0


def test_a_location_written_no_is_refused_not_read_as_false(
    retrain: Callable[..., Run], project: Path
) -> None:
    line = edit(project, "{location: boston}", "{location: no}")
    result = retrain("plan")
    assert result.code == 1 and result.out == ""
    assert result.err == (
        f"Error: retrain.yaml:{line}: /endpoints/0/forEach/2/location: unquoted no is read "
        'as the boolean false (YAML 1.1); quote it: "no", or write false if a boolean is meant\n'
    )


def test_octal_and_base_60_numbers_are_refused_but_numbers_meant_as_numbers_pass(
    retrain: Callable[..., Run], project: Path
) -> None:
    seed = edit(project, "seed: 0\n", "seed: 0017\n")
    edit(project, "learning_rate: 0.1\n", "learning_rate: 0.10\n")  # 0.1 is what is meant
    edit(project, "maxRegression: 0.05", "maxRegression: 0.050\n    higherIsBetter: yes")
    asset = edit(project, "asset: Bike Demand [trained model]", "asset: 1:30")
    result = retrain("validate")
    assert result.code == 1
    assert result.err.splitlines() == [
        f"Error: retrain.yaml:{seed}: /trainers/bike-demand/parameters/seed: unquoted 0017 is "
        'read as the number 15 (YAML 1.1); quote it: "0017", or write 15 if that number is meant',
        f"Error: retrain.yaml:{asset}: /defaults/asset: unquoted 1:30 is read as the number 90 "
        '(YAML 1.1); quote it: "1:30", or write 90 if that number is meant',
    ]


# -- misspelt keys and parameters ----------------------------------------------------------


def test_an_unknown_key_is_reported_at_its_own_line_with_a_suggestion(
    retrain: Callable[..., Run], project: Path
) -> None:
    entry = edit(project, "    entrypoint:", "    entrypont:")
    asset = edit(project, "  asset: Bike", "  Asset: Bike")
    far = edit(project, "  gate:\n", "  gatekeeper:\n")
    result = retrain("validate")
    assert result.code == 1
    assert result.err.splitlines() == [
        f"Error: retrain.yaml:{entry}: /trainers/bike-demand: unknown key: 'entrypont' "
        "(did you mean 'entrypoint'?)",
        f"Error: retrain.yaml:{asset}: /defaults: unknown key: 'Asset' (did you mean 'asset'?)",
        f"Error: retrain.yaml:{far}: /defaults: unknown key: 'gatekeeper'",
    ]


def test_a_parameter_the_trainer_does_not_declare_is_refused_before_training(
    retrain: Callable[..., Run], project: Path
) -> None:
    line = edit(project, "      max_depth: 8", "      max_dept: 8")
    result = retrain("apply", "--auto-approve")
    assert result.code == 1 and trainings(result) == []
    declared = "learning_rate, max_depth, n_estimators, seed, test_fraction"
    assert result.err == (
        f"Error: retrain.yaml:{line}: /trainers/bike-demand/parameters/max_dept: trainer "
        f"'bike-demand' declares no parameter 'max_dept' (did you mean 'max_depth'?) "
        f"(declared: {declared})\n"
    )
    assert not (project / ".retrain").exists()


def test_a_trainer_without_a_declaration_takes_any_parameter_name(
    retrain: Callable[..., Run], project: Path
) -> None:
    trainer = project / "examples" / "bike_rental" / "train.py"
    trainer.write_text(trainer.read_text().replace("PARAMETERS", "KNOWN"))
    edit(project, "      max_depth: 8", "      max_dept: 8")
    assert retrain("validate").code == 0  # the trainer itself refuses it when it runs


@pytest.mark.parametrize("key", ["secrets", "secretParameters"])
def test_secrets_indented_as_parameters_are_refused_before_their_value_is_shown(
    retrain: Callable[..., Run], applied: Path, key: str
) -> None:
    """Found by make fuzz: ``secrets:`` written under ``parameters`` with its entries not
    indented under it makes them plain parameters, and the plan showed the secret as an
    added parameter's value. Now it is refused at the empty key."""
    trainer = applied / "examples" / "bike_rental" / "train.py"
    trainer.write_text(trainer.read_text().replace("PARAMETERS", "KNOWN"))  # any name goes
    line = edit(
        applied,
        "      seed: 0\n",
        f"      seed: 0\n      {key}:\n      WAREHOUSE_TOKEN: ${{env:RETRAIN_TEST_WAREHOUSE}}\n",
    )
    token = "warehouse-token-5e1f0c9a77"
    result = retrain("plan", env={"RETRAIN_TEST_WAREHOUSE": token})
    assert result.code == 1
    assert result.err == (
        f"Error: retrain.yaml:{line + 1}: /trainers/bike-demand/parameters/{key}: {key!r} "
        f"has no value and names a key, not a parameter: indent the lines below it under "
        f"{key}: (or move {key}: out of parameters)\n"
    )
    assert token not in result.out + result.err


# -- the gate's metric, at plan time -------------------------------------------------------


def test_a_gate_metric_the_serving_model_lacks_is_an_error_before_training(
    retrain: Callable[..., Run], applied: Path
) -> None:
    line = edit(applied, "metric: Coefficient of Determination", "metric: R2")
    data = applied / "examples" / "bike_rental" / "data" / "seattle.csv"
    data.write_text("".join(data.read_text().splitlines(keepends=True)[:-24]))
    before = snapshot(applied)
    for args in (("plan", "--train"), ("apply", "--auto-approve")):
        result = retrain(*args)
        assert result.code == 1, (args, result.out)
        assert trainings(result) == []
        assert result.err.splitlines()[-1] == (
            f"Error: retrain.yaml:{line}: /defaults/gate/metric: the serving model of "
            "'bike-seattle' has no metric 'R2' (has: Coefficient of Determination, "
            "Mean Absolute Error, Relative Absolute Error, Relative Squared Error, "
            "Root Mean Squared Error)"
        )
    assert snapshot(applied) == before


# -- paths relative to the manifest --------------------------------------------------------


def test_run_from_another_folder_state_dir_is_relative_to_the_manifest(
    retrain: Callable[..., Run], applied: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    (applied / ".retrain").rename(applied / "state")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    shutil.copytree(applied / "state", elsewhere / "state")  # a decoy beside the caller
    (elsewhere / "state" / "webservices" / "bike-demand-boston.json").unlink()
    os.chdir(elsewhere)  # the fixture restores the folder
    manifest = str(applied / "retrain.yaml")
    result = retrain("plan", "-f", manifest, "--state-dir", "state", "--detailed-exitcode")
    assert (result.code, result.err) == (0, ""), result.out
    status = retrain("status", "-f", manifest, "--state-dir", "state")
    assert status.out.count("in sync") == 3


def test_a_state_dir_that_does_not_exist_while_another_has_history_is_a_warning(
    retrain: Callable[..., Run], applied: Path
) -> None:
    result = retrain("status", "--state-dir", "typo")
    assert result.code == 0
    assert result.err == (
        f"Warning: the state directory {applied / 'typo'} does not exist (so every endpoint "
        f"shows as missing), but {applied / '.retrain'} holds a history; --state-dir and "
        "stateDir are relative to the manifest\n"
    )
    assert result.out.count("missing") == 3
    assert not (applied / "typo").exists()  # status only reads


# -- errors name their file ----------------------------------------------------------------


def test_a_bad_training_data_row_is_reported_with_its_file_and_line(
    retrain: Callable[..., Run], applied: Path
) -> None:
    data = applied / "examples" / "bike_rental" / "data" / "boston.csv"
    lines = data.read_text().splitlines(keepends=True)
    lines[6] = "not a time,1,0,0,2,2.0,85,5.7,1\n"
    data.write_text("".join(lines))
    result = retrain("apply", "--auto-approve")
    assert result.code == 1
    (line,) = [x for x in result.out.splitlines() if x.startswith("✗ bike-boston: failed")]
    assert line.endswith(
        "ValueError: examples/bike_rental/data/boston.csv:7: Invalid isoformat string: 'not a time'"
    )
