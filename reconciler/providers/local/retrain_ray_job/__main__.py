"""A Ray job's entrypoint: ``python -m retrain_ray_job CHANNEL_URL TICKET``.

1. Take the job from retrain's one-shot channel (``ray_channel``): the trainer's function,
   parameters (secret ones included), environment secrets, input names and where to leave
   the outputs; download each input into a private temporary folder; say ready (the
   ticket is then void). Nothing of this is written down except the inputs' content.
2. Run the trainer in a child process (``retrain_ray_job.train``) with its secrets in its
   environment, the instructions on its stdin, and its output passed on line by line with
   every secret value (environment secrets, secret parameters) masked, so Ray's job log
   (a file on the cluster) never holds one.
3. Write the outputs into ``STORAGE/.partial-ID/`` and, only when the trainer succeeded and
   both outputs exist, rename that folder to ``STORAGE/ID/`` (atomic): a job stopped or
   killed halfway leaves a partial folder, which retrain never publishes.

Ray's ``stop_job`` sends SIGTERM: the trainer is killed with this process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import CHANNEL_GONE, OUTPUT_INVALID

FETCH_TIMEOUT = 120  # seconds for one request to retrain's channel (an input may be large)
MODEL_FILE = "model.ilearner"  # the names the content-addressed store uses
EVALUATION_FILE = "evaluation.csv"
PARTIAL = ".partial-"
MASK = "(sensitive)"  # as retrain's own redaction shows a secret
MIN_SECRET_LEN = 4  # as retrain's redaction: shorter values would mask ordinary words


def main(argv: list[str]) -> int:
    url, ticket = argv[1], argv[2]
    with tempfile.TemporaryDirectory(prefix="retrain-job-") as tmp:
        try:
            job = json.loads(_request(f"{url}/job/{ticket}"))
            inputs = _download(url, ticket, job["inputs"], Path(tmp))
            _request(f"{url}/ready/{ticket}", method="POST")
        except (OSError, ValueError) as e:  # urllib's errors are OSErrors
            print(f"retrain-ray-job: cannot take the job from retrain at {url}: {e}")
            return CHANNEL_GONE
        return _run(job, inputs)


def _request(url: str, method: str = "GET") -> bytes:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:
        body: bytes = response.read()
    return body


def _download(url: str, ticket: str, inputs: Mapping[str, str], into: Path) -> dict[str, str]:
    """Each input as a file named as on retrain's side (trainers may look at suffixes)."""
    found = {}
    for index, (name, filename) in enumerate(sorted(inputs.items())):
        target = into / str(index) / Path(filename).name
        target.parent.mkdir()
        quoted = urllib.parse.quote(name, safe="")
        with (
            urllib.request.urlopen(f"{url}/input/{ticket}/{quoted}", timeout=FETCH_TIMEOUT) as r,
            target.open("wb") as f,
        ):
            shutil.copyfileobj(r, f)
        found[name] = str(target)
    return found


def _run(job: Mapping[str, Any], inputs: Mapping[str, str]) -> int:
    storage = Path(job["output"])
    partial = storage / f"{PARTIAL}{job['submission_id']}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    instructions = {
        "entrypoint": job["entrypoint"],
        "inputs": inputs,
        "parameters": job["parameters"],
        "model_path": str(partial / MODEL_FILE),
        "evaluation_path": str(partial / EVALUATION_FILE),
    }
    code = _train(instructions, job["env"], job.get("mask", []))
    if code != 0:
        return code
    problem = _missing(partial)
    if problem:
        print(f"trainer {job['trainer']!r} {problem}")
        return OUTPUT_INVALID
    for name in (MODEL_FILE, EVALUATION_FILE):
        _fsync(partial / name)
    os.rename(partial, storage / str(job["submission_id"]))
    _fsync(storage)
    return 0


def _train(instructions: Mapping[str, Any], secrets: Mapping[str, str], mask: list[str]) -> int:
    """The trainer in a child process; its output masked and passed on. Returns its status."""
    child = subprocess.Popen(
        [sys.executable, "-m", "retrain_ray_job.train"],
        env={**os.environ, **secrets},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )

    def stop(signum: int, _frame: object) -> None:
        child.kill()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(json.dumps(dict(instructions)).encode())
    child.stdin.close()
    masked = _masker([*secrets.values(), *mask])
    for line in child.stdout:
        sys.stdout.write(masked(line.decode("utf-8", errors="replace")))
        sys.stdout.flush()
    return child.wait()


def _masker(values: Iterable[str]) -> Any:
    ordered = sorted({v for v in values if len(v) >= MIN_SECRET_LEN}, key=len, reverse=True)

    def mask(text: str) -> str:
        for value in ordered:
            text = text.replace(value, MASK)
        return text

    return mask


def _missing(folder: Path) -> str | None:
    model = folder / MODEL_FILE
    if not model.is_file() or model.stat().st_size == 0:
        return "wrote no model"
    if not (folder / EVALUATION_FILE).is_file():
        return "wrote no evaluation output"
    return None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
