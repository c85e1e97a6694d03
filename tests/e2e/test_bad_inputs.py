"""Bad input of every kind gets one clear line, a non-zero exit, and nothing half-done.

Each case breaks something in a copy of the applied example (state, manifest, flags),
runs one command, and checks the error: exactly the expected lines, each starting with
``Error:``, never "unexpected" (which is how retrain reports its own bugs).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Run
from tests.e2e.test_cli_local import snapshot

pytestmark = pytest.mark.slow
SERVICE = Path(".retrain") / "webservices" / "bike-demand-boston.json"


def edit_json(path: Path, change: Callable[[dict[str, Any]], object]) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def break_manifest(old: str, new: str) -> Callable[[Path], None]:
    def apply(project: Path) -> None:
        manifest = project / "retrain.yaml"
        text = manifest.read_text()
        assert old in text, old
        manifest.write_text(text.replace(old, new, 1))

    return apply


def history_dir(project: Path) -> None:
    (project / ".retrain" / "history.jsonl").unlink()
    (project / ".retrain" / "history.jsonl").mkdir()


CASES: dict[str, tuple[Callable[[Path], object], tuple[str, ...], str]] = {
    "tags that are not a map": (
        lambda p: edit_json(p / SERVICE, lambda d: d.update(tags=[1])),
        ("plan",),
        r"definition's tags is not a map",
    ),
    "a history that is not UTF-8": (
        lambda p: (p / ".retrain" / "history.jsonl").write_bytes(b"\xff\xfe\n"),
        ("status",),
        r"cannot read history: .*utf-8",
    ),
    "a history that is a directory": (history_dir, ("history",), r"cannot read history"),
    "a lock file with a garbage timestamp": (
        lambda p: (p / ".retrain" / "lock").write_text(
            json.dumps(
                {"id": "x1", "holder": "ci", "pid": 1, "host": "elsewhere", "since": "garbage"}
            )
        ),
        ("apply", "--auto-approve"),
        r"state is locked by ci \(pid 1 on elsewhere, since 'garbage'",
    ),
    "an alias bomb": (
        break_manifest(
            "apiVersion: retrain/v1",
            "apiVersion: retrain/v1\nx0: &a0 [1,1,1,1,1,1,1,1,1]\n"
            + "".join(f"x{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 9)),
        ),
        ("validate",),
        r"expands to more than 200000 values",
    ),
    "an alias that refers to itself": (
        break_manifest("apiVersion: retrain/v1", "apiVersion: retrain/v1\nx: &a [*a]"),
        ("validate",),
        r"invalid YAML: an alias refers to itself",
    ),
    "an unknown YAML tag": (
        break_manifest("apiVersion: retrain/v1", "apiVersion: !python/object retrain/v1"),
        ("validate",),
        r"retrain\.yaml:\d+: invalid YAML: could not determine a constructor",
    ),
    "a gate floor that is not a number": (
        break_manifest("    minimum: 0.6 ", "    minimum: .nan"),
        ("validate",),
        r"/gate/minimum: nan is not a finite number",
    ),
    "a secret too short to mask": (
        lambda p: None,
        ("validate",),
        r"/trainers/bike-demand/secrets/API_TOKEN: the value of "
        r"\$\{env:RETRAIN_TEST_SECRET\} is shorter than 4 characters",
    ),
    "a local web service name with a slash": (
        break_manifest(
            "webService: bike-demand-${each.location}",
            "webService: ../bike-demand-${each.location}",
        ),
        ("validate",),
        r"/endpoints/0/webService: the local backend needs a web service name",
    ),
    "a state dir that is a file": (
        lambda p: (p / "not-a-dir").write_text("x"),
        ("apply", "--auto-approve", "--state-dir", "not-a-dir"),
        r"(Not a directory|File exists)",
    ),
    "a selection that selects nothing": (
        lambda p: None,
        ("plan", "--target", "bike-boston", "--exclude", "bike-boston"),
        r"--target/--exclude leave no endpoint selected",
    ),
    "a lock timeout that is not a number": (
        lambda p: None,
        ("apply", "--auto-approve", "--lock-timeout", "nan"),
        r"lock-timeout",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_one_clear_error_line(
    retrain: Callable[..., Run], applied: Path, case: str
) -> None:
    breaker, command, expected = CASES[case]
    breaker(applied)
    env = {"RETRAIN_TEST_SECRET": "abc"} if case == "a secret too short to mask" else None
    result = retrain(*command, env=env)
    assert result.code == 1, result.out + result.err
    lines = [line for line in result.err.splitlines() if not line.startswith("Warning:")]
    assert lines, result.err
    assert all(line.startswith("Error: ") for line in lines), result.err
    assert "unexpected" not in result.err and "Traceback" not in result.err
    assert re.search(expected, result.err), result.err


def test_a_garbage_fingerprint_tag_is_drift_for_that_endpoint_only(
    retrain: Callable[..., Run], applied: Path
) -> None:
    edit_json(applied / SERVICE, lambda d: d["tags"].update({"retrain.fingerprint": "zzz"}))
    result = retrain("plan")
    assert result.code == 0, result.err
    assert "! bike-boston  repair-drift" in result.out
    assert "2 unchanged" in result.out
    assert retrain("apply", "--auto-approve").code == 0
    assert retrain("plan", "--detailed-exitcode").code == 0


def test_an_unwritable_history_refuses_the_apply_before_anything_changes(
    retrain: Callable[..., Run], applied: Path
) -> None:
    # Apply reads the history first (to record what an interrupted run did not), so a
    # history it cannot use stops it before it changes anything, rather than after.
    history_dir(applied)
    manifest = applied / "retrain.yaml"
    manifest.write_text(manifest.read_text().replace('version: "2026.11"', 'version: "2026.12"'))
    before = snapshot(applied)
    result = retrain("apply", "--auto-approve")
    assert result.code == 1
    assert "unexpected" not in result.out + result.err
    assert result.err.strip().splitlines() == [
        f"Error: cannot write history: it is a directory ({applied / '.retrain' / 'history.jsonl'})"
    ]
    assert snapshot(applied) == before  # no web service changed without its history line


def test_a_model_gone_from_the_store_is_trained_again_not_pointed_at(
    retrain: Callable[..., Run], applied: Path
) -> None:
    doc = json.loads((applied / SERVICE).read_text())
    fp = doc["tags"]["retrain.fingerprint"]
    (applied / ".retrain" / "models" / fp / "model.ilearner").unlink()
    manifest = applied / "retrain.yaml"
    manifest.write_text(manifest.read_text().replace('version: "2026.11"', 'version: "2026.12"'))
    plan = retrain("plan")
    assert f"model {fp[:12]} is no longer in the model store: train it again" in plan.out
    result = retrain("apply", "--auto-approve")
    assert result.code == 0, result.err
    assert (applied / ".retrain" / "models" / fp / "model.ilearner").is_file()
