"""GET /stats: every grouping and filter equals the sums computed here over GET /trades (all pages),
across day, ISO-week, month and year boundaries, with unknown fees, wins, losses and zeros, and
another user's trades beside them. Also the bots' lifetime figures."""

from __future__ import annotations

import itertools
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from tests.integration.auth_helpers import Client, problem
from tests.integration.bots_helpers import MARKETS, User, create_bot, new_user
from tests.integration.stats_helpers import all_items, expected_stats, figures, insert_trade, max_drawdown
from tradebot import db
from tradebot.bots.stats import StatsGroup, TradeFilter, TradeStats
from tradebot.http.appkeys import SYMBOLS

# (time, realized_pnl, fee): 2020-12-27 is a Sunday (ISO 2020-W52); 2020-12-28 … 2021-01-03 is ISO
# week 2020-W53 across a month and a year; 2021-01-04 starts 2021-W01; 2024-02-29 is a leap day.
ALICE_ONE = [
    ("2020-12-27T23:59:59.999999Z", "0.1", "0.0004"),
    ("2020-12-28T00:00:00Z", "0.2", None),
    ("2020-12-31T23:59:59.5Z", "-1.25", "0.01"),
    ("2021-01-01T00:00:00Z", "0", "0.02"),
    ("2021-01-03T23:00:00+00:00", "3.3", "0.0004"),
    ("2021-01-04T00:00:00Z", "-0.7", None),
    ("2021-02-28T12:00:00Z", "12.345678", "0.123"),
    ("2024-02-29T10:00:00Z", "-5", "0.5"),
]
ALICE_TWO = [
    ("2020-12-28T00:00:00Z", "2", "0.1"),  # the same instant as one of bot one's: two rows, both counted
    ("2021-01-03T00:00:00Z", "-0.3", "0.0001"),
    ("2021-01-10T23:59:59Z", "0", None),
    ("2021-03-01T00:00:00Z", "7.77", "0.07"),
]
BOB = [("2021-01-01T00:00:00Z", "1000", "1"), ("2021-01-04T00:00:00Z", "-1000", "1")]

GROUPS = ("day", "week", "month", "all")


@pytest.fixture
async def app(app: web.Application) -> web.Application:
    app[SYMBOLS] = MARKETS
    return app


async def _seed(client: Client, pool: asyncpg.Pool) -> tuple[User, User, dict[str, int]]:
    alice, bob = await new_user(client, "alice"), await new_user(client, "bob")
    bots = {
        "one": (await create_bot(client, alice))["id"],
        "two": (await create_bot(client, alice, symbol="ETHUSDT"))["id"],
        "bob": (await create_bot(client, bob))["id"],
    }
    for name, user, rows in (("one", alice, ALICE_ONE), ("two", alice, ALICE_TWO), ("bob", bob, BOB)):
        for at, pnl, fee in rows:
            await insert_trade(pool, user, bots[name], at, pnl, fee)
    # One paper trade (a later issue writes them; the column is there now), so paper=true has rows.
    await insert_trade(pool, alice, bots["two"], "2021-01-02T08:00:00Z", "4.5", "0.2", paper=True)
    return alice, bob, bots


async def _stats(client: Client, user: User, query: str) -> dict[str, Any]:
    r = await client.get(f"/api/v1/stats?{query}", headers=user.headers)
    assert r.status == 200, await r.text()
    body: dict[str, Any] = await r.json()
    return body


async def test_stats_equal_the_trades_sums_for_every_grouping_and_filter(client: Client, pool: asyncpg.Pool) -> None:
    alice, bob, bots = await _seed(client, pool)
    filters: dict[str, list[Any]] = {
        "bot_id": [None, bots["one"], bots["two"], bots["bob"]],
        "since": [None, "2020-12-28T00:00:00Z", "2021-01-01T01:00:00+01:00"],
        "until": [None, "2021-01-04T00:00:00Z"],
        "paper": [None, "true", "false"],
    }
    checked = 0
    for values in itertools.product(*filters.values()):
        query = "&".join(f"{k}={v}".replace("+", "%2B") for k, v in zip(filters, values, strict=True) if v is not None)
        trades = await all_items(client, alice, f"/api/v1/trades?{query}" if query else "/api/v1/trades")
        assert all(t["bot_id"] != bots["bob"] for t in trades)
        for group in GROUPS:
            got = await _stats(client, alice, f"group={group}&{query}")
            assert got == expected_stats(trades, group), (group, query)
            checked += 1
    assert checked == 4 * 4 * 3 * 2 * 3

    # The default grouping is by day; the sums themselves are exact (0.1 + 0.2 is 0.3 here).
    default = await _stats(client, alice, f"bot_id={bots['one']}&until=2020-12-28T00:00:01Z")
    assert default["items"][0]["period_start"] == "2020-12-27T00:00:00.000000Z"
    assert default["totals"]["realized_pnl"] == 0.3 and default["totals"]["fees_unknown"] == 1
    # 2021-01-03 (Sunday) lies in the ISO week that began on Monday 2020-12-28 (2020-W53).
    weeks = await _stats(client, alice, f"group=week&bot_id={bots['one']}")
    assert [i["period_start"][:10] for i in weeks["items"]] == ["2020-12-21", "2020-12-28", "2021-01-04",
                                                               "2021-02-22", "2024-02-26"]
    assert weeks["items"][1]["trades_count"] == 4

    # Bob sees his own trades only; a bot of someone else is nothing, not an error.
    assert (await _stats(client, bob, "group=all"))["totals"]["trades_count"] == len(BOB)
    theirs = await _stats(client, bob, f"group=all&bot_id={bots['one']}")
    assert theirs == {"items": [], "totals": figures([])}
    assert theirs["totals"]["win_rate"] is None


async def test_stats_ignore_the_sessions_time_zone(client: Client, pool: asyncpg.Pool, clean_db: str) -> None:
    alice, _, _ = await _seed(client, pool)
    far_east = await db.create_pool(clean_db, min_size=1, max_size=1)
    try:
        async with far_east.acquire() as conn:
            await conn.execute("SET TIME ZONE 'Pacific/Kiritimati'")  # UTC+14
        stats = TradeStats(far_east)
        for group in (StatsGroup.DAY, StatsGroup.WEEK, StatsGroup.MONTH):
            result = await stats.periods(alice.id, group, TradeFilter())
            api = await _stats(client, alice, f"group={group.value}")
            assert [p.view()["period_start"].isoformat() for p in result.periods] == [
                i["period_start"].replace(".000000Z", "+00:00") for i in api["items"]
            ]
    finally:
        await far_east.close()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("group=year", "group"),
        ("group=", "group"),
        ("paper=yes", "paper"),
        ("paper=1", "paper"),
        ("since=1999-12-31T23:59:59Z", "since"),
        ("until=1970-01-01T00:00:00Z", "until"),
        ("since=1700000000", "since"),
        ("since=2021-01-02T00:00:00Z&until=2021-01-02T00:00:00Z", "until"),
        ("bot_id=0", "bot_id"),
        ("limit=5", "limit"),
    ],
)
async def test_stats_query_is_validated(client: Client, query: str, field: str) -> None:
    alice = await new_user(client, "alice")
    body = await problem(await client.get(f"/api/v1/stats?{query}", headers=alice.headers), 422)
    assert [e["field"] for e in body["errors"]] == [field]


@pytest.mark.parametrize(
    ("query", "field"),
    [("until=yesterday", "until"), ("paper=maybe", "paper"), ("until=1999-01-01T00:00:00Z", "until"),
     ("since=2021-01-02T00:00:00Z&until=2021-01-01T00:00:00Z", "until")],
)
async def test_trades_until_and_paper_are_validated(client: Client, query: str, field: str) -> None:
    alice = await new_user(client, "alice")
    body = await problem(await client.get(f"/api/v1/trades?{query}", headers=alice.headers), 422)
    assert [e["field"] for e in body["errors"]] == [field]


async def test_stats_need_a_token(client: Client) -> None:
    await problem(await client.get("/api/v1/stats"), 401)


async def test_trades_and_orders_say_paper(client: Client, pool: asyncpg.Pool) -> None:
    alice, _, bots = await _seed(client, pool)
    trades = await all_items(client, alice, "/api/v1/trades")
    assert sum(1 for t in trades if t["paper"]) == 1 and all(isinstance(t["paper"], bool) for t in trades)
    assert [t["paper"] for t in await all_items(client, alice, "/api/v1/trades?paper=true")] == [True]
    orders = await all_items(client, alice, f"/api/v1/bots/{bots['two']}/orders")
    assert sorted(o["paper"] for o in orders) == [False] * len(ALICE_TWO) + [True]


async def test_bots_carry_their_lifetime_figures(client: Client, pool: asyncpg.Pool) -> None:
    alice, bob, bots = await _seed(client, pool)
    idle = await create_bot(client, alice, symbol="BTCUSDT", name="idle")
    assert idle["stats"] == {**figures([]), "max_drawdown": 0.0}

    listed = {b["id"]: b for b in await all_items(client, alice, "/api/v1/bots", limit=2)}
    assert set(listed) == {bots["one"], bots["two"], idle["id"]}
    for bot_id in (bots["one"], bots["two"], idle["id"]):
        trades = await all_items(client, alice, f"/api/v1/bots/{bot_id}/trades")
        want = {**figures(trades), "max_drawdown": max_drawdown(trades)}
        assert listed[bot_id]["stats"] == want
        r = await client.get(f"/api/v1/bots/{bot_id}", headers=alice.headers)
        assert (await r.json())["stats"] == want
    # Bot one's net curve falls 1.28 below 0.2996 first, then 5.5 below its top 13.84187.
    assert listed[bots["one"]]["stats"]["max_drawdown"] == 5.5
    bobs = await client.get(f"/api/v1/bots/{bots['bob']}", headers=bob.headers)
    assert (await bobs.json())["stats"]["max_drawdown"] == 1001.0  # +999, then −1001


async def _lifetime_matches_trades(client: Client, user: User, bot_id: int) -> dict[str, Any]:
    trades = await all_items(client, user, f"/api/v1/bots/{bot_id}/trades")
    r = await client.get(f"/api/v1/bots/{bot_id}", headers=user.headers)
    stats: dict[str, Any] = (await r.json())["stats"]
    assert stats == {**figures(trades), "max_drawdown": max_drawdown(trades)}
    return stats


async def _curve_exact(pool: asyncpg.Pool, bot_id: int) -> bool:
    return bool(await pool.fetchval("SELECT curve_exact FROM bot_trade_totals WHERE bot_id = $1", bot_id))


async def test_lifetime_figures_follow_every_kind_of_trade_change(client: Client, pool: asyncpg.Pool) -> None:
    alice = await new_user(client, "alice")
    bot = (await create_bot(client, alice))["id"]
    ids = [await insert_trade(pool, alice, bot, at, pnl, fee) for at, pnl, fee in ALICE_ONE]
    assert await _curve_exact(pool, bot)  # trades in time order: the trigger extends the curve exactly
    await _lifetime_matches_trades(client, alice, bot)

    # The newest trade's fee becomes known (the usual case): still exact, and a fee that turns the
    # last step into the deepest fall counts.
    await pool.execute("UPDATE trades SET fee = 9 WHERE id = $1", ids[-1])
    assert await _curve_exact(pool, bot)
    assert (await _lifetime_matches_trades(client, alice, bot))["max_drawdown"] == 14.0

    # An older trade's fee, and a trade recorded out of order: recomputed on read, then stored back.
    await pool.execute("UPDATE trades SET fee = 0.5 WHERE id = $1", ids[1])
    assert not await _curve_exact(pool, bot)
    await _lifetime_matches_trades(client, alice, bot)
    assert await _curve_exact(pool, bot)
    await insert_trade(pool, alice, bot, "2019-06-01T00:00:00Z", "-50", "1")
    assert not await _curve_exact(pool, bot)
    await _lifetime_matches_trades(client, alice, bot)
    # After a recomputation the trigger goes on exactly, also when the newest trade changes again.
    newest = await insert_trade(pool, alice, bot, "2025-01-01T00:00:00Z", "-30", None)
    assert await _curve_exact(pool, bot)
    await _lifetime_matches_trades(client, alice, bot)
    await pool.execute("UPDATE trades SET fee = 2, realized_pnl = 40 WHERE id = $1", newest)
    assert await _curve_exact(pool, bot)
    await _lifetime_matches_trades(client, alice, bot)
    await pool.execute("DELETE FROM trades WHERE id = $1", ids[3])
    await _lifetime_matches_trades(client, alice, bot)
