"""Migration 0013: protective order types and levels on orders, trades.reason (earlier trades are
signals), bot_configs.trailing_stop_pct, the paper account's protective orders; it rolls back
and forward again with the market orders and trades kept."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.integration.migration_helpers import rollback, scratch_database
from tradebot import db
from tradebot.services import ResolvedServices

MIGRATION = "0013_protective_orders"


@pytest.fixture
async def scratch_url(services: ResolvedServices) -> AsyncIterator[str]:
    """A database of its own, because this test rolls a migration back."""
    async with scratch_database(services, "m13") as url:
        yield url


async def test_protective_orders_roll_back_and_forward(scratch_url: str) -> None:
    conn = await asyncpg.connect(scratch_url)
    try:
        user = await conn.fetchval("INSERT INTO users (email, password_hash) VALUES ('m13@example.com', 'h') "
                                   "RETURNING id")
        bot = await conn.fetchval("INSERT INTO bot_configs (user_id, symbol, timeframe, ema_period, trailing_stop_pct) "
                                  "VALUES ($1, 'BTC/USDT:USDT', '1m', 20, 1.5) RETURNING id", user)
        market = await conn.fetchval(
            "INSERT INTO orders (bot_id, user_id, client_order_id, symbol, side, amount, intent, signal_seq, "
            "fence_token) VALUES ($1, $2, 'tb1-1-1o', 'BTC/USDT:USDT', 'buy', 1, 'open_long', 1, 1) RETURNING id",
            bot, user)
        stop = await conn.fetchval(
            "INSERT INTO orders (bot_id, user_id, client_order_id, symbol, side, amount, reduce_only, intent, "
            "signal_seq, fence_token, type, stop_price) VALUES ($1, $2, 'tb1-1s0', 'BTC/USDT:USDT', 'sell', 1, true, "
            "'protect_long:stop_loss', 1, 1, 'stop_market', 98) RETURNING id", bot, user)
        for order, side, reason in ((market, "buy", None), (stop, "sell", "stop_loss")):
            await conn.execute(
                "INSERT INTO trades (bot_id, user_id, order_id, symbol, side, price, amount, realized_pnl, "
                "client_order_id" + (", reason" if reason else "") + ") VALUES ($1, $2, $3, 'BTC/USDT:USDT', $4, "
                "100, 1, 0, 'x'" + (", $5" if reason else "") + ")",
                bot, user, order, side, *([reason] if reason else []))
        assert [r["reason"] for r in await conn.fetch("SELECT reason FROM trades ORDER BY id")] == [
            "signal", "stop_loss"]
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE trades SET reason = 'because' WHERE order_id = $1", market)

        await rollback(scratch_url, MIGRATION)
        assert await conn.fetchval("SELECT count(*) FROM trades") == 2
        assert [r["type"] for r in await conn.fetch("SELECT type FROM orders ORDER BY id")] == ["market", "market"]
        assert await conn.fetchval("SELECT to_regclass('paper_protective_orders')") is None

        assert await db.apply_migrations(scratch_url) == [MIGRATION]
        assert await conn.fetchval("SELECT trailing_stop_pct FROM bot_configs WHERE id = $1", bot) is None
    finally:
        await conn.close()
