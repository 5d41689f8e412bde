"""/api/v1/backtests: thin handlers over the backtests service (CONTRACT.md "Trades, backtests"),
and the app wiring: the service, its job runner and the exchange client it downloads through."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web

from tradebot.backtests.candle_cache import CandleCache
from tradebot.backtests.drift import DriftConfig, DriftService
from tradebot.backtests.errors import MarketsUnavailable
from tradebot.backtests.history import HistoryLoader
from tradebot.backtests.metrics import BacktestCollector
from tradebot.backtests.repository import BacktestsRepo
from tradebot.backtests.runner import BacktestRunner, RunnerConfig
from tradebot.backtests.service import BacktestService
from tradebot.bots.models import Market
from tradebot.exchange.ccxt_factory import ExchangeClientFactory
from tradebot.exchange.errors import ExchangeError
from tradebot.http.appkeys import (
    BACKTEST_RUNNER,
    BACKTESTS,
    DB,
    DRIFT,
    HTTP_METRICS,
    MARKET_CACHE,
    PRINCIPAL,
    SETTINGS,
)
from tradebot.http.backtest_schemas import BacktestAccepted, BacktestCreate, BacktestOut, BacktestPage
from tradebot.http.json_response import json_response
from tradebot.http.pagination import PageQuery, build_page, decode_id_cursor
from tradebot.http.problems import path_id
from tradebot.http.request_body import parse_body, parse_query
from tradebot.http.routing import RouteTable

routes = RouteTable()

PREFIX = "/api/v1/backtests"
TAGS = ["backtests"]

def backtest_id_of(request: web.Request) -> int:
    return path_id(request.match_info["id"], "backtest")


def by_id(row: Mapping[str, Any]) -> tuple[int]:
    return (row["id"],)


@routes.route(
    "POST",
    PREFIX,
    summary="Queue a backtest",
    description="Validated at once (422 names the field; strategy parameter errors are "
    "`parameters.<name>`); the job then runs in the background: poll GET /backtests/{id}.",
    body=BacktestCreate,
    responses={202: BacktestAccepted},
    errors=[429, 503],
    tags=TAGS,
)
async def create_backtest(request: web.Request) -> web.Response:
    body = await parse_body(request, BacktestCreate)
    accepted = await request.app[BACKTESTS].create(request[PRINCIPAL].user_id, body.to_request())
    return json_response(accepted, status=202, headers={"Location": f"{PREFIX}/{accepted['id']}"})


@routes.route(
    "GET",
    PREFIX,
    summary="The caller's backtests, newest first",
    query=PageQuery,
    responses={200: BacktestPage},
    tags=TAGS,
)
async def list_backtests(request: web.Request) -> web.Response:
    query = parse_query(request, PageQuery)
    rows = await request.app[BACKTESTS].page(
        request[PRINCIPAL].user_id, before_id=decode_id_cursor(query.cursor), limit=query.limit + 1
    )
    items, next_cursor = build_page(rows, query.limit, by_id)
    return json_response({"items": items, "next_cursor": next_cursor})


@routes.route(
    "GET",
    PREFIX + "/{id}",
    summary="One backtest, with its result when done",
    responses={200: BacktestOut},
    tags=TAGS,
)
async def get_backtest(request: web.Request) -> web.Response:
    backtest = await request.app[BACKTESTS].get(request[PRINCIPAL].user_id, backtest_id_of(request))
    return json_response(backtest)


class AppMarkets:
    """Symbols from the replica's market cache, looked up per call (its context may start later)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def resolve(self, text: str) -> Market | None:
        cache = self._app.get(MARKET_CACHE)
        if cache is None:
            raise MarketsUnavailable("no market cache on this replica")
        try:
            return await cache.resolve_symbol(text)
        except ExchangeError as e:
            raise MarketsUnavailable(str(e)) from e


async def backtests_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    factory = ExchangeClientFactory(settings.exchange_url)
    loader = HistoryLoader(CandleCache(app[DB]), lambda: factory.public_client("binanceusdm"))
    repo = BacktestsRepo(app[DB])
    runner = BacktestRunner(
        repo,
        loader,
        RunnerConfig(
            concurrency=settings.backtest_concurrency,
            queue_limit=settings.backtest_queue_limit,
            heartbeat_s=settings.backtest_heartbeat_s,
            stale_after_s=settings.backtest_stale_after_s,
        ),
    )
    await runner.start()
    app[BACKTEST_RUNNER] = runner
    collector = BacktestCollector(runner)
    app[HTTP_METRICS].registry.register(collector)
    app[BACKTESTS] = BacktestService(repo, runner, AppMarkets(app), max_candles=settings.backtest_max_candles,
                                     max_live_per_user=settings.backtest_max_live_per_user)
    # Drift reports replay a bot's candles through the same loader (and candle cache).
    app[DRIFT] = DriftService(app[DB], loader, DriftConfig(fee_rate=settings.drift_fee_rate,
                                                           warn_gap_bps=settings.drift_warn_gap_bps,
                                                           max_candles=settings.drift_max_candles))
    try:
        yield
    finally:
        app[HTTP_METRICS].registry.unregister(collector)
        try:
            await runner.close()
        finally:
            await factory.close()
