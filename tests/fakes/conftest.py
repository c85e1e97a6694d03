"""Makes the fake's fixtures available to the fake's own tests."""

from .fixtures import azurite, fake_azure, fake_azure_with_blobs

__all__ = ["azurite", "fake_azure", "fake_azure_with_blobs"]
