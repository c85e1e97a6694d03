"""Orphans: services retrain manages that the manifest no longer lists, decided purely
from what the provider listed (``plan.orphans``), and shown by status."""

from __future__ import annotations

from reconciler import engine, model, plan, render, settings, status
from tests.unit.test_status_cases import GOLDEN_FLEET, fleet, session


def managed(endpoint: str, web_service: str, fp: str = "a" * 64) -> model.Managed:
    tags = {
        model.TAG_MANAGED_BY: model.MANAGED_BY,
        model.TAG_ENDPOINT: endpoint,
        model.TAG_FINGERPRINT: fp,
        model.TAG_VERSION: "7",
    }
    return model.Managed(endpoint, web_service, "here", model.frozen_map(tags))


def test_only_services_whose_endpoint_tag_names_no_endpoint_are_orphans() -> None:
    desired, _provider = fleet(GOLDEN_FLEET)
    listed = [managed("zz-gone", "svc-z"), managed(desired[0].name, "other"), managed("a", "b")]
    found = plan.orphans(desired, listed)
    assert [m.endpoint for m in found] == ["a", "zz-gone"]  # sorted, the listed one kept out
    assert plan.orphans(desired, None) == ()


def test_tags_without_retrains_ownership_or_endpoint_are_not_managed() -> None:
    owned = {model.TAG_MANAGED_BY: model.MANAGED_BY, model.TAG_ENDPOINT: "e", "team": "x"}
    got = model.managed_from_tags("svc", owned, "rg")
    assert got == model.Managed("e", "svc", "rg", model.frozen_map(owned_only(owned)))
    assert model.managed_from_tags("svc", {model.TAG_ENDPOINT: "e"}, "rg") is None
    assert model.managed_from_tags("svc", {model.TAG_MANAGED_BY: model.MANAGED_BY}, "") is None
    assert model.managed_from_tags("svc", "not tags", "") is None  # type: ignore[arg-type]


def owned_only(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k in model.OWNED_TAGS}


def test_status_adds_an_orphaned_row_and_a_selective_status_lists_nothing() -> None:
    desired, provider = fleet(GOLDEN_FLEET)
    provider.listed = (managed("zz-gone", "svc-z"),)
    rows, _metrics = engine.read_status(session(desired, provider))
    assert rows[-1].state is status.State.ORPHANED
    assert (rows[-1].endpoint, rows[-1].version, rows[-1].metrics) == ("zz-gone", "7", {})
    assert "\nzz-gone   svc-z        orphaned     7 " in render.status_text(rows)
    partial = session(desired, provider)
    partial.settings = settings.Settings(targets=(desired[0].name,))
    provider.reads.clear()
    rows, _metrics = engine.read_status(partial)
    assert all(r.state is not status.State.ORPHANED for r in rows)
    assert "managed" not in [kind for kind, _ in provider.reads]  # not even listed
