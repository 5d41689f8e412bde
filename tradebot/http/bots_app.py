"""Wires the bots API into the app: bot events, the bots service and open SSE streams (the
service's refusals become problems in http.domain_problems)."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from tradebot.accounts.session_events import sessions_channel, stale_tokens
from tradebot.bots.errors import MarketsUnavailable
from tradebot.bots.models import Market
from tradebot.bots.service import BotService
from tradebot.exchange.errors import ExchangeError
from tradebot.http.appkeys import (
    BOT_EVENTS,
    BOTS,
    DB,
    MARKET_CACHE,
    OPEN_STREAMS,
    REDIS,
    SESSION_CACHE,
    SETTINGS,
    STREAM_REGISTRY,
    STREAM_SLOTS,
    SYMBOLS,
)
from tradebot.http.open_streams import OpenStreams
from tradebot.http.stream_registry import StreamRegistry
from tradebot.http.stream_slots import StreamSlots
from tradebot.runtime.commands import publish_command
from tradebot.runtime.events import BotEvents

log = logging.getLogger(__name__)


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
    commands = functools.partial(publish_command, app[REDIS], settings.redis_prefix)
    app[BOTS] = BotService(app[DB], app[BOT_EVENTS], commands, _AppMarkets(app),
                           max_bots_per_user=settings.max_bots_per_user)
    yield


