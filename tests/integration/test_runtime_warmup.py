"""Warm-up reads are shared: bots of one market taken at once (a failover, a restart) cost one klines
read between them, whether they start afresh or resume a strategy state a previous owner saved."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.integration.runtime_helpers import bot_status, candle_rows, create_api_key, create_bot, eventually
from tests.runtime_fixtures import Trader, manual_simulator
from tests.simulator_helpers import SimControl
from tradebot.config import Secrets
from tradebot.exchange.simulator import RunningSimulator, SimulatorConfig
from tradebot.runtime.bot_runtime import BotRuntime
from tradebot.strategies.candles import Candle as StrategyCandle
from tradebot.strategies.ema_cross import EmaCrossParams, EmaCrossState, decide

BOTS = 6


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return manual_simulator()


async def test_bots_resuming_a_saved_state_share_one_history_read(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, simulator: RunningSimulator, trader: Trader,
    test_secrets: Secrets, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A constant close equals its EMA(3) exactly: no bot trades, they only warm up (one account serves all).
    rows = candle_rows([100.0] * 40, spread=0.0)
    await sim.push_klines("BTCUSDT", "1m", rows)
    params = EmaCrossParams(ema_period=3, allow_short=False)
    state = EmaCrossState.start(params)
    for r in rows[:30]:  # what the previous owner had decided on
        _, state = decide(StrategyCandle(int(r[0]), *r[1:]), state, params)
    saved = {"ema_cross": state.to_dict(), "timeframe": "1m", "stopped_out_seq": None}

    reads: list[tuple[Any, ...]] = []
    klines = simulator.state.klines

    def counting(*args: Any) -> Any:
        reads.append(args)
        return klines(*args)

    monkeypatch.setattr(simulator.state, "klines", counting)
    bots = []
    for _ in range(BOTS):  # one key each: a key runs one bot per market
        key = await create_api_key(pool, trader.user_id, trader.creds, test_secrets)
        bot = await create_bot(pool, trader.user_id, key, active=False, ema_period=3, allow_short=False)
        await pool.execute("UPDATE bot_state SET strategy_state = $2, last_candle_time = $3 WHERE bot_id = $1",
                           bot, saved, state.last_candle_ts)
        bots.append(bot)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE bot_configs SET is_active = true WHERE id = ANY($1)", bots)
        await conn.execute("UPDATE bot_state SET status = 'starting' WHERE bot_id = ANY($1)", bots)
    runtime.poke()

    async def all_running() -> bool:
        return all([await bot_status(pool, b) == "running" for b in bots])

    await eventually(all_running, what=f"{BOTS} bots to run")
    for bot in bots:  # each caught up from its saved state to the newest candle
        actor = runtime.supervisor.actor(bot)
        assert actor is not None and actor.strategy is not None
        assert actor.strategy.last_candle_ts == int(rows[-1][0])
    # One warm-up read for all six, and at most the stream's own catch-up besides.
    assert 1 <= len(reads) <= 2, reads
