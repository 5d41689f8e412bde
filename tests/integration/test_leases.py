"""Bot leases against a real Redis: exclusive, renewed in one call, lost when taken, fenced upward."""

from __future__ import annotations

import redis.asyncio as aioredis

from tradebot.runtime.clock import SystemClock
from tradebot.runtime.leases import LeaseManager


def _manager(redis: aioredis.Redis, prefix: str, replica: str, ttl_ms: int = 2000) -> LeaseManager:
    return LeaseManager(redis, prefix, replica, SystemClock(), ttl_ms=ttl_ms, renew_interval_ms=ttl_ms // 5)


async def test_a_lease_is_exclusive_and_each_acquisition_takes_a_new_fence(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    a, b = _manager(redis_client, redis_prefix, "a"), _manager(redis_client, redis_prefix, "b")
    first = await a.acquire(1, fence_floor=0)
    assert first is not None and first.fence == 1
    assert await b.acquire(1, fence_floor=0) is None
    await a.release(1)
    second = await b.acquire(1, fence_floor=0)
    assert second is not None and second.fence == 2
    assert a.is_valid(1, 1) is False and b.is_valid(1, 2) is True


async def test_renewal_reports_leases_taken_over(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    a = _manager(redis_client, redis_prefix, "a")
    for bot in (1, 2, 3):
        assert await a.acquire(bot, 0) is not None
    # Bot 2's lease expired and another replica took it.
    await redis_client.set(a.lease_key(2), "b")
    assert await a.renew_all() == {2}
    assert set(a.held()) == {1, 3}
    ttl = await redis_client.pttl(a.lease_key(1))
    assert 1000 < ttl <= 2000


async def test_fences_stay_above_the_database_after_redis_lost_its_data(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    a = _manager(redis_client, redis_prefix, "a")
    lease = await a.acquire(5, fence_floor=41)  # PostgreSQL has seen token 41 already
    assert lease is not None and lease.fence == 42


async def test_the_renew_deadline_comes_before_expiry(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    a = _manager(redis_client, redis_prefix, "a", ttl_ms=5000)
    assert a.renew_deadline_s == 3.0  # TTL 5 s, renew every 1 s: act 2 renewals before expiry
    lease = await a.acquire(9, 0)
    assert lease is not None and not a.expired()
    lease.deadline = 0  # as if no renewal succeeded for longer than the deadline
    assert a.expired() == {9}
