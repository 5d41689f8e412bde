"""The candle CSV format of ``tradebot backtest --csv`` and the simulator's replay: reading and parsing.

``timestamp,open,high,low,close,volume``; see :func:`parse_candles_csv` for the rules. The result is
the engine's :class:`~tradebot.strategies.Candles`, validated; every refusal is a
:class:`~tradebot.strategies.CandleDataError` naming the file line.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from tradebot.strategies.candles import COLUMNS, MAX_MS, CandleDataError, Candles

__all__ = ["load_candles_csv", "parse_candles_csv"]


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
    if not (np.all(np.isfinite(ts)) and np.all(ts >= 0) and np.all(ts == np.floor(ts)) and np.all(ts < MAX_MS)):
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
