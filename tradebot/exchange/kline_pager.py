"""The one REST kline pager: closed candles of a range, oldest first, page by page.

Used by the market-data hub (backfill, catch-up, history for warm-ups) and by the backtest history
loader, so both take the same candles for closed. A row is closed when
- the caller bounds the range with `before` (exclusive) and vouches that the candle at `before` is
  closed, or at least not earlier than the first unclosed one: every row before it is closed; or
- a later row exists (inside a full page every row but the last); or
- by `timeframes.is_closed` on the exchange's clock (asked through `now` only for the last row of
  the last page), which knows calendar months.

`latest_closed` walks the other way, for "the last N closed candles": the newest page, then older
pages by `endTime`, judging the newest row by the same rule.

Pages are asked with `since` (inclusive) and, with `before`, an inclusive end of `before - 1`, as
Binance's klines `startTime`/`endTime` take them. The pager stops at an empty page, at `before`,
or, without `before`, at a page shorter than asked (the end of the history). With `before`, a
short page is not the end: servers cap pages below what was asked (ccxt keeps at most 1,000 rows
of Binance's 1,500), so the pager asks on from the next open until the range is done.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from tradebot.timeframes import is_closed, next_open

Row = list[Any]  # [open_ms, open, high, low, close, volume], as ccxt's fetch_ohlcv returns them
# (since or None for the newest, limit, inclusive end or None) -> rows, oldest first
FetchPage = Callable[[int | None, int, int | None], Awaitable[list[Row]]]
ExchangeNow = Callable[[], Awaitable[int]]


async def closed_pages(
    fetch: FetchPage,
    timeframe: str,
    since: int,
    before: int | None,
    *,
    now: ExchangeNow,
    first_page: int,
    page_limit: int,
) -> AsyncIterator[list[Row]]:
    """Each page's closed rows with since <= open time (< before), oldest first; never an empty page."""
    cursor = since
    limit = first_page
    while True:
        end = None if before is None else before - 1
        if end is not None and end < cursor:
            return
        raw = await fetch(cursor, limit, end)
        full = len(raw) >= limit
        rows = [r for r in raw if int(r[0]) >= cursor and (before is None or int(r[0]) < before)]
        if not rows:
            return
        if before is not None:
            closed = rows
        elif full:
            closed = rows[:-1]  # the last is judged with the next page
        elif is_closed(timeframe, int(rows[-1][0]), await now()):
            closed = rows
        else:
            closed = rows[:-1]
        if closed:
            yield closed
        if before is None and not full:
            return
        cursor = next_open(timeframe, int(closed[-1][0])) if closed else int(rows[-1][0])
        limit = page_limit


async def latest_closed(
    fetch: FetchPage,
    timeframe: str,
    limit: int,
    *,
    now: ExchangeNow,
    max_page: int,
    full_page: int,
) -> list[Row]:
    """The newest `limit` closed rows, oldest first. `max_page` caps one request; a page shorter
    than both what was asked and `full_page` (some servers cap pages below the maximum) is the
    start of the history."""
    if limit < 1:
        return []
    asked = min(limit + 1, max_page)  # one row more: the newest may be forming
    rows = await fetch(None, asked, None)
    collected = rows
    if rows and not is_closed(timeframe, int(rows[-1][0]), await now()):
        collected = rows[:-1]
    page_len = len(rows)
    while rows and page_len >= min(asked, full_page) and len(collected) < limit:
        oldest = int(rows[0][0])
        asked = min(limit - len(collected), max_page)
        page = await fetch(None, asked, oldest - 1)
        page_len = len(page)
        rows = [r for r in page if int(r[0]) < oldest]
        collected = rows + collected
    return collected[-limit:]
