"""One running bot per API key and symbol: they would share one position on the exchange."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.integration.bots_helpers import MARKETS, create_bot, new_user
from tradebot.http.appkeys import SYMBOLS

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def app(app: web.Application) -> web.Application:
    app[SYMBOLS] = MARKETS
    return app


async def test_a_second_bot_on_the_same_key_and_symbol_cannot_start(client: Client) -> None:
    user = await new_user(client, "one-market")
    first = await create_bot(client, user)
    second = await create_bot(client, user)
    other_symbol = await create_bot(client, user, symbol="ETHUSDT")
    assert (await client.post(f"/api/v1/bots/{first['id']}/start", headers=user.headers)).status == 202
    r = await client.post(f"/api/v1/bots/{second['id']}/start", headers=user.headers)
    assert r.status == 409 and r.content_type == "application/problem+json"
    assert "same API key" in (await r.json())["detail"]
    assert (await client.post(f"/api/v1/bots/{other_symbol['id']}/start", headers=user.headers)).status == 202
    # Once the first one is stopped the second may run.
    assert (await client.post(f"/api/v1/bots/{first['id']}/stop", headers=user.headers)).status == 202
    assert (await client.post(f"/api/v1/bots/{second['id']}/start", headers=user.headers)).status == 202


async def test_concurrent_starts_on_one_market_let_exactly_one_through(client: Client) -> None:
    user = await new_user(client, "race")
    bots = [await create_bot(client, user) for _ in range(4)]
    answers = await asyncio.gather(
        *(client.post(f"/api/v1/bots/{b['id']}/start", headers=user.headers) for b in bots)
    )
    assert sorted(r.status for r in answers) == [202, 409, 409, 409]
