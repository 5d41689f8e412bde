"""Leader election: one Redis key taken with SET NX PX and kept with a compare-and-extend script.

The leader is only the replica that publishes the bot → replica map; bot safety never depends on
it (per-bot leases and fencing tokens do). Still, two replicas publishing different maps would make
bots bounce, so a leader that cannot renew steps down at its local renew deadline, which comes well
before the key can expire (Kubernetes' rule: renew deadline < lease duration), and the publish
script itself checks the key, so a paused ex-leader's late write is refused.
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis

from tradebot.runtime.clock import Clock

log = logging.getLogger(__name__)

# Extend only if the key is still ours: a plain PEXPIRE could extend someone else's leadership.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def leader_key(prefix: str) -> str:
    return f"{prefix}:leader"


def renew_deadline_s(ttl_ms: int, renew_interval_ms: int) -> float:
    """How long after a successful renewal the leadership may still be trusted locally.

    Two renew intervals of margin before the key's expiry, never less than half the TTL (the same
    rule as the bot leases).
    """
    return max((ttl_ms - 2 * renew_interval_ms) / 1000, ttl_ms / 2000)


class LeaderElection:
    def __init__(self, redis: aioredis.Redis, prefix: str, replica_id: str, clock: Clock, *,
                 ttl_ms: int, renew_interval_ms: int, key: str | None = None) -> None:
        self._redis = redis
        # Another key: the same election for another single-replica job (the Telegram poller).
        self.key = key or leader_key(prefix)
        self.replica_id = replica_id
        self._clock = clock
        self.ttl_ms = ttl_ms
        self.renew_deadline_s = renew_deadline_s(ttl_ms, renew_interval_ms)
        self._extend = redis.register_script(_EXTEND)
        self._release = redis.register_script(_RELEASE)
        self._leading = False
        self._deadline = 0.0
        self.terms = 0  # times this replica became leader
        self.step_downs = 0

    @property
    def is_leader(self) -> bool:
        """Leader only until the local deadline: past it, act as if the key were already lost."""
        return self._leading and self._clock.monotonic() < self._deadline

    def check_deadline(self) -> None:
        """Step down if the renew deadline passed without a renewal (Redis gone, loop stalled, paused)."""
        if self._leading and self._clock.monotonic() >= self._deadline:
            self._step_down("renew deadline passed")

    async def tick(self) -> bool:
        """Renew our leadership, or try to take it if nobody holds it. Redis errors propagate."""
        self.check_deadline()
        started = self._clock.monotonic()
        if self._leading:
            if await self._extend(keys=[self.key], args=[self.replica_id, self.ttl_ms]):
                self._deadline = started + self.renew_deadline_s
            else:
                self._step_down("the leader key is no longer ours")
        elif await self._redis.set(self.key, self.replica_id, nx=True, px=self.ttl_ms):
            self._leading = True
            self._deadline = started + self.renew_deadline_s
            self.terms += 1
            log.info("took the lease", extra={"replica_id": self.replica_id, "key": self.key})
        return self.is_leader

    def _step_down(self, why: str) -> None:
        self._leading = False
        self.step_downs += 1
        log.warning("giving up the lease: %s", why, extra={"replica_id": self.replica_id, "key": self.key})

    async def release(self) -> None:
        """Give the key up (graceful shutdown) so another replica leads at once."""
        was = self._leading
        self._leading = False
        if was:
            await self._release(keys=[self.key], args=[self.replica_id])


async def current_leader(redis: aioredis.Redis, prefix: str) -> str | None:
    value = await redis.get(leader_key(prefix))
    return None if value is None else str(value)
