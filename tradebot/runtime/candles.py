"""Live candles as the market-data hub delivers them, and the sink protocol it delivers into.

The hub calls `CandleSink.offer` from its stream tasks and never awaits a subscriber: a sink must
accept or discard a candle at once, so one stalled subscriber cannot delay the others. What a sink
does when it is full is its own policy. Market data is the one kind of message that may be
coalesced (commands never are): a bot's `Mailbox` drops the *oldest* candle, which keeps a
lagging actor close to the present, and the actor notices the hole in open times and backfills it
from history instead of silently computing over a gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tradebot.strategies.candles import Candle as Bar
from tradebot.timeframes import next_open, timeframe_ms

__all__ = ["Candle", "CandleSink", "timeframe_ms"]

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
