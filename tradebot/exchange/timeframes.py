"""Candle timeframes with a fixed length, in ms: one table for the runtime, the hub and the simulator.

"1M" has no fixed length; a component that guessed one would make candles no exchange makes.
"""

from __future__ import annotations

from typing import Final

TIMEFRAME_MS: Final[dict[str, int]] = {
    "1m": 60_000,
    "3m": 3 * 60_000,
    "5m": 5 * 60_000,
    "15m": 15 * 60_000,
    "30m": 30 * 60_000,
    "1h": 3_600_000,
    "2h": 2 * 3_600_000,
    "4h": 4 * 3_600_000,
    "6h": 6 * 3_600_000,
    "8h": 8 * 3_600_000,
    "12h": 12 * 3_600_000,
    "1d": 86_400_000,
    "3d": 3 * 86_400_000,
    "1w": 7 * 86_400_000,
}


def timeframe_ms(timeframe: str) -> int:
    """Length of a timeframe in ms; only fixed-length ones."""
    try:
        return TIMEFRAME_MS[timeframe]
    except KeyError:
        raise ValueError(f"unsupported timeframe {timeframe!r}; one of {', '.join(TIMEFRAME_MS)}") from None
