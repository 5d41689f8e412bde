"""Protective orders held by the exchange, wired into the bots: the real simulator through ccxt's
binanceusdm, real PostgreSQL; the stop fills on the exchange inside the candle and the bot records
it (reason stop_loss), cancels the rest, and waits for a fresh signal."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.integration.runtime_helpers import MINUTE, START_MS, candle_rows, push_and_wait
from tests.runtime_fixtures import Trader, manual_simulator, start_bot
from tests.simulator_helpers import SimControl
from tests.timing import eventually
from tradebot.exchange.simulator import SimulatorConfig
from tradebot.runtime.bot_runtime import BotRuntime
from tradebot.runtime.mailbox import Reconfigure

UP = [100.0] * 5 + [104.0]  # EMA(5) of the first five is 100; a close of 104 targets long


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return manual_simulator()


async def _push_all(runtime: BotRuntime, sim: SimControl, bot: int, closes: list[float]) -> None:
    for row in candle_rows(closes):
        await push_and_wait(runtime, sim, bot, row)


async def _orders(pool: asyncpg.Pool, bot: int) -> list[asyncpg.Record]:
    return list(await pool.fetch("SELECT * FROM orders WHERE bot_id = $1 ORDER BY id", bot))


def _by_cid(listed: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["client_order_id"]: o for o in listed}


async def test_entry_places_stop_and_take_profit_and_a_stop_fill_is_recorded_once(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader
) -> None:
    bot = await start_bot(pool, runtime, trader, stop_loss_pct=2.0, take_profit_pct=5.0, allow_short=False)
    await _push_all(runtime, sim, bot, UP)
    orders = await _orders(pool, bot)
    entry = orders[0]
    assert (entry["intent"], entry["status"]) == ("open_long", "filled")
    price = float(entry["average_price"])
    protective = {o["type"]: o for o in orders[1:]}
    assert set(protective) == {"stop_market", "take_profit_market"}
    assert all(o["status"] == "open" and o["reduce_only"] for o in protective.values())
    stop_cid = protective["stop_market"]["client_order_id"]
    take_cid = protective["take_profit_market"]["client_order_id"]
    assert (stop_cid, take_cid) == (f"tb{bot}-{entry['signal_seq']}s0", f"tb{bot}-{entry['signal_seq']}t0")
    listed = _by_cid(await sim.orders(trader.creds.api_key))
    assert listed[stop_cid]["type"] == "stop_market"
    assert listed[stop_cid]["stop_price"] == pytest.approx(price * 0.98, abs=0.1)
    assert listed[take_cid]["type"] == "take_profit_market"
    assert listed[take_cid]["stop_price"] == pytest.approx(price * 1.05, abs=0.1)

    # Still above the EMA (target long), but the low goes through the stop: the exchange fills it.
    await push_and_wait(runtime, sim, bot, [START_MS + 6 * MINUTE, 104.0, 105.0, 101.0, 104.5, 10.0])
    assert await sim.positions(trader.creds.api_key) == {}
    trades = await pool.fetch("SELECT * FROM trades WHERE bot_id = $1 ORDER BY id", bot)
    assert [(t["side"], t["reason"], t["client_order_id"]) for t in trades] == [
        ("buy", "signal", entry["client_order_id"]), ("sell", "stop_loss", stop_cid),
    ]
    assert float(trades[1]["price"]) == pytest.approx(price * 0.98, abs=0.1)  # the stop, not the close
    statuses = {o["client_order_id"]: o["status"] for o in await _orders(pool, bot)}
    assert (statuses[stop_cid], statuses[take_cid]) == ("filled", "canceled")
    listed = _by_cid(await sim.orders(trader.creds.api_key))
    assert (listed[stop_cid]["status"], listed[take_cid]["status"]) == ("filled", "canceled")
    state = await pool.fetchrow("SELECT * FROM bot_state WHERE bot_id = $1", bot)
    assert not state["in_position"]

    # The target stays long: no re-entry until a fresh signal, and nothing else was placed.
    await push_and_wait(runtime, sim, bot, [START_MS + 7 * MINUTE, 104.5, 106.0, 104.0, 105.0, 10.0])
    assert len(await _orders(pool, bot)) == 3
    assert len(await sim.orders(trader.creds.api_key)) == 3


async def test_a_settings_change_re_places_the_protection(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader
) -> None:
    bot = await start_bot(pool, runtime, trader, stop_loss_pct=2.0, allow_short=False)
    await _push_all(runtime, sim, bot, UP)
    entry = (await _orders(pool, bot))[0]
    await pool.execute("UPDATE bot_configs SET stop_loss_pct = 3.0, take_profit_pct = 4.0 WHERE id = $1", bot)
    runtime.supervisor.send(bot, Reconfigure())  # what the API's update sends

    async def replaced() -> bool:
        rows = await _orders(pool, bot)
        return [(o["type"], o["status"]) for o in rows[1:]] == [
            ("stop_market", "canceled"), ("stop_market", "open"), ("take_profit_market", "open"),
        ]

    await eventually(replaced, what="the stop loss to be re-placed with the take profit")
    seq = entry["signal_seq"]
    listed = _by_cid(await sim.orders(trader.creds.api_key))
    price = float(entry["average_price"])
    assert listed[f"tb{bot}-{seq}s0"]["status"] == "canceled"
    assert listed[f"tb{bot}-{seq}s1"]["stop_price"] == pytest.approx(price * 0.97, abs=0.1)
    assert listed[f"tb{bot}-{seq}t0"]["stop_price"] == pytest.approx(price * 1.04, abs=0.1)


async def test_the_strategy_exit_cancels_the_protection(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader
) -> None:
    bot = await start_bot(pool, runtime, trader, stop_loss_pct=10.0, take_profit_pct=10.0, allow_short=False)
    await _push_all(runtime, sim, bot, UP)
    # Below the EMA: the strategy exits at market, then the stop and take profit are cancelled.
    await push_and_wait(runtime, sim, bot, [START_MS + 6 * MINUTE, 104.0, 104.5, 98.0, 98.5, 10.0])
    rows = await _orders(pool, bot)
    assert [(o["type"], o["status"]) for o in rows] == [
        ("market", "filled"), ("stop_market", "canceled"), ("take_profit_market", "canceled"), ("market", "filled"),
    ]
    assert await sim.positions(trader.creds.api_key) == {}
    reasons = await pool.fetch("SELECT reason FROM trades WHERE bot_id = $1 ORDER BY id", bot)
    assert [r["reason"] for r in reasons] == ["signal", "signal"]


async def test_a_trailing_stop_is_placed_with_its_callback_rate(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader
) -> None:
    bot = await start_bot(pool, runtime, trader, trailing_stop_pct=1.5, allow_short=False)
    await _push_all(runtime, sim, bot, UP)
    rows = await _orders(pool, bot)
    assert [(o["type"], o["status"], o["callback_rate"]) for o in rows[1:]] == [("trailing_stop_market", "open", 1.5)]
    listed = _by_cid(await sim.orders(trader.creds.api_key))
    assert listed[rows[1]["client_order_id"]]["type"] == "trailing_stop_market"
    # Up to 110 then back below 110 × (1 − 1.5%): the trailing stop fires on the exchange.
    await push_and_wait(runtime, sim, bot, [START_MS + 6 * MINUTE, 104.0, 110.0, 103.9, 109.0, 10.0])
    await push_and_wait(runtime, sim, bot, [START_MS + 7 * MINUTE, 109.0, 109.5, 107.0, 108.0, 10.0])
    assert await sim.positions(trader.creds.api_key) == {}
    reasons = await pool.fetch("SELECT reason FROM trades WHERE bot_id = $1 ORDER BY id", bot)
    assert [r["reason"] for r in reasons] == ["signal", "trailing_stop"]


async def test_a_position_whose_protection_cannot_be_placed_takes_no_new_entries(
    runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, trader: Trader
) -> None:
    await sim.faults(missing_endpoints=["/fapi/v1/algoOrder"])  # the exchange serves no conditional orders
    bot = await start_bot(pool, runtime, trader, stop_loss_pct=5.0, allow_short=True)
    await _push_all(runtime, sim, bot, UP)
    state = await pool.fetchrow("SELECT * FROM bot_state WHERE bot_id = $1", bot)
    assert state["position_side"] == "long"
    assert state["last_error_message"].startswith("position not protected, no new entries: the stop loss order")
    # Below the EMA (above the stop): the reversal's close goes out (risk-reducing), its short entry
    # does not. (A candle through the stop would exit at its close: the bot's own check stands in
    # while the exchange holds no stop.)
    await push_and_wait(runtime, sim, bot, [START_MS + 6 * MINUTE, 104.0, 104.5, 100.5, 101.0, 10.0])
    market = [o["intent"] for o in await _orders(pool, bot) if o["type"] == "market"]
    assert market == ["open_long", "close_long:signal"]
    assert await sim.positions(trader.creds.api_key) == {}
    # Served again: the next fresh signal enters, protected.
    await sim.faults(missing_endpoints=[])
    await push_and_wait(runtime, sim, bot, [START_MS + 7 * MINUTE, 102.0, 106.5, 101.5, 106.0, 10.0])

    async def protected_again() -> bool:
        rows = await _orders(pool, bot)
        entered = [o["intent"] for o in rows if o["type"] == "market"][-1] == "open_long"
        return bool(entered and (rows[-1]["type"], rows[-1]["status"]) == ("stop_market", "open"))

    await eventually(protected_again, what="a new entry with its stop loss")
    state = await pool.fetchrow("SELECT last_error_message FROM bot_state WHERE bot_id = $1", bot)
    assert state["last_error_message"] is None or "not protected" not in state["last_error_message"]
