"""Last prices of markets from the exchange's public ticker, cached (one client for the replica).

A bot's position is valued at the market's last traded price. Each symbol is asked at most once
per `ttl_s` on a replica, however many users look; a failed read is an unknown price (None), never
a made-up one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable

from tradebot.exchange import errors as exchange_errors
from tradebot.exchange.ccxt_factory import ExchangeClientFactory
from tradebot.exchange.read_cache import ReadCache

log = logging.getLogger(__name__)

TICKER_TTL_S = 5.0
ERROR_TTL_S = 5.0
READ_TIMEOUT_S = 10.0


class LastPrices:
    def __init__(self, factory: ExchangeClientFactory, exchange: str = "binanceusdm", *, ttl_s: float = TICKER_TTL_S):
        self._factory = factory
        self._exchange = exchange
        self._cache: ReadCache[str, float] = ReadCache(ttl_s=ttl_s, error_ttl_s=ERROR_TTL_S)

    async def last_prices(self, symbols: Iterable[str]) -> dict[str, float | None]:
        wanted = sorted(set(symbols))
        entries = await asyncio.gather(*(self._cache.get(s, functools.partial(self._read, s)) for s in wanted))
        return {s: e.value for s, e in zip(wanted, entries, strict=True)}

    async def _read(self, symbol: str) -> float:
        client = self._factory.public_client(self._exchange)
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                with exchange_errors.translated():
                    ticker = await client.fetch_ticker(symbol)
        except (exchange_errors.ExchangeError, TimeoutError) as e:
            log.warning("ticker read failed", extra={"symbol": symbol, "error": type(e).__name__})
            raise
        last = ticker.get("last") or ticker.get("close")
        if not last:
            raise exchange_errors.Retryable(f"no last price for {symbol}")
        return float(last)
