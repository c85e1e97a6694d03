"""Client-side pacing to Resource Manager's documented token buckets.

Resource Manager throttles per subscription with token buckets (reads 250
burst refilling 25/s; writes and deletes 200 burst refilling 10/s). Spending
tokens at the rate they refill keeps a large fleet just under the limit
instead of provoking a storm of 429s and backoffs. The server's
``x-ms-ratelimit-remaining-*`` headers correct our estimate when others share
the subscription.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

EPSILON = 1e-9  # float slack: a token refilled to 0.9999999999 is a whole token
# (burst, refill per second), from Azure's request-limits-and-throttling page.
LIMITS = {"reads": (250.0, 25.0), "writes": (200.0, 10.0), "deletes": (200.0, 10.0)}


def kind_of(method: str) -> str:
    """The bucket an HTTP method draws from."""
    method = method.upper()
    if method in ("GET", "HEAD"):
        return "reads"
    return "deletes" if method == "DELETE" else "writes"


@dataclass
class Bucket:
    """A token bucket; ``take`` blocks (via ``sleep``) until a token is there."""

    capacity: float
    rate: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self.tokens = self.capacity
        self.stamp = self.clock()
        self.lock = threading.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self) -> float:
        """Spend one token, waiting if needed; returns the seconds waited."""
        waited = 0.0
        while True:
            with self.lock:
                self._refill()
                if self.tokens >= 1 - EPSILON:
                    self.tokens -= 1
                    return waited
                pause = (1 - self.tokens) / self.rate
            self.sleep(pause)
            waited += pause

    def observe_remaining(self, remaining: int) -> None:
        """The server says only ``remaining`` are left: never believe we have more."""
        with self.lock:
            self._refill()
            self.tokens = min(self.tokens, float(remaining))


class Pacer:
    """One bucket per operation kind, for one subscription."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.buckets = {
            kind: Bucket(burst, rate, clock, sleep) for kind, (burst, rate) in LIMITS.items()
        }

    def before(self, method: str) -> float:
        return self.buckets[kind_of(method)].take()

    def after(self, headers: dict[str, str]) -> None:
        for kind, bucket in self.buckets.items():
            value = headers.get(f"x-ms-ratelimit-remaining-subscription-{kind}")
            if value is not None and value.strip().isdigit():
                bucket.observe_remaining(int(value))
