"""The chaos harness (``bench/chaos.py``): its checks see each kind of damage, and a CI-sized
campaign of placed kills ends with every count at 0.

The detector tests damage a healthy, really applied fleet by hand, one way each, and check
that exactly that count moves: a harness whose checks cannot fail would prove nothing.
"""

from __future__ import annotations

import collections
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from bench import chaos, chaos_report
from bench import chaos_checks as checks

pytestmark = pytest.mark.slow
TINY = checks.Fleet(endpoints=2, models=1, seconds=0.1)  # detector tests: one quick model


@pytest.fixture(scope="module")
def healthy_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("chaos-healthy").resolve()
    project = chaos.make_project(root, TINY)
    code, err = chaos.run(project, "apply", "--auto-approve")
    assert code == 0, err
    return root


@pytest.fixture
def healthy(healthy_template: Path, tmp_path: Path) -> checks.Project:
    """A copy of the applied fleet (the checks read files; nothing re-runs in the copy)."""
    root = tmp_path / "fleet"
    shutil.copytree(healthy_template, root)
    return checks.Project(root.resolve(), TINY)


def served_fingerprint(project: checks.Project) -> str:
    uri = checks.served(project)["ep-000"]
    assert uri is not None
    match = checks.MODEL_URI.match(uri)
    assert match, uri
    return match.group(1)


def history_lines(project: checks.Project) -> list[dict[str, object]]:
    text = (project.state / "history.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def write_history(project: checks.Project, lines: list[dict[str, object]]) -> None:
    text = "".join(json.dumps(line) + "\n" for line in lines)
    (project.state / "history.jsonl").write_text(text, encoding="utf-8")


def test_a_healthy_fleet_shows_no_damage(healthy: checks.Project) -> None:
    assert checks.missing_models(healthy) == 0
    assert sum(checks.history_findings(healthy).values()) == 0
    assert checks.scratch(healthy) == []
    assert checks.secret_files(healthy) == []
    assert set(checks.completed_runs(healthy).values()) == {1}


def test_a_service_on_an_incomplete_model_is_counted(healthy: checks.Project) -> None:
    (healthy.state / "models" / served_fingerprint(healthy) / "metadata.json").unlink()
    assert checks.missing_models(healthy) == 2  # both endpoints share the model


def test_a_service_on_a_model_outside_the_store_is_counted(healthy: checks.Project) -> None:
    path = healthy.state / "webservices" / "ws-001.json"
    fp = served_fingerprint(healthy)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(f"models/{fp}/model.ilearner", f"models/{fp}/../x"))
    assert checks.missing_models(healthy) == 1


def test_a_change_missing_from_history_is_counted(healthy: checks.Project) -> None:
    write_history(healthy, [e for e in history_lines(healthy) if e["endpoint"] != "ep-001"])
    assert checks.history_findings(healthy) == collections.Counter(history_missing=1)


def test_the_same_model_twice_in_a_row_is_a_duplicate(healthy: checks.Project) -> None:
    lines = history_lines(healthy)
    write_history(healthy, [*lines, lines[0]])
    assert checks.history_findings(healthy) == collections.Counter(history_duplicated=1)


def test_a_torn_history_line_is_unreadable(healthy: checks.Project) -> None:
    with (healthy.state / "history.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"endpoint": "ep-0')
    assert checks.history_findings(healthy) == collections.Counter(history_unreadable=1)


def test_a_second_completed_run_of_a_model_is_counted(healthy: checks.Project) -> None:
    (model_id,) = checks.completed_runs(healthy)
    with healthy.counts.open("a", encoding="utf-8") as f:
        f.write(f"{model_id} 12345\n")
    assert checks.completed_runs(healthy)[model_id] == 2


def test_scratch_and_secrets_left_in_the_state_dir_are_counted(healthy: checks.Project) -> None:
    job = healthy.state / "models" / ".job-abc123"
    job.mkdir()
    (job / "job.json").write_text(json.dumps({"parameters": {"token": checks.SECRET}}))
    (healthy.state / "webservices" / ".ws-000.json.42.tmp").write_text("{}")
    assert sorted(p.name for p in checks.scratch(healthy)) == [".job-abc123", ".ws-000.json.42.tmp"]
    assert checks.secret_files(healthy) == [job / "job.json"]
    seen = checks.Seen()
    assert len(seen.new("scratch", checks.scratch(healthy))) == 2
    assert seen.new("scratch", checks.scratch(healthy)) == set()  # counted once, not per round


def test_a_process_working_in_the_project_is_an_orphan_and_is_killed(
    healthy: checks.Project,
) -> None:
    sleeper = subprocess.Popen(["sleep", "60"], cwd=healthy.root)
    try:
        assert checks.survivors(healthy.root) == [sleeper.pid]
        checks.kill_all([sleeper.pid])
        assert sleeper.wait(timeout=5) == -9
        assert checks.survivors(healthy.root) == []
    finally:
        sleeper.kill()


def test_a_process_started_under_the_project_is_an_orphan_wherever_it_works(
    healthy: checks.Project, tmp_path: Path
) -> None:
    env = {"PATH": "/usr/bin:/bin", checks.MARKER: str(healthy.root)}
    sleeper = subprocess.Popen(["sleep", "60"], cwd=tmp_path, env=env)
    try:
        assert checks.survivors(healthy.root) == [sleeper.pid]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_lock_left_behind_is_counted_released_and_retried(healthy: checks.Project) -> None:
    held = {"id": "left-behind", "holder": "ci", "pid": 1, "host": "another-host", "since": "?"}
    (healthy.state / "lock").write_text(json.dumps(held), encoding="utf-8")
    round_ = chaos.Round(1, chaos.Kill("KILL", "random"))
    chaos.rerun(healthy, round_)
    assert round_.found == collections.Counter(force_unlock=1)
    assert not (healthy.state / "lock").exists()


def test_the_schedule_is_half_random_half_placed_and_sigkill_mostly() -> None:
    kills = chaos.schedule(30, ["KILL", "TERM", "INT"], random.Random(7), span=4.0)
    placements = collections.Counter(k.placement for k in kills)
    assert placements == {"random": 15, "training": 5, "serving": 5, "read-back": 5}
    signals = collections.Counter(k.signal for k in kills)
    assert signals["KILL"] > signals["TERM"] + signals["INT"]
    assert all(0 < k.delay <= 4.0 for k in kills if k.placement == "random")
    assert kills == chaos.schedule(30, ["KILL", "TERM", "INT"], random.Random(7), span=4.0)
    assert {k.signal for k in chaos.schedule(9, ["TERM"], random.Random(1), 1.0)} == {"TERM"}


def test_the_results_file_keeps_the_other_labels(tmp_path: Path) -> None:
    result = chaos.Campaign(TINY, seed=1, span=1.0)
    result.rounds.append(chaos.Round(1, chaos.Kill("KILL", "serving"), sent_at=1.5, exit_code=-9))
    result.rounds[0].found["history_missing"] = 1
    path = tmp_path / "chaos.md"
    chaos_report.write(path, "before the fixes", result, argv=["--kills", "1"])
    chaos_report.write(path, "after the fixes", chaos.Campaign(TINY, seed=1), argv=[])
    chaos_report.write(path, "after the fixes", chaos.Campaign(TINY, seed=2), argv=[])
    text = path.read_text(encoding="utf-8")
    assert text.startswith(chaos_report.TITLE)
    assert text.count("## before the fixes\n") == 1
    assert text.count("## after the fixes\n") == 1
    assert "seed 2" in text
    assert "| history entries missing (last entry is not the served model) | 1 | 1 |" in text


CI_KILLS = (  # one SIGKILL at each placed point: each one found a problem on the landed main
    chaos.Kill("KILL", "training"),
    chaos.Kill("KILL", "serving"),
    chaos.Kill("KILL", "read-back"),
)


def test_a_ci_sized_chaos_campaign_ends_with_every_count_at_zero(tmp_path: Path) -> None:
    fleet = checks.Fleet(endpoints=4, models=2, seconds=1.5)
    result = chaos.campaign(fleet, seed=1, kills=CI_KILLS, workdir=tmp_path)
    assert all(r.sent_at is not None for r in result.rounds), "a kill missed the running apply"
    found = {name: n for name, n in result.totals().items() if n}
    assert found == {}, f"{chaos_report.table(result)}\n" + "\n".join(
        chaos_report.round_line(r) for r in result.rounds
    )
