"""Candle histories (pushed and random-walk) and Binance's kline query rules: pure, no I/O, no clock."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from tradebot.exchange.simulator.markets import MarketSpec, to_grid
from tradebot.timeframes import TIMEFRAMES, candle_open, next_open, timeframe_ms

INTERVALS = TIMEFRAMES
BASE_INTERVAL = "1m"
BASE_INTERVAL_MS = timeframe_ms(BASE_INTERVAL)
DEFAULT_KLINES_LIMIT = 500
MAX_KLINES_LIMIT = 1500
# A long-running demo at one candle a second makes 86,400 a day; older ones are forgotten.
MAX_RANDOM_WALK_HISTORY = 100_000


@dataclass(frozen=True, slots=True)
class Candle:
    open_time: int
    interval_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trades: int
    closed: bool

    @property
    def close_time(self) -> int:
        return self.open_time + self.interval_ms - 1


def select_klines(candles: Sequence[Candle], start_time: int | None, end_time: int | None, limit: int) -> list[Candle]:
    """Binance's rule: with startTime the first `limit` from there, otherwise the last `limit`."""
    chosen = [
        c
        for c in candles
        if (start_time is None or c.open_time >= start_time) and (end_time is None or c.open_time <= end_time)
    ]
    return chosen[:limit] if start_time is not None else chosen[-limit:]


def aggregate(candles: Iterable[Candle], interval: str) -> list[Candle]:
    """Groups base candles (in time order) into `interval` buckets on Binance's boundaries (the
    epoch's multiples, Mondays for 1w, the 1st of each month for 1M).

    A bucket is closed when its last base candle is closed and ends where the bucket ends.
    """
    out: list[Candle] = []
    for c in candles:
        start = candle_open(interval, c.open_time)
        interval_ms = next_open(interval, start) - start
        last = out[-1] if out else None
        if last is not None and last.open_time == start:
            out[-1] = Candle(
                open_time=start,
                interval_ms=interval_ms,
                open=last.open,
                high=max(last.high, c.high),
                low=min(last.low, c.low),
                close=c.close,
                volume=last.volume + c.volume,
                trades=last.trades + c.trades,
                closed=c.closed and c.close_time == start + interval_ms - 1,
            )
        else:
            out.append(
                replace(
                    c,
                    open_time=start,
                    interval_ms=interval_ms,
                    closed=c.closed and c.close_time == start + interval_ms - 1,
                )
            )
    return out


class ManualHistory:
    """Exactly the candles pushed through the control API, per (symbol, interval), in push order."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], list[Candle]] = {}
        self.last_close: dict[str, Decimal] = {}
        self._last_interval: dict[str, str] = {}

    def append(self, symbol: str, interval: str, candle: Candle) -> None:
        # Kept even when its time is out of order or far from the wall clock: tests replay history.
        self._series.setdefault((symbol, interval), []).append(candle)
        self.last_close[symbol] = candle.close
        self._last_interval[symbol] = interval

    def recent(self, symbol: str, window_ms: int) -> list[Candle]:
        """The candles of the series pushed to last, opened within `window_ms` before its last one."""
        interval = self._last_interval.get(symbol)
        if interval is None:
            return []
        series = self._series[(symbol, interval)]
        cutoff = series[-1].open_time - window_ms
        return [c for c in series[-2000:] if c.open_time > cutoff]  # a day of 1m candles is 1,440

    def series(self, symbol: str, interval: str) -> list[Candle]:
        return self._series.get((symbol, interval), [])


@dataclass(slots=True)
class _Walk:
    rng: random.Random
    tick: Decimal
    price: Decimal
    closed: list[Candle]
    forming: Candle


class RandomWalk:
    """A seeded geometric random walk per symbol, producing 1m candles in simulated time.

    Candles live in simulated time: the caller moves the price (`step`) and closes candles as its clock
    passes their end (`advance_to`), so a demo can run faster than the wall clock; the walk starts with
    `history` closed candles ending where the forming candle opens (`start_ms`), so a bot can warm its
    indicators at once.
    """

    def __init__(
        self,
        markets: Mapping[str, MarketSpec],
        *,
        seed: int,
        start_ms: int,
        history: int,
        volatility: float = 0.0008,
        steps_per_candle: int = 4,
    ) -> None:
        self._volatility = volatility
        self._steps = steps_per_candle
        self._walks: dict[str, _Walk] = {}
        first_open = start_ms - start_ms % BASE_INTERVAL_MS - history * BASE_INTERVAL_MS
        for symbol, market in markets.items():
            # A string seed is hashed deterministically, so each symbol's walk depends on the seed and
            # its own name only, not on which other symbols are listed.
            rng = random.Random(f"{seed}:{symbol}")
            walk = _Walk(rng, market.tick_size, market.initial_price, [], self._open(first_open, market.initial_price))
            self._walks[symbol] = walk
            for _ in range(history):
                for _ in range(self._steps):
                    self._move(walk)
                self._roll(walk)

    def price(self, symbol: str) -> Decimal:
        return self._walks[symbol].price

    def forming(self, symbol: str) -> Candle:
        return self._walks[symbol].forming

    def step(self, symbol: str) -> Candle:
        """Moves the price once inside the forming candle and returns the updated forming candle."""
        walk = self._walks[symbol]
        self._move(walk)
        return walk.forming

    def roll(self, symbol: str) -> tuple[Candle, Candle]:
        """Closes the forming candle; returns it (closed) and the new forming one."""
        walk = self._walks[symbol]
        closed = self._roll(walk)
        return closed, walk.forming

    def advance_to(self, symbol: str, now_ms: int) -> list[Candle]:
        """Closes every candle that ended by `now_ms` (simulated time); returns them, oldest first.

        A candle the walk skipped over entirely (after a pause in manual mode) gets the moves it would
        have had, so the history has no holes; a gap longer than the kept history is jumped instead.
        """
        walk = self._walks[symbol]
        closed: list[Candle] = []
        missed = (now_ms - walk.forming.open_time) // BASE_INTERVAL_MS
        if missed > MAX_RANDOM_WALK_HISTORY:
            closed.append(self._roll(walk))
            walk.forming = self._open(now_ms - now_ms % BASE_INTERVAL_MS, walk.price)
            return closed
        while walk.forming.open_time + BASE_INTERVAL_MS <= now_ms:
            if closed:
                for _ in range(self._steps):
                    self._move(walk)
            closed.append(self._roll(walk))
        return closed

    def candles(self, symbol: str, interval: str) -> list[Candle]:
        """The whole history for an interval, the forming candle last."""
        walk = self._walks[symbol]
        base = [*walk.closed, walk.forming]
        return base if interval == BASE_INTERVAL else aggregate(base, interval)

    def bucket(self, symbol: str, interval: str, base_candle: Candle) -> Candle:
        """The `interval` candle that contains `base_candle`, aggregated from the history."""
        if interval == BASE_INTERVAL:
            return base_candle
        start = candle_open(interval, base_candle.open_time)
        walk = self._walks[symbol]
        members = [base_candle]
        for c in reversed(walk.closed):
            if c.open_time < start:
                break
            if c.open_time < base_candle.open_time:
                members.append(c)
        members.reverse()
        return aggregate(members, interval)[0]

    def _open(self, open_time: int, price: Decimal) -> Candle:
        return Candle(open_time, BASE_INTERVAL_MS, price, price, price, price, Decimal(0), 0, closed=False)

    def _move(self, walk: _Walk) -> None:
        factor = math.exp(walk.rng.gauss(0.0, self._volatility))
        price = to_grid(walk.price * Decimal(repr(factor)), walk.tick)
        price = max(price, walk.tick)
        volume = Decimal(walk.rng.randint(1, 5000)) / 1000
        f = walk.forming
        walk.price = price
        walk.forming = replace(
            f,
            high=max(f.high, price),
            low=min(f.low, price),
            close=price,
            volume=f.volume + volume,
            trades=f.trades + 1,
        )

    def _roll(self, walk: _Walk) -> Candle:
        closed = replace(walk.forming, closed=True)
        walk.closed.append(closed)
        if len(walk.closed) > MAX_RANDOM_WALK_HISTORY:
            del walk.closed[: len(walk.closed) - MAX_RANDOM_WALK_HISTORY]
        walk.forming = self._open(closed.open_time + BASE_INTERVAL_MS, closed.close)
        return closed
