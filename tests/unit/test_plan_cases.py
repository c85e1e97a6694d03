"""The planner, driven by data: each ``tests/cases/plan/*.yaml`` is one scenario.

A case holds ``desired`` endpoints, ``observed`` services and stored models,
and the ``expected`` change per endpoint (action, fingerprint to train, and a
substring of the reason). A case planned after training lists the models just
trained as ``fresh`` (they are among the stored models). Fingerprints are short
names here; the store's URI scheme is the local one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler import model, plan
from reconciler.providers import webservice
from reconciler.providers.local import store

CASES = sorted((Path(__file__).parents[1] / "cases" / "plan").glob("*.yaml"))
TRAINER = model.Trainer("t")


def endpoint(spec: dict[str, Any]) -> model.Endpoint:
    gate = spec.get("gate")
    return model.Endpoint(
        name=spec["endpoint"],
        web_service=spec.get("web_service", f"ws-{spec['endpoint']}"),
        asset=spec.get("asset", "M [trained model]"),
        version=str(spec.get("version", "1")),
        trainer=TRAINER,
        inputs=model.frozen_map({"data": "data.csv"}),
        parameters=model.frozen_map(spec.get("parameters", {})),
        gate=None
        if gate is None
        else model.Gate(
            gate["metric"],
            gate.get("minimum"),
            gate.get("max_regression"),
            gate.get("higher_is_better", True),
        ),
        definition=spec.get("definition"),
        source=model.Source("case.yaml"),
    )


def service(name: str, spec: dict[str, Any] | None) -> model.ServiceState | None:
    if spec is None:
        return None
    tags = {}
    if spec.get("managed", True):
        tags[model.TAG_MANAGED_BY] = model.MANAGED_BY
    if "fingerprint" in spec:
        tags[model.TAG_FINGERPRINT] = spec["fingerprint"]
    if "version" in spec:
        tags[model.TAG_VERSION] = str(spec["version"])
    uri = spec.get(
        "model_uri", store.uri_for(spec["fingerprint"]) if "fingerprint" in spec else None
    )
    fp = tags.get(model.TAG_FINGERPRINT)
    return model.ServiceState(
        web_service=f"ws-{name}",
        model_uri=uri,
        tags=model.frozen_map(tags),
        expected_uri=store.uri_for(fp) if fp else None,
        revision=webservice.revision(uri, tags),
        assets=tuple(spec.get("assets", ["M [trained model]"])),
    )


def record(fp: str, spec: dict[str, Any]) -> model.ModelRecord:
    return model.ModelRecord(
        fingerprint=fp,
        uri=store.uri_for(fp),
        metrics=model.frozen_map(spec.get("metrics", {})),
        trained_at="2026-01-01T00:00:00+00:00",
        lineage=model.frozen_map({"recipe": spec["recipe"]} if "recipe" in spec else {}),
    )


def build(case: dict[str, Any]) -> plan.Plan:
    desired = [
        model.Desired(endpoint(d), d["fingerprint"], model.frozen_map(d.get("recipe", {})))
        for d in case["desired"]
    ]
    observed = case.get("observed") or {}
    services = {
        t.name: service(t.name, (observed.get("services") or {}).get(t.name)) for t in desired
    }
    models = {fp: record(fp, spec or {}) for fp, spec in (observed.get("models") or {}).items()}
    fresh = case.get("fresh", [])
    return plan.make_plan(desired, model.Observed(services, models), fresh=fresh)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_plan_case(path: Path) -> None:
    case = yaml.safe_load(path.read_text())
    the_plan = build(case)
    assert len(the_plan.changes) == len(case["expected"])
    for change, want in zip(the_plan.changes, case["expected"], strict=True):
        assert change.endpoint == want["endpoint"]
        assert str(change.action) == want["action"], change.reason
        assert change.train == want.get("train"), change
        assert want["reason"] in change.reason, change.reason
        assert change.fresh is want.get("fresh", False), change
        if "diff" in want:
            assert [list(d[:2]) for d in change.diff] == want["diff"]
    assert the_plan.to_train() == tuple(case.get("training_jobs", []))
    assert the_plan.is_empty() is case.get("empty", False)


def test_models_needed_skips_endpoints_in_sync() -> None:
    case = yaml.safe_load(
        (Path(__file__).parents[1] / "cases" / "plan" / "steady_state_is_noop.yaml").read_text()
    )
    desired = [model.Desired(endpoint(d), d["fingerprint"]) for d in case["desired"]]
    services = {t.name: service(t.name, case["observed"]["services"][t.name]) for t in desired}
    assert plan.models_needed(desired, services) == frozenset()
    services["a"] = None
    assert plan.models_needed(desired, services) == frozenset({"fp-a"})


def test_plan_cases_exist() -> None:
    assert len(CASES) >= 10
