"""The one timeframe table: every Binance USD-M interval and its calendar (weeks open on Monday,
months on the 1st, 28 to 31 days apart)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradebot import timeframes as tf
from tradebot.runtime.candles import Candle

BINANCE_INTERVALS = "1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M".split()


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC).timestamp() * 1000)


def test_the_table_is_every_binance_interval() -> None:
    assert list(tf.TIMEFRAMES) == BINANCE_INTERVALS
    assert all(tf.is_timeframe(t) for t in BINANCE_INTERVALS)
    assert not tf.is_timeframe("2m") and not tf.is_timeframe("1mo") and not tf.is_timeframe(None)
    assert tf.fixed_ms("1M") is None and tf.fixed_ms("1w") == 7 * 86_400_000
    with pytest.raises(ValueError, match="unknown timeframe"):
        tf.candle_open("2m", 0)


def test_month_boundaries_in_a_leap_year() -> None:
    jan, feb, mar, apr = ms(2024, 1, 1), ms(2024, 2, 1), ms(2024, 3, 1), ms(2024, 4, 1)
    assert tf.candle_open("1M", ms(2024, 1, 31, 23, 59, 59)) == jan
    assert tf.next_open("1M", jan) == feb
    assert tf.next_open("1M", feb) == mar  # February 2024 has 29 days
    assert tf.duration_ms("1M", feb) == 29 * 86_400_000
    assert tf.duration_ms("1M", ms(2023, 2, 1)) == 28 * 86_400_000
    assert tf.duration_ms("1M", jan) == 31 * 86_400_000
    assert tf.candle_open("1M", ms(2024, 2, 29, 12)) == feb
    assert tf.shift("1M", mar, -2) == jan and tf.shift("1M", jan, 3) == apr
    assert tf.shift("1M", ms(2024, 12, 1), 1) == ms(2025, 1, 1)
    assert tf.candles_between("1M", jan, mar) == 2
    assert tf.candles_between("1M", jan + 1, mar + 1) == 2  # February and March open in range
    assert tf.candles_between("1M", jan, ms(2025, 1, 1)) == 12
    assert tf.open_at_or_after("1M", jan + 1) == feb and tf.open_at_or_after("1M", feb) == feb
    assert tf.candles_between("1M", mar, jan) == 0


def test_weeks_open_on_monday() -> None:
    assert tf.candle_open("1w", ms(2024, 1, 3, 15)) == ms(2024, 1, 1)  # 2024-01-01 was a Monday
    assert tf.candle_open("1w", ms(2024, 1, 7, 23, 59)) == ms(2024, 1, 1)
    assert tf.candle_open("1w", ms(2024, 1, 8)) == ms(2024, 1, 8)
    assert tf.candle_open("1w", 0) == ms(1969, 12, 29)
    assert tf.next_open("1w", ms(2024, 1, 1)) == ms(2024, 1, 8)
    assert tf.candles_between("1w", ms(2024, 1, 1), ms(2024, 2, 1)) == 5


def test_fixed_intervals_align_to_the_epoch() -> None:
    t = ms(2024, 5, 6, 7, 8, 9)
    assert tf.candle_open("4h", t) == ms(2024, 5, 6, 4)
    assert tf.candle_open("3d", t) % (3 * 86_400_000) == 0
    assert tf.candles_between("1h", ms(2024, 1, 1), ms(2024, 1, 2)) == 24
    assert tf.shift("15m", ms(2024, 1, 1), -4) == ms(2023, 12, 31, 23)


@given(ts=st.integers(0, ms(2200, 1, 1)), name=st.sampled_from(BINANCE_INTERVALS))
def test_every_instant_is_in_exactly_one_candle(ts: int, name: str) -> None:
    start = tf.candle_open(name, ts)
    end = tf.next_open(name, start)
    assert start <= ts < end
    assert tf.candle_open(name, end) == end and tf.shift(name, end, -1) == start
    assert tf.candles_between(name, start, end) == 1
    if name == "1M":
        opened = dt.datetime.fromtimestamp(start / 1000, dt.UTC)
        assert (opened.day, opened.hour, opened.minute) == (1, 0, 0)
        assert 28 * 86_400_000 <= end - start <= 31 * 86_400_000


def test_spacing_matches() -> None:
    assert tf.spacing_matches("1w", 7 * 86_400_000)
    assert tf.spacing_matches("1M", 31 * 86_400_000) and tf.spacing_matches("1M", 28 * 86_400_000)
    assert not tf.spacing_matches("1M", 27 * 86_400_000) and not tf.spacing_matches("1d", 2 * 86_400_000)


def test_a_live_monthly_candle_closes_at_the_next_month() -> None:
    c = Candle("BTC/USDT:USDT", "1M", ms(2024, 2, 1), 1.0, 1.0, 1.0, 1.0, 0.0)
    assert c.close_time == ms(2024, 3, 1)


def test_sharpe_annualisation_per_timeframe() -> None:
    from tradebot.strategies.report import periods_per_year

    assert periods_per_year("1M") == 12.0
    assert periods_per_year("1w") == 365 / 7
    assert periods_per_year("1m") == 365 * 24 * 60
