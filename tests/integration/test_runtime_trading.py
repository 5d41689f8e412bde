"""The runtime trading for real: in-process simulator, ccxt, PostgreSQL, Redis; no mocks.

Candles are pushed into the simulator one at a time; the bot must trade exactly where the backtest of
the same candles changes its target (DESIGN.md invariants 3 and 4), record every order before
sending it, and end with the same position as the exchange.
"""

from __future__ import annotations

import math
import time
from typing import Any

import asyncpg
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.integration.runtime_helpers import (
    START_MS,
    candle_rows,
    push_and_wait,
)
from tests.runtime_fixtures import Trader, manual_simulator, start_bot
from tests.simulator_helpers import SimControl
from tests.timing import eventually
from tradebot.exchange.simulator import SimulatorConfig
from tradebot.runtime.bot_runtime import BotRuntime
from tradebot.runtime.risk import floor_to_step
from tradebot.strategies import BacktestSettings, ExitReason, get_strategy, simulate, strategy_names
from tradebot.strategies.base import NO_TARGET, Target
from tradebot.strategies.candles import Candles


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return manual_simulator()

# Crosses the EMA(5) up, down, up, down: four target changes with allow_short.
CLOSES = [100.0, 100.0, 100.0, 100.0, 100.0, 104.0, 108.0, 103.0, 96.0, 92.0, 95.0, 101.0, 107.0, 109.0,
          100.0, 94.0, 93.0]

# Two superposed waves after a flat start: every built-in changes its target 9 to 18 times on it
# with the parameters below (checked by the test itself: at least four trades each).
WAVES = [round(100 + 8 * math.sin(i / 3.0) + 3 * math.sin(i / 1.3) + 0.05 * i, 1) if i >= 6 else 100.0
         for i in range(90)]
LIVE_PARAMS: dict[str, dict[str, Any]] = {
    "ema_cross": {"ema_period": 5},
    "ema_crossover": {"fast_period": 3, "slow_period": 8},
    "macd_cross": {"fast_period": 3, "slow_period": 8, "signal_period": 3},
    "rsi_reversion": {"rsi_period": 5, "oversold": 35, "overbought": 65, "exit_level": 50},
    "bollinger_reversion": {"bb_period": 10, "bb_std": 1.2},
}
ORDER_SIZE_PCT, LEVERAGE = 50.0, 2
STEP = 0.001  # the simulator's BTCUSDT lot step


def _candles(closes: list[float], start_ms: int = START_MS) -> Candles:
    """The candles `candle_rows` pushes (open = previous close), as the backtest reads them."""
    rows = candle_rows(closes, start_ms)
    return Candles.from_arrays(*(np.array([r[k] for r in rows]) for k in range(6)))


async def _orders(pool: asyncpg.Pool, bot_id: int) -> list[asyncpg.Record]:
    return list(await pool.fetch("SELECT * FROM orders WHERE bot_id = $1 ORDER BY id", bot_id))


def _expected_orders(
    closes: list[float], strategy: str, parameters: dict[str, Any], allow_short: bool
) -> list[tuple[int, str, str]]:
    """(signal seq, side, leg) of every order the backtest's target changes imply."""
    impl = get_strategy(strategy)
    signals = impl.signals(_candles(closes), impl.parse_params({**parameters, "allow_short": allow_short}))
    seq = signals.seq()
    out: list[tuple[int, str, str]] = []
    held = Target.FLAT
    for t in range(len(closes)):
        code = int(signals.target[t])
        if code == NO_TARGET or Target(code) == held:
            continue
        want = Target(code)
        if held != Target.FLAT:
            out.append((int(seq[t]), "sell" if held == Target.LONG else "buy", "c"))
        if want != Target.FLAT:
            out.append((int(seq[t]), "buy" if want == Target.LONG else "sell", "o"))
        held = want
    return out


def _backtest_fills(closes: list[float], strategy: str, parameters: dict[str, Any]) -> list[tuple[str, float, float, float]]:
    """(side, price, amount, fee) of every fill the backtest of the same candles makes, with the
    simulator's fee and the bot's sizing. The backtest fills a target at the next candle's open; one
    more candle opening at the last close carries out what the live bot does after the last one."""
    impl = get_strategy(strategy)
    candles = _candles([*closes, closes[-1]])
    signals = impl.signals(candles, impl.parse_params({**parameters, "allow_short": True}))
    target = signals.target.copy()
    target[-1] = target[-2]  # the extra candle decides nothing new
    settings = BacktestSettings(initial_balance=10_000.0, fee_rate=0.0004, slippage_bps=0.0,
                                order_size_pct=ORDER_SIZE_PCT, leverage=float(LEVERAGE))
    log = simulate(candles, target, settings).trades
    fills: list[tuple[int, int, str, float, float, float]] = []
    for k in range(len(log)):
        side = int(log.side[k])
        amount = float(log.amount[k])
        fills.append((int(log.entry_bar[k]), 1, "buy" if side > 0 else "sell", float(log.entry_price[k]), amount,
                      float(log.entry_fee[k])))
        if ExitReason(int(log.exit_reason[k])) is not ExitReason.END:
            fills.append((int(log.exit_bar[k]), 0, "sell" if side > 0 else "buy", float(log.exit_price[k]), amount,
                          float(log.exit_fee[k])))
    fills.sort(key=lambda f: (f[0], f[1]))  # at one open, a reversal closes before it opens
    return [f[2:] for f in fills]


def test_every_builtin_strategy_is_traded_live_below() -> None:
    assert sorted(LIVE_PARAMS) == strategy_names()  # no plugin is installed in the test process


@pytest.mark.parametrize("strategy", sorted(LIVE_PARAMS))
async def test_bot_trades_where_the_backtest_trades(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader, runtime_client: TestClient[web.Request, web.Application],
    strategy: str,
) -> None:
    client = runtime_client
    account = trader.creds
    parameters = LIVE_PARAMS[strategy]
    shorthand = {"ema_period": parameters["ema_period"]} if strategy == "ema_cross" else {"ema_period": None}
    bot = await start_bot(pool, runtime, trader, strategy=strategy, parameters=parameters, **shorthand,
                          allow_short=True, order_size_pct=ORDER_SIZE_PCT, leverage=LEVERAGE,
                          max_daily_loss_pct=100.0, max_daily_trades=1000)  # the backtest has no daily limits

    latencies = []
    rows = candle_rows(WAVES)
    for i, row in enumerate(rows):
        sent = time.monotonic()
        await push_and_wait(runtime, sim, bot, row, what=f"a decision on candle {i}")
        latencies.append(time.monotonic() - sent)

    expected = _expected_orders(WAVES, strategy, parameters, True)
    assert len(expected) >= 4
    orders = await _orders(pool, bot)
    got = [(o["signal_seq"], o["side"], o["client_order_id"][-1]) for o in orders]
    assert got == expected
    assert all(o["status"] == "filled" for o in orders)
    assert all(o["client_order_id"].startswith(f"tb{bot}-") for o in orders)

    # Every accepted order has exactly one trade, and the simulator saw each id once.
    trades = await pool.fetch("SELECT * FROM trades WHERE bot_id = $1 ORDER BY id", bot)
    assert [t["client_order_id"] for t in trades] == [o["client_order_id"] for o in orders]
    audit = await sim.orders(account.api_key)
    accepted = [a["client_order_id"] for a in audit if a["status"] != "rejected"]
    assert accepted == [o["client_order_id"] for o in orders]

    async def fees_known() -> bool:  # a fill's fee may come from a later lookup
        return bool(await pool.fetchval("SELECT count(*) FROM trades WHERE bot_id = $1 AND fee IS NULL", bot) == 0)

    await eventually(fees_known, timeout=60.0, what="every fee to be known")
    trades = await pool.fetch("SELECT * FROM trades WHERE bot_id = $1 ORDER BY id", bot)

    # Each fill is the backtest's: side, price and fee rule exactly; the size follows the
    # backtest's rule on the account's balance at the time, rounded down to the lot step (the
    # backtest does not round, so its balance drifts from the account's by a fraction of a step's
    # PnL per trade: the sizes agree to 1e-4).
    fills = _backtest_fills(WAVES, strategy, parameters)
    assert [t["side"] for t in trades] == [f[0] for f in fills]
    balance = 10_000.0
    held = 0.0
    for t, (_, price, amount, fee) in zip(trades, fills, strict=True):
        live_price, live_amount, live_fee = float(t["price"]), float(t["amount"]), float(t["fee"])
        assert live_price == pytest.approx(price, rel=1e-12)
        assert live_fee == pytest.approx(0.0004 * live_amount * live_price, rel=1e-9)
        assert live_amount == pytest.approx(amount, rel=1e-4) and live_fee == pytest.approx(fee, rel=1e-4)
        if held == 0.0:  # an entry: sized on the balance after every earlier fill
            assert live_amount == floor_to_step(balance * ORDER_SIZE_PCT / 100 * LEVERAGE / live_price, STEP)
            held = live_amount
        else:  # an exit closes the whole position
            assert live_amount == held
            held = 0.0
        balance += float(t["realized_pnl"] or 0) - live_fee

    # The database's position is the exchange's.
    state = await pool.fetchrow("SELECT * FROM bot_state WHERE bot_id = $1", bot)
    positions = await sim.positions(account.api_key)
    sim_pos = positions.get("BTCUSDT")
    if state["in_position"]:
        assert sim_pos is not None and sim_pos["side"] == state["position_side"]
        assert float(sim_pos["amount"]) == pytest.approx(float(state["position_size"]))
    else:
        assert sim_pos is None or float(sim_pos["amount"]) == 0
    assert state["daily_trades_count"] == len(orders)
    assert state["strategy_state"]["strategy"] == strategy

    # The same trades reached the event stream, in order, each after its state change.
    events = await runtime.ctx.events.replay(bot, None)
    assert [e.data["client_order_id"] for e in events if e.event == "trade"] == [o["client_order_id"] for o in orders]
    assert events[-1].event == "state" and events[-1].data["position_side"] == state["position_side"]
    ids = [e.id for e in events]
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))

    # And /metrics counts them.
    text = await (await client.get("/metrics")).text()
    assert f"tradebot_orders_total{{outcome=\"filled\"}} {float(len(orders))}" in text
    assert "tradebot_bots_running 1.0" in text and f"tradebot_bot_decisions_total {float(len(WAVES))}" in text
    print(f"{strategy}: {len(orders)} orders; decision latency after push: median "
          f"{sorted(latencies)[len(latencies) // 2] * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")


@pytest.mark.parametrize("allow_short", [False, True])
async def test_a_flat_market_never_trades_live(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader, allow_short: bool,
) -> None:
    """500 candles closing at 7.0: the EMA equals the close exactly, so the target never changes."""
    bot = await start_bot(pool, runtime, trader, ema_period=20, allow_short=allow_short)
    for i, row in enumerate(candle_rows([7.0] * 500, spread=0.0)):
        await push_and_wait(runtime, sim, bot, row, what=f"a decision on flat candle {i}")
    assert await _orders(pool, bot) == []
    assert await sim.orders(trader.creds.api_key) == []
    state = await pool.fetchrow("SELECT * FROM bot_state WHERE bot_id = $1", bot)
    assert not state["in_position"] and state["daily_trades_count"] == 0


async def test_a_monthly_bot_trades_where_the_backtest_trades(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader,
) -> None:
    """1M candles are 28-31 days apart: each is the next one, not a gap to backfill."""
    from tradebot.timeframes import shift

    bot = await start_bot(pool, runtime, trader, ema_period=5, allow_short=True, timeframe="1M")
    jan_2024 = 1_704_067_200_000
    for i, row in enumerate(candle_rows(CLOSES)):
        row[0] = shift("1M", jan_2024, i)
        await push_and_wait(runtime, sim, bot, row, interval="1M", what=f"a decision on monthly candle {i}")
    orders = await _orders(pool, bot)
    got = [(o["signal_seq"], o["side"], o["client_order_id"][-1]) for o in orders]
    assert got == _expected_orders(CLOSES, "ema_cross", {"ema_period": 5}, True)
    actor = runtime.supervisor.actor(bot)
    assert actor is not None and actor.decisions == len(CLOSES)
