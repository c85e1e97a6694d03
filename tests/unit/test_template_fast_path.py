"""Assembling a forEach entry's endpoints by substituting only its templated strings, and
skipping the resolving of values with no reference, give exactly what substituting and
resolving every value of every endpoint gives: the same endpoints, or the same problems."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import localplan
from reconciler import envrefs, errors, manifest, model, problems, providers, templates

ROOT = Path(__file__).resolve().parents[2]
STARTERS = sorted((ROOT / "reconciler" / "providers").glob("*/starter/retrain.yaml"))
ENV = {
    "RETRAIN_STORAGE": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0a2V5",
    "RETRAIN_BES_KEY": "a-bes-key-long-enough-to-mask",
    "TOKEN": "a-token-long-enough-to-mask",
    "SUFFIX": "east",
}
TRAINER = "def train(*, inputs, parameters, model_path, evaluation_path):\n    pass\n"
HEAD = """\
apiVersion: retrain/v1
backend: {kind: local}
trainers:
  t: {entrypoint: train.py:train}
defaults:
  trainer: t
  asset: "M [trained model]"
  version: "1"
  gate: {metric: r2, minimum: 0.1}
"""


def load(path: Path, env: dict[str, str]) -> Any:
    """The loaded manifest, or its problems."""
    try:
        return manifest.load(path, env=env, backends=list(providers.registry().values()))
    except errors.ManifestError as e:
        return e.problems


def both_ways(path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Any:
    """``load`` with the fast paths, asserting it equals substituting and resolving all."""
    fast = load(path, env)
    with monkeypatch.context() as m:
        m.setattr(templates.Substitution, "instance", _substitute_all)
        m.setattr(envrefs, "settled", lambda _value, _inert: False)
        slow = load(path, env)
    assert fast == slow
    return fast


def _substitute_all(self: templates.Substitution, item: Any) -> Any:
    return templates._substitute(self.template, item)  # the slow path itself


@pytest.mark.parametrize("starter", STARTERS, ids=lambda p: p.parent.parent.name)
def test_the_starters_load_alike(starter: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    both_ways(starter, monkeypatch, ENV)


def test_the_benchmark_fleet_loads_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = both_ways(localplan.project(tmp_path, 50), monkeypatch, ENV)
    assert isinstance(loaded, model.Manifest) and len(loaded.endpoints) == 50


ENTRIES = {
    "plain": "  - forEach: [{i: a}, {i: b}]\n    name: ep-${each.i}\n    webService: ws-${each.i}\n"
    '    inputs: {data: "${each.i}.csv"}\n',
    "an env reference in the template": "  - forEach: [{i: a}, {i: b}]\n"
    "    name: ep-${each.i}\n    webService: ws-${each.i}\n    inputs: {data: a.csv}\n"
    "    parameters: {region: '${env:SUFFIX}'}\n",
    "an env reference in an item": '  - forEach: [{i: a, w: "${env:SUFFIX}"}, {i: b, w: x}]\n'
    "    name: ep-${each.i}\n    webService: ws-${each.i}\n    inputs: {data: a.csv}\n"
    "    parameters: {region: 'r-${each.w}'}\n",
    "an unset env reference in an item": '  - forEach: [{i: a, w: "${env:NOPE}"}, {i: b, w: x}]\n'
    "    name: ep-${each.i}\n    webService: ws-${each.i}\n    inputs: {data: a.csv}\n"
    "    parameters: {region: 'r-${each.w}'}\n",
    "an unset env reference in the template": "  - forEach: [{i: a}, {i: b}]\n"
    "    name: ep-${each.i}\n    webService: ws-${each.i}\n    inputs: {data: a.csv}\n"
    "    parameters: {region: '${env:NOPE}'}\n",
    "an env reference in a service name": "  - forEach: [{i: a}, {i: b}]\n"
    "    name: ep-${each.i}\n    webService: ws-${each.i}-${env:SUFFIX}\n"
    "    inputs: {data: a.csv}\n",
    "a secret parameter": "  - forEach: [{i: a}, {i: b}]\n    name: ep-${each.i}\n"
    "    webService: ws-${each.i}\n    inputs: {data: a.csv}\n"
    "    secretParameters: {token: '${env:TOKEN}'}\n",
    "a literal secret parameter": "  - forEach: [{i: a}, {i: b}]\n    name: ep-${each.i}\n"
    "    webService: ws-${each.i}\n    inputs: {data: a.csv}\n"
    "    secretParameters: {token: literal-value-here}\n",
    "parameters and a list": "  - forEach: [{i: a, n: '1'}, {i: b, n: '2'}]\n"
    "    name: ep-${each.i}\n    webService: ws-${each.i}\n    inputs: {data: a.csv}\n"
    "    parameters: {alpha: 1, names: [x, 'y-${each.n}', {deep: '${each.n}'}]}\n",
    "an item missing a key": "  - forEach: [{i: a}, {j: b}]\n    name: ep-${each.i}\n"
    "    webService: ws-${each.i}\n    inputs: {data: a.csv}\n",
    "a missing input file": "  - forEach: [{i: a}, {i: zz}]\n    name: ep-${each.i}\n"
    "    webService: ws-${each.i}\n    inputs: {data: '${each.i}.csv'}\n",
    "a duplicate name": "  - forEach: [{i: a}, {i: a}]\n    name: ep-${each.i}\n"
    "    webService: ws-${each.i}\n    inputs: {data: a.csv}\n",
    "no forEach": "  - {name: solo, webService: ws-solo, inputs: {data: a.csv}}\n",
}


@pytest.mark.parametrize("entry", ENTRIES.values(), ids=ENTRIES.keys())
def test_generated_manifests_load_alike(
    entry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "train.py").write_text(TRAINER)
    for name in ("a", "b"):
        (tmp_path / f"{name}.csv").write_text("x\n1\n")
    path = tmp_path / "retrain.yaml"
    path.write_text(
        f"{HEAD}endpoints:\n{entry}  - {{name: other, webService: o, inputs: {{data: b.csv}}}}\n"
    )
    both_ways(path, monkeypatch, ENV)


def test_the_fast_path_is_taken_for_a_plain_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The equality above would hold trivially if the fast path were never taken."""
    taken: list[bool] = []
    real = envrefs.settled

    def spy(value: Any, inert: list[problems.Rel] | None) -> bool:
        taken.append(real(value, inert))
        return taken[-1]

    monkeypatch.setattr(envrefs, "settled", spy)
    (tmp_path / "train.py").write_text(TRAINER)
    (tmp_path / "a.csv").write_text("x\n1\n")
    (tmp_path / "b.csv").write_text("x\n1\n")
    path = tmp_path / "retrain.yaml"
    path.write_text(f"{HEAD}endpoints:\n{ENTRIES['plain']}")
    load(path, ENV)
    assert taken == [True, True]
