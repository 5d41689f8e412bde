"""A small circuit breaker around Redis for the security paths that have a fallback.

When a Redis call fails, callers use their fallback for a short while instead of paying a
connection timeout on every request; the first call after that tries Redis again. The change of
state is logged once each way (degraded, recovered), not once per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import redis.exceptions

log = logging.getLogger(__name__)

# What "Redis is unreachable or misbehaving" looks like from redis-py, plus our own timeout.
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError, TimeoutError)


class RedisGuard:
    def __init__(
        self,
        name: str,
        *,
        retry_after_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_recover: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._name = name
        self._retry_after_s = retry_after_s
        self._clock = clock
        self._down_until: float | None = None
        self._on_recover = on_recover

    @property
    def degraded(self) -> bool:
        return self._down_until is not None

    def should_try(self) -> bool:
        return self._down_until is None or self._clock() >= self._down_until

    def failed(self, error: BaseException) -> None:
        if self._down_until is None:
            log.warning(
                "redis unavailable for %s; using the fallback until it answers again",
                self._name,
                extra={"error": type(error).__name__},
            )
        self._down_until = self._clock() + self._retry_after_s

    async def succeeded(self) -> None:
        if self._down_until is not None:
            self._down_until = None
            log.warning("redis available again for %s", self._name)
            if self._on_recover is not None:
                await self._on_recover()
