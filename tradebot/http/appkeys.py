"""Typed keys for what lives on the aiohttp application and on each request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from tradebot.config import Secrets, Settings
from tradebot.http.metrics import HttpMetrics
from tradebot.http.routing import Operation
from tradebot.runtime.events import BotEvents


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

PRINCIPAL = web.RequestKey("principal", Principal)
REQUEST_ID = web.RequestKey("request_id", str)
