"""A daily-limit pause holds for the rest of the UTC day it was taken on, across restarts."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.integration.runtime_helpers import START_MS, candle_rows, create_bot, push_and_wait
from tests.runtime_fixtures import FAST, Trader, manual_simulator, start_bot
from tests.simulator_helpers import SimControl
from tests.timing import ManualClock, eventually
from tradebot.config import Secrets, Settings
from tradebot.exchange.simulator import RunningSimulator, SimulatorConfig
from tradebot.http.app import create_app
from tradebot.runtime.bot_runtime import BotRuntime
from tradebot.runtime.clock import utc_date
from tradebot.runtime_context import runtime_context

NOON = START_MS + 12 * 3_600_000


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return manual_simulator()


@pytest.fixture
def runtime_clock() -> ManualClock:
    return ManualClock(wall_ms=NOON, real_time=True)


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
    # resumed paused (starting → paused): nothing new happened, so nothing is mailed
    assert await pool.fetchval("SELECT count(*) FROM mail_deliveries") == 0


async def test_a_pause_taken_on_an_earlier_day_ends_when_the_bot_starts(
    runtime: BotRuntime, pool: asyncpg.Pool, trader: Trader
) -> None:
    """The day rolled while no actor ran it (a restart, a failover): no tick of the new day will
    resume it, since the start already rolled the day; the start itself must."""
    state = await _started(pool, runtime, trader, paused_days_ago=1)
    assert state["status"] == "running" and state["pause_reason"] is None
    assert state["daily_trades_count"] == 0 and state["daily_date"] == utc_date(NOON)


# ------------------------------------------------------------------------------------------ midnight

TICK_S = 7.0  # a tick interval no other loop sleeps for, so the test alone decides when ticks run
DAY_MS = 24 * 3_600_000


class HeldTicks(ManualClock):
    """A manual clock under which the runtime's tick loop waits until the test lets it run."""

    def __init__(self, now_ms: int) -> None:
        super().__init__(wall_ms=now_ms, real_time=True)
        self.ticks = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        if seconds == TICK_S:
            await self.ticks.wait()
        await super().sleep(seconds)


class TestMidnight:
    @pytest.fixture
    def runtime_clock(self) -> HeldTicks:
        return HeldTicks(NOON)

    @pytest.fixture
    async def runtime_client(
        self, aiohttp_client: Any, settings: Settings, test_secrets: Secrets, clean_db: str, redis_url: str,
        simulator: RunningSimulator, runtime_clock: HeldTicks,
    ) -> TestClient:  # type: ignore[type-arg]
        settings = settings.model_copy(update={"exchange_url": simulator.base_url, "runtime_enabled": True})
        timing = replace(FAST, tick_interval_s=TICK_S)
        app = create_app(settings, test_secrets, database_url=clean_db, redis_url=redis_url, replica_id="replica-a",
                         extra_contexts=[runtime_context(timing=timing, clock=runtime_clock)])
        return await aiohttp_client(app)  # type: ignore[no-any-return]

    async def test_a_candle_of_the_new_day_before_its_tick_still_resumes_the_paused_bot(
        self, runtime: BotRuntime, runtime_clock: HeldTicks, pool: asyncpg.Pool, sim: SimControl, trader: Trader
    ) -> None:
        """At 00:00 a 1m candle closes exactly when the day changes, so it usually reaches the bot
        before the runtime's tick: the new day must resume the bot whichever comes first."""
        bot = await start_bot(pool, runtime, trader, max_daily_trades=2, allow_short=False, max_daily_loss_pct=50.0)
        for row in candle_rows([100.0] * 5 + [104.0, 101.0, 105.0]):  # long, flat, then a refused long
            await push_and_wait(runtime, sim, bot, row)
        assert (await pool.fetchval("SELECT status FROM bot_state WHERE bot_id = $1", bot)) == "paused"
        # the pause is mailed to the bot's owner, queued in the transaction that wrote it
        mails = await pool.fetch("SELECT kind, user_id FROM mail_deliveries")
        assert [(m["kind"], m["user_id"]) for m in mails] == [("paused", trader.user_id)]

        runtime_clock.advance_wall(DAY_MS)
        await push_and_wait(runtime, sim, bot, candle_rows([105.0, 108.0], START_MS + 7 * 60_000)[1])
        runtime_clock.ticks.set()  # the tick of the new day, late

        async def resumed() -> asyncpg.Record | None:
            row = await pool.fetchrow("SELECT * FROM bot_state WHERE bot_id = $1", bot)
            return row if row is not None and row["status"] == "running" else None

        state = await eventually(resumed, what="the new day to resume the bot")
        assert state is not None
        assert state["pause_reason"] is None and state["daily_date"] == utc_date(NOON + DAY_MS)
        assert state["position_side"] == "long" and state["daily_trades_count"] == 1  # it traded on that candle
