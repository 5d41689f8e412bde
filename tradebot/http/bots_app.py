"""Wires the bots API into the app: bot events, the bots service, open SSE streams, and the one
mapping from the service's refusals to problem responses."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from tradebot.accounts.session_events import sessions_channel, stale_tokens
from tradebot.bots.errors import (
    BotAlreadyRunning,
    BotError,
    BotHasNoApiKey,
    BotIsRunning,
    BotLimitReached,
    BotNotFound,
    InvalidBotSettings,
    MarketsUnavailable,
)
from tradebot.bots.models import Market, SymbolResolver
from tradebot.bots.service import BotService
from tradebot.exchange.errors import ExchangeError
from tradebot.http.accounts_app import SESSION_CACHE
from tradebot.http.appkeys import BOT_EVENTS, DB, REDIS, SETTINGS
from tradebot.http.markets_routes import MARKET_CACHE
from tradebot.http.problems import FieldError, Problem, conflict, not_found, validation_problem
from tradebot.http.sse_frames import FrameCache
from tradebot.http.stream_registry import StreamRegistry
from tradebot.http.stream_slots import StreamSlots
from tradebot.runtime.events import BotEvents

log = logging.getLogger(__name__)


CONNECT_CONCURRENCY = 32


class OpenStreams:
    """The SSE responses open on this replica, so shutdown can end them instead of waiting them out."""

    def __init__(self, connect_concurrency: int = CONNECT_CONCURRENCY) -> None:
        self._open: set[EventSourceResponse] = set()
        self.closing = False
        # Connecting costs a few Redis and PostgreSQL round trips. When a replica dies, thousands of
        # EventSources reconnect at once; bounded, they queue here instead of exhausting the
        # connection pools (which would turn the herd into 500s and retries).
        self.connect_slots = asyncio.Semaphore(connect_concurrency)
        self.frames = FrameCache()

    def add(self, resp: EventSourceResponse) -> None:
        self._open.add(resp)

    def discard(self, resp: EventSourceResponse) -> None:
        self._open.discard(resp)

    def __len__(self) -> int:
        return len(self._open)

    def close_all(self) -> None:
        # Ending the ping task ends each handler's wait; the handler then finishes its response
        # cleanly (a terminated chunked body), and the client's EventSource reconnects elsewhere.
        self.closing = True
        for resp in tuple(self._open):
            resp.stop_streaming()


BOTS = web.AppKey("bots", BotService)
SYMBOLS = web.AppKey("bot_symbols", SymbolResolver)
OPEN_STREAMS = web.AppKey("open_sse_streams", OpenStreams)
STREAM_REGISTRY = web.AppKey("stream_registry", StreamRegistry)
STREAM_SLOTS = web.AppKey("stream_slots", StreamSlots)


def install(app: web.Application) -> None:
    """Called by create_app before the app freezes (signals cannot be added later)."""
    app[OPEN_STREAMS] = OpenStreams()
    app.on_shutdown.append(_close_streams)
    app.cleanup_ctx.append(bot_events_context)
    app.cleanup_ctx.append(bots_context)


async def _close_streams(app: web.Application) -> None:
    streams = app[OPEN_STREAMS]
    if len(streams):
        log.info("closing %d SSE streams for shutdown", len(streams))
    streams.close_all()


async def bot_events_context(app: web.Application) -> AsyncIterator[None]:
    """One BotEvents per app: a single pub/sub connection fans events out to every local stream,
    and brings the session announcements that end streams whose token stopped being valid."""
    prefix = app[SETTINGS].redis_prefix
    events = BotEvents(app[REDIS], prefix)
    registry = StreamRegistry(functools.partial(stale_tokens, app[DB]))
    sessions = app.get(SESSION_CACHE)
    if sessions is None:
        events.also_relay(sessions_channel(prefix), registry.on_message, registry)
    else:
        def on_session_message(raw: bytes | str) -> None:
            sessions.on_message(raw)
            registry.on_message(raw)

        events.also_relay(sessions_channel(prefix), on_session_message, registry)
        events.also_relay(sessions.heartbeat_channel, sessions.on_heartbeat, sessions)
        # The cache answers only while this subscription runs: start it now, not at the first stream.
        events.start()
        sessions.start()
    app[BOT_EVENTS] = events
    app[STREAM_REGISTRY] = registry
    app[STREAM_SLOTS] = slots = StreamSlots(app[REDIS], prefix, app[SETTINGS].max_streams_per_user)
    try:
        yield
    finally:
        await slots.close()
        if sessions is not None:
            await sessions.close()
        await registry.close()
        await events.close()


class _AppMarkets:
    """Symbols from the replica's market cache, looked up per call: the cache's context starts after
    this one. A SYMBOLS resolver set on the app before startup takes its place (tests without an
    exchange)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def resolve(self, text: str) -> Market | None:
        override = self._app.get(SYMBOLS)
        if override is not None:
            return await override.resolve(text)
        cache = self._app.get(MARKET_CACHE)
        if cache is None:
            raise MarketsUnavailable("no market cache on this replica")
        try:
            return await cache.resolve_symbol(text)
        except ExchangeError as e:
            raise MarketsUnavailable(str(e)) from e


async def bots_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[BOTS] = BotService(app[DB], app[REDIS], settings.redis_prefix, app[BOT_EVENTS], _AppMarkets(app),
                           max_bots_per_user=settings.max_bots_per_user)
    yield


def problem_for(error: BotError) -> Problem:
    if isinstance(error, BotNotFound):
        return not_found("bot")
    if isinstance(error, BotAlreadyRunning):
        return conflict("the bot is already running")
    if isinstance(error, BotHasNoApiKey):
        return conflict("the bot has no api key; set api_key_id first")
    if isinstance(error, BotIsRunning):
        return conflict(error.detail)
    if isinstance(error, BotLimitReached):
        # 409, not 429: waiting does not help; the account is full until the user deletes a bot.
        return conflict(f"this account already has the maximum of {error.limit} bots "
                        "(TRADEBOT_MAX_BOTS_PER_USER); delete one to create another")
    if isinstance(error, InvalidBotSettings):
        return validation_problem([FieldError(f, m) for f, m in error.errors])
    if isinstance(error, MarketsUnavailable):
        return Problem(503, "market data is unavailable right now; try again shortly", headers={"Retry-After": "5"})
    return Problem(400, "request refused")
