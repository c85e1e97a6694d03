"""Progress people can watch (issue 10, point 3): a live table on a terminal, plain
lines in CI, a heartbeat while a job runs, and Ctrl-C that says what finished and what
was stopped, exits 130 and never calls a stopped job failed.

The terminal is a real pseudo-terminal around a real ``retrain`` process; Ctrl-C is a
real SIGINT to it.
"""

from __future__ import annotations

import io
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from reconciler import apply, cli, progress
from reconciler.cli import live
from tests.conftest import ROOT, Run, record

pytestmark = pytest.mark.slow

TRAINER = """
import time
from pathlib import Path


def train(*, inputs, parameters, model_path, evaluation_path):
    if parameters.get("pids"):
        import os
        Path(parameters["pids"]).write_text(str(os.getpid()))
    time.sleep(float(parameters["sleep"]))
    model_path.write_text("model")
    evaluation_path.write_text("Score\\n0.9\\n")
"""

ENDPOINT = """\
  - name: NAME
    webService: ws-NAME
    asset: Bike Demand [trained model]
    version: "1"
    trainer: sleepy
    inputs: {data: data.csv}
    definition: webservice.json
    parameters: PARAMETERS
"""


def project(root: Path, sleeps: dict[str, str], parallelism: int = 1) -> Path:
    """One endpoint per entry of ``sleeps`` (name → the trainer's parameters)."""
    (root / "sleepy.py").write_text(TRAINER)
    (root / "data.csv").write_text("y\n1\n")
    shutil.copy(ROOT / "examples" / "bike_rental" / "webservice.json", root / "webservice.json")
    endpoints = "".join(
        ENDPOINT.replace("NAME", name).replace("PARAMETERS", params)
        for name, params in sleeps.items()
    )
    (root / "retrain.yaml").write_text(
        "apiVersion: retrain/v1\n"
        f"backend: {{kind: local, local: {{parallelism: {parallelism}}}}}\n"
        "trainers:\n  sleepy: {entrypoint: sleepy.py:train}\n"
        f"endpoints:\n{endpoints}"
    )
    return root


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_until(check: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.05)


def stored(root: Path) -> int:
    return len(list((root / ".retrain" / "models").glob("*/metadata.json")))


# -- Ctrl-C -----------------------------------------------------------------------------------


def test_ctrl_c_lists_what_finished_and_what_was_stopped_and_exits_130(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            "fast": "{sleep: 0}",
            "slow": "{sleep: 60, pids: slow.pid}",
            "later": "{sleep: 60, pids: later.pid}",
        },
    )
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    run = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "--auto-approve"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(
        lambda: (root / "slow.pid").exists() and stored(root) == 1, "fast done, slow running"
    )
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=30)
    record("progress: ctrl-c", out, err)
    assert run.returncode == 130, err
    lines = err.splitlines()
    assert "Interrupted." in lines, err
    words = lines.index("Interrupted.")
    summary = lines[words + 1 :]
    assert len(summary) == 3, err
    assert re.fullmatch(r"  finished: model \w{12}: done in \d+\.\ds", summary[0])
    assert re.fullmatch(r"  stopped: model \w{12} \(running for \d+\.\ds\)", summary[1])
    assert re.fullmatch(r"  stopped: model \w{12} \(queued for \d+\.\ds\)", summary[2])
    assert "failed" not in err and "printed nothing" not in err  # was: "failed ... printed nothing"
    assert re.search(r"training model \w{12} stopped: the run was interrupted", err)
    time.sleep(0.5)
    assert not alive(int((root / "slow.pid").read_text()))
    assert not (root / "later.pid").exists()  # a queued job never starts after Ctrl-C
    assert not (root / ".retrain" / "lock").exists()
    assert not (root / ".retrain" / "webservices").exists()  # nothing half-applied
    assert stored(root) == 1  # the finished model is kept: the next apply reuses it


# -- the live table and its plain fallback ----------------------------------------------------


def in_terminal(root: Path, *args: str, env: dict[str, str]) -> tuple[int, str]:
    """``retrain ARGS`` with stdin, stdout and stderr on a pseudo-terminal, as a person
    runs it; returns the exit code and everything the terminal received."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child becomes retrain
        os.chdir(root)
        os.execvpe(sys.executable, [sys.executable, "-m", "reconciler", *args], env)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    _pid, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # colours and cursor moves, to read the text


def terminal_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    return env | {"TERM": "xterm-256color", "COLUMNS": "120", **extra}


def test_on_a_terminal_training_shows_a_live_table_that_stays_as_the_summary(
    tmp_path: Path,
) -> None:
    root = project(tmp_path, {"one": "{sleep: 1}", "two": "{sleep: 0.5}"}, parallelism=2)
    code, screen = in_terminal(root, "apply", "--auto-approve", env=terminal_env())
    record("progress: live table", screen)
    assert code == 0, screen
    assert "\x1b[?25l" in screen  # rich hides the cursor while it redraws the table
    screen = ANSI.sub("", screen)
    assert re.search(r"job\s+state\s+elapsed\s+detail", screen)
    assert re.search(r"✓\s+model \w{12}\s+done\s+\d+\.\ds\s+Score 0\.9", screen)
    assert re.search(r"✓\s+one\s+done\s+\d+\.\ds\s+create done, serving \w{12}", screen)
    assert re.search(r"model \w{12}\s+\S*running", screen)  # a frame while it ran
    assert "training model" not in screen  # the table replaces the plain lines
    assert "Apply complete" in screen


def test_with_ci_true_a_terminal_gets_the_plain_lines(tmp_path: Path) -> None:
    root = project(tmp_path, {"one": "{sleep: 0}"})
    code, screen = in_terminal(root, "apply", "--auto-approve", env=terminal_env(CI="true"))
    record("progress: CI=true on a terminal", screen)
    assert code == 0, screen
    assert re.search(r"training model \w{12} for one \(1/1\)", screen)
    assert re.search(r"trained model \w{12} in \d+\.\ds: Score 0\.9", screen)
    assert "\x1b[?25l" not in screen and "elapsed" not in screen


def test_a_long_job_says_it_is_alive_in_a_plain_log(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = project(tmp_path, {"one": "{sleep: 1.5}"})
    monkeypatch.setattr(apply, "HEARTBEAT_SECONDS", 0.4)  # 30 s in real runs
    code = cli.main(
        ["apply", "--auto-approve", "-f", str(root / "retrain.yaml")],
        dict(os.environ),
        interactive=False,
    )
    result = Run(code, *capsys.readouterr())
    assert result.code == 0, result.err
    beats = re.findall(r"training model \w{12}: still running, \d+s", result.err)
    assert len(beats) >= 2, result.err


def test_the_live_table_names_each_state_with_its_elapsed_time() -> None:
    """The display fed events by hand, on a forced terminal: every state as a user
    sees it, backend lines about a job shown in its row (polling), and secrets masked."""
    clock = iter(float(t) for t in range(100))
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    shown: list[str] = []
    display = live.Display(
        plain=shown.append,
        scrub=lambda text: text.replace("hunter2", "(sensitive)"),
        console=console,
        clock=lambda: next(clock),
    )
    m = progress.model_subject
    display(progress.Event(progress.Kind.QUEUED, m("aaaaaaaaaaaa")))
    display(progress.Event(progress.Kind.QUEUED, m("bbbbbbbbbbbb")))
    display(progress.Event(progress.Kind.RUNNING, m("aaaaaaaaaaaa"), "training a"))
    display("training aaaaaaaaaaaa: job hunter2 Running")
    display("some other line")
    display(progress.Event(progress.Kind.GATING, "solo", detail="gate pass: Score 0.9"))
    table = Console(file=io.StringIO(), width=120, record=True)
    table.print(display.table())
    text = table.export_text()
    display.close()
    assert re.search(r"model aaaaaaaaaaaa\s+polling\s+\d+\.\ds\s+training aaaaaaaaaaaa: job", text)
    assert "(sensitive)" in text and "hunter2" not in text
    assert re.search(r"·\s+model bbbbbbbbbbbb\s+queued\s+\n", text)
    assert re.search(r"solo\s+gating\s+\d+\.\ds\s+gate pass: Score 0\.9", text)
    assert "some other line" in screen.getvalue()  # printed above the table
    assert shown == []  # nothing went to the plain writer while the table was up
    assert display.interrupted()[0].startswith("stopped: model aaaaaaaaaaaa (running for ")
