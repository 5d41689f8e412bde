"""Backtests as the domain holds them: a validated request and the candle history loaded for it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from tradebot.strategies import Candles

EXCHANGE: Final = "binanceusdm"


def to_ms(value: dt.datetime) -> int:
    """Milliseconds since the epoch; a naive datetime is UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class BacktestSpec:
    """A backtest request after every check: the symbol is ccxt's unified one, ``parameters`` holds
    every strategy parameter and position setting with defaults filled in."""

    symbol: str
    timeframe: str
    start_time: dt.datetime
    end_time: dt.datetime
    strategy: str
    parameters: Mapping[str, Any]
    initial_balance: float
    fee_rate: float
    slippage_bps: float
    exchange: str = EXCHANGE


@dataclass(frozen=True, slots=True)
class History:
    """The closed candles found for a range ``[start_ms, end_ms)``.

    ``expected`` is how many candles the range holds by the clock (only the part that had closed
    when it was loaded); ``len(candles) < expected`` means the exchange has gaps there, which are
    reported, never filled in.
    """

    candles: Candles | None  # None when there is not a single candle
    start_ms: int
    end_ms: int
    expected: int

    @property
    def count(self) -> int:
        return 0 if self.candles is None else len(self.candles)

    @property
    def missing(self) -> int:
        return max(0, self.expected - self.count)


@dataclass(frozen=True, slots=True)
class BacktestRequest:
    """What a user asked for, well-formed (the edge checked the types) but not yet checked against
    the markets, the engine's parameter rules and the range limit."""

    symbol: str
    timeframe: str
    start_time: dt.datetime
    end_time: dt.datetime
    strategy: str
    parameters: Mapping[str, Any]
    initial_balance: float
    fee_rate: float | None = None
    slippage_bps: float | None = None
