"""How long to wait before polling a long-running operation or a job again.

Resource Manager says how long in ``Retry-After`` when it knows; when it does not,
a fixed interval is either slow (an update that finishes in half a second waits
the whole interval) or, made short, a waste of the subscription's read bucket on
a job that runs for minutes. So: the service's ``Retry-After`` when it gives one;
else a short first wait, doubling each poll up to ``cap`` (the manifest's
``pollSeconds``: the longest wait between polls the service gives no
``Retry-After`` for).

``Retry-After: 0`` counts as no header, as azure-core reads it: a server that says
"now" on every poll would otherwise be polled as fast as the pacer allows.
"""

from __future__ import annotations

FIRST = 0.5  # seconds: the first wait without Retry-After; a Studio update takes ~1 s
FACTOR = 2.0  # each wait without Retry-After is twice the last, up to the cap
# The longest Retry-After honoured: Azure asks for 10-60 s; a longer one is a bad header
# (an operation that long is still polled, just once a minute).
RETRY_AFTER_MAX = 60.0


class Backoff:
    """The waits between the polls of one operation or job (one instance each)."""

    def __init__(self, cap: float, first: float = FIRST) -> None:
        self.cap = cap
        self._next = min(first, cap)

    def next(self, retry_after: float | None) -> float:
        """Seconds to wait before the next poll, given the last answer's ``Retry-After``."""
        if retry_after is not None and retry_after > 0:
            return min(retry_after, RETRY_AFTER_MAX)
        wait = self._next
        self._next = min(self._next * FACTOR, self.cap)
        return wait
