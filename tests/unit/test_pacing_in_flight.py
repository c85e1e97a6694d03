"""The pacer's reserve covers every request in flight, so no pattern of network or
scheduling delay can bunch enough arrivals at Resource Manager to draw a 429.

A simulation on a virtual clock: ``workers`` send requests as the pacer lets them, each
reaching the server after its own delay; the server is the fake's token bucket. With the
reserve at least the pool's width there is never a refusal, whatever the delays; with
only the tenth-of-a-burst reserve, one slow first wave is enough for refusals (the flake
seen in CI: a 30-token bucket, 16 workers, TLS handshakes stretched on a loaded machine).
"""

from __future__ import annotations

import heapq

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.providers.azurecommon import throttle
from tests.fakes.arm import BucketSpec, TokenBucket
from tests.unit.test_azure_pacing import Clock

BURST, RATE, REQUESTS = 30, 60, 150


def refusals(
    delays: list[float], workers: int, in_flight: int, rate_margin: float = throttle.RATE_MARGIN
) -> int:
    """How many of REQUESTS reads the server refuses when request i takes delays[i] to arrive."""
    clock = Clock()
    pacer = throttle.Pacer(
        clock=clock,
        sleep=clock.sleep,
        limits={"reads": (BURST, RATE)},
        in_flight=in_flight,
        rate_margin=rate_margin,
    )
    free = [0.0] * workers  # when each worker is next free to send
    arrivals: list[float] = []
    for delay in delays:
        ready = heapq.heappop(free)
        clock.now = max(clock.now, ready)
        pacer.before("GET")
        arrivals.append(clock.now + delay)
        heapq.heappush(free, arrivals[-1] + 0.001)  # the answer comes straight back
    server = TokenBucket(BucketSpec(BURST, RATE), 0.0)
    return sum(not server.take(t)[0] for t in sorted(arrivals))


@settings(max_examples=200, deadline=None)
@given(
    workers=st.integers(1, 25),
    delays=st.lists(st.floats(0.0, 1.0), min_size=REQUESTS, max_size=REQUESTS),
)
def test_no_delay_pattern_draws_a_429_when_the_reserve_covers_the_pool(
    workers: int, delays: list[float]
) -> None:
    assert refusals(delays, workers, in_flight=workers) == 0


@settings(max_examples=100, deadline=None)
@given(
    workers=st.integers(1, 25),
    delays=st.lists(st.floats(0.0, 1.0), min_size=REQUESTS, max_size=REQUESTS),
)
def test_the_reserve_alone_suffices_even_refilling_at_the_servers_full_rate(
    workers: int, delays: list[float]
) -> None:
    """Why the rate margin can be small: it is slack, not what prevents bunching."""
    assert refusals(delays, workers, in_flight=workers, rate_margin=0.0) == 0


def test_a_slow_first_wave_draws_429s_when_the_reserve_is_smaller_than_the_pool() -> None:
    delays = [0.3] * 16 + [0.0] * (REQUESTS - 16)
    assert refusals(delays, workers=16, in_flight=0) > 0
    assert refusals(delays, workers=16, in_flight=16) == 0


def test_the_reserve_is_the_larger_of_the_margin_and_the_pool() -> None:
    assert throttle.Pacer(in_flight=16).buckets["reads"].reserve == 25.0
    assert throttle.Pacer(in_flight=40).buckets["reads"].reserve == 40.0
    small = throttle.Pacer(limits={"reads": (10, 10)}, in_flight=64).buckets["reads"]
    assert small.reserve == 9.0  # a bucket smaller than the pool still lets one through
