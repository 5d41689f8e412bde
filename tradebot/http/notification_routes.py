"""/api/v1/notifications/preferences: which events go to which channel, per user."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tradebot.http.appkeys import NOTIFICATION_PREFERENCES, PRINCIPAL
from tradebot.http.json_response import json_response
from tradebot.http.request_body import parse_body
from tradebot.http.routing import RouteTable
from tradebot.notifications.events import Channel
from tradebot.notifications.preferences import Preferences

routes = RouteTable()

PATH = "/api/v1/notifications/preferences"
TAGS = ["notifications"]

EventName = Annotated[str, StringConstraints(max_length=32)]


class PreferencesIn(BaseModel):
    """The channels to change; a channel left out keeps its events."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    webhook: list[EventName] | None = Field(default=None, max_length=10,
                                            description="events sent to the webhooks: trade, state, error")
    mail: list[EventName] | None = Field(default=None, max_length=10,
                                         description="events mailed: error (a bot went to error), paused "
                                                     "(a daily limit paused it)")
    telegram: list[EventName] | None = Field(default=None, max_length=10,
                                             description="events told to the linked Telegram chat: trade, "
                                                         "state (pauses, failovers, stops), error")


class PreferencesOut(BaseModel):
    """Per channel, the events it carries (the default is every event it can carry)."""

    webhook: list[str]
    mail: list[str]
    telegram: list[str]

    @classmethod
    def of(cls, prefs: Preferences) -> PreferencesOut:
        return cls(webhook=prefs[Channel.WEBHOOK], mail=prefs[Channel.MAIL], telegram=prefs[Channel.TELEGRAM])


@routes.route("GET", PATH, summary="The caller's notification preferences", responses={200: PreferencesOut},
              tags=TAGS)
async def get_preferences(request: web.Request) -> web.Response:
    prefs = await request.app[NOTIFICATION_PREFERENCES].get(request[PRINCIPAL].user_id)
    return json_response(PreferencesOut.of(prefs))


@routes.route("PUT", PATH, summary="Choose which events go to which channel", body=PreferencesIn,
              responses={200: PreferencesOut}, tags=TAGS)
async def put_preferences(request: web.Request) -> web.Response:
    body = await parse_body(request, PreferencesIn)
    changes = {Channel(name): events for name, events in body.model_dump().items() if events is not None}
    prefs = await request.app[NOTIFICATION_PREFERENCES].update(request[PRINCIPAL].user_id, changes)
    return json_response(PreferencesOut.of(prefs))
