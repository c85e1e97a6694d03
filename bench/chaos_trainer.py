"""The chaos campaign's test trainer: a little real time, a tiny real fit, and a receipt.

``bench.chaos`` copies this file into its generated project as the fleet's trainer. It
takes ``parameters["seconds"]`` of wall time (mostly sleep, so two jobs on two cores leave
the harness room to watch), fits a least-squares line to its ``data`` input, writes the
model and an Evaluate Model CSV, and only then appends one line, ``<identity> <pid>``, to
the counts file ``parameters["counts"]`` (outside the state directory, ``O_APPEND``, one
``write``, so concurrent trainers never interleave). The identity is a sha256 over the
input bytes and the parameters: with the trainer's code fixed it maps 1:1 to retrain's
fingerprint, so the counts file tells how many *completed* trainer runs each model had.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

TICK = 0.05  # seconds per sleep step: a killed trainer dies within one tick of its signal


def identity(inputs: dict[str, Path], parameters: dict[str, Any]) -> str:
    """A digest of everything the model depends on (its inputs' bytes, its parameters)."""
    digest = hashlib.sha256()
    for name in sorted(inputs):
        digest.update(name.encode() + b"\0" + inputs[name].read_bytes() + b"\0")
    digest.update(json.dumps(parameters, sort_keys=True).encode())
    return digest.hexdigest()


def fit(rows: list[tuple[float, float]]) -> tuple[float, float, float]:
    """Least squares ``y = a*x + b`` and its R²."""
    n = len(rows)
    mx = sum(x for x, _ in rows) / n
    my = sum(y for _, y in rows) / n
    sxx = sum((x - mx) ** 2 for x, _ in rows) or 1.0
    a = sum((x - mx) * (y - my) for x, y in rows) / sxx
    b = my - a * mx
    total = sum((y - my) ** 2 for _, y in rows) or 1.0
    residual = sum((y - a * x - b) ** 2 for x, y in rows)
    return a, b, 1.0 - residual / total


def read_rows(path: Path) -> list[tuple[float, float]]:
    lines = path.read_text(encoding="utf-8").splitlines()[1:]  # skip the "x,y" header
    return [(float(x), float(y)) for x, y in (line.split(",") for line in lines if line)]


def train(
    *, inputs: dict[str, Path], parameters: dict[str, Any], model_path: Path, evaluation_path: Path
) -> None:
    deadline = time.monotonic() + float(parameters["seconds"])
    while time.monotonic() < deadline:
        time.sleep(TICK)
    a, b, r2 = fit(read_rows(inputs["data"]))
    model_path.write_text(json.dumps({"a": a, "b": b}), encoding="utf-8")
    evaluation_path.write_text(f"metric,value\nR2,{r2:.6f}\n", encoding="utf-8")
    line = f"{identity(inputs, parameters)} {os.getpid()}\n".encode()
    fd = os.open(parameters["counts"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
