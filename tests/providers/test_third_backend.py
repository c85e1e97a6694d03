"""A third backend, registered only through the ``retrain.providers`` entry points, runs
the whole loop with no core edit: its manifest is validated against its own schema
fragment and checks, and ``retrain plan``/``apply`` reconcile through it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from reconciler import cli, errors, providers
from tests.providers import plugin

ROOT = Path(__file__).parents[2]
MANIFEST = """\
apiVersion: retrain/v1
backend: {kind: memory, memory: {parallelism: 2}}
trainers:
  tiny: {call: "tests.providers.trainers.tiny:train"}
endpoints:
  - name: ep-${each.city}
    forEach: [{city: a}, {city: b}]
    webService: ws-${each.city}
    shelf: blue
    asset: Bike Demand [trained model]
    version: 1
    trainer: tiny
    inputs: {data: data.csv}
    definition: webservice.json
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    plugin.install_memory(tmp_path / "site", monkeypatch)
    shutil.copy(ROOT / "examples" / "bike_rental" / "webservice.json", tmp_path)
    (tmp_path / "data.csv").write_text("y\n1\n2\n3\n")
    (tmp_path / "retrain.yaml").write_text(MANIFEST)
    return tmp_path


def run(project: Path, *args: str) -> int:
    return cli.main([*args, "-f", str(project / "retrain.yaml")], dict(os.environ))


def test_the_registry_finds_the_entry_point_backend_after_the_built_in_ones(
    project: Path,
) -> None:
    assert list(providers.registry()) == ["local", "azure", "azureml", "memory"]


def test_plan_and_apply_reconcile_through_a_plug_in_backend(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(project, "plan", "--detailed-exitcode") == 2
    assert run(project, "apply", "--auto-approve") == 0
    out = capsys.readouterr().out
    assert "2 applied" in out
    assert run(project, "plan", "--detailed-exitcode") == 0
    assert "No changes" in capsys.readouterr().out


def test_a_plug_in_backends_fragment_and_checks_validate_its_manifest(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "retrain.yaml").write_text(MANIFEST.replace("parallelism: 2", "parallelism: 0"))
    assert run(project, "validate") == 1
    assert "/backend/memory/parallelism: 0 is less than the minimum of 1" in capsys.readouterr().err
    (project / "t.py").write_text("def train(): pass\n")
    trainer = '{call: "tests.providers.trainers.tiny:train"}'
    (project / "retrain.yaml").write_text(MANIFEST.replace(trainer, "{entrypoint: t.py:train}"))
    assert run(project, "validate") == 1
    err = capsys.readouterr().err
    assert "/trainers/tiny: the memory backend calls a function: give the trainer call" in err


def test_a_plug_in_backends_fields_are_refused_by_the_built_in_ones(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = MANIFEST.replace("kind: memory, memory: {parallelism: 2}", "kind: local")
    (project / "retrain.yaml").write_text(text)
    assert run(project, "validate") == 1
    err = capsys.readouterr().err
    assert "the local backend runs trainers with an entrypoint" in err


def test_an_unknown_kind_lists_every_registered_backend(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "retrain.yaml").write_text(MANIFEST.replace("kind: memory", "kind: nope"))
    assert run(project, "validate") == 1
    assert "'nope' is not one of ['local', 'azure', 'azureml', 'memory']" in capsys.readouterr().err
    with pytest.raises(errors.ReconcilerError, match=r"unknown backend 'nope' \(known: local, "):
        providers.backend("nope")


def test_a_broken_entry_point_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin.install(tmp_path, monkeypatch, target="tests.providers.no_such_module:BACKEND")
    with pytest.raises(errors.ReconcilerError) as info:
        providers.registry()
    message = str(info.value)
    assert "\n" not in message
    assert "backend entry point 'memory' (tests.providers.no_such_module:BACKEND)" in message
    assert "ModuleNotFoundError" in message


def test_an_entry_point_whose_object_names_another_kind_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin.install(tmp_path, monkeypatch, target="reconciler.providers.local.backend:BACKEND")
    with pytest.raises(errors.ReconcilerError, match="names itself 'local'"):
        providers.registry()
