"""Paper bots on the real runtime: in-process simulator through ccxt, PostgreSQL, Redis; no mocks.

The drift check: a paper bot and a backtest over the same candles (each opening at the previous
close, since a paper fill takes the decision candle's close and the backtest the next open) make
the same trades: sides, sizes, prices and fees to 1e-9. No private exchange endpoint is ever called
for a paper bot, and a stopped and restarted one resumes with its balance and position.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.integration.runtime_helpers import (
    bot_status,
    candle_rows,
    create_bot,
    create_user,
    push_and_wait,
)
from tests.runtime_fixtures import manual_simulator
from tests.simulator_helpers import SimControl
from tests.timing import eventually
from tradebot.exchange.simulator import SimulatorConfig
from tradebot.exchange.simulator.rest import ROUTES, Security
from tradebot.runtime.bot_runtime import BotRuntime
from tradebot.strategies.backtest import BacktestSettings, ExitReason, simulate
from tradebot.strategies.candles import Candles
from tradebot.strategies.ema_cross import EmaCrossParams, ema_cross_signals

PRIVATE = {f"{method} {path}" for method, path, security, _, _ in ROUTES if security is not Security.NONE}

# Crosses the EMA(5) up and down several times: reversals both ways with allow_short.
CLOSES = [100.0, 100.0, 100.0, 100.0, 100.0, 104.0, 108.0, 103.0, 96.0, 92.0, 95.0, 101.0, 107.0, 109.0,
          100.0, 94.0, 93.0, 97.5, 104.25, 99.0]
# Sizes are rounded down to the market's step (0.001 BTC); with a large virtual balance that rounding
# is below 1e-12 of an order, so the backtest (which does not round) must match to 1e-9.
BALANCE = 1e12
FEE_RATE = 0.0004
SLIPPAGE_BPS = 5.0


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return manual_simulator()


async def _paper_bot(pool: asyncpg.Pool, user: int, **settings: Any) -> int:
    values: dict[str, Any] = {"mode": "paper", "paper_balance": Decimal(repr(BALANCE)), "paper_fee_rate": FEE_RATE,
                              "paper_slippage_bps": SLIPPAGE_BPS, "max_daily_loss_pct": 100.0}
    values.update(settings)
    return await create_bot(pool, user, None, **values)


async def _running(pool: asyncpg.Pool, runtime: BotRuntime, bot: int) -> None:
    runtime.poke()

    async def running() -> bool:
        return await bot_status(pool, bot) == "running"

    await eventually(running, what=f"bot {bot} to run")


def _backtest_fills(closes: list[float]) -> list[tuple[str, float, float, float]]:
    """(side, amount, price, fee) of every fill the backtest makes over `closes` (with one more candle
    opening at the last close, so the last decision is executed too; the end valuation is no fill)."""
    rows = candle_rows([*closes, closes[-1]])
    arr = np.array(rows)
    candles = Candles.from_arrays(ts=arr[:, 0].astype(np.int64), open=arr[:, 1], high=arr[:, 2], low=arr[:, 3],
                                  close=arr[:, 4])
    target = ema_cross_signals(candles.close, EmaCrossParams(5, True)).target
    sim = simulate(candles, target, BacktestSettings(initial_balance=BALANCE, fee_rate=FEE_RATE,
                                                     slippage_bps=SLIPPAGE_BPS, order_size_pct=50.0, leverage=2))
    t = sim.trades
    fills = []
    for i in range(len(t)):
        long = int(t.side[i]) > 0
        fills.append(("buy" if long else "sell", float(t.amount[i]), float(t.entry_price[i]), float(t.entry_fee[i])))
        if int(t.exit_reason[i]) != ExitReason.END:
            fills.append(("sell" if long else "buy", float(t.amount[i]), float(t.exit_price[i]),
                          float(t.exit_fee[i])))
    return fills


async def test_a_paper_bot_trades_exactly_as_the_backtest_and_never_calls_a_private_endpoint(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, runtime_client: TestClient[web.Request, web.Application],
) -> None:
    user = await create_user(pool)
    bot = await _paper_bot(pool, user)  # no API key at all
    await _running(pool, runtime, bot)
    for row in candle_rows(CLOSES):
        await push_and_wait(runtime, sim, bot, row)

    trades = await pool.fetch("SELECT side, amount, price, fee, realized_pnl, paper FROM trades WHERE bot_id = $1 "
                              "ORDER BY id", bot)
    expected = _backtest_fills(CLOSES)
    assert len(expected) >= 6  # reversals both ways
    assert [t["side"] for t in trades] == [e[0] for e in expected]
    for trade, (_, amount, price, fee) in zip(trades, expected, strict=True):
        assert trade["paper"] is True
        assert float(trade["amount"]) == pytest.approx(amount, rel=1e-9)
        assert float(trade["price"]) == pytest.approx(price, rel=1e-9)
        assert float(trade["fee"]) == pytest.approx(fee, rel=1e-9)
    # The virtual balance is the backtest's balance: start + realised PnL − fees.
    realized = sum(float(t["realized_pnl"]) for t in trades)
    fees = sum(float(t["fee"]) for t in trades)
    balance = float(await pool.fetchval("SELECT balance FROM paper_accounts WHERE bot_id = $1", bot))
    assert balance == pytest.approx(BALANCE + realized - fees, rel=1e-12)
    state = (await pool.fetchrow("SELECT paper_free_balance, paper_equity FROM bot_state WHERE bot_id = $1", bot))
    assert state is not None and float(state["paper_free_balance"]) == pytest.approx(balance, rel=1e-12)
    assert all(o["paper"] for o in await pool.fetch("SELECT paper FROM orders WHERE bot_id = $1", bot))

    # Equity follows the last close: the balance plus the open position's PnL there.
    account = await pool.fetchrow("SELECT * FROM paper_accounts WHERE bot_id = $1", bot)
    assert account is not None and account["position_side"] is not None
    sign = 1.0 if account["position_side"] == "long" else -1.0
    marked = balance + sign * (CLOSES[-1] - float(account["entry_price"])) * float(account["position_size"])

    async def marked_at_last_close() -> bool:
        equity = await pool.fetchval("SELECT paper_equity FROM bot_state WHERE bot_id = $1", bot)
        return equity is not None and float(equity) == pytest.approx(marked, rel=1e-9)

    await eventually(marked_at_last_close, what="equity marked at the last close")

    requested = await sim.requests()
    assert not set(requested) & PRIVATE, requested
    r = await runtime_client.get("/healthz")
    assert r.status == 200


async def test_a_paper_bot_resumes_after_a_stop_with_its_balance_and_position(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl,
) -> None:
    user = await create_user(pool)
    bot = await _paper_bot(pool, user, paper_balance=Decimal(10_000))
    await _running(pool, runtime, bot)
    rows = candle_rows(CLOSES)
    for row in rows[:8]:  # long at 104, then short at 103
        await push_and_wait(runtime, sim, bot, row)
    before = await pool.fetchrow("SELECT * FROM paper_accounts WHERE bot_id = $1", bot)
    assert before is not None and before["position_side"] == "short"
    fills_before = await pool.fetchval("SELECT count(*) FROM paper_fills WHERE bot_id = $1", bot)

    # Stop without closing, then start again: a new run (new fence) reconciles with the paper account.
    await pool.execute("UPDATE bot_configs SET is_active = false WHERE id = $1", bot)
    await pool.execute("UPDATE bot_state SET status = 'stopping' WHERE bot_id = $1", bot)
    runtime.poke()

    async def stopped() -> bool:
        return await bot_status(pool, bot) == "stopped"

    await eventually(stopped, what="the paper bot to stop")
    await pool.execute("UPDATE bot_configs SET is_active = true WHERE id = $1", bot)
    await pool.execute("UPDATE bot_state SET status = 'starting' WHERE bot_id = $1", bot)
    await _running(pool, runtime, bot)
    after = await pool.fetchrow("SELECT * FROM paper_accounts WHERE bot_id = $1", bot)
    assert after is not None
    assert (after["balance"], after["position_side"], after["position_size"], after["entry_price"]) == (
        before["balance"], before["position_side"], before["position_size"], before["entry_price"])
    state = await pool.fetchrow("SELECT * FROM bot_state WHERE bot_id = $1", bot)
    assert state is not None and state["position_side"] == "short" and state["paper_free_balance"] == before["balance"]
    assert await pool.fetchval("SELECT count(*) FROM paper_fills WHERE bot_id = $1", bot) == fills_before

    # It trades on from there: the next cross closes the short with the PnL against its entry.
    for row in rows[8:13]:
        await push_and_wait(runtime, sim, bot, row)
    final = await pool.fetchrow("SELECT * FROM paper_accounts WHERE bot_id = $1", bot)
    assert final is not None and final["position_side"] == "long"
    cids = [r["client_order_id"] for r in await pool.fetch("SELECT client_order_id FROM paper_fills WHERE bot_id = $1",
                                                           bot)]
    assert len(cids) == len(set(cids))
    trades = await pool.fetch("SELECT realized_pnl, fee FROM trades WHERE bot_id = $1", bot)
    assert float(final["balance"]) == pytest.approx(
        10_000 + sum(float(t["realized_pnl"]) - float(t["fee"]) for t in trades), rel=1e-12)
    assert int(await pool.fetchval("SELECT count(DISTINCT fence_token) FROM orders WHERE bot_id = $1", bot)) == 2


async def test_a_paper_bot_keeps_the_daily_limits(runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl) -> None:
    user = await create_user(pool)
    bot = await _paper_bot(pool, user, paper_balance=Decimal(10_000), max_daily_trades=2)
    await _running(pool, runtime, bot)
    for row in candle_rows(CLOSES):
        await push_and_wait(runtime, sim, bot, row)
    state = await pool.fetchrow("SELECT status, pause_reason, daily_trades_count, in_position FROM bot_state "
                                "WHERE bot_id = $1", bot)
    assert state is not None and (state["status"], state["pause_reason"]) == ("paused", "daily_trades")
    # The day's two trades (long, then the reversal's close, never blocked); the short entry is refused.
    sides = [r["side"] for r in await pool.fetch("SELECT side FROM trades WHERE bot_id = $1 ORDER BY id", bot)]
    assert sides == ["buy", "sell"] and not state["in_position"]
