"""pytest fixtures for the Azure fakes, importable from any conftest.

Why a plugin module rather than fixtures in one conftest: other test packages (provider
contract tests, end-to-end tests) need the same fixtures; they can do
``from tests.fakes.fixtures import azurite, fake_azure`` in their conftest (or list the module
in ``pytest_plugins`` at the root). Azurite-backed fixtures skip, with the reason, only when the
Azurite binary is absent; any other start-up failure is an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .azurite import Azurite, skip_reason
from .server import FakeAzure


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """One real Azurite blob emulator for the test session (skips when not installed)."""
    reason = skip_reason()
    if reason and os.environ.get("RETRAIN_REQUIRE_AZURITE"):
        pytest.fail(f"RETRAIN_REQUIRE_AZURITE is set but {reason}")
    if reason:
        pytest.skip(reason)
    with Azurite() as emulator:
        yield emulator


@pytest.fixture
def fake_azure() -> Iterator[FakeAzure]:
    """ARM + BES + classic fake on one HTTPS port, without blob storage."""
    with FakeAzure() as fake:
        yield fake


@pytest.fixture
def fake_azure_with_blobs(azurite: Azurite) -> Iterator[FakeAzure]:
    """The fake wired to the session's Azurite (BES jobs read and write real blobs)."""
    with FakeAzure(blob_connection_string=azurite.connection_string) as fake:
        yield fake
