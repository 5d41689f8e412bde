"""Wires Telegram into the app: the chat links (always: the API answers about them), and, when a
platform bot is set up (TRADEBOT_TELEGRAM_BOT_TOKEN), this replica's part in polling it (three
supervised loops that run only while this replica holds the Telegram lease)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from aiohttp import web

from tradebot.bots.errors import BotNotFound, CommandRefused
from tradebot.bots.stats import StatsGroup, TradeFilter
from tradebot.http.appkeys import (
    BOTS,
    DB,
    DELIVERY_WORKER,
    REDIS,
    REPLICA_ID,
    SETTINGS,
    TELEGRAM_ENABLED,
    TELEGRAM_LINKS,
)
from tradebot.http.portfolio_routes import PORTFOLIO
from tradebot.notifications.telegram_api import BotApi
from tradebot.notifications.telegram_commands import CommandHandler
from tradebot.notifications.telegram_links import TelegramLinks
from tradebot.runtime.clock import SystemClock
from tradebot.runtime.supervised import BackgroundTasks
from tradebot.runtime.telegram_poller import PollerTiming, TelegramPoller

MAX_BOTS_LISTED = 100
RESTART_DELAY_S = 1.0
TELEGRAM_POLLER = web.AppKey("telegram_poller", TelegramPoller)


class AppDesk:
    """The figures a chat asks for, from the same services the API answers with."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def bots(self, user_id: int) -> Sequence[Mapping[str, Any]]:
        return await self._app[BOTS].page(user_id, after_id=None, limit=MAX_BOTS_LISTED)

    async def bot(self, user_id: int, bot_id: int) -> Mapping[str, Any] | None:
        try:
            return await self._app[BOTS].get(user_id, bot_id)
        except BotNotFound:
            return None

    async def stats(self, user_id: int, group: str, since: dt.datetime | None) -> Mapping[str, Any]:
        return await self._app[BOTS].stats(user_id, StatsGroup(group), TradeFilter(since=since))

    async def balance_totals(self, user_id: int) -> Mapping[str, Any]:
        totals: Mapping[str, Any] = (await self._app[PORTFOLIO].portfolio(user_id))["totals"]
        return totals

    async def stop(self, user_id: int, bot_id: int) -> bool:
        try:
            await self._app[BOTS].stop(user_id, bot_id)
        except BotNotFound:
            return False
        return True

    async def force_exit(self, user_id: int, bot_id: int) -> str | None:
        try:
            await self._app[BOTS].force_exit(user_id, bot_id, pct=100.0)
        except BotNotFound:
            return f"You have no bot #{bot_id}."
        except CommandRefused as e:
            return f"Not done: {e.detail}."
        return None


async def telegram_context(app: web.Application) -> AsyncIterator[None]:
    """After notifications_context (DELIVERY_WORKER) and portfolio_context (PORTFOLIO)."""
    settings = app[SETTINGS]
    links = TelegramLinks(app[DB], code_ttl_s=settings.telegram_link_ttl_s)
    app[TELEGRAM_LINKS] = links
    token = settings.telegram_bot_token
    app[TELEGRAM_ENABLED] = token is not None
    if token is None:
        yield
        return
    api = BotApi(settings.telegram_api_url, token.get_secret_value())
    poller = TelegramPoller(app[REDIS], settings.redis_prefix, app[REPLICA_ID], SystemClock(), api,
                            CommandHandler(links, AppDesk(app), api), app[DELIVERY_WORKER],
                            PollerTiming(poll_timeout_s=settings.telegram_poll_timeout_s))
    app[TELEGRAM_POLLER] = poller
    loop = asyncio.get_running_loop()

    def restart(name: str, error: BaseException) -> None:
        # A crash is a bug (logged and counted by BackgroundTasks); the loop starts again after a
        # pause: the outbox keeps the messages and Telegram keeps the updates meanwhile.
        def again() -> None:
            try:
                poller.respawn(tasks, name)
            except RuntimeError:
                pass  # closing

        loop.call_later(RESTART_DELAY_S, again)

    tasks = BackgroundTasks("telegram", on_crash=restart)
    if settings.notifications_enabled:
        poller.spawn(tasks)
    try:
        yield
    finally:
        await tasks.close()
        await poller.release()
        await api.close()
