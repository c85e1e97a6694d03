"""Honest CI results (issue 10, point 1): ``plan --train`` whose training or gate fails
exits 1 and says so in the markdown summary, a model trained for the plan is labelled
so in every rendering, and parameter changes show their old and new values.

A tiny real trainer (tests/providers/trainers/tiny.py) in a project of its own keeps
each run fast; the CLI runs in-process as a user would call it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler import cli
from tests.conftest import ROOT, Run, record

HERE = Path(__file__).resolve().parent

MANIFEST = """\
apiVersion: retrain/v1
backend: {kind: local}
trainers:
  tiny:
    entrypoint: tiny.py:train
    parameters: {shift: 0, n_estimators: 100, style: gini}
    secretParameters: {salt: "${env:TINY_SALT}"}
endpoints:
  - name: solo
    webService: ws-solo
    asset: Bike Demand [trained model]
    version: "1"
    trainer: tiny
    inputs: {data: data.csv}
    definition: webservice.json
    gate: {metric: Score, minimum: 0.1}
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A project with one endpoint trained by the tiny trainer."""
    shutil.copy(HERE.parent / "providers" / "trainers" / "tiny.py", tmp_path / "tiny.py")
    shutil.copy(ROOT / "examples" / "bike_rental" / "webservice.json", tmp_path / "webservice.json")
    (tmp_path / "data.csv").write_text("y\n1\n2\n3\n")
    (tmp_path / "retrain.yaml").write_text(MANIFEST)
    return tmp_path


@pytest.fixture
def run(
    tiny: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Run]:
    monkeypatch.chdir(tiny)

    def retrain(*args: str, salt: str = "first-salt-value") -> Run:
        capsys.readouterr()
        code = cli.main(list(args), {**os.environ, "TINY_SALT": salt}, interactive=False)
        out, err = capsys.readouterr()
        record(f"honest-ci: retrain {' '.join(args)}", out, err)
        return Run(code, out, err)

    return retrain


def edit(project: Path, old: str, new: str) -> None:
    manifest = project / "retrain.yaml"
    text = manifest.read_text()
    assert text.count(old) == 1, old
    manifest.write_text(text.replace(old, new))


def summary_of(markdown: str) -> str:
    """The part of a plan comment a reader sees without opening a section."""
    return markdown.split("<details>", maxsplit=1)[0]


# -- a failure during plan --train is red -----------------------------------------------------


def test_a_training_failure_in_plan_train_exits_1_and_shows_in_the_summary(
    run: Callable[..., Run], tiny: Path
) -> None:
    assert run("apply", "--auto-approve").code == 0
    edit(tiny, "shift: 0,", 'shift: 0, fail: "no rows for 2026",')
    review = run("plan", "--train", "--detailed-exitcode", "--format", "markdown", "-out", "p")
    assert review.code == 1, review.err  # was 2: CI took a failed training for "has changes"
    summary = summary_of(review.out)
    assert "❌ **Training failed**: model `" in summary
    assert "(`solo`): trainer 'tiny' failed: RuntimeError: cannot train: no rows" in summary
    assert "| ❌ training failed |" in summary
    assert "**Training jobs** 1 (1 failed)" in summary
    assert review.err.splitlines()[-1] == "Error: plan --train: 1 training job failed"
    saved = json.loads((tiny / "p").read_text())  # the plan is still saved, for the record
    (failure,) = saved["training_failed"]
    assert failure["fingerprint"] == saved["training_jobs"][0]
    assert "cannot train: no rows for 2026" in failure["reason"]
    text = run("show", "p")
    assert text.code == 0
    assert "    gate: not judged: training FAILED" in text.out
    assert "Training jobs: 1 (1 failed)." in text.out
    assert run("plan", "--train").code == 1  # without --detailed-exitcode too (was 0)


def test_a_gate_failure_in_plan_train_exits_1_and_shows_in_the_summary(
    run: Callable[..., Run], tiny: Path
) -> None:
    assert run("apply", "--auto-approve").code == 0
    edit(tiny, "minimum: 0.1}", "minimum: 0.99}")
    edit(tiny, "shift: 0,", "shift: 3,")  # a worse model: Score 1/(1+mae+3)
    review = run("plan", "--train", "--detailed-exitcode", "--format", "markdown")
    assert review.code == 1, review.err
    summary = summary_of(review.out)
    assert "| 🔴 | `solo` | blocked | `" in summary
    assert "(trained for this plan) | ❌ fail |" in summary
    assert review.err.splitlines()[-1] == (
        "Error: plan --train: the gate turned down the new model of solo"
    )
    assert run("plan", "--train", "--detailed-exitcode").code == 1


def test_a_plan_train_that_passes_keeps_its_exit_codes(run: Callable[..., Run], tiny: Path) -> None:
    assert run("apply", "--auto-approve").code == 0
    assert run("plan", "--train", "--detailed-exitcode").code == 0
    edit(tiny, "shift: 0,", "shift: 0.01,")
    assert run("plan", "--train", "--detailed-exitcode").code == 2


# -- trained for this plan ------------------------------------------------------------------


def test_a_model_trained_for_the_plan_is_labelled_in_every_rendering(
    run: Callable[..., Run], tiny: Path
) -> None:
    assert run("apply", "--auto-approve").code == 0
    edit(tiny, "shift: 0,", "shift: 0.01,")
    review = run("plan", "--train", "--format", "markdown", "-out", "p.json")
    assert review.code == 0, review.err
    summary = summary_of(review.out)
    assert "**Training jobs** 1 (1 trained for this plan)" in summary  # was "Training jobs 0"
    assert "(trained for this plan) | ✅ pass |" in summary
    assert "Trained for this plan: a later apply reuses the model." in review.out
    saved = json.loads((tiny / "p.json").read_text())
    (change,) = [c for c in saved["changes"] if c["action"] != "no-op"]
    assert change["action"] == "update" and change["train"] is None
    assert saved["trained_for_plan"] == [change["after"]["fingerprint"]]
    assert saved["training_jobs"] == [] and "training_failed" not in saved
    shown = run("show", "p.json")
    assert f"    trained for this plan: model {change['after']['fingerprint'][:12]}" in shown.out
    assert "Training jobs: 1 (1 trained for this plan)." in shown.out
    assert "(trained for this plan)" in run("show", "p.json", "--format", "markdown").out
    applied = run("apply", "p.json")
    assert applied.code == 0, applied.err
    assert "Trained 0 models" in applied.out


def test_a_plan_without_training_has_no_training_keys(run: Callable[..., Run], tiny: Path) -> None:
    made = run("plan", "--format", "json")
    assert made.code == 0
    saved = json.loads(made.out)
    assert "trained_for_plan" not in saved and "training_failed" not in saved
    assert "Training jobs: 1." in run("plan").out


# -- parameter changes old → new ------------------------------------------------------------


def test_parameter_changes_show_old_and_new_values_and_secrets_by_name_only(
    run: Callable[..., Run], tiny: Path
) -> None:
    assert run("apply", "--auto-approve").code == 0
    edit(tiny, "n_estimators: 100, style: gini", "n_trees: 100, style: entropy")
    edit(tiny, "shift: 0,", "shift: 0, n_jobs: 4,")
    review = run("plan", salt="second-salt-value")
    assert review.code == 0, review.err
    reason = next(line for line in review.out.splitlines() if "parameters changed" in line)
    assert reason.strip() == (
        "parameters changed: n_estimators removed (was 100), n_jobs added: 4, "
        'n_trees added: 100, salt (secret), style: "gini" → "entropy": train model '
        + reason.split(": train model ")[1]
    )
    for fmt in ("json", "markdown"):
        shown = run("plan", "--format", fmt, salt="second-salt-value").out
        assert "salt (secret)" in shown and "sensitive:" not in shown
        assert "second-salt-value" not in shown
