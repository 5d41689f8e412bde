"""GET /api/v1/status-stream: every event of all the user's bots on one stream.

A browser on HTTP/1.1 opens at most 6 connections per host, so a dashboard with one EventSource
per bot left most rows without live updates; this stream is the one it opens instead. Same events,
replay, auth and rules as a bot's stream (sse_routes): each event's data carries `bot_id`, and its
id is a cursor of every bot's position (sse_frames.encode_cursor), so a reconnect replays, bot by
bot, exactly what it missed, and a bot its cursor cannot place gets a fresh `state` event.
The bots are the user's bots when the stream connects; a bot created later joins at the next
connect (the dashboard reconnects when its list changes).

Order of work on connect, as for a bot's stream: listen first, then read every bot's log window in
one Redis transaction, then every bot's state in one query, then replay or snapshot per bot.
"""

from __future__ import annotations

import contextlib
import logging

import redis.asyncio as aioredis
from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response
from pydantic import BaseModel, ConfigDict, Field

from tradebot.http.appkeys import BOT_EVENTS, BOTS, OPEN_STREAMS, PRINCIPAL, SETTINGS
from tradebot.http.bot_routes import TAGS
from tradebot.http.problems import Problem, unauthorized
from tradebot.http.request_body import parse_query
from tradebot.http.routing import RouteTable
from tradebot.http.sse_frames import Cursor, decode_cursor, encode_cursor, encode_user_frame, event_key, key_text
from tradebot.http.sse_routes import EMPTY_LOG_ID, Listener, open_stream, relay, replayable, write
from tradebot.http.stream_registry import StreamHandle
from tradebot.runtime.events import BotEvent, ListenerOverflow

log = logging.getLogger(__name__)

routes = RouteTable()


class UserStreamQuery(BaseModel):
    """For browsers' EventSource, which cannot send headers."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    access_token: str | None = Field(default=None, description="the bearer token, when no Authorization header")
    last_event_id: str | None = Field(
        default=None, max_length=8000, pattern=r"^\d{1,18}:\d{1,20}(-\d{1,20})?(,\d{1,18}:\d{1,20}(-\d{1,20})?)*$",
        description="as the Last-Event-ID header: an id this stream sent",
    )


@routes.route(
    "GET",
    "/api/v1/status-stream",
    summary="Live state and trade events of all the user's bots (Server-Sent Events)",
    description="One stream for every bot of the user: the events of `/bots/{id}/status-stream`, each "
    "event's data carrying `bot_id`. Ids are cursors over every bot's events: send the last one as "
    "`Last-Event-ID` (or `?last_event_id=`) to replay exactly what was missed. Browsers' EventSource "
    "may pass the token as `?access_token=`.",
    query=UserStreamQuery,
    responses={200: "text/event-stream"},
    errors=(429, 503),
    query_token=True,
    tags=TAGS,
)
async def user_status_stream(request: web.Request) -> web.StreamResponse:
    query = parse_query(request, UserStreamQuery)
    cursor = next((c for c in (decode_cursor(i) for i in (request.headers.get("Last-Event-ID"), query.last_event_id)
                               if i is not None) if c is not None), None)
    async with open_stream(request) as handle:
        return await _serve(request, cursor, handle)


async def _serve(request: web.Request, cursor: Cursor | None, handle: StreamHandle) -> web.StreamResponse:
    user_id = request[PRINCIPAL].user_id
    events, streams, bots = request.app[BOT_EVENTS], request.app[OPEN_STREAMS], request.app[BOTS]
    seen = cursor or {}
    async with streams.connect_slots:
        bot_ids = list(await bots.states(user_id))
    async with events.listen(*bot_ids) as listener:
        try:
            async with streams.connect_slots:
                windows = await events.windows({b: key_text(seen[b]) if b in seen else None for b in bot_ids})
                states = await bots.states(user_id)
        except (OSError, aioredis.RedisError) as e:
            raise Problem(503, "live events are unavailable right now", headers={"Retry-After": "2"}) from e
        if streams.closing:
            raise Problem(503, "this replica is shutting down", headers={"Retry-After": "1"})
        if handle.ended.is_set():
            raise unauthorized("invalid, expired or revoked token")
        async with sse_response(request, ping_interval=request.app[SETTINGS].sse_heartbeat_s) as resp:
            streams.add(resp)
            try:
                # A bot is in the cursor once the client has what it needs of it: its position, or
                # the snapshot just sent. A reconnect in the middle of this loop replays the rest.
                positions: Cursor = {}
                replays: list[BotEvent] = []
                snapshots: list[int] = []
                for bot_id in bot_ids:
                    if bot_id not in states:
                        continue  # deleted since the first read
                    window, replayed = windows[bot_id]
                    if bot_id in seen and replayable(seen[bot_id], window):
                        positions[bot_id] = seen[bot_id]
                        replays.extend(replayed)
                    else:
                        snapshots.append(bot_id)
                for bot_id in snapshots:
                    newest = event_key(windows[bot_id][0].newest or EMPTY_LOG_ID)
                    assert newest is not None
                    positions[bot_id] = newest
                    await write(resp, encode_user_frame(encode_cursor(positions), "state",
                                                        {**states[bot_id], "bot_id": bot_id}))
                for event in replays:
                    await _send(resp, positions, event)
                await relay(resp, _pump(resp, listener, positions), handle)
            except (ConnectionResetError, TimeoutError):
                pass  # the client went away; nothing to tell it
            finally:
                streams.discard(resp)
    return resp


async def _send(resp: EventSourceResponse, positions: Cursor, event: BotEvent) -> None:
    key = event_key(event.id)
    if key is None:
        return
    positions[event.bot_id] = key
    await write(resp, encode_user_frame(encode_cursor(positions), event.event, {**event.data, "bot_id": event.bot_id}))


async def _pump(resp: EventSourceResponse, listener: Listener, positions: Cursor) -> None:
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        while True:
            try:
                event = await listener.next()
            except ListenerOverflow:
                log.info("SSE client fell behind; closing its stream so that it reconnects and replays")
                return
            key, sent = event_key(event.id), positions.get(event.bot_id)
            if key is None or sent is None or key <= sent:
                continue  # a bot deleted since connecting, or covered by the snapshot or the replay
            await _send(resp, positions, event)
