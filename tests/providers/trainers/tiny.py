"""A tiny, fast, real trainer for contract tests: fits a mean and reports its error.

Parameter ``fail`` makes it raise (to test failure reporting); ``echo_env``
makes it fail with the value of an environment variable (to test redaction);
``salt`` (a secret parameter in tests) shifts the model by its length; ``sleep``
prints ``training started`` and then takes that many seconds (for crash and timeout
tests that must catch a job while it runs).
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def train(
    *,
    inputs: Mapping[str, Path],
    parameters: Mapping[str, Any],
    model_path: Path,
    evaluation_path: Path,
) -> None:
    if parameters.get("sleep"):
        print("training started", flush=True)
        time.sleep(float(parameters["sleep"]))
    if parameters.get("fail"):
        raise RuntimeError(f"cannot train: {parameters['fail']}")
    if parameters.get("echo_env"):
        raise RuntimeError(f"token was {os.environ.get(str(parameters['echo_env']))}")
    with open(inputs["data"], newline="") as f:
        values = [float(row["y"]) for row in csv.DictReader(f)]
    mean = sum(values) / len(values)
    mae = sum(abs(v - mean) for v in values) / len(values)
    shift = float(parameters.get("shift", 0.0)) + len(str(parameters.get("salt", ""))) / 1000
    model_path.write_text(json.dumps({"mean": mean + shift}))
    evaluation_path.write_text(
        f"Mean Absolute Error,Score\n{mae},{1.0 / (1.0 + mae + abs(shift))}\n"
    )
