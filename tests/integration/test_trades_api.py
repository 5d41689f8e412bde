"""Trades and orders lists: per bot and across the user's bots, newest first, keyset-paginated.

The runtime writes orders and trades in production; here they are seeded in SQL."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiohttp import web

from tests.integration.auth_helpers import Client, problem
from tests.integration.bots_helpers import MARKETS, User, create_bot, new_user, seed_fills
from tradebot.http.appkeys import SYMBOLS

TRADE_FIELDS = {"id", "bot_id", "symbol", "side", "price", "amount", "fee", "realized_pnl", "reason", "paper",
                "client_order_id", "created_at"}
ORDER_FIELDS = {"id", "bot_id", "client_order_id", "exchange_order_id", "side", "amount", "status", "paper",
                "created_at", "updated_at"}


@pytest.fixture
async def app(app: web.Application) -> web.Application:
    app[SYMBOLS] = MARKETS
    return app


@pytest.fixture
async def alice(client: Client) -> User:
    return await new_user(client, "alice")


async def all_pages(client: Client, user: User, url: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    sep = "&" if "?" in url else "?"
    next_url = f"{url}{sep}limit={limit}"
    pages = 0
    while True:
        r = await client.get(next_url, headers=user.headers)
        assert r.status == 200, await r.text()
        page = await r.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        pages += 1
        if page["next_cursor"] is None:
            return items, pages
        next_url = f"{url}{sep}limit={limit}&cursor={page['next_cursor']}"


async def test_bot_trades_newest_first_with_cursor_pages(client: Client, alice: User, pool: asyncpg.Pool) -> None:
    bot = await create_bot(client, alice)
    ids = await seed_fills(pool, alice, bot["id"], 7)
    trades, pages = await all_pages(client, alice, f"/api/v1/bots/{bot['id']}/trades", 3)
    assert [t["id"] for t in trades] == ids[::-1]
    assert pages == 3
    first = trades[0]
    assert set(first) == TRADE_FIELDS
    assert first["bot_id"] == bot["id"] and first["symbol"] == "BTC/USDT:USDT"
    assert first["price"] == 106 and first["amount"] == 0.01 and first["fee"] == 0.0004
    assert first["realized_pnl"] == 6 and first["side"] == "buy"
    assert first["created_at"].startswith("2026-01-01T00:06:00") and first["created_at"].endswith("Z")


async def test_trades_with_the_same_time_page_by_id(client: Client, alice: User, pool: asyncpg.Pool) -> None:
    bot = await create_bot(client, alice)
    ids = await seed_fills(pool, alice, bot["id"], 5)
    await pool.execute("UPDATE trades SET created_at = '2026-02-01T00:00:00Z' WHERE bot_id = $1", bot["id"])
    trades, _ = await all_pages(client, alice, f"/api/v1/bots/{bot['id']}/trades", 2)
    assert [t["id"] for t in trades] == sorted(ids, reverse=True)


async def test_bot_orders_newest_first(client: Client, alice: User, pool: asyncpg.Pool) -> None:
    bot = await create_bot(client, alice)
    await seed_fills(pool, alice, bot["id"], 5)
    orders, pages = await all_pages(client, alice, f"/api/v1/bots/{bot['id']}/orders", 2)
    assert pages == 3
    assert [o["id"] for o in orders] == sorted((o["id"] for o in orders), reverse=True)
    assert set(orders[0]) == ORDER_FIELDS
    assert orders[0]["status"] == "filled" and orders[0]["amount"] == 0.01
    assert orders[0]["exchange_order_id"] == "ex4"
    empty = await create_bot(client, alice)
    r = await client.get(f"/api/v1/bots/{empty['id']}/orders", headers=alice.headers)
    assert await r.json() == {"items": [], "next_cursor": None}


async def test_user_trades_across_bots_with_filters(client: Client, alice: User, pool: asyncpg.Pool) -> None:
    one = await create_bot(client, alice)
    two = await create_bot(client, alice)
    ids_one = await seed_fills(pool, alice, one["id"], 4, start="2026-03-01T00:00:00Z")
    ids_two = await seed_fills(pool, alice, two["id"], 3, start="2026-03-01T00:00:30Z")
    bob = await new_user(client, "bob")
    bobs = await create_bot(client, bob)
    await seed_fills(pool, bob, bobs["id"], 2)

    trades, _ = await all_pages(client, alice, "/api/v1/trades", 50)
    assert sorted(t["id"] for t in trades) == sorted(ids_one + ids_two)
    keys = [(t["created_at"], t["id"]) for t in trades]
    assert keys == sorted(keys, reverse=True)

    paged, pages = await all_pages(client, alice, "/api/v1/trades", 2)
    assert paged == trades and pages == 4

    only_two, _ = await all_pages(client, alice, f"/api/v1/trades?bot_id={two['id']}", 50)
    assert [t["id"] for t in only_two] == ids_two[::-1]

    # Since 00:01:00: one's trades at minutes 1, 2, 3 and two's at 1:30 and 2:30.
    since, _ = await all_pages(client, alice, "/api/v1/trades?since=2026-03-01T00:01:00Z", 50)
    assert sorted(t["id"] for t in since) == sorted(ids_one[1:] + ids_two[1:])
    for spelled in ("2026-03-01T00:01:00", "2026-03-01T00:01:00%2B00:00", "2026-03-01T00:01:00+00:00",
                    "2026-03-01T01:01:00%2B01:00"):
        got, _ = await all_pages(client, alice, f"/api/v1/trades?since={spelled}", 50)
        assert sorted(t["id"] for t in got) == sorted(t["id"] for t in since), spelled
    both, _ = await all_pages(client, alice, f"/api/v1/trades?bot_id={one['id']}&since=2026-03-01T00:02:00Z", 1)
    assert [t["id"] for t in both] == ids_one[:1:-1]

    # A deleted bot's trades stay in the history.
    assert (await client.delete(f"/api/v1/bots/{one['id']}", headers=alice.headers)).status == 204
    after, _ = await all_pages(client, alice, "/api/v1/trades", 50)
    assert len(after) == len(trades)
    await problem(await client.get(f"/api/v1/bots/{one['id']}/trades", headers=alice.headers), 404)


@pytest.mark.parametrize(
    ("query", "field"),
    [("since=yesterday", "since"), ("bot_id=abc", "bot_id"), ("bot_id=0", "bot_id"), ("limit=501", "limit"),
     ("limit=0", "limit"), ("cursor=%21%21", "cursor")],
)
async def test_trades_query_is_validated(client: Client, alice: User, query: str, field: str) -> None:
    body = await problem(await client.get(f"/api/v1/trades?{query}", headers=alice.headers), 422)
    assert [e["field"] for e in body["errors"]] == [field]


async def test_bot_lists_validate_paging(client: Client, alice: User) -> None:
    bot = await create_bot(client, alice)
    for sub in ("trades", "orders"):
        for query in ("limit=501", "limit=-1", "cursor=zzz"):
            await problem(await client.get(f"/api/v1/bots/{bot['id']}/{sub}?{query}", headers=alice.headers), 422)
        r = await client.get(f"/api/v1/bots/{bot['id']}/{sub}?limit=500", headers=alice.headers)
        assert r.status == 200


async def test_another_users_bot_lists_are_404(client: Client, alice: User, pool: asyncpg.Pool) -> None:
    bot = await create_bot(client, alice)
    await seed_fills(pool, alice, bot["id"], 2)
    bob = await new_user(client, "bob")
    for sub in ("trades", "orders"):
        await problem(await client.get(f"/api/v1/bots/{bot['id']}/{sub}", headers=bob.headers), 404)
    r = await client.get("/api/v1/trades", headers=bob.headers)
    assert await r.json() == {"items": [], "next_cursor": None}
