"""Migration 0005: a trade's fee may be unknown (NULL); rolling back refuses while one is."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.integration.migration_helpers import rollback, scratch_database
from tradebot import db
from tradebot.services import ResolvedServices

MIGRATION = "0005_trades_fee_unknown"


@pytest.fixture
async def scratch_url(services: ResolvedServices) -> AsyncIterator[str]:
    """A database of its own, because this test rolls a migration back."""
    async with scratch_database(services, "m5") as url:
        yield url


async def _trade(conn: asyncpg.Connection, fee: float | None) -> int:
    user = await conn.fetchval("INSERT INTO users (email, password_hash) VALUES ('m5@example.com', 'h') RETURNING id")
    bot = await conn.fetchval(
        "INSERT INTO bot_configs (user_id, symbol, timeframe, ema_period) VALUES ($1, 'BTC/USDT:USDT', '1m', 20) "
        "RETURNING id", user)
    order = await conn.fetchval(
        """INSERT INTO orders (bot_id, user_id, client_order_id, symbol, side, amount, intent, signal_seq, fence_token)
           VALUES ($1, $2, 'tb1-1-1o', 'BTC/USDT:USDT', 'buy', 1, 'open_long', 1, 1) RETURNING id""", bot, user)
    return int(await conn.fetchval(
        """INSERT INTO trades (bot_id, user_id, order_id, symbol, side, price, amount, fee, client_order_id)
           VALUES ($1, $2, $3, 'BTC/USDT:USDT', 'buy', 100, 1, $4, 'tb1-1-1o') RETURNING id""", bot, user, order, fee))


async def test_an_unknown_fee_is_null_and_blocks_the_rollback(scratch_url: str) -> None:
    conn = await asyncpg.connect(scratch_url)
    try:
        trade = await _trade(conn, None)
        assert await conn.fetchval("SELECT fee FROM trades WHERE id = $1", trade) is None
        with pytest.raises(Exception, match="unknown fee"):
            await rollback(scratch_url, MIGRATION)
        assert await conn.fetchval("SELECT fee FROM trades WHERE id = $1", trade) is None  # nothing filled in

        await conn.execute("UPDATE trades SET fee = 0.04 WHERE id = $1", trade)
        await rollback(scratch_url, MIGRATION)
        with pytest.raises(asyncpg.NotNullViolationError):
            await conn.execute("UPDATE trades SET fee = NULL WHERE id = $1", trade)
    finally:
        await conn.close()
    assert await db.apply_migrations(scratch_url) == [MIGRATION]
