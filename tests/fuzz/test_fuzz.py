"""Property-based fuzzing of manifests, saved plans and state files (a bounded run).

Each input either validates and behaves, or fails with exit 1, at most three lines on
stderr, no traceback, and the state directory byte-identical afterwards. CI runs a few
hundred derandomized examples here; ``make fuzz`` (``bench/fuzz.py``) runs 10,000+.
A failing example is shrunk by hypothesis and printed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reconciler import planfile
from tests.fuzz import campaign, families, harness

pytestmark = pytest.mark.slow
MAX_DEPTH = (
    200  # nesting generated here, past the manifest's limit of 64; the test below goes deeper
)
BOUNDED = settings(
    max_examples=int(os.environ.get("RETRAIN_FUZZ_EXAMPLES", "80")),  # ~10 s per family
    deadline=None,  # the harness has its own per-command deadline
    database=None,
    derandomize=True,  # CI sees the same inputs every run
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def camp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[campaign.Campaign]:
    yield campaign.Campaign(tmp_path_factory.mktemp("fuzz"), dict(os.environ))


def held(verdict: harness.Verdict) -> None:
    details = [f"{' '.join(r.args)} -> {r.code}: {r.err.strip()[-500:]}" for r in verdict.results]
    assert not verdict.problems, "\n".join(verdict.problems + details)


@BOUNDED
@given(given_=families.manifests(max_depth=MAX_DEPTH))
@example(given_=families.ManifestInput(b"\xff\xfe\x00"))
@example(given_=families.ManifestInput(b"apiVersion: retrain/v1\nx: !!binary aGVsbG8=\n"))
def test_any_manifest_validates_or_is_refused_cleanly_and_nothing_changes(
    camp: campaign.Campaign, given_: families.ManifestInput
) -> None:
    held(camp.manifest(given_))


def test_each_manifest_problem_is_reported_once(camp: campaign.Campaign) -> None:
    text = harness.MANIFEST[: harness.MANIFEST.index("  - name: ep-c")] + "  - - name: ep-c\n"
    held(camp.manifest(families.ManifestInput(text.encode())))


def test_a_deeply_nested_manifest_is_refused_in_one_line(camp: campaign.Campaign) -> None:
    deep = b"apiVersion: retrain/v1\nx: " + b"[" * 2000 + b"]" * 2000 + b"\n"
    held(camp.manifest(families.ManifestInput(deep)))


def plans_with_checksum_as_is() -> st.SearchStrategy[families.PlanInput]:
    return st.deferred(lambda: families.plans(_base_plan(), rechecksum=False))


_BASE: list[str] = []


def _base_plan() -> str:
    """The pending project's saved plan (hypothesis builds strategies before fixtures)."""
    if not _BASE:
        raise RuntimeError("the campaign fixture has not run")
    return _BASE[0]


@pytest.fixture(scope="module", autouse=True)
def _remember_plan(camp: campaign.Campaign) -> None:
    _BASE[:] = [camp.saved_plan]


def forged_plans() -> st.SearchStrategy[families.PlanInput]:
    return st.deferred(lambda: families.plans(_base_plan(), rechecksum=True))


@BOUNDED
@given(given_=forged_plans())
def test_a_forged_plan_with_a_recomputed_checksum_is_refused_or_applies_exactly(
    camp: campaign.Campaign, given_: families.PlanInput
) -> None:
    held(camp.plan(given_))


@BOUNDED
@given(given_=plans_with_checksum_as_is())
def test_an_edited_plan_with_its_old_checksum_is_refused_and_nothing_changes(
    camp: campaign.Campaign, given_: families.PlanInput
) -> None:
    verdict = camp.plan(given_)
    held(verdict)


def forged(camp: campaign.Campaign, endpoint: str, field: str, value: str) -> families.PlanInput:
    doc = json.loads(camp.saved_plan)
    change = next(c for c in doc["changes"] if c["address"] == endpoint)
    change["after"][field] = value
    body = {k: v for k, v in doc.items() if k != "checksum"}
    return families.PlanInput(
        json.dumps(body | {"checksum": planfile._checksum(body)}).encode(),
        True,
        f"{endpoint}: after.{field} = {value!r}",
    )


def test_a_forged_plan_with_a_recomputed_checksum_is_refused(camp: campaign.Campaign) -> None:
    fp = json.loads(camp.saved_plan)["changes"][0]["after"]["fingerprint"]
    outside = f"local://models/{fp}/../../../outside.txt"
    held(camp.plan(forged(camp, "ep-a", "model_uri", outside)))


@BOUNDED
@given(given_=families.state_changes())
@example(given_=families.StateInput("webservices/ws-a.json", "symlink", "/dev/zero"))
@example(given_=families.StateInput("history.jsonl", "symlink", "../outside.txt"))
@example(given_=families.StateInput("lock", "fifo", None))
@example(given_=families.StateInput("models/*/metadata.json", "symlink", "/dev/zero"))
def test_any_damaged_state_file_is_refused_cleanly_or_repaired(
    camp: campaign.Campaign, given_: families.StateInput
) -> None:
    held(camp.state(given_))


def test_the_fuzz_project_is_real(camp: campaign.Campaign) -> None:
    """The templates the families start from: three trained models, a plan with changes."""
    models = [p for p in (camp.converged / ".retrain" / "models").iterdir() if p.is_dir()]
    assert len(models) == 3
    assert all((m / "model.ilearner").stat().st_size > 0 for m in models)
    summary = json.loads(camp.saved_plan)["summary"]
    assert summary["create"] == 1
    assert summary["repair-drift"] == 1
    assert Path(camp.pending / "saved.plan").is_file()
