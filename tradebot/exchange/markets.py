"""The market cache: what can be traded and with which limits, loaded through ccxt, shared through Redis.

One replica loads the markets from the exchange (`load_markets`) and writes them to Redis under
`<prefix>:markets:<type>` with a TTL; the other replicas read them from there. Each replica keeps an
in-process copy, so a Redis outage changes nothing for readers, and an exchange outage serves the
last copy (stale) rather than failing. A background task refreshes the copy before it expires, so
requests do not wait for the exchange.

Types: "futures" are Binance USD-M perpetuals (ccxt `binanceusdm`); "spot" is Binance spot (ccxt
`binance`), loaded only from the real exchange: the simulator serves no spot endpoints, so with an
exchange URL (the simulator) spot is an empty list.

`max_leverage` is None when the exchange does not publish it without an API key (Binance gives
leverage brackets to signed requests only); callers then leave the check to the exchange.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any, Literal, Protocol, get_args

import ccxt
import ccxt.async_support as ccxt_async
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tradebot.exchange.ccxt_factory import build_client
from tradebot.exchange.errors import ExchangeError, translate

log = logging.getLogger(__name__)

MarketType = Literal["futures", "spot"]
MARKET_TYPES: tuple[MarketType, ...] = get_args(MarketType)
CACHE_FORMAT = 1  # bump when MarketInfo changes shape: old Redis entries are then ignored


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """One tradable market. Precisions are numbers of decimals; steps are the increments themselves."""

    symbol: str  # ccxt unified, e.g. "BTC/USDT:USDT"
    id: str  # the exchange's own, e.g. "BTCUSDT"
    base: str
    quote: str
    type: MarketType
    max_leverage: int | None
    min_amount: float | None
    amount_precision: int
    price_precision: int
    min_notional: float | None
    amount_step: float
    price_step: float

    def round_amount_down(self, amount: float) -> float:
        """`amount` rounded down to the amount step (never up: an order must not exceed what was sized)."""
        step = Decimal(repr(self.amount_step))
        steps = (Decimal(repr(amount)) / step).to_integral_value(rounding=ROUND_DOWN)
        return float(steps * step)

    def leverage_allowed(self, leverage: int) -> bool:
        return leverage >= 1 and (self.max_leverage is None or leverage <= self.max_leverage)

    def meets_minimums(self, amount: float, price: float) -> bool:
        if self.min_amount is not None and amount < self.min_amount:
            return False
        return self.min_notional is None or amount * price >= self.min_notional


def _decimals(step: float) -> int:
    exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def market_info(market: dict[str, Any], market_type: MarketType, *, tick_size_mode: bool = True) -> MarketInfo:
    """A MarketInfo from a ccxt market structure (ccxt's binance classes use TICK_SIZE precision)."""
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}

    def step(value: Any) -> float:
        if value is None:
            return 1.0
        return float(value) if tick_size_mode else 10.0 ** -int(value)

    amount_step, price_step = step(precision.get("amount")), step(precision.get("price"))
    leverage = (limits.get("leverage") or {}).get("max")
    return MarketInfo(
        symbol=str(market["symbol"]),
        id=str(market["id"]),
        base=str(market["base"]),
        quote=str(market["quote"]),
        type=market_type,
        max_leverage=None if leverage is None else int(leverage),
        min_amount=_float((limits.get("amount") or {}).get("min")),
        amount_precision=_decimals(amount_step),
        price_precision=_decimals(price_step),
        min_notional=_float((limits.get("cost") or {}).get("min")),
        amount_step=amount_step,
        price_step=price_step,
    )


class MarketLoader(Protocol):
    async def __call__(self, market_type: MarketType) -> list[MarketInfo]: ...


@dataclass(slots=True)
class CcxtMarketLoader:
    """Loads markets through ccxt with a short-lived public client (loads are rare: hourly at most)."""

    base_url: str | None
    exchange_loads: int = 0  # how many times the exchange was asked (tests and metrics read it)
    loads_by_type: dict[str, int] = field(default_factory=dict)

    async def __call__(self, market_type: MarketType) -> list[MarketInfo]:
        if market_type == "spot" and self.base_url is not None:
            return []  # the simulator has no spot endpoints
        self.exchange_loads += 1
        self.loads_by_type[market_type] = self.loads_by_type.get(market_type, 0) + 1
        client: Any
        if market_type == "futures":
            client = build_client("binanceusdm", base_url=self.base_url, streaming=False)
        else:
            client = ccxt_async.binance({"enableRateLimit": True, "options": {"fetchCurrencies": False}})
        try:
            markets: dict[str, dict[str, Any]] = await client.load_markets()
        except ccxt.BaseError as e:
            raise translate(e) from e
        finally:
            await client.close()
        wanted = "swap" if market_type == "futures" else "spot"
        infos = [
            market_info(m, market_type)
            for m in markets.values()
            # Perpetuals only: a bot on a dated contract would stop working at its delivery.
            if m.get("type") == wanted and m.get("active") is not False
        ]
        return sorted(infos, key=lambda m: m.symbol)


@dataclass(slots=True)
class _Copy:
    markets: list[MarketInfo]
    expires_at: float  # by the cache's clock
    by_symbol: dict[str, MarketInfo]
    by_compact: dict[str, MarketInfo]


def _compact(text: str) -> str:
    return text.split(":", 1)[0].replace("/", "").replace("-", "").replace("_", "").upper()


def _copy(markets: Sequence[MarketInfo], expires_at: float) -> _Copy:
    by_symbol = {m.symbol.upper(): m for m in markets}
    by_compact: dict[str, MarketInfo] = {}
    for m in markets:
        by_compact.setdefault(m.id.upper(), m)
        by_compact.setdefault(_compact(m.symbol), m)
    return _Copy(list(markets), expires_at, by_symbol, by_compact)


class MarketCache:
    """Markets per type: in-process copy, then Redis, then the exchange; see the module docstring."""

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        loader: MarketLoader,
        *,
        ttl_s: float = 3600.0,
        refresh_interval_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._loader = loader
        self._ttl_s = ttl_s
        self._refresh_interval_s = refresh_interval_s
        self._clock = clock
        self._sleep = sleep
        self._copies: dict[MarketType, _Copy] = {}
        self._locks: dict[MarketType, asyncio.Lock] = {t: asyncio.Lock() for t in MARKET_TYPES}
        self._task: asyncio.Task[None] | None = None
        # Counters for metrics and tests.
        self.redis_hits = 0
        self.redis_errors = 0
        self.stale_served = 0

    def key(self, market_type: MarketType) -> str:
        return f"{self._prefix}:markets:{market_type}"

    # ---- reading ----------------------------------------------------------------------------------------

    async def get_markets(self, market_type: MarketType = "futures") -> list[MarketInfo]:
        """Every market of the type, sorted by symbol. Raises `ExchangeError` only with no copy at all."""
        return list((await self._current(market_type)).markets)

    async def resolve_symbol(self, text: str, market_type: MarketType = "futures") -> MarketInfo | None:
        """The market a user meant: "BTC/USDT:USDT", "BTC/USDT", "BTCUSDT" and "btcusdt" all resolve."""
        wanted = text.strip().upper()
        if not wanted:
            return None
        copy = await self._current(market_type)
        if ":" in wanted:  # a settle currency was named: it must match exactly
            return copy.by_symbol.get(wanted)
        return copy.by_symbol.get(wanted) or copy.by_compact.get(_compact(wanted))

    async def _current(self, market_type: MarketType) -> _Copy:
        copy = self._copies.get(market_type)
        if copy is not None and copy.expires_at > self._clock():
            return copy
        async with self._locks[market_type]:  # one load at a time per type; the others wait for it
            copy = self._copies.get(market_type)
            if copy is not None and copy.expires_at > self._clock():
                return copy
            return await self._reload(market_type, min_remaining_s=0.0)

    async def _reload(self, market_type: MarketType, *, min_remaining_s: float) -> _Copy:
        """From Redis if it holds a copy with at least `min_remaining_s` to live, else from the exchange."""
        cached = await self._read_redis(market_type)
        if cached is not None and cached[1] > min_remaining_s:
            self.redis_hits += 1
            copy = _copy(cached[0], self._clock() + cached[1])
            self._copies[market_type] = copy
            return copy
        try:
            markets = await self._loader(market_type)
        except ExchangeError:
            stale = self._copies.get(market_type)
            if stale is None:
                raise
            self.stale_served += 1
            log.warning("loading %s markets failed; serving the copy loaded earlier", market_type, exc_info=True)
            # Try again at the next refresh rather than on every request.
            stale.expires_at = self._clock() + min(self._refresh_interval_s, self._ttl_s)
            return stale
        copy = _copy(markets, self._clock() + self._ttl_s)
        self._copies[market_type] = copy
        await self._write_redis(market_type, markets)
        return copy

    async def _read_redis(self, market_type: MarketType) -> tuple[list[MarketInfo], float] | None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(self.key(market_type))
                pipe.pttl(self.key(market_type))
                raw, pttl = await pipe.execute()
        except (RedisError, OSError) as e:
            self.redis_errors += 1
            log.warning("reading the market cache from Redis failed: %s", e)
            return None
        if raw is None:
            return None
        try:
            doc = orjson.loads(raw)
            if doc.get("format") != CACHE_FORMAT:
                return None
            markets = [MarketInfo(**item) for item in doc["items"]]
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("ignoring an unreadable market cache entry in Redis")
            return None
        remaining = pttl / 1000 if isinstance(pttl, int) and pttl > 0 else 0.0
        return markets, remaining

    async def _write_redis(self, market_type: MarketType, markets: Sequence[MarketInfo]) -> None:
        doc = {"format": CACHE_FORMAT, "items": [asdict(m) for m in markets]}
        try:
            await self._redis.set(self.key(market_type), orjson.dumps(doc), px=int(self._ttl_s * 1000))
        except (RedisError, OSError) as e:
            self.redis_errors += 1
            log.warning("writing the market cache to Redis failed: %s", e)

    # ---- background refresh ------------------------------------------------------------------------------

    def start(self) -> None:
        """Starts the owned refresh task: warms futures now, then keeps every loaded type fresh."""
        if self._task is None:
            self._task = asyncio.create_task(self._refresh_loop(), name="market-cache-refresh")

    async def _refresh_loop(self) -> None:
        delay = 0.0
        while True:
            await self._sleep(delay)
            delay = self._refresh_interval_s
            types: list[MarketType] = ["futures", *(t for t in self._copies if t != "futures")]
            for market_type in types:
                try:
                    async with self._locks[market_type]:
                        copy = self._copies.get(market_type)
                        horizon = 2 * self._refresh_interval_s
                        if copy is None or copy.expires_at - self._clock() < horizon:
                            await self._reload(market_type, min_remaining_s=horizon)
                except ExchangeError as e:
                    log.warning("refreshing %s markets failed: %s", market_type, e)
                except Exception:
                    # Keep refreshing whatever went wrong this time; the copy we have keeps serving.
                    log.exception("refreshing %s markets failed", market_type)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # asyncio.wait does not re-raise the task's CancelledError, so ours still propagates.
            await asyncio.wait([task])
