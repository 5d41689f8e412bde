"""Market-data hub: one exchange kline stream per (exchange, symbol, timeframe), fanned out to subscribers.

What it guarantees (DESIGN.md invariant 3): every subscriber of a stream receives each *closed* candle
exactly once and in open-time order, from the moment it is live (or from `after`, see `subscribe`),
across websocket drops.

How:
- Closed means the exchange's own final flag (Binance's kline `x`). ccxt's `watch_ohlcv` drops that
  flag, so the hub's ccxt client is a subclass whose kline handler hands raw klines to the hub first
  (`tradebot.runtime.kline_client`). The tap runs inside ccxt's websocket reader and only appends to the stream's
  buffer and wakes the stream's task; it never delivers, so a subscriber cannot stall the reader.
- One task per stream owns everything about that stream: (re)subscribing, waiting for the exchange's
  subscription ack, REST backfill, de-duplication and delivery. Nothing else delivers, so order holds.
- After every (re)connect, and before any live candle, the task backfills over REST from the last
  delivered open time; a live candle that is more than one timeframe after the last delivered one
  triggers a gap backfill first (that also covers a subscription that raced with a push). Candles are
  de-duplicated by open time.
- A REST row counts as closed if a later row exists, or if its close time is at or before the
  exchange's clock (`fetch_time`, cached as an offset). That fits the real exchange (the last row is
  the forming candle), the simulator's random walk (its forming candle may lie in the wall clock's
  future) and its manual mode (every row is closed; a pushed candle dated in the future is delivered
  when the next one arrives, since only then is it provably closed).
- Delivery calls `sink.offer(candle)`, which must not block (see `tradebot.runtime.candles`); a full
  subscriber coalesces at its own side, the hub never waits for one.
- Reconnects back off exponentially with full jitter (0.2 s doubling to 10 s), reset once a
  connection stayed healthy for `healthy_after` seconds.
- All kline streams of an exchange share one ccxt client, hence one websocket (ccxt multiplexes), and
  its SUBSCRIBEs are batched; what bounds a mass resubscription is then REST: one klines request per
  stream through ccxt's rate limiter (50 ms per weight-1 request), about 2.5 s for 50 streams.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ccxt
from ccxt.async_support.base.exchange import Exchange

from tradebot.exchange.errors import ExchangeError, Rejected, Retryable, translate
from tradebot.runtime.candles import Candle, CandleSink
from tradebot.runtime.kline_client import TAPPED_CLASSES, WS_MESSAGE_COST, build_streaming_client
from tradebot.timeframes import TIMEFRAMES, candles_between, is_timeframe, next_open, shift

log = logging.getLogger(__name__)

DEFAULT_EXCHANGE = "binanceusdm"
MAX_KLINES_PER_REQUEST = 1500  # Binance's cap on one klines request
REST_PAGE_LIMIT = 1000  # Binance serves up to 1500 klines; 1000 is the cheapest weight for a big page
# A reconnect's gap is usually a few candles: a first page of 99 rows costs weight 1 instead of 5,
# which matters when every stream of a dropped connection backfills at once through one rate limiter.
SMALL_PAGE_LIMIT = 99
# Page sizes at the top of Binance's weight steps for klines (1 below 100 rows, 2 below 500, 5 up to 1000).
_PAGE_STEPS = (SMALL_PAGE_LIMIT, 499, REST_PAGE_LIMIT)


def page_for(expected_rows: int) -> int:
    """The cheapest page that holds `expected_rows` (a wrong guess costs a page more, never a row)."""
    return next((p for p in _PAGE_STEPS if p >= expected_rows), REST_PAGE_LIMIT)

# A joiner's REST catch-up is capped: `after=0` on a real exchange would otherwise page through years
# of history. A subscriber that asked for more sees a hole before the first candle and fetches it itself.
MAX_CATCH_UP_CANDLES = 5000
SERVER_CLOCK_REFRESH_S = 600.0


# ---- backoff ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backoff:
    """Full-jitter exponential backoff: attempt n waits uniform(0, min(cap, base * 2**n))."""

    base: float = 0.2
    cap: float = 10.0

    def delay(self, attempt: int, rng: Callable[[], float]) -> float:
        return rng() * min(self.cap, self.base * 2.0 ** min(attempt, 30))


# ---- public types ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamKey:
    exchange: str
    symbol: str
    timeframe: str


@dataclass(eq=False, slots=True)
class Subscription:
    """A subscriber's handle. `live` is set once the hub delivers to its sink (subscribed and caught up)."""

    key: StreamKey
    sink: CandleSink
    after: int | None
    live: asyncio.Event = field(default_factory=asyncio.Event)
    active: bool = True


@dataclass(frozen=True, slots=True)
class StreamStatus:
    key: StreamKey
    state: str  # starting, subscribing, backfilling, live, backoff, stopping
    subscribers: int
    last_delivered_open_time: int | None
    reconnects: int
    last_error: str | None


# ---- one stream -----------------------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Stream:
    key: StreamKey
    subscribers: dict[int, Subscription] = field(default_factory=dict)  # insertion order = delivery order
    sinks: tuple[CandleSink, ...] = ()
    joining: list[Subscription] = field(default_factory=list)
    pending: deque[Candle] = field(default_factory=deque)  # closed candles from the tap, oldest first
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # a candle, a join, a stop or a watch ended
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    cursor: int | None = None  # open time of the last candle delivered (or the baseline before any)
    started: bool = False  # first backfill done: cursor None then means "the history was empty"
    market_id: str | None = None
    interval: str | None = None
    ack_id: str | None = None
    acked: bool = False
    state: str = "starting"
    stopping: bool = False
    reconnects: int = 0
    last_error: str | None = None
    task: asyncio.Task[None] | None = None

    def rebuild_sinks(self) -> None:
        self.sinks = tuple(s.sink for s in self.subscribers.values())


class MarketDataHub:
    """Shared kline streams with closed-candle fan-out; see the module docstring for the guarantees.

    Owns one tapped ccxt.pro client per exchange (ccxt multiplexes every kline subscription of a client
    over one websocket), one task per stream, and closes them all in `close()`.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        client_builder: Callable[[str, str | None], Exchange] = build_streaming_client,
        backoff: Backoff = Backoff(),
        healthy_after: float = 30.0,
        ack_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._base_url = base_url
        self._client_builder = client_builder
        self._backoff = backoff
        self._healthy_after = healthy_after
        self._ack_timeout = ack_timeout
        self._clock = clock
        self._wall_ms = wall_ms
        self._sleep = sleep
        self._rng = rng
        self._clients: dict[str, Exchange] = {}
        self._streams: dict[StreamKey, _Stream] = {}
        # Tasks of streams being stopped; a new stream for the same key waits for its predecessor so
        # that an UNSUBSCRIBE can never overtake the new SUBSCRIBE.
        self._retiring: dict[StreamKey, asyncio.Task[None]] = {}
        self._routes: dict[tuple[str, str, str], _Stream] = {}  # (exchange, market id, interval)
        self._ack_waiters: dict[str, _Stream] = {}
        self._recent_acks: OrderedDict[str, None] = OrderedDict()
        self._server_offset: dict[str, tuple[float, int]] = {}  # exchange -> (taken at, offset ms)
        self._next_sub_id = 0
        self._closed = False
        # Counters for a metrics collector (plain ints, monotonically increasing).
        self.delivered = 0  # candle offers to subscribers
        self.candles = 0  # closed candles delivered per stream (one per candle, whatever the fan-out)
        self.backfilled = 0  # of `candles`, those that came from REST rather than the websocket
        self.reconnects = 0
        self.dropped = 0  # closed candles discarded by the hub: duplicates or older than the last one
        self.sink_errors = 0

    # ---- subscribing ----------------------------------------------------------------------------------

    def subscribe(
        self,
        symbol: str,
        timeframe: str,
        sink: CandleSink,
        *,
        after: int | None = None,
        exchange: str = DEFAULT_EXCHANGE,
    ) -> Subscription:
        """Adds `sink` to the stream (starting it if needed); never blocks and never fails on the exchange.

        `symbol` is ccxt's unified symbol. With `after` (an open time, e.g. the last candle of a
        warm-up history) the sink first receives every closed candle with a later open time from
        REST, then the live ones, with nothing missing or repeated; without it, the sink starts with
        the stream's next closed candle. `subscription.live` is set once the sink is caught up. The
        catch-up covers at most `MAX_CATCH_UP_CANDLES`; a sink that asked for more sees the hole.
        """
        if self._closed:
            raise RuntimeError("market-data hub is closed")
        if exchange not in TAPPED_CLASSES:
            raise ValueError(f"unsupported exchange {exchange!r}")
        if "/" not in symbol:
            # Streams are keyed by symbol: "BTCUSDT" next to "BTC/USDT:USDT" would be two streams of one
            # exchange stream. Callers resolve user input through the market cache first.
            raise ValueError(f"symbol must be ccxt's unified symbol such as 'BTC/USDT:USDT', got {symbol!r}")
        if not is_timeframe(timeframe):
            raise ValueError(f"unsupported timeframe {timeframe!r}; one of {', '.join(TIMEFRAMES)}")
        key = StreamKey(exchange, symbol, timeframe)
        subscription = Subscription(key, sink, after)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(key)
            previous = self._retiring.pop(key, None)
            stream.task = asyncio.create_task(
                self._run(stream, previous), name=f"market-data:{exchange}:{symbol}:{timeframe}"
            )
        stream.joining.append(subscription)
        stream.wake.set()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Removes the sink; the stream stops (and unsubscribes at the exchange) when it was the last."""
        if not subscription.active:
            return
        subscription.active = False
        stream = self._streams.get(subscription.key)
        if stream is None:
            return
        if subscription in stream.joining:
            stream.joining.remove(subscription)
        for sid, sub in list(stream.subscribers.items()):
            if sub is subscription:
                del stream.subscribers[sid]
                stream.rebuild_sinks()
        if not stream.subscribers and not stream.joining:
            self._retire(stream)

    def _retire(self, stream: _Stream) -> None:
        del self._streams[stream.key]
        stream.stopping = True
        stream.state = "stopping"
        stream.stop.set()
        stream.wake.set()
        if stream.task is not None and not stream.task.done():
            self._retiring[stream.key] = stream.task
            stream.task.add_done_callback(functools.partial(self._forget_retired, stream.key))

    def _forget_retired(self, key: StreamKey, task: asyncio.Task[None]) -> None:
        if self._retiring.get(key) is task:
            del self._retiring[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("market-data stream %s failed", key, exc_info=task.exception())

    def newest_closed(self, subscription: Subscription) -> int | None:
        """Open time of the newest closed candle the hub holds for this subscription's stream, whether
        delivered already or still waiting to be (None when it has none). A subscriber whose last
        candle is older has more coming, and should not act on its older view meanwhile."""
        stream = self._streams.get(subscription.key)
        if stream is None:
            return None
        waiting = max((c.open_time for c in stream.pending), default=None)
        if stream.cursor is None or waiting is None:
            return waiting if stream.cursor is None else stream.cursor
        return max(stream.cursor, waiting)

    @property
    def subscribe_messages(self) -> int:
        """SUBSCRIBE messages sent to the exchanges so far (batched: one may carry many streams)."""
        return sum(int(getattr(c, "subscribe_messages", 0)) for c in self._clients.values())

    def streams(self) -> list[StreamStatus]:
        return [
            StreamStatus(s.key, s.state, len(s.subscribers) + len(s.joining), s.cursor, s.reconnects, s.last_error)
            for s in self._streams.values()
        ]

    def tasks(self) -> list[asyncio.Task[None]]:
        """Every task the hub owns (running streams and streams still shutting down)."""
        running = [s.task for s in self._streams.values() if s.task is not None]
        return [*running, *self._retiring.values()]

    # ---- history ----------------------------------------------------------------------------------------

    async def fetch_closed_history(
        self,
        symbol: str,
        timeframe: str,
        since_ms: int | None,
        limit: int,
        *,
        exchange: str = DEFAULT_EXCHANGE,
    ) -> list[Candle]:
        """Closed candles over REST, oldest first: from `since_ms` (inclusive) on, or the latest `limit`.

        Raises tradebot's `ExchangeError` subclasses (`Retryable` for network trouble).
        """
        if limit < 1:
            return []
        client = self._client(exchange)
        if since_ms is None:
            # The latest `limit` closed candles: the newest page (one row more, as the newest may be
            # forming), then older pages by endTime until there are enough or the history ends.
            asked = min(limit + 1, MAX_KLINES_PER_REQUEST)
            rows = await self._rest_klines(client, symbol, timeframe, None, asked)
            collected = await self._closed_rows(exchange, client, rows, timeframe)
            # A short page is the start of the history: nothing older to ask for. (Short of what was
            # asked and of REST_PAGE_LIMIT: some servers cap pages below Binance's 1500.)
            page_len = len(rows)
            while rows and page_len >= min(asked, REST_PAGE_LIMIT) and len(collected) < limit:
                oldest = int(rows[0][0])
                asked = min(limit - len(collected), MAX_KLINES_PER_REQUEST)
                page = await self._rest_klines(client, symbol, timeframe, None, asked, oldest - 1)
                page_len = len(page)
                rows = [r for r in page if int(r[0]) < oldest]
                collected = rows + collected
            return [_candle(symbol, timeframe, r) for r in collected[-limit:]]
        out: list[Candle] = []
        async for row in self._paged_closed(
            exchange, client, symbol, timeframe, since_ms, None,
            first_page=min(limit + 1, page_for(candles_between(timeframe, since_ms, self._wall_ms()) + 2))
        ):
            out.append(_candle(symbol, timeframe, row))
            if len(out) >= limit:
                break
        return out

    # ---- shutdown -----------------------------------------------------------------------------------------

    async def close(self, grace: float = 5.0) -> None:
        """Stops every stream task and closes the ccxt clients. Idempotent."""
        self._closed = True
        streams = list(self._streams.values())
        self._streams.clear()
        tasks = [s.task for s in streams if s.task is not None] + list(self._retiring.values())
        for s in streams:
            s.stopping = True
        for t in tasks:
            t.cancel()
        if tasks:
            # asyncio.wait does not raise the children's CancelledError, so our own cancellation still
            # propagates from here instead of being swallowed.
            _, still = await asyncio.wait(tasks, timeout=grace)
            for t in still:
                log.error("market-data task %s did not stop within %.1f s", t.get_name(), grace)
        self._retiring.clear()
        self._routes.clear()
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            try:
                await client.close()
            except Exception:
                log.exception("closing a ccxt client failed")

    # ---- internals: clients and taps ---------------------------------------------------------------------

    def _client(self, exchange: str) -> Exchange:
        client = self._clients.get(exchange)
        if client is None:
            if self._closed:
                raise RuntimeError("market-data hub is closed")
            client = self._clients[exchange] = self._client_builder(exchange, self._base_url)
            client.kline_tap = lambda message, ex=exchange: self._on_kline(ex, message)
            client.ack_tap = self._on_ack
        return client

    def _on_kline(self, exchange: str, message: dict[str, Any]) -> bool:
        """Runs in ccxt's websocket reader for every kline: buffer closed ones, never deliver here."""
        k = message.get("k")
        if not isinstance(k, dict):
            return False
        stream = self._routes.get((exchange, k.get("s", ""), k.get("i", "")))
        if stream is None:
            return False
        if k.get("x") is True:
            try:
                candle = Candle(
                    stream.key.symbol,
                    stream.key.timeframe,
                    int(k["t"]),
                    float(k["o"]),
                    float(k["h"]),
                    float(k["l"]),
                    float(k["c"]),
                    float(k["v"]),
                    True,
                )
            except (KeyError, TypeError, ValueError):
                log.warning("malformed kline ignored", extra={"stream": str(stream.key)})
                return True
            stream.pending.append(candle)
            stream.wake.set()
        return True

    def _on_ack(self, request_id: str) -> None:
        self._recent_acks[request_id] = None
        if len(self._recent_acks) > 4096:
            self._recent_acks.popitem(last=False)
        stream = self._ack_waiters.pop(request_id, None)
        if stream is not None:
            stream.acked = True
            stream.wake.set()

    # ---- internals: the stream task ----------------------------------------------------------------------

    async def _run(self, stream: _Stream, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        attempt = 0
        try:
            while not stream.stopping:
                started = self._clock()
                try:
                    await self._session(stream)
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    if stream.stopping:
                        break
                    if self._clock() - started >= self._healthy_after:
                        attempt = 0
                    delay = self._backoff.delay(attempt, self._rng)
                    attempt += 1
                    stream.reconnects += 1
                    self.reconnects += 1
                    stream.last_error = f"{type(e).__name__}: {e}"[:300]
                    stream.state = "backoff"
                    level = logging.WARNING if isinstance(e, ExchangeError | ccxt.BaseError) else logging.ERROR
                    log.log(
                        level,
                        "market-data stream %s %s %s interrupted (%s); reconnecting in %.2f s",
                        *(stream.key.exchange, stream.key.symbol, stream.key.timeframe),
                        stream.last_error,
                        delay,
                        exc_info=level == logging.ERROR,
                    )
                    await self._pause(stream, delay)
        finally:
            self._unroute(stream)
        # Only a graceful stop gets here (a cancellation skips it): tell the exchange to stop sending.
        await self._unwatch(stream)

    async def _pause(self, stream: _Stream, delay: float) -> None:
        """Sleeps `delay` (with the injected sleep) unless the stream is stopped meanwhile."""
        sleeper = asyncio.ensure_future(self._sleep(delay))
        stopper = asyncio.ensure_future(stream.stop.wait())
        try:
            await asyncio.wait([sleeper, stopper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for f in (sleeper, stopper):
                f.cancel()
            await asyncio.wait([sleeper, stopper])

    async def _session(self, stream: _Stream) -> None:
        """One connection's life: subscribe, wait for the ack, backfill, then deliver until it breaks."""
        key = stream.key
        client = self._client(key.exchange)
        stream.state = "subscribing"
        await _call(client.load_markets())
        market = _call_sync(lambda: client.market(key.symbol))
        if market["symbol"] != key.symbol:
            raise Rejected(f"{key.symbol!r} is not a unified symbol of {key.exchange}; it means {market['symbol']!r}")
        stream.market_id = str(market["id"])
        stream.interval = str(client.timeframes.get(key.timeframe, key.timeframe))
        self._routes[(key.exchange, stream.market_id, stream.interval)] = stream
        stream.pending.clear()
        stream.acked = False
        already = self._subscribed(client, key)
        watch = asyncio.create_task(self._watch(client, key), name=f"market-data-watch:{key.symbol}:{key.timeframe}")
        watch.add_done_callback(lambda _: stream.wake.set())
        try:
            if not already:
                await self._await_ack(client, stream, watch)
            if stream.stopping:
                return
            stream.state = "backfilling"
            await self._catch_up(client, stream)
            stream.started = True
            stream.state = "live"
            while True:
                if stream.joining:
                    await self._admit_joiners(client, stream)
                if stream.pending:
                    await self._deliver_pending(client, stream)
                if stream.stopping:
                    return
                if watch.done():
                    watch.result()  # raises the NetworkError of a dropped connection
                    raise Retryable("kline watch ended without an error")
                if not stream.pending and not stream.joining:
                    stream.wake.clear()
                    await stream.wake.wait()
        finally:
            if stream.ack_id is not None:
                self._ack_waiters.pop(stream.ack_id, None)
                stream.ack_id = None
            watch.cancel()
            await asyncio.wait([watch])

    @staticmethod
    async def _watch(client: Exchange, key: StreamKey) -> None:
        # Only the subscription and its failure matter: candles arrive through the tap.
        await client.watch_ohlcv(key.symbol, key.timeframe)

    @staticmethod
    def _ohlcv_hash(key: StreamKey) -> str:
        return f"ohlcv::{key.symbol}::{key.timeframe}"

    def _subscribed(self, client: Exchange, key: StreamKey) -> bool:
        """True if a live ccxt websocket already carries this subscription (no new SUBSCRIBE will be sent)."""
        hash_ = self._ohlcv_hash(key)
        return any(hash_ in ws.subscriptions for ws in (client.clients or {}).values())

    async def _await_ack(self, client: Exchange, stream: _Stream, watch: asyncio.Task[None]) -> None:
        """Waits until the exchange confirmed the SUBSCRIBE, so that REST backfill cannot miss a candle."""
        # ccxt queues every SUBSCRIBE behind its per-connection throttle, so after a drop the last of N
        # streams sends its own only after N spacings: the wait allows for that queue.
        spacing_s = WS_MESSAGE_COST * float(getattr(client, "rateLimit", 50)) / 1000
        deadline = self._clock() + self._ack_timeout + spacing_s * len(self._streams)
        hash_ = self._ohlcv_hash(stream.key)
        request_id: str | None = None
        while request_id is None:
            for ws in (client.clients or {}).values():
                sub = ws.subscriptions.get(hash_)
                if isinstance(sub, dict) and sub.get("id") is not None:
                    request_id = str(sub["id"])
            if request_id is None:
                if watch.done():
                    watch.result()
                    raise Retryable("kline watch ended before subscribing")
                if self._clock() > deadline:
                    raise Retryable("kline subscription was not registered in time")
                await asyncio.sleep(0.005)
        stream.ack_id = request_id
        if request_id in self._recent_acks:
            stream.acked = True
        else:
            self._ack_waiters[request_id] = stream
        while not stream.acked:
            if watch.done():
                watch.result()
                raise Retryable("kline watch ended before the subscription was acknowledged")
            if stream.stopping:
                return
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise Retryable("no subscription ack from the exchange in time")
            stream.wake.clear()
            try:
                async with asyncio.timeout(remaining):
                    await stream.wake.wait()
            except TimeoutError:
                pass

    # ---- internals: delivery ----------------------------------------------------------------------------

    def _offer(self, stream: _Stream, candle: Candle, sinks: Sequence[CandleSink]) -> None:
        i = 0
        try:
            for sink in sinks:
                sink.offer(candle)
                i += 1
        except Exception:
            # A broken sink must not cost the others their candle: finish the round one by one.
            self.sink_errors += 1
            log.exception("a candle sink raised; it is skipped for this candle", extra={"stream": str(stream.key)})
            for sink in sinks[i + 1 :]:
                try:
                    sink.offer(candle)
                except Exception:
                    self.sink_errors += 1
                    log.exception("a candle sink raised", extra={"stream": str(stream.key)})
        self.delivered += len(sinks)

    def _deliver(self, stream: _Stream, candle: Candle, *, backfill: bool) -> None:
        """Delivers one closed candle to every live subscriber unless it is not newer than the last one."""
        if stream.cursor is not None and candle.open_time <= stream.cursor:
            self.dropped += 1
            return
        stream.cursor = candle.open_time
        self.candles += 1
        if backfill:
            self.backfilled += 1
        if stream.sinks:
            self._offer(stream, candle, stream.sinks)

    async def _catch_up(self, client: Exchange, stream: _Stream) -> None:
        """After a (re)connect: REST candles after the cursor (or, on the first start, a baseline)."""
        key = stream.key
        if not stream.started and stream.cursor is None:
            # First start: nothing is owed to anyone yet; remember where the exchange's history ends so
            # that a drop before the first live candle can still be backfilled exactly.
            rows = await self._rest_klines(client, key.symbol, key.timeframe, None, 3)
            closed = await self._closed_rows(key.exchange, client, rows, key.timeframe)
            if closed:
                stream.cursor = int(closed[-1][0])
            return
        since = 0 if stream.cursor is None else next_open(key.timeframe, stream.cursor)
        async for row in self._paged_closed(key.exchange, client, key.symbol, key.timeframe, since, None):
            self._deliver(stream, _candle(key.symbol, key.timeframe, row), backfill=True)

    async def _deliver_pending(self, client: Exchange, stream: _Stream) -> None:
        key = stream.key
        while stream.pending:
            candle = stream.pending.popleft()
            if stream.cursor is not None and candle.open_time > next_open(key.timeframe, stream.cursor):
                # A hole before this candle (missed during a subscription race or an outage): every REST
                # row before a closed candle is closed too.
                async for row in self._paged_closed(
                    key.exchange,
                    client,
                    key.symbol,
                    key.timeframe,
                    next_open(key.timeframe, stream.cursor),
                    candle.open_time,
                ):
                    self._deliver(stream, _candle(key.symbol, key.timeframe, row), backfill=True)
            self._deliver(stream, candle, backfill=False)

    def _admit(self, stream: _Stream, sub: Subscription) -> None:
        self._next_sub_id += 1
        stream.subscribers[self._next_sub_id] = sub
        stream.rebuild_sinks()
        sub.live.set()

    async def _admit_joiners(self, client: Exchange, stream: _Stream) -> None:
        """New subscribers go live between two candles; one with `after` behind the stream first gets its
        own REST catch-up up to the last delivered candle (the live ones wait in `pending` meanwhile)."""
        key = stream.key
        while stream.joining:
            sub = stream.joining[0]
            if sub.after is not None and stream.cursor is not None and sub.after < stream.cursor:
                start = max(sub.after + 1, shift(key.timeframe, stream.cursor, -(MAX_CATCH_UP_CANDLES - 1)))
                async for row in self._paged_closed(
                    key.exchange, client, key.symbol, key.timeframe, start, stream.cursor + 1
                ):
                    if sub.active and int(row[0]) > sub.after:
                        self._offer(stream, _candle(key.symbol, key.timeframe, row), (sub.sink,))
            # An unsubscribe during the catch-up removed it from `joining` already.
            if stream.joining and stream.joining[0] is sub:
                stream.joining.pop(0)
                if sub.active:
                    self._admit(stream, sub)

    def _unroute(self, stream: _Stream) -> None:
        if stream.market_id is not None and stream.interval is not None:
            route = (stream.key.exchange, stream.market_id, stream.interval)
            if self._routes.get(route) is stream:
                del self._routes[route]

    async def _unwatch(self, stream: _Stream) -> None:
        client = self._clients.get(stream.key.exchange)
        if client is None or not self._subscribed(client, stream.key):
            return
        try:
            async with asyncio.timeout(2.0):
                await client.un_watch_ohlcv(stream.key.symbol, stream.key.timeframe)
        except (TimeoutError, ccxt.BaseError) as e:
            # The server may keep sending for a while; the tap ignores klines of unknown streams.
            log.info("unsubscribing %s at the exchange failed: %s", stream.key, e)

    # ---- internals: REST -----------------------------------------------------------------------------------

    async def _rest_klines(
        self,
        client: Exchange,
        symbol: str,
        timeframe: str,
        since: int | None,
        limit: int,
        end: int | None = None,
    ) -> list[list[Any]]:
        params: dict[str, Any] = {} if end is None else {"endTime": end}
        rows: list[list[Any]] = await _call(client.fetch_ohlcv(symbol, timeframe, since, limit, params))
        return rows

    async def _server_now(self, exchange: str, client: Exchange) -> int:
        """The exchange's clock in ms, from an offset refreshed every ten minutes."""
        cached = self._server_offset.get(exchange)
        if cached is None or self._clock() - cached[0] > SERVER_CLOCK_REFRESH_S:
            before = self._wall_ms()
            server = int(await _call(client.fetch_time()))
            after = self._wall_ms()
            cached = (self._clock(), server - (before + after) // 2)
            self._server_offset[exchange] = cached
        return self._wall_ms() + cached[1]

    async def _closed_rows(
        self, exchange: str, client: Exchange, rows: list[list[Any]], timeframe: str
    ) -> list[list[Any]]:
        """The rows known to be closed: all but the last, and the last if it ended by the exchange's clock."""
        if not rows:
            return []
        last = rows[-1]
        if next_open(timeframe, int(last[0])) <= await self._server_now(exchange, client):
            return rows
        return rows[:-1]

    async def _paged_closed(
        self,
        exchange: str,
        client: Exchange,
        symbol: str,
        timeframe: str,
        since: int,
        before: int | None,
        *,
        first_page: int = SMALL_PAGE_LIMIT,
    ) -> AsyncIterator[list[Any]]:
        """Closed REST rows with since <= open time (< before), oldest first, page by page."""
        cursor = since
        limit = first_page
        while True:
            end = None if before is None else before - 1
            if end is not None and end < cursor:
                return
            raw = await self._rest_klines(client, symbol, timeframe, cursor, limit, end)
            full = len(raw) >= limit
            rows = [r for r in raw if int(r[0]) >= cursor and (before is None or int(r[0]) < before)]
            if not rows:
                return
            # Inside a full page every row but the last has a later row; the last is judged by the next
            # page, or (when the page is the end of history) by the exchange's clock. With `before`, the
            # caller knows a closed candle at `before`, so every earlier row is closed.
            if before is not None:
                closed = rows
            elif full:
                closed = rows[:-1]
            else:
                closed = await self._closed_rows(exchange, client, rows, timeframe)
            for row in closed:
                yield row
            if not full:
                return
            cursor = next_open(timeframe, int(closed[-1][0])) if closed else int(rows[-1][0])
            limit = REST_PAGE_LIMIT


def _candle(symbol: str, timeframe: str, row: Sequence[Any]) -> Candle:
    return Candle(
        symbol,
        timeframe,
        int(row[0]),
        float(row[1]),
        float(row[2]),
        float(row[3]),
        float(row[4]),
        float(row[5] or 0),
    )


async def _call(awaitable: Awaitable[Any]) -> Any:
    """Awaits a ccxt call, turning its errors into tradebot's (`raise … from e`)."""
    try:
        return await awaitable
    except ccxt.BaseError as e:
        raise translate(e) from e


def _call_sync(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except ccxt.BaseError as e:
        raise translate(e) from e
