"""Manual commands as the owner decides them, and the hold they put on the position. Pure."""

from __future__ import annotations

import pytest

from tradebot.runtime.client_order_id import Leg, client_order_id, is_valid
from tradebot.runtime.manual_decisions import ManualEntry, ManualExit, Refused, force_entry, force_exit
from tradebot.runtime.order_decisions import Book, Close, DailyTally, Open, follow
from tradebot.runtime.positions import FLAT, Position
from tradebot.runtime.risk import RiskLimits
from tradebot.strategies.base import Target

LONG = Position("long", 0.123, 100.0)
LIMITS = RiskLimits(max_daily_trades=10, max_daily_loss_pct=5.0)


def test_a_partial_exit_is_rounded_down_to_the_step() -> None:
    assert force_exit(LONG, 50.0, 0.001) == ManualExit(0.061, full=False)
    assert force_exit(Position("short", 0.3, 10.0), 34.0, 0.1) == ManualExit(0.1, full=False)
    assert force_exit(Position("long", 0.001, 1.0), 99.9, 0.0001) == ManualExit(0.0009, full=False)


def test_a_full_exit_closes_everything_whatever_the_step() -> None:
    assert force_exit(LONG, 100.0, 0.01) == ManualExit(0.123, full=True)  # 0.123 is off the 0.01 grid


@pytest.mark.parametrize(("position", "pct", "step"), [(FLAT, 100.0, 0.001), (Position("long", 0.001, 1.0), 50.0, 0.001),
                                                       (Position("short", 0.3, 10.0), 33.3, 0.1)])
def test_an_exit_with_nothing_to_close_is_refused(position: Position, pct: float, step: float) -> None:
    decision = force_exit(position, pct, step)
    assert isinstance(decision, Refused) and decision.reason.startswith("force-exit:")


def test_an_entry_takes_its_own_size_or_the_bots() -> None:
    assert force_entry(FLAT, "short", 20.0, 50.0, daily_paused=False) == ManualEntry("short", 20.0)
    assert force_entry(FLAT, "long", None, 50.0, daily_paused=False) == ManualEntry("long", 50.0)


def test_an_entry_is_refused_in_a_position_or_under_a_daily_limit() -> None:
    held = force_entry(LONG, "short", None, 50.0, daily_paused=False)
    assert isinstance(held, Refused) and "force-exit it first" in held.reason
    assert isinstance(force_entry(FLAT, "long", None, 50.0, daily_paused=True), Refused)


def _steps(book: Book, target: Target, seq: int) -> list[object]:
    return list(follow(book, target, seq, LIMITS, paused=False))


def test_a_forced_position_is_held_until_the_target_changes() -> None:
    forced = Book(LONG, DailyTally(None), stopped_out_seq=3)
    assert _steps(forced, Target.FLAT, 3) == []  # the target the entry was forced against
    assert _steps(forced, Target.FLAT, 4) == [Close(Leg.CLOSE, "signal")]  # changed: the strategy rules


def test_a_forced_exit_stays_flat_until_the_target_changes() -> None:
    exited = Book(FLAT, DailyTally(None), stopped_out_seq=3)
    assert _steps(exited, Target.LONG, 3) == []
    assert _steps(exited, Target.LONG, 5) == [Open("long")]


def test_manual_orders_never_share_an_id_with_signal_orders() -> None:
    ids = {client_order_id(7, 2, n, leg) for n in range(50) for leg in Leg}
    assert len(ids) == 50 * len(Leg)
    assert all(is_valid(i) for i in ids)
    assert client_order_id(7, 2, 12, Leg.FORCE_EXIT) == "tb7-2-12f"
    assert client_order_id(7, 2, 12, Leg.FORCE_ENTRY) == "tb7-2-12e"
