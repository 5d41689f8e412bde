"""The bot runtime as a resource of the aiohttp app: built in cleanup_ctx, closed in reverse.

Composition root: this module wires the runtime (which knows nothing of aiohttp) into the app.

Closing hands every bot over before the event bus, Redis and PostgreSQL go away, so a SIGTERM'd
replica's bots resume on another replica at once (DESIGN.md invariant 7).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web

from tradebot.exchange.ccxt_factory import ExchangeClientFactory
from tradebot.exchange.errors import translated
from tradebot.exchange.markets import MarketInfo, market_info
from tradebot.http.appkeys import (
    BOT_EVENTS,
    CLUSTER,
    DB,
    DRIFT,
    HTTP_METRICS,
    MARKET_CACHE,
    MARKET_DATA,
    REDIS,
    REPLICA_ID,
    RUNTIME,
    RUNTIME_HEALTH,
    SECRETS,
    SETTINGS,
)
from tradebot.runtime import bot_store
from tradebot.runtime.bot_actor import ActorContext
from tradebot.runtime.bot_runtime import Assignment, BotRuntime, RuntimeTiming, run_everything
from tradebot.runtime.clock import Clock, SystemClock
from tradebot.runtime.cluster import ClusterCoordinator, ClusterTiming, ReplicaInfo
from tradebot.runtime.cluster.metrics import ClusterCollector
from tradebot.runtime.drift_job import DriftJob, DriftSchedule
from tradebot.runtime.events import BotEvents
from tradebot.runtime.faults import CrashPoints
from tradebot.runtime.history_cache import HistoryCache
from tradebot.runtime.leases import LeaseManager
from tradebot.runtime.live_account import AccountPool
from tradebot.runtime.market_data_hub import MarketDataHub
from tradebot.runtime.metrics import RuntimeCollector, RuntimeCounters
from tradebot.runtime.paper_account import CachedPublicMarkets, ChosenAccounts
from tradebot.runtime.state_writer import StateWriter
from tradebot.runtime.supervised import BackgroundTasks
from tradebot.security.secrets_box import SecretBox

log = logging.getLogger(__name__)

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def runtime_context(
    *, clock: Clock | None = None, timing: RuntimeTiming | None = None, assignment: Assignment | None = None
) -> CleanupContext:
    """`assignment=None`: the cluster coordinator decides (DESIGN.md "Cluster"); tests may pass
    `run_everything` or their own to run without one."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        if not settings.runtime_enabled:
            yield
            return
        the_clock = clock or SystemClock()
        own_events = BOT_EVENTS not in app
        events = app[BOT_EVENTS] if not own_events else BotEvents(app[REDIS], settings.redis_prefix)
        counters = RuntimeCounters()
        factory = ExchangeClientFactory(settings.exchange_url)
        hub = MarketDataHub(base_url=settings.exchange_url)
        live_accounts = AccountPool(app[DB], SecretBox(app[SECRETS].fernet_keys), factory)
        # Paper bots read public market data only: the replica's market cache when it has one (an
        # app that serves markets), else the markets of a public client of the hub's exchange.
        markets = app.get(MARKET_CACHE)
        resolve = markets.resolve_symbol if markets is not None else _public_markets(factory)
        accounts = ChosenAccounts(app[DB], live_accounts, CachedPublicMarkets(resolve, hub.fetch_closed_history))
        leases = LeaseManager(
            app[REDIS],
            settings.redis_prefix,
            app[REPLICA_ID],
            the_clock,
            ttl_ms=settings.lease_ttl_ms,
            renew_interval_ms=settings.renew_interval_ms,
        )
        cluster = None if assignment is not None else _coordinator(app, the_clock)
        runtime = BotRuntime(
            ctx=ActorContext(app[DB], events, hub, accounts, the_clock, app[REPLICA_ID],
                             CrashPoints(settings.crash_points), counters, StateWriter(app[DB]),
                             HistoryCache(hub.fetch_closed_history)),
            redis=app[REDIS],
            prefix=settings.redis_prefix,
            leases=leases,
            clock=the_clock,
            timing=timing or RuntimeTiming(renew_interval_s=settings.renew_interval_ms / 1000),
            assignment=assignment or (cluster.assignment if cluster else run_everything),
        )
        app[RUNTIME] = runtime
        app[RUNTIME_HEALTH] = runtime.health
        app[MARKET_DATA] = hub
        if cluster is not None:
            app[CLUSTER] = cluster
            cluster.on_change = runtime.poke
            runtime.leave_cluster = cluster.leave
            cluster.tasks.on_crash = runtime.fault
            runtime.announce_released = cluster.announce_released
            cluster_metrics = ClusterCollector(cluster)
            app[HTTP_METRICS].registry.register(cluster_metrics)
            await cluster.start()  # membership known before the first reconcile
        drift_tasks = _drift_reports(app, cluster, the_clock)
        collector = RuntimeCollector(runtime, hub, counters)
        registry = app[HTTP_METRICS].registry
        registry.register(collector)
        runtime.start()
        try:
            yield
        finally:
            registry.unregister(collector)
            await drift_tasks.close()
            try:
                if cluster is not None:
                    app[HTTP_METRICS].registry.unregister(cluster_metrics)
                    # Leave first: the others learn where our bots go while we hand them over,
                    # then take them the moment the leases are released (target ≤ 2 s).
                    await cluster.leave()
                await runtime.close()
                if cluster is not None:
                    await cluster.announce_released()
            finally:
                handed_over = time.perf_counter()
                await hub.close()
                hub_closed = time.perf_counter()
                await factory.close()
                if own_events:
                    await events.close()
                log.info("runtime closed", extra={"hub_ms": round((hub_closed - handed_over) * 1000),
                                                  "clients_ms": round((time.perf_counter() - hub_closed) * 1000)})

    return ctx


def _drift_reports(app: web.Application, cluster: ClusterCoordinator | None, clock: Clock) -> BackgroundTasks:
    """The nightly drift reports, run by whichever replica leads (none without a cluster)."""
    tasks = BackgroundTasks("drift-reports")  # a crash is logged loudly; trading is not affected
    settings = app[SETTINGS]
    if cluster is None or DRIFT not in app or not settings.drift_nightly_enabled:
        return tasks
    job = DriftJob(app[DB], app[DRIFT], is_leader=lambda: cluster.is_leader, clock=clock,
                   replica_id=app[REPLICA_ID],
                   schedule=DriftSchedule(run_at_hour=settings.drift_run_at_hour,
                                          window_hours=settings.drift_window_hours))
    tasks.spawn("drift-reports", job.loop())
    return tasks


def _coordinator(app: web.Application, clock: Clock) -> ClusterCoordinator:
    settings = app[SETTINGS]
    pool = app[DB]

    async def bots() -> set[int]:
        active, winding = await bot_store.desired_bots(pool)
        return active | winding

    info = ReplicaInfo(app[REPLICA_ID], datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), socket.gethostname(),
                       os.getpid())
    timing = ClusterTiming(heartbeat_interval_ms=settings.heartbeat_interval_ms, lease_ttl_ms=settings.lease_ttl_ms,
                           renew_interval_ms=settings.renew_interval_ms)
    return ClusterCoordinator(redis=app[REDIS], prefix=settings.redis_prefix, info=info, clock=clock, bots=bots,
                              timing=timing)


def _public_markets(factory: ExchangeClientFactory) -> Callable[[str], Awaitable[MarketInfo | None]]:
    """A symbol resolver on a public ccxt client (an app without the market cache)."""

    async def resolve(symbol: str) -> MarketInfo | None:
        client = factory.public_client("binanceusdm")
        with translated():
            markets = await client.load_markets()
        market = markets.get(symbol)
        return None if market is None else market_info(market, "futures")

    return resolve
