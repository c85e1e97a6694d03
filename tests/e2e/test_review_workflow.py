"""The pull-request review workflow end to end: saved plans, challenger metrics,
stale-plan refusal, selection, locking between real processes, secrets, and the
CI examples that drive it (examples/ci/).

Most tests start from the example project already applied once (trained once
per session, then copied). The lock tests run ``retrain`` as separate
processes, as two CI jobs would; a trainer that waits for a file keeps the
first apply holding the lock for exactly as long as a test needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import pytest

from reconciler import cli
from tests.conftest import ROOT, SECRET, SECRET_ENV, Run, record
from tests.e2e.test_cli_local import serving, snapshot, trainings

pytestmark = pytest.mark.slow
MARKER = "<!-- retrain-plan: retrain.yaml -->"
R2 = "Coefficient of Determination"
HOST = socket.gethostname()


# -- helpers --------------------------------------------------------------------------------


def fewer_rows(project: Path, location: str, hours: int) -> None:
    """New data for one location: the same file with its last ``hours`` rows gone."""
    data = project / "examples" / "bike_rental" / "data" / f"{location}.csv"
    data.write_text("".join(data.read_text().splitlines(keepends=True)[:-hours]))


def web_service_file(project: Path, location: str) -> Path:
    return project / ".retrain" / "webservices" / f"bike-demand-{location}.json"


def edit_live_model(project: Path, location: str, uri: str) -> None:
    """Someone repoints a live web service's trained model by hand."""
    path = web_service_file(project, location)
    doc = json.loads(path.read_text())
    for asset in doc["properties"]["assets"].values():
        if asset["name"] == "Bike Demand [trained model]":
            asset["locationInfo"]["uri"] = uri
    path.write_text(json.dumps(doc, indent=2))


def stored_metrics(project: Path, fingerprint: str) -> dict[str, float]:
    meta = project / ".retrain" / "models" / fingerprint / "metadata.json"
    return dict(json.loads(meta.read_text())["metrics"])


def model_dirs(project: Path) -> set[str]:
    return {p.name for p in (project / ".retrain" / "models").iterdir() if p.is_dir()}


def start(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """``retrain ARGS`` as its own process (its pid is the lock holder's pid)."""
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], what: str, timeout: float = 60) -> Run:
    out, err = proc.communicate(timeout=timeout)
    record(f"process: retrain {what}", out, err)
    return Run(proc.returncode, out, err)


def wait_for_lock(lock: Path, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            info: dict[str, Any] = json.loads(lock.read_text())
            return info
        except (FileNotFoundError, ValueError):
            time.sleep(0.02)
    raise AssertionError(f"nobody took the lock {lock} within {timeout}s")


HOLDER = """
import sys
from pathlib import Path
from reconciler.providers.local import filelock
with filelock.hold(Path(sys.argv[1]), holder=sys.argv[2], timeout=10):
    print("held", flush=True)
    sys.stdin.read()  # stuck until the test lets go
"""


@contextmanager
def lock_held_by(holder: str, project: Path) -> Iterator[subprocess.Popen[str]]:
    """A live process, stuck, holding the project's apply lock as ``holder``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(project / ".retrain" / "lock"), holder],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        yield proc
    finally:
        if proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.close()
        proc.wait(10)


SLOW_TRAINER = '''
"""A trainer that finishes only once the file ``release`` exists (or after a minute)."""

import time
from pathlib import Path


def train(*, inputs, parameters, model_path, evaluation_path):
    deadline = time.monotonic() + 60
    while not Path("release").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    model_path.write_bytes(b"a model")
    evaluation_path.write_text("Coefficient of Determination\\n0.9\\n")
'''

SLOW_MANIFEST = f"""
apiVersion: retrain/v1
backend: {{kind: local}}
trainers:
  slow:
    entrypoint: slow_trainer.py:train
    secrets: {{API_TOKEN: "${{env:{SECRET_ENV}}}"}}
    timeout: 60
defaults:
  trainer: slow
  asset: Bike Demand [trained model]
  definition: webservice.json
  version: "1"
  gate: {{metric: Coefficient of Determination, minimum: 0.5}}
endpoints:
  - name: slow-one
    webService: bike-demand-slow-one
    inputs: {{rentals: data.csv}}
"""


@pytest.fixture
def slow_project(tmp_path: Path) -> Path:
    """One endpoint whose training waits for the file ``release``."""
    (tmp_path / "retrain.yaml").write_text(SLOW_MANIFEST)
    (tmp_path / "slow_trainer.py").write_text(SLOW_TRAINER)
    (tmp_path / "data.csv").write_text("y\n1\n2\n")
    (tmp_path / "webservice.json").write_bytes(
        (ROOT / "examples" / "bike_rental" / "webservice.json").read_bytes()
    )
    return tmp_path


# -- the acceptance scenario --------------------------------------------------------------


def test_a_reviewed_plan_with_challenger_metrics_is_applied_exactly_and_without_training(
    retrain: Callable[..., Run], applied: Path
) -> None:
    fewer_rows(applied, "seattle", 48)
    champion = serving(applied, "bike-seattle")
    others = {ep: serving(applied, ep) for ep in ("bike-portland", "bike-boston")}

    review = retrain(
        "plan", "--train", "-out", "p.json", "--format", "markdown", "--detailed-exitcode"
    )
    assert review.code == 2, review.err
    assert len(trainings(review)) == 1
    saved = json.loads((applied / "p.json").read_text())
    (change,) = [c for c in saved["changes"] if c["action"] != "no-op"]
    challenger = change["after"]["fingerprint"]
    assert change["address"] == "bike-seattle" and change["train"] is None
    assert change["champion_metrics"] == stored_metrics(applied, champion)
    assert change["challenger_metrics"] == stored_metrics(applied, challenger)
    old, new = change["champion_metrics"][R2], change["challenger_metrics"][R2]
    comment = review.out
    assert comment.startswith(MARKER + "\n### retrain plan: 1 update\n")
    trained = "(trained for this plan)"
    assert (
        f"| `bike-seattle` | update | `{champion[:12]}` → `{challenger[:12]}` {trained} | ✅ pass |"
        in comment
    )
    assert "**Training jobs** 1 (1 trained for this plan)" in comment
    assert "| metric | serving (champion) | new (challenger) | Δ |" in comment
    assert f"| {R2} | {old:.4g} | {new:.4g} | {new - old:+.4g} |" in comment
    assert f"Gate: {R2} {new:.4g} vs serving {old:.4g} passes" in comment

    models = model_dirs(applied)
    result = retrain("apply", "p.json")
    assert result.code == 0, result.err
    assert trainings(result) == [] and "Trained 0 models" in result.out
    assert model_dirs(applied) == models
    assert "✓ bike-seattle: applied: serving model " + challenger[:12] in result.out
    assert serving(applied, "bike-seattle") == challenger
    assert {ep: serving(applied, ep) for ep in others} == others

    # The same plan again: it is refused, not re-run, and says it was applied already.
    before = snapshot(applied)
    again = retrain("apply", "p.json")
    assert again.code == 1 and again.out == ""
    assert again.err.startswith(
        "Error: plan is stale, make a new one: bike-seattle: this plan was already applied"
    )
    assert snapshot(applied) == before
    assert retrain("plan", "--detailed-exitcode").code == 0


# -- stale plans --------------------------------------------------------------------------


def test_a_live_edit_between_plan_and_apply_refuses_the_plan_naming_each_moved_endpoint(
    retrain: Callable[..., Run], applied: Path
) -> None:
    fewer_rows(applied, "seattle", 48)
    made = retrain("plan", "-out", "p.json")
    assert made.code == 0 and "~ bike-seattle  retrain" in made.out
    edit_live_model(applied, "portland", "local://models/hand-picked/model.ilearner")
    web_service_file(applied, "boston").unlink()
    before = snapshot(applied)
    result = retrain("apply", "p.json")
    assert result.code == 1
    assert result.out == ""
    assert result.err.startswith("Error: plan is stale, make a new one: bike-portland: ")
    assert (
        "bike-portland: live state changed (model_uri: local://models/"
        f"{serving(applied, 'bike-portland')}/model.ilearner -> "
        "local://models/hand-picked/model.ilearner)" in result.err
    )
    assert "; bike-boston: live state changed (the web service was deleted)" in result.err
    assert "bike-seattle" not in result.err
    assert trainings(result) == []
    assert snapshot(applied) == before  # nothing trained, written or recorded
    assert not (applied / ".retrain" / "lock").exists()


def test_a_plan_made_from_another_manifest_revision_is_refused(
    retrain: Callable[..., Run], applied: Path
) -> None:
    manifest = applied / "retrain.yaml"
    reviewed = hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert retrain("plan", "-out", "p.json").code == 0
    manifest.write_text(manifest.read_text().replace("n_estimators: 100", "n_estimators: 120"))
    now = hashlib.sha256(manifest.read_bytes()).hexdigest()
    before = snapshot(applied)
    result = retrain("apply", "p.json")
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        "Error: plan is stale, make a new one: the manifest changed since the plan was made "
        f"(plan {reviewed[:12]}, now {now[:12]}) (retrain.yaml)\n"
    )
    assert trainings(result) == [] and snapshot(applied) == before


def test_a_plan_whose_model_inputs_changed_since_is_refused(
    retrain: Callable[..., Run], applied: Path
) -> None:
    assert retrain("plan", "-out", "p.json").code == 0  # no changes: a plan all the same
    fewer_rows(applied, "boston", 24)
    result = retrain("apply", "p.json")
    assert result.code == 1
    assert re.fullmatch(
        r"Error: plan is stale, make a new one: bike-boston: model inputs changed "
        rf"\(fingerprint \w{{12}}, plan {serving(applied, 'bike-boston')[:12]}\) "
        r"\(retrain\.yaml\)\n",
        result.err,
    ), result.err


def _tamper(path: Path) -> None:
    data = json.loads(path.read_text())
    data["changes"][1]["action"] = "no-op"  # hide the portland repair from the reviewer
    path.write_text(json.dumps(data, indent=2))


def _truncate(path: Path) -> None:
    path.write_text(path.read_text()[:500])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            _tamper,
            "plan file was modified after it was written (checksum mismatch); make a new "
            "plan (p.json)",
        ),
        (_truncate, "plan file is not valid JSON (truncated?): "),
    ],
    ids=["tampered", "truncated"],
)
def test_a_damaged_plan_file_is_refused_with_a_clear_error_and_changes_nothing(
    retrain: Callable[..., Run], applied: Path, damage: Callable[[Path], None], message: str
) -> None:
    edit_live_model(applied, "portland", "local://models/hand-picked/model.ilearner")
    assert retrain("plan", "-out", "p.json").code == 0
    damage(applied / "p.json")
    before = snapshot(applied)
    result = retrain("apply", "p.json")
    assert (result.code, result.out) == (1, "")
    assert result.err.startswith("Error: " + message)
    assert "Traceback" not in result.err
    assert snapshot(applied) == before


# -- selection and per-endpoint results -----------------------------------------------------


def test_a_targeted_plan_applies_only_its_endpoint_and_lists_the_others_as_skipped(
    retrain: Callable[..., Run], applied: Path
) -> None:
    edit_live_model(applied, "portland", "local://models/hand-picked/model.ilearner")
    fewer_rows(applied, "seattle", 48)
    seattle = serving(applied, "bike-seattle")
    made = retrain("plan", "--target", "bike-portland", "-out", "p.json")
    assert made.code == 0
    assert made.err == (
        "Warning: --target/--exclude in effect: the plan covers only bike-portland.\n"
    )
    assert "! bike-portland  repair-drift" in made.out and "seattle" not in made.out
    result = retrain("apply", "p.json")
    assert result.code == 0, result.err
    lines = result.out.strip().splitlines()
    assert lines[0].startswith("✓ bike-portland: applied: serving model ")
    assert lines[1:3] == [
        "- bike-seattle: skipped: not selected",
        "- bike-boston: skipped: not selected",
    ]
    assert lines[-1].startswith("Apply complete: 1 applied, 0 failed, 2 skipped.")
    assert trainings(result) == [] and serving(applied, "bike-seattle") == seattle
    mixed = retrain("apply", "p.json", "--target", "bike-seattle")
    assert mixed.code == 1
    assert mixed.err == (
        "Error: --target/--exclude cannot be combined with a saved plan; "
        "select endpoints when planning\n"
    )
    unknown = retrain("plan", "--exclude", "bike-nowhere")
    assert unknown.code == 1
    assert unknown.err == (
        "Error: no endpoint named 'bike-nowhere' "
        "(endpoints: bike-boston, bike-portland, bike-seattle)\n"
    )


def test_apply_finishes_what_it_can_then_exits_1_with_a_result_per_endpoint(
    retrain: Callable[..., Run], applied: Path
) -> None:
    manifest = applied / "retrain.yaml"
    manifest.write_text(manifest.read_text().replace("maxRegression: 0.05", "maxRegression: 0.001"))
    edit_live_model(applied, "portland", "local://models/hand-picked/model.ilearner")
    fewer_rows(applied, "boston", 24)  # a slightly worse model: the gate must stop it
    boston = serving(applied, "bike-boston")
    result = retrain("apply", "--auto-approve", "--exclude", "bike-seattle")
    assert result.code == 1
    assert result.err.startswith(
        "Warning: --target/--exclude in effect: the plan covers only bike-portland, bike-boston."
    )
    assert len(trainings(result)) == 1
    report = result.out[result.out.index("\n✓ ") + 1 :].splitlines()
    assert report[0].startswith("✓ bike-portland: applied: serving model ")
    assert re.fullmatch(
        rf"✗ bike-boston: gate-blocked: gate: {R2} 0\.\d+ regresses more than 0\.001 from the "
        rf"serving model's 0\.\d+; still serving {boston[:12]}",
        report[1],
    ), report[1]
    assert report[2] == "- bike-seattle: skipped: not selected"
    assert report[4].startswith(
        "Apply finished with failures: 1 applied, 0 failed, 1 gate-blocked, 1 skipped."
    )
    assert serving(applied, "bike-boston") == boston
    assert retrain("plan", "--target", "bike-portland", "--detailed-exitcode").code == 0


# -- locking --------------------------------------------------------------------------------


def test_a_second_apply_names_the_lock_holder_and_a_patient_one_waits_then_succeeds(
    slow_project: Path,
) -> None:
    lock = slow_project / ".retrain" / "lock"
    first = start(slow_project, "apply", "--auto-approve", env={"RETRAIN_ACTOR": "alice"})
    patient: subprocess.Popen[str] | None = None
    try:
        held = wait_for_lock(lock)
        assert (held["holder"], held["pid"], held["host"]) == ("alice", first.pid, HOST)
        began = time.monotonic()
        second = finish(
            start(
                slow_project,
                "apply",
                "--auto-approve",
                "--lock-timeout",
                "1",
                env={"RETRAIN_ACTOR": "bob"},
            ),
            "apply --lock-timeout 1",
        )
        assert time.monotonic() - began >= 1
        assert second.code == 1 and second.out == ""
        lock_id = held["id"]
        waiting, error = second.err.splitlines(keepends=True)
        assert waiting.startswith(f"waiting up to 1s for the lock held by alice (pid {first.pid}")
        assert re.fullmatch(
            rf"Error: state is locked by alice \(pid {first.pid} on {re.escape(HOST)}, for \d+s "
            rf"since {re.escape(held['since'])}, lock ID {lock_id}\); waited 1s \(wait for it, "
            rf"raise --lock-timeout, or release it with 'retrain force-unlock {lock_id}'\) "
            rf"\({re.escape(str(lock))}\)\n",
            error,
        ), second.err
        patient = start(
            slow_project,
            "apply",
            "--auto-approve",
            "--lock-timeout",
            "60",
            env={"RETRAIN_ACTOR": "carol"},
        )
        time.sleep(1.5)
        assert patient.poll() is None  # waiting for alice
    finally:
        (slow_project / "release").touch()
    done = finish(first, "apply (alice)")
    assert done.code == 0, done.err
    assert "Apply complete: 1 applied, 0 failed. Trained 1 model" in done.out
    assert patient is not None
    waited = finish(patient, "apply --lock-timeout 60 (carol)")
    assert waited.code == 0, waited.err
    assert waited.out == "No changes. 1 endpoint serving their desired models.\n"
    history = (slow_project / ".retrain" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["actor"] for line in history] == ["alice"]
    assert not lock.exists()


def test_force_unlock_releases_a_stuck_lock_and_refuses_a_wrong_id(
    retrain: Callable[..., Run], applied: Path
) -> None:
    lock = applied / ".retrain" / "lock"
    with lock_held_by("stuck-ci-job", applied) as stuck:
        held = json.loads(lock.read_text())
        holder = rf"stuck-ci-job \(pid {stuck.pid} on {re.escape(HOST)}, for \d+s since \S+, "
        blocked = retrain("apply", "--auto-approve")
        assert blocked.code == 1
        assert re.match(rf"Error: state is locked by {holder}lock ID {held['id']}\)", blocked.err)

        wrong = retrain("force-unlock", "not-the-lock-id")
        assert wrong.code == 1
        assert re.fullmatch(
            rf"Error: lock ID not-the-lock-id does not hold the lock; it is held by "
            rf"{holder}lock ID {held['id']}\) \({re.escape(str(lock))}\)\n",
            wrong.err,
        ), wrong.err
        assert json.loads(lock.read_text()) == held

        released = retrain("force-unlock", held["id"])
        assert released.code == 0, released.err
        assert re.fullmatch(
            rf"Released the lock held by {holder}lock ID {held['id']}\)\.\n", released.out
        ), released.out
        assert not lock.exists()
        assert stuck.poll() is None  # the stuck holder lives on; its lock does not

        after = retrain("apply", "--auto-approve")
        assert after.code == 0, after.err
        gone = retrain("force-unlock", held["id"])
        assert (gone.code, gone.err) == (1, f"Error: state is not locked ({lock})\n")
    assert stuck.returncode == 0  # letting go of a lock it no longer holds is harmless


def test_an_apply_waiting_for_the_lock_says_whom_it_waits_for(
    retrain: Callable[..., Run], applied: Path
) -> None:
    with lock_held_by("stuck-ci-job", applied) as stuck:
        assert stuck.stdin is not None
        threading.Timer(1.0, stuck.stdin.close).start()
        result = retrain("apply", "--auto-approve", "--lock-timeout", "30")
    assert result.code == 0, result.err
    assert re.search(r"[Ww]aiting .*lock.* stuck-ci-job \(pid \d+", result.err), result.err


# -- secrets --------------------------------------------------------------------------------

LEAKY_TRAINER = """
import os
import sys


def train(*, inputs, parameters, model_path, evaluation_path):
    token = os.environ["API_TOKEN"]
    print(f"connecting with {token}")
    print(f"debug: API_TOKEN={token}", file=sys.stderr)
    raise RuntimeError(f"warehouse refused token {token}")
"""


def test_a_trainer_that_prints_and_raises_its_secret_has_it_masked_in_every_output(
    retrain: Callable[..., Run], project: Path
) -> None:
    (project / "examples" / "bike_rental" / "leaky.py").write_text(LEAKY_TRAINER)
    manifest = project / "retrain.yaml"
    manifest.write_text(
        manifest.read_text().replace("bike_rental/train.py:train", "bike_rental/leaky.py:train")
    )
    masked = "RuntimeError: warehouse refused token (sensitive)"
    review = retrain(
        "plan", "--train", "--target", "bike-seattle", "-out", "p.json", "--format", "markdown"
    )
    assert review.code == 1, review.err  # a failed training is a red CI check (issue 10)
    assert re.search(rf"Warning: training model \w+ failed: .*{re.escape(masked)}", review.err)
    assert review.out.startswith(MARKER)
    result = retrain("apply", "--auto-approve", "--target", "bike-seattle")
    assert result.code == 1
    assert (
        "✗ bike-seattle: failed: training failed: trainer 'bike-demand' failed: " + masked
    ) in result.out
    outputs = [review.out, review.err, result.out, result.err]
    for fmt in ("text", "json", "markdown"):
        shown = retrain("plan", "--format", fmt, "-out", f"p.{fmt}.json")
        assert shown.code == 0
        outputs += [shown.out, shown.err, (project / f"p.{fmt}.json").read_text()]
    outputs.append((project / "p.json").read_text())
    assert all(SECRET not in text for text in outputs)
    assert list((project / ".retrain" / "models").iterdir()) == []


def test_a_training_failure_in_plan_train_shows_in_the_comment(
    retrain: Callable[..., Run], project: Path
) -> None:
    (project / "examples" / "bike_rental" / "leaky.py").write_text(LEAKY_TRAINER)
    manifest = project / "retrain.yaml"
    manifest.write_text(
        manifest.read_text().replace("bike_rental/train.py:train", "bike_rental/leaky.py:train")
    )
    review = retrain("plan", "--train", "--target", "bike-seattle", "--format", "markdown")
    assert "Warning: training model" in review.err
    assert review.code == 1
    assert "❌ **Training failed**" in review.out.split("<details>")[0]


def test_rotating_a_trainer_credential_is_not_a_change_to_any_model(
    retrain: Callable[..., Run], applied: Path
) -> None:
    """Deliberate: ``secrets`` are credentials for the training process (a warehouse
    token), not model content, so rotating one must not retrain a fleet. Secrets that
    are model inputs are ``secretParameters``: a change to one retrains and shows by
    name only (tests/e2e/test_secret_parameters.py)."""
    rotated = "rt-rotated-" + "7" * 16
    result = retrain("plan", "--detailed-exitcode", env={SECRET_ENV: rotated})
    assert rotated not in result.out + result.err
    assert SECRET not in result.out + result.err
    assert (result.code, result.out) == (
        0,
        "No changes. 3 endpoints serving their desired models.\n",
    )


def test_a_manifest_error_never_shows_the_value_of_a_secret_variable(
    retrain: Callable[..., Run], project: Path
) -> None:
    other = "rt-other-" + "5" * 16  # not the session's secret: this test expects a leak today
    manifest = project / "retrain.yaml"
    text = manifest.read_text().replace(SECRET_ENV, "OTHER_TOKEN")
    manifest.write_text(
        text.replace(
            "examples/bike_rental/data/${each.location}.csv",
            "examples/bike_rental/data/${each.location}-${env:OTHER_TOKEN}.csv",
        )
    )
    result = retrain("validate", env={"OTHER_TOKEN": other})
    assert result.code == 1 and "file not found" in result.err
    assert other not in result.err


def test_a_saved_plan_holding_a_secret_value_is_refused_clearly_or_applies(
    retrain: Callable[..., Run], project: Path
) -> None:
    other = "rt-other-" + "6" * 16
    manifest = project / "retrain.yaml"
    text = manifest.read_text().replace(SECRET_ENV, "OTHER_TOKEN")
    manifest.write_text(text.replace('version: "2026.11"', 'version: "${env:OTHER_TOKEN}"'))
    env = {"OTHER_TOKEN": other}
    made = retrain("plan", "--target", "bike-seattle", "-out", "p.json", env=env)
    assert other not in made.out + made.err + (project / "p.json").read_text()
    if made.code == 0:
        result = retrain("apply", "p.json", env=env)
        assert "checksum mismatch" not in result.err
    else:
        assert "secret" in made.err


LEAKY_SUITE = """
import os


def test_prints_the_secret():
    print("token:", os.environ["RETRAIN_TEST_SECRET"])


def test_writes_the_secret(tmp_path):
    (tmp_path / "state.json").write_text(os.environ["RETRAIN_TEST_SECRET"])


def test_keeps_it_to_itself():
    assert os.environ["RETRAIN_TEST_SECRET"].startswith("rt-secret-")
"""


def test_the_session_secret_scan_fails_a_run_whose_output_or_files_hold_the_secret(
    tmp_path: Path,
) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_leaky.py").write_text(LEAKY_SUITE)
    inner = "rt-secret-inner-" + "4" * 16  # its own value: this run's secret never leaks
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.conftest",
            "--basetemp",
            str(tmp_path / "basetemp"),
            "test_leaky.py",
        ],
        cwd=suite,
        env={**os.environ, SECRET_ENV: inner, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    record("process: pytest on a leaky suite", done.stdout, done.stderr)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "3 passed" in done.stdout
    assert "the test secret ($RETRAIN_TEST_SECRET) leaked" in done.stdout
    assert "secret value found in test_leaky.py::test_prints_the_secret: Captured stdout call" in (
        done.stdout
    )
    assert re.search(
        r"secret value found in file \S+/test_writes_the_secret0/state\.json", done.stdout
    )
    assert "test_keeps_it_to_itself" not in done.stdout
    assert inner not in done.stdout + done.stderr


# -- the CI examples ------------------------------------------------------------------------


def retrain_commands(text: str) -> list[list[str]]:
    """Every ``"$RETRAIN" COMMAND ...`` line of a pipeline's scripts, continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = re.findall(r'"\$RETRAIN" ([^\n]*)', joined)
    return [shlex.split(re.sub(r"\s\d?>.*", "", line)) for line in lines]


@pytest.mark.parametrize("name", ["github-actions.yml", "azure-pipelines.yml"])
def test_the_ci_examples_parse_and_use_only_commands_and_flags_retrain_has(name: str) -> None:
    yaml = pytest.importorskip("yaml")
    path = ROOT / "examples" / "ci" / name
    assert isinstance(yaml.safe_load(path.read_text()), dict)
    commands = retrain_commands(path.read_text())
    assert {c[0] for c in commands} == {"plan", "apply"}
    for command, *args in commands:
        found = cli.cli.get_command(click.Context(cli.cli), command)  # loads it (cli.group)
        assert found is not None, command
        known = {opt for p in found.params for opt in p.opts}
        used = {a for a in args if a.startswith("-")}
        assert used <= known, (command, used - known)
    plans = [c for c in commands if "--train" in c]
    assert plans and all({"--detailed-exitcode", "--format", "-out"} <= set(c) for c in plans)
    assert ["apply", "-f", "$MANIFEST", "--lock-timeout", "600", "reviewed/plan.json"] in commands
