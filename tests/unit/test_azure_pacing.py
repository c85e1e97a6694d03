"""Pacing to Resource Manager's buckets: a margin below each, and one 429 pausing every
worker that shares the pacer (not one 429 per worker during the Retry-After)."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from reconciler.providers.azure import arm
from reconciler.providers.azurecommon import throttle


class Clock:
    """Time that moves only when someone sleeps; safe across threads."""

    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def exchange(method: str, status: int, headers: dict[str, str]) -> tuple[Any, Any]:
    """A (request, response) pair shaped like azure-core's pipeline objects."""
    request = SimpleNamespace(http_request=SimpleNamespace(method=method))
    response = SimpleNamespace(http_response=SimpleNamespace(status_code=status, headers=headers))
    return request, response


def test_the_pacer_never_spends_the_last_tenth_of_a_bucket() -> None:
    clock = Clock()
    pacer = throttle.Pacer(clock=clock, sleep=clock.sleep)
    free = 0
    while pacer.before("GET") == 0.0:
        free += 1
    assert free == 225  # 250 burst less the 25-token reserve
    assert pacer.buckets["reads"].tokens >= 25 - 1e-6


def test_a_429_pauses_every_worker_sharing_the_pacer_until_retry_after() -> None:
    clock = Clock()
    pacer = throttle.Pacer(clock=clock, sleep=clock.sleep)
    policy = arm.PacingPolicy(pacer, log=lambda _line: None)
    request, response = exchange("GET", 429, {"Retry-After": "3"})
    policy.on_response(request, response)  # one worker is refused ...
    sent_at: list[float] = []

    def worker() -> None:
        pacer.before("GET")
        sent_at.append(clock())

    others = [threading.Thread(target=worker) for _ in range(4)]
    for t in others:
        t.start()
    for t in others:
        t.join()
    assert len(sent_at) == 4
    assert min(sent_at) >= 3.0  # ... and no other reader sends before its Retry-After
    assert pacer.before("PATCH") == 0.0  # writes draw from another bucket: not paused


def test_a_429_without_retry_after_still_pauses_for_a_second() -> None:
    clock = Clock()
    pacer = throttle.Pacer(clock=clock, sleep=clock.sleep)
    request, response = exchange("PUT", 429, {})
    arm.PacingPolicy(pacer, log=lambda _line: None).on_response(request, response)
    assert pacer.before("PUT") >= 1.0


@pytest.mark.parametrize("margin", [0.0, 0.1])
def test_the_margin_is_a_setting_of_the_pacer(margin: float) -> None:
    clock = Clock()
    pacer = throttle.Pacer(
        clock=clock, sleep=clock.sleep, limits={"reads": (10, 10)}, margin=margin
    )
    free = 0
    while pacer.before("GET") == 0.0:
        free += 1
    assert free == round(10 * (1 - margin))


def test_an_absurd_retry_after_pauses_the_others_at_most_a_minute() -> None:
    clock = Clock()
    pacer = throttle.Pacer(clock=clock, sleep=clock.sleep)
    pacer.throttled("GET", 86_400.0)
    assert pacer.before("GET") == pytest.approx(throttle.PAUSE_CAP)  # refilled meanwhile


def test_a_429_about_one_busy_resource_does_not_pause_the_others() -> None:
    clock = Clock()
    pacer = throttle.Pacer(clock=clock, sleep=clock.sleep)
    busy = {"Retry-After": "1", "x-ms-ratelimit-remaining-subscription-writes": "150"}
    request, response = exchange("PATCH", 429, busy)  # RetryableErrorDueToAnotherOperation
    arm.PacingPolicy(pacer, log=lambda _line: None).on_response(request, response)
    assert pacer.before("PATCH") == 0.0
