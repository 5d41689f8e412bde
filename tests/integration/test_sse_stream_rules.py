"""The rules every live stream obeys besides its bot's: its token (while announcements cannot reach
this replica, every open stream's token is re-checked against the database each second, and once
more when the subscription is back) and the per-user stream cap, whose slots lapse when the replica
holding them dies. (Announcements across real replicas: tests/cluster/test_stream_revocation.py.)"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import jwt
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from tests.integration.auth_helpers import Client, login, problem
from tests.integration.bots_helpers import MARKETS, SseReader, User, create_bot, new_user
from tradebot.config import Settings
from tradebot.http.appkeys import BOT_EVENTS, STREAM_REGISTRY, SYMBOLS
from tradebot.http.stream_slots import StreamSlots

CAP = 3


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_streams_per_user": CAP})


@pytest.fixture
async def app(app: web.Application) -> web.Application:
    app[SYMBOLS] = MARKETS
    return app


@pytest.fixture
async def alice(client: Client) -> User:
    return await new_user(client, "alice")


async def _open(client: Client, token: str, bot_id: int) -> SseReader:
    r = await client.get(f"/api/v1/bots/{bot_id}/status-stream", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 200, await r.text()
    stream = SseReader(r)
    assert (await stream.next()).event == "state"
    return stream


async def _revoke_silently(pool: asyncpg.Pool, token: str) -> None:
    """A revocation whose announcement never reached this replica: only the database knows."""
    claims = jwt.decode(token, options={"verify_signature": False})
    await pool.execute(
        "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ($1, $2, to_timestamp($3))",
        claims["jti"], int(claims["sub"]), claims["exp"],
    )


async def _subscribed(app: web.Application) -> None:
    deadline = time.monotonic() + 5
    while not app[BOT_EVENTS]._subscribed.is_set():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


async def test_while_the_subscription_is_down_open_streams_are_rechecked(
    client: Client, app: web.Application, alice: User, pool: asyncpg.Pool
) -> None:
    bot = await create_bot(client, alice)
    other = await login(client, alice.email)
    doomed, kept = await _open(client, alice.token, bot["id"]), await _open(client, other, bot["id"])
    await _subscribed(app)
    app[STREAM_REGISTRY].subscription_down()
    started = time.monotonic()
    await _revoke_silently(pool, alice.token)
    assert await doomed.at_end(timeout=3)
    print(f"ended {time.monotonic() - started:.2f}s after a revocation nobody announced")
    assert len(app[STREAM_REGISTRY]) == 1
    kept.response.close()


async def test_when_the_subscription_is_back_open_streams_are_rechecked_once(
    client: Client, app: web.Application, alice: User, pool: asyncpg.Pool
) -> None:
    bot = await create_bot(client, alice)
    stream = await _open(client, alice.token, bot["id"])
    await _subscribed(app)
    await _revoke_silently(pool, alice.token)  # announced while this replica was not listening
    app[STREAM_REGISTRY].subscription_up()
    assert await stream.at_end(timeout=3)


async def test_a_stream_of_a_token_revoked_elsewhere_is_refused(client: Client, alice: User) -> None:
    bot = await create_bot(client, alice)
    assert (await client.post("/api/v1/auth/logout", headers=alice.headers)).status == 204
    await problem(await client.get(f"/api/v1/bots/{bot['id']}/status-stream", headers=alice.headers), 401)


async def test_at_most_the_cap_of_streams_per_user_then_429(client: Client, app: web.Application, alice: User) -> None:
    bot = await create_bot(client, alice)
    url = f"/api/v1/bots/{bot['id']}/status-stream"
    streams = [await _open(client, alice.token, bot["id"]) for _ in range(CAP)]
    for extra in (url, url + f"?access_token={alice.token}"):
        r = await client.get(extra, headers=alice.headers if "access_token" not in extra else {})
        body = await problem(r, 429)
        assert int(r.headers["Retry-After"]) >= 1 and str(CAP) in body["detail"]
    # Another user is not counted with alice.
    bob = await new_user(client, "bob")
    bobs = await _open(client, bob.token, (await create_bot(client, bob))["id"])
    # A closed stream gives its slot back.
    streams[0].response.close()
    deadline = time.monotonic() + 5
    while (r := await client.get(url, headers=alice.headers)).status == 429:
        r.close()
        assert time.monotonic() < deadline, "the closed stream's slot never came back"
        await asyncio.sleep(0.05)
    assert r.status == 200
    r.close()
    bobs.response.close()


async def test_slots_of_a_replica_that_died_lapse_and_a_live_replicas_do_not(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    live = StreamSlots(redis_client, redis_prefix, 2, ttl_ms=600, refresh_s=0.1)
    dead = StreamSlots(redis_client, redis_prefix, 2, ttl_ms=600, refresh_s=0.1)
    other = StreamSlots(redis_client, redis_prefix, 2, ttl_ms=600, refresh_s=0.1)
    try:
        held = await live.acquire(7)
        assert held is not None and await dead.acquire(7) is not None
        assert await other.acquire(7) is None
        await dead.close()  # it stops extending its slot, as a killed process would, without releasing
        first_score = await redis_client.zscore(live.key(7), held.member)
        deadline = time.monotonic() + 10
        while (taken := await other.acquire(7)) is None:
            assert time.monotonic() < deadline, "a dead replica's slot never lapsed"
            await asyncio.sleep(0.05)
        # Meanwhile the live replica kept its own slot: extended, never lapsed.
        assert (await redis_client.zscore(live.key(7), held.member) or 0) > (first_score or 0)
        assert await other.acquire(7) is None
        await other.release(taken)
    finally:
        for s in (live, dead, other):
            await s.close()
