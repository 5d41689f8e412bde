"""/api/v1/notifications/telegram/link: a one-time code to link a chat, the link's status, unlinking."""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import BaseModel

from tradebot.http.appkeys import PRINCIPAL, TELEGRAM_ENABLED, TELEGRAM_LINKS
from tradebot.http.json_response import json_response
from tradebot.http.routing import RouteTable
from tradebot.notifications.errors import TelegramNotConfigured

routes = RouteTable()

PATH = "/api/v1/notifications/telegram/link"
TAGS = ["notifications"]
NO_STORE = {"Cache-Control": "no-store"}


class LinkCodeOut(BaseModel):
    """Send `command` to the platform bot from the chat to link; the code works once, until `expires_at`.
    A new code replaces the previous one."""

    code: str
    command: str
    expires_at: dt.datetime


class LinkStatusOut(BaseModel):
    """Whether a chat is linked; `enabled` is false when this deployment has no Telegram bot."""

    enabled: bool
    linked: bool
    username: str | None
    linked_at: dt.datetime | None


@routes.route("POST", PATH, summary="A one-time code that links a Telegram chat (sent as /start <code>)",
              responses={201: LinkCodeOut}, errors=[409], tags=TAGS)
async def create_link_code(request: web.Request) -> web.Response:
    if not request.app[TELEGRAM_ENABLED]:
        raise TelegramNotConfigured
    code = await request.app[TELEGRAM_LINKS].new_code(request[PRINCIPAL].user_id)
    return json_response(LinkCodeOut(code=code.code, command=f"/start {code.code}", expires_at=code.expires_at),
                         status=201, headers=NO_STORE)


@routes.route("GET", PATH, summary="Whether a Telegram chat is linked", responses={200: LinkStatusOut}, tags=TAGS)
async def get_link(request: web.Request) -> web.Response:
    status = await request.app[TELEGRAM_LINKS].status(request[PRINCIPAL].user_id)
    return json_response(LinkStatusOut(enabled=request.app[TELEGRAM_ENABLED], linked=status.linked,
                                       username=status.username, linked_at=status.linked_at))


@routes.route("DELETE", PATH, summary="Unlink the Telegram chat (idempotent)", responses={204: None}, tags=TAGS)
async def delete_link(request: web.Request) -> web.Response:
    await request.app[TELEGRAM_LINKS].unlink(request[PRINCIPAL].user_id)
    return web.Response(status=204)
