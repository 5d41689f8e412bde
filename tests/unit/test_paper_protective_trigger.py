"""A paper account's protective-order trigger rule (pure): the backtest's, level or gap open."""

from __future__ import annotations

from typing import Any

from tradebot.runtime.account import CandleRange
from tradebot.runtime.paper_account import trigger_price


def _order(kind: str, side: str, stop: float | None = None, rate: float | None = None,
           best: float | None = None) -> dict[str, Any]:
    return {"kind": kind, "side": side, "stop_price": stop, "callback_rate": rate, "best_price": best}


def test_a_long_s_stop_fills_at_its_level_or_at_a_gap_s_open() -> None:
    stop = _order("stop_loss", "sell", 98.0)
    assert trigger_price(stop, CandleRange(open=100.0, high=101.0, low=99.0)) is None
    assert trigger_price(stop, CandleRange(open=100.0, high=101.0, low=97.0)) == 98.0
    assert trigger_price(stop, CandleRange(open=96.0, high=97.0, low=95.0)) == 96.0  # opened beyond it


def test_take_profits_and_a_short_s_stop_mirror_it() -> None:
    assert trigger_price(_order("take_profit", "sell", 105.0), CandleRange(100.0, 106.0, 99.0)) == 105.0
    assert trigger_price(_order("take_profit", "sell", 105.0), CandleRange(107.0, 108.0, 106.0)) == 107.0
    assert trigger_price(_order("stop_loss", "buy", 102.0), CandleRange(100.0, 103.0, 99.0)) == 102.0
    assert trigger_price(_order("take_profit", "buy", 95.0), CandleRange(100.0, 101.0, 94.0)) == 95.0
    assert trigger_price(_order("take_profit", "buy", 95.0), CandleRange(100.0, 101.0, 96.0)) is None


def test_a_trailing_stop_trails_the_best_price_seen_before_the_candle() -> None:
    trail = _order("trailing_stop", "sell", rate=2.0, best=110.0)  # level 107.8
    assert trigger_price(trail, CandleRange(109.0, 112.0, 108.0)) is None
    assert trigger_price(trail, CandleRange(109.0, 109.5, 107.0)) == 107.8
