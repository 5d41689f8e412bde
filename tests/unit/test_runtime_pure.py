"""Pure runtime rules: client order ids, risk checks, position sizing, the mailbox's policy."""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradebot.runtime.candles import Candle
from tradebot.runtime.client_order_id import Leg, client_order_id, is_valid
from tradebot.runtime.mailbox import Mailbox, Reconfigure, Stop, Tick
from tradebot.runtime.risk import (
    ExitReason,
    MarketLimits,
    RiskLimits,
    check_exit,
    daily_loss_breached,
    daily_trades_reached,
    floor_to_step,
    leverage_error,
    position_size,
)

BTC = MarketLimits(amount_step=0.001, min_amount=0.001, min_notional=100.0, max_leverage=125)


def test_client_order_ids_are_deterministic_and_readable() -> None:
    assert client_order_id(12, 3, 5, Leg.OPEN) == "tb12-3-5o"
    assert client_order_id(12, 3, 5, Leg.OPEN) == client_order_id(12, 3, 5, Leg.OPEN)
    assert len({client_order_id(12, 3, 5, leg) for leg in Leg}) == len(Leg)


@given(st.integers(1, 2**63 - 1), st.integers(1, 2**63 - 1), st.integers(0, 2**63 - 1), st.sampled_from(list(Leg)))
def test_client_order_ids_always_fit_binance(bot: int, fence: int, seq: int, leg: Leg) -> None:
    cid = client_order_id(bot, fence, seq, leg)
    assert is_valid(cid) and len(cid) <= 36 and re.fullmatch(r"[A-Za-z0-9_-]+", cid)


def test_client_order_id_parts_are_distinct_even_when_compacted() -> None:
    big = 2**62
    assert client_order_id(big, 1, 1, Leg.OPEN) != client_order_id(big, 1, 2, Leg.OPEN)
    with pytest.raises(ValueError):
        client_order_id(0, 1, 1, Leg.OPEN)


def test_position_size_rounds_down_to_the_step() -> None:
    sizing = position_size(10_000, 10, 3, 61_234.5, BTC)
    assert sizing.amount == 0.048  # 3000 / 61234.5 = 0.04899... rounded down, never up
    assert sizing.reason is None


def test_position_size_below_the_minimum_says_why() -> None:
    sizing = position_size(50, 10, 1, 60_000, BTC)
    assert sizing.amount == 0 and "below the market minimum" in (sizing.reason or "")
    notional = position_size(1_000, 10, 1, 60_000, MarketLimits(0.001, 0.001, 100.0))
    assert notional.amount == 0 and "minimum notional" in (notional.reason or "")


def test_floor_to_step_is_exact_in_decimal() -> None:
    assert floor_to_step(0.3, 0.1) == 0.3
    assert floor_to_step(0.29999, 0.1) == 0.2
    assert floor_to_step(1234.5678, 0.01) == 1234.56


def test_stop_loss_and_take_profit() -> None:
    limits = RiskLimits(50, 5, stop_loss_pct=2, take_profit_pct=3)
    assert check_exit("long", 100, 97.9, 101, limits) is ExitReason.STOP_LOSS
    assert check_exit("long", 100, 98.5, 103.0, limits) is ExitReason.TAKE_PROFIT
    assert check_exit("long", 100, 98.5, 102.9, limits) is None
    assert check_exit("short", 100, 99, 102.0, limits) is ExitReason.STOP_LOSS
    assert check_exit("short", 100, 97.0, 101, limits) is ExitReason.TAKE_PROFIT
    # Both touched in one candle: the stop wins (the conservative reading).
    assert check_exit("long", 100, 90, 110, limits) is ExitReason.STOP_LOSS
    assert check_exit("long", 100, 50, 150, RiskLimits(50, 5)) is None


def test_daily_limits() -> None:
    limits = RiskLimits(max_daily_trades=3, max_daily_loss_pct=5)
    assert not daily_trades_reached(2, limits) and daily_trades_reached(3, limits)
    assert not daily_loss_breached(-499, 10_000, limits)
    assert daily_loss_breached(-500, 10_000, limits)
    assert not daily_loss_breached(-500, 0, limits)  # unknown balance: no verdict
    assert leverage_error(126, BTC) and leverage_error(0, BTC) and not leverage_error(20, BTC)


def _candle(t: int) -> Candle:
    return Candle("BTC/USDT:USDT", "1m", t * 60_000, 1, 1, 1, 1, 1)


async def test_mailbox_serves_commands_before_candles_and_never_drops_them() -> None:
    box = Mailbox(candle_capacity=2)
    box.offer(_candle(1))
    box.offer(_candle(2))
    box.offer(_candle(3))  # full: the oldest candle goes, and it is counted
    box.send(Reconfigure())
    box.send(Stop())
    assert box.dropped_candles == 1
    got = [await box.get() for _ in range(4)]
    assert isinstance(got[0], Reconfigure) and isinstance(got[1], Stop)
    assert [c.open_time for c in got[2:] if isinstance(c, Candle)] == [120_000, 180_000]


async def test_mailbox_counts_the_candles_queued_behind_its_commands() -> None:
    box = Mailbox()
    box.send(Tick())
    assert box.queued_candles == 0
    box.offer(_candle(1))
    box.offer(_candle(2))
    assert box.queued_candles == 2 and len(box) == 3
    await box.get()  # the tick
    await box.get()
    assert box.queued_candles == 1


async def test_mailbox_coalesces_ticks_and_wakes_a_waiting_reader() -> None:
    box = Mailbox()
    reader = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    box.send(Tick())
    box.send(Tick())
    assert isinstance(await reader, Tick)
    assert len(box) == 0
    # An empty mailbox is falsy (it has a length): callers must compare with None, not truthiness.
    assert not box and box is not None
