"""Replaying an OHLCV CSV (the backtest's format) as if the exchange were closing those candles now."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from tradebot.backtests.candle_csv import load_candles_csv
from tradebot.exchange.simulator.candles import INTERVALS, Candle
from tradebot.exchange.simulator.config import ConfigError
from tradebot.strategies.candles import CandleDataError
from tradebot.timeframes import duration_ms


@dataclass(frozen=True, slots=True)
class ReplaySpec:
    """Candles to replay on one symbol and interval: `warmup` at once at start, then one per candle."""

    symbol: str
    interval: str
    candles: tuple[Candle, ...]
    warmup: int


def load_replay(path: Path, symbol: str, interval: str, warmup: int) -> ReplaySpec:
    if interval not in INTERVALS:
        raise ConfigError(f"replay interval must be one of {list(INTERVALS)}, got {interval!r}")
    try:
        rows = load_candles_csv(path)
    except CandleDataError as e:
        raise ConfigError(f"replay CSV: {e}") from e
    # repr() is the shortest text that round-trips the float, so "60000.1" in the file stays 60000.1.
    candles = tuple(
        Candle(
            c.ts,
            duration_ms(interval, c.ts),
            Decimal(repr(c.open)),
            Decimal(repr(c.high)),
            Decimal(repr(c.low)),
            Decimal(repr(c.close)),
            Decimal(repr(c.volume)),
            trades=1,
            closed=True,
        )
        for c in rows
    )
    return ReplaySpec(symbol.upper(), interval, candles, max(0, min(warmup, len(candles))))
