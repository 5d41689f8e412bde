"""Sessions across failures: rehash on login, and revocations that survive Redis outages and restarts."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import argon2
import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tests.integration.auth_helpers import PASSWORD, Client, bearer, login, new_email
from tests.processes import free_port, redis_server
from tests.timing import ManualClock, eventually
from tradebot.accounts.revocations import RevocationStore


async def test_login_rehashes_a_password_hashed_with_old_parameters(client: Client, pool: asyncpg.Pool) -> None:
    weak = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    email = new_email()
    await pool.execute("INSERT INTO users (email, password_hash) VALUES ($1, $2)", email, weak.hash(PASSWORD))
    token = await login(client, email)
    stored = await pool.fetchval("SELECT password_hash FROM users WHERE email = $1", email)
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert argon2.PasswordHasher().verify(stored, PASSWORD)
    # Existing tokens are untouched by a rehash (it is not a password change).
    assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status == 200
    await login(client, email)


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    """A Redis of this test's own, so it can be paused and restarted without touching anyone else's."""
    yield free_port(), tmp_path


async def _answers(port: int) -> bool:
    """Whether Redis answers a PING at once (a paused Redis holds it until the pause ends)."""
    probe = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=0.1)
    try:
        return bool(await probe.ping())
    except (RedisTimeoutError, RedisConnectionError):
        return False
    finally:
        await probe.aclose()


async def _user(pool: asyncpg.Pool) -> int:
    user_id: int = await pool.fetchval(
        "INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id", new_email()
    )
    return user_id


async def test_revocations_written_while_redis_is_unreachable_are_honoured_after_it_returns(
    pool: asyncpg.Pool, private_redis: tuple[int, Path]
) -> None:
    port, folder = private_redis
    user_id = await _user(pool)
    clock = ManualClock(0.0)
    exp = int(time.time()) + 3600
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0", decode_responses=True, socket_timeout=1)
    store = RevocationStore(pool, client, "t", clock=clock)
    try:
        with redis_server(port, folder):
            assert not await store.is_revoked("jti-before")  # first use copies the (empty) table
            await store.revoke("jti-before", user_id, exp)
            assert await store.is_revoked("jti-before")
            # Paused Redis: the write times out, the record stays in PostgreSQL.
            await client.client_pause(1500, all=True)
            await store.revoke("jti-paused", user_id, exp)
            assert store._guard.degraded
            assert await store.is_revoked("jti-paused")  # answered by the table meanwhile
            await eventually(lambda: _answers(port), what="redis to end its pause")
            clock.now += 10
            assert await store.is_revoked("jti-paused")  # recovery copied it over
            assert await client.exists("t:revoked:jti-paused") == 1
        # Redis down entirely.
        clock.now += 10
        await store.revoke("jti-down", user_id, exp)
        assert await store.is_revoked("jti-down")
        assert not await store.is_revoked("jti-never")
        # Restarted empty (no persistence): everything is copied back before Redis is trusted.
        with redis_server(port, folder):
            clock.now += 10
            await client.connection_pool.disconnect()
            for jti in ("jti-before", "jti-paused", "jti-down"):
                assert await store.is_revoked(jti), jti
            assert not await store.is_revoked("jti-never")
            assert await client.exists("t:revoked:jti-before", "t:revoked:jti-down") == 2
    finally:
        await client.aclose()


async def test_a_fresh_redis_is_filled_from_the_table(
    pool: asyncpg.Pool, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    user_id = await _user(pool)
    await pool.execute(
        "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ($1, $2, now() + interval '1 day'),"
        " ('expired-one', $2, now() - interval '1 second')",
        "old-" + secrets.token_hex(4),
        user_id,
    )
    jti = await pool.fetchval("SELECT jti FROM revoked_tokens WHERE jti LIKE 'old-%'")
    store = RevocationStore(pool, redis_client, redis_prefix)
    assert await store.is_revoked(jti)
    assert await redis_client.exists(f"{redis_prefix}:revoked:{jti}") == 1
    assert await redis_client.exists(f"{redis_prefix}:revoked:expired-one") == 0
    assert 0 < await redis_client.ttl(f"{redis_prefix}:revoked:{jti}") <= 86400


async def test_logouts_clear_revocations_that_expired(
    pool: asyncpg.Pool, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    user_id = await _user(pool)
    await pool.execute(
        "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ('long-gone', $1, now() - interval '1 day')",
        user_id,
    )
    store = RevocationStore(pool, redis_client, redis_prefix)
    await store.revoke("fresh", user_id, int(time.time()) + 3600)
    assert [r[0] for r in await pool.fetch("SELECT jti FROM revoked_tokens")] == ["fresh"]
