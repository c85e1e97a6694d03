"""The collector pause around building large values: never left off, nothing kept."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import errors, gcpause, manifest, providers


@pytest.fixture(autouse=True)
def _collector_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_the_collector_is_off_inside_and_on_again_after() -> None:
    with gcpause.paused():
        assert not gc.isenabled()
        with gcpause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # only the outermost pause restores it
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with gcpause.paused():
        pass
    assert not gc.isenabled()


def test_the_collector_is_on_again_when_the_block_raises() -> None:
    with pytest.raises(ValueError, match="boom"), gcpause.paused():
        raise ValueError("boom")
    assert gc.isenabled()


class _Node:
    """A value in a reference cycle: only the collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_a_cycle_made_during_a_pause_is_still_collected() -> None:
    with gcpause.paused():
        cycle = _Node()
        gone = weakref.ref(cycle)
        del cycle
    gc.collect()
    assert gone() is None


def test_a_cycle_alive_at_one_pause_is_collected_after_a_later_one() -> None:
    cycle = _Node()
    gone = weakref.ref(cycle)
    with gcpause.paused():
        pass  # freezes the cycle, alive then
    del cycle
    with gcpause.paused():
        pass  # unfreezes before collecting: the cycle, garbage now, is freed
    assert gone() is None


def test_a_manifest_that_fails_to_load_leaves_the_collector_on(tmp_path: Path) -> None:
    bad = tmp_path / "retrain.yaml"
    bad.write_text("apiVersion: [\n", encoding="utf-8")
    with pytest.raises(errors.ManifestError):
        manifest.load(bad, env={}, backends=list(providers.registry().values()))
    assert gc.isenabled()
