"""Addresses an account signed in from: they skip the account's ceiling of failed attempts.

A ceiling on one account's failures over all addresses bounds a distributed guesser, but anyone
who reaches it would also lock the owner out. The owner usually signs in from an address they used
before (OWASP's "device cookie" idea, keyed by address since API clients keep no cookies), so such
an address is remembered for `ttl_s` after each successful sign-in and is held only to its own
per-(account, address) budget. In Redis, shared by replicas, under a hash of the pair (neither the
email nor the address is stored); without Redis, in a bounded map of this process.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable

import redis.asyncio as aioredis

from tradebot.security.rate_limit import LOCAL_MAX_KEYS, REDIS_TIMEOUT_S, subject_key
from tradebot.security.redis_guard import REDIS_ERRORS, RedisGuard

KNOWN_ADDRESS_TTL_S = 30 * 24 * 3600


class KnownAddresses:
    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        *,
        ttl_s: int = KNOWN_ADDRESS_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        max_local: int = LOCAL_MAX_KEYS,
    ) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:known-address"
        self._ttl_s = ttl_s
        self._clock = clock
        self._max_local = max_local
        # Written on every sign-in, read only while Redis is down: the fallback knows this replica's.
        self._local: OrderedDict[str, float] = OrderedDict()
        self._guard = RedisGuard("known addresses", clock=clock)

    def _key(self, account: str, address: str) -> str:
        return f"{self._prefix}:{subject_key(account + chr(10) + address)}"

    async def remember(self, account: str, address: str) -> None:
        key = self._key(account, address)
        self._local[key] = self._clock() + self._ttl_s
        self._local.move_to_end(key)
        while len(self._local) > self._max_local:
            self._local.popitem(last=False)
        if self._guard.should_try():
            try:
                async with asyncio.timeout(REDIS_TIMEOUT_S):
                    await self._redis.set(key, b"1", ex=self._ttl_s)
            except REDIS_ERRORS as e:
                self._guard.failed(e)
            else:
                await self._guard.succeeded()

    async def is_known(self, account: str, address: str) -> bool:
        key = self._key(account, address)
        if self._guard.should_try():
            try:
                async with asyncio.timeout(REDIS_TIMEOUT_S):
                    found = await self._redis.exists(key)
            except REDIS_ERRORS as e:
                self._guard.failed(e)
            else:
                await self._guard.succeeded()
                return bool(found)
        expires = self._local.get(key)
        return expires is not None and expires > self._clock()
