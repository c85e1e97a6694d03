"""The Ray benchmark's trainer: a fixed amount of CPU work, then a tiny real fit.

``parameters["rounds"]`` chained sha256 hashes of 64 bytes (pure CPU, one core, no sleep:
the cost a runner must schedule, not hide), then the mean of the ``data`` input as the
model and its mean absolute error as the evaluation.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def work(rounds: int) -> str:
    digest = b"\0" * 64
    for _ in range(rounds):
        digest = hashlib.sha512(digest).digest()
    return digest.hex()[:16]


def train(
    *, inputs: dict[str, Path], parameters: dict[str, Any], model_path: Path, evaluation_path: Path
) -> None:
    receipt = work(int(parameters["rounds"]))
    lines = inputs["data"].read_text(encoding="utf-8").splitlines()[1:]
    values = [float(v) for v in lines if v]
    mean = sum(values) / len(values)
    mae = sum(abs(v - mean) for v in values) / len(values)
    model_path.write_text(json.dumps({"mean": mean, "work": receipt}), encoding="utf-8")
    evaluation_path.write_text(f"metric,value\nMAE,{mae:.6f}\n", encoding="utf-8")
