"""/api/v1/portfolio: open positions, balances per API key, and totals (issue #19 item 2).

`portfolio_context` owns the exchange reads behind it: one public ccxt client for last prices and
the cached balance reader (see tradebot.accounts.balances). Where no exchange is configured (a
test app without a simulator) prices and balances read as unavailable, never as zero.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Iterable
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

from tradebot.accounts.balances import BalanceReader
from tradebot.bots.portfolio import BalanceSource, PortfolioService, PriceSource, balance_view
from tradebot.exchange.ccxt_factory import ExchangeClientFactory
from tradebot.exchange.tickers import LastPrices
from tradebot.http.appkeys import API_KEYS, DB, PRINCIPAL, SETTINGS
from tradebot.http.json_response import json_response
from tradebot.http.routing import RouteTable

routes = RouteTable()

PORTFOLIO = web.AppKey("portfolio", PortfolioService)
# The most keys one portfolio reads (the per-user key cap of tradebot.accounts.api_keys).
MAX_KEYS = 100


class _KeyBalances:
    """The user's API keys, each with its (cached) balances."""

    def __init__(self, app: web.Application, reader: BalanceReader | None) -> None:
        self._app = app
        self._reader = reader

    async def balance_views(self, user_id: int) -> list[dict[str, Any]]:
        keys = await self._app[API_KEYS].page(user_id, after_id=None, limit=MAX_KEYS)
        if self._reader is None:
            return [balance_view(k.id, k.label, k.exchange, None, None, "no exchange is configured on this replica")
                    for k in keys]
        return [
            balance_view(
                b.key.id, b.key.label, b.key.exchange,
                None if b.assets is None else {a: dataclasses.asdict(v) for a, v in b.assets.items()},
                b.read_at, b.error,
            )
            for b in await self._reader.balances(user_id, keys)
        ]


class _NoPrices:
    async def last_prices(self, symbols: Iterable[str]) -> dict[str, float | None]:
        return dict.fromkeys(symbols)


async def portfolio_context(app: web.Application) -> AsyncIterator[None]:
    """Runs after accounts_context (API_KEYS); its clients are closed before the pools go."""
    settings = app[SETTINGS]
    # Like the market cache: a test app without a simulator must not reach the real exchange.
    configured = bool(settings.exchange_url) or settings.env != "test"
    factory = ExchangeClientFactory(settings.exchange_url) if configured else None
    prices: PriceSource = LastPrices(factory) if factory is not None else _NoPrices()
    reader = BalanceReader(app[API_KEYS], settings.exchange_url) if configured else None
    balances: BalanceSource = _KeyBalances(app, reader)
    app[PORTFOLIO] = PortfolioService(app[DB], prices, balances)
    try:
        yield
    finally:
        if factory is not None:
            await factory.close()


class AssetOut(BaseModel):
    free: float
    used: float
    total: float


class PositionOut(BaseModel):
    """An open position of one of the caller's bots; `unrealized_pnl` null while the price is unknown."""

    bot_id: int
    bot_name: str
    api_key_id: int | None
    symbol: str
    side: Literal["long", "short"]
    size: float
    entry_price: float | None
    last_price: float | None
    unrealized_pnl: float | None
    paper: bool


class KeyBalanceOut(BaseModel):
    """One API key's balances on the exchange (read at most every 30 s); `assets` null and `error`
    set when they could not be read."""

    api_key_id: int
    label: str
    exchange: str
    assets: dict[str, AssetOut] | None
    read_at: dt.datetime | None
    error: str | None


class PortfolioTotalsOut(BaseModel):
    """Sums over what could be read; `complete` is false when a price or a key's balances are missing."""

    positions_count: int
    unrealized_pnl: float
    balances: dict[str, AssetOut]
    complete: bool


class PortfolioOut(BaseModel):
    positions: list[PositionOut]
    balances: list[KeyBalanceOut]
    totals: PortfolioTotalsOut


@routes.route(
    "GET",
    "/api/v1/portfolio",
    summary="Open positions, balances per API key, and totals",
    responses={200: PortfolioOut},
    tags=["trades"],
)
async def get_portfolio(request: web.Request) -> web.Response:
    portfolio = await request.app[PORTFOLIO].portfolio(request[PRINCIPAL].user_id)
    return json_response(portfolio, headers={"Cache-Control": "no-store"})
