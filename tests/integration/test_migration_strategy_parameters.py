"""Migration 0008: bot_configs.parameters filled from ema_period with nothing lost, any strategy
name allowed; rolling back refuses while a bot or backtest uses another strategy than ema_cross."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.integration.migration_helpers import rollback, scratch_database
from tradebot import db
from tradebot.services import ResolvedServices

MIGRATION = "0008_strategy_parameters"


@pytest.fixture
async def scratch_url(services: ResolvedServices) -> AsyncIterator[str]:
    """A database of its own, because this test rolls a migration back."""
    async with scratch_database(services, "m8") as url:
        yield url


async def test_parameters_come_from_ema_period_both_ways(scratch_url: str) -> None:
    conn = await asyncpg.connect(scratch_url)
    try:
        user = await conn.fetchval("INSERT INTO users (email, password_hash) VALUES ('m8@example.com', 'h') RETURNING id")
        other = await conn.fetchval(
            "INSERT INTO bot_configs (user_id, symbol, timeframe, strategy, parameters) "
            "VALUES ($1, 'BTC/USDT:USDT', '1m', 'rsi_reversion', '{\"rsi_period\": 9}') RETURNING id",
            user,
        )
        t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        await conn.execute(
            "INSERT INTO backtests (user_id, symbol, timeframe, start_time, end_time, strategy, parameters, "
            "initial_balance) VALUES ($1, 'BTC/USDT:USDT', '1m', $2, $3, 'sma_cross', '{}', 1000)",
            user, t0, t0 + dt.timedelta(days=1),
        )
        with pytest.raises(Exception, match="cannot roll back 0008"):
            await rollback(scratch_url, MIGRATION)
        assert await conn.fetchval("SELECT strategy FROM bot_configs WHERE id = $1", other) == "rsi_reversion"

        await conn.execute("DELETE FROM bot_configs WHERE id = $1", other)
        await conn.execute("DELETE FROM backtests")
        kept = await conn.fetchval(
            "INSERT INTO bot_configs (user_id, symbol, timeframe, ema_period) VALUES ($1, 'BTC/USDT:USDT', '1m', 17) "
            "RETURNING id", user)
        params = await conn.fetchval("SELECT parameters FROM bot_configs WHERE id = $1", kept)
        assert json.loads(params) == {"ema_period": 17}  # a raw connection: jsonb arrives as text
        await rollback(scratch_url, MIGRATION)
        assert await conn.fetchval("SELECT ema_period FROM bot_configs WHERE id = $1", kept) == 17
        old = await conn.fetchval(
            "INSERT INTO bot_configs (user_id, symbol, timeframe, ema_period) VALUES ($1, 'ETH/USDT:USDT', '1h', 250) "
            "RETURNING id", user)
    finally:
        await conn.close()
    assert await db.apply_migrations(scratch_url) == [MIGRATION]
    conn = await asyncpg.connect(scratch_url)
    try:
        rows = await conn.fetch("SELECT id, strategy, ema_period, parameters FROM bot_configs ORDER BY id")
        assert [(r["id"], r["strategy"], r["ema_period"], json.loads(r["parameters"])) for r in rows] == [
            (kept, "ema_cross", 17, {"ema_period": 17}),
            (old, "ema_cross", 250, {"ema_period": 250}),
        ]
    finally:
        await conn.close()
