"""Candle timeframes: the one table of Binance USD-M kline intervals and their calendar.

Every layer (strategies, exchange and simulator, backtests, bots, runtime, HTTP, CLI) takes its
timeframes from here; this module imports nothing of tradebot. Candles open on UTC boundaries:
intraday and ``1d``/``3d`` ones on multiples of their length since the epoch, ``1w`` on Mondays
00:00, ``1M`` on the 1st of each month 00:00, so a month's candles are 28 to 31 days apart. No
caller steps through candles by adding a fixed length: :func:`next_open`, :func:`shift`,
:func:`candle_open` and :func:`candles_between` know the calendar.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

__all__ = [
    "MONTH",
    "NOMINAL_MS",
    "TIMEFRAMES",
    "Timeframe",
    "candle_open",
    "candles_between",
    "duration_ms",
    "fixed_ms",
    "is_timeframe",
    "next_open",
    "open_at_or_after",
    "shift",
    "spacing_matches",
    "timeframe_ms",
]

Timeframe = Literal["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"]
"""Binance USD-M kline intervals, shortest first."""

TIMEFRAMES: Final[tuple[str, ...]] = get_args(Timeframe)

MONTH: Final = "1M"

_MINUTE: Final = 60_000
_DAY: Final = 86_400_000
_WEEK: Final = 7 * _DAY
_MONDAY: Final = 4 * _DAY  # 1970-01-05, the first Monday after the epoch

_FIXED_MS: Final[dict[str, int]] = {
    "1m": _MINUTE,
    "3m": 3 * _MINUTE,
    "5m": 5 * _MINUTE,
    "15m": 15 * _MINUTE,
    "30m": 30 * _MINUTE,
    "1h": 60 * _MINUTE,
    "2h": 120 * _MINUTE,
    "4h": 240 * _MINUTE,
    "6h": 360 * _MINUTE,
    "8h": 480 * _MINUTE,
    "12h": 720 * _MINUTE,
    "1d": _DAY,
    "3d": 3 * _DAY,
    "1w": _WEEK,
}

NOMINAL_MS: Final[dict[str, int]] = {**_FIXED_MS, MONTH: 365 * _DAY // 12}
"""Typical candle length (a month is a twelfth of a 365-day year here): for annualising and
estimates only, never for stepping from one candle to the next."""

assert tuple(NOMINAL_MS) == TIMEFRAMES


def is_timeframe(name: object) -> bool:
    return isinstance(name, str) and name in NOMINAL_MS


def _check(timeframe: str) -> None:
    if timeframe not in NOMINAL_MS:
        raise ValueError(f"unknown timeframe {timeframe!r}; one of {', '.join(TIMEFRAMES)}")


def fixed_ms(timeframe: str) -> int | None:
    """The length of every candle of ``timeframe`` in ms, or None for ``1M`` (months vary)."""
    _check(timeframe)
    return _FIXED_MS.get(timeframe)


def timeframe_ms(timeframe: str) -> int:
    """The fixed length of a ``timeframe`` candle in ms; ``ValueError`` for ``1M`` (months vary)."""
    length = fixed_ms(timeframe)
    if length is None:
        raise ValueError(
            f"unsupported timeframe {timeframe!r} for a fixed candle length: months vary, step with next_open"
        )
    return length


# Months are counted from 0000-03 (March first puts the leap day at the end of the year), with
# Howard Hinnant's civil-calendar algorithms: exact integer arithmetic for any date.


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def _month_index(ts_ms: int) -> int:
    """Months since 1970-01 of the month containing ``ts_ms``."""
    y, m, _ = _civil_from_days(ts_ms // _DAY)
    return (y - 1970) * 12 + (m - 1)


def _month_open(index: int) -> int:
    y, m = divmod(index, 12)
    return _days_from_civil(1970 + y, m + 1, 1) * _DAY


def candle_open(timeframe: str, ts_ms: int) -> int:
    """The open time of the ``timeframe`` candle that contains ``ts_ms``."""
    _check(timeframe)
    if timeframe == MONTH:
        return _month_open(_month_index(ts_ms))
    step = _FIXED_MS[timeframe]
    origin = _MONDAY if timeframe == "1w" else 0
    return ts_ms - (ts_ms - origin) % step


def shift(timeframe: str, open_ms: int, candles: int) -> int:
    """The open time ``candles`` candles after (before, if negative) the candle opening at ``open_ms``."""
    _check(timeframe)
    if timeframe == MONTH:
        return _month_open(_month_index(open_ms) + candles)
    return open_ms + candles * _FIXED_MS[timeframe]


def next_open(timeframe: str, open_ms: int) -> int:
    """The open time of the candle after the one opening at ``open_ms`` (its close time + 1)."""
    return shift(timeframe, open_ms, 1)


def duration_ms(timeframe: str, open_ms: int) -> int:
    """The length in ms of the ``timeframe`` candle opening at ``open_ms`` (a month's own length)."""
    length = fixed_ms(timeframe)
    if length is not None:
        return length
    start = candle_open(timeframe, open_ms)
    return next_open(timeframe, start) - start


def open_at_or_after(timeframe: str, ts_ms: int) -> int:
    """The first candle open time at or after ``ts_ms``."""
    start = candle_open(timeframe, ts_ms)
    return start if start == ts_ms else next_open(timeframe, start)


def candles_between(timeframe: str, start_ms: int, end_ms: int) -> int:
    """How many candles open in ``[start_ms, end_ms)`` (0 if the range is empty)."""
    _check(timeframe)
    if end_ms <= start_ms:
        return 0
    if timeframe == MONTH:
        first = _month_index(open_at_or_after(timeframe, start_ms))
        return max(0, _month_index(end_ms - 1) - first + 1)
    step = _FIXED_MS[timeframe]
    first = open_at_or_after(timeframe, start_ms)
    return max(0, -(-(end_ms - first) // step))


def spacing_matches(timeframe: str, spacing_ms: float) -> bool:
    """Whether candles ``spacing_ms`` apart (a typical spacing, e.g. the median) are ``timeframe``
    candles: the exact length, or 28 to 31 days for ``1M``."""
    _check(timeframe)
    if timeframe == MONTH:
        return 28 * _DAY <= spacing_ms <= 31 * _DAY
    return spacing_ms == _FIXED_MS[timeframe]
