"""What a manual command (force-exit, force-entry) comes to, given the book. Pure.

The API refuses what makes no sense from the state it reads (409), but the state may change
before the owner carries the command out (a stop fired, the strategy closed), so the owner decides
again from its own book, here, and refuses what no longer makes sense with a readable reason:

- force-exit `pct` closes that share of the position, rounded down to the market's amount step
  (all of it at 100, whatever the step); flat, or a share below one step, is refused. A full
  exit holds the bot flat until the strategy's target changes (as after a stop-out).
- force-entry opens `side` sized like any entry (its own `order_size_pct` or the bot's); it is
  refused while the bot holds a position (force-exit it first: a manual reversal would be two
  orders the user did not see), and while a daily limit pauses the bot (the limit is a risk rule,
  not the strategy's choice). The position is held until the strategy's target changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from tradebot.runtime.positions import Position
from tradebot.runtime.risk import floor_to_step


@dataclass(frozen=True, slots=True)
class ManualExit:
    amount: float
    full: bool  # the whole position: the bot is then held flat until the target changes


@dataclass(frozen=True, slots=True)
class ManualEntry:
    side: str  # "long" | "short"
    order_size_pct: float


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str


def force_exit(position: Position, pct: float, amount_step: float) -> ManualExit | Refused:
    if position.flat:
        return Refused("force-exit: the bot holds no position")
    if pct >= 100:
        return ManualExit(position.size, full=True)
    amount = floor_to_step(position.size * pct / 100, amount_step)
    if amount <= 0:
        return Refused(f"force-exit: {pct:g}% of {position.size:g} is less than the market's step {amount_step:g}")
    return ManualExit(amount, full=False)


def force_entry(
    position: Position, side: str, order_size_pct: float | None, default_pct: float, *, daily_paused: bool
) -> ManualEntry | Refused:
    if daily_paused:
        return Refused("force-entry: a daily limit pauses the bot until 00:00 UTC")
    if not position.flat:
        return Refused(f"force-entry: the bot already holds a {position.side} position; force-exit it first")
    return ManualEntry(side, order_size_pct if order_size_pct is not None else default_pct)
