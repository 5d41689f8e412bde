"""A candle sink for tests of the market-data hub: bounded, it drops the oldest and counts it."""

from __future__ import annotations

import asyncio
from collections import deque

from tradebot.runtime.candles import Candle


class BoundedCandleQueue:
    """A bounded candle queue for one consumer: `offer` never blocks; when full the oldest is dropped.

    Dropping the oldest (not the newest) keeps the consumer close to the present; `dropped` counts what
    was lost so the consumer can tell that its sequence has a hole and resynchronise.
    """

    def __init__(self, maxsize: int = 1024) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._items: deque[Candle] = deque(maxlen=maxsize)
        self._ready = asyncio.Event()
        self.offered = 0
        self.dropped = 0

    def offer(self, candle: Candle) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1  # deque(maxlen) discards the oldest on append
        self._items.append(candle)
        self.offered += 1
        self._ready.set()

    def get_nowait(self) -> Candle:
        """The oldest queued candle; raises `asyncio.QueueEmpty` when there is none."""
        if not self._items:
            raise asyncio.QueueEmpty
        candle = self._items.popleft()
        if not self._items:
            self._ready.clear()
        return candle

    async def get(self) -> Candle:
        while not self._items:
            await self._ready.wait()
        return self.get_nowait()

    def drain(self) -> list[Candle]:
        """Everything queued, oldest first, emptying the queue."""
        items = list(self._items)
        self._items.clear()
        self._ready.clear()
        return items

    def __len__(self) -> int:
        return len(self._items)
