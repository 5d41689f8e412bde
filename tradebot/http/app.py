"""The aiohttp application: resources in cleanup_ctx (torn down in reverse), routes, middlewares."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tradebot import db
from tradebot.config import Secrets, Settings
from tradebot.http import (
    admin_routes,
    api_key_routes,
    auth_routes,
    backtest_routes,
    bot_routes,
    bots_app,
    chart_routes,
    cluster_routes,
    dashboard_routes,
    drift_routes,
    markets_routes,
    notification_routes,
    ops_routes,
    optimization_routes,
    portfolio_routes,
    sse_routes,
    sse_user_routes,
    stats_routes,
    strategy_routes,
    telegram_routes,
    trade_routes,
    webhook_routes,
)
from tradebot.http.accounts_app import accounts_context
from tradebot.http.appkeys import DB, HTTP_METRICS, OPERATIONS, REDIS, REPLICA_ID, SECRETS, SESSION_CACHE, SETTINGS
from tradebot.http.metrics import HttpMetrics
from tradebot.http.middlewares import authentication, problems, request_context
from tradebot.http.notifications_app import notifications_context
from tradebot.http.routing import RouteTable
from tradebot.http.static_files import add_static_dir
from tradebot.http.telegram_app import telegram_context

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"

CleanupContext = Callable[[web.Application], AsyncIterator[None]]

REDIS_MAX_CONNECTIONS = 200


def all_routes() -> RouteTable:
    table = RouteTable()
    table.extend(ops_routes.routes)
    table.extend(auth_routes.routes)
    table.extend(api_key_routes.routes)
    table.extend(bot_routes.routes)
    table.extend(sse_routes.routes)
    table.extend(sse_user_routes.routes)
    table.extend(trade_routes.routes)
    table.extend(stats_routes.routes)
    table.extend(drift_routes.routes)
    table.extend(portfolio_routes.routes)
    table.extend(markets_routes.routes)
    table.extend(backtest_routes.routes)
    table.extend(optimization_routes.routes)
    table.extend(strategy_routes.routes)
    table.extend(chart_routes.routes)
    table.extend(webhook_routes.routes)
    table.extend(notification_routes.routes)
    table.extend(telegram_routes.routes)
    table.extend(cluster_routes.routes)
    table.extend(admin_routes.routes)
    return table


def create_app(
    settings: Settings,
    secrets: Secrets,
    *,
    database_url: str,
    redis_url: str,
    replica_id: str,
    extra_contexts: list[CleanupContext] | None = None,
) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[request_context, problems, authentication],
    )
    app[SETTINGS] = settings
    app[SECRETS] = secrets
    app[REPLICA_ID] = replica_id
    app[HTTP_METRICS] = HttpMetrics()
    # Resident memory, open fds, CPU (process_*) and the loop's task count: what a soak test watches.
    ProcessCollector(registry=app[HTTP_METRICS].registry)
    app[HTTP_METRICS].registry.register(AsyncioTasksCollector())
    app[HTTP_METRICS].registry.register(SessionCacheCollector(app))
    app[OPERATIONS] = all_routes().install(app)
    add_static_dir(app, "/static/", STATIC_DIR)
    _add_swagger_assets(app)
    dashboard_routes.install(app)  # the web dashboard's pages and every response's security headers

    app.cleanup_ctx.append(_postgres(database_url, settings))
    app.cleanup_ctx.append(_redis(redis_url))
    app.cleanup_ctx.append(accounts_context)  # services, AUTHENTICATOR; needs DB and REDIS
    bots_app.install(app)  # BOT_EVENTS, the bots service, SSE streams closed on shutdown
    app.cleanup_ctx.append(portfolio_routes.portfolio_context)  # exchange reads for GET /portfolio
    app.cleanup_ctx.append(backtest_routes.backtests_context)  # backtest jobs; failed as interrupted on close
    app.cleanup_ctx.append(optimization_routes.optimizations_context)  # chunk workers; after backtests (its loader)
    app.cleanup_ctx.append(notifications_context)  # webhooks, preferences, the outbox's delivery worker
    app.cleanup_ctx.append(telegram_context)  # chat links; the poller while this replica holds its lease
    if settings.exchange_url or settings.env != "test":  # MARKET_CACHE; test apps without a simulator skip it
        app.cleanup_ctx.append(markets_routes.market_cache_ctx)
    for ctx in extra_contexts or []:
        app.cleanup_ctx.append(ctx)
    return app


class AsyncioTasksCollector(Collector):
    """tradebot_asyncio_tasks: the running loop's unfinished tasks, counted at scrape time (a leak shows as growth)."""

    def collect(self) -> Iterator[Metric]:
        try:
            count = len(asyncio.all_tasks())
        except RuntimeError:  # scraped outside a running loop (a test reading the registry directly)
            return
        yield GaugeMetricFamily("tradebot_asyncio_tasks", "Unfinished asyncio tasks in this process's loop", value=count)


class SessionCacheCollector(Collector):
    """How the per-request token checks were answered: from this replica's session cache or from
    Redis and PostgreSQL, and whether the cache can answer now (its heartbeats arrive)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        cache = self._app.get(SESSION_CACHE)
        if cache is None:
            return
        checks = CounterMetricFamily("tradebot_session_cache_checks", "Token checks by where they were answered",
                                     labels=["answered_by"])
        checks.add_metric(["cache"], cache.hits)
        checks.add_metric(["redis_and_postgresql"], cache.misses)
        yield checks
        yield GaugeMetricFamily("tradebot_session_cache_trusted",
                                "1 while the session cache may answer (its heartbeats arrive over pub/sub)",
                                value=int(cache.trusted()))


def _add_swagger_assets(app: web.Application) -> None:
    import swagger_ui_bundle

    add_static_dir(app, "/api/docs/assets/", Path(swagger_ui_bundle.swagger_ui_path))


def _postgres(url: str, settings: Settings) -> CleanupContext:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        pool = await db.create_pool(url, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
        app[DB] = pool
        try:
            yield
        finally:
            await pool.close()

    return ctx


def _redis(url: str) -> CleanupContext:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        # A blocking pool: past its size a command waits (up to `timeout`) for a connection instead of
        # failing at once with "Too many connections" (redis-py's default pool stops at 100), which a
        # burst such as thousands of SSE clients reconnecting after a failover would otherwise cause.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=REDIS_MAX_CONNECTIONS,
            timeout=5,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=5,
            health_check_interval=15,
        )
        client = aioredis.Redis.from_pool(pool)  # owns the pool: aclose() closes it
        app[REDIS] = client
        try:
            yield
        finally:
            await client.aclose()

    return ctx
