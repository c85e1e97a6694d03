"""Run one trainer in its own process: ``python -m reconciler.providers.local.runner JOB``.

A separate process per job keeps a trainer's imports, threads, memory and
crashes away from the reconciler, lets jobs run in parallel on separate
cores, and lets a timeout kill a stuck job. ``JOB`` is a JSON file naming the
entrypoint, the inputs, the parameters and where to write the two outputs.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any


def load_function(entrypoint: str) -> Any:
    """Import ``/path/to/file.py:function`` without touching ``sys.path`` globally."""
    file_part, _, name = entrypoint.rpartition(":")
    path = Path(file_part)
    spec = importlib.util.spec_from_file_location(f"retrain_trainer_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # so the trainer can import its sibling helpers
    spec.loader.exec_module(module)
    return getattr(module, name)


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    function = load_function(job["entrypoint"])
    function(
        inputs={k: Path(v) for k, v in job["inputs"].items()},
        parameters=dict(job["parameters"]),
        model_path=Path(job["model_path"]),
        evaluation_path=Path(job["evaluation_path"]),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
