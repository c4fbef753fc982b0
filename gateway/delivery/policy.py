"""When to try a failed delivery again: exponential backoff with jitter, then give up (pure)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class RetryPolicy:
    """Attempt n waits ``base * 2**(n-1)`` seconds, at most ``cap``, spread by +-``jitter``."""

    base_seconds: float = 5.0
    cap_seconds: float = 3600.0
    jitter: float = 0.2
    lease_seconds: float = 120.0  # an in-delivery claim older than this is taken to be a dead worker's
    visibility_seconds: float = 300.0  # a fetched, unacknowledged pull message is offered again after this

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> timedelta:
        raw = min(self.cap_seconds, self.base_seconds * 2 ** max(attempt - 1, 0))
        spread = 1.0 + self.jitter * (2.0 * rand() - 1.0)
        return timedelta(seconds=raw * spread)
