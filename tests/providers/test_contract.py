"""The provider contract: every backend passes these, unchanged."""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest

from reconciler import errors, model
from reconciler.providers import base

from .conftest import Harness, asset_uri

TAGS = {
    model.TAG_MANAGED_BY: model.MANAGED_BY,
    model.TAG_FINGERPRINT: "f" * 64,
    model.TAG_VERSION: "1",
    model.TAG_ENDPOINT: "a",
}


def test_a_missing_web_service_is_observed_as_none(harness: Harness) -> None:
    ep = harness.endpoint("a", data=harness.data("a.csv", [1, 2]))
    assert harness.provider.observe([ep]) == {"a": None}


def test_created_service_serves_the_model_with_ownership_tags(harness: Harness) -> None:
    ep = harness.endpoint("a", data=harness.data("a.csv", [1, 2]))
    record = harness.provider.train(harness.job(ep))
    harness.provider.create(ep, record.uri, TAGS | {model.TAG_FINGERPRINT: record.fingerprint})
    state = harness.provider.observe([ep])["a"]
    assert state is not None
    assert state.model_uri == record.uri == state.expected_uri
    assert state.managed and state.fingerprint == record.fingerprint


def test_update_changes_only_the_owned_fields(harness: Harness) -> None:
    ep = harness.endpoint("a", data=harness.data("a.csv", [1, 2]))
    first = harness.provider.train(harness.job(ep))
    harness.provider.create(ep, first.uri, TAGS)
    harness.edit(ep.web_service, lambda d: d["tags"].update({"team": "bikes"}))
    before = harness.raw(ep.web_service)
    assert before is not None
    ep2 = harness.endpoint("a", data=harness.data("b.csv", [5, 9]))
    second = harness.provider.train(harness.job(ep2))
    harness.provider.update(ep2, second.uri, TAGS | {model.TAG_VERSION: "2"})
    after = harness.raw(ep.web_service)
    assert after is not None
    assert asset_uri(after) == second.uri
    assert after["tags"] == before["tags"] | {model.TAG_VERSION: "2"}
    expected = copy.deepcopy(before)
    expected["tags"] = after["tags"]
    _set_uri(expected, second.uri)
    assert _server_owned_removed(after) == _server_owned_removed(expected)


def test_training_stores_a_model_under_its_fingerprint(harness: Harness) -> None:
    ep = harness.endpoint("a", data=harness.data("a.csv", [1, 2, 3]))
    job = harness.job(ep)
    assert harness.provider.models([job.fingerprint]) == {}
    record = harness.provider.train(job)
    assert record.fingerprint == job.fingerprint
    assert record.metrics["Mean Absolute Error"] == pytest.approx(2 / 3)
    assert harness.provider.models([job.fingerprint, "0" * 64]) == {job.fingerprint: record}


def test_input_digest_follows_content_not_name(harness: Harness) -> None:
    a = harness.data("a.csv", [1, 2])
    b = harness.data("b.csv", [1, 2])
    assert harness.provider.input_digest(a) == harness.provider.input_digest(b)
    c = harness.data("c.csv", [1, 3])
    assert harness.provider.input_digest(a) != harness.provider.input_digest(c)


def test_a_failed_training_reports_the_trainers_reason_and_stores_nothing(
    harness: Harness,
) -> None:
    ep = harness.endpoint("a", data=harness.data("a.csv", [1]), parameters={"fail": "no rows"})
    job = harness.job(ep)
    with pytest.raises(errors.TrainingError, match="cannot train: no rows"):
        harness.provider.train(job)
    assert harness.provider.models([job.fingerprint]) == {}


def test_secrets_reach_the_trainer_but_not_the_error(harness: Harness) -> None:
    if not harness.passes_environment:
        pytest.skip("this backend's trainers run remotely and receive no environment")
    ep = harness.endpoint(
        "a",
        data=harness.data("a.csv", [1]),
        parameters={"echo_env": "API_TOKEN"},
        secrets={"API_TOKEN": "tok-12345"},
    )
    with pytest.raises(errors.TrainingError) as info:
        harness.provider.train(harness.job(ep))
    assert "token was (sensitive)" in str(info.value)
    assert "tok-12345" not in str(info.value)


def test_an_out_of_band_edit_is_visible_as_a_changed_uri(harness: Harness) -> None:
    ep = harness.endpoint("a", data=harness.data("a.csv", [1, 2]))
    record = harness.provider.train(harness.job(ep))
    harness.provider.create(ep, record.uri, TAGS | {model.TAG_FINGERPRINT: record.fingerprint})
    before = harness.provider.observe([ep])["a"]
    foreign = harness.foreign_model()
    harness.edit(ep.web_service, lambda d: _set_uri(d, foreign))
    after = harness.provider.observe([ep])["a"]
    assert before is not None and after is not None
    assert after.model_uri == foreign
    assert after.expected_uri == record.uri
    assert after.revision != before.revision


def test_history_is_appended_and_read_back_per_endpoint(harness: Harness) -> None:
    for name in ("a", "b", "a"):
        harness.provider.record(
            base.HistoryEntry(
                time="2026-01-01T00:00:00+00:00",
                endpoint=name,
                web_service=f"ws-{name}",
                action="update",
                fingerprint="f" * 64,
                version="1",
                model_uri="u",
                previous_uri=None,
                previous_fingerprint=None,
                metrics={"r2": 0.5},
                actor="me",
            )
        )
    assert [e.endpoint for e in harness.provider.history()] == ["a", "b", "a"]
    entries = list(harness.provider.history("a"))
    assert len(entries) == 2 and entries[0].metrics == {"r2": 0.5}


def test_the_lock_excludes_a_second_holder_and_names_the_first(harness: Harness) -> None:
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with harness.provider.lock("alice", timeout=5):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(5)
        with (
            pytest.raises(errors.LockError, match="locked by alice"),
            harness.provider.lock("bob", timeout=0.3),
        ):
            pass
    finally:
        release.set()
        thread.join()
    with harness.provider.lock("bob", timeout=1):
        pass


def _set_uri(definition: dict[str, Any], uri: str) -> None:
    for asset in definition["properties"]["assets"].values():
        if asset["name"] == "Bike Demand [trained model]":
            asset["locationInfo"]["uri"] = uri


def _server_owned_removed(definition: dict[str, Any]) -> dict[str, Any]:
    """Drop what the server maintains itself (it may move on any write)."""
    out = copy.deepcopy(definition)
    for key in ("modifiedOn", "provisioningState"):
        out["properties"].pop(key, None)
    return out


def test_a_trained_model_is_at_the_one_canonical_uri_of_its_fingerprint(harness: Harness) -> None:
    ep = harness.endpoint("a", data=harness.data("a.csv", [1, 2, 3]))
    record = harness.provider.train(harness.job(ep))
    assert record.uri == harness.provider.model_uri(record.fingerprint)


@pytest.mark.parametrize(
    "forged",
    [
        "https://elsewhere.example/model.ilearner",
        "{uri}/../../../outside.txt",
        "{uri}?x=1",
        "{other}",
    ],
    ids=["other-host", "dot-dot", "query", "untrained"],
)
def test_a_model_uri_outside_the_store_is_never_pointed_at(harness: Harness, forged: str) -> None:
    ep = harness.endpoint("a", data=harness.data("a.csv", [1, 2]))
    record = harness.provider.train(harness.job(ep))
    harness.provider.create(ep, record.uri, TAGS | {model.TAG_FINGERPRINT: record.fingerprint})
    uri = forged.format(uri=record.uri, other=harness.provider.model_uri("e" * 64))
    with pytest.raises(errors.ProviderError, match="model"):  # each backend words it its way
        harness.provider.update(ep, uri, TAGS)
    state = harness.provider.observe([ep])["a"]
    assert state is not None and state.model_uri == record.uri


def test_managed_lists_the_services_retrain_owns_and_no_other(harness: Harness) -> None:
    a = harness.endpoint("a", data=harness.data("a.csv", [1, 2]))
    b = harness.endpoint("b", data=harness.data("b.csv", [1, 2]))
    assert harness.provider.managed([a, b]) == ()
    record = harness.provider.train(harness.job(a))
    harness.provider.create(a, record.uri, TAGS | {model.TAG_FINGERPRINT: record.fingerprint})
    unowned = {model.TAG_FINGERPRINT: record.fingerprint, model.TAG_VERSION: "1"}
    harness.provider.create(b, record.uri, unowned)  # tags, but not retrain's ownership
    for endpoints in ([a, b], []):  # listed whether or not the manifest names it
        listed = harness.provider.managed(endpoints)
        assert [(m.endpoint, m.web_service) for m in listed] == [("a", a.web_service)]
        assert listed[0].fingerprint == record.fingerprint and listed[0].version == "1"


def test_disown_removes_only_retrains_ownership_and_delete_only_where_supported(
    harness: Harness,
) -> None:
    a = harness.endpoint("a", data=harness.data("a.csv", [1, 2]))
    record = harness.provider.train(harness.job(a))
    harness.provider.create(a, record.uri, TAGS | {model.TAG_FINGERPRINT: record.fingerprint})
    harness.edit(a.web_service, lambda d: d["tags"].update({"team": "bikes"}))
    (orphan,) = harness.provider.managed([])
    said = harness.provider.disown(orphan)
    assert "removed retrain's ownership" in said
    assert harness.provider.managed([]) == ()
    state = harness.provider.observe([a])["a"]
    assert state is not None and not state.managed and state.model_uri == record.uri
    raw = harness.raw(a.web_service)
    assert raw is not None and raw["tags"].get("team") == "bikes"
    assert not set(raw["tags"]) & set(model.OWNED_TAGS)
    if harness.provider.deletes:
        harness.provider.disown(orphan, delete=True)
        assert harness.provider.observe([a]) == {"a": None}
    else:
        with pytest.raises(errors.ProviderError, match="never deletes"):
            harness.provider.disown(orphan, delete=True)
        assert harness.provider.observe([a])["a"] is not None


def test_stored_lists_every_model_and_forget_removes_one(harness: Harness) -> None:
    assert list(harness.provider.stored()) == []
    a = harness.provider.train(harness.job(harness.endpoint("a", data=harness.data("a.csv", [1]))))
    b = harness.provider.train(harness.job(harness.endpoint("b", data=harness.data("b.csv", [7]))))
    assert sorted(r.fingerprint for r in harness.provider.stored()) == sorted(
        [a.fingerprint, b.fingerprint]
    )
    assert {r.fingerprint: r.metrics for r in harness.provider.stored()} == {
        a.fingerprint: a.metrics,
        b.fingerprint: b.metrics,
    }
    harness.provider.forget(a.fingerprint)
    assert [r.fingerprint for r in harness.provider.stored()] == [b.fingerprint]
    assert harness.provider.models([a.fingerprint]) == {}
