"""Replica membership in Redis: one key per live replica, refreshed by its heartbeat.

`{prefix}:replica:{id}` holds the replica's JSON card with a TTL of a few heartbeats, so a replica
that dies (kill -9, partition, pause) drops out on its own once the key expires. A set
`{prefix}:replicas` indexes the ids so listing never SCANs the whole keyspace (the same Redis holds
every bot's lease); the listing script prunes ids whose key has expired, atomically, so a replica
that is heart-beating at that instant cannot be pruned between its SET and its SADD.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import redis.asyncio as aioredis

from tradebot import jsonutil

log = logging.getLogger(__name__)

# Heartbeat: the card and the index entry together; answers whether the card was still there.
_HEARTBEAT = """
local present = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return present
"""

# Every live card; ids whose key expired are removed from the index in the same atomic step.
_LIVE = """
local ids = redis.call('SMEMBERS', KEYS[1])
local out = {}
for _, id in ipairs(ids) do
  local card = redis.call('GET', ARGV[1] .. id)
  if card then table.insert(out, card) else redis.call('SREM', KEYS[1], id) end
end
return out
"""

_LEAVE = """
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    """A replica's card, as stored in its membership key and shown by GET /cluster."""

    id: str
    started_at: str  # ISO 8601 UTC
    host: str
    pid: int
    url: str | None = None

    def to_json(self) -> str:
        return jsonutil.dumps(asdict(self)).decode()

    @classmethod
    def from_json(cls, raw: str | bytes) -> ReplicaInfo | None:
        try:
            data = jsonutil.loads(raw)
            return cls(str(data["id"]), str(data["started_at"]), str(data.get("host", "")), int(data.get("pid", 0)),
                       data.get("url"))
        except (ValueError, KeyError, TypeError):
            return None


def replica_key(prefix: str, replica_id: str) -> str:
    return f"{prefix}:replica:{replica_id}"


def index_key(prefix: str) -> str:
    return f"{prefix}:replicas"


class Membership:
    """This replica's own membership key."""

    def __init__(self, redis: aioredis.Redis, prefix: str, info: ReplicaInfo, *, ttl_ms: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self.info = info
        self.ttl_ms = ttl_ms
        self._heartbeat = redis.register_script(_HEARTBEAT)
        self._leave = redis.register_script(_LEAVE)
        self._card = info.to_json()
        self._joined = False

    async def heartbeat(self) -> bool:
        """Refresh our key; True when it had vanished since the last heartbeat (Redis lost its data, or
        it expired while we could not reach Redis or were paused): every other card may be gone too."""
        present = await self._heartbeat(keys=[replica_key(self._prefix, self.info.id), index_key(self._prefix)],
                                        args=[self._card, self.ttl_ms, self.info.id])
        lost = self._joined and not int(present)
        self._joined = True
        return lost

    async def leave(self) -> None:
        """Drop out at once (graceful shutdown) instead of waiting for the key to expire."""
        await self._leave(keys=[replica_key(self._prefix, self.info.id), index_key(self._prefix)],
                          args=[self.info.id])


async def live_replicas(redis: aioredis.Redis, prefix: str) -> list[ReplicaInfo]:
    """The replicas whose membership key is alive, sorted by id."""
    script = redis.register_script(_LIVE)
    cards = await script(keys=[index_key(prefix)], args=[replica_key(prefix, "")])
    out = [info for info in (ReplicaInfo.from_json(c) for c in cards) if info is not None]
    return sorted(out, key=lambda r: r.id)
