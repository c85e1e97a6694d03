"""A classic endpoint's essence, through ``services.Classic`` alone (no server)."""

from __future__ import annotations

from typing import Any, cast

from reconciler import model
from reconciler.providers.azure import backend, classic, services

ASSET = "Census [trained model]"
FP = "cd" * 32  # a well-formed fingerprint: 64 lower-case hex digits
ADDRESS = backend.Classic("ws1", "census", "acme", model.Secret("env:K", "k"))


class CountingEndpoints:
    """Stands in for ``classic.Endpoints``: one endpoint, one ownership record, reads counted."""

    def __init__(self) -> None:
        self.record_reads = 0

    def records(self) -> dict[str, dict[str, str]]:
        self.record_reads += 1
        return {"ws1/census/acme": {model.TAG_FINGERPRINT: FP}}

    def get(self, ep: model.Endpoint) -> dict[str, Any] | None:
        location = {"BaseLocation": "https://acct/", "RelativeLocation": "/retrain/models/m"}
        return {"Resources": [{"Name": "Other"}, {"Name": ASSET, "Location": location}]}


def endpoint(name: str) -> model.Endpoint:
    return model.Endpoint(
        name=name,
        web_service="census/acme",
        asset=ASSET,
        version="1",
        trainer=model.Trainer("census"),
        inputs=model.frozen_map(),
        parameters=model.frozen_map(),
        gate=None,
        definition=None,
        source=model.Source("retrain.yaml", "/endpoints/0", 1),
        address=ADDRESS,
    )


def test_classic_endpoints_read_their_ownership_records_once_per_observation() -> None:
    stub = CountingEndpoints()
    kind = services.Classic(cast(classic.Endpoints, stub), lambda fp: f"https://acct/{fp}")
    observe = kind.observer()
    states = [observe(endpoint(name)) for name in ("a", "b", "c")]
    assert stub.record_reads == 1
    state = states[0]
    assert state is not None
    assert state.model_uri == "https://acct/retrain/models/m"
    assert dict(state.tags) == {model.TAG_FINGERPRINT: FP}
    assert state.expected_uri == f"https://acct/{FP}"
    assert state.assets == ("Other", ASSET)
