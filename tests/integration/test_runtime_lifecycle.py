"""The runtime's lifecycle against the real simulator: stop (and flatten), reconfigure, daily limits and
their reset, crash safety of orders, websocket drops, exchange 5xx bursts, and the errors that must
stop a bot with a readable message."""

from __future__ import annotations

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web

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
from tests.timing import ManualClock, eventually
from tradebot.config import Secrets
from tradebot.exchange.ccxt_factory import ExchangeClientFactory
from tradebot.exchange.simulator import RunningSimulator, SimulatorConfig
from tradebot.http.appkeys import BOTS
from tradebot.runtime import bot_store
from tradebot.runtime.bot_runtime import BotRuntime

UP = [100.0] * 5 + [104.0]  # EMA(5) of the first five is 100; a close of 104 targets long


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return manual_simulator()


async def _push_all(runtime: BotRuntime, sim: SimControl, bot: int, closes: list[float], start: int = START_MS) -> None:
    for row in candle_rows(closes, start):
        await push_and_wait(runtime, sim, bot, row)


async def _state(pool: asyncpg.Pool, bot: int) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM bot_state WHERE bot_id = $1", bot)
    assert row is not None
    return row


async def _accepted(sim: SimControl, api_key: str) -> list[str]:
    return [o["client_order_id"] for o in await sim.orders(api_key) if o["status"] != "rejected"]


async def test_stop_with_close_position_flattens_on_the_exchange(
    runtime_app: web.Application, runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader
) -> None:
    bot = await start_bot(pool, runtime, trader)
    await _push_all(runtime, sim, bot, UP)
    assert (await _state(pool, bot))["position_side"] == "long"
    assert (await sim.positions(trader.creds.api_key))["BTCUSDT"]["side"] == "long"

    await runtime_app[BOTS].stop(trader.user_id, bot, close_position=True)
    await eventually(lambda: _status_is(pool, bot, "stopped"), what="the bot to stop")
    state = await _state(pool, bot)
    assert not state["in_position"] and state["stop_close_position"] is False
    positions = await sim.positions(trader.creds.api_key)
    assert "BTCUSDT" not in positions or float(positions["BTCUSDT"]["amount"]) == 0
    orders = await pool.fetch("SELECT client_order_id, intent, status FROM orders WHERE bot_id = $1 ORDER BY id", bot)
    assert [o["intent"] for o in orders] == ["open_long", "close_long:closed on stop"]
    assert orders[-1]["client_order_id"].endswith("m") and orders[-1]["status"] == "filled"
    assert bot not in runtime.supervisor.running()
    assert bot not in runtime.leases.held()


async def test_stop_without_close_keeps_the_position(
    runtime_app: web.Application, runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader
) -> None:
    bot = await start_bot(pool, runtime, trader)
    await _push_all(runtime, sim, bot, UP)
    await runtime_app[BOTS].stop(trader.user_id, bot)
    await eventually(lambda: _status_is(pool, bot, "stopped"), what="the bot to stop")
    assert (await _state(pool, bot))["position_side"] == "long"
    assert (await sim.positions(trader.creds.api_key))["BTCUSDT"]["side"] == "long"


async def test_patch_ema_period_takes_effect_at_the_next_candle(
    runtime_app: web.Application, runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader
) -> None:
    bot = await start_bot(pool, runtime, trader, ema_period=5)
    await _push_all(runtime, sim, bot, [100.0] * 6)
    await runtime_app[BOTS].update(trader.user_id, bot, {"ema_period": 3})

    async def reconfigured() -> bool:
        actor = runtime.supervisor.actor(bot)
        return actor is not None and actor.params is not None and actor.params.ema_period == 3

    await eventually(reconfigured, what="the new EMA period")
    actor = runtime.supervisor.actor(bot)
    assert actor is not None and actor.strategy is not None
    # The indicator was recomputed over the same history with the new period.
    assert actor.strategy.ema.period == 3 and actor.strategy.last_candle_ts == START_MS + 5 * MINUTE
    await push_and_wait(runtime, sim, bot, candle_rows([100.0, 103.0], START_MS + 5 * MINUTE)[1])
    assert (await _state(pool, bot))["position_side"] == "long"


class TestDailyLimits:
    @pytest.fixture
    def runtime_clock(self) -> ManualClock:
        return ManualClock(wall_ms=START_MS + 12 * 3_600_000, real_time=True)

    async def test_trade_limit_pauses_and_the_new_day_resumes(
        self, runtime: BotRuntime, runtime_clock: ManualClock, pool: asyncpg.Pool, sim: SimControl, trader: Trader
    ) -> None:
        bot = await start_bot(pool, runtime, trader, max_daily_trades=2, allow_short=False, max_daily_loss_pct=50.0)
        # Long (trade 1), flat (trade 2), then a new long signal must be refused: limit reached.
        await _push_all(runtime, sim, bot, [*UP, 101.0, 105.0])
        state = await _state(pool, bot)
        assert state["status"] == "paused" and state["daily_trades_count"] == 2
        assert "daily limit of 2 trades" in state["last_error_message"]
        assert not state["in_position"]
        orders_before = len(await _accepted(sim, trader.creds.api_key))

        runtime_clock.advance_wall(24 * 3_600_000)  # 00:00 UTC passes; the next tick resets the day
        await eventually(lambda: _status_is(pool, bot, "running"), what="the daily reset to resume the bot")
        state = await _state(pool, bot)
        assert state["daily_trades_count"] == 0 and state["last_error_message"] is None
        await push_and_wait(runtime, sim, bot, candle_rows([105.0, 108.0], START_MS + 7 * MINUTE)[1])
        assert len(await _accepted(sim, trader.creds.api_key)) == orders_before + 1


async def test_daily_loss_limit_flattens_and_pauses(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader
) -> None:
    # 50% of the balance at 2x: a 6% adverse move loses about 6% of the balance, past a 1% limit.
    bot = await start_bot(pool, runtime, trader, max_daily_loss_pct=1.0, allow_short=False)
    await _push_all(runtime, sim, bot, UP)
    # Below the entry (104) but above the EMA (about 101.6): the strategy stays long, and the open
    # loss of about 2% of the balance breaks the 1% limit.
    await push_and_wait(runtime, sim, bot, [START_MS + 6 * MINUTE, 104.0, 104.5, 101.5, 102.0, 10.0])
    state = await _state(pool, bot)
    assert state["status"] == "paused" and "daily loss limit" in state["last_error_message"]
    assert not state["in_position"]
    orders = await pool.fetch("SELECT intent FROM orders WHERE bot_id = $1 ORDER BY id", bot)
    assert [o["intent"] for o in orders] == ["open_long", "close_long:daily loss limit"]


async def test_stop_loss_exits_and_waits_for_a_new_signal(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader
) -> None:
    bot = await start_bot(pool, runtime, trader, stop_loss_pct=2.0, allow_short=False)
    await _push_all(runtime, sim, bot, UP)
    # Still above the EMA (target long) but the low pierces entry - 2%: exit, and no re-entry.
    await push_and_wait(runtime, sim, bot, [START_MS + 6 * MINUTE, 104.0, 105.0, 101.0, 104.5, 10.0])
    await push_and_wait(runtime, sim, bot, [START_MS + 7 * MINUTE, 104.5, 106.0, 104.0, 105.0, 10.0])
    orders = await pool.fetch("SELECT client_order_id, intent FROM orders WHERE bot_id = $1 ORDER BY id", bot)
    assert [o["intent"] for o in orders] == ["open_long", "close_long:stop_loss"]
    assert orders[1]["client_order_id"].endswith("x")
    assert not (await _state(pool, bot))["in_position"]


async def test_crash_before_sending_leaves_no_order_and_no_duplicate(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader
) -> None:
    """(a) the order row was written, then the replica died before the request left."""
    bot = await create_bot(pool, trader.user_id, trader.key_id, active=True)
    await pool.execute("UPDATE bot_state SET fence_token = 1 WHERE bot_id = $1", bot)
    await pool.execute(
        """INSERT INTO orders (bot_id, user_id, client_order_id, symbol, side, amount, intent, signal_seq, fence_token)
           VALUES ($1, $2, $3, 'BTC/USDT:USDT', 'buy', 5, 'open_long', 1, 1)""",
        bot, trader.user_id, f"tb{bot}-1-1o",
    )
    runtime.poke()
    await eventually(lambda: _status_is(pool, bot, "running"), what="the bot to resume")
    order = await pool.fetchrow("SELECT status, error_message FROM orders WHERE bot_id = $1", bot)
    assert order["status"] == "expired" and "never reached" in order["error_message"]
    assert await sim.orders(trader.creds.api_key) == []
    assert not (await _state(pool, bot))["in_position"]


async def test_crash_after_the_exchange_accepted_records_the_fill_once(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader, simulator: RunningSimulator
) -> None:
    """(b) the exchange filled the order, then the replica died before recording the outcome."""
    await sim.push_klines("BTCUSDT", "1m", candle_rows([100.0])[:1])
    bot = await create_bot(pool, trader.user_id, trader.key_id, active=True)
    cid = f"tb{bot}-1-1o"
    await pool.execute("UPDATE bot_state SET fence_token = 1 WHERE bot_id = $1", bot)
    await pool.execute(
        """INSERT INTO orders (bot_id, user_id, client_order_id, symbol, side, amount, intent, signal_seq, fence_token)
           VALUES ($1, $2, $3, 'BTC/USDT:USDT', 'buy', 5, 'open_long', 1, 1)""",
        bot, trader.user_id, cid,
    )
    factory = ExchangeClientFactory(simulator.base_url)
    try:
        client = factory.private_client("binanceusdm", trader.creds.api_key, trader.creds.secret)
        await client.create_order("BTC/USDT:USDT", "market", "buy", 5, None, {"newClientOrderId": cid})
    finally:
        await factory.close()

    runtime.poke()
    await eventually(lambda: _status_is(pool, bot, "running"), what="the bot to resume")
    order = await pool.fetchrow("SELECT * FROM orders WHERE client_order_id = $1", cid)
    assert order["status"] == "filled" and float(order["filled_amount"]) == 5
    trades = await pool.fetch("SELECT * FROM trades WHERE bot_id = $1", bot)
    assert len(trades) == 1 and trades[0]["client_order_id"] == cid
    # The order answer has no fee: the trade is recorded with it unknown, and the fee is read after.
    fee = await eventually(lambda: pool.fetchval("SELECT fee FROM trades WHERE bot_id = $1", bot), what="the fee")
    assert float(fee) > 0
    state = await _state(pool, bot)
    assert state["position_side"] == "long" and float(state["position_size"]) == 5
    assert await _accepted(sim, trader.creds.api_key) == [cid]


async def test_exchange_5xx_burst_is_retried_without_a_duplicate(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader
) -> None:
    bot = await start_bot(pool, runtime, trader)
    await _push_all(runtime, sim, bot, UP[:-1])
    await sim.faults(fail_next_requests=3)
    await push_and_wait(runtime, sim, bot, candle_rows(UP)[-1], timeout=20)
    audit = await sim.orders(trader.creds.api_key)
    accepted = [o["client_order_id"] for o in audit if o["status"] != "rejected"]
    assert len(accepted) == 1 and len(set(accepted)) == 1
    assert (await _state(pool, bot))["position_side"] == "long"


async def test_websocket_drop_loses_no_decision(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader
) -> None:
    bot = await start_bot(pool, runtime, trader, max_daily_loss_pct=50.0)
    rows = candle_rows([*UP, 107.0, 95.0])
    for row in rows[:3]:
        await push_and_wait(runtime, sim, bot, row)
    await sim.faults(drop_websockets=True)
    # Pushed while the stream is down: the hub backfills them over REST after reconnecting.
    await sim.push_klines("BTCUSDT", "1m", rows[3:6])

    async def caught_up() -> bool:
        actor = runtime.supervisor.actor(bot)
        return actor is not None and actor.strategy is not None and actor.strategy.last_candle_ts == rows[5][0]

    await eventually(caught_up, timeout=20, what="the backfill after the drop")
    for row in rows[6:]:
        await push_and_wait(runtime, sim, bot, row)
    orders = await pool.fetch("SELECT intent FROM orders WHERE bot_id = $1 ORDER BY id", bot)
    # Shorts are allowed: the reversal closes the long and opens a short, each exactly once.
    assert [o["intent"] for o in orders] == ["open_long", "close_long:signal", "open_short"]


async def test_insufficient_balance_stops_the_bot_with_a_readable_message(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader, test_secrets: Secrets
) -> None:
    # Sizing uses 100% of the free balance at 10x: the margin plus the fee cannot be covered.
    bot = await start_bot(pool, runtime, trader, order_size_pct=100.0, leverage=10)
    await _push_all(runtime, sim, bot, UP[:-1])
    await sim.push_klines("BTCUSDT", "1m", candle_rows(UP)[-1:])  # the long signal: the order fails
    await eventually(lambda: _status_is(pool, bot, "error"), what="the bot to fail")
    state = await _state(pool, bot)
    assert state["last_error_message"] == "insufficient balance on the exchange for this order"
    assert not await pool.fetchval("SELECT is_active FROM bot_configs WHERE id = $1", bot)
    order = await pool.fetchrow("SELECT status FROM orders WHERE bot_id = $1", bot)
    assert order["status"] == "rejected"
    # the failure is mailed to the owner (queued with the status change), once
    mails = await pool.fetch("SELECT kind, user_id FROM mail_deliveries")
    assert [(m["kind"], m["user_id"]) for m in mails] == [("error", trader.user_id)]


async def test_invalid_key_stops_the_bot_with_a_readable_message(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader, test_secrets: Secrets
) -> None:
    from tests.simulator_helpers import Credentials

    bad = Credentials("not-a-known-key", "nope")
    key = await create_api_key(pool, trader.user_id, bad, test_secrets)
    bot = await create_bot(pool, trader.user_id, key)
    runtime.poke()
    await eventually(lambda: _status_is(pool, bot, "error"), what="the bot to fail")
    message = (await _state(pool, bot))["last_error_message"]
    assert "API key" in message or "position" in message
    assert "nope" not in message and "not-a-known-key" not in message


async def _status_is(pool: asyncpg.Pool, bot: int, status: str) -> bool:
    return await bot_status(pool, bot) == status


async def test_shutdown_hands_over_with_the_latest_state_and_no_lease_left(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader, redis_client: aioredis.Redis
) -> None:
    bot = await start_bot(pool, runtime, trader, ema_period=5)
    rows = candle_rows([100.0] * 4)
    for row in rows:
        await push_and_wait(runtime, sim, bot, row)
    await runtime.close()
    state = await _state(pool, bot)
    # Status untouched for the next owner; the indicator state is the one after the last candle.
    assert state["status"] == "running"
    assert state["last_candle_time"] == rows[-1][0] and state["strategy_state"]["strategy"] == "ema_cross"
    assert state["strategy_state"]["state"]["ema"]["count"] == 4
    ownership = await pool.fetch("SELECT released_at FROM bot_ownership WHERE bot_id = $1", bot)
    assert ownership and all(o["released_at"] is not None for o in ownership)
    assert await redis_client.exists(runtime.leases.lease_key(bot)) == 0


async def test_shutdown_ends_every_ownership_of_this_replica_even_one_no_actor_reported(
    runtime: BotRuntime, pool: asyncpg.Pool, trader: Trader
) -> None:
    # A take cancelled by the shutdown between its claim and starting the actor (or an actor slower
    # to end than the shutdown waits) never reports its exit: its ownership must end all the same,
    # or the books say this replica still owns a bot nobody runs (seen in the chaos audit).
    bot = await create_bot(pool, trader.user_id, trader.key_id, active=False)
    assert await bot_store.claim(pool, bot, 7, runtime.leases.replica_id)
    await runtime.close()
    [ownership] = await pool.fetch("SELECT released_at FROM bot_ownership WHERE bot_id = $1", bot)
    assert ownership["released_at"] is not None
