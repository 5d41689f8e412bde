"""The running simulator: engine, candle histories, mode, faults and streams, tied together.

One instance lives on the aiohttp app (`SIMULATOR` app key); REST handlers, the control API and the
random-walk task all go through it, on one event loop, so no locking is needed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tradebot.exchange.simulator import wire
from tradebot.exchange.simulator.accounts import AlgoReport
from tradebot.exchange.simulator.candles import (
    BASE_INTERVAL,
    BASE_INTERVAL_MS,
    INTERVALS,
    Candle,
    ManualHistory,
    RandomWalk,
    select_klines,
)
from tradebot.exchange.simulator.conditional import AlgoService, Move, Report
from tradebot.exchange.simulator.config import Mode, SimulatorConfig
from tradebot.exchange.simulator.engine import MatchingEngine
from tradebot.exchange.simulator.markets import MarketSpec, market_spec
from tradebot.exchange.simulator.simclock import SimulatedClock, speed_for
from tradebot.exchange.simulator.streams import StreamHub
from tradebot.exchange.simulator.weights import UsedWeight

log = logging.getLogger(__name__)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class Faults:
    fail_next_requests: int = 0  # answered 503 / -1001
    rate_limit_next_requests: int = 0  # answered 429 / -1003
    latency_ms: int = 0


class Simulator:
    """The whole simulated exchange: markets, engine, price sources, streams, faults and listen keys."""

    def __init__(self, config: SimulatorConfig, clock: Callable[[], int] = wall_clock_ms) -> None:
        self.config = config
        self.wall_clock = clock  # signed requests' timestamps are checked against this one
        self._clock = SimulatedClock(clock)
        self.markets: dict[str, MarketSpec] = {s: market_spec(s) for s in config.symbols}
        self.engine = MatchingEngine(
            self.markets,
            fee_rate=config.fee_rate,
            slippage_bps=config.slippage_bps,
            reuse_closed_client_ids=config.reuse_closed_client_ids,
        )
        self.algo = AlgoService(self.engine)
        now = clock()
        for spec in config.accounts:
            self.engine.add_account(spec.api_key, spec.secret, spec.balances, now)
        self.walk = RandomWalk(self.markets, seed=config.seed, start_ms=now, history=config.history_candles)
        self.manual = ManualHistory()
        self.hub = StreamHub()
        self.faults = Faults()
        self.used_weight = UsedWeight()
        self._next_agg_trade_id = 1
        self.listen_keys: dict[str, str] = {}  # listenKey -> api_key
        self.mode: Mode = config.mode
        self.candle_seconds = config.candle_seconds
        self._mode_watchers: set[asyncio.Event] = set()
        if self.mode == "random_walk":
            self._clock.run_fast(speed_for(self.candle_seconds))
            self._price_from_walk()

    def clock(self) -> int:
        """The exchange's time (`serverTime`, event and candle times): see `simclock`."""
        return self._clock.now()

    # ---- market data ----------------------------------------------------------------------------

    def klines(self, symbol: str, interval: str, start: int | None, end: int | None, limit: int) -> list[Candle]:
        if self.mode == "manual":
            series: Sequence[Candle] = self.manual.series(symbol, interval)
        else:
            self._catch_up(symbol)
            series = self.walk.candles(symbol, interval)
        return select_klines(series, start, end, limit)

    def ticker(self, symbol: str) -> dict[str, Any]:
        now = self.clock()
        day_ms = 86_400_000
        if self.mode == "manual":
            window = self.manual.recent(symbol, day_ms)
        else:
            # The last 24 hours of simulated time, forming candle included.
            self._catch_up(symbol)
            window = self.walk.candles(symbol, "1m")[-(day_ms // BASE_INTERVAL_MS) :]
        return wire.ticker_24hr(symbol, window, self.engine.prices[symbol], now)

    def push_candles(self, symbol: str, interval: str, candles: Iterable[Candle]) -> int:
        """Appends pushed (closed) candles, publishes each as a final kline, and moves the price."""
        stream = f"{symbol.lower()}@kline_{interval}"
        count = 0
        for candle in candles:
            self.manual.append(symbol, interval, candle)
            now = self.clock()
            self.hub.publish(stream, wire.kline_event(symbol, interval, candle, now))
            self._publish_continuous(symbol, interval, candle, now)
            # Resting limit orders fill if the candle's range crossed them, conditional orders and
            # liquidations trigger along its path; its close is the new price.
            move = Move(self.engine.prices[symbol], candle.close, candle.open, candle.low, candle.high)
            self.publish_reports(self._on_move(symbol, move, now))
            self._publish_trade(symbol, candle.close, candle.volume, now)
            count += 1
        self._publish_tickers(symbol)
        return count

    def set_mode(self, mode: Mode, candle_seconds: float | None) -> None:
        if candle_seconds is not None:
            self.candle_seconds = candle_seconds
        if mode == "random_walk":
            self._clock.run_fast(speed_for(self.candle_seconds))
        else:
            self._clock.follow_wall()
        if mode != self.mode:
            self.mode = mode
            if mode == "random_walk":
                for symbol in self.markets:
                    self._catch_up(symbol)
                self._price_from_walk()
            else:
                # Manual mode fills at the last pushed close; before any push, at the last price seen.
                for symbol, close in self.manual.last_close.items():
                    self.engine.prices[symbol] = close
        for watcher in self._mode_watchers:
            watcher.set()

    async def _pause(self, seconds: float | None) -> bool:
        """Sleeps `seconds` (until a mode change if None); True if the mode or pace changed meanwhile."""
        changed = asyncio.Event()
        self._mode_watchers.add(changed)
        try:
            await asyncio.wait_for(changed.wait(), timeout=seconds)
            return True
        except TimeoutError:
            return False
        finally:
            self._mode_watchers.discard(changed)

    def _price_from_walk(self) -> None:
        for symbol in self.markets:
            self.engine.prices[symbol] = self.walk.price(symbol)

    # ---- random walk ----------------------------------------------------------------------------

    async def run_random_walk(self) -> None:
        """Background task: moves every symbol's price a few times per candle and closes candles.

        Runs for the life of the app; idles (waiting for a mode change) while in manual mode. Candles
        close when the simulated clock passes their end, not after a count of steps, so candle times
        never drift from `serverTime`.
        """
        steps = 4
        while True:
            if self.mode != "random_walk":
                await self._pause(None)
                continue
            if await self._pause(max(self.candle_seconds, 0.01) / steps):
                continue  # the mode or the pace changed: look again before moving the price
            for symbol in self.markets:
                self._walk_step(symbol)

    # ---- CSV replay ------------------------------------------------------------------------------

    async def run_replay(self) -> None:
        """Background task: pushes the replay's candles one per `candle_seconds`, as if just closed.

        The warm-up part is pushed at once; afterwards it only pushes while in manual mode, and it
        ends after the last candle.
        """
        replay = self.config.replay
        if replay is None:
            return
        self.push_candles(replay.symbol, replay.interval, replay.candles[: replay.warmup])
        for candle in replay.candles[replay.warmup :]:
            # Wait a whole candle_seconds in manual mode; a mode or pace change starts the wait afresh.
            while await self._pause(self.candle_seconds) or self.mode != "manual":
                pass
            self.push_candles(replay.symbol, replay.interval, [candle])
        log.info("replay of %d %s %s candles finished", len(replay.candles), replay.symbol, replay.interval)

    def _catch_up(self, symbol: str) -> int:
        """Closes the walk's candles that ended by the clock and streams them; returns the clock."""
        now = self.clock()
        closed = self.walk.advance_to(symbol, now)
        # After a long pause only the newest closed candles are streamed; clients backfill over REST.
        for candle in closed[-3:]:
            self._publish_walk_candle(symbol, candle, now)
        return now

    def _walk_step(self, symbol: str) -> None:
        now = self._catch_up(symbol)
        before = self.walk.price(symbol)
        volume_before = self.walk.forming(symbol).volume
        forming = self.walk.step(symbol)
        # Only the move just made can fill resting orders: the forming candle's earlier range may predate
        # an order placed since.
        after = forming.close
        reports = self._on_move(symbol, Move(before, after), now)
        self._publish_walk_candle(symbol, forming, now)
        self._publish_trade(symbol, after, forming.volume - volume_before, now)
        self.publish_reports(reports)
        self._publish_tickers(symbol)

    def _on_move(self, symbol: str, move: Move, now: int) -> list[Report]:
        low = move.low if move.low is not None else min(move.start, move.close)
        high = move.high if move.high is not None else max(move.start, move.close)
        reports: list[Report] = list(self.engine.on_price(symbol, move.close, now, low, high))
        reports += self.algo.on_move(symbol, move, now)
        return reports

    def _publish_walk_candle(self, symbol: str, base: Candle, now: int) -> None:
        for interval in INTERVALS:
            stream = f"{symbol.lower()}@kline_{interval}"
            continuous = f"{symbol.lower()}_perpetual@continuousKline_{interval}"
            if self.hub.has_subscribers(stream) or self.hub.has_subscribers(continuous):
                candle = self.walk.bucket(symbol, interval, base)
                self.hub.publish(stream, wire.kline_event(symbol, interval, candle, now))
                self._publish_continuous(symbol, interval, candle, now)

    def _publish_continuous(self, symbol: str, interval: str, candle: Candle, now: int) -> None:
        stream = f"{symbol.lower()}_perpetual@continuousKline_{interval}"
        if self.hub.has_subscribers(stream):
            self.hub.publish(stream, wire.continuous_kline_event(symbol, interval, candle, now))

    def _publish_trade(self, symbol: str, price: Decimal, qty: Decimal, now: int) -> None:
        """A move of the market's price: an aggTrade, and the mark price and top of book that follow it.

        Binance pushes markPrice on a timer (every 3 s or 1 s); the simulator pushes it when the price
        moves, which in manual mode means on each pushed candle.
        """
        lower = symbol.lower()
        if self.hub.has_subscribers(f"{lower}@aggTrade"):
            self.hub.publish(
                f"{lower}@aggTrade", wire.agg_trade_event(symbol, self._next_agg_trade_id, price, qty, now)
            )
            self._next_agg_trade_id += 1
        for stream in (f"{lower}@markPrice", f"{lower}@markPrice@1s"):
            if self.hub.has_subscribers(stream):
                self.hub.publish(stream, wire.mark_price_event(symbol, price, now))
        if self.hub.has_subscribers(f"{lower}@bookTicker"):
            self.hub.publish(f"{lower}@bookTicker", wire.book_ticker_event(self.markets[symbol], price, now))

    def _publish_tickers(self, symbol: str) -> None:
        lower = symbol.lower()
        if self.hub.has_subscribers(f"{lower}@ticker") or self.hub.has_subscribers(f"{lower}@miniTicker"):
            full, mini = wire.ticker_events(self.ticker(symbol), self.clock())
            self.hub.publish(f"{lower}@ticker", full)
            self.hub.publish(f"{lower}@miniTicker", mini)

    # ---- accounts and user data -----------------------------------------------------------------

    def publish_reports(self, reports: Sequence[Report]) -> None:
        """Sends order (and, on fills, account) updates to the user-data streams of their accounts:
        ALGO_UPDATE for conditional orders, ORDER_TRADE_UPDATE (+ ACCOUNT_UPDATE on a fill) for the rest."""
        now = self.clock()
        for report in reports:
            listen_key = self.listen_key_of(report.api_key)
            if isinstance(report, AlgoReport):
                self.hub.publish_user(report.api_key, listen_key, wire.algo_update(report, now))
                continue
            self.hub.publish_user(report.api_key, listen_key, wire.order_trade_update(report, now))
            if report.fill is not None:
                account = self.engine.accounts[report.api_key]
                self.hub.publish_user(
                    report.api_key, listen_key, wire.account_update(self.engine, account, report.order.symbol, now)
                )

    def listen_key_of(self, api_key: str) -> str | None:
        return next((key for key, owner in self.listen_keys.items() if owner == api_key), None)

    def listen_key_for(self, api_key: str) -> str:
        """Binance hands out one listen key per account and returns the same one while it lives."""
        existing = self.listen_key_of(api_key)
        if existing is not None:
            return existing
        key = secrets.token_hex(32)
        self.listen_keys[key] = api_key
        return key

    def close_listen_key(self, api_key: str) -> None:
        for key in [k for k, owner in self.listen_keys.items() if owner == api_key]:
            del self.listen_keys[key]

    def current_price(self, symbol: str) -> Decimal:
        return self.engine.prices[symbol]

    def price_at(self, symbol: str, time_ms: int) -> Decimal:
        """The close of the last base candle opened before `time_ms`, else the current price."""
        before = self.klines(symbol, BASE_INTERVAL, None, time_ms - 1, 1)
        return before[-1].close if before else self.current_price(symbol)

    def stream_error(self, name: str) -> str | None:
        """Why a stream name cannot be served (None if it can): never accept a stream that stays silent."""
        if name in self.listen_keys:
            return None
        symbol, _, kind = name.partition("@")
        if symbol.endswith("_perpetual") and kind.startswith("continuousKline_"):
            symbol, kind = symbol.removesuffix("_perpetual"), kind.removeprefix("continuous")
            kind = "k" + kind[1:]
        if symbol.upper() not in self.markets:
            return f"stream {name} is not served: unknown symbol or stream type"
        if kind.startswith("kline_") and kind.removeprefix("kline_") in INTERVALS:
            return None
        if kind in ("ticker", "miniTicker", "markPrice", "markPrice@1s", "aggTrade", "bookTicker"):
            return None
        return f"stream {name} is not served by the tradebot simulator"
