"""Local observe with the least I/O: each definition read once per run at most, none
while its file is unchanged since a run read it (the owned parts are kept in
``<stateDir>/cache/observed.json``, keyed like the digest cache), and ``managed`` reads
no file observe read; an out-of-band edit is seen however it keeps size and times."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from reconciler import engine, model, settings
from reconciler.providers import statcache, webservice
from reconciler.providers.local import provider as local
from reconciler.providers.local import safefs

ROOT = Path(__file__).resolve().parents[2]
URI = "local://models/" + "a" * 64
MANIFEST = """\
apiVersion: retrain/v1
backend: {kind: local}
trainers:
  t: {entrypoint: train.py:train}
defaults: {trainer: t, asset: "Bike Demand [trained model]", version: "1", inputs: {d: a.csv}}
endpoints:
  - forEach: [{i: a}, {i: b}, {i: c}]
    name: ep-${each.i}
    webService: ws-${each.i}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text("def train(**kw):\n    pass\n")
    (tmp_path / "a.csv").write_text("x\n1\n")
    (tmp_path / "retrain.yaml").write_text(MANIFEST)
    services = tmp_path / ".retrain" / "webservices"
    services.mkdir(parents=True)
    definition = json.loads((ROOT / "examples/bike_rental/webservice.json").read_text())
    for name in ("a", "b", "c"):
        asset = next(
            a
            for a in definition["properties"]["assets"].values()
            if a.get("name") == "Bike Demand [trained model]"
        )
        asset["locationInfo"] = {"uri": URI}
        definition["tags"] = {
            model.TAG_MANAGED_BY: model.MANAGED_BY,
            model.TAG_ENDPOINT: f"ep-{name}",
        }
        (services / f"ws-{name}.json").write_text(json.dumps(definition, indent=2))
    return tmp_path


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = safefs.Folder.read

    def counting(self: safefs.Folder, name: str, limit: int) -> object:
        seen.append(name)
        return real(self, name, limit)

    monkeypatch.setattr(safefs.Folder, "read", counting)
    return seen


def observe(project: Path) -> tuple[dict[str, model.ServiceState | None], local.LocalProvider]:
    """A new session and provider (a new run), observing every endpoint."""
    config = settings.Settings(actor="t", manifest=project / "retrain.yaml")
    session = engine.open_session(config, env={})
    assert isinstance(session.provider, local.LocalProvider)
    states = dict(session.provider.observe(session.endpoints))
    session.provider.observed.save()
    return states, session.provider


def test_an_unchanged_definition_is_not_read_again(
    project: Path, reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statcache, "TICK_NS", 0)  # the files count as quiet at once
    first, _ = observe(project)
    assert sorted(reads) == ["ws-a.json", "ws-b.json", "ws-c.json"]
    second, _ = observe(project)
    assert len(reads) == 3
    assert second == first
    state = first["ep-a"]
    assert state is not None and state.model_uri == URI


def test_a_definition_changed_within_a_tick_is_read_again(project: Path, reads: list[str]) -> None:
    observe(project)
    observe(project)  # the files were written just now: racily clean
    assert len(reads) == 6


def test_an_out_of_band_edit_keeping_size_and_mtime_is_seen(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statcache, "TICK_NS", 0)
    observe(project)
    path = project / ".retrain/webservices/ws-b.json"
    info = path.stat()
    path.write_text(path.read_text().replace(URI, URI.replace("a" * 64, "b" * 64)))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert path.stat().st_size == info.st_size
    states, _ = observe(project)
    changed = states["ep-b"]
    assert changed is not None and str(changed.model_uri).endswith("b" * 64)


@pytest.mark.parametrize("content", [b"garbage", b'{"format": 1, "entries": {"ws-a.json": 1}}'])
def test_a_corrupt_observed_cache_is_ignored(
    project: Path, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    monkeypatch.setattr(statcache, "TICK_NS", 0)
    fresh, _ = observe(project)
    (project / ".retrain/cache/observed.json").write_bytes(content)
    assert observe(project)[0] == fresh


def test_managed_reads_no_definition_that_observe_read(project: Path, reads: list[str]) -> None:
    _, provider = observe(project)
    read_one: list[str] = []
    real = provider._read

    def reading(web_service: str) -> dict[str, object] | None:
        read_one.append(web_service)
        return real(web_service)

    provider._read = reading  # type: ignore[method-assign]
    found = provider.managed(())
    assert sorted(m.endpoint for m in found) == ["ep-a", "ep-b", "ep-c"]
    assert read_one == []
    shutil.copy(
        project / ".retrain/webservices/ws-a.json", project / ".retrain/webservices/ws-z.json"
    )
    provider.managed(())
    assert read_one == ["ws-z"]  # listed but never observed: read


def _cache_of(project: Path) -> Path:
    return project / ".retrain/cache/observed.json"


def test_a_hit_gives_the_revision_a_read_computes(
    project: Path, reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The saved plan's stale check compares revisions: one kept in the cache must be the
    one the file's fields give, and an edit must still change it."""
    monkeypatch.setattr(statcache, "TICK_NS", 0)
    observe(project)
    kept, _ = observe(project)
    assert len(reads) == 3  # the second run was all hits
    definition = json.loads((project / ".retrain/webservices/ws-a.json").read_text())
    state = kept["ep-a"]
    assert state is not None
    tags = webservice.owned_tags(definition)
    assert state.revision == webservice.revision(URI, tags)
    path = project / ".retrain/webservices/ws-a.json"
    path.write_text(path.read_text().replace('"ep-a"', '"ep-x"'))
    edited, _ = observe(project)
    after = edited["ep-a"]
    assert after is not None and after.revision != state.revision


def _row_cache(project: Path, value: object) -> bytes:
    """An observed cache whose row for ws-a.json matches the file's key, holding ``value``."""
    info = (project / ".retrain/webservices/ws-a.json").stat()
    row = [*statcache.key_of(info), statcache.now_ns(), value]
    return json.dumps({"format": 2, "entries": {"ws-a.json": row}}).encode()


GOOD_ROW = [
    "Bike Demand [trained model]",
    URI,
    "0123456789abcdef",
    ["Bike Demand [trained model]"],
    {model.TAG_MANAGED_BY: model.MANAGED_BY, model.TAG_ENDPOINT: "ep-a"},
    "ep-a",
]


@pytest.mark.parametrize(
    "value",
    [
        5,
        GOOD_ROW[:5],
        ["another asset", *GOOD_ROW[1:]],
        [*GOOD_ROW[:2], 12345, *GOOD_ROW[3:]],
        [*GOOD_ROW[:3], ["x", 1], *GOOD_ROW[4:]],
        [*GOOD_ROW[:4], {model.TAG_ENDPOINT: 7}, GOOD_ROW[5]],
        [*GOOD_ROW[:4], ["not", "a", "map"], GOOD_ROW[5]],
        [*GOOD_ROW[:5], True],
        [GOOD_ROW[0], 3.5, *GOOD_ROW[2:]],
    ],
)
def test_a_cached_row_of_the_wrong_shape_is_read_again(
    project: Path, reads: list[str], monkeypatch: pytest.MonkeyPatch, value: object
) -> None:
    monkeypatch.setattr(statcache, "TICK_NS", 0)
    fresh, _ = observe(project)
    _cache_of(project).write_bytes(_row_cache(project, value))
    assert observe(project)[0] == fresh
    assert reads.count("ws-a.json") == 2


def test_a_well_formed_row_is_used_as_it_is(
    project: Path, reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows above are refused for their shape alone: this one, of the same file's
    key, is used (the cache is trusted while the file's key matches)."""
    monkeypatch.setattr(statcache, "TICK_NS", 0)
    observe(project)
    _cache_of(project).write_bytes(_row_cache(project, GOOD_ROW))
    state = observe(project)[0]["ep-a"]
    assert reads.count("ws-a.json") == 1
    assert state is not None and state.revision == "0123456789abcdef"
    assert state.assets == ("Bike Demand [trained model]",)


def test_an_old_format_cache_with_a_malformed_value_is_no_error(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Format 1 kept the owned part of each definition as an object; one of the wrong
    shape under a matching key was an error ("definition has no properties.assets map")
    where a corrupt cache must only be rebuilt."""
    monkeypatch.setattr(statcache, "TICK_NS", 0)
    fresh, _ = observe(project)
    info = (project / ".retrain/webservices/ws-a.json").stat()
    entry = {
        "key": list(statcache.key_of(info)),
        "checked": statcache.now_ns(),
        "value": {"properties": {"assets": 5}, "tags": {}},
    }
    document = {"format": 1, "entries": {"ws-a.json": entry}}
    _cache_of(project).write_text(json.dumps(document))
    assert observe(project)[0] == fresh


def test_another_asset_name_reads_the_definition_again(
    project: Path, reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statcache, "TICK_NS", 0)
    observe(project)
    manifest = project / "retrain.yaml"
    manifest.write_text(manifest.read_text().replace("Bike Demand [trained model]", "Score Model"))
    states, _ = observe(project)
    assert len(reads) == 6
    state = states["ep-a"]
    assert state is not None and state.model_uri != URI


def test_managed_reads_a_definition_replaced_since_observe(project: Path) -> None:
    """A definition rewritten as retrain writes one (a new file renamed over it) after
    observe read it is a new file: managed reads it and reports what it says now."""
    _, provider = observe(project)
    path = project / ".retrain/webservices/ws-a.json"
    replaced = project / ".retrain/webservices/.ws-a.json.new"
    replaced.write_text(path.read_text().replace('"ep-a"', '"ep-gone"'))
    replaced.replace(path)
    found = {m.web_service: m.endpoint for m in provider.managed(())}
    assert found == {"ws-a": "ep-gone", "ws-b": "ep-b", "ws-c": "ep-c"}
