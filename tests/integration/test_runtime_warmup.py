"""Warm-up: reads are shared (bots of one market taken at once, in a failover or a restart, cost one
klines read between them, whether they start afresh or resume a strategy state a previous owner
saved); a bot trades only once it has caught up to the newest closed candle it can see; and a fresh
warm-up is long enough that the live strategy decides like a backtest over the whole history."""

from __future__ import annotations

from typing import Any

import asyncpg
import numpy as np
import pytest

from tests.integration.runtime_helpers import (
    MINUTE,
    START_MS,
    bot_status,
    candle_rows,
    create_api_key,
    create_bot,
    push_and_wait,
)
from tests.runtime_fixtures import Trader, manual_simulator, start_bot
from tests.simulator_helpers import SimControl
from tests.timing import eventually
from tradebot.config import Secrets
from tradebot.exchange.simulator import RunningSimulator, SimulatorConfig
from tradebot.runtime.bot_runtime import BotRuntime
from tradebot.strategies.base import NO_TARGET, Target
from tradebot.strategies.candles import Candle as StrategyCandle
from tradebot.strategies.ema import ema
from tradebot.strategies.ema_cross import EmaCrossParams, EmaCrossState, decide, ema_cross_signals

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


async def test_a_bot_starting_on_a_recent_shared_read_never_trades_its_stale_target(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader, test_secrets: Secrets,
) -> None:
    # A rising market: bot A starts long, and its warm-up read is kept for the market's next starts.
    rising = candle_rows([100.0 + 2 * i for i in range(20)])
    await sim.push_klines("BTCUSDT", "1m", rising)
    history = runtime.ctx.history
    assert history is not None
    history._fresh_for_s = 3600.0  # B must start within the read's freshness however slow the machine
    bot_a = await start_bot(pool, runtime, trader, ema_period=5, allow_short=False)
    reads = history.requests
    # The market falls: A goes flat on these closed candles.
    falling = candle_rows([130.0, 120.0, 110.0, 100.0, 90.0], start_ms=START_MS + 20 * MINUTE)
    for row in falling:
        await push_and_wait(runtime, sim, bot_a, row)
    # B starts on the same market: its warm-up is A's read (target long), the falling candles are newer.
    creds_b = await sim.create_account({"USDT": 10_000})
    key_b = await create_api_key(pool, trader.user_id, creds_b, test_secrets)
    bot_b = await create_bot(pool, trader.user_id, key_b, ema_period=5, allow_short=False)
    runtime.poke()

    async def b_caught_up() -> bool:
        actor = runtime.supervisor.actor(bot_b)
        return (await bot_status(pool, bot_b) == "running" and actor is not None and actor.strategy is not None
                and actor.strategy.last_candle_ts == int(falling[-1][0]) and len(actor.mailbox) == 0)

    await eventually(b_caught_up, what="bot B to run and catch up to the newest candle")
    assert history.requests == reads  # B warmed up from the shared read, as the scenario needs
    actor = runtime.supervisor.actor(bot_b)
    assert actor is not None and actor.strategy is not None and actor.strategy.target is Target.FLAT
    # The newest candle says flat: nothing to buy, nothing to sell.
    assert await sim.orders(creds_b.api_key) == []
    assert await pool.fetchval("SELECT count(*) FROM orders WHERE bot_id = $1", bot_b) == 0


def _long_history(n: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(x) for x in np.round(100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, n))), 2)]


@pytest.mark.parametrize("period", [500, 1000])
async def test_a_fresh_bot_decides_every_later_candle_like_the_full_history_backtest(
    period: int, runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader,
) -> None:
    history_len, later = 16_000, 40
    closes = _long_history(history_len, seed=period + 1)
    # Later closes hover around the full-history EMA: a warm-up that left the seed any real weight
    # would put its EMA on the wrong side of some of them.
    level = float(ema(np.array(closes), period)[-1])
    rng = np.random.default_rng(period + 2)
    closes += [float(x) for x in np.round(level * (1.0 + rng.normal(0.0, 2e-4, later)), 2)]
    rows = candle_rows(closes, spread=0.0)
    await sim.push_klines("BTCUSDT", "1m", rows[:history_len])
    bot = await create_bot(pool, trader.user_id, trader.key_id, ema_period=period, allow_short=True)
    runtime.poke()

    async def running() -> bool:
        return await bot_status(pool, bot) == "running"

    await eventually(running, timeout=60.0, what=f"bot {bot} to warm up and run")
    backtest = ema_cross_signals(np.array(closes), EmaCrossParams(period, allow_short=True)).target
    mismatches = []
    for t in range(history_len, history_len + later):
        await push_and_wait(runtime, sim, bot, rows[t], what=f"a decision on candle {t}")
        actor = runtime.supervisor.actor(bot)
        assert actor is not None and actor.strategy is not None
        expected = None if backtest[t] == NO_TARGET else Target(int(backtest[t]))
        if actor.strategy.target is not expected:
            mismatches.append((t, actor.strategy.target, expected))
    assert mismatches == []


async def test_a_bot_resumes_the_state_it_saved_before_the_registry(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader,
) -> None:
    """Before the actor resolved strategies through the registry it saved ``{"ema_cross": state,
    "timeframe", "stopped_out_seq"}``. A bot running across the upgrade resumes that state: its
    signal numbers go on from the saved ones (a fresh warm-up over the exchange's candles would
    restart them, and a client order id would then repeat)."""
    # What the previous owner decided on: up then down (target long, then flat: seq 2).
    before = candle_rows([100.0 + i for i in range(15)] + [114.0 - 2 * i for i in range(1, 16)])
    params = EmaCrossParams(ema_period=3, allow_short=False)
    state = EmaCrossState.start(params)
    for r in before:
        _, state = decide(StrategyCandle(int(r[0]), *r[1:]), state, params)
    assert (state.target, state.seq) == (Target.FLAT, 2)
    saved = {"ema_cross": state.to_dict(), "timeframe": "1m", "stopped_out_seq": None}
    # The exchange's candles: the same open times, then rising on (a fresh warm-up: long, seq 1).
    rows = candle_rows([100.0 + i for i in range(40)])
    await sim.push_klines("BTCUSDT", "1m", rows)
    bot = await create_bot(pool, trader.user_id, trader.key_id, active=False, ema_period=3, allow_short=False)
    await pool.execute("UPDATE bot_state SET strategy_state = $2, last_candle_time = $3, signal_seq = 2 "
                       "WHERE bot_id = $1", bot, saved, state.last_candle_ts)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE bot_configs SET is_active = true WHERE id = $1", bot)
        await conn.execute("UPDATE bot_state SET status = 'starting' WHERE bot_id = $1", bot)
    runtime.poke()

    async def long_opened() -> bool:
        return bool(await pool.fetchval("SELECT count(*) FROM orders WHERE bot_id = $1", bot) == 1)

    await eventually(long_opened, what="the resumed bot to follow its target")
    actor = runtime.supervisor.actor(bot)
    assert actor is not None and actor.strategy is not None
    # Resumed at candle 30 (count 30 + the 10 after it); the 31st candle (102 rising past the
    # saved EMA) turned it long: seq 3.
    assert actor.strategy.ema.count == 40 and actor.strategy.last_candle_ts == int(rows[-1][0])
    assert actor.feed.progress is not None and actor.feed.progress.target is Target.LONG
    order = await pool.fetchrow("SELECT * FROM orders WHERE bot_id = $1", bot)
    assert order["side"] == "buy" and order["signal_seq"] == actor.feed.progress.seq == 3
    stored = await pool.fetchval("SELECT strategy_state FROM bot_state WHERE bot_id = $1", bot)
    assert stored["strategy"] == "ema_cross" and stored["seq"] == 3  # saved in today's form from now on
    assert stored["parameters"] == {"ema_period": 3, "allow_short": False}


async def test_a_bot_whose_strategy_this_replica_lacks_goes_to_error_saying_so(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader,
) -> None:
    """A plugin installed where the bot was created but not on the replica that takes it: the bot
    must not trade on some other strategy, nor crash-loop; it stops in `error` naming the strategy."""
    await sim.push_klines("BTCUSDT", "1m", candle_rows([100.0 + i for i in range(10)]))
    bot = await create_bot(pool, trader.user_id, trader.key_id, strategy="not_installed_here", ema_period=None,
                           parameters={"period": 5})
    runtime.poke()

    async def failed() -> bool:
        return await bot_status(pool, bot) == "error"

    await eventually(failed, what="the bot to go to error")
    message = await pool.fetchval("SELECT last_error_message FROM bot_state WHERE bot_id = $1", bot)
    assert "not_installed_here" in message and "not installed" in message
    assert await pool.fetchval("SELECT count(*) FROM orders WHERE bot_id = $1", bot) == 0
