"""A trade whose fee is not known yet reads `fee: null` in the API, never 0, and the schema says so."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp import web

from tests.integration.auth_helpers import Client
from tests.integration.bots_helpers import MARKETS, create_bot, new_user, seed_fills
from tradebot.http.appkeys import SYMBOLS


@pytest.fixture
async def app(app: web.Application) -> web.Application:
    app[SYMBOLS] = MARKETS
    return app


async def test_an_unknown_fee_is_null(client: Client, pool: asyncpg.Pool) -> None:
    alice = await new_user(client, "alice")
    bot = await create_bot(client, alice)
    known, unknown = await seed_fills(pool, alice, bot["id"], 2)
    await pool.execute("UPDATE trades SET fee = NULL WHERE id = $1", unknown)

    for url in (f"/api/v1/bots/{bot['id']}/trades", "/api/v1/trades"):
        r = await client.get(url, headers=alice.headers)
        assert r.status == 200, await r.text()
        fees = {t["id"]: t["fee"] for t in (await r.json())["items"]}
        assert fees == {known: 0.0004, unknown: None}

    spec = await (await client.get("/api/openapi.json")).json()
    fee = spec["components"]["schemas"]["TradeOut"]["properties"]["fee"]
    assert {"type": "null"} in fee["anyOf"]
