"""A daily-limit pause holds for the rest of the UTC day it was taken on, across restarts."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from tests.integration.runtime_helpers import START_MS, create_bot, eventually
from tests.runtime_fixtures import Trader, manual_simulator
from tradebot.exchange.simulator import SimulatorConfig
from tradebot.runtime.bot_runtime import BotRuntime
from tradebot.runtime.clock import ManualClock, utc_date

NOON = START_MS + 12 * 3_600_000


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return manual_simulator()


@pytest.fixture
def runtime_clock() -> ManualClock:
    return ManualClock(NOON)


async def _started(pool: asyncpg.Pool, runtime: BotRuntime, trader: Trader, paused_days_ago: int) -> asyncpg.Record:
    bot = await create_bot(pool, trader.user_id, trader.key_id)
    await pool.execute(
        """UPDATE bot_state SET status = 'paused', pause_reason = 'daily_trades', daily_trades_count = 2,
                                daily_date = $2, last_error_message = 'daily limit of 2 trades reached'
           WHERE bot_id = $1""",
        bot, utc_date(NOON) - timedelta(days=paused_days_ago))
    runtime.poke()

    async def settled() -> asyncpg.Record | None:
        row = await pool.fetchrow("SELECT * FROM bot_state WHERE bot_id = $1", bot)
        return row if row is not None and row["last_run_at"] is not None else None

    return await eventually(settled, what="the bot to start")


async def test_a_pause_taken_today_still_holds_after_a_restart(
    runtime: BotRuntime, pool: asyncpg.Pool, trader: Trader
) -> None:
    state = await _started(pool, runtime, trader, paused_days_ago=0)
    assert state["status"] == "paused" and state["pause_reason"] == "daily_trades"
    assert state["daily_trades_count"] == 2


async def test_a_pause_taken_on_an_earlier_day_ends_when_the_bot_starts(
    runtime: BotRuntime, pool: asyncpg.Pool, trader: Trader
) -> None:
    """The day rolled while no actor ran it (a restart, a failover): no tick of the new day will
    resume it, since the start already rolled the day; the start itself must."""
    state = await _started(pool, runtime, trader, paused_days_ago=1)
    assert state["status"] == "running" and state["pause_reason"] is None
    assert state["daily_trades_count"] == 0 and state["daily_date"] == utc_date(NOON)
