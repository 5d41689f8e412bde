"""The leader's bot → replica map in Redis, and the notifications that make replicas react at once.

`{prefix}:assignment` is a hash bot id → replica id; `{prefix}:assignment:meta` holds the epoch
(incremented by each publication), a random map id, the leader that wrote it and the member list it
was computed over. Writing is one script that first checks the leader key, so a deposed leader
(paused, partitioned) cannot overwrite its successor's map. Each publication is announced on
`{prefix}:cluster`; pub/sub can lose messages, so replicas also re-read the meta every heartbeat.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from tradebot import jsonutil
from tradebot.runtime.cluster.leader import leader_key

_PUBLISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
local n = #ARGV
local i = 6
while i <= n do
  local last = math.min(i + 199, n)
  redis.call('HSET', KEYS[2], unpack(ARGV, i, last))
  i = last + 1
end
local epoch = redis.call('HINCRBY', KEYS[3], 'epoch', 1)
redis.call('HSET', KEYS[3], 'leader', ARGV[1], 'map_id', ARGV[2], 'members', ARGV[3], 'published_ms', ARGV[4])
redis.call('PUBLISH', ARGV[5], '{"event":"assignment","epoch":' .. epoch .. '}')
return epoch
"""


def map_key(prefix: str) -> str:
    return f"{prefix}:assignment"


def meta_key(prefix: str) -> str:
    return f"{prefix}:assignment:meta"


def cluster_channel(prefix: str) -> str:
    return f"{prefix}:cluster"


@dataclass(frozen=True, slots=True)
class PublishedMap:
    map_id: str
    epoch: int
    leader: str
    members: tuple[str, ...]
    bots: Mapping[int, str] = field(default_factory=dict)


EMPTY = PublishedMap("", 0, "", ())


class MapStore:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._publish = redis.register_script(_PUBLISH)

    async def publish(self, leader: str, members: tuple[str, ...], bots: Mapping[int, str], now_ms: int) -> int:
        """Write the map if `leader` still holds the leader key; returns the new epoch, 0 if refused."""
        args: list[Any] = [leader, secrets.token_hex(8), jsonutil.dumps(list(members)).decode(), now_ms,
                           cluster_channel(self._prefix)]
        for bot, replica in sorted(bots.items()):
            args += [bot, replica]
        keys = [leader_key(self._prefix), map_key(self._prefix), meta_key(self._prefix)]
        return int(await self._publish(keys=keys, args=args))

    async def read_meta_id(self) -> str:
        return str(await self._redis.hget(meta_key(self._prefix), "map_id") or "")

    async def read(self) -> PublishedMap:
        """Meta and map read in one MULTI, so they always belong to the same publication."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(meta_key(self._prefix))
            pipe.hgetall(map_key(self._prefix))
            meta, raw = await pipe.execute()
        if not meta or "map_id" not in meta:
            return EMPTY
        try:
            members = tuple(str(m) for m in jsonutil.loads(meta.get("members", "[]")))
        except ValueError:
            members = ()
        return PublishedMap(
            map_id=str(meta["map_id"]),
            epoch=int(meta.get("epoch", 0)),
            leader=str(meta.get("leader", "")),
            members=members,
            bots={int(b): str(r) for b, r in raw.items()},
        )


async def notify(redis: aioredis.Redis, prefix: str, event: str, replica_id: str) -> None:
    await redis.publish(cluster_channel(prefix), jsonutil.dumps({"event": event, "replica": replica_id}))


def decode_notice(raw: str | bytes) -> tuple[str, str] | None:
    """(event, replica) of a cluster notice; None if malformed."""
    try:
        data = jsonutil.loads(raw)
        return str(data["event"]), str(data.get("replica", ""))
    except (ValueError, KeyError, TypeError):
        return None
