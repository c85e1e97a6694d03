"""Secret parameters: they reach the trainer, change the model's identity, and show in
plans by name only; their values appear in no output and no file retrain writes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from reconciler import cli

HERE = Path(__file__).resolve().parent
FIRST = "s3cret-salt-AAAA"
SECOND = "s3cret-salt-BBBBBBBB"

MANIFEST = """\
apiVersion: retrain/v1
backend: {kind: local}
trainers:
  tiny:
    entrypoint: tiny.py:train
    secretParameters: {salt: "${env:TINY_SALT}"}
endpoints:
  - name: solo
    webService: ws-solo
    asset: Bike Demand [trained model]
    version: "1"
    trainer: tiny
    inputs: {data: data.csv}
    definition: webservice.json
"""


def test_a_secret_parameter_change_retrains_and_shows_by_name_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(HERE.parent / "providers" / "trainers" / "tiny.py", tmp_path / "tiny.py")
    shutil.copy(
        HERE.parents[1] / "examples" / "bike_rental" / "webservice.json",
        tmp_path / "webservice.json",
    )
    (tmp_path / "data.csv").write_text("y\n1\n2\n3\n")
    (tmp_path / "retrain.yaml").write_text(MANIFEST)
    outputs: list[str] = []

    def run(*args: str, salt: str) -> int:
        env = dict(os.environ) | {"TINY_SALT": salt}
        code = cli.main([*args, "-f", str(tmp_path / "retrain.yaml")], env, interactive=False)
        captured = capsys.readouterr()
        outputs.extend([captured.out, captured.err])
        return code

    assert run("apply", "--auto-approve", salt=FIRST) == 0
    assert run("plan", "--detailed-exitcode", salt=FIRST) == 0
    assert run("plan", "-out", str(tmp_path / "p.json"), salt=SECOND) == 0
    assert "parameters changed: salt (secret): train model" in outputs[-2]
    for fmt in ("json", "markdown"):
        assert run("plan", "--format", fmt, salt=SECOND) == 0
    assert run("apply", "--auto-approve", salt=SECOND) == 0
    assert run("history", salt=SECOND) == 0
    scores = [line for line in outputs[-2].splitlines() if "Score" in line]
    assert len({line.split("[")[1] for line in scores}) == 2  # the trainer saw the secret
    written = [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    for secret in (FIRST, SECOND):
        assert not any(secret in text for text in outputs), secret
        assert not any(secret in text for text in written)
