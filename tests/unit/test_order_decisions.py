"""Pure order decisions and position accounting: no event loop, no I/O, no clock.

A decision is a generator of steps that sees the book after each step it asked for; `run` below
carries the steps out the way an account would (every order fills in full at `price`, unless the
test says a step is rejected) and returns what was asked for, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date

import pytest

from tradebot.runtime.client_order_id import Leg
from tradebot.runtime.order_decisions import (
    Book,
    Close,
    ClosedCandle,
    DailyTally,
    Open,
    Pause,
    PauseReason,
    Step,
    Steps,
    follow,
    on_candle,
    pause_still_holds,
)
from tradebot.runtime.positions import FLAT, Position, apply_fill, closing_side, differs, unrealized_pnl
from tradebot.runtime.risk import MarketLimits, RiskLimits, position_size
from tradebot.strategies.base import Target

DAY = date(2026, 1, 2)
LIMITS = RiskLimits(max_daily_trades=10, max_daily_loss_pct=5.0)
LONG = Position("long", 1.0, 100.0)
SHORT = Position("short", 1.0, 100.0)


def book(position: Position = FLAT, *, trades: int = 0, pnl: float = 0.0, balance: float = 1000.0,
         stopped_out_seq: int | None = None) -> Book:
    return Book(position, DailyTally(DAY, pnl, trades), balance, stopped_out_seq)


def run(steps: Steps, start: Book, price: float, seq: int, *,
        rejected: Callable[[Step], bool] = lambda step: False) -> tuple[list[Step], Book]:
    """Carry the steps out like the actor does against an account that fills at `price`."""
    asked: list[Step] = []
    current = start
    try:
        step = next(steps)
        while True:
            asked.append(step)
            if not rejected(step):
                current = _carry_out(step, current, price, seq)
            step = steps.send(current)
    except StopIteration:
        return asked, current


def _carry_out(step: Step, b: Book, price: float, seq: int) -> Book:
    if isinstance(step, Close):
        position, realized = apply_fill(b.position, closing_side(b.position), b.position.size, price, closing=True)
        b = replace(b, position=position, tally=b.tally.with_fill(realized, None))
        return replace(b, stopped_out_seq=seq) if step.stops_out else b
    if isinstance(step, Open):
        position, _ = apply_fill(b.position, "buy" if step.side == "long" else "sell", 1.0, price, closing=False)
        return replace(b, position=position, tally=b.tally.with_fill(0.0, None))
    return b


def candle(close: float, low: float | None = None, high: float | None = None) -> ClosedCandle:
    return ClosedCandle(low if low is not None else close, high if high is not None else close, close)


# ------------------------------------------------------------------------------------------ following


def test_a_reversal_is_two_legs_close_then_open() -> None:
    asked, after = run(on_candle(book(LONG), candle(101.0), Target.SHORT, 7, LIMITS, paused=False), book(LONG), 101.0, 7)
    assert asked == [Close(Leg.CLOSE, "signal"), Open("short")]
    assert after.position == Position("short", 1.0, 101.0)
    assert after.tally.trades == 2 and after.tally.pnl == pytest.approx(1.0)


def test_a_rejected_closing_leg_does_not_hold_back_the_opening_one() -> None:
    """The open of a reversal goes out even when its close was rejected: the rule as the actor has it."""
    asked, _ = run(follow(book(LONG), Target.SHORT, 7, LIMITS, paused=False), book(LONG), 101.0, 7,
                       rejected=lambda step: isinstance(step, Close))
    assert asked == [Close(Leg.CLOSE, "signal"), Open("short")]


def test_nothing_to_do_when_the_position_is_the_target() -> None:
    assert run(follow(book(LONG), Target.LONG, 3, LIMITS, paused=False), book(LONG), 100.0, 3)[0] == []
    assert run(follow(book(), Target.FLAT, 3, LIMITS, paused=False), book(), 100.0, 3)[0] == []
    assert run(follow(book(), None, 3, LIMITS, paused=False), book(), 100.0, 3)[0] == []


def test_flat_target_only_closes() -> None:
    asked, after = run(follow(book(SHORT), Target.FLAT, 3, LIMITS, paused=False), book(SHORT), 90.0, 3)
    assert asked == [Close(Leg.CLOSE, "signal")] and after.position.flat
    assert after.tally.pnl == pytest.approx(10.0)


def test_a_paused_bot_closes_but_never_opens() -> None:
    asked, after = run(follow(book(LONG), Target.SHORT, 3, LIMITS, paused=True), book(LONG), 100.0, 3)
    assert asked == [Close(Leg.CLOSE, "signal")] and after.position.flat


# ------------------------------------------------------------------------------------------ stop-out


def test_a_stop_loss_closes_and_blocks_reentry_on_the_same_signal() -> None:
    limits = replace(LIMITS, stop_loss_pct=2.0)
    start = book(LONG)
    asked, after = run(on_candle(start, candle(99.0, low=97.5), Target.LONG, 4, limits, paused=False), start, 98.0, 4)
    assert asked == [Close(Leg.EXIT, "stop_loss", stops_out=True)]
    assert after.position.flat and after.stopped_out_seq == 4
    # The next candle of the same signal: still long, but no re-entry.
    asked, _ = run(on_candle(after, candle(103.0), Target.LONG, 4, limits, paused=False), after, 103.0, 4)
    assert asked == []
    # A new signal (the target changed and came back) enters again.
    asked, _ = run(on_candle(after, candle(103.0), Target.LONG, 6, limits, paused=False), after, 103.0, 6)
    assert asked == [Open("long")]


def test_a_take_profit_on_a_short() -> None:
    limits = replace(LIMITS, take_profit_pct=3.0)
    asked, after = run(on_candle(book(SHORT), candle(98.0, low=96.9), Target.SHORT, 2, limits, paused=False),
                       book(SHORT), 97.0, 2)
    assert asked == [Close(Leg.EXIT, "take_profit", stops_out=True)] and after.position.flat


def test_a_stop_out_then_a_reversed_target_opens_the_other_side() -> None:
    limits = replace(LIMITS, stop_loss_pct=2.0)
    start = book(LONG)
    asked, after = run(on_candle(start, candle(97.0, low=97.0), Target.SHORT, 5, limits, paused=False), start, 97.0, 5)
    # Stopped out on signal 5: the short of signal 5 is not taken either (like the backtest).
    assert asked == [Close(Leg.EXIT, "stop_loss", stops_out=True)]
    assert after.position.flat


# ------------------------------------------------------------------------------------------ daily limits


def test_daily_trade_limit_pauses_instead_of_opening() -> None:
    limits = replace(LIMITS, max_daily_trades=3)
    asked, after = run(on_candle(book(trades=3), candle(100.0), Target.LONG, 1, limits, paused=False),
                       book(trades=3), 100.0, 1)
    assert asked == [Pause(PauseReason.DAILY_TRADES, "daily limit of 3 trades reached; trading resumes at 00:00 UTC")]
    assert after.position.flat


def test_the_closing_leg_counts_toward_the_daily_trade_limit() -> None:
    limits = replace(LIMITS, max_daily_trades=3)
    start = book(LONG, trades=2)
    asked, after = run(on_candle(start, candle(100.0), Target.SHORT, 1, limits, paused=False), start, 100.0, 1)
    assert [type(s) for s in asked] == [Close, Pause] and after.position.flat


def test_daily_loss_counts_the_open_position_and_pauses_after_closing() -> None:
    start = book(LONG, pnl=-20.0, balance=1000.0)  # limit 5% of 1000 = 50; open loss 31 at 69
    asked, after = run(on_candle(start, candle(69.0), Target.LONG, 2, LIMITS, paused=False), start, 69.0, 2)
    assert asked == [Close(Leg.EXIT, "daily loss limit"),
                     Pause(PauseReason.DAILY_LOSS, "daily loss limit of 5% reached; trading resumes at 00:00 UTC")]
    assert after.position.flat and after.tally.pnl == pytest.approx(-51.0)


def test_daily_loss_when_flat_only_pauses_and_a_paused_bot_is_not_paused_again() -> None:
    start = book(pnl=-60.0)
    asked, _ = run(on_candle(start, candle(100.0), Target.LONG, 2, LIMITS, paused=False), start, 100.0, 2)
    assert [type(s) for s in asked] == [Pause]
    asked, _ = run(on_candle(start, candle(100.0), Target.LONG, 2, LIMITS, paused=True), start, 100.0, 2)
    assert asked == []  # paused: no new exposure, nothing to close


def test_a_stop_out_realises_the_loss_the_daily_limit_then_sees() -> None:
    limits = replace(LIMITS, stop_loss_pct=2.0)
    start = book(LONG, pnl=-49.0)
    # Stopped out at 97 (-3): the day is at -52, past the limit of 50: the bot pauses.
    asked, after = run(on_candle(start, candle(99.0, low=97.0), Target.LONG, 8, limits, paused=False),
                       start, 97.0, 8)
    assert [type(s) for s in asked] == [Close, Pause] and after.tally.pnl == pytest.approx(-52.0)


# ------------------------------------------------------------------------------------------ days


def test_day_rollover_resets_the_tally_once() -> None:
    tally = DailyTally(DAY, -12.5, 4)
    assert tally.rolled(DAY) is tally
    assert tally.rolled(date(2026, 1, 3)) == DailyTally(date(2026, 1, 3), 0.0, 0)
    assert DailyTally(None).rolled(DAY) == DailyTally(DAY)


def test_a_late_fee_counts_only_on_the_day_its_trade_was_counted() -> None:
    tally = DailyTally(DAY, 10.0, 1)
    assert tally.with_fee(0.5, DAY).pnl == pytest.approx(9.5)
    assert tally.with_fee(0.5, date(2026, 1, 1)) is tally
    assert tally.with_fill(2.0, None) == DailyTally(DAY, 12.0, 2)  # an unknown fee is never read as 0
    assert tally.with_fill(2.0, 0.25).pnl == pytest.approx(11.75)


def test_a_pause_holds_for_the_rest_of_its_day_only() -> None:
    assert pause_still_holds("daily_loss", DAY, DAY)
    assert not pause_still_holds("daily_loss", DAY, date(2026, 1, 3))
    assert not pause_still_holds(None, DAY, DAY)


# ------------------------------------------------------------------------------------------ sizing


def test_below_the_minimum_size_there_is_no_order_and_a_reason() -> None:
    market = MarketLimits(amount_step=0.001, min_amount=0.001, min_notional=100.0)
    sizing = position_size(free_balance=1.0, order_size_pct=10.0, leverage=1, price=50_000.0, market=market)
    assert sizing.amount == 0 and sizing.reason is not None and "below the market minimum" in sizing.reason


# ------------------------------------------------------------------------------------------ positions


def test_apply_fill_opens_adds_and_closes() -> None:
    opened, realized = apply_fill(FLAT, "buy", 1.0, 100.0, closing=False)
    assert opened == Position("long", 1.0, 100.0) and realized == 0.0
    added, _ = apply_fill(opened, "buy", 1.0, 110.0, closing=False)
    assert added == Position("long", 2.0, 105.0)
    partly, realized = apply_fill(added, "sell", 0.5, 115.0, closing=True)
    assert partly == Position("long", 1.5, 105.0) and realized == pytest.approx(5.0)
    closed, realized = apply_fill(partly, "sell", 3.0, 95.0, closing=True)  # more than held: the rest
    assert closed.flat and realized == pytest.approx(-15.0)


def test_apply_fill_of_nothing_changes_nothing() -> None:
    assert apply_fill(LONG, "sell", 0.0, 120.0, closing=True) == (LONG, 0.0)
    assert apply_fill(LONG, "sell", 1.0, 0.0, closing=True) == (LONG, 0.0)
    assert apply_fill(FLAT, "sell", 1.0, 120.0, closing=True) == (FLAT, 0.0)


def test_unrealized_pnl_by_side() -> None:
    assert unrealized_pnl(LONG, 103.0) == pytest.approx(3.0)
    assert unrealized_pnl(SHORT, 103.0) == pytest.approx(-3.0)
    assert unrealized_pnl(FLAT, 103.0) == 0.0


def test_a_position_that_differs_from_the_exchanges() -> None:
    assert not differs(FLAT, Position(None, 0.0, None))
    assert not differs(LONG, Position("long", 1.0 + 1e-12, 99.0))  # float noise, entry price aside
    assert differs(LONG, FLAT) and differs(FLAT, LONG)
    assert differs(LONG, SHORT)
    assert differs(LONG, Position("long", 1.5, 100.0))
