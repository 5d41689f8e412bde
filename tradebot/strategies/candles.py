"""Candles: one closed candle for the live face, column arrays for the vectorised face.

Pure: reading them from a file is the backtests' business (tradebot.backtests.candle_csv).

A candle's timestamp is its open time in milliseconds since the Unix epoch (UTC), as on Binance.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "COLUMNS",
    "MAX_MS",
    "Candle",
    "CandleDataError",
    "Candles",
]

COLUMNS: Final = ("timestamp", "open", "high", "low", "close", "volume")

MAX_MS: Final = 10**14
"""Timestamps at or above this (year 5138) are taken for microseconds or nanoseconds and refused."""


class CandleDataError(ValueError):
    """Candle data that cannot be used; the message names the row (1-based file line) and column."""


@dataclass(frozen=True, slots=True)
class Candle:
    """One closed candle. ``ts`` is the open time in ms (UTC)."""

    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0


@dataclass(frozen=True, slots=True)
class Candles:
    """Candles as read-only column arrays (validated on construction, see :func:`validate`)."""

    ts: NDArray[np.int64]
    open: NDArray[np.float64]
    high: NDArray[np.float64]
    low: NDArray[np.float64]
    close: NDArray[np.float64]
    volume: NDArray[np.float64]

    def __post_init__(self) -> None:
        n = self.ts.shape[0]
        for name in ("ts", *COLUMNS[1:]):
            arr = getattr(self, name)
            if arr.ndim != 1 or arr.shape[0] != n:
                raise CandleDataError(f"column {name!r} has shape {arr.shape}, expected ({n},)")
            arr.setflags(write=False)

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @classmethod
    def from_arrays(
        cls,
        ts: NDArray[np.integer] | Sequence[int],
        open: NDArray[np.floating] | Sequence[float],
        high: NDArray[np.floating] | Sequence[float],
        low: NDArray[np.floating] | Sequence[float],
        close: NDArray[np.floating] | Sequence[float],
        volume: NDArray[np.floating] | Sequence[float] | None = None,
        *,
        validate: bool = True,
        first_line: int = 1,
    ) -> Candles:
        """Copies the columns into fresh arrays and (by default) validates them; ``first_line`` is
        the file line of the first candle, used in error messages."""
        ts_arr = np.array(ts, dtype=np.int64)
        cols = [np.array(c, dtype=np.float64) for c in (open, high, low, close)]
        vol = np.zeros(ts_arr.shape[0]) if volume is None else np.array(volume, dtype=np.float64)
        candles = cls(ts_arr, cols[0], cols[1], cols[2], cols[3], vol)
        if validate:
            candles.validate(first_line=first_line)
        return candles

    @classmethod
    def from_candles(cls, candles: Iterable[Candle]) -> Candles:
        rows = list(candles)
        return cls.from_arrays(
            [c.ts for c in rows],
            [c.open for c in rows],
            [c.high for c in rows],
            [c.low for c in rows],
            [c.close for c in rows],
            [c.volume for c in rows],
        )

    def candle(self, i: int) -> Candle:
        """The ``i``-th candle as a :class:`Candle`."""
        return Candle(
            int(self.ts[i]),
            float(self.open[i]),
            float(self.high[i]),
            float(self.low[i]),
            float(self.close[i]),
            float(self.volume[i]),
        )

    def __iter__(self) -> Iterator[Candle]:
        for i in range(len(self)):
            yield self.candle(i)

    def validate(self, *, first_line: int = 1, line_numbers: Sequence[int] | None = None) -> None:
        """Raises :class:`CandleDataError` naming the first bad candle: prices must be finite and
        > 0, ``low <= min(open, close) <= max(open, close) <= high``, volume finite and >= 0,
        timestamps >= 0, below 1e14 (milliseconds) and strictly increasing (gaps are allowed).
        The message names line ``line_numbers[i]`` (default ``first_line + i``) for candle ``i``."""
        if len(self) == 0:
            raise CandleDataError("no candles")
        o, h, lo, c, v, ts = self.open, self.high, self.low, self.close, self.volume, self.ts
        checks: list[tuple[NDArray[np.bool_], str]] = []
        for name, arr in (("open", o), ("high", h), ("low", lo), ("close", c)):
            checks.append((~(np.isfinite(arr) & (arr > 0.0)), f"{name} must be a finite price > 0"))
        checks.append((~(np.isfinite(v) & (v >= 0.0)), "volume must be a finite number >= 0"))
        checks.append((lo > np.minimum(o, c), "low is above open or close"))
        checks.append((h < np.maximum(o, c), "high is below open or close"))
        checks.append(((ts < 0) | (ts >= MAX_MS), "timestamp is not in milliseconds since 1970"))
        order = np.zeros(len(self), dtype=np.bool_)
        order[1:] = ts[1:] <= ts[:-1]
        checks.append((order, "timestamp is not after the previous candle's"))
        first_bad: tuple[int, str] | None = None
        for mask, message in checks:
            bad = np.flatnonzero(mask)
            if bad.size and (first_bad is None or int(bad[0]) < first_bad[0]):
                first_bad = (int(bad[0]), message)
        if first_bad is not None:
            i, message = first_bad
            line = line_numbers[i] if line_numbers is not None else first_line + i
            raise CandleDataError(f"line {line}: {message} ({self._describe(i)})")

    def _describe(self, i: int) -> str:
        return (
            f"timestamp={int(self.ts[i])} open={float(self.open[i])!r} high={float(self.high[i])!r} "
            f"low={float(self.low[i])!r} close={float(self.close[i])!r} volume={float(self.volume[i])!r}"
        )
