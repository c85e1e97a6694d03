"""Training experiments for the fake BES: real (small) fits on real input bytes.

``mean_trainer`` mirrors tests/providers/trainers/tiny.py (the local contract
trainer) so the provider contract suite sees the same metrics from either
backend: it fits the mean of column ``y`` of input ``data``.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any


def mean_trainer(inputs: dict[str, bytes], parameters: dict[str, Any]) -> dict[str, bytes]:
    if parameters.get("fail"):
        raise RuntimeError(f"cannot train: {parameters['fail']}")
    if parameters.get("echo_env"):
        raise RuntimeError(f"token was {parameters.get('echo_value', '')}")
    rows = list(csv.DictReader(io.StringIO(inputs["data"].decode("utf-8"))))
    values = [float(row["y"]) for row in rows]
    mean = sum(values) / len(values)
    mae = sum(abs(v - mean) for v in values) / len(values)
    shift = float(parameters.get("shift", 0.0))
    model = json.dumps({"mean": mean + shift}).encode()
    score = 1.0 / (1.0 + mae + abs(shift))
    return {"output1": model, "output2": f"Mean Absolute Error,Score\n{mae},{score}\n".encode()}


def bike_trainer(inputs: dict[str, bytes], parameters: dict[str, Any]) -> dict[str, bytes]:
    """The example's real scikit-learn pipeline, run as a Studio training experiment:
    input ``rentals`` (CSV), outputs ``output1`` (model) and ``output2`` (Evaluate Model)."""
    import importlib.util
    import tempfile
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "bike_rental" / "train.py"
    spec = importlib.util.spec_from_file_location("bike_train", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "rentals.csv").write_bytes(inputs["rentals"])
        module.train(
            inputs={"rentals": work / "rentals.csv"},
            parameters=parameters,
            model_path=work / "model.ilearner",
            evaluation_path=work / "eval.csv",
        )
        return {
            "output1": (work / "model.ilearner").read_bytes(),
            "output2": (work / "eval.csv").read_bytes(),
        }
