"""Per-endpoint exponential backoff after a failed reconcile. Pure.

An endpoint whose apply (or plan) failed waits ``base * 2**(n-1)`` seconds after its
n-th failure in a row, at most ``cap``; the others go on. A success clears it. The
key ``MANIFEST`` stands for a failure before any endpoint is known (the manifest does
not load), which holds back the whole loop the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reconciler import model

MANIFEST = "*"  # not an endpoint name: the schema's names are [a-z0-9-]


@dataclass(frozen=True, slots=True)
class Policy:
    base: float = 10.0  # seconds after a first failure: a flaky read gets a quick retry
    cap: float = 900.0  # 15 minutes: a broken endpoint is still retried a few times an hour

    def delay(self, failures: int) -> float:
        return min(self.cap, self.base * 2.0 ** max(0, failures - 1))


@dataclass(frozen=True, slots=True)
class Failing:
    failures: int
    retry_at: float
    reason: str


State = Mapping[str, Failing]
EMPTY: State = model.frozen_map()


def failed(state: State, names: Iterable[str], *, now: float, reason: str, policy: Policy) -> State:
    """``state`` after ``names`` failed at ``now``."""
    out = dict(state)
    for name in names:
        n = (state[name].failures if name in state else 0) + 1
        out[name] = Failing(n, now + policy.delay(n), reason)
    return model.frozen_map(out)


def succeeded(state: State, names: Iterable[str]) -> State:
    """``state`` after ``names`` reconciled without failure."""
    done = set(names)
    return model.frozen_map({k: v for k, v in state.items() if k not in done})


def waiting(state: State, now: float) -> frozenset[str]:
    """Who is still backing off at ``now``."""
    return frozenset(k for k, v in state.items() if v.retry_at > now)


def due(state: State, now: float) -> frozenset[str]:
    """Who failed and may be retried at ``now``."""
    return frozenset(k for k, v in state.items() if v.retry_at <= now)
