"""The one kline pager and its one "closed" rule, over an in-memory kline server (no network)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tradebot import timeframes as tf
from tradebot.exchange.kline_pager import closed_pages, latest_closed

MIN = 60_000


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC).timestamp() * 1000)


class Klines:
    """Serves rows like Binance's klines: from `since`, up to `limit` (capped at `cap`), to `end`."""

    def __init__(self, opens: list[int], cap: int = 1000) -> None:
        self.rows = [[t, 1.0, 1.0, 1.0, 1.0, 1.0] for t in opens]
        self.cap = cap
        self.calls: list[tuple[int, int, int | None]] = []

    async def fetch(self, since: int | None, limit: int, end: int | None) -> list[list[Any]]:
        assert since is not None
        self.calls.append((since, limit, end))
        out = [r for r in self.rows if r[0] >= since and (end is None or r[0] <= end)]
        return out[: min(limit, self.cap)]


def clock(now_ms: int) -> Any:
    async def now() -> int:
        return now_ms
    return now


async def collect(server: Klines, since: int, before: int | None, now_ms: int, first: int = 3, page: int = 3,
                  timeframe: str = "1m") -> list[int]:
    out: list[int] = []
    async for rows in closed_pages(server.fetch, timeframe, since, before, now=clock(now_ms), first_page=first,
                                   page_limit=page):
        assert rows
        out += [int(r[0]) for r in rows]
    return out


def test_a_month_closes_at_the_next_month_not_after_thirty_days() -> None:
    feb = ms(2025, 2, 1)
    assert tf.is_closed("1M", feb, feb + 28 * 86_400_000)  # February 2025 has 28 days, not 30
    assert tf.is_closed("1M", feb, ms(2025, 3, 1))
    assert not tf.is_closed("1M", feb, ms(2025, 3, 1) - 1)
    jan = ms(2025, 1, 1)
    assert not tf.is_closed("1M", jan, jan + 30 * 86_400_000)  # January has 31 days
    assert tf.first_unclosed_open("1M", ms(2025, 3, 15)) == ms(2025, 3, 1)
    assert tf.first_unclosed_open("1m", 5 * MIN) == 5 * MIN and tf.is_closed("1m", 4 * MIN, 5 * MIN)


async def test_open_ended_the_forming_last_row_is_left_out() -> None:
    server = Klines([t * MIN for t in range(7)])
    # Now is inside the candle opening at 6 min: it is forming.
    assert await collect(server, 0, None, now_ms=6 * MIN + 30_000) == [t * MIN for t in range(6)]
    assert await collect(server, 0, None, now_ms=7 * MIN) == [t * MIN for t in range(7)]


async def test_open_ended_a_full_page_defers_its_last_row_to_the_next_page() -> None:
    server = Klines([t * MIN for t in range(6)])
    assert await collect(server, 0, None, now_ms=10 * MIN) == [t * MIN for t in range(6)]
    assert [c[0] for c in server.calls] == [0, 2 * MIN, 4 * MIN]  # the short last page ends it


async def test_bounded_a_server_capping_pages_below_the_limit_is_not_the_end() -> None:
    server = Klines([t * MIN for t in range(10)], cap=2)
    assert await collect(server, 0, 10 * MIN, now_ms=0, first=5, page=5) == [t * MIN for t in range(10)]


async def test_bounded_a_hole_at_the_end_stops_at_the_empty_page() -> None:
    server = Klines([0, MIN, 2 * MIN])
    assert await collect(server, 0, 10 * MIN, now_ms=0, first=5, page=5) == [0, MIN, 2 * MIN]
    assert server.calls[-1] == (3 * MIN, 5, 10 * MIN - 1)


async def test_monthly_pages_step_by_calendar_months() -> None:
    opens = [ms(2024, m, 1) for m in range(1, 13)]
    server = Klines(opens, cap=5)
    got = await collect(server, opens[0], None, now_ms=ms(2024, 12, 20), first=5, page=5, timeframe="1M")
    assert got == opens[:-1]  # December is still forming on the 20th


class NewestFirst(Klines):
    """Without `since`, Binance answers the newest `limit` rows up to `end`."""

    async def fetch(self, since: int | None, limit: int, end: int | None) -> list[list[Any]]:
        self.calls.append((since or -1, limit, end))
        out = [r for r in self.rows if (since is None or r[0] >= since) and (end is None or r[0] <= end)]
        out = out[-min(limit, self.cap):] if since is None else out[: min(limit, self.cap)]
        return out


async def test_latest_closed_walks_back_by_end_time_and_leaves_the_forming_candle_out() -> None:
    server = NewestFirst([t * MIN for t in range(20)], cap=4)
    # A server whose pages hold 4 rows (full_page=4): a page of 4 is not the start of the history.
    rows = await latest_closed(server.fetch, "1m", 10, now=clock(19 * MIN + 1), max_page=1500, full_page=4)
    assert [int(r[0]) for r in rows] == [t * MIN for t in range(9, 19)]
    rows = await latest_closed(server.fetch, "1m", 50, now=clock(20 * MIN), max_page=1500, full_page=4)
    assert [int(r[0]) for r in rows] == [t * MIN for t in range(20)]  # the whole history, all closed
    assert await latest_closed(server.fetch, "1m", 0, now=clock(0), max_page=1500, full_page=1000) == []
