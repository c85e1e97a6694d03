"""Hostile and broken manifests, through the CLI as a user runs it.

Two promises. Bounded input: however large, deep or strange a manifest (or a file
it names) is, retrain answers with one ``Error:`` line and exit 1, never a
RecursionError, a MemoryError or a hang, and nothing is applied. And each distinct
problem once, at the line where it is written: a ``defaults`` problem at
``defaults``, a ``forEach`` template problem at the template, an item's problem at
the item, and no knock-on problems from a cause already reported.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler import manifest, yamlsrc
from tests.conftest import Run

ITEMS = "      - {location: seattle}\n      - {location: portland}\n      - {location: boston}\n"


def edit(project: Path, old: str, new: str) -> None:
    path = project / "retrain.yaml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def error_lines(result: Run) -> list[str]:
    """The error lines of a failed run, checked to be clean one-line errors."""
    assert result.code == 1, result.out + result.err
    assert "unexpected" not in result.err and "Traceback" not in result.err, result.err
    lines = result.err.splitlines()
    assert lines and all(line.startswith("Error: ") for line in lines), result.err
    return lines


def one_error(result: Run, pattern: str) -> str:
    lines = error_lines(result)
    assert len(lines) == 1, lines
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


# --- bounded input -----------------------------------------------------------------


def test_a_manifest_nested_a_thousand_levels_deep_gets_one_error(
    retrain: Callable[..., Run], project: Path
) -> None:
    deep = "".join(f"{' ' * (i + 1)}a:\n" for i in range(1000))
    edit(project, "apiVersion: retrain/v1\n", f"apiVersion: retrain/v1\nx:\n{deep}")
    one_error(retrain("validate"), r"retrain\.yaml:\d+: the document is nested more than 64 levels")


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_flow_style_nesting_of_any_depth_gets_one_error(
    retrain: Callable[..., Run], project: Path, depth: int
) -> None:
    edit(project, "apiVersion: retrain/v1\n", f"apiVersion: retrain/v1\nx: {'[' * depth}\n")
    one_error(retrain("validate"), r"retrain\.yaml:\d+: the document is nested more than 64 levels")


def test_aliases_cannot_nest_deeper_than_the_limit(
    retrain: Callable[..., Run], project: Path
) -> None:
    chain = "x0: &a0 [1]\n" + "".join(f"x{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 1000))
    edit(project, "apiVersion: retrain/v1\n", f"apiVersion: retrain/v1\n{chain}")
    one_error(retrain("validate"), r"nested more than 64 levels deep")


def test_a_manifest_larger_than_the_limit_is_refused_and_nothing_is_applied(
    retrain: Callable[..., Run], project: Path
) -> None:
    padding = "#" + "x" * 1023 + "\n"  # a 1 KiB comment line
    with (project / "retrain.yaml").open("a") as f:
        f.write(padding * 10 * 1024)  # 10 MiB
    result = retrain("apply", "--auto-approve")
    one_error(
        result, r"retrain\.yaml: manifest is larger than 4\.0 MiB .*RETRAIN_MAX_MANIFEST_BYTES"
    )
    assert not (project / ".retrain").exists()


def test_the_manifest_size_limit_is_set_from_the_environment(
    retrain: Callable[..., Run], project: Path
) -> None:
    size = (project / "retrain.yaml").stat().st_size
    assert retrain("validate", env={manifest.MAX_BYTES_ENV: str(size)}).code == 0
    smaller = retrain("validate", env={manifest.MAX_BYTES_ENV: str(size - 1)})
    one_error(smaller, rf"manifest is larger than {size - 1} bytes \({size} bytes\)")
    one_error(
        retrain("validate", env={manifest.MAX_BYTES_ENV: "4MB"}),
        r"RETRAIN_MAX_MANIFEST_BYTES must be a number of bytes, got '4MB'",
    )


def test_a_string_longer_than_the_limit_is_refused(
    retrain: Callable[..., Run], project: Path
) -> None:
    edit(project, 'version: "2026.11"', f'version: "{"9" * 70_000}"')
    one_error(retrain("validate"), r"retrain\.yaml:\d+: a value is longer than 65536 characters")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1" * 5000, r"an integer larger than 64 bits"),
        ("0x" + "f" * 5000, r"an integer larger than 64 bits"),
        ("2001-13-45", r"invalid YAML: '2001-13-45': month must be in 1\.\.12"),
    ],
    ids=["decimal", "hex", "date"],
)
def test_a_scalar_yaml_cannot_build_is_one_error_at_its_line(
    retrain: Callable[..., Run], project: Path, value: str, expected: str
) -> None:
    edit(project, "seed: 0", f"seed: {value}")
    line = one_error(retrain("validate"), expected)
    number = int(line.split(":")[2])
    assert (
        (project / "retrain.yaml").read_text().splitlines()[number - 1].strip().startswith("seed:")
    )


def test_a_manifest_that_is_a_symlink_to_dev_zero_is_refused(
    retrain: Callable[..., Run], project: Path
) -> None:
    (project / "zero.yaml").symlink_to("/dev/zero")
    one_error(retrain("validate", "-f", "zero.yaml"), r"zero\.yaml: manifest is not a regular file")


@pytest.mark.timeout(30)
def test_a_manifest_that_is_a_fifo_is_refused_without_waiting(
    retrain: Callable[..., Run], project: Path
) -> None:
    os.mkfifo(project / "pipe.yaml")
    one_error(retrain("validate", "-f", "pipe.yaml"), r"pipe\.yaml: manifest is not a regular file")


def test_a_definition_nested_deeper_than_the_limit_is_refused(
    retrain: Callable[..., Run], project: Path
) -> None:
    definition = project / "examples" / "bike_rental" / "webservice.json"
    definition.write_text('{"properties": {"assets": ' + "[" * 100_000 + "]" * 100_000 + "}}")
    one_error(
        retrain("validate"), r"/defaults/definition: webservice\.json is nested more than 64 levels"
    )


def test_a_definition_larger_than_the_limit_is_refused(
    retrain: Callable[..., Run], project: Path
) -> None:
    definition = project / "examples" / "bike_rental" / "webservice.json"
    with definition.open("r+b") as f:
        f.truncate(17 * yamlsrc.MiB)  # sparse: no disk used
    one_error(
        retrain("validate"), r"/defaults/definition: webservice\.json is larger than 16\.0 MiB"
    )


@pytest.mark.parametrize(
    "source",
    ["x = " + "-" * 100_000 + "1\n", "x = " + "+".join(["1"] * 200_000) + "\n"],
    ids=["unary", "binary"],
)
def test_an_entrypoint_nested_too_deep_to_parse_gets_one_error(
    retrain: Callable[..., Run], project: Path, source: str
) -> None:
    trainer = project / "examples" / "bike_rental" / "train.py"
    trainer.write_text(source + trainer.read_text())
    one_error(
        retrain("validate"), r"/trainers/bike-demand/entrypoint: .*train\.py is nested too deeply"
    )


def test_an_input_that_is_a_symlink_to_dev_zero_is_refused(
    retrain: Callable[..., Run], project: Path
) -> None:
    data = project / "examples" / "bike_rental" / "data" / "boston.csv"
    data.unlink()
    data.symlink_to("/dev/zero")
    one_error(retrain("validate"), r"/endpoints/0/forEach/2: inputs/rentals: not a file: .*boston")


def test_an_entrypoint_larger_than_the_limit_is_refused(
    retrain: Callable[..., Run], project: Path
) -> None:
    trainer = project / "examples" / "bike_rental" / "train.py"
    with trainer.open("r+b") as f:
        f.truncate(5 * yamlsrc.MiB)  # sparse: no disk used
    one_error(
        retrain("validate"),
        r"/trainers/bike-demand/entrypoint: examples/bike_rental/train\.py is larger than 4\.0 MiB",
    )


# --- each problem once, where it is written ----------------------------------------


def many_items(project: Path, n: int) -> None:
    edit(project, ITEMS, "".join(f"      - {{location: seattle, n: {i}}}\n" for i in range(n)))
    edit(project, "name: bike-${each.location}", "name: bike-${each.n}")
    edit(project, "webService: bike-demand-${each.location}", "webService: bike-demand-${each.n}")


def test_an_unset_variable_in_a_for_each_template_is_one_error_at_the_template(
    retrain: Callable[..., Run], project: Path
) -> None:
    many_items(project, 200)
    edit(project, "rentals: examples/bike_rental/data/${each.location}.csv", "rentals: ${env:NOPE}")
    # One line, at the template; and no "file not found: " for the empty string it left.
    one_error(
        retrain("validate"),
        r"retrain\.yaml:\d+: /endpoints/0/inputs/rentals: environment variable NOPE is not set$",
    )


def test_an_unset_variable_in_a_templated_path_gives_no_knock_on_error(
    retrain: Callable[..., Run], project: Path
) -> None:
    edit(
        project,
        "rentals: examples/bike_rental/data/${each.location}.csv",
        "rentals: ${env:DATA}/${each.location}.csv",
    )
    one_error(
        retrain("validate"), r"/endpoints/0/inputs/rentals: environment variable DATA is not set$"
    )


def test_a_defaults_problem_is_reported_once_at_the_defaults_line(
    retrain: Callable[..., Run], project: Path
) -> None:
    edit(project, "  trainer: bike-demand\n", "  trainer: other\n")
    line = one_error(retrain("validate"), r"/defaults/trainer: no trainer named 'other'")
    text = (project / "retrain.yaml").read_text().splitlines()
    number = int(line.split(":")[2])
    assert text[number - 1] == "  trainer: other", line


def test_an_unset_variable_in_defaults_is_one_error_at_defaults(
    retrain: Callable[..., Run], project: Path
) -> None:
    edit(project, "definition: examples/bike_rental/webservice.json", "definition: ${env:DEF}")
    one_error(retrain("validate"), r"/defaults/definition: environment variable DEF is not set$")


def test_a_problem_of_one_item_is_reported_at_that_item(
    retrain: Callable[..., Run], project: Path
) -> None:
    (project / "examples" / "bike_rental" / "data" / "boston.csv").unlink()
    line = one_error(
        retrain("validate"),
        r"/endpoints/0/forEach/2: inputs/rentals: file not found: .*/boston\.csv$",
    )
    number = int(line.split(":")[2])
    assert "{location: boston}" in (project / "retrain.yaml").read_text().splitlines()[number - 1]


def test_a_key_no_item_has_is_one_error_at_the_template(
    retrain: Callable[..., Run], project: Path
) -> None:
    edit(project, "data/${each.location}.csv", "data/${each.loc}.csv")
    one_error(retrain("validate"), r"/endpoints/0/inputs/rentals: no forEach item has a key 'loc'$")


def test_an_invalid_endpoint_name_gives_no_unknown_key_error(
    retrain: Callable[..., Run], project: Path
) -> None:
    edit(project, "name: bike-${each.location}", "name: Bike-${each.location}")
    one_error(retrain("validate"), r"/endpoints/0/name: 'Bike-\$\{each.location\}' does not match")


def test_a_truly_unknown_key_is_still_reported_at_its_own_line(
    retrain: Callable[..., Run], project: Path
) -> None:
    edit(project, "name: bike-${each.location}", "name: Bike-${each.location}\n    colour: red")
    lines = error_lines(retrain("validate"))
    assert len(lines) == 2, lines
    text = (project / "retrain.yaml").read_text().splitlines()
    unknown = next(line for line in lines if "unknown key: 'colour'" in line)
    assert text[int(unknown.split(":")[2]) - 1] == "    colour: red", unknown


def test_a_templated_value_bad_for_every_item_is_one_error_at_the_template(
    retrain: Callable[..., Run], project: Path
) -> None:
    edit(project, "webService: bike-demand-${each.location}", "webService: a/${each.location}")
    one_error(
        retrain("validate"), r"/endpoints/0/webService: the local backend needs a web service"
    )


def test_problems_come_in_line_order_with_one_per_distinct_cause(
    retrain: Callable[..., Run], project: Path
) -> None:
    edit(project, "  trainer: bike-demand\n", "  trainer: other\n")
    edit(project, "definition: examples/bike_rental/webservice.json", "definition: ${env:DEF}")
    (project / "examples" / "bike_rental" / "data" / "portland.csv").unlink()
    lines = error_lines(retrain("validate"))
    assert [re.sub(r"^Error: [^:]+:\d+: ", "", line) for line in lines] == [
        "/defaults/trainer: no trainer named 'other' (declared: bike-demand)",
        "/defaults/definition: environment variable DEF is not set",
        "/endpoints/0/forEach/1: inputs/rentals: file not found: "
        "examples/bike_rental/data/portland.csv",
    ], lines
    numbers = [int(line.split(":")[2]) for line in lines]
    assert numbers == sorted(numbers)


@pytest.mark.parametrize("breaker", ["\x1e", "\x85", "\u2028", "\r", "\x1b[2J"])
def test_a_key_holding_a_line_breaking_character_still_gets_a_one_line_error(
    retrain: Callable[..., Run], project: Path, breaker: str
) -> None:
    # The key is echoed raw in the JSON pointer of a problem inside it.
    key = _yaml_escape(f"bad{breaker}key")
    edit(project, "    parameters:", f'    parameters:\n      "{key}": [1]')
    line = one_error(retrain("validate"), r"/parameters/bad.*is not of type")
    assert breaker not in line
    assert breaker.encode("unicode_escape").decode() in line


def _yaml_escape(text: str) -> str:
    """A YAML double-quoted scalar's escapes for control characters."""
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)
