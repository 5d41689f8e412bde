"""Typed keys for what lives on the aiohttp application and on each request: all of them, here.

Only the HTTP app and the composition root (tradebot.runtime_context, tradebot.server) use them;
the layers below never see the aiohttp application and take what they need as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from tradebot.accounts.api_keys import ApiKeyService
from tradebot.accounts.service import AccountService
from tradebot.accounts.session_cache import SessionCache
from tradebot.backtests.drift import DriftService
from tradebot.backtests.runner import BacktestRunner
from tradebot.backtests.service import BacktestService
from tradebot.bots.models import SymbolResolver
from tradebot.bots.service import BotService
from tradebot.config import Secrets, Settings
from tradebot.exchange.markets import MarketCache
from tradebot.http.metrics import HttpMetrics
from tradebot.http.open_streams import OpenStreams
from tradebot.http.routing import Operation
from tradebot.http.stream_registry import StreamRegistry
from tradebot.http.stream_slots import StreamSlots
from tradebot.notifications.delivery_worker import DeliveryWorker
from tradebot.notifications.preferences import PreferenceStore
from tradebot.notifications.telegram_links import TelegramLinks
from tradebot.notifications.webhooks import WebhookService
from tradebot.optimizations.service import OptimizationService
from tradebot.runtime.bot_runtime import BotRuntime
from tradebot.runtime.cluster import ClusterCoordinator
from tradebot.runtime.events import BotEvents
from tradebot.runtime.health import RuntimeHealth
from tradebot.runtime.market_data_hub import MarketDataHub
from tradebot.runtime.optimization_worker import OptimizationWorkers
from tradebot.security.passwords import PasswordHasher


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a request."""

    user_id: int
    email: str
    token_id: str
    token_expires_at: int
    token_version: int = 0
    token_accepted_until: int = 0  # unix seconds: expiry plus the clock leeway


class Authenticator(Protocol):
    async def __call__(self, request: web.Request) -> Principal: ...


SETTINGS = web.AppKey("settings", Settings)
SECRETS = web.AppKey("secrets", Secrets)
DB = web.AppKey("db", asyncpg.Pool)
REDIS = web.AppKey("redis", aioredis.Redis)
HTTP_METRICS = web.AppKey("http_metrics", HttpMetrics)
OPERATIONS = web.AppKey("operations", dict[web.AbstractRoute, Operation])
REPLICA_ID = web.AppKey("replica_id", str)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
BOT_EVENTS = web.AppKey("bot_events", BotEvents)
RUNTIME_HEALTH = web.AppKey("runtime_health", RuntimeHealth)  # set when this replica runs bots

# Accounts and API keys (http.accounts_app)
ACCOUNTS = web.AppKey("accounts", AccountService)
API_KEYS = web.AppKey("api_keys", ApiKeyService)
PASSWORD_HASHER = web.AppKey("password_hasher", PasswordHasher)
# Wired to the replica's pub/sub subscription by http.bots_app's bot_events_context.
SESSION_CACHE = web.AppKey("session_cache", SessionCache)

# Bots and their live streams (http.bots_app); SYMBOLS, set before startup, replaces the market
# cache's symbol lookups (tests without an exchange).
BOTS = web.AppKey("bots", BotService)
SYMBOLS = web.AppKey("bot_symbols", SymbolResolver)
OPEN_STREAMS = web.AppKey("open_sse_streams", OpenStreams)
STREAM_REGISTRY = web.AppKey("stream_registry", StreamRegistry)
STREAM_SLOTS = web.AppKey("stream_slots", StreamSlots)

# Backtests (http.backtest_routes) and markets (http.markets_routes)
BACKTESTS = web.AppKey("backtests", BacktestService)
BACKTEST_RUNNER = web.AppKey("backtest_runner", BacktestRunner)
DRIFT = web.AppKey("drift", DriftService)  # bots' drift reports, over the backtests' history loader
MARKET_CACHE = web.AppKey("market_cache", MarketCache)

# Optimisations (http.optimization_routes): the service, and this replica's chunk workers
OPTIMIZATIONS = web.AppKey("optimizations", OptimizationService)
OPTIMIZATION_WORKERS = web.AppKey("optimization_workers", OptimizationWorkers)

# The bot runtime (tradebot.runtime_context)
RUNTIME = web.AppKey("runtime", BotRuntime)
MARKET_DATA = web.AppKey("market_data", MarketDataHub)
CLUSTER = web.AppKey("cluster", ClusterCoordinator)

# Webhooks, notification preferences and this replica's delivery worker (http.notifications_app)
WEBHOOKS = web.AppKey("webhooks", WebhookService)
NOTIFICATION_PREFERENCES = web.AppKey("notification_preferences", PreferenceStore)
DELIVERY_WORKER = web.AppKey("delivery_worker", DeliveryWorker)
# Telegram (http.telegram_app): the chat links; TELEGRAM_ENABLED says whether a platform bot is set up.
TELEGRAM_LINKS = web.AppKey("telegram_links", TelegramLinks)
TELEGRAM_ENABLED = web.AppKey("telegram_enabled", bool)

PRINCIPAL = web.RequestKey("principal", Principal)
REQUEST_ID = web.RequestKey("request_id", str)
