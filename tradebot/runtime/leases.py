"""Per-bot leases in Redis with fencing tokens (DESIGN.md "Cluster", invariant 1).

A lease is a key `…:lease:bot:<id>` holding the owner's replica id with a TTL, taken with SET NX PX.
Each acquisition takes a fencing token with INCR; the bot's PostgreSQL writes are conditional on
it (see bot_store), so the token, not the clock, protects against a paused owner. All of a
replica's leases are renewed together, one script call per RENEW_CHUNK of them. Locally, each lease has a renew
deadline well inside its TTL (Kubernetes' rule: renew deadline < lease duration): past it the
owner treats the lease as lost and stops the bot, before anyone else can have taken it.

No redis-py Lock objects: their thread-local token would be shared between tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import redis.asyncio as aioredis

from tradebot.runtime.clock import Clock

log = logging.getLogger(__name__)

# Renew every key we still own; returns, per key, 1 if renewed, 0 if not ours any more.
_RENEW = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_RELEASE_MANY = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then n = n + redis.call('DEL', key) end
end
return n
"""

# A fencing token above `floor`: after Redis lost its data, INCR would restart at 1 and fall
# behind the tokens PostgreSQL has already seen; the floor (the database's last token) keeps
# tokens increasing anyway.
_NEXT_FENCE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[1])
if current < floor then redis.call('SET', KEYS[1], floor) end
return redis.call('INCR', KEYS[1])
"""


RENEW_CHUNK = 500


@dataclass
class HeldLease:
    bot_id: int
    fence: int
    deadline: float  # monotonic seconds; past it the lease must be treated as lost


class LeaseManager:
    def __init__(self, redis: aioredis.Redis, prefix: str, replica_id: str, clock: Clock, *,
                 ttl_ms: int, renew_interval_ms: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self.replica_id = replica_id
        self._clock = clock
        self.ttl_ms = ttl_ms
        # Act on a missed renewal with a safety margin of two renew intervals before expiry.
        self.renew_deadline_s = max((ttl_ms - 2 * renew_interval_ms) / 1000, ttl_ms / 2000)
        self._held: dict[int, HeldLease] = {}
        self._keys: dict[int, str] = {}
        self._renew = self._redis.register_script(_RENEW)
        self._release = self._redis.register_script(_RELEASE)
        self._release_many = self._redis.register_script(_RELEASE_MANY)
        self._next_fence = self._redis.register_script(_NEXT_FENCE)
        self.renewals = 0
        self.last_renew_seconds = 0.0

    def lease_key(self, bot_id: int) -> str:
        return f"{self._prefix}:lease:bot:{bot_id}"

    def fence_key(self, bot_id: int) -> str:
        return f"{self._prefix}:fence:bot:{bot_id}"

    def held(self) -> dict[int, HeldLease]:
        return dict(self._held)

    def is_valid(self, bot_id: int, fence: int) -> bool:
        lease = self._held.get(bot_id)
        return lease is not None and lease.fence == fence and self._clock.monotonic() < lease.deadline

    async def acquire(self, bot_id: int, fence_floor: int) -> HeldLease | None:
        """Take the bot's lease if nobody holds it; None if another replica does."""
        started = self._clock.monotonic()
        ok = await self._redis.set(self.lease_key(bot_id), self.replica_id, nx=True, px=self.ttl_ms)
        if not ok:
            owner = await self._redis.get(self.lease_key(bot_id))
            if owner != self.replica_id:
                return None
            await self._redis.pexpire(self.lease_key(bot_id), self.ttl_ms)
        fence = int(await self._next_fence(keys=[self.fence_key(bot_id)], args=[fence_floor]))
        lease = HeldLease(bot_id, fence, started + self.renew_deadline_s)
        self._held[bot_id] = lease
        return lease

    async def renew_all(self) -> set[int]:
        """Renew every held lease, RENEW_CHUNK keys per script call; returns the bots whose lease is
        lost. Chunks, because one call for 10,000 keys holds the event loop for ~100 ms (building
        and parsing the command); short stretches let candles through in between."""
        if not self._held:
            return set()
        bots = list(self._held)
        started = self._clock.monotonic()
        lost: set[int] = set()
        for i in range(0, len(bots), RENEW_CHUNK):
            chunk = bots[i:i + RENEW_CHUNK]
            chunk_started = self._clock.monotonic()
            results = await self._renew(keys=[self._key(b) for b in chunk], args=[self.replica_id, self.ttl_ms])
            for bot_id, renewed in zip(chunk, results, strict=True):
                if renewed:
                    lease = self._held.get(bot_id)
                    if lease is not None:
                        lease.deadline = chunk_started + self.renew_deadline_s
                else:
                    lost.add(bot_id)
                    self.drop([bot_id])
        self.renewals += 1
        self.last_renew_seconds = self._clock.monotonic() - started
        return lost

    def _key(self, bot_id: int) -> str:
        key = self._keys.get(bot_id)
        if key is None:
            key = self._keys[bot_id] = self.lease_key(bot_id)
        return key

    def expired(self) -> set[int]:
        """Leases whose renew deadline passed without a renewal (Redis unreachable, loop stalled)."""
        now = self._clock.monotonic()
        return {b for b, lease in self._held.items() if now >= lease.deadline}

    def drop(self, bot_ids: Iterable[int]) -> None:
        for b in bot_ids:
            self._held.pop(b, None)
            self._keys.pop(b, None)

    async def release(self, bot_id: int) -> None:
        self.drop([bot_id])
        try:
            await self._release(keys=[self.lease_key(bot_id)], args=[self.replica_id])
        except (OSError, aioredis.RedisError) as e:
            log.warning("could not release a lease; it will expire", extra={"bot_id": bot_id, "error": str(e)})

    async def release_all(self, bot_ids: Iterable[int] | None = None) -> None:
        """Release many leases in one call (a replica shutting down); ours only, by value."""
        bots = list(self._held if bot_ids is None else bot_ids)
        self.drop(bots)
        if not bots:
            return
        try:
            await self._release_many(keys=[self.lease_key(b) for b in bots], args=[self.replica_id])
        except (OSError, aioredis.RedisError) as e:
            log.warning("could not release leases; they will expire", extra={"count": len(bots), "error": str(e)})
