"""Hostile state files are refused in one line, never followed, never read without limit.

Each case replaces one file of an applied state directory with something a careless or
malicious hand could leave there (a symlink to ``/dev/zero``, a FIFO, a link out of the
state directory), runs one command through the CLI, and checks: exit 1, one ``Error:``
line naming the file and why, no "unexpected" line, and nothing written anywhere.
Before ``safefs`` these read ``/dev/zero`` until memory ran out, hung on the FIFO, and
appended history through the link into a file outside the state directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.fuzz import harness

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]  # a FIFO must not hang the suite
STATE = Path(".retrain")
SERVICE = STATE / "webservices" / "bike-demand-boston.json"


def a_model(project: Path) -> Path:
    return next(p for p in sorted((project / STATE / "models").iterdir()) if p.is_dir())


def to_dev_zero(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to("/dev/zero")


def link_out(project: Path, folder: str) -> None:
    """Move a state folder elsewhere and leave a symlink to it in its place."""
    (project / "elsewhere").mkdir()
    (project / STATE / folder).rename(project / "elsewhere" / folder)
    (project / STATE / folder).symlink_to(project / "elsewhere" / folder)


def to_fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


CASES: dict[str, tuple[Callable[[Path], object], tuple[str, ...], str]] = {
    "a web service definition linked to /dev/zero": (
        lambda p: to_dev_zero(p / SERVICE),
        ("plan",),
        r"cannot read web service definition: it is a symbolic link .*bike-demand-boston\.json",
    ),
    "a web service definition that is a FIFO": (
        lambda p: to_fifo(p / SERVICE),
        ("status",),
        r"cannot read web service definition: it is a FIFO",
    ),
    "a lock linked to /dev/zero": (
        lambda p: to_dev_zero(p / STATE / "lock"),
        ("apply", "--auto-approve"),
        r"cannot read lock: it is a symbolic link .*\.retrain/lock\)",
    ),
    "a history linked to /dev/zero": (
        lambda p: to_dev_zero(p / STATE / "history.jsonl"),
        ("history",),
        r"cannot read history: it is a symbolic link .*history\.jsonl\)",
    ),
    "a model's metadata linked to /dev/zero": (
        lambda p: to_dev_zero(a_model(p) / "metadata.json"),
        ("status",),
        r"cannot read model metadata: it is a symbolic link .*metadata\.json\)",
    ),
    "a model's metadata larger than its limit": (
        lambda p: (a_model(p) / "metadata.json").write_bytes(b" " * (1 << 20) + b"{}"),
        ("status",),
        r"cannot read model metadata: it is larger than its limit of 1,048,576 bytes",
    ),
    "a webservices folder linked out of the state directory": (
        lambda p: link_out(p, "webservices"),
        ("plan",),
        r"refusing web service definition: its folder is a symbolic link that leads out",
    ),
    "a models folder linked out of the state directory": (
        lambda p: link_out(p, "models"),
        ("status",),
        r"refusing model store: its folder is a symbolic link that leads out",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_hostile_state_file_is_refused_in_one_line_and_nothing_changes(
    case: str, retrain: Callable[..., Run], applied: Path
) -> None:
    breaks, args, expected = CASES[case]
    breaks(applied)
    before = harness.snapshot(applied / STATE)
    result = retrain(*args)
    assert result.code == 1, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: "), lines
    assert "unexpected" not in result.err
    assert harness.re_search(expected, lines[0]), lines[0]
    assert harness.snapshot(applied / STATE) == before


def repoint_boston_to_seattle_model(project: Path) -> None:
    """Drift by hand: the boston service now serves seattle's model (a change to apply that
    needs no training, so apply gets as far as recording history)."""
    seattle = json.loads((project / STATE / "webservices" / "bike-demand-seattle.json").read_text())
    boston_path = project / SERVICE
    boston = json.loads(boston_path.read_text())
    for asset_id, asset in boston["properties"]["assets"].items():
        if "locationInfo" in asset:
            uri = seattle["properties"]["assets"][asset_id]["locationInfo"]["uri"]
            asset["locationInfo"]["uri"] = uri
    boston_path.write_text(json.dumps(boston, indent=2))


def test_history_linked_outside_the_state_directory_is_never_written_through(
    retrain: Callable[..., Run], applied: Path
) -> None:
    outside = applied / "outside.txt"
    outside.write_bytes(b"not retrain's file\n")
    history = applied / STATE / "history.jsonl"
    history.unlink()
    history.symlink_to(outside)
    repoint_boston_to_seattle_model(applied)
    before = harness.snapshot(applied / STATE)

    result = retrain("apply", "--auto-approve")

    assert result.code == 1, result
    assert result.err.strip().splitlines() == [
        "Error: cannot write history: it is a symbolic link (state files are never followed "
        f"through links) ({history})"
    ]
    assert outside.read_bytes() == b"not retrain's file\n"
    assert harness.snapshot(applied / STATE) == before  # nothing half-applied


def test_history_is_still_appended_as_a_regular_file(
    retrain: Callable[..., Run], applied: Path
) -> None:
    history = applied / STATE / "history.jsonl"
    history.write_bytes(history.read_bytes().rstrip(b"\n"))  # a line torn by a crash
    lines = len(history.read_bytes().splitlines())
    repoint_boston_to_seattle_model(applied)

    result = retrain("apply", "--auto-approve")

    assert result.code == 0, result
    after = history.read_bytes()
    assert after.endswith(b"\n")
    assert len(after.splitlines()) == lines + 1
    assert json.loads(after.splitlines()[-1])["endpoint"] == "bike-boston"
