"""``retrain models`` on azureml: model versions listed with their references, and gc
never deletes a version a deployment references (issue 10, point 4)."""

from __future__ import annotations

import pytest

from reconciler import engine, errors, fingerprint, settings
from tests.azureml.conftest import World
from tests.azureml.test_azureml_e2e import one


def test_models_list_and_gc_keep_every_version_a_deployment_references(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    one(world)
    applied = world.run("apply", "--auto-approve", capsys=capsys)
    assert applied.code == 0, applied.err + applied.out
    listed = world.run("models", "list", capsys=capsys)
    assert listed.code == 0, listed.err
    (row,) = listed.out.splitlines()[1:]
    assert row.split()[0] in applied.out and "seattle" in row
    gc = world.run("models", "gc", "--keep", "0", "--yes", capsys=capsys)
    assert gc.out.startswith("Nothing to remove"), gc.out
    # Asked directly, the provider refuses too: a deployment references the version.
    config = settings.Settings(manifest=world.root / "retrain.yaml")
    session = engine.open_session(config, env=world.env)
    (stored,) = session.provider.stored()
    with pytest.raises(errors.ProviderError, match="is referenced by deployment"):
        session.provider.forget(stored.fingerprint)
    assert fingerprint.short(stored.fingerprint) in row
