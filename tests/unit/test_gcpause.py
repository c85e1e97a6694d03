"""The collector pause around building large values: never left off, nothing kept."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import localplan
from reconciler import errors, gcpause, manifest, providers


@pytest.fixture(autouse=True)
def _collector_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()
    gc.unfreeze()  # what these tests froze: collectable again


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


class _Leaf:
    """A value in no reference cycle (weakly referable)."""


def test_a_value_alive_at_a_pause_is_still_freed_when_dropped() -> None:
    value = _Leaf()
    gone = weakref.ref(value)
    with gcpause.paused():
        pass  # freezes the value, alive then
    del value
    assert gone() is None


class _Cycle:
    """A value in a reference cycle (with itself)."""

    def __init__(self) -> None:
        self.me = self


def test_a_cycle_frozen_by_a_pause_is_collected_once_released() -> None:
    """What ``retrain watch`` does between rounds: a garbage cycle alive at a pause is
    collected after ``release``, not kept for the life of the process."""
    cycle = _Cycle()
    gone = weakref.ref(cycle)
    with gcpause.paused():
        pass  # freezes the cycle, alive then
    del cycle
    gc.collect()
    assert gone() is not None  # frozen: no collection walks it
    gcpause.release()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert gone() is None


def test_loading_a_manifest_again_and_again_keeps_nothing(tmp_path: Path) -> None:
    """A watch loads the manifest once per round: the frozen set must not grow."""
    path = localplan.project(tmp_path, 200)
    backends = list(providers.registry().values())
    counts = []
    for _ in range(4):
        loaded = manifest.load(path, env={}, backends=backends)
        assert len(loaded.endpoints) == 200
        del loaded
        counts.append(gc.get_freeze_count())
    # A kept manifest of 200 endpoints is thousands of objects; a few are the caches
    # warmed on the way (compiled patterns, memoized digests).
    assert counts[-1] <= counts[1] + 100


def test_a_manifest_that_fails_to_load_leaves_the_collector_on(tmp_path: Path) -> None:
    bad = tmp_path / "retrain.yaml"
    bad.write_text("apiVersion: [\n", encoding="utf-8")
    with pytest.raises(errors.ManifestError):
        manifest.load(bad, env={}, backends=list(providers.registry().values()))
    assert gc.isenabled()
