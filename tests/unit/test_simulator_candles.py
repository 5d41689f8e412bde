"""Candle histories, Binance's kline selection rule, the seeded random walk and request signing."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise
from urllib.parse import urlencode

import pytest

from tradebot.exchange.simulator.accounts import Account, Rejection
from tradebot.exchange.simulator.auth import sign, verify_signed
from tradebot.exchange.simulator.candles import (
    BASE_INTERVAL_MS,
    Candle,
    RandomWalk,
    aggregate,
    select_klines,
)
from tradebot.exchange.simulator.markets import market_spec

D = Decimal
START = 1_700_000_040_000 - 1_700_000_040_000 % 3_600_000  # on an hour boundary


def candle(i: int, close: str = "100", *, closed: bool = True) -> Candle:
    c = D(close)
    return Candle(START + i * BASE_INTERVAL_MS, BASE_INTERVAL_MS, c, c + 1, c - 1, c, D(1), 1, closed)


def test_select_klines_follows_binance_rules() -> None:
    series = [candle(i) for i in range(10)]
    times = [c.open_time for c in series]
    assert [c.open_time for c in select_klines(series, None, None, 3)] == times[-3:]
    assert [c.open_time for c in select_klines(series, times[2], None, 3)] == times[2:5]
    assert [c.open_time for c in select_klines(series, None, times[5], 3)] == times[3:6]
    assert [c.open_time for c in select_klines(series, times[2], times[3], 10)] == times[2:4]


def test_aggregate_groups_by_aligned_bucket_and_closes_only_complete_buckets() -> None:
    base = [candle(i, str(100 + i)) for i in range(5)] + [candle(5, "200", closed=False)]
    five = aggregate(base, "5m")
    assert [c.open_time for c in five] == [START, START + 5 * BASE_INTERVAL_MS]
    first, second = five
    assert (first.open, first.high, first.low, first.close, first.volume) == (
        D(100),
        D(105),
        D(99),
        D(104),
        D(5),
    )
    assert first.closed and not second.closed


def test_random_walk_is_deterministic_per_seed_and_symbol() -> None:
    btc, eth = market_spec("BTCUSDT"), market_spec("ETHUSDT")
    a = RandomWalk({"BTCUSDT": btc, "ETHUSDT": eth}, seed=1, start_ms=START, history=50)
    b = RandomWalk({"BTCUSDT": btc}, seed=1, start_ms=START, history=50)
    c = RandomWalk({"BTCUSDT": btc}, seed=2, start_ms=START, history=50)
    assert a.candles("BTCUSDT", "1m") == b.candles("BTCUSDT", "1m")
    assert a.candles("BTCUSDT", "1m") != c.candles("BTCUSDT", "1m")

    history = a.candles("ETHUSDT", "1m")
    assert len(history) == 51 and not history[-1].closed and all(x.closed for x in history[:-1])
    assert history[-1].open_time == START  # the forming candle opens at the start minute
    assert all(later.open_time - earlier.open_time == BASE_INTERVAL_MS for earlier, later in pairwise(history))
    # Prices stay on the tick grid.
    assert all(x.close % eth.tick_size == 0 for x in history)


def test_random_walk_roll_closes_the_forming_candle_and_opens_the_next_at_its_close() -> None:
    walk = RandomWalk({"BTCUSDT": market_spec("BTCUSDT")}, seed=3, start_ms=START, history=5)
    forming = walk.step("BTCUSDT")
    closed, new = walk.roll("BTCUSDT")
    assert closed.closed and closed.open_time == forming.open_time and closed.close == forming.close
    assert new.open_time == closed.open_time + BASE_INTERVAL_MS and new.open == closed.close and not new.closed
    hourly = walk.bucket("BTCUSDT", "1h", new)
    assert hourly.open_time == START and not hourly.closed


# ---- signatures ---------------------------------------------------------------------------------

NOW = 1_700_000_000_000


@pytest.fixture
def acct() -> Account:
    return Account("key", "secret", {"USDT": D(1)}, NOW)


def signed_query(params: dict[str, str], secret: str = "secret") -> str:
    query = urlencode(params)
    return f"{query}&signature={sign(query, secret)}"


def test_a_correctly_signed_query_or_body_is_accepted(acct: Account) -> None:
    query = signed_query({"symbol": "BTCUSDT", "timestamp": str(NOW), "recvWindow": "5000"})
    assert verify_signed(acct, query, "", NOW, 5000)["symbol"] == "BTCUSDT"
    assert verify_signed(acct, "", query, NOW, 5000)["symbol"] == "BTCUSDT"


@pytest.mark.parametrize(
    ("query", "now", "code"),
    [
        (signed_query({"timestamp": str(NOW)}, "wrong"), NOW, -1022),
        (signed_query({"timestamp": str(NOW)}).replace("signature=", "sig="), NOW, -1102),
        (signed_query({"symbol": "x"}), NOW, -1102),
        (signed_query({"timestamp": str(NOW)}), NOW + 5001, -1021),  # older than the default recvWindow
        (signed_query({"timestamp": str(NOW), "recvWindow": "10000"}), NOW + 9000, None),
        (signed_query({"timestamp": str(NOW + 1500)}), NOW, -1021),  # more than 1 s ahead
    ],
)
def test_signature_and_timestamp_rejections(acct: Account, query: str, now: int, code: int | None) -> None:
    if code is None:
        verify_signed(acct, query, "", now, 5000)
        return
    with pytest.raises(Rejection) as info:
        verify_signed(acct, query, "", now, 5000)
    assert info.value.code == code


def test_aggregate_weeks_open_on_monday_and_months_on_the_first() -> None:
    import datetime as dt

    def ms(year: int, month: int, day: int) -> int:
        return int(dt.datetime(year, month, day, tzinfo=dt.UTC).timestamp() * 1000)

    day = 86_400_000
    # Daily candles from Saturday 2024-01-27 to Monday 2024-03-04: weeks from Monday, months from the 1st.
    first = ms(2024, 1, 27)
    days = [
        Candle(first + i * day, day, D(100 + i), D(101 + i), D(99 + i), D(100 + i), D(1), 1, True) for i in range(38)
    ]
    weeks = aggregate(days, "1w")
    assert weeks[0].open_time == ms(2024, 1, 22)  # the week of our first day (a Saturday)
    assert [w.open_time for w in weeks[1:]] == [ms(2024, 1, 29) + i * 7 * day for i in range(6)]
    assert all(w.closed for w in weeks[1:-1]) and not weeks[-1].closed  # the last has one day of seven
    months = aggregate(days, "1M")
    assert [m.open_time for m in months] == [ms(2024, 1, 1), ms(2024, 2, 1), ms(2024, 3, 1)]
    feb = months[1]
    assert feb.closed and feb.close_time == ms(2024, 3, 1) - 1 and feb.interval_ms == 29 * day
    assert (feb.open, feb.close) == (D(105), D(133))
