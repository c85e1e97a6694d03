"""Cached input digests (statcache): an unchanged file is not read again; any change to
its key (size, mtime_ns, inode, ctime_ns) is, and so is a racily clean file; a corrupt
or unwritable cache is never an error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler.providers import digests, statcache
from reconciler.providers.local import provider as local


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files whose bytes were hashed."""
    seen: list[str] = []
    real = digests._sha256

    def counting(path: str | Path) -> str:
        seen.append(str(path))
        return real(path)

    monkeypatch.setattr(digests, "_sha256", counting)
    return seen


@pytest.fixture
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files count as quiet at once (the tick is for the racily-clean tests)."""
    monkeypatch.setattr(statcache, "TICK_NS", 0)


def make(tmp_path: Path) -> tuple[local.LocalProvider, Path]:
    data = tmp_path / "data.csv"
    data.write_text("x,y\n1,2\n")
    state = tmp_path / ".retrain"
    state.mkdir(exist_ok=True)
    return local.LocalProvider(state_dir=state, workdir=tmp_path, env={}), data


def again(tmp_path: Path) -> local.LocalProvider:
    """A new provider (a new process, as far as the cache knows)."""
    return local.LocalProvider(state_dir=tmp_path / ".retrain", workdir=tmp_path, env={})


def test_an_unchanged_input_is_hashed_once_across_runs(
    tmp_path: Path, reads: list[str], quiet: None
) -> None:
    first, data = make(tmp_path)
    digest = first.input_digest(str(data))
    first.digests.save()
    assert json.loads((tmp_path / ".retrain/cache/digests.json").read_text())["format"] == 1
    assert again(tmp_path).input_digest(str(data)) == digest
    assert reads == [str(data)]


def test_the_cache_is_written_when_the_provider_goes(tmp_path: Path, quiet: None) -> None:
    first, data = make(tmp_path)
    first.input_digest(str(data))
    del first
    assert (tmp_path / ".retrain/cache/digests.json").is_file()


def test_an_edit_that_restores_size_and_mtime_is_hashed_again(
    tmp_path: Path, reads: list[str], quiet: None
) -> None:
    first, data = make(tmp_path)
    before = first.input_digest(str(data))
    first.digests.save()
    info = data.stat()
    data.write_text("x,y\n1,3\n")  # same size
    os.utime(data, ns=(info.st_atime_ns, info.st_mtime_ns))  # same mtime: ctime still moves
    assert data.stat().st_size == info.st_size and data.stat().st_mtime_ns == info.st_mtime_ns
    after = again(tmp_path).input_digest(str(data))
    assert after != before
    assert after == digests.file_digest(data)
    assert reads == [str(data)] * 3


def test_a_replaced_file_is_hashed_again(tmp_path: Path, reads: list[str], quiet: None) -> None:
    first, data = make(tmp_path)
    first.input_digest(str(data))
    first.digests.save()
    other = tmp_path / "other.csv"
    other.write_text("x,y\n9,9\n")
    other.replace(data)  # a new inode
    assert again(tmp_path).input_digest(str(data)) == digests.file_digest(data)
    assert len(reads) == 3


def test_a_racily_clean_file_is_hashed_again(tmp_path: Path, reads: list[str]) -> None:
    first, data = make(tmp_path)  # just written: within a tick of being read
    first.input_digest(str(data))
    first.digests.save()
    again(tmp_path).input_digest(str(data))
    assert len(reads) == 2


def test_a_file_quiet_for_a_tick_before_it_was_read_is_trusted(
    tmp_path: Path, reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, data = make(tmp_path)
    later = statcache.now_ns() + statcache.TICK_NS + 1
    monkeypatch.setattr(statcache, "now_ns", lambda: later)  # read a tick after its change
    first.input_digest(str(data))
    first.digests.save()
    again(tmp_path).input_digest(str(data))
    assert len(reads) == 1


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\xff not json",
        b"[]",
        b'{"format": 2, "entries": {}}',
        b'{"format": 1, "entries": []}',
        b'{"format": 1, "entries": {"X": {"key": [1, 2], "checked": 1, "value": "d"}}}',
        b'{"format": 1, "entries": {"X": {"key": [true, 2, 3, 4], "checked": 1, "value": 1}}}',
        b"[" * 100_000,
    ],
)
def test_a_corrupt_cache_is_ignored_and_rebuilt(
    tmp_path: Path, content: bytes, quiet: None
) -> None:
    first, data = make(tmp_path)
    cache = tmp_path / ".retrain/cache/digests.json"
    cache.parent.mkdir()
    cache.write_bytes(content.replace(b'"X"', json.dumps(str(data)).encode()))
    assert first.input_digest(str(data)) == digests.file_digest(data)
    first.digests.save()
    assert str(data) in json.loads(cache.read_text())["entries"]


def test_a_wrong_value_in_a_matching_entry_is_not_used(tmp_path: Path, quiet: None) -> None:
    first, data = make(tmp_path)
    first.input_digest(str(data))
    first.digests.save()
    cache = tmp_path / ".retrain/cache/digests.json"
    doc = json.loads(cache.read_text())
    doc["entries"][str(data)]["value"] = 12345  # not a digest
    cache.write_text(json.dumps(doc))
    assert again(tmp_path).input_digest(str(data)) == digests.file_digest(data)


def test_no_cache_makes_a_state_directory(tmp_path: Path, quiet: None) -> None:
    data = tmp_path / "data.csv"
    data.write_text("x\n")
    gone = local.LocalProvider(state_dir=tmp_path / "typo", workdir=tmp_path, env={})
    gone.input_digest(str(data))
    gone.digests.save()
    assert not (tmp_path / "typo").exists()


def test_an_unwritable_cache_is_no_error(tmp_path: Path, quiet: None) -> None:
    first, data = make(tmp_path)
    (tmp_path / ".retrain/cache").write_text("a file where the folder would be")
    assert first.input_digest(str(data)) == digests.file_digest(data)
    first.digests.save()  # nothing written, nothing raised
    assert (tmp_path / ".retrain/cache").read_text().startswith("a file")
