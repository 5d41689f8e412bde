"""The runtime trading for real: in-process simulator, ccxt, PostgreSQL, Redis; no mocks.

Candles are pushed into the simulator one at a time; the bot must trade exactly where the backtest of
the same candles changes its target (DESIGN.md invariants 3 and 4), record every order before
sending it, and end with the same position as the exchange.
"""

from __future__ import annotations

import time

import asyncpg
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.integration.runtime_helpers import (
    MINUTE,
    START_MS,
    candle_rows,
    push_and_wait,
)
from tests.runtime_fixtures import Trader, manual_simulator, start_bot
from tests.simulator_helpers import SimControl
from tradebot.exchange.simulator import SimulatorConfig
from tradebot.runtime.bot_runtime import BotRuntime
from tradebot.strategies.base import NO_TARGET, Target
from tradebot.strategies.candles import Candles
from tradebot.strategies.ema_cross import EmaCrossParams, ema_cross_signals


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return manual_simulator()

# Crosses the EMA(5) up, down, up, down: four target changes with allow_short.
CLOSES = [100.0, 100.0, 100.0, 100.0, 100.0, 104.0, 108.0, 103.0, 96.0, 92.0, 95.0, 101.0, 107.0, 109.0,
          100.0, 94.0, 93.0]


async def _orders(pool: asyncpg.Pool, bot_id: int) -> list[asyncpg.Record]:
    return list(await pool.fetch("SELECT * FROM orders WHERE bot_id = $1 ORDER BY id", bot_id))


def _expected_orders(closes: list[float], period: int, allow_short: bool) -> list[tuple[int, str, str]]:
    """(signal seq, side, leg) of every order the backtest's target changes imply."""
    n = len(closes)
    candles = Candles.from_arrays(
        ts=np.arange(n, dtype=np.int64) * MINUTE + START_MS,
        open=np.array(closes), high=np.array(closes) + 1, low=np.array(closes) - 1, close=np.array(closes),
    )
    signals = ema_cross_signals(candles.close, EmaCrossParams(period, allow_short))
    seq = signals.seq()
    out: list[tuple[int, str, str]] = []
    held = Target.FLAT
    for t in range(n):
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


async def test_bot_trades_where_the_backtest_trades(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader, runtime_client: TestClient[web.Request, web.Application],
) -> None:
    client = runtime_client
    account = trader.creds
    bot = await start_bot(pool, runtime, trader, ema_period=5, allow_short=True)

    latencies = []
    rows = candle_rows(CLOSES)
    for i, row in enumerate(rows):
        sent = time.monotonic()
        await push_and_wait(runtime, sim, bot, row, what=f"a decision on candle {i}")
        latencies.append(time.monotonic() - sent)

    expected = _expected_orders(CLOSES, 5, True)
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

    # The same trades reached the event stream, in order, each after its state change.
    events = await runtime.ctx.events.replay(bot, None)
    assert [e.data["client_order_id"] for e in events if e.event == "trade"] == [o["client_order_id"] for o in orders]
    assert events[-1].event == "state" and events[-1].data["position_side"] == state["position_side"]
    ids = [e.id for e in events]
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))

    # And /metrics counts them.
    text = await (await client.get("/metrics")).text()
    assert f"tradebot_orders_total{{outcome=\"filled\"}} {float(len(orders))}" in text
    assert "tradebot_bots_running 1.0" in text and f"tradebot_bot_decisions_total {float(len(CLOSES))}" in text
    print(f"decision latency after push: median {sorted(latencies)[len(latencies) // 2] * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.1f} ms")




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
    assert got == _expected_orders(CLOSES, 5, True)
    actor = runtime.supervisor.actor(bot)
    assert actor is not None and actor.decisions == len(CLOSES)
