"""Azure SDK (azure-core) exceptions → the provider's own errors, in one place."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from azure.core import exceptions as core

from reconciler import errors, redact
from reconciler.providers.azurecommon import errors as az_errors


@contextlib.contextmanager
def mapped(what: str, scrub: redact.Redactor) -> Iterator[None]:
    """Run SDK calls; their exceptions leave as ``errors.ProviderError`` subclasses."""
    try:
        yield
    except core.HttpResponseError as e:
        status = e.status_code or 0
        body = None
        if e.response is not None:
            with contextlib.suppress(Exception):
                body = e.response.text()
        if not body:
            body = str(e.message or e)
        raise az_errors.make(status, what, body, scrub) from e
    except core.ServiceRequestError as e:
        raise az_errors.ConnectionFailed(scrub(f"{what}: cannot connect: {e}")[:600]) from e
    except core.AzureError as e:
        raise errors.ProviderError(scrub(f"{what}: {e}")[:600]) from e
