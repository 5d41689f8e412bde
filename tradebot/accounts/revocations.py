"""Revoked access tokens: PostgreSQL is the record, Redis the cheap per-request check.

Every revocation is written to `revoked_tokens` first, then to Redis as a key that expires with the
token. Redis is trusted only while it holds everything the table holds:
- a marker key is set after a full copy; if Redis lost its data (restart without persistence) the
  marker is gone and the next check copies the table again;
- a revocation whose Redis write failed leaves this replica "degraded"; when Redis answers again the
  table is copied again before Redis is trusted.
While Redis is unreachable the check reads the table (a primary-key lookup).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import asyncpg
import redis.asyncio as aioredis

from tradebot.security.redis_guard import REDIS_ERRORS, RedisGuard

log = logging.getLogger(__name__)

REDIS_TIMEOUT_S = 0.5
_SYNC_BATCH = 1000


class RevocationStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        prefix: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._key_prefix = f"{prefix}:revoked:"
        self._marker = f"{prefix}:revoked-synced"
        self._guard = RedisGuard("token revocation", clock=clock, on_recover=self._sync)
        self._sync_lock = asyncio.Lock()

    async def revoke(self, jti: str, user_id: int, expires_at: int) -> None:
        await self._pool.execute(
            """
            INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ($1, $2, to_timestamp($3))
            ON CONFLICT (jti) DO NOTHING
            """,
            jti,
            user_id,
            expires_at,
        )
        # Rows past their token's expiry protect nothing; each logout clears a bounded batch of
        # them (through the expires_at index), so the table stays small without a scheduled job.
        await self._pool.execute(
            """
            DELETE FROM revoked_tokens WHERE jti IN (
                SELECT jti FROM revoked_tokens WHERE expires_at < now() - interval '1 minute' LIMIT 100
            )
            """
        )
        if not self._guard.should_try():
            return  # copied over when Redis answers again
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                await self._redis.set(self._key_prefix + jti, "1", exat=expires_at)
        except REDIS_ERRORS as e:
            self._guard.failed(e)
        else:
            await self._guard.succeeded()

    async def is_revoked(self, jti: str) -> bool:
        if self._guard.should_try():
            # A revocation written while degraded may be missing from this very read: the table
            # answers this once, and recovery copies it over for the next ones.
            was_degraded = self._guard.degraded
            try:
                async with asyncio.timeout(REDIS_TIMEOUT_S):
                    synced, revoked = await self._redis.mget(self._marker, self._key_prefix + jti)
            except REDIS_ERRORS as e:
                self._guard.failed(e)
            else:
                await self._guard.succeeded()
                if synced is not None and not was_degraded:
                    return revoked is not None
                if synced is None:
                    await self._sync()
        return await self._is_revoked_in_db(jti)

    async def _is_revoked_in_db(self, jti: str) -> bool:
        return bool(await self._pool.fetchval("SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $1)", jti))

    async def _sync(self) -> None:
        """Copy every still-valid revocation to Redis, then mark Redis as complete."""
        if self._sync_lock.locked():
            return  # another task of this replica is copying; callers use the table meanwhile
        async with self._sync_lock:
            try:
                copied = 0
                async with self._pool.acquire() as conn, conn.transaction():
                    cursor = conn.cursor(
                        "SELECT jti, extract(epoch FROM expires_at)::bigint FROM revoked_tokens"
                        " WHERE expires_at > now()"
                    )
                    batch: list[tuple[str, int]] = []
                    async for jti, exp in cursor:
                        batch.append((jti, exp))
                        if len(batch) >= _SYNC_BATCH:
                            copied += await self._copy(batch)
                            batch = []
                    copied += await self._copy(batch)
                await self._redis.set(self._marker, "1")
                log.info("revoked tokens copied to redis", extra={"count": copied})
            except REDIS_ERRORS as e:
                self._guard.failed(e)

    async def _copy(self, batch: list[tuple[str, int]]) -> int:
        if not batch:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for jti, exp in batch:
                pipe.set(self._key_prefix + jti, "1", exat=max(exp, int(time.time()) + 1))
            await pipe.execute()
        return len(batch)
