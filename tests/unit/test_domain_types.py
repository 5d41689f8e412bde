"""One ExitReason and one conversion from a stream's candle to a strategy's bar; statuses and sides
as StrEnums whose values are the contract's strings."""

from __future__ import annotations

import pytest

from tradebot.runtime import risk
from tradebot.runtime.candles import Candle
from tradebot.strategies import ExitReason
from tradebot.strategies.candles import Candle as Bar


def test_one_exit_reason_for_backtest_and_live() -> None:
    assert risk.ExitReason is ExitReason
    assert [r.label for r in ExitReason] == ["signal", "stop_loss", "take_profit", "end"]
    for r in ExitReason:
        assert ExitReason(r.value) is r and ExitReason.from_label(r.label) is r
    with pytest.raises(ValueError, match="unknown exit reason"):
        ExitReason.from_label("manual")


def test_a_stream_candle_gives_the_strategy_its_bar() -> None:
    c = Candle("BTC/USDT:USDT", "1M", 1_738_368_000_000, 1.0, 2.0, 0.5, 1.5, 3.0)
    assert c.bar == Bar(1_738_368_000_000, 1.0, 2.0, 0.5, 1.5, 3.0)
    assert c.close_time == 1_740_787_200_000  # 2025-03-01: February's 28 days, not open + 30 d
