"""Small, deterministic trainers for the fake BES.

Why: a BES job in the fake runs a Python callable as "the training experiment". Tests and the
by-hand demo need trainers that produce a real model and a real evaluation table from real
input bytes, without scikit-learn, so results are reproducible and a change of input data
changes the model (the reconciler's fingerprinting depends on that).
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any


def linear_trainer(inputs: dict[str, bytes], global_parameters: dict[str, Any]) -> dict[str, bytes]:
    """Fit ``y = a*x + b`` by least squares to CSV ``input1`` (columns x,y).

    Outputs: ``output1`` the model (JSON standing in for an ``.ilearner``), ``output2`` an
    evaluation CSV with columns ``Metric,Value`` (RMSE and R^2 on the training data), the
    shape Studio's Evaluate Model writes. ``global_parameters["scale"]`` (optional) scales y.
    """
    rows = list(csv.DictReader(io.StringIO(inputs["input1"].decode("utf-8"))))
    if len(rows) < 2:
        raise ValueError("need at least two rows of x,y data")
    scale = float(global_parameters.get("scale", 1))
    xs = [float(r["x"]) for r in rows]
    ys = [float(r["y"]) * scale for r in rows]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    a = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    b = my - a * mx
    residuals = [y - (a * x + b) for x, y in zip(xs, ys, strict=True)]
    sse = sum(r * r for r in residuals)
    sst = sum((y - my) ** 2 for y in ys)
    rmse = math.sqrt(sse / n)
    r2 = 1 - sse / sst if sst else 1.0
    model = json.dumps({"kind": "linear", "a": a, "b": b, "n": n}, sort_keys=True)
    evaluation = f"Metric,Value\nRMSE,{rmse:.6f}\nR2,{r2:.6f}\n"
    return {"output1": model.encode("utf-8"), "output2": evaluation.encode("utf-8")}


def echo_trainer(inputs: dict[str, bytes], global_parameters: dict[str, Any]) -> dict[str, bytes]:
    """Copies ``input1`` to ``output1`` and writes the parameters to ``output2`` (as JSON)."""
    return {
        "output1": inputs.get("input1", b""),
        "output2": json.dumps(global_parameters, sort_keys=True).encode("utf-8"),
    }


def aml_linear_trainer(
    *,
    inputs: dict[str, Any],
    parameters: dict[str, Any],
    model_path: Any,
    evaluation_path: Any,
) -> None:
    """The local backend's trainer contract over :func:`linear_trainer`, for the Azure ML fake.

    Reads CSV ``x,y`` from the input named ``data`` (or the only input), writes the JSON linear
    model to ``model_path`` and a Studio-shaped evaluation (one header row, one value row:
    ``Root Mean Squared Error,Coefficient of Determination``) to ``evaluation_path``. Literal
    inputs arrive as strings, as a command job's literal inputs do.
    """
    from pathlib import Path

    if not inputs:
        raise ValueError("no input data")
    source = Path(inputs.get("data") or next(iter(inputs.values())))
    if source.is_dir():
        source = sorted(p for p in source.rglob("*.csv"))[0]
    out = linear_trainer({"input1": source.read_bytes()}, dict(parameters))
    Path(model_path).write_bytes(out["output1"])
    rows = dict(line.split(",") for line in out["output2"].decode("utf-8").splitlines()[1:] if line)
    Path(evaluation_path).write_text(
        f"Root Mean Squared Error,Coefficient of Determination\n{rows['RMSE']},{rows['R2']}\n",
        encoding="utf-8",
    )
