"""Rate limits shared by all replicas in Redis (GCRA, one atomic script), with a local fallback.

GCRA (the generic cell rate algorithm) is a token bucket kept as a single timestamp per key: a
limit of `count` per `period_s` lets `count` requests through at once and then one every
`period_s / count`. The Redis script reads Redis' own clock, so replicas with drifting clocks still
agree. When Redis is unreachable the same algorithm runs in this process (DESIGN.md: degrade to a
local limit, neither fail open nor closed); each replica then enforces the limit on its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import redis.asyncio as aioredis

from tradebot.security.redis_guard import REDIS_ERRORS, RedisGuard

# KEYS[1] the bucket; ARGV[1] emission interval ms, ARGV[2] period ms (the burst window).
# Returns 0 when allowed, else the milliseconds until the next request would be allowed.
_GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - period
if now < allow_at then
  return math.max(1, math.ceil(allow_at - now))
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, math.ceil(new_tat - now)))
return 0
"""

# KEYS[1] the bucket; ARGV[1] emission interval ms. Gives one request back (a login that succeeded).
_REFUND_LUA = """
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local new_tat = tat - tonumber(ARGV[1])
if new_tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, math.ceil(new_tat - now)))
end
return 0
"""

# A Redis call on the login path must not hang a request: past this, use the local limiter.
REDIS_TIMEOUT_S = 0.5
# Bounds the fallback's memory when many distinct clients (addresses) arrive during an outage.
LOCAL_MAX_KEYS = 100_000


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    count: int
    period_s: float

    @property
    def interval_s(self) -> float:
        return self.period_s / self.count


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_s: float = 0.0
    local: bool = False  # counted by this process's fallback, not in Redis: a refund goes there too

    @property
    def retry_after_header(self) -> str:
        return retry_after_header(self.retry_after_s)


def retry_after_header(seconds: float) -> str:
    """A Retry-After value: whole seconds, rounded up (a client that waits that long is let in), at least 1."""
    return str(max(1, math.ceil(seconds)))


def subject_key(value: str) -> str:
    """A fixed-length, non-reversible key part: emails and addresses are not stored in Redis."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class LocalLimiter:
    """The same GCRA in process memory, for while Redis is down; bounded, oldest keys evicted."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = LOCAL_MAX_KEYS) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._tat: OrderedDict[str, float] = OrderedDict()

    def hit(self, key: str, limit: Limit) -> Decision:
        now = self._clock()
        tat = max(self._tat.get(key, now), now)
        new_tat = tat + limit.interval_s
        allow_at = new_tat - limit.period_s
        if now < allow_at:
            return Decision(False, allow_at - now)
        self._tat[key] = new_tat
        self._tat.move_to_end(key)
        while len(self._tat) > self._max_keys:
            self._tat.popitem(last=False)  # least recently used first
        return Decision(True)

    def refund(self, key: str, limit: Limit) -> None:
        tat = self._tat.get(key)
        if tat is None:
            return
        if tat - limit.interval_s <= self._clock():
            del self._tat[key]
        else:
            self._tat[key] = tat - limit.interval_s


class RateLimiter:
    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:ratelimit"
        self._script: Any = redis.register_script(_GCRA_LUA)
        self._refund: Any = redis.register_script(_REFUND_LUA)
        self._local = LocalLimiter(clock=clock)
        self._guard = RedisGuard("rate limits", clock=clock)

    @property
    def degraded(self) -> bool:
        return self._guard.degraded

    def _key(self, limit: Limit, subject: str) -> str:
        return f"{self._prefix}:{limit.name}:{subject_key(subject)}"

    async def hit(self, limit: Limit, subject: str) -> Decision:
        """Count one request by `subject` against `limit`."""
        key = self._key(limit, subject)
        if self._guard.should_try():
            try:
                async with asyncio.timeout(REDIS_TIMEOUT_S):
                    wait_ms = int(await self._script(keys=[key], args=[limit.interval_s * 1000, limit.period_s * 1000]))
            except REDIS_ERRORS as e:
                self._guard.failed(e)
            else:
                await self._guard.succeeded()
                return Decision(True) if wait_ms <= 0 else Decision(False, wait_ms / 1000)
        return replace(self._local.hit(key, limit), local=True)

    async def refund(self, limit: Limit, subject: str, counted: Decision) -> None:
        """Take back one request `hit` counted (`counted` is its answer), in the store that counted it:
        limits that count failures refund the successes."""
        key = self._key(limit, subject)
        if counted.local:
            self._local.refund(key, limit)
            return
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                await self._refund(keys=[key], args=[limit.interval_s * 1000])
        except REDIS_ERRORS as e:
            self._guard.failed(e)  # the success stays counted: a lost refund only errs on the safe side
