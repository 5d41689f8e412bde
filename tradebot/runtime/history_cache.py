"""Warm-up history shared between bots of the same market.

Every starting bot reads its market's recent closed candles. On a cold replica with 1,000 bots
that was 1,000 reads through the exchange's rate limit (over 8 minutes on the simulator, though
most bots share a handful of symbols). Concurrent reads of one (symbol, timeframe) now await a
single request, and its answer serves later starts for a few seconds; candles closed after it
reach each bot through its own subscription, which starts right after the last candle it saw.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from tradebot.runtime.candles import Candle

Fetch = Callable[[str, str, int | None, int], Awaitable[list[Candle]]]

FRESH_FOR_S = 5.0


class HistoryCache:
    def __init__(self, fetch: Fetch, *, fresh_for_s: float = FRESH_FOR_S) -> None:
        self._fetch = fetch
        self._fresh_for_s = fresh_for_s
        self._latest: dict[tuple[str, str, int], tuple[float, asyncio.Future[list[Candle]]]] = {}
        self.requests = 0

    async def latest(self, symbol: str, timeframe: str, limit: int) -> list[Candle]:
        """The latest `limit` closed candles, shared with every concurrent or recent caller."""
        key = (symbol, timeframe, limit)
        now = time.monotonic()
        entry = self._latest.get(key)
        if entry is not None:
            fetched_at, future = entry
            if not future.done() or (now - fetched_at < self._fresh_for_s and future.exception() is None):
                return list(await asyncio.shield(future))
        future = asyncio.get_running_loop().create_future()
        self._latest[key] = (now, future)
        self.requests += 1
        try:
            candles = await self._fetch(symbol, timeframe, None, limit)
        except BaseException as e:
            self._latest.pop(key, None)
            if isinstance(e, Exception):
                future.set_exception(e)
                future.exception()  # retrieved: callers that shared it get it raised themselves
            else:
                future.cancel()
            raise
        future.set_result(candles)
        return list(candles)
