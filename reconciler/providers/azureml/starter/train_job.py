"""A starter command-job trainer (written by ``retrain init --backend azureml``): fits
y = a*x + b by least squares on a CSV with columns x and y.

The job is run as ``python train_job.py --data IN --model OUT --evaluation OUT``: it must
write the trained model into the ``model`` output folder and the evaluation (one header
row of metric names, one row of values; the gate reads it) into the ``evaluation`` folder.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

HOLDOUT = 10  # rows kept back to evaluate the model


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--data", "--model", "--evaluation"):
        parser.add_argument(name, type=Path, required=True)
    args = parser.parse_args()
    source = args.data / "example.csv" if args.data.is_dir() else args.data
    with open(source, newline="", encoding="utf-8") as f:
        rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]
    fit, test = rows[:-HOLDOUT], rows[-HOLDOUT:]
    n = len(fit)
    mx, my = sum(x for x, _ in fit) / n, sum(y for _, y in fit) / n
    a = sum((x - mx) * (y - my) for x, y in fit) / (sum((x - mx) ** 2 for x, _ in fit) or 1.0)
    b = my - a * mx
    errors = [y - (a * x + b) for x, y in test]
    mean = sum(y for _, y in test) / len(test)
    r2 = 1 - sum(e * e for e in errors) / (sum((y - mean) ** 2 for _, y in test) or 1.0)
    args.model.mkdir(parents=True, exist_ok=True)
    args.evaluation.mkdir(parents=True, exist_ok=True)
    (args.model / "model.json").write_text(json.dumps({"a": a, "b": b}), encoding="utf-8")
    (args.evaluation / "evaluation.csv").write_text(
        f"Coefficient of Determination,Mean Absolute Error\n{r2},"
        f"{sum(abs(e) for e in errors) / len(errors)}\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
