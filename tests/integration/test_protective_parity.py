"""Backtest parity of the protective orders: a live bot (stops held by the simulator, through
ccxt) and a paper bot (stops held by its virtual account) on the same candles as a backtest with
stops hit make the same trades with the same exit reasons, at the backtest's prices (live: within
a tick, as the exchange rounds a trigger to its tick); the paper bot never reaches the exchange."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import numpy as np
import pytest

from tests.integration.runtime_helpers import bot_status, candle_rows, create_bot, create_user, push_and_wait
from tests.runtime_fixtures import Trader, manual_simulator, start_bot
from tests.simulator_helpers import SimControl
from tests.timing import eventually
from tradebot.exchange.simulator import SimulatorConfig
from tradebot.exchange.simulator.rest import ROUTES, Security
from tradebot.runtime.bot_runtime import BotRuntime
from tradebot.strategies.backtest import BacktestSettings, ExitReason, simulate
from tradebot.strategies.candles import Candles
from tradebot.strategies.ema_cross import EmaCrossParams, ema_cross_signals

PRIVATE = {f"{method} {path}" for method, path, security, _, _ in ROUTES if security is not Security.NONE}
# EMA(5) crosses both ways; the 2 % stop and the 3 % take profit are each hit inside candles
# (the test checks that both are).
CLOSES = [100.0, 100.0, 100.0, 100.0, 100.0, 104.0, 108.0, 107.5, 96.0, 92.0, 95.0, 101.0, 98.5, 103.0,
          100.0, 94.0, 93.0, 97.5, 104.25, 99.0]
STOP_LOSS_PCT, TAKE_PROFIT_PCT = 2.0, 3.0
TICK = 0.1  # the simulator's BTCUSDT price tick


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return manual_simulator()


def _backtest(slippage_bps: float) -> list[tuple[str, float, str]]:
    """(side, price, reason) of each fill of the backtest of CLOSES (one more candle opening at the
    last close executes the last decision, as the bot does right after it)."""
    arr = np.array(candle_rows([*CLOSES, CLOSES[-1]]))
    candles = Candles.from_arrays(ts=arr[:, 0].astype(np.int64), open=arr[:, 1], high=arr[:, 2], low=arr[:, 3],
                                  close=arr[:, 4])
    target = ema_cross_signals(candles.close, EmaCrossParams(5, True)).target
    target[-1] = target[-2]
    settings = BacktestSettings(initial_balance=10_000.0, fee_rate=0.0004, slippage_bps=slippage_bps,
                                order_size_pct=50.0, leverage=2, stop_loss_pct=STOP_LOSS_PCT,
                                take_profit_pct=TAKE_PROFIT_PCT)
    t = simulate(candles, target, settings).trades
    fills: list[tuple[str, float, str]] = []
    for i in range(len(t)):
        long = int(t.side[i]) > 0
        fills.append(("buy" if long else "sell", float(t.entry_price[i]), "signal"))
        reason = ExitReason(int(t.exit_reason[i]))
        if reason is not ExitReason.END:
            fills.append(("sell" if long else "buy", float(t.exit_price[i]), reason.label))
    return fills


async def _trades(pool: asyncpg.Pool, bot: int) -> list[tuple[str, float, str]]:
    rows = await pool.fetch("SELECT side, price, reason FROM trades WHERE bot_id = $1 ORDER BY id", bot)
    return [(r["side"], float(r["price"]), r["reason"]) for r in rows]


def _check(got: list[tuple[str, float, str]], expected: list[tuple[str, float, str]], tolerance: float) -> None:
    reasons = {e[2] for e in expected}
    assert {"stop_loss", "take_profit", "signal"} <= reasons  # the candles hit both stops
    assert [(g[0], g[2]) for g in got] == [(e[0], e[2]) for e in expected]
    for (_, price, _), (_, want, _) in zip(got, expected, strict=True):
        assert price == pytest.approx(want, abs=tolerance)


async def test_a_live_bot_s_exchange_stops_exit_where_the_backtest_does(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader
) -> None:
    bot = await start_bot(pool, runtime, trader, stop_loss_pct=STOP_LOSS_PCT, take_profit_pct=TAKE_PROFIT_PCT,
                          allow_short=True, order_size_pct=50.0, leverage=2, max_daily_loss_pct=100.0,
                          max_daily_trades=1000)
    for row in candle_rows(CLOSES):
        await push_and_wait(runtime, sim, bot, row)
    _check(await _trades(pool, bot), _backtest(0.0), TICK + 1e-9)


async def test_a_paper_bot_s_stops_exit_where_the_backtest_does_and_nothing_reaches_the_exchange(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl
) -> None:
    user = await create_user(pool)
    bot = await create_bot(pool, user, None, mode="paper", paper_balance=Decimal(10_000), paper_fee_rate=0.0004,
                           paper_slippage_bps=5.0, stop_loss_pct=STOP_LOSS_PCT, take_profit_pct=TAKE_PROFIT_PCT,
                           max_daily_loss_pct=100.0, max_daily_trades=1000)
    runtime.poke()

    async def running() -> bool:
        return await bot_status(pool, bot) == "running"

    await eventually(running, what="the paper bot to run")
    for row in candle_rows(CLOSES):
        await push_and_wait(runtime, sim, bot, row)
    _check(await _trades(pool, bot), _backtest(5.0), 1e-9)
    held = await pool.fetch("SELECT kind, status FROM paper_protective_orders WHERE bot_id = $1 ORDER BY id", bot)
    assert {"filled", "canceled"} <= {h["status"] for h in held}
    assert not set(await sim.requests()) & PRIVATE
