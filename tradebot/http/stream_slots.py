"""At most N live streams per user at once, counted across replicas in Redis.

Each open stream holds a slot: a member of the user's sorted set, scored with the moment its lease
runs out (Redis's own clock, so replicas' clocks do not matter). The replica holding slots extends
their leases periodically, in one script call for all of them; a replica that dies stops extending,
and its slots lapse within SLOT_TTL_MS instead of counting against the user forever. Taking a slot
first drops the lapsed ones, then counts, then adds, in one script: concurrent connects cannot
overshoot the cap.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass

import redis.asyncio as aioredis

from tradebot.runtime.tasks import cancel_and_wait
from tradebot.security.redis_guard import REDIS_ERRORS

log = logging.getLogger(__name__)

SLOT_TTL_MS = 30_000
REFRESH_S = 10.0

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS[1] the user's set; ARGV: cap, ttl ms, member. 1 if taken, 0 if the user is at the cap.
_ACQUIRE = _NOW_MS + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""

# KEYS: one user set per slot; ARGV[1] ttl ms, then the slots' members in KEYS' order. A slot that
# lapsed meanwhile (XX) is not brought back: it may have been given to another stream.
_REFRESH = _NOW_MS + """
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', key, ttl)
end
return #KEYS
"""


@dataclass(frozen=True, slots=True)
class Slot:
    user_id: int
    member: str


class StreamSlots:
    def __init__(self, redis: aioredis.Redis, prefix: str, cap: int, *, ttl_ms: int = SLOT_TTL_MS,
                 refresh_s: float = REFRESH_S) -> None:
        self._redis = redis
        self._prefix = prefix
        self.cap = cap
        self._ttl_ms = ttl_ms
        self._refresh_s = refresh_s
        self._held: set[Slot] = set()
        self._acquire = redis.register_script(_ACQUIRE)
        self._refresh = redis.register_script(_REFRESH)
        self._task: asyncio.Task[None] | None = None

    def key(self, user_id: int) -> str:
        return f"{self._prefix}:streams:{user_id}"

    async def acquire(self, user_id: int) -> Slot | None:
        """A slot, or None when the user holds the cap already. Redis errors propagate: no stream
        can be served without Redis anyway."""
        slot = Slot(user_id, secrets.token_hex(8))
        taken = await self._acquire(keys=[self.key(user_id)], args=[self.cap, self._ttl_ms, slot.member])
        if not int(taken):
            return None
        self._held.add(slot)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._keep_alive(), name="stream-slots-refresh")
        return slot

    async def release(self, slot: Slot) -> None:
        self._held.discard(slot)
        try:
            await self._redis.zrem(self.key(slot.user_id), slot.member)
        except REDIS_ERRORS as e:
            log.warning("stream slot not released; it lapses by itself", extra={"error": str(e)})

    def __len__(self) -> int:
        return len(self._held)

    async def _keep_alive(self) -> None:
        while self._held:
            await asyncio.sleep(self._refresh_s)
            held = list(self._held)
            if not held:
                break
            try:
                await self._refresh(keys=[self.key(s.user_id) for s in held],
                                    args=[self._ttl_ms, *(s.member for s in held)])
            except REDIS_ERRORS as e:
                log.warning("stream slots not extended", extra={"count": len(held), "error": str(e)})

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
