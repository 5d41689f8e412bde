"""Candle history for backtests: closed candles from the exchange's REST klines, cached in PostgreSQL.

A range is served from the cache where it was downloaded before; only the missing parts are asked
of the exchange, page by page (``fetch_ohlcv`` with ``startTime``/``endTime``), each page stored as
it arrives (memory stays flat however long the range), and the part recorded as covered once every
page of it is in. Only closed candles are taken: the range is cut at the open time of the candle
forming by the exchange's clock, so a forming candle is never cached as if it were final.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from tradebot.backtests.candle_cache import CandleStore
from tradebot.backtests.errors import HistoryUnavailable
from tradebot.backtests.models import History
from tradebot.exchange.errors import ExchangeError, Retryable, translated
from tradebot.timeframes import candle_open, candles_between, next_open, open_at_or_after

log = logging.getLogger(__name__)

# Rows per klines request. Binance serves up to 1,500, but ccxt's binance fetch_ohlcv keeps at most
# 1,000 of them (it trims the parsed page to its own maxLimit), and 1,000 is also the cheaper page by
# request weight per candle (5 per 1,000 against 10 per 1,500).
PAGE_LIMIT: Final = 1000
RETRIES: Final = 4
# A range that ended this long before the local clock is closed by any exchange clock within the
# margin: it is served without asking the exchange its time (a cached range then makes no call at all).
CLOCK_MARGIN_MS: Final = 60_000
# A candle counts as closed this long after its close time: a range is recorded as covered for good,
# so a candle the exchange had not finalised yet must not be taken for a gap in its history.
SETTLE_MS: Final = 5_000


class KlinesClient(Protocol):
    """The part of a ccxt exchange the loader uses."""

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str = ..., since: int | None = ..., limit: int | None = ..., params: Any = ...
    ) -> list[list[Any]]: ...

    async def fetch_time(self, params: Any = ...) -> int | None: ...


@dataclass
class LoaderStats:
    """Counters for operators and tests: exchange requests made, candles downloaded."""

    exchange_requests: int = 0
    candles_downloaded: int = 0


ProgressCallback = Callable[[int, int], None]  # (candles so far, candles expected) of a download


class HistoryLoader:
    def __init__(
        self,
        cache: CandleStore,
        client: Callable[[], KlinesClient],
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._cache = cache
        self._client = client  # looked up per call: the factory creates it on first use
        self._sleep = sleep
        self._wall_ms = wall_ms
        self.stats = LoaderStats()

    async def load(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start_ms: int,
        end_ms: int,
        *,
        progress: ProgressCallback | None = None,
    ) -> History:
        """The closed candles with open times in ``[start_ms, end_ms)``. Raises HistoryUnavailable."""
        # First candle boundary at or after the start (and not before 1970: klines take no negative times).
        start = open_at_or_after(timeframe, max(0, start_ms))
        # The close of the last candle opening before the end.
        last_close = next_open(timeframe, candle_open(timeframe, end_ms - 1)) if end_ms > 0 else 0
        if last_close + CLOCK_MARGIN_MS <= self._wall_ms():
            end = end_ms  # long closed, whatever the exchange's clock says
        else:
            end = min(end_ms, await self._closed_until(timeframe))
        if start >= end:
            return History(None, start, max(start, end), 0)
        expected = candles_between(timeframe, start, end)
        for gap_start, gap_end in await self._cache.missing(exchange, symbol, timeframe, start, end):
            await self._download(exchange, symbol, timeframe, gap_start, gap_end, progress, expected)
        candles = await self._cache.load(exchange, symbol, timeframe, start, end)
        return History(candles, start, end, expected)

    async def _closed_until(self, timeframe: str) -> int:
        """The open time of the candle forming now by the exchange's clock: every earlier one is closed."""
        now = await self._call(lambda client: client.fetch_time())
        if not isinstance(now, int | float):
            raise HistoryUnavailable("the exchange did not tell its time")
        return candle_open(timeframe, int(now) - SETTLE_MS)

    async def _download(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: int,
        end: int,
        progress: ProgressCallback | None,
        expected: int,
    ) -> None:
        since = start
        done = 0
        while since < end:
            page_since = since
            rows = await self._call(
                lambda client, since=page_since: client.fetch_ohlcv(  # type: ignore[misc]
                    symbol, timeframe, since, PAGE_LIMIT, {"endTime": end - 1}
                )
            )
            # Binance answers the first `limit` candles from startTime up to endTime; an empty page
            # means nothing more in the range (a gap up to its end), never "try further on".
            rows = [r for r in rows if page_since <= int(r[0]) < end]
            if not rows:
                break
            await self._cache.store(exchange, symbol, timeframe, rows)
            self.stats.candles_downloaded += len(rows)
            done += len(rows)
            if progress is not None:
                progress(done, expected)
            since = next_open(timeframe, int(rows[-1][0]))
        await self._cache.mark_covered(exchange, symbol, timeframe, start, end)

    async def _call(self, request: Callable[[KlinesClient], Awaitable[Any]]) -> Any:
        """One exchange request, retried with backoff while the failure is transient."""
        delay = 0.5
        for attempt in range(RETRIES + 1):
            self.stats.exchange_requests += 1
            try:
                with translated():
                    return await request(self._client())
            except Retryable as e:
                if attempt == RETRIES:
                    raise HistoryUnavailable(f"the exchange did not answer for candles: {e}") from e
                log.warning("klines request failed, retrying in %.1f s: %s", delay, e)
                await self._sleep(delay)
                delay = min(delay * 2, 8.0)
            except ExchangeError as e:
                raise HistoryUnavailable(f"the exchange refused the candle request: {e}") from e
        raise AssertionError("unreachable")
