"""This replica's part in the cluster: heartbeat, leader election, the assignment it runs.

One loop per replica, every heartbeat interval (and at once when a notice arrives):
  1. heartbeat the membership key (first, so a slow database never makes a live replica look dead);
  2. renew or try to take the leadership;
  3. read the live members, the leader and, when it changed, the published map;
  4. as leader: map the active and winding-down bots onto the live members (rendezvous) and publish
     the map when it differs from what is published;
  5. tell the runtime to reconcile now when what this replica should run may have changed.
A second task listens on the cluster channel (new maps, replicas leaving, leases released) and on
the bot-command channel (a started bot should be assigned now), and wakes the loop.

When Redis loses its keys (restarted empty, or an outage longer than the membership TTL: our own
card is found missing at a heartbeat, or the published map is gone), every membership key may be
missing for up to a heartbeat while the replicas re-register. For a settling period the members of
the last map still count as members, and the last map stays the basis of the sticky placement:
otherwise the first leader would publish a map of itself alone and every other replica would hand
its bots over, only to take them back a second later. A connection that merely drops requests loses
no key and starts no settling period, so it can never hold back a real failover.

`assignment(candidates)` is what BotRuntime asks each reconcile. It answers from the published
map while that map comes from the current, live leader; otherwise (no leader yet, leader dead,
Redis restarted) it computes the same assignment locally over the candidates and the live members
it last read. That is safe
whatever the answer: the per-bot leases let at most one replica run a bot, and the fencing tokens
refuse a stale owner's writes. The map only decides who *tries*.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from tradebot.runtime.clock import Clock
from tradebot.runtime.cluster import assignment as rendezvous
from tradebot.runtime.cluster.leader import LeaderElection, current_leader
from tradebot.runtime.cluster.membership import Membership, ReplicaInfo, live_replicas
from tradebot.runtime.cluster.published_map import (
    EMPTY,
    MapStore,
    PublishedMap,
    cluster_channel,
    decode_notice,
    notify,
)
from tradebot.runtime.commands import command_channel
from tradebot.runtime.pubsub_listener import PubSubListener
from tradebot.runtime.supervised import BackgroundTasks
from tradebot.runtime.tasks import reraise_if_cancelling

log = logging.getLogger(__name__)

BotSource = Callable[[], Awaitable[set[int]]]
# How long a graceful "left" notice is remembered, to tell hand-overs from failovers.
_LEFT_MEMORY_S = 60.0


@dataclass(frozen=True, slots=True)
class ClusterTiming:
    heartbeat_interval_ms: int = 1000
    lease_ttl_ms: int = 5000  # the leader key's TTL
    renew_interval_ms: int = 1000

    @property
    def membership_ttl_ms(self) -> int:
        """Three missed heartbeats and a replica counts as gone."""
        return 3 * self.heartbeat_interval_ms

    @property
    def settle_ms(self) -> int:
        """After Redis was away or lost its keys: time for every live replica to heartbeat again."""
        return 2 * self.heartbeat_interval_ms


@dataclass
class ClusterStats:
    steps: int = 0
    publications: int = 0
    rebalances: int = 0  # publications that moved at least one bot between replicas
    moved_bots: int = 0
    failovers: int = 0  # bots moved off a replica that vanished without leaving (kill -9, partition)
    redis_down: bool = False


class ClusterCoordinator:
    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        prefix: str,
        info: ReplicaInfo,
        clock: Clock,
        bots: BotSource,
        timing: ClusterTiming | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self.info = info
        self.replica_id = info.id
        self._clock = clock
        self._bots = bots
        self.timing = timing or ClusterTiming()
        self.on_change = on_change
        self.membership = Membership(redis, prefix, info, ttl_ms=self.timing.membership_ttl_ms)
        self.election = LeaderElection(redis, prefix, info.id, clock, ttl_ms=self.timing.lease_ttl_ms,
                                       renew_interval_ms=self.timing.renew_interval_ms)
        self.store = MapStore(redis, prefix)
        self.stats = ClusterStats()
        self.live: tuple[str, ...] = (info.id,)
        self.leader_id: str | None = None
        self.published: PublishedMap = EMPTY
        self._left: dict[str, float] = {}
        self._wake = asyncio.Event()
        # Its loops are supervised: a crash is logged at once, counted, and handed to `tasks.on_crash`
        # (the composition root points it at the runtime, which stands down).
        self.tasks = BackgroundTasks("cluster")
        self._leaving = False
        self._last_signature: object = None
        self._settle_until: float | None = None  # monotonic seconds; see the module docstring

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Join (one step, so the first reconcile already knows the members), then run the loops."""
        await self._step_safely()
        self.tasks.spawn("cluster-loop", self._loop())
        self.tasks.spawn("cluster-notices", self._notices().run())

    async def leave(self) -> None:
        """Stop taking part: no more bots here, membership and leadership given up at once.

        Called before the runtime hands its bots over, so the others already know whose they are
        when the leases are released.
        """
        if self._leaving:
            return
        self._leaving = True
        self._wake.set()  # the loop sees _leaving at once even if a library swallows the cancellation
        await self.tasks.close()
        try:
            if self.election.is_leader:
                # Publish the map without us before giving the key up: the others need not wait
                # for an election to learn where our bots go.
                await self._lead(exclude_self=True)
            await self.membership.leave()
            await self.election.release()
            await notify(self._redis, self._prefix, "left", self.replica_id)
        except (OSError, aioredis.RedisError) as e:
            log.warning("could not leave the cluster cleanly; our keys will expire (%s)", e)
        except Exception:
            log.exception("could not publish the map without us; the next leader will")

    async def announce_released(self) -> None:
        """After the hand-over: our leases are free, the new owners can take the bots now."""
        try:
            await notify(self._redis, self._prefix, "released", self.replica_id)
        except (OSError, aioredis.RedisError) as e:
            log.warning("could not announce released leases; the others find out within a second (%s)", e)

    async def close(self) -> None:
        await self.leave()

    # ------------------------------------------------------------------ what runs here

    @property
    def is_leader(self) -> bool:
        return self.election.is_leader

    @property
    def map_fresh(self) -> bool:
        """The published map comes from the leader that holds the key now, and that leader is alive."""
        p = self.published
        return bool(p.map_id) and p.leader == self.leader_id and p.leader in self.live

    def assignment(self, candidates: set[int]) -> set[int]:
        """The candidates this replica should run (BotRuntime's `assignment`)."""
        if self._leaving:
            return set()
        if self.map_fresh:
            # A bot the map does not list yet (just started) waits for the leader, which was woken
            # by the same start command: placing it by a different rule now would move it again.
            bots = self.published.bots
            return {b for b in candidates if bots.get(b) == self.replica_id}
        # From the last map we saw, so the bots stay where they are unless a member is gone.
        placed = rendezvous.rebalance(self.published.bots, candidates, self._members())
        return {b for b, r in placed.items() if r == self.replica_id}

    def wake(self) -> None:
        self._wake.set()

    def _members(self) -> set[str]:
        """The replicas bots may be placed on: the live ones, and while settling those of the last map."""
        members = set(self.live) | {self.replica_id}
        if self._settle_until is not None:
            if self._clock.monotonic() < self._settle_until:
                members |= set(self.published.members) - set(self._left)
            else:
                self._settle_until = None
        return members

    def _settle(self, why: str) -> None:
        self._settle_until = self._clock.monotonic() + self.timing.settle_ms / 1000
        log.info("keeping the last map's members for %.1fs: %s", self.timing.settle_ms / 1000, why)

    # ------------------------------------------------------------------ the loop

    async def step(self) -> None:
        if await self.membership.heartbeat():
            self._settle("our membership key was gone (Redis lost its keys?)")
        await self.election.tick()
        live = tuple(r.id for r in await live_replicas(self._redis, self._prefix))
        leader = await current_leader(self._redis, self._prefix)
        if await self.store.read_meta_id() != self.published.map_id:
            fresh = await self.store.read()
            if fresh is EMPTY and self.published.bots:
                # Only a Redis that lost its data drops a published map: keep ours as the basis.
                self.published = PublishedMap("", 0, "", self.published.members, self.published.bots)
                self._settle("the published map is gone (Redis restarted empty?)")
            else:
                self.published = fresh
        self.live, self.leader_id = live, leader
        self.stats.steps += 1
        if self.election.is_leader:
            await self._lead()
        self._signal_change()

    async def _lead(self, *, exclude_self: bool = False) -> None:
        candidates = await self._bots()
        members = self._members()
        if exclude_self:
            members.discard(self.replica_id)
        ordered = tuple(sorted(members))
        desired = rendezvous.rebalance(self.published.bots, candidates, ordered)
        previous = self.published
        if previous.leader == self.replica_id and previous.members == ordered and dict(previous.bots) == desired:
            return
        # Re-check just before writing: the script refuses anyway, this avoids a pointless call.
        if not self.election.is_leader:
            return
        epoch = await self.store.publish(self.replica_id, ordered, desired, self._clock.now_ms())
        if epoch == 0:
            log.warning("map not published: the leader key is no longer ours")
            return
        self.published = PublishedMap(f"local-{epoch}", epoch, self.replica_id, ordered, desired)
        # The id is re-read next step; a local id forces that read so every replica agrees on it.
        self.stats.publications += 1
        moved = rendezvous.moved(previous.bots, desired)
        if moved:
            self.stats.rebalances += 1
            self.stats.moved_bots += len(moved)
        self._forget_old_leavers()
        dead = set(previous.members) - members - set(self._left)
        failed_over = sum(1 for b in moved if previous.bots[b] in dead)
        self.stats.failovers += failed_over
        log.info("published the bot assignment", extra={"epoch": epoch, "replicas": len(ordered),
                                                        "bots": len(desired), "moved": len(moved),
                                                        "failed_over": failed_over})

    def _forget_old_leavers(self) -> None:
        now = self._clock.monotonic()
        for replica, at in list(self._left.items()):
            if now - at > _LEFT_MEMORY_S:
                del self._left[replica]

    def _signal_change(self) -> None:
        fresh = self.map_fresh
        signature = (self.published.map_id, self.published.epoch, fresh, None if fresh else self.live)
        if signature != self._last_signature:
            self._last_signature = signature
            if self.on_change is not None:
                self.on_change()

    async def _step_safely(self) -> None:
        try:
            await self.step()
            if self.stats.redis_down:
                log.info("Redis is back; membership and leadership re-established")
            self.stats.redis_down = False
        except asyncio.CancelledError:
            raise
        except (OSError, aioredis.RedisError) as e:
            reraise_if_cancelling(e)
            if not self.stats.redis_down:
                log.error("cluster step failed: Redis unreachable (%s); retrying every heartbeat", e)
            self.stats.redis_down = True
            self.election.check_deadline()
        except Exception as e:
            reraise_if_cancelling(e)
            log.exception("cluster step failed; retrying")
            self.election.check_deadline()

    async def _loop(self) -> None:
        interval = self.timing.heartbeat_interval_ms / 1000
        while not self._leaving:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow our cancellation when the
            # event is set at the same moment (a notice arriving during shutdown), and leave() would hang.
            try:
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            await self._step_safely()

    def _notices(self) -> PubSubListener:
        channel = cluster_channel(self._prefix)

        def on_message(name: str, data: bytes | str) -> None:
            if name == channel:
                self._on_notice(data)
            self._wake.set()

        return PubSubListener(self._redis, (channel, command_channel(self._prefix)), on_message,
                              name="cluster-notices")

    def _on_notice(self, raw: str | bytes) -> None:
        notice = decode_notice(raw)
        if notice is None:
            return
        event, replica = notice
        if event == "left":
            self._left[replica] = self._clock.monotonic()
        elif event == "released" and self.on_change is not None:
            # Leases were just freed: reconcile now rather than at the next tick.
            self.on_change()

