"""Warm-up history shared between bots of the same market.

Every starting bot reads its market's recent closed candles. Read bot by bot, a cold replica with
1,000 bots makes 1,000 reads through the exchange's rate limit (over 8 minutes on the simulator),
though most bots share a handful of symbols. So concurrent reads of one (symbol, timeframe) await
a single request, and its answer serves later starts for a few seconds; candles closed after it
reach each bot through its own subscription, which starts right after the last candle it saw
(the bot decides on those before it trades, see `bot_actor`). Bots of one market with different
warm-up lengths share too: the longest read in flight or still fresh serves every shorter one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tradebot.runtime.candles import Candle

Fetch = Callable[[str, str, int | None, int], Awaitable[list[Candle]]]

FRESH_FOR_S = 5.0


@dataclass(frozen=True, slots=True)
class _Read:
    started_at: float
    limit: int
    answer: asyncio.Future[list[Candle]]


class HistoryCache:
    def __init__(self, fetch: Fetch, *, fresh_for_s: float = FRESH_FOR_S) -> None:
        self._fetch = fetch
        self._fresh_for_s = fresh_for_s
        self._reads: dict[tuple[str, str], list[_Read]] = {}
        self.requests = 0

    async def latest(self, symbol: str, timeframe: str, limit: int) -> list[Candle]:
        """The latest `limit` closed candles, shared with every concurrent or recent caller.

        A read of more candles serves a shorter one: its last `limit` candles are what a read of
        `limit` would have returned at that moment.
        """
        key = (symbol, timeframe)
        while True:
            now = time.monotonic()
            reads = [r for r in self._reads.get(key, []) if self._usable(r, now)]
            self._reads[key] = reads
            shared = next((r for r in reads if r.limit >= limit), None)
            if shared is None:
                break
            try:
                return list(await asyncio.shield(shared.answer))[-limit:]
            except asyncio.CancelledError:
                # The bot whose read we shared was stopped (its lease moved): that cancels its read,
                # not this caller, who reads again. A cancellation of this caller itself propagates.
                task = asyncio.current_task()
                if not shared.answer.cancelled() or (task is not None and task.cancelling()):
                    raise
        read = _Read(now, limit, asyncio.get_running_loop().create_future())
        reads.append(read)
        self.requests += 1
        try:
            candles = await self._fetch(symbol, timeframe, None, limit)
        except BaseException as e:
            if read in self._reads.get(key, []):
                self._reads[key].remove(read)
            if isinstance(e, Exception):
                read.answer.set_exception(e)
                read.answer.exception()  # retrieved: callers that shared it get it raised themselves
            else:
                read.answer.cancel()
            raise
        read.answer.set_result(candles)
        return list(candles)

    def _usable(self, read: _Read, now: float) -> bool:
        if not read.answer.done():
            return True
        failed = read.answer.cancelled() or read.answer.exception() is not None
        return not failed and now - read.started_at < self._fresh_for_s
