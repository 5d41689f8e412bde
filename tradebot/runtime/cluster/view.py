"""What GET /api/v1/cluster shows: the leader and each live replica with the bots it runs."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from tradebot.runtime.cluster.leader import current_leader
from tradebot.runtime.cluster.membership import live_replicas


@dataclass(frozen=True, slots=True)
class ReplicaView:
    id: str
    started_at: str
    bots: int


@dataclass(frozen=True, slots=True)
class ClusterView:
    leader: str | None
    replicas: tuple[ReplicaView, ...]


async def read_cluster(redis: aioredis.Redis, pool: asyncpg.Pool, prefix: str) -> ClusterView:
    """Members and leader from Redis; the bot counts from PostgreSQL (what actually runs where)."""
    replicas = await live_replicas(redis, prefix)
    leader = await current_leader(redis, prefix)
    rows = await pool.fetch(
        """SELECT s.replica_id, count(*) AS n FROM bot_state s
           WHERE s.status IN ('starting', 'running', 'paused', 'stopping') AND s.replica_id IS NOT NULL
           GROUP BY s.replica_id"""
    )
    counts = {r["replica_id"]: int(r["n"]) for r in rows}
    return ClusterView(leader, tuple(ReplicaView(r.id, r.started_at, counts.get(r.id, 0)) for r in replicas))
