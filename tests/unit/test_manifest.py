"""Manifest loading: every problem at once, each with file, line and JSON pointer."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import errors, manifest, model, providers, yamlsrc


def load(path: Path, *, env: dict[str, str]) -> model.Manifest:
    """Load as the engine does: for every registered backend."""
    return manifest.load(path, env=env, backends=list(providers.registry().values()))


TRAINER = "def train(*, inputs, parameters, model_path, evaluation_path):\n    pass\n"


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "train.py").write_text(TRAINER)
    (tmp_path / "a.csv").write_text("x\n1\n")
    (tmp_path / "b.csv").write_text("x\n2\n")
    path = tmp_path / "retrain.yaml"
    path.write_text(text)
    return path


GOOD = """\
apiVersion: retrain/v1
backend: {kind: local}
trainers:
  t:
    entrypoint: train.py:train
    parameters: {alpha: 1}
defaults:
  trainer: t
  asset: M [trained model]
  version: "1"
  gate: {metric: r2, minimum: 0.5}
endpoints:
  - forEach: [{x: a}, {x: b}]
    name: ep-${each.x}
    webService: ws-${each.x}
    inputs: {data: "${each.x}.csv"}
  - name: solo
    webService: ws-solo
    inputs: {data: a.csv}
    parameters: {alpha: 2}
    gate: {metric: rmse, higherIsBetter: false}
"""


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(errors.ManifestError) as info:
        load(write(tmp_path, text), env=env or {})
    return info.value.problems


def test_for_each_expands_one_endpoint_per_item_with_defaults_merged(tmp_path: Path) -> None:
    loaded = load(write(tmp_path, GOOD), env={})
    assert [ep.name for ep in loaded.endpoints] == ["ep-a", "ep-b", "solo"]
    a, b, solo = loaded.endpoints
    assert (a.web_service, b.web_service) == ("ws-a", "ws-b")
    assert a.inputs["data"] == str(tmp_path / "a.csv")
    assert a.gate is not None and a.gate.minimum == 0.5
    assert solo.gate is not None and solo.gate.metric == "rmse"
    assert solo.gate.higher_is_better is False
    assert dict(solo.parameters) == {"alpha": 2}
    assert dict(a.parameters) == {"alpha": 1}
    assert a.source.line == 13


def test_every_violation_is_reported_at_once_with_line_and_pointer(tmp_path: Path) -> None:
    text = GOOD.replace("backend: {kind: local}", "backend: {kind: local, colour: red}")
    text = text.replace(
        "    parameters: {alpha: 2}\n", "    parameters: {alpha: 2}\n    extra: 1\n"
    )
    text = text.replace("minimum: 0.5", "minimum: high")
    found = problems(tmp_path, text)
    assert len(found) == 3, found
    joined = "\n".join(found)
    assert "retrain.yaml:2: /backend: unknown key: 'colour'" in joined
    assert "retrain.yaml:11: /defaults/gate/minimum: 'high' is not of type 'number'" in joined
    assert "/endpoints/1: unknown key: 'extra'" in joined


def test_duplicate_endpoint_names_are_refused(tmp_path: Path) -> None:
    text = GOOD.replace("name: solo", "name: ep-a")
    found = problems(tmp_path, text)
    assert any("duplicate endpoint name 'ep-a'" in p and ":17:" in p for p in found), found


def test_duplicate_yaml_keys_are_refused_with_their_line(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("  - name: solo\n", "  - name: solo\n    name: x\n"))
    assert found == [f"{tmp_path / 'retrain.yaml'}:18: duplicate key 'name'"]


def test_missing_trainer_and_files_are_errors_even_when_schema_valid(tmp_path: Path) -> None:
    text = GOOD.replace("inputs: {data: a.csv}", "inputs: {data: nope.csv}")
    text = text.replace("  trainer: t\n", "  trainer: other\n")
    found = problems(tmp_path, text)
    joined = "\n".join(found)
    # The trainer is named in defaults: one problem there, not one per endpoint.
    assert joined.count("no trainer named 'other'") == 1, found
    assert "retrain.yaml:8: /defaults/trainer: no trainer named 'other' (declared: t)" in joined
    assert "/endpoints/1/inputs/data: file not found: nope.csv" in joined


def test_entrypoint_must_define_the_function(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("train.py:train", "train.py:fit"))
    assert any("/trainers/t/entrypoint: train.py defines no function 'fit'" in p for p in found)


def test_env_references_resolve_and_missing_variables_are_located(tmp_path: Path) -> None:
    text = GOOD.replace('version: "1"', 'version: "${env:MODEL_VERSION}"')
    loaded = load(write(tmp_path, text), env={"MODEL_VERSION": "7"})
    assert {ep.version for ep in loaded.endpoints} == {"7"}
    found = problems(tmp_path, text)
    assert any("environment variable MODEL_VERSION is not set" in p for p in found), found


def test_secrets_are_resolved_by_reference_and_never_printed(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    parameters: {alpha: 1}\n",
        "    parameters: {alpha: 1}\n    secrets: {TOKEN: '${env:TOK}'}\n",
    )
    loaded = load(write(tmp_path, text), env={"TOK": "s3cr3t-value"})
    secret = loaded.trainers["t"].secrets["TOKEN"]
    assert secret.reveal() == "s3cr3t-value"
    assert "s3cr3t" not in repr(secret) and "s3cr3t" not in str(loaded)


def test_a_literal_secret_is_refused_without_echoing_it(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    parameters: {alpha: 1}\n",
        "    parameters: {alpha: 1}\n    secrets: {TOKEN: hunter22}\n",
    )
    found = problems(tmp_path, text)
    assert len(found) == 1
    assert "/trainers/t/secrets/TOKEN: secret values must be written as ${env:NAME}" in found[0]
    assert "hunter22" not in found[0]


def test_each_reference_without_for_each_is_an_error(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("webService: ws-solo", "webService: ws-${each.x}"))
    assert any("/endpoints/1: ${each.x} used without forEach" in p for p in found), found


def test_for_each_item_missing_a_key_is_located(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("[{x: a}, {x: b}]", "[{x: a}, {y: b}]"))
    assert any("/endpoints/0/forEach/1: item has no key 'x'" in p for p in found), found


def test_two_endpoints_on_one_web_service_asset_are_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("webService: ws-solo", "webService: ws-a"))
    assert any("targets the same web service asset as 'ep-a'" in p for p in found), found


def test_required_fields_are_checked_after_defaults(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace('  version: "1"\n', ""))
    # Once per entry that lacks it: the forEach template once, not once per item.
    assert [p.split(": ", 1)[1] for p in found] == [
        "/endpoints/0: 'version' is a required property",
        "/endpoints/1: 'version' is a required property",
    ], found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the manifest is empty"),
        ("a: [1\n", "invalid YAML"),
        ("apiVersion: retrain/v2\n", "/apiVersion: 'retrain/v1' was expected"),
    ],
)
def test_malformed_documents_fail_with_a_located_error(
    tmp_path: Path, text: str, expected: str
) -> None:
    found = problems(tmp_path, text)
    assert any(expected in p for p in found), found
    assert all(p.startswith(str(tmp_path / "retrain.yaml")) for p in found)


def test_a_missing_manifest_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(errors.ManifestError, match="cannot read manifest"):
        load(tmp_path / "absent.yaml", env={})


def test_the_shipped_example_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    loaded = load(root / "retrain.yaml.example", env={})
    assert len(loaded.endpoints) >= 3
    assert len({ep.trainer.name for ep in loaded.endpoints}) == 1


def test_secret_parameters_take_only_env_references_and_never_clash(tmp_path: Path) -> None:
    literal = GOOD.replace(
        "    parameters: {alpha: 1}\n",
        "    parameters: {alpha: 1}\n    secretParameters: {pw: hunter22}\n",
    )
    found = problems(tmp_path, literal)
    assert any(
        "/trainers/t/secretParameters/pw: secret values must be written" in p for p in found
    ), found
    assert "hunter22" not in "\n".join(found)
    clash = GOOD.replace(
        "    parameters: {alpha: 1}\n",
        "    parameters: {alpha: 1}\n    secretParameters: {alpha: '${env:A}'}\n",
    )
    found = problems(tmp_path, clash, env={"A": "x" * 8})
    assert any("'alpha' is both a parameter and a secret parameter" in p for p in found), found
    ok = GOOD.replace(
        "    parameters: {alpha: 1}\n",
        "    parameters: {alpha: 1}\n    secretParameters: {pw: '${env:PW}'}\n",
    )
    loaded = load(write(tmp_path, ok), env={"PW": "pw-value-123"})
    assert loaded.endpoints[0].secret_parameters["pw"].reveal() == "pw-value-123"
    # The endpoints set none of their own: they share the trainer's map, walked once.
    assert all(
        ep.secret_parameters is loaded.trainers["t"].secret_parameters for ep in loaded.endpoints
    )
    assert manifest.secret_values(loaded) == ["pw-value-123"]


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ('{"a": "[[[[[[", "b": [[1]]}', False),  # brackets inside strings do not count
        ('["\\"[[[[[["]', False),  # nor after an escaped quote
        ('"\\\\" [[[[', True),  # an escaped backslash ends before the quote
        ("[[[[]]]]", True),
    ],
)
def test_json_depth_is_counted_outside_strings(text: str, deep: bool) -> None:
    assert yamlsrc.json_too_deep(text, 3) is deep


@pytest.mark.timeout(10)
def test_json_depth_check_is_linear_on_hostile_strings() -> None:
    # Escaped quotes after an unterminated quote made a naive scanner quadratic (hours).
    assert yamlsrc.json_too_deep('"' + '\\"' * 4_000_000) is False


def test_a_bounded_read_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(yamlsrc.SourceError, match="x is not a regular file"):
        yamlsrc.read_bounded(tmp_path / "zero", 10, "x")
    with pytest.raises(yamlsrc.SourceError, match="x is not a regular file"):
        yamlsrc.read_bounded(tmp_path, 10, "x")
    (tmp_path / "f").write_bytes(b"12345")
    assert yamlsrc.read_bounded(tmp_path / "f", 5, "x") == b"12345"
    with pytest.raises(yamlsrc.SourceError, match=r"x is larger than 4 bytes \(5 bytes\)"):
        yamlsrc.read_bounded(tmp_path / "f", 4, "x")
