"""Fees: a fee the exchange does not report is unknown (null), never 0, and is filled in later.

Against an exchange without `GET /fapi/v1/userTrades` (a simulator fault), a reversal's second leg
must not wait on fee lookups, the trades are stored with fee null, and the daily PnL counts only
known fees; once the endpoint answers, the fees are filled in and the daily PnL catches up.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal

import asyncpg
import pytest

from tests.integration.runtime_helpers import candle_rows, push_and_wait
from tests.runtime_fixtures import Trader, manual_simulator, start_bot
from tests.simulator_helpers import SimControl
from tests.timing import eventually
from tradebot.bots.views import trade_view
from tradebot.exchange.errors import NotServed
from tradebot.exchange.simulator import SimulatorConfig
from tradebot.runtime.bot_runtime import BotRuntime
from tradebot.runtime.mailbox import Stop

USER_TRADES = "GET /fapi/v1/userTrades"
FEE_RATE = Decimal("0.0004")  # the simulator's default taker fee
# EMA(2): flat (seed), long above it, then a close below it reverses to short (small moves: no
# daily-loss pause).
CLOSES = [100.0, 100.0, 100.5, 100.2]


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return manual_simulator()


def _at(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


async def _trades(pool: asyncpg.Pool, bot: int) -> list[asyncpg.Record]:
    return list(await pool.fetch("SELECT * FROM trades WHERE bot_id = $1 ORDER BY id", bot))


async def _daily_pnl(pool: asyncpg.Pool, bot: int) -> Decimal:
    value: Decimal = await pool.fetchval("SELECT daily_pnl FROM bot_state WHERE bot_id = $1", bot)
    return value


async def _reverse_without_user_trades(runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl,
                                       trader: Trader) -> int:
    await sim.faults(missing_endpoints=["/fapi/v1/userTrades"])
    bot = await start_bot(pool, runtime, trader, ema_period=2, allow_short=True)
    for i, row in enumerate(candle_rows(CLOSES)):
        await push_and_wait(runtime, sim, bot, row, what=f"a decision on candle {i}")
    return bot


async def test_a_reversal_does_not_wait_on_a_missing_fee_endpoint(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader
) -> None:
    bot = await _reverse_without_user_trades(runtime, pool, sim, trader)

    audit = await sim.orders(trader.creds.api_key)
    assert [(a["side"], a["status"]) for a in audit] == [("buy", "filled"), ("sell", "filled"), ("sell", "filled")]
    # The bad path spent ~3 s retrying the 404 after the close leg; the open leg follows at once.
    gap = (_at(audit[2]["received_at"]) - _at(audit[1]["received_at"])).total_seconds()
    print(f"reversal: second leg {gap * 1000:.0f} ms after the first")
    assert gap < 1.0, f"second leg of the reversal went out {gap:.3f}s after the first"

    trades = await _trades(pool, bot)
    assert len(trades) == 3
    assert all(t["fee"] is None for t in trades)
    assert all(trade_view(t)["fee"] is None for t in trades)
    events = await runtime.ctx.events.replay(bot, None)
    assert [e.data["fee"] for e in events if e.event == "trade"] == [None, None, None]
    # Nothing is taken as zero: the daily PnL is the realised PnL, with no fee counted yet.
    realized = sum((t["realized_pnl"] for t in trades), Decimal(0))
    assert realized != 0
    assert await _daily_pnl(pool, bot) == realized


async def test_fees_are_filled_in_once_the_exchange_answers(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader
) -> None:
    bot = await _reverse_without_user_trades(runtime, pool, sim, trader)
    assert all(t["fee"] is None for t in await _trades(pool, bot))

    await sim.faults(missing_endpoints=[])

    async def all_known() -> bool:
        return all(t["fee"] is not None for t in await _trades(pool, bot))

    await eventually(all_known, timeout=60.0, what="the unknown fees to be filled in")
    trades = await _trades(pool, bot)
    for t in trades:
        assert t["fee"] == pytest.approx(t["price"] * t["amount"] * FEE_RATE, rel=Decimal("1e-9"))
        order_fee = await pool.fetchval("SELECT fee FROM orders WHERE id = $1", t["order_id"])
        assert order_fee == t["fee"]
    expected = sum((t["realized_pnl"] - t["fee"] for t in trades), Decimal(0))

    async def caught_up() -> bool:
        return await _daily_pnl(pool, bot) == expected

    await eventually(caught_up, what=f"daily PnL to include the fees ({expected})")
    events = await runtime.ctx.events.replay(bot, None)
    assert [e.event for e in events].count("trade") == 3  # a fee arriving is a state change, not a trade
    assert events[-1].event == "state" and Decimal(str(events[-1].data["daily_pnl"])) == expected


async def test_one_fee_lookup_asks_the_exchange_once(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader
) -> None:
    """The gateway itself: a missing endpoint is one request and a final answer, not five."""
    account = await runtime.ctx.accounts.get(trader.key_id)
    await account.market_limits("BTC/USDT:USDT")
    await sim.faults(missing_endpoints=["/fapi/v1/userTrades"])
    before = (await sim.requests()).get(USER_TRADES, 0)
    with pytest.raises(NotServed):
        await account.order_fee("12345", "BTC/USDT:USDT", 1.0)
    assert (await sim.requests())[USER_TRADES] == before + 1


async def test_a_crashed_fee_collector_fails_its_actor_loudly_and_is_never_left_running(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader, caplog: pytest.LogCaptureFixture
) -> None:
    account = await runtime.ctx.accounts.get(trader.key_id)
    real = account.order_fee
    calls = 0

    async def crash_once(exchange_order_id: str, symbol: str, filled: float) -> float | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("fee collector bug")
        return await real(exchange_order_id, symbol, filled)

    account.order_fee = crash_once  # type: ignore[method-assign]  # a fault in our own code, not a mock of a server
    bot = await start_bot(pool, runtime, trader, ema_period=2)
    for i, row in enumerate(candle_rows(CLOSES[:3])):
        await push_and_wait(runtime, sim, bot, row, what=f"a decision on candle {i}")

    async def restarted() -> bool:
        return runtime.supervisor.restarts == 1

    await eventually(restarted, what="the supervisor to restart the actor whose fee collector crashed")
    assert any(r.levelname == "ERROR" and "fee collector stopped" in r.getMessage() for r in caplog.records)

    async def fee_known() -> bool:
        trades = await _trades(pool, bot)
        return len(trades) == 1 and trades[0]["fee"] is not None

    await eventually(fee_known, what="the restarted actor's collector to read the fee")
    actor = runtime.supervisor.actor(bot)
    assert actor is not None

    await runtime.supervisor.stop(bot, Stop(reason="test"), timeout=5.0)
    names = {t.get_name() for t in asyncio.all_tasks()}
    assert f"bot-{bot}-fees" not in names
