"""The one retry delay policy: capped exponential backoff with full jitter.

Attempt n (0-based) waits uniform(0, min(cap, base * 2**n)) seconds ("full jitter", AWS
Architecture Blog, *Exponential Backoff And Jitter*). Without jitter every replica that lost Redis
or the exchange at the same moment would come back at the same moments too, and hammer the server
in lockstep; with it the retries spread over the whole window.

Pure: the random source is passed in (`rng() -> [0, 1)`), so tests are deterministic, and the
sleeping is the caller's (with its own injected clock). Bottom layer: imports nothing of tradebot.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

Rng = Callable[[], float]

# 2**30 times any sensible base is far past every cap: clamping the exponent keeps a retry counter
# that ran for days from overflowing a float.
_MAX_EXPONENT = 30


def no_jitter() -> float:
    """An `rng` that always takes the ceiling: deterministic delays (tests, benchmarks)."""
    return 1.0


@dataclass(frozen=True, slots=True)
class Backoff:
    """Full-jitter exponential backoff: attempt n waits uniform(0, min(cap, base * 2**n))."""

    base: float = 0.2
    cap: float = 10.0

    def __post_init__(self) -> None:
        if not (self.base > 0 and self.cap >= self.base):
            raise ValueError(f"backoff needs 0 < base <= cap, got base={self.base} cap={self.cap}")

    def ceiling(self, attempt: int) -> float:
        """The longest wait of attempt `attempt` (0-based)."""
        return min(self.cap, self.base * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT))

    def delay(self, attempt: int, rng: Rng) -> float:
        return rng() * self.ceiling(attempt)


@dataclass(slots=True)
class Retrier:
    """The attempt counter of one retry loop: `next_delay()` after a failure, `reset()` after a success."""

    policy: Backoff
    rng: Rng = field(default=random.random)
    attempt: int = 0

    def next_delay(self) -> float:
        delay = self.policy.delay(self.attempt, self.rng)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
