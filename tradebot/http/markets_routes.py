"""/api/v1/markets: the market cache as a paginated list (CONTRACT.md "Trades, backtests, markets, cluster").

The cache lives on the app under `MARKET_CACHE`, created by `market_cache_ctx`. `create_app` installs
that context only where an exchange is configured (or outside tests), so a test app without a
simulator starts as before; there the route answers 503.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

from aiohttp import web
from pydantic import BaseModel

from tradebot.exchange.errors import ExchangeError
from tradebot.exchange.markets import CcxtMarketLoader, MarketCache, MarketInfo
from tradebot.http.appkeys import MARKET_CACHE, REDIS, SETTINGS
from tradebot.http.json_response import json_response
from tradebot.http.pagination import Page, PageQuery, build_page, decode_cursor
from tradebot.http.problems import Problem
from tradebot.http.request_body import parse_query
from tradebot.http.routing import RouteTable

routes = RouteTable()

async def market_cache_ctx(app: web.Application) -> AsyncIterator[None]:
    """Creates the replica's market cache (needs REDIS) and its refresh task; warming runs in the background,
    so a replica starts even while the exchange is unreachable (requests then load on first use)."""
    settings = app[SETTINGS]
    cache = MarketCache(app[REDIS], settings.redis_prefix, CcxtMarketLoader(settings.exchange_url))
    app[MARKET_CACHE] = cache
    cache.start()
    try:
        yield
    finally:
        await cache.close()


class MarketsQuery(PageQuery):
    """`?type=futures|spot` (default futures), with the usual `limit` and `cursor`."""

    type: Literal["futures", "spot"] = "futures"


class MarketOut(BaseModel):
    """A tradable market and the limits bot settings are checked against."""

    symbol: str
    id: str
    base: str
    quote: str
    type: Literal["futures", "spot"]
    max_leverage: int | None
    min_amount: float | None
    amount_precision: int
    price_precision: int
    min_notional: float | None
    amount_step: float
    price_step: float

    @classmethod
    def of(cls, m: MarketInfo) -> MarketOut:
        return cls(
            symbol=m.symbol,
            id=m.id,
            base=m.base,
            quote=m.quote,
            type=m.type,
            max_leverage=m.max_leverage,
            min_amount=m.min_amount,
            amount_precision=m.amount_precision,
            price_precision=m.price_precision,
            min_notional=m.min_notional,
            amount_step=m.amount_step,
            price_step=m.price_step,
        )


class MarketPage(Page[MarketOut]):
    """A page of markets, ordered by symbol."""


@routes.route(
    "GET",
    "/api/v1/markets",
    summary="Markets from the cache",
    query=MarketsQuery,
    responses={200: MarketPage},
    tags=["markets"],
    errors=[503],
)
async def list_markets(request: web.Request) -> web.Response:
    query = parse_query(request, MarketsQuery)
    cache = request.app.get(MARKET_CACHE)
    if cache is None:
        raise Problem(503, "market data is not configured on this replica")
    try:
        markets = await cache.get_markets(query.type)
    except ExchangeError as e:
        raise Problem(503, "market data is unavailable right now; try again shortly") from e
    after = decode_cursor(query.cursor, (str,))
    ordered = sorted(markets, key=lambda m: m.symbol)
    rows = [m for m in ordered if after is None or m.symbol > str(after[0])][: query.limit + 1]
    items, next_cursor = build_page(rows, query.limit, lambda m: (m.symbol,))
    return json_response(MarketPage(items=[MarketOut.of(m) for m in items], next_cursor=next_cursor))
