"""Candles: one closed candle for the live face, column arrays for the vectorised face, and the CSV
loader used by ``tradebot backtest --csv``.

A candle's timestamp is its open time in milliseconds since the Unix epoch (UTC), as on Binance.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "COLUMNS",
    "Candle",
    "CandleDataError",
    "Candles",
    "load_candles_csv",
    "parse_candles_csv",
]

COLUMNS: Final = ("timestamp", "open", "high", "low", "close", "volume")

_MAX_MS: Final = 10**14
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
        checks.append(((ts < 0) | (ts >= _MAX_MS), "timestamp is not in milliseconds since 1970"))
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


def load_candles_csv(path: str | Path) -> Candles:
    """Reads a ``timestamp,open,high,low,close,volume`` CSV file (see :func:`parse_candles_csv`)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError as e:
        raise CandleDataError(f"{p}: no such file") from e
    except IsADirectoryError as e:
        raise CandleDataError(f"{p}: is a directory, not a CSV file") from e
    except UnicodeDecodeError as e:
        raise CandleDataError(f"{p}: not a UTF-8 text file") from e
    except OSError as e:
        raise CandleDataError(f"{p}: cannot read: {e.strerror or e}") from e
    try:
        return parse_candles_csv(text)
    except CandleDataError as e:
        raise CandleDataError(f"{p}: {e}") from e


def parse_candles_csv(text: str) -> Candles:
    """Parses CSV text with the columns ``timestamp,open,high,low,close,volume``.

    - An optional header row names the columns (any order, case-insensitive, extra columns
      ignored); without a header the first six columns are taken in that order.
    - ``timestamp`` is either integer milliseconds since the epoch or an ISO 8601 time
      (``2024-01-02T03:04:00Z``, ``2024-01-02 03:04:00``, with an offset or naive = UTC).
    - Blank lines are skipped. Any other bad row raises :class:`CandleDataError` naming the line.

    Files of plain numbers (millisecond timestamps) are read by numpy's C parser; anything it
    cannot read, or data that fails validation, goes through the line-by-line parser, which gives
    the precise error.
    """
    fast = _parse_numeric_fast(text)
    if fast is not None:
        return fast
    rows = [(i + 1, row) for i, row in enumerate(csv.reader(io.StringIO(text))) if _non_blank(row)]
    if not rows:
        raise CandleDataError("the file is empty (expected columns " + ",".join(COLUMNS) + ")")
    first_line, first = rows[0]
    header = [cell.strip().lower() for cell in first]
    if not _is_number(header[0]) and not _is_iso_time(first[0].strip()):
        missing = [name for name in COLUMNS if name not in header]
        if missing:
            raise CandleDataError(
                f"line {first_line}: header lacks column(s) {', '.join(missing)} (expected {','.join(COLUMNS)})"
            )
        index = [header.index(name) for name in COLUMNS]
        rows = rows[1:]
        if not rows:
            raise CandleDataError("the file has a header but no candles")
    else:
        index = list(range(len(COLUMNS)))
    width = max(index) + 1
    n = len(rows)
    ts = np.empty(n, dtype=np.int64)
    values = np.empty((5, n), dtype=np.float64)
    for k, (line, row) in enumerate(rows):
        if len(row) < width:
            raise CandleDataError(f"line {line}: expected {width} columns, found {len(row)}")
        ts[k] = _parse_timestamp(row[index[0]].strip(), line)
        for col in range(1, 6):
            cell = row[index[col]].strip()
            try:
                values[col - 1, k] = float(cell)
            except ValueError:
                raise CandleDataError(f"line {line}: column {COLUMNS[col]!r} is not a number: {cell!r}") from None
    candles = Candles.from_arrays(ts, *values, validate=False)
    candles.validate(line_numbers=[line for line, _ in rows])
    return candles


def _parse_numeric_fast(text: str) -> Candles | None:
    """numpy's C parser for the common case: a header (or none) on the first line, then only plain
    numbers with integral millisecond timestamps. ``None`` when that does not apply or the data is
    invalid (the slow path then explains why)."""
    newline = text.find("\n")
    first = (text if newline < 0 else text[:newline]).strip()
    if not first:
        return None
    cells = [cell.strip().lower() for cell in first.split(",")]
    if _is_number(cells[0]):
        skip, index = 0, list(range(len(COLUMNS)))
    elif all(name in cells for name in COLUMNS):
        skip, index = 1, [cells.index(name) for name in COLUMNS]
    else:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data" for a header-only file
            table = np.loadtxt(
                io.StringIO(text),
                delimiter=",",
                skiprows=skip,
                usecols=index,
                dtype=np.float64,
                comments=None,
                ndmin=2,
            )
    except ValueError:
        return None
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    if table.shape[0] == 0 or table.shape[0] != lines - skip:
        return None  # blank lines: the slow path numbers the lines exactly
    ts = table[:, 0]
    if not (np.all(np.isfinite(ts)) and np.all(ts >= 0) and np.all(ts == np.floor(ts)) and np.all(ts < _MAX_MS)):
        return None
    candles = Candles.from_arrays(ts.astype(np.int64), *table[:, 1:].T, validate=False)
    try:
        candles.validate(first_line=1 + skip)
    except CandleDataError:
        return None
    return candles


def _non_blank(row: list[str]) -> bool:
    return any(cell.strip() for cell in row)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_iso_time(cell: str) -> bool:
    try:
        _parse_iso(cell)
    except ValueError:
        return False
    return True


def _parse_iso(cell: str) -> datetime:
    dt = datetime.fromisoformat(cell)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt


def _parse_timestamp(cell: str, line: int) -> int:
    if cell.isdigit():
        return int(cell)
    try:
        number = float(cell)
    except ValueError:
        pass
    else:
        if math.isfinite(number) and number >= 0 and number == int(number):
            return int(number)
        raise CandleDataError(f"line {line}: timestamp {cell!r} is not a non-negative whole number of milliseconds")
    try:
        dt = _parse_iso(cell)
    except ValueError:
        raise CandleDataError(f"line {line}: timestamp {cell!r} is neither milliseconds nor an ISO 8601 time") from None
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
