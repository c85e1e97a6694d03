"""Client-side pacing to Resource Manager's documented token buckets.

Resource Manager throttles per subscription with token buckets (reads 250
burst refilling 25/s; writes and deletes 200 burst refilling 10/s). Spending
tokens just under the rate they refill keeps a large fleet near the limit
instead of provoking a storm of 429s and backoffs.

Our bucket is a *conservative estimate* of the server's, and it is kept below
it on purpose (``MARGIN``, ``RATE_MARGIN``): a request takes its token here when it leaves, but
the server counts it when it arrives, and concurrent requests reach it
bunched together by network and scheduling jitter; the server's
``x-ms-ratelimit-remaining-*`` headers also lag behind the requests still in
flight. Pacing at exactly the server's rate turns every such wobble into a
429. Three mechanisms keep us under:

- a reserve: a tenth of each burst, and never fewer tokens than the requests
  that may be in flight at once (``in_flight``, the pool's width), is never
  spent. The server refuses only when the arrivals in some window exceed its
  burst plus that window's refill; the arrivals in a window are at most the
  requests already in flight when it opens plus those we send within it, and we
  send at most burst - reserve + our (slower) refill. So while the reserve
  covers every request in flight, no amount of network or scheduling delay can
  bunch enough arrivals to empty the server's bucket;
- a slower refill: we refill 2% below the server's rate (``RATE_MARGIN``), so
  the server's bucket slowly gains on ours instead of running level with it
  (absorbing a server that refills in steps, or a clock a little fast). The
  reserve, not the rate, is what covers bunching, so this margin is kept small:
  past the burst it is the whole cost of pacing (it was 10% until issue 11, when
  the update wave had to finish within 10% of the buckets' bound);
- a shared pause: a 429 means the server's bucket is empty, so the bucket of
  that kind is emptied here too and *every* worker drawing from it waits out
  the ``Retry-After`` before sending again (not one 429 per worker). A 429
  whose remaining-count header still shows tokens is about one busy resource,
  not the bucket, and pauses nobody else (``arm.PacingPolicy`` decides).

The headers still correct our estimate when others share the subscription.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

EPSILON = 1e-9  # float slack: a token refilled to 0.9999999999 is a whole token
# (burst, refill per second), from Azure's request-limits-and-throttling page.
LIMITS = {"reads": (250.0, 25.0), "writes": (200.0, 10.0), "deletes": (200.0, 10.0)}
# Fraction of each bucket's burst held in reserve: 10% of the read burst is 25 requests,
# as many as a run has in flight by default (``NETWORK_PARALLELISM``) and one second of
# the server's refill. It costs 1 s once, never throughput.
MARGIN = 0.1
# Fraction of each bucket's refill rate left unused: over a minute the server's read
# bucket gains 30 tokens on ours. It costs 2% of throughput past the burst.
RATE_MARGIN = 0.02
# Requests in flight at once unless the manifest says otherwise: the read reserve (a
# tenth of the 250 read burst). At about 1 s per round trip, 25 workers keep up with the
# bucket's 25 reads/s refill, so a wider pool only waits on the pacer; and the reserve
# still covers every request in flight with no widening (``Bucket.reserve``).
NETWORK_PARALLELISM = round(LIMITS["reads"][0] * MARGIN)
# Longest shared pause one 429 imposes: a whole read bucket refills in 10 s, so a longer
# Retry-After is an outage or a bad header, and the retry itself still waits it out.
PAUSE_CAP = 60.0


def kind_of(method: str) -> str:
    """The bucket an HTTP method draws from."""
    method = method.upper()
    if method in ("GET", "HEAD"):
        return "reads"
    return "deletes" if method == "DELETE" else "writes"


@dataclass
class Bucket:
    """A token bucket estimating the server's; ``take`` blocks (via ``sleep``) until a
    token above the reserve is there and no pause is in force."""

    capacity: float
    rate: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    margin: float = MARGIN
    in_flight: int = 0  # most requests that may be sent and not yet arrived at once
    rate_margin: float = RATE_MARGIN

    def __post_init__(self) -> None:
        self.tokens = self.capacity
        self.stamp = self.clock()
        self.paused_until = self.stamp
        self.lock = threading.Lock()

    @property
    def reserve(self) -> float:
        return max(self.capacity * self.margin, float(self.in_flight))

    def _refill(self) -> None:
        now = self.clock()
        earned = (now - self.stamp) * self.rate * (1 - self.rate_margin)
        self.tokens = min(self.capacity, self.tokens + max(0.0, earned))
        self.stamp = now

    def take(self) -> float:
        """Spend one token, waiting if needed; returns the seconds waited."""
        waited = 0.0
        while True:
            with self.lock:
                self._refill()
                pause = self.paused_until - self.stamp
                if pause <= 0:
                    if self.tokens - 1 >= self.reserve - EPSILON:
                        self.tokens -= 1
                        return waited
                    short = self.reserve + 1 - self.tokens
                    pause = short / (self.rate * (1 - self.rate_margin))
            self.sleep(pause)
            waited += pause

    def observe_remaining(self, remaining: int) -> None:
        """The server says only ``remaining`` are left: never believe we have more."""
        with self.lock:
            self._refill()
            self.tokens = min(self.tokens, float(remaining))

    def pause(self, seconds: float) -> None:
        """The server refused (429): it has nothing left, and wants ``seconds`` of quiet."""
        with self.lock:
            self._refill()
            self.tokens = 0.0
            wait = min(max(0.0, seconds), PAUSE_CAP)
            self.paused_until = max(self.paused_until, self.stamp + wait)


class Pacer:
    """One bucket per operation kind, for one subscription, shared by every worker."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        *,
        limits: Mapping[str, tuple[float, float]] = LIMITS,
        margin: float = MARGIN,
        in_flight: int = 0,
        rate_margin: float = RATE_MARGIN,
    ) -> None:
        self.buckets = {
            kind: Bucket(
                burst, rate, clock, sleep, margin, min(in_flight, int(burst) - 1), rate_margin
            )
            for kind, (burst, rate) in limits.items()
        }

    def before(self, method: str) -> float:
        return self.buckets[kind_of(method)].take()

    def after(self, headers: Mapping[str, str]) -> None:
        for kind, bucket in self.buckets.items():
            value = headers.get(f"x-ms-ratelimit-remaining-subscription-{kind}")
            if value is not None and value.strip().isdigit():
                bucket.observe_remaining(int(value))

    def throttled(self, method: str, retry_after: float) -> None:
        """A 429 to ``method``: every worker of that kind waits ``retry_after`` seconds."""
        self.buckets[kind_of(method)].pause(retry_after)
