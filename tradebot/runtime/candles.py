"""Live candles as the market-data hub delivers them, and the sink protocol it delivers into.

The hub calls `CandleSink.offer` from its stream tasks and never awaits a subscriber: a sink must
accept or discard a candle at once, so one stalled subscriber cannot delay the others. What a sink
does when it is full is its own policy. Market data is the one kind of message that may be
coalesced (commands never are): `BoundedCandleQueue` drops the *oldest* candle, which keeps a
lagging consumer close to the present, and counts the loss in `dropped`, so a consumer whose EMA
needs every candle knows it has a hole and resynchronises from history
(`MarketDataHub.fetch_closed_history`) instead of silently computing over a gap.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from tradebot.strategies.candles import Candle as Bar
from tradebot.timeframes import next_open, timeframe_ms

__all__ = ["BoundedCandleQueue", "Candle", "CandleSink", "timeframe_ms"]

@dataclass(frozen=True, slots=True)
class Candle:
    """One candle of one stream. `symbol` is ccxt's unified symbol ("BTC/USDT:USDT"), `open_time` in ms UTC.

    `closed` is the exchange's own final flag (Binance's kline `x`), never inferred from the clock; the
    hub delivers closed candles only.

    Not the strategies' `Candle` (here `Bar`): that one is a bar of prices alone, what a pure strategy
    and the backtest see; this one is a message on a stream, which also says which stream and whether
    it is final. `bar` is the one conversion between them.
    """

    symbol: str
    timeframe: str
    open_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool = True

    @property
    def bar(self) -> Bar:
        """The prices alone, as strategies take them."""
        return Bar(self.open_time, self.open, self.high, self.low, self.close, self.volume)

    @property
    def close_time(self) -> int:
        """The first ms after the candle: the next candle's open time (months vary in length)."""
        return next_open(self.timeframe, self.open_time)


class CandleSink(Protocol):
    """Where the hub puts a subscriber's candles. `offer` must return at once and must not raise."""

    def offer(self, candle: Candle) -> None: ...


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
