"""Open streams obey their token when announcements cannot reach this replica: while the pub/sub
subscription is down every open stream's token is re-checked against the database, and once more
when it is back; the same rules hold for the user's combined stream. (Announcements across real
replicas: tests/cluster/test_stream_revocation.py.)"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import jwt
import pytest
from aiohttp import web

from tests.integration.auth_helpers import Client, login, problem
from tests.integration.bots_helpers import MARKETS, SseReader, User, create_bot, new_user
from tradebot.http.appkeys import BOT_EVENTS
from tradebot.http.bots_app import STREAM_REGISTRY, SYMBOLS


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
