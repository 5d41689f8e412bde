"""The coordinator in-process against the real Redis: election, published map, hand-over on leave,
step-down at the renew deadline (injected clock), and the atomic refusal of a deposed leader's map."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.integration.runtime_helpers import eventually
from tradebot.runtime.clock import Clock
from tradebot.runtime.cluster import ClusterCoordinator, ClusterTiming, ReplicaInfo
from tradebot.runtime.cluster.assignment import moved
from tradebot.runtime.cluster.leader import LeaderElection, leader_key
from tradebot.runtime.cluster.membership import live_replicas
from tradebot.runtime.cluster.published_map import MapStore

BOTS = set(range(1, 31))
TIMING = ClusterTiming(heartbeat_interval_ms=100, lease_ttl_ms=1000, renew_interval_ms=100)


class StepClock:
    """Monotonic time moved by the test; wall time fixed."""

    def __init__(self) -> None:
        self.t = 1000.0

    def now_ms(self) -> int:
        return 1_767_225_600_000

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


async def _bots() -> set[int]:
    return set(BOTS)


def _coordinator(redis: aioredis.Redis, prefix: str, name: str, clock: Clock | None = None) -> ClusterCoordinator:
    from tradebot.runtime.clock import SystemClock

    info = ReplicaInfo(name, "2026-01-01T00:00:00.000000Z", "host", 1)
    return ClusterCoordinator(redis=redis, prefix=prefix, info=info, clock=clock or SystemClock(),
                              bots=_bots, timing=TIMING)


@pytest.fixture
async def coordinators(redis_client: aioredis.Redis, redis_prefix: str) -> AsyncIterator[list[ClusterCoordinator]]:
    made: list[ClusterCoordinator] = []
    yield made
    for c in made:
        await c.close()


async def test_one_leader_and_a_partition_everyone_agrees_on(
    redis_client: aioredis.Redis, redis_prefix: str, coordinators: list[ClusterCoordinator]
) -> None:
    for name in ("a", "b", "c"):
        c = _coordinator(redis_client, redis_prefix, name)
        coordinators.append(c)
        await c.start()

    async def agreed() -> bool:
        return all(c.map_fresh and set(c.published.members) == {"a", "b", "c"} for c in coordinators) and len(
            {c.published.epoch for c in coordinators}) == 1

    await eventually(agreed, what="a fresh map on every replica")
    assert sum(c.is_leader for c in coordinators) == 1
    parts = [c.assignment(BOTS) for c in coordinators]
    assert set().union(*parts) == BOTS and sum(len(p) for p in parts) == len(BOTS)
    assert all(9 <= len(p) <= 11 for p in parts), [len(p) for p in parts]
    assert {r.id for r in await live_replicas(redis_client, redis_prefix)} == {"a", "b", "c"}

    # The leader leaves: it publishes the map without itself, and another one leads at once.
    leader = next(c for c in coordinators if c.is_leader)
    mine = leader.assignment(BOTS)
    before = dict(leader.published.bots)
    await leader.leave()
    assert leader.assignment(BOTS) == set()
    rest = [c for c in coordinators if c is not leader]

    async def taken_over() -> bool:
        return sum(c.is_leader for c in rest) == 1 and all(
            c.map_fresh and set(c.published.members) == {r.replica_id for r in rest} for c in rest
        ) and len({c.published.epoch for c in rest}) == 1

    await eventually(taken_over, what="a new leader and a map without the leaver")
    parts = [c.assignment(BOTS) for c in rest]
    assert set().union(*parts) == BOTS and not parts[0] & parts[1]
    # The leaver's bots moved, and hardly any other (the load bound may shift one).
    assert mine <= moved(before, rest[0].published.bots)
    assert len(moved(before, rest[0].published.bots) - mine) <= 1
    assert leader.stats.publications >= 1


async def test_a_leader_that_cannot_renew_steps_down_before_the_key_expires(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    clock = StepClock()
    election = LeaderElection(redis_client, redis_prefix, "a", clock, ttl_ms=5000, renew_interval_ms=1000)
    assert await election.tick() and election.is_leader
    assert election.renew_deadline_s == 3.0
    clock.t += 2.9
    assert election.is_leader
    clock.t += 0.2  # past the renew deadline with no renewal: no longer leader, though the key lives on
    assert not election.is_leader
    assert await redis_client.pttl(leader_key(redis_prefix)) > 1000
    election.check_deadline()
    assert election.step_downs == 1
    # Someone else's key is never extended or released by us.
    await redis_client.set(leader_key(redis_prefix), "b", px=5000)
    assert not await election.tick()
    await election.release()
    assert await redis_client.get(leader_key(redis_prefix)) == "b"


async def test_a_deposed_leader_cannot_overwrite_the_map(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    store = MapStore(redis_client, redis_prefix)
    await redis_client.set(leader_key(redis_prefix), "new", px=5000)
    assert await store.publish("new", ("new",), {1: "new"}, 0) == 1
    assert await store.publish("old", ("old",), {1: "old"}, 0) == 0
    published = await store.read()
    assert published.leader == "new" and dict(published.bots) == {1: "new"} and published.epoch == 1


async def test_without_a_leader_each_replica_computes_the_same_partition(
    redis_client: aioredis.Redis, redis_prefix: str, coordinators: list[ClusterCoordinator]
) -> None:
    for name in ("a", "b"):
        c = _coordinator(redis_client, redis_prefix, name)
        coordinators.append(c)
        await c.start()
    await eventually(lambda: _all_fresh(coordinators), what="a fresh map")
    # The leader key vanishes (Redis restarted, say): the map is stale, the fallback takes over.
    for c in coordinators:
        c.leader_id = None
    assert not any(c.map_fresh for c in coordinators)
    parts = [c.assignment(BOTS) for c in coordinators]
    assert set().union(*parts) == BOTS and not parts[0] & parts[1]


async def _all_fresh(coordinators: list[ClusterCoordinator]) -> bool:
    return all(c.map_fresh and len(c.published.members) == len(coordinators) for c in coordinators)


async def test_redis_losing_its_keys_moves_no_bot(
    redis_client: aioredis.Redis, redis_prefix: str, coordinators: list[ClusterCoordinator]
) -> None:
    """Membership keys, leader key and map all vanish at once (Redis restarted empty): the replicas
    re-register within a heartbeat, and meanwhile nobody publishes, or falls back to, a map without
    the others, which would send every bot away and back."""
    for name in ("a", "b", "c"):
        c = _coordinator(redis_client, redis_prefix, name)
        coordinators.append(c)
        await c.start()
    await eventually(lambda: _all_fresh(coordinators), what="a fresh map")
    before = [c.assignment(BOTS) for c in coordinators]
    moved_before = sum(c.stats.moved_bots for c in coordinators)
    for _ in range(5):
        keys = [k async for k in redis_client.scan_iter(match=f"{redis_prefix}:*")]
        await redis_client.delete(*keys)
        # Every answer in between, published or computed locally, keeps each bot where it was.
        for _ in range(20):
            assert [c.assignment(BOTS) for c in coordinators] == before
            await asyncio.sleep(TIMING.heartbeat_interval_ms / 1000 / 4)
        await eventually(lambda: _all_fresh(coordinators), what="a fresh map again")
    assert [c.assignment(BOTS) for c in coordinators] == before
    assert sum(c.stats.moved_bots for c in coordinators) == moved_before
