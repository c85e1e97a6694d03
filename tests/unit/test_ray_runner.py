"""The Ray runner's parts that need no cluster: the one-shot channel, its settings, and
that nothing imports ``ray`` until a job runs. (Against a real head: tests/e2e/test_ray.py
and the provider contract suite's ``ray`` harness.)"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import errors, manifest, providers
from reconciler.providers.local import ray_channel, ray_runner
from tests.conftest import ROOT


def fetch(url: str, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture
def channel() -> Iterator[ray_channel.Channel]:
    made = ray_channel.Channel("127.0.0.1")
    yield made
    made.close()


def test_a_ticket_gives_its_job_once_then_its_inputs_until_ready(
    channel: ray_channel.Channel, tmp_path: Path
) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("y\n1\n")
    ticket = channel.offer({"env": {"TOKEN": "value-1234"}}, {"data": str(data)})
    base = channel.url()
    assert fetch(f"{base}/input/{ticket}/data")[0] == 409  # not before the job is taken
    status, body = fetch(f"{base}/job/{ticket}")
    assert (status, json.loads(body)) == (200, {"env": {"TOKEN": "value-1234"}})
    assert fetch(f"{base}/job/{ticket}")[0] == 410  # a second taker gets nothing
    assert fetch(f"{base}/input/{ticket}/data") == (200, b"y\n1\n")
    assert fetch(f"{base}/input/{ticket}/other")[0] == 404  # only the job's own inputs
    assert not channel.ready(ticket)
    assert fetch(f"{base}/ready/{ticket}", "POST")[0] == 200
    assert channel.ready(ticket)
    assert fetch(f"{base}/input/{ticket}/data")[0] == 409  # void once ready


def test_an_unknown_or_withdrawn_ticket_gets_nothing(channel: ray_channel.Channel) -> None:
    ticket = channel.offer({"secret": "x"}, {})
    channel.withdraw(ticket)
    assert fetch(f"{channel.url()}/job/{ticket}")[0] == 404
    assert fetch(f"{channel.url()}/job/guess")[0] == 404


def test_submission_ids_follow_fingerprint_attempt_and_store() -> None:
    fp = "a" * 64
    first = ray_runner.submission_id(fp, 1, "/state/models")
    assert first == ray_runner.submission_id(fp, 1, "/state/models")  # a re-run finds it
    assert first.endswith(f"-{fp}-1") and first.startswith("retrain-")
    assert first != ray_runner.submission_id(fp, 2, "/state/models")
    assert first != ray_runner.submission_id(fp, 1, "/elsewhere/models")


@pytest.mark.parametrize(
    ("given", "expected"), [(512, 512), ("2Gi", 2 * 2**30), ("300Mi", 300 * 2**20), ("7", 7)]
)
def test_memory_is_bytes_or_a_binary_unit(given: int | str, expected: int) -> None:
    assert ray_runner.memory_bytes(given) == expected


def test_settings_default_the_storage_into_the_state_directory(tmp_path: Path) -> None:
    found = ray_runner.settings(
        {"kind": "ray", "address": "http://127.0.0.1:8265/"},
        manifest_dir=tmp_path,
        state_dir=tmp_path / ".retrain",
    )
    assert found.address == "http://127.0.0.1:8265"
    assert found.storage == (tmp_path / ".retrain" / ray_runner.OUTPUTS).resolve()
    assert found.callback_host == "127.0.0.1"


MANIFEST = """\
apiVersion: retrain/v1
backend:
  kind: local
  local:
    runner: {runner}
trainers:
  t:
    entrypoint: train.py:train
    resources: {resources}
endpoints:
  - name: a
    webService: ws-a
    trainer: t
    asset: A
    version: "1"
    inputs: {{data: data.csv}}
"""


def load(tmp_path: Path, runner: str, resources: str = "{cpus: 2}") -> list[str]:
    (tmp_path / "train.py").write_text("def train(**kw):\n    pass\n")
    (tmp_path / "data.csv").write_text("y\n1\n")
    path = tmp_path / "retrain.yaml"
    path.write_text(MANIFEST.format(runner=runner, resources=resources))
    try:
        manifest.load(path, env={}, backends=list(providers.registry().values()))
    except errors.ManifestError as e:
        return [str(p) for p in e.problems]
    return []


def test_a_ray_runner_with_an_address_and_resources_is_a_valid_manifest(tmp_path: Path) -> None:
    runner = "{kind: ray, address: 'http://10.0.0.5:8265', storage: /mnt/shared}"
    assert load(tmp_path, runner, "{cpus: 2, gpus: 1, memory: 4Gi}") == []


@pytest.mark.parametrize(
    ("runner", "resources"),
    [
        ("{kind: ray}", "{cpus: 1}"),  # no address
        ("{kind: ray, address: '10.0.0.5:8265'}", "{cpus: 1}"),  # not a URL
        ("{kind: dask, address: 'http://h:1'}", "{cpus: 1}"),  # no such runner
        ("{kind: subprocess}", "{cpus: 0}"),  # no CPUs
        ("{kind: subprocess}", "{memory: 4GB}"),  # not a binary unit
    ],
)
def test_a_bad_runner_or_resources_is_a_located_problem(
    tmp_path: Path, runner: str, resources: str
) -> None:
    found = load(tmp_path, runner, resources)
    assert found, "the manifest was accepted"
    assert all("retrain.yaml:" in p for p in found)


def test_neither_help_nor_the_subprocess_path_imports_ray() -> None:
    """Ray takes seconds to import and is an optional extra: only a Ray job loads it."""
    code = (
        "import sys\n"
        "from reconciler import cli\n"
        "from reconciler.providers.local import backend, provider, ray_runner\n"
        "cli.main(['--help'], {}, interactive=False)\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
