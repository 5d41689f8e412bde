"""The order decision: the bot's book, the strategy's target and the candle in; steps out. Pure.

No I/O, no clock, no await: the actor passes the time in (as a UTC day) and carries the steps
out. A decision has several steps whose later ones depend on how the earlier ones went (a closing
leg can be rejected, a stop-out realises a loss that the daily limit then sees), so the decision
is a generator: it yields a step, the actor carries it out and sends back the book as it is now,
and the generator yields the next step from that book, exactly as the rules read:

  1. a stop loss / take profit touched by the candle just closed closes the position (a stop-out:
     no re-entry until the target changes again, as in the backtest); unless the account holds
     them as protective orders, which fill inside the candle on their own;
  2. today's loss (realised plus the open position at this close) past the limit closes the
     position and pauses the bot until 00:00 UTC;
  3. the position follows the target: close a position on the other side, then (unless paused or
     at the daily trade limit) open the target's side. A reversal is two legs, close then open.

Risk-reducing steps (closes) are never blocked by a limit; limits only stop new exposure.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum

from tradebot.runtime.client_order_id import Leg
from tradebot.runtime.positions import Position, unrealized_pnl
from tradebot.runtime.risk import RiskLimits, check_exit, daily_loss_breached, daily_trades_reached
from tradebot.strategies.base import Target


class PauseReason(StrEnum):
    DAILY_TRADES = "daily_trades"
    DAILY_LOSS = "daily_loss"


@dataclass(frozen=True, slots=True)
class DailyTally:
    """Today's realised PnL (known fees included) and trades; reset at 00:00 UTC."""

    day: date | None
    pnl: float = 0.0
    trades: int = 0

    def rolled(self, today: date) -> DailyTally:
        return self if self.day == today else DailyTally(today)

    def with_fill(self, realized: float, fee: float | None) -> DailyTally:
        # Only known fees count; an unknown one is added when it is read (`with_fee`).
        return replace(self, pnl=self.pnl + realized - (fee or 0.0), trades=self.trades + 1)

    def with_fee(self, fee: float, counted_on: date | None) -> DailyTally:
        """A fee read late counts today only if its trade was counted today."""
        return replace(self, pnl=self.pnl - fee) if counted_on == self.day else self


@dataclass(frozen=True, slots=True)
class Book:
    """What the bot holds and what today allows, as the decision sees it."""

    position: Position
    tally: DailyTally
    day_start_balance: float = 0.0
    stopped_out_seq: int | None = None  # the signal a stop-out or a manual command set the position on


@dataclass(frozen=True, slots=True)
class Close:
    leg: Leg
    reason: str
    stops_out: bool = False  # the carrier records the signal as stopped out once this is done


@dataclass(frozen=True, slots=True)
class Open:
    side: str  # "long" | "short"; the carrier sizes it from the free balance


@dataclass(frozen=True, slots=True)
class Pause:
    reason: PauseReason
    message: str


Step = Close | Open | Pause
Steps = Generator[Step, Book, None]


@dataclass(frozen=True, slots=True)
class ClosedCandle:
    low: float
    high: float
    close: float


def on_candle(
    book: Book, candle: ClosedCandle, target: Target | None, seq: int, limits: RiskLimits, *, paused: bool,
    exchange_stops: bool = False,
) -> Steps:
    """The steps for a decision on a closed candle: risk rules first, then follow the target.

    With `exchange_stops` the account holds the stop loss / take profit (protective orders): it
    fills them inside the candle and the carrier has recorded such a fill before deciding, so rule
    1 is not checked again at the close (it would exit twice)."""
    position = book.position
    if not position.flat and position.entry_price and not exchange_stops:
        exit_reason = check_exit(position.side or "", position.entry_price, candle.low, candle.high, limits)
        if exit_reason is not None:
            book = yield Close(Leg.EXIT, exit_reason.label, stops_out=True)
    today = book.tally.pnl + unrealized_pnl(book.position, candle.close)
    if daily_loss_breached(today, book.day_start_balance, limits) and not paused:
        if not book.position.flat:
            book = yield Close(Leg.EXIT, "daily loss limit")
        yield Pause(PauseReason.DAILY_LOSS, f"daily loss limit of {limits.max_daily_loss_pct:g}% reached; "
                                            "trading resumes at 00:00 UTC")
        return
    yield from follow(book, target, seq, limits, paused=paused)


def follow(book: Book, target: Target | None, seq: int, limits: RiskLimits, *, paused: bool) -> Steps:
    """The steps that move the position to the target (also used alone when a start catches up)."""
    if target is None:
        return
    desired = desired_side(book, target, seq)
    current = None if book.position.flat else book.position.side
    if desired == current:
        return
    if current is not None:
        book = yield Close(Leg.CLOSE, "signal")
    if desired is None or paused:
        return
    if daily_trades_reached(book.tally.trades, limits):
        yield Pause(PauseReason.DAILY_TRADES, f"daily limit of {limits.max_daily_trades} trades reached; "
                                              "trading resumes at 00:00 UTC")
        return
    yield Open(desired)


def desired_side(book: Book, target: Target, seq: int) -> str | None:
    """The side the target asks for; on the signal a stop-out or a manual command set the
    position on, whatever the book holds now (flat after a stop-out or a force-exit, never back
    in; the forced side after a force-entry) until the target changes."""
    if book.stopped_out_seq is not None and seq == book.stopped_out_seq:
        return None if book.position.flat else book.position.side
    return {Target.LONG: "long", Target.SHORT: "short", Target.FLAT: None}[target]


def pause_still_holds(pause_reason: str | None, paused_on: date | None, today: date) -> bool:
    """A daily-limit pause recorded by an earlier run holds for the rest of the day it was taken."""
    return pause_reason is not None and paused_on == today
