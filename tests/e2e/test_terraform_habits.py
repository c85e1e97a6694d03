"""Terraform habits, end to end through the CLI (issue 10, point 2): a saved plan applied
with the manifest it records, ``show PLANFILE``, ``--no-color`` everywhere, ``--json``
outputs that follow their published schemas, JSON logs, shell completion.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from reconciler import apply, cli, plan, status
from tests.conftest import ROOT, Run, record
from tests.e2e.test_cli_local import serving, snapshot, trainings

pytestmark = pytest.mark.slow
SCHEMAS = ROOT / "schemas"


def fewer_rows(project: Path, location: str, hours: int = 48) -> None:
    data = project / "examples" / "bike_rental" / "data" / f"{location}.csv"
    data.write_text("".join(data.read_text().splitlines(keepends=True)[:-hours]))


def conforms(document: Any, schema: str) -> None:
    """``document`` is valid against ``schemas/<schema>.schema.json`` (else: why not)."""
    spec = json.loads((SCHEMAS / f"{schema}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(spec)
    jsonschema.Draft202012Validator(spec).validate(document)


# -- apply PLANFILE uses the manifest the plan records ------------------------------------


def test_the_readme_review_commands_work_as_written(
    retrain: Callable[..., Run], project: Path
) -> None:
    (project / "retrain.yaml").rename(project / "retrain.yaml.example")
    made = retrain("plan", "-f", "retrain.yaml.example", "-out", "plan.json")
    assert made.code == 0, made.err
    applied = retrain("apply", "plan.json")
    assert applied.code == 0, applied.err
    assert "Apply complete: 3 applied" in applied.out
    assert retrain("plan", "-f", "retrain.yaml.example", "--detailed-exitcode").code == 0


def test_a_plan_saved_elsewhere_is_applied_from_any_folder(
    retrain: Callable[..., Run], applied: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    fewer_rows(applied, "seattle")
    (applied / "plans").mkdir()
    made = retrain("plan", "-out", "plans/next.json")
    assert made.code == 0, made.err
    assert json.loads((applied / "plans" / "next.json").read_text())["manifest"] == (
        "../retrain.yaml"
    )
    os.chdir(tmp_path_factory.mktemp("elsewhere"))  # the fixture restores the folder
    result = retrain("apply", str(applied / "plans" / "next.json"))
    assert result.code == 0, result.err
    assert "bike-seattle: applied" in result.out and len(trainings(result)) == 1


def test_f_still_wins_and_a_plan_for_another_manifest_is_refused(
    retrain: Callable[..., Run], applied: Path
) -> None:
    fewer_rows(applied, "boston")
    assert retrain("plan", "-out", "p.json").code == 0
    shutil.copy(applied / "retrain.yaml", applied / "other.yaml")
    before = snapshot(applied)
    refused = retrain("apply", "p.json", "-f", "other.yaml")
    assert refused.code == 1
    assert refused.err == (
        "Error: plan was made from the manifest 'retrain.yaml', not 'other.yaml' (-f); "
        "apply it without -f or make a new plan (p.json)\n"
    )
    assert snapshot(applied) == before
    boston = serving(applied, "bike-boston")
    given = retrain("apply", "p.json", "-f", "retrain.yaml")
    assert given.code == 0, given.err
    assert serving(applied, "bike-boston") != boston


# -- show PLANFILE -------------------------------------------------------------------------


def test_show_renders_a_saved_plan_as_plan_did_in_every_format(
    retrain: Callable[..., Run], applied: Path
) -> None:
    fewer_rows(applied, "portland")
    text = retrain("plan", "-out", "p.json", "-v")
    markdown = retrain("plan", "--format", "markdown")
    assert text.code == 0 and markdown.code == 0
    assert retrain("show", "p.json", "-v").out == text.out
    assert retrain("show", "p.json", "--format", "markdown").out == markdown.out
    shown = retrain("show", "p.json", "--format", "json")
    assert shown.code == 0
    assert json.loads(shown.out) == json.loads((applied / "p.json").read_text())
    conforms(json.loads(shown.out), "plan")


def test_show_refuses_a_damaged_plan_in_one_line(
    retrain: Callable[..., Run], applied: Path
) -> None:
    assert retrain("plan", "-out", "p.json").code == 0
    damaged = (applied / "p.json").read_text().replace('"no-op"', '"create"', 1)
    (applied / "p.json").write_text(damaged)
    result = retrain("show", "p.json")
    assert result.code == 1 and result.out == ""
    assert result.err.startswith("Error: plan file was modified after it was written")
    assert result.err.count("\n") == 1


# -- colour --------------------------------------------------------------------------------


def run_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: str,
    env: dict[str, str] | None = None,
) -> Run:
    """The CLI as if stdout were a terminal (where colour is on by default)."""
    capsys.readouterr()
    with monkeypatch.context() as patched:
        patched.setattr(sys.stdout, "isatty", lambda: True)
        code = cli.main(list(args), {**os.environ, **(env or {})}, interactive=False)
    captured = capsys.readouterr()
    record(f"retrain {' '.join(args)}", captured.out, captured.err)
    return Run(code, captured.out, captured.err)


def test_no_color_is_accepted_on_every_subcommand_and_by_environment(
    retrain: Callable[..., Run],
    applied: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fewer_rows(applied, "seattle")
    coloured = run_on_a_terminal(monkeypatch, capsys, "plan", "-out", "p.json")
    assert coloured.code == 0 and "\x1b[" in coloured.out
    for args in (["plan", "--no-color"], ["show", "p.json", "--no-color"], ["--no-color", "plan"]):
        plain = run_on_a_terminal(monkeypatch, capsys, *args)
        assert plain.code == 0, plain.err
        assert "\x1b[" not in plain.out and "to retrain" in plain.out
    by_env = run_on_a_terminal(monkeypatch, capsys, "plan", env={"NO_COLOR": "1"})
    assert by_env.code == 0 and "\x1b[" not in by_env.out
    for args in (
        ["validate"],
        ["status"],
        ["history"],
        ["show", "p.json"],
        ["completion", "bash"],
        ["apply", "--auto-approve"],
        ["force-unlock", "no-such-id"],
    ):
        result = retrain(*args, "--no-color")
        assert "no such option" not in result.err, args
        assert result.code == (1 if args[0] == "force-unlock" else 0), (args, result.err)


# -- --parallelism on plan --train ---------------------------------------------------------


def test_plan_train_takes_parallelism(retrain: Callable[..., Run], applied: Path) -> None:
    fewer_rows(applied, "seattle")
    fewer_rows(applied, "boston")
    result = retrain("plan", "--train", "--parallelism", "1", "--detailed-exitcode")
    assert result.code == 2, result.err
    assert len(trainings(result)) == 2
    assert retrain("plan", "--train", "--parallelism", "0").code == 1


# -- --json outputs, versioned, in schemas/ ------------------------------------------------


def test_apply_status_and_history_print_json_that_follows_their_schemas(
    retrain: Callable[..., Run], applied: Path
) -> None:
    fewer_rows(applied, "seattle")
    done = retrain("apply", "--auto-approve", "--json")
    assert done.code == 0, done.err
    report = json.loads(done.out)  # stdout is the document alone: the plan went to stderr
    conforms(report, "apply")
    assert report["outcome"] == "applied" and len(report["trained"]) == 1
    seattle = next(r for r in report["results"] if r["endpoint"] == "bike-seattle")
    assert seattle["status"] == "applied" and seattle["fingerprint"] == report["trained"][0]
    assert "to retrain" in done.err

    again = json.loads(retrain("apply", "--auto-approve", "--format", "json").out)
    conforms(again, "apply")
    assert (again["outcome"], again["results"]) == ("no-changes", [])

    rows = json.loads(retrain("status", "--json").out)
    conforms(rows, "status")
    assert {r["endpoint"]: r["state"] for r in rows["endpoints"]} == dict.fromkeys(
        ("bike-seattle", "bike-portland", "bike-boston"), "in sync"
    )
    entries = json.loads(retrain("history", "bike-seattle", "--json").out)
    conforms(entries, "history")
    assert [e["action"] for e in entries["entries"]] == ["create", "retrain"]
    assert entries["entries"][-1]["fingerprint"] == serving(applied, "bike-seattle")


def test_a_failed_apply_says_so_in_json_and_exits_1(
    retrain: Callable[..., Run], applied: Path
) -> None:
    manifest = applied / "retrain.yaml"
    manifest.write_text(manifest.read_text().replace("minimum: 0.6", "minimum: 0.99"))
    fewer_rows(applied, "seattle")
    result = retrain("apply", "--auto-approve", "--json")
    assert result.code == 1
    report = json.loads(result.out)
    conforms(report, "apply")
    assert report["outcome"] == "failed" and not report["ok"]
    assert report["totals"]["gate-blocked"] == 1


def test_the_schemas_name_every_action_status_and_state() -> None:
    apply_schema = json.loads((SCHEMAS / "apply.schema.json").read_text())
    result = apply_schema["$defs"]["result"]["properties"]
    assert result["action"]["enum"] == [str(a) for a in plan.Action]
    assert result["status"]["enum"] == [str(s) for s in apply.Status]
    status_schema = json.loads((SCHEMAS / "status.schema.json").read_text())
    state = status_schema["$defs"]["endpoint"]["properties"]["state"]
    assert state["enum"] == [str(s) for s in status.State]


# -- --log-format json ---------------------------------------------------------------------


def test_log_format_json_makes_every_stderr_line_a_record(
    retrain: Callable[..., Run], applied: Path
) -> None:
    fewer_rows(applied, "boston")
    result = retrain("apply", "--auto-approve", "--log-format", "json")
    assert result.code == 0, result.err
    records = [json.loads(line) for line in result.err.splitlines()]
    assert records and {r["level"] for r in records} == {"info"}
    assert any(r["message"].startswith("training model ") for r in records)
    assert all(set(r) == {"time", "level", "message"} for r in records)
    failed = retrain("--log-format=json", "status", "--target", "nope")
    assert failed.code == 1
    (error,) = [json.loads(line) for line in failed.err.splitlines()]
    assert error["level"] == "error" and error["message"].startswith("no endpoint named 'nope'")


# -- shell completion ----------------------------------------------------------------------


def completions(line: list[str], cwd: Path) -> list[str]:
    """What bash offers for ``line`` (its last word being completed), with the script
    ``retrain completion bash`` prints, sourced into a real bash."""
    script = (
        'source <(retrain completion bash); COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
        '_retrain_completion retrain; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    bindir = str(Path(sys.executable).parent)
    done = subprocess.run(
        ["bash", "-c", script, "bash", *line],
        cwd=cwd,
        env={**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    record("bash completion", done.stdout, done.stderr)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_completes_commands_and_options(project: Path) -> None:
    assert completions(["retrain", "sh"], project) == ["show"]
    assert "--format" in completions(["retrain", "status", "--fo"], project)
    assert completions(["retrain", "completion", "z"], project) == ["zsh"]


def test_completion_prints_a_script_for_zsh_and_fish(retrain: Callable[..., Run]) -> None:
    for shell, marker in (("zsh", "#compdef retrain"), ("fish", "complete --no-files")):
        result = retrain("completion", shell)
        assert result.code == 0 and marker in result.out and "_RETRAIN_COMPLETE" in result.out
    assert retrain("completion", "tcsh").code == 1
