"""Train one location's hourly bike-rental demand model: the example local-backend trainer.

The contract, which every trainer of the local backend follows
----------------------------------------------------------------
The reconciler imports this file in a fresh subprocess (one per training job, several in
parallel) and calls::

    train(inputs={"rentals": Path(...)}, parameters={...}, model_path=Path(...),
          evaluation_path=Path(...))

with keyword arguments only. It writes exactly the two outputs that an Azure ML Studio training
experiment published as a web service writes when called through BES:

* ``model_path`` -- *output1*, the trained model. Studio writes an ``.ilearner`` blob; here it is a
  scikit-learn model saved with ``skops.io.dump``, a format that loads without running arbitrary
  pickle code: ``load_model`` accepts only the types in ``TRUSTED_TYPES``.
* ``evaluation_path`` -- *output2*, the "Evaluate Model" results of a regression: a CSV with one
  header row and one value row (see ``EVALUATION_COLUMNS``), measured on a holdout. The quality gate
  reads this file exactly as it reads the Studio output.

``parameters`` are the web service's global parameters. All are optional (see ``PARAMETERS``,
which also declares them to retrain: a manifest naming another one is refused before any
training); an unknown name raises ``ValueError`` here too, because a typo must not silently train
with a default. Values may be numbers or numeric strings (BES passes global parameters as strings).

A bad input row is reported as ``file:line: what`` (the CSV's own line, header included).

Training is deterministic: the same input bytes and parameters give the same model predictions
and byte-identical evaluation files. It runs single-threaded, so parallel jobs do not fight over
cores. Each output is written to a temporary file and renamed into place, model first, so an
evaluation file on disk always means the job finished.

Run by hand::

    python examples/bike_rental/train.py examples/bike_rental/data/seattle.csv \\
        --model /tmp/seattle.skops --evaluation /tmp/seattle.csv --param n_estimators=200
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import skops.io
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

# The parameters and their defaults. A literal, so retrain reads the names without running this
# file (the local backend's ``PARAMETERS`` declaration).
PARAMETERS: Final[Mapping[str, int | float]] = {
    "n_estimators": 100,  # boosting iterations
    "max_depth": 8,  # per tree
    "learning_rate": 0.1,
    "test_fraction": 0.2,  # the latest 20% of hours are the holdout
    "seed": 0,  # random_state
}
DEFAULTS: Final = PARAMETERS

# Types beyond skops' defaults that a saved model may contain. Derived once with
# ``skops.io.get_untrusted_types(file=...)`` on a model this module trained, and written out so
# that a new type in a model file is refused rather than trusted by default.
TRUSTED_TYPES: Final[list[str]] = [
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
]

# The regression columns of Studio's "Evaluate Model", in its order.
EVALUATION_COLUMNS: Final[tuple[str, ...]] = (
    "Mean Absolute Error",
    "Root Mean Squared Error",
    "Relative Absolute Error",
    "Relative Squared Error",
    "Coefficient of Determination",
)

INPUT_COLUMNS: Final[tuple[str, ...]] = (
    "datetime", "season", "holiday", "workingday", "weather", "temp", "humidity", "windspeed",
)  # fmt: skip
TARGET: Final = "count"
FEATURES: Final[tuple[str, ...]] = ("hour", "weekday", "month", *INPUT_COLUMNS[1:])


def train(
    *,
    inputs: Mapping[str, Path],
    parameters: Mapping[str, Any],
    model_path: Path,
    evaluation_path: Path,
) -> None:
    """Fit on all but the latest hours, evaluate on those, write model and evaluation."""
    params = resolve_parameters(parameters)
    if "rentals" not in inputs:
        raise ValueError(f"missing input 'rentals' (got: {', '.join(sorted(inputs)) or 'none'})")
    path = Path(inputs["rentals"])
    try:
        rows = read_rows(path)
        check_time_order(rows)
        features, target = features_of(rows), target_of(rows)
    except RowError as error:
        raise ValueError(f"{_shown(path)}:{error.line}: {error}") from None
    except ValueError as error:
        raise ValueError(f"{_shown(path)}: {error}") from None
    n_test = holdout_size(len(rows), float(params["test_fraction"]))
    split = len(rows) - n_test
    model = HistGradientBoostingRegressor(
        loss="poisson",  # counts: non-negative, variance grows with the mean
        max_iter=int(params["n_estimators"]),
        max_depth=int(params["max_depth"]),
        learning_rate=float(params["learning_rate"]),
        early_stopping=False,  # "auto" would switch it on above 10,000 rows and move the split
        random_state=int(params["seed"]),
    )
    with threadpool_limits(limits=1):  # one core per job; parallel jobs do not oversubscribe
        model.fit(features[:split], target[:split])
        predicted = model.predict(features[split:])
    _write_atomically(model_path, lambda tmp: skops.io.dump(model, tmp))
    metrics = evaluate(target[split:], predicted)
    _write_atomically(evaluation_path, lambda tmp: tmp.write_text(evaluation_csv(metrics)))


def load_model(path: Path) -> HistGradientBoostingRegressor:
    """Load a model written by ``train``; refuses any type not in ``TRUSTED_TYPES``."""
    model = skops.io.load(path, trusted=TRUSTED_TYPES)
    if not isinstance(model, HistGradientBoostingRegressor):
        raise ValueError(f"{path}: not a bike-rental model (found {type(model).__name__})")
    return model


def predict(model: HistGradientBoostingRegressor, rows: list[dict[str, Any]]) -> list[float]:
    """Predicted rentals for rows shaped like the CSV (``count`` is ignored if present)."""
    if not rows:
        return []
    with threadpool_limits(limits=1):
        return [float(value) for value in model.predict(features_of(rows))]


_FLOATS: Final = frozenset({"learning_rate", "test_fraction"})
_RANGES: Final[Mapping[str, tuple[Callable[[float], bool], str]]] = {
    "n_estimators": (lambda v: v >= 1, "at least 1"),
    "max_depth": (lambda v: v >= 1, "at least 1"),
    "learning_rate": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "test_fraction": (lambda v: 0 < v < 1, "in (0, 1)"),
    "seed": (lambda v: 0 <= v < 2**32, "in [0, 2**32)"),  # numpy's seed range
}


def resolve_parameters(parameters: Mapping[str, Any]) -> dict[str, int | float]:
    """Defaults overlaid with ``parameters``, type-checked and range-checked."""
    unknown = sorted(set(parameters) - set(PARAMETERS))
    if unknown:
        raise ValueError(
            f"unknown parameter(s): {', '.join(unknown)} (known: {', '.join(PARAMETERS)})"
        )
    resolved = dict(PARAMETERS)
    for name, value in parameters.items():
        resolved[name] = _as_float(name, value) if name in _FLOATS else _as_int(name, value)
    for name, (ok, wanted) in _RANGES.items():
        if not ok(resolved[name]):
            raise ValueError(f"parameter {name} must be {wanted}, got {resolved[name]!r}")
    return resolved


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"parameter {name} must be an integer, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"parameter {name} must be an integer, got {value!r}") from None
    if not number.is_integer():
        raise ValueError(f"parameter {name} must be an integer, got {value!r}")
    return int(number)


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"parameter {name} must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"parameter {name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"parameter {name} must be finite, got {value!r}")
    return number


class RowError(ValueError):
    """A bad row: ``line`` is its line in the CSV file (1 is the header)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.line = index + 2  # rows count from 0, after the header line


def _shown(path: Path) -> str:
    """``path`` relative to the working folder (the manifest's) when it is inside it."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def read_rows(path: Path) -> list[dict[str, str]]:
    """The CSV's rows, in file (time) order; the columns are checked by ``features_of``."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if len(rows) < 2:
        raise ValueError("need at least 2 data rows to train and evaluate")
    return rows


def check_time_order(rows: Sequence[Mapping[str, Any]]) -> None:
    """The holdout is the latest hours, so the file must run forward in time."""
    previous: dt.datetime | None = None
    for i, row in enumerate(rows):
        try:
            when = dt.datetime.fromisoformat(str(row["datetime"]))
            if previous is not None and when < previous:
                raise RowError(i, f"{when} is earlier than the row before; sort by time")
        except KeyError:
            raise ValueError("missing column 'datetime'") from None
        except RowError:
            raise
        except (TypeError, ValueError) as error:  # not a time; naive and aware times mixed
            raise RowError(i, str(error)) from None
        previous = when


def features_of(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Feature matrix (columns in ``FEATURES`` order) from CSV-shaped rows."""
    matrix = np.empty((len(rows), len(FEATURES)), dtype=np.float64)
    for i, row in enumerate(rows):
        try:
            when = dt.datetime.fromisoformat(str(row["datetime"]))
            others = [float(row[column]) for column in INPUT_COLUMNS[1:]]
        except KeyError as error:
            raise RowError(i, f"missing column {error.args[0]!r}") from None
        except (TypeError, ValueError) as error:
            raise RowError(i, str(error)) from None
        matrix[i] = (when.hour, when.weekday(), when.month, *others)
    return matrix


def target_of(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    try:
        target = np.array([float(row[TARGET]) for row in rows])
    except KeyError:
        raise ValueError(f"missing target column {TARGET!r}") from None
    if (target < 0).any():
        raise ValueError(f"{TARGET!r} must be >= 0")
    return target


def holdout_size(n_rows: int, test_fraction: float) -> int:
    """Rows at the end kept for evaluation: at least one, never all."""
    return min(n_rows - 1, max(1, round(n_rows * test_fraction)))


def evaluate(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Studio's regression metrics; the relative ones are NaN when ``actual`` is constant."""
    error = actual - predicted
    spread = actual - actual.mean()
    abs_total, sq_total = float(np.abs(spread).sum()), float((spread**2).sum())
    rae = float(np.abs(error).sum()) / abs_total if abs_total else math.nan
    rse = float((error**2).sum()) / sq_total if sq_total else math.nan
    values = (
        float(np.abs(error).mean()),
        math.sqrt(float((error**2).mean())),
        rae,
        rse,
        1.0 - rse,
    )
    return dict(zip(EVALUATION_COLUMNS, values, strict=True))


def evaluation_csv(metrics: Mapping[str, float]) -> str:
    """One header row, one value row; floats at ``repr`` precision so they round-trip."""
    values = (repr(float(metrics[column])) for column in EVALUATION_COLUMNS)
    return f"{','.join(EVALUATION_COLUMNS)}\n{','.join(values)}\n"


def _write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train a bike-rental demand model.")
    parser.add_argument("rentals", type=Path, help="hourly rentals CSV")
    parser.add_argument("--model", type=Path, required=True, help="where to write the model")
    parser.add_argument("--evaluation", type=Path, required=True, help="evaluation CSV to write")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    parameters = dict(item.partition("=")[::2] for item in args.param)
    train(
        inputs={"rentals": args.rentals},
        parameters=parameters,
        model_path=args.model,
        evaluation_path=args.evaluation,
    )
    sys.stdout.write(args.evaluation.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
