"""The trainer's process on a Ray node: read instructions on stdin, call the function.

The working directory is the trainer's folder (Ray's ``working_dir``), so the entrypoint
is a path relative to it, and its folder is put first on ``sys.path`` so the trainer can
import its sibling helpers, as under the local runner.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any


def load_function(entrypoint: str) -> Any:
    file_part, _, name = entrypoint.rpartition(":")
    path = Path(file_part).resolve()
    spec = importlib.util.spec_from_file_location(f"retrain_trainer_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {file_part}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    spec.loader.exec_module(module)
    return getattr(module, name)


def main() -> None:
    job = json.loads(sys.stdin.buffer.read())
    function = load_function(job["entrypoint"])
    function(
        inputs={k: Path(v) for k, v in job["inputs"].items()},
        parameters=dict(job["parameters"]),
        model_path=Path(job["model_path"]),
        evaluation_path=Path(job["evaluation_path"]),
    )


if __name__ == "__main__":
    main()
