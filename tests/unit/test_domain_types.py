"""One ExitReason and one conversion from a stream's candle to a strategy's bar; statuses and sides
as StrEnums whose values are the contract's strings."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path
from typing import get_args

import pytest

from tradebot.http import backtest_schemas, bot_schemas
from tradebot.runtime import risk
from tradebot.runtime.candles import Candle
from tradebot.statuses import (
    BOT_TRANSITIONS,
    BacktestStatus,
    BotStatus,
    OrderSide,
    OrderStatus,
    PositionSide,
    can_move,
)
from tradebot.strategies import ExitReason
from tradebot.strategies.candles import Candle as Bar


def test_one_exit_reason_for_backtest_and_live() -> None:
    assert risk.ExitReason is ExitReason
    assert [r.label for r in ExitReason] == ["signal", "stop_loss", "take_profit", "end", "liquidation"]
    for r in ExitReason:
        assert ExitReason(r.value) is r and ExitReason.from_label(r.label) is r
    with pytest.raises(ValueError, match="unknown exit reason"):
        ExitReason.from_label("manual")


def test_a_stream_candle_gives_the_strategy_its_bar() -> None:
    c = Candle("BTC/USDT:USDT", "1M", 1_738_368_000_000, 1.0, 2.0, 0.5, 1.5, 3.0)
    assert c.bar == Bar(1_738_368_000_000, 1.0, 2.0, 0.5, 1.5, 3.0)
    assert c.close_time == 1_740_787_200_000  # 2025-03-01: February's 28 days, not open + 30 d


def _check_list(sql: str, column_start: str) -> list[str]:
    """The values of the first `CHECK (<column> IN (...))` after `column_start` in `sql`."""
    tail = sql[sql.index(column_start):]
    inside = tail[tail.index("IN (") + 4: tail.index(")")]
    return [v.strip().strip("'") for v in inside.split(",")]


def test_status_and_side_values_are_the_contract_and_schema_strings() -> None:
    schema = (Path(__file__).parents[2] / "migrations" / "0001_initial_schema.sql").read_text()
    assert [s.value for s in BotStatus] == list(get_args(bot_schemas.Status))
    assert [s.value for s in BotStatus] == _check_list(schema, "status              text NOT NULL DEFAULT 'stopped'")
    assert sorted(s.value for s in OrderStatus) == sorted(
        _check_list(schema, "status              text NOT NULL DEFAULT 'pending'"))
    assert [s.value for s in BacktestStatus] == list(get_args(backtest_schemas.Status))
    assert [s.value for s in OrderSide] == ["buy", "sell"] and [s.value for s in PositionSide] == ["long", "short"]
    assert json.dumps({"status": BotStatus.PAUSED, "side": OrderSide.BUY}) == '{"status": "paused", "side": "buy"}'
    assert BotStatus("error") is BotStatus.ERROR and str(BotStatus.ERROR) == "error"


def test_the_bot_status_machine() -> None:
    assert set(BOT_TRANSITIONS) == set(BotStatus)
    assert all(can_move(s, s) for s in BotStatus)
    # The paths the API, the actor and the runtime take:
    for path in (["stopped", "starting", "running", "paused", "running", "stopping", "stopped"],
                 ["stopped", "starting", "paused", "stopping", "stopped"],
                 ["running", "starting", "running"],  # lease lapsed, or a new owner took over
                 ["running", "error", "starting"], ["error", "stopped"], ["stopping", "starting"]):
        for a, b in pairwise(path):
            assert can_move(BotStatus(a), BotStatus(b)), (a, b)
    assert not can_move(BotStatus.STOPPED, BotStatus.RUNNING)  # a bot starts through its owner's claim
    assert not can_move(BotStatus.ERROR, BotStatus.RUNNING)
    assert not can_move(BotStatus.STOPPED, BotStatus.STOPPING)


def test_position_sides_know_their_order_sides() -> None:
    assert PositionSide.LONG.opening_side is OrderSide.BUY and PositionSide.LONG.closing_side is OrderSide.SELL
    assert PositionSide.SHORT.opening_side is OrderSide.SELL and PositionSide.SHORT.closing_side is OrderSide.BUY
    assert (PositionSide.LONG.sign, PositionSide.SHORT.sign) == (1, -1)
